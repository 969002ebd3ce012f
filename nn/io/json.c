/* JSON: a strict recursive-descent parser into a tree, and a writer. */
#include "io/json.h"
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned lo = 0x80, hi = 0xBF;      /* range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) { len = 3; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) { len = 3; hi = 0x9F; }      /* no UTF-16 surrogates */
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) { len = 4; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) { len = 4; hi = 0x8F; }      /* nothing above U+10FFFF */
  else return 0;
  if (n < len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

size_t mt_utf8_check(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (u[i] < 0x80) { i++; continue; }
    size_t k = utf8_seq(u + i, n - i);
    if (!k) return i;
    i += k;
  }
  return n;
}

static size_t utf8_encode(unsigned long cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* ---- parser ---- */

typedef struct {
  const char *s;
  size_t n, pos;
  char *err;
  size_t errlen;
  int depth;
} jparser;

static int fail(jparser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(jparser *p, size_t at, const char *fmt, ...) {
  if (!p->err || !p->errlen) return -1;
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < p->n; i++) {
    if (p->s[i] == '\n') { line++; col = 1; }
    else col++;
  }
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  if (k >= 0 && (size_t)k < p->errlen)
    snprintf(p->err + k, p->errlen - (size_t)k, " at line %zu column %zu", line, col);
  return -1;
}

/* a printable description of the byte at pos, for messages */
static const char *what_at(jparser *p, size_t pos, char *buf, size_t n) {
  if (pos >= p->n) return "end of input";
  unsigned char c = (unsigned char)p->s[pos];
  if (c >= 0x20 && c < 0x7F) snprintf(buf, n, "'%c'", c);
  else snprintf(buf, n, "byte 0x%02X", c);
  return buf;
}

static void skip_ws(jparser *p) {
  while (p->pos < p->n) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static void free_contents(mt_json *v);

static int hex4(const char *s, unsigned long *out) {
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* p->pos at the opening quote; on success *out is malloc'd, NUL-terminated */
static int parse_string(jparser *p, char **out, size_t *outlen) {
  size_t start = p->pos + 1, i = start;
  /* find the closing quote first: the decoded text is never longer than the source */
  for (;;) {
    if (i >= p->n) return fail(p, p->pos, "unterminated string");
    char c = p->s[i];
    if (c == '"') break;
    if (c == '\\') i++;
    i++;
  }
  size_t end = i;
  char *buf = malloc(end - start + 1);
  if (!buf) return fail(p, p->pos, "out of memory");
  size_t k = 0;
  i = start;
  while (i < end) {
    unsigned char c = (unsigned char)p->s[i];
    if (c < 0x20) { free(buf); return fail(p, i, "control character 0x%02X in a string (escape it)", c); }
    if (c >= 0x80) {
      size_t m = utf8_seq((const unsigned char *)p->s + i, end - i);
      if (!m) { free(buf); return fail(p, i, "invalid UTF-8 byte 0x%02X in a string", c); }
      memcpy(buf + k, p->s + i, m);
      k += m;
      i += m;
      continue;
    }
    if (c != '\\') { buf[k++] = (char)c; i++; continue; }
    char e = p->s[i + 1];      /* i + 1 < end: the scan above skipped escaped quotes */
    switch (e) {
      case '"': buf[k++] = '"'; break;
      case '\\': buf[k++] = '\\'; break;
      case '/': buf[k++] = '/'; break;
      case 'b': buf[k++] = '\b'; break;
      case 'f': buf[k++] = '\f'; break;
      case 'n': buf[k++] = '\n'; break;
      case 'r': buf[k++] = '\r'; break;
      case 't': buf[k++] = '\t'; break;
      case 'u': {
        unsigned long cp, lo;
        if (end - i < 6 || hex4(p->s + i + 2, &cp)) {
          free(buf);
          return fail(p, i, "bad \\u escape (expected 4 hex digits)");
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) { free(buf); return fail(p, i, "unpaired low surrogate \\u%04lX", cp); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - i < 12 || p->s[i + 6] != '\\' || p->s[i + 7] != 'u' || hex4(p->s + i + 8, &lo) ||
              lo < 0xDC00 || lo > 0xDFFF) {
            free(buf);
            return fail(p, i, "high surrogate \\u%04lX not followed by a low surrogate", cp);
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        k += utf8_encode(cp, buf + k);
        i += 6;
        continue;
      }
      default: {
        char what[32];
        free(buf);
        return fail(p, i, "invalid escape \\%s in a string", what_at(p, i + 1, what, sizeof what) );
      }
    }
    i += 2;
  }
  buf[k] = 0;
  *out = buf;
  *outlen = k;
  p->pos = end + 1;
  return 0;
}

static int parse_number(jparser *p, mt_json *v) {
  size_t i = p->pos, start = i;
  int integral = 1;
  if (i < p->n && p->s[i] == '-') i++;
  if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, start, "invalid number (expected a digit)");
  if (p->s[i] == '0') {
    i++;
    if (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') return fail(p, start, "invalid number (leading zero)");
  } else {
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
  }
  if (i < p->n && p->s[i] == '.') {
    integral = 0;
    i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, start, "invalid number (expected a digit after '.')");
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
  }
  if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
    integral = 0;
    i++;
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') return fail(p, start, "invalid number (expected a digit in the exponent)");
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') i++;
  }
  size_t len = i - start;
  v->type = MT_JSON_NUMBER;
  if (integral) {
    /* exact int64 when it fits: offsets and shapes must not go through a double */
    int neg = p->s[start] == '-';
    uint64_t acc = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int fits = 1;
    for (size_t j = start + neg; j < i; j++) {
      unsigned d = (unsigned)(p->s[j] - '0');
      if (acc > (limit - d) / 10) { fits = 0; break; }
      acc = acc * 10 + d;
    }
    if (fits) {
      v->is_int = 1;
      v->integer = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
      v->number = (double)v->integer;
      p->pos = i;
      return 0;
    }
  }
  /* strtod needs a NUL-terminated copy, with the locale's decimal point */
  char small[64], *buf = len < sizeof small ? small : malloc(len + 1);
  if (!buf) return fail(p, start, "out of memory");
  memcpy(buf, p->s + start, len);
  buf[len] = 0;
  const char *dp = localeconv()->decimal_point;
  if (dp && dp[0] && dp[0] != '.') {
    char *dot = strchr(buf, '.');
    if (dot) *dot = dp[0];
  }
  v->number = strtod(buf, NULL);
  if (buf != small) free(buf);
  p->pos = i;
  return 0;
}

static int parse_value(jparser *p, mt_json *v);

static int grow(void **ptr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 4;
  while (nc < need) nc *= 2;
  void *q = realloc(*ptr, nc * elem);
  if (!q) return -1;
  *ptr = q;
  *cap = nc;
  return 0;
}

static int parse_array(jparser *p, mt_json *v) {
  size_t open = p->pos, cap = 0;
  v->type = MT_JSON_ARRAY;
  p->pos++;
  skip_ws(p);
  if (p->pos < p->n && p->s[p->pos] == ']') { p->pos++; return 0; }
  for (;;) {
    if (grow((void **)&v->items, &cap, v->len + 1, sizeof *v->items)) return fail(p, p->pos, "out of memory");
    mt_json *item = &v->items[v->len];
    memset(item, 0, sizeof *item);
    v->len++;                       /* counted now so a failure frees what was parsed */
    if (parse_value(p, item)) return -1;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; skip_ws(p); continue; }
    if (p->pos < p->n && p->s[p->pos] == ']') { p->pos++; return 0; }
    char what[32];
    if (p->pos >= p->n) return fail(p, open, "unterminated array");
    return fail(p, p->pos, "expected ',' or ']' in an array, got %s", what_at(p, p->pos, what, sizeof what));
  }
}

static int parse_object(jparser *p, mt_json *v) {
  size_t open = p->pos, cap = 0, kcap = 0, lcap = 0;
  char what[32];
  v->type = MT_JSON_OBJECT;
  p->pos++;
  skip_ws(p);
  if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; return 0; }
  for (;;) {
    if (p->pos >= p->n) return fail(p, open, "unterminated object");
    if (p->s[p->pos] != '"')
      return fail(p, p->pos, "expected a string key in an object, got %s", what_at(p, p->pos, what, sizeof what));
    if (grow((void **)&v->items, &cap, v->len + 1, sizeof *v->items) ||
        grow((void **)&v->keys, &kcap, v->len + 1, sizeof *v->keys) ||
        grow((void **)&v->keylens, &lcap, v->len + 1, sizeof *v->keylens))
      return fail(p, p->pos, "out of memory");
    char *key;
    size_t klen;
    if (parse_string(p, &key, &klen)) return -1;
    mt_json *item = &v->items[v->len];
    memset(item, 0, sizeof *item);
    v->keys[v->len] = key;
    v->keylens[v->len] = klen;
    v->len++;
    skip_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != ':')
      return fail(p, p->pos, "expected ':' after an object key, got %s", what_at(p, p->pos, what, sizeof what));
    p->pos++;
    skip_ws(p);
    if (parse_value(p, item)) return -1;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ',') { p->pos++; skip_ws(p); continue; }
    if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; return 0; }
    if (p->pos >= p->n) return fail(p, open, "unterminated object");
    return fail(p, p->pos, "expected ',' or '}' in an object, got %s", what_at(p, p->pos, what, sizeof what));
  }
}

static int literal(jparser *p, const char *word) {
  size_t n = strlen(word);
  return p->n - p->pos >= n && !memcmp(p->s + p->pos, word, n);
}

static int parse_value(jparser *p, mt_json *v) {
  char what[32];
  if (p->pos >= p->n) return fail(p, p->pos, "expected a value, got end of input");
  char c = p->s[p->pos];
  switch (c) {
    case '{':
    case '[': {
      if (++p->depth > MT_JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than %d levels", MT_JSON_MAX_DEPTH);
      int rc = c == '{' ? parse_object(p, v) : parse_array(p, v);
      p->depth--;
      return rc;
    }
    case '"':
      v->type = MT_JSON_STRING;
      return parse_string(p, &v->str, &v->len);
    case 't':
    case 'f':
      if (literal(p, c == 't' ? "true" : "false")) {
        v->type = MT_JSON_BOOL;
        v->boolean = c == 't';
        p->pos += c == 't' ? 4 : 5;
        return 0;
      }
      break;
    case 'n':
      if (literal(p, "null")) { v->type = MT_JSON_NULL; p->pos += 4; return 0; }
      break;
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
  }
  return fail(p, p->pos, "expected a value, got %s", what_at(p, p->pos, what, sizeof what));
}

mt_json *mt_json_parse(const char *s, size_t n, char *err, size_t errlen) {
  jparser p = {s, n, 0, err, errlen, 0};
  if (err && errlen) err[0] = 0;
  if (!s && n) { fail(&p, 0, "no input"); return NULL; }
  mt_json *root = calloc(1, sizeof *root);
  if (!root) { fail(&p, 0, "out of memory"); return NULL; }
  skip_ws(&p);
  if (parse_value(&p, root)) { mt_json_free(root); return NULL; }
  skip_ws(&p);
  if (p.pos < n) {
    char what[32];
    fail(&p, p.pos, "unexpected %s after the JSON value", what_at(&p, p.pos, what, sizeof what));
    mt_json_free(root);
    return NULL;
  }
  return root;
}

static void free_contents(mt_json *v) {
  if (v->type == MT_JSON_STRING) free(v->str);
  if (v->type == MT_JSON_ARRAY || v->type == MT_JSON_OBJECT) {
    for (size_t i = 0; i < v->len; i++) {
      free_contents(&v->items[i]);
      if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->keylens);
  }
}

void mt_json_free(mt_json *v) {
  if (!v) return;
  free_contents(v);
  free(v);
}

/* ---- accessors ---- */

const char *mt_json_type_name(mt_json_type t) {
  switch (t) {
    case MT_JSON_NULL: return "null";
    case MT_JSON_BOOL: return "boolean";
    case MT_JSON_NUMBER: return "number";
    case MT_JSON_STRING: return "string";
    case MT_JSON_ARRAY: return "array";
    case MT_JSON_OBJECT: return "object";
  }
  return "?";
}

const mt_json *mt_json_get(const mt_json *obj, const char *key) {
  if (!obj || obj->type != MT_JSON_OBJECT || !key) return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i < obj->len; i++)
    if (obj->keylens[i] == kl && !memcmp(obj->keys[i], key, kl)) return &obj->items[i];
  return NULL;
}

const mt_json *mt_json_at(const mt_json *v, size_t i) {
  if (!v || (v->type != MT_JSON_ARRAY && v->type != MT_JSON_OBJECT) || i >= v->len) return NULL;
  return &v->items[i];
}

const char *mt_json_key(const mt_json *obj, size_t i) {
  if (!obj || obj->type != MT_JSON_OBJECT || i >= obj->len) return NULL;
  return obj->keys[i];
}

size_t mt_json_len(const mt_json *v) {
  return v && (v->type == MT_JSON_ARRAY || v->type == MT_JSON_OBJECT) ? v->len : 0;
}

double mt_json_number(const mt_json *v, double def) {
  return v && v->type == MT_JSON_NUMBER ? v->number : def;
}

int mt_json_bool(const mt_json *v, int def) { return v && v->type == MT_JSON_BOOL ? v->boolean : def; }

const char *mt_json_string(const mt_json *v, size_t *len) {
  if (!v || v->type != MT_JSON_STRING) return NULL;
  if (len) *len = v->len;
  return v->str;
}

int mt_json_int(const mt_json *v, int64_t *out) {
  if (!v || v->type != MT_JSON_NUMBER) return -1;
  if (v->is_int) { *out = v->integer; return 0; }
  /* 1e3 or 4.0: integral values written another way are still integers */
  double d = v->number;
  if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) return -1;
  *out = (int64_t)d;
  return 0;
}

double mt_json_get_number(const mt_json *obj, const char *key, double def) {
  return mt_json_number(mt_json_get(obj, key), def);
}
int mt_json_get_bool(const mt_json *obj, const char *key, int def) { return mt_json_bool(mt_json_get(obj, key), def); }
const char *mt_json_get_string(const mt_json *obj, const char *key, const char *def) {
  const char *s = mt_json_string(mt_json_get(obj, key), NULL);
  return s ? s : def;
}

/* ---- writer ---- */

void mt_jbuf_free(mt_jbuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = 0;
}

static int jbuf_reserve(mt_jbuf *b, size_t extra) {
  if (b->failed) return -1;
  if (extra > (size_t)-1 / 2 - b->len) { b->failed = 1; return -1; }
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < need) nc *= 2;
  char *q = realloc(b->data, nc);
  if (!q) { b->failed = 1; return -1; }
  b->data = q;
  b->cap = nc;
  return 0;
}

void mt_jbuf_put(mt_jbuf *b, const char *s, size_t n) {
  if (jbuf_reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = 0;
}

void mt_jbuf_puts(mt_jbuf *b, const char *s) { mt_jbuf_put(b, s, strlen(s)); }

void mt_jbuf_printf(mt_jbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (k < 0 || jbuf_reserve(b, (size_t)k)) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)k;
}

int mt_jbuf_string(mt_jbuf *b, const char *s, size_t n) {
  if (mt_utf8_check(s, n) != n) return -1;
  static const char hexd[] = "0123456789abcdef";
  mt_jbuf_put(b, "\"", 1);
  size_t run = 0;      /* bytes copied as they are, flushed in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default:
        if (c < 0x20) {
          u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
          u[4] = hexd[c >> 4]; u[5] = hexd[c & 15]; u[6] = 0;
          esc = u;
        }
    }
    if (!esc) { run++; continue; }
    mt_jbuf_put(b, s + i - run, run);
    run = 0;
    mt_jbuf_puts(b, esc);
  }
  mt_jbuf_put(b, s + n - run, run);
  mt_jbuf_put(b, "\"", 1);
  return 0;
}

/* printf in the C locale's notation whatever the process locale is */
static void fix_decimal_point(char *buf) {
  const char *dp = localeconv()->decimal_point;
  if (!dp || !dp[0] || (dp[0] == '.' && !dp[1])) return;
  char *q = strstr(buf, dp);
  if (!q) return;
  size_t dl = strlen(dp);
  *q = '.';
  memmove(q + 1, q + dl, strlen(q + dl) + 1);
}

void mt_jbuf_number(mt_jbuf *b, double v) {
  if (!isfinite(v)) { mt_jbuf_puts(b, "null"); return; }
  /* "-0" would read back as the integer 0: the sign of a negative zero needs a fraction */
  if (v == 0 && signbit(v)) { mt_jbuf_puts(b, "-0.0"); return; }
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {   /* exact integers print as such */
    mt_jbuf_printf(b, "%.0f", v);
    return;
  }
  char buf[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;      /* strtod reads the locale's own notation */
  }
  fix_decimal_point(buf);
  mt_jbuf_puts(b, buf);
}

void mt_jbuf_int(mt_jbuf *b, int64_t v) { mt_jbuf_printf(b, "%lld", (long long)v); }

static void write_value(mt_jbuf *b, const mt_json *v) {
  switch (v->type) {
    case MT_JSON_NULL: mt_jbuf_puts(b, "null"); break;
    case MT_JSON_BOOL: mt_jbuf_puts(b, v->boolean ? "true" : "false"); break;
    case MT_JSON_NUMBER:
      if (v->is_int) mt_jbuf_int(b, v->integer);
      else mt_jbuf_number(b, v->number);
      break;
    case MT_JSON_STRING:
      /* parsed strings are valid UTF-8; a hand-built invalid one becomes "" rather than bad JSON */
      if (mt_jbuf_string(b, v->str, v->len)) mt_jbuf_puts(b, "\"\"");
      break;
    case MT_JSON_ARRAY:
    case MT_JSON_OBJECT: {
      int obj = v->type == MT_JSON_OBJECT;
      mt_jbuf_put(b, obj ? "{" : "[", 1);
      for (size_t i = 0; i < v->len; i++) {
        if (i) mt_jbuf_put(b, ",", 1);
        if (obj) {
          if (mt_jbuf_string(b, v->keys[i], v->keylens[i])) mt_jbuf_puts(b, "\"\"");
          mt_jbuf_put(b, ":", 1);
        }
        write_value(b, &v->items[i]);
      }
      mt_jbuf_put(b, obj ? "}" : "]", 1);
      break;
    }
  }
}

int mt_json_write(mt_jbuf *b, const mt_json *v) {
  if (!v) mt_jbuf_puts(b, "null");
  else write_value(b, v);
  return b->failed ? -1 : 0;
}

char *mt_json_dump(const mt_json *v, size_t *len) {
  mt_jbuf b = MT_JBUF_INIT;
  if (mt_json_write(&b, v) || !b.data) { mt_jbuf_free(&b); return NULL; }
  if (len) *len = b.len;
  return b.data;
}
