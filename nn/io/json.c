/* JSON: a strict recursive-descent parser into a tree, a writer of trees
   (compact or indented) and the calls that build a tree. */
#include "io/json.h"
#include <float.h>
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
  int depth;                /* containers around the value being parsed */
} jparser;

/* "<what> at byte N", N counting from 1; a document of several lines also gets
   the line and column, which is what a reader of a results file looks for */
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
  if (k < 0 || (size_t)k >= p->errlen) return -1;
  if (line > 1) snprintf(p->err + k, p->errlen - (size_t)k, " at byte %zu (line %zu, column %zu)", at + 1, line, col);
  else snprintf(p->err + k, p->errlen - (size_t)k, " at byte %zu", at + 1);
  return -1;
}

/* the byte at pos quoted as Lua's %q shows it ("x", "\"", "\n", "\9"), or "end of input" */
static const char *describe(jparser *p, size_t pos, char *buf, size_t n) {
  if (pos >= p->n) return "end of input";
  unsigned char c = (unsigned char)p->s[pos];
  if (c == '"' || c == '\\') snprintf(buf, n, "\"\\%c\"", c);
  else if (c == '\n') snprintf(buf, n, "\"\\n\"");
  else if (c < 0x20 || c == 0x7F) snprintf(buf, n, "\"\\%d\"", c);
  else snprintf(buf, n, "\"%c\"", c);
  return buf;
}

static void skip_ws(jparser *p) {
  while (p->pos < p->n) {
    char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static int is_digit(jparser *p, size_t i) { return i < p->n && p->s[i] >= '0' && p->s[i] <= '9'; }

/* four hex digits at i, or -1 */
static long hex4(jparser *p, size_t i) {
  if (i > p->n || p->n - i < 4) return -1;
  long v = 0;
  for (int k = 0; k < 4; k++) {
    char c = p->s[i + (size_t)k];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* append n bytes to a growing string buffer */
static int sbuf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t nc = *cap ? *cap : 32;
    while (nc < *len + n + 1) nc *= 2;
    char *q = realloc(*buf, nc);
    if (!q) return -1;
    *buf = q;
    *cap = nc;
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  return 0;
}

/* p->pos at the opening quote; on success *out is malloc'd and NUL-terminated.
   Read left to right, so the first problem in the text is the one reported;
   invalid UTF-8 is reported at the closing quote, for the string as a whole. */
static int parse_string(jparser *p, char **out, size_t *outlen) {
  size_t open = p->pos, i = open + 1, len = 0, cap = 0;
  char *buf = NULL;
  int bad_utf8 = 0;
#define STR_FAIL(...) do { free(buf); return fail(p, __VA_ARGS__); } while (0)
#define STR_PUT(s, n) do { if (sbuf_put(&buf, &len, &cap, (s), (n))) STR_FAIL(open, "out of memory in string starting"); } while (0)
  for (;;) {
    /* a run of bytes taken as they are; the delimiters below are never inside a
       UTF-8 sequence, so checking each run checks the decoded string */
    size_t run = i;
    while (run < p->n) {
      unsigned char c = (unsigned char)p->s[run];
      if (c == '"' || c == '\\' || c < 0x20) break;
      run++;
    }
    if (run > i) {
      if (mt_utf8_check(p->s + i, run - i) != run - i) bad_utf8 = 1;
      STR_PUT(p->s + i, run - i);
    }
    if (run >= p->n) STR_FAIL(open, "unterminated string starting");
    char c = p->s[run];
    if (c == '"') {
      if (bad_utf8) STR_FAIL(open, "invalid UTF-8 in string starting");
      STR_PUT("", 0);
      buf[len] = 0;
      *out = buf;
      *outlen = len;
      p->pos = run + 1;
      return 0;
    }
    if (c != '\\') STR_FAIL(run, "control character in string");
    char e = run + 1 < p->n ? p->s[run + 1] : 0;
    const char *plain = NULL;
    switch (e) {
      case '"': plain = "\""; break;
      case '\\': plain = "\\"; break;
      case '/': plain = "/"; break;
      case 'b': plain = "\b"; break;
      case 'f': plain = "\f"; break;
      case 'n': plain = "\n"; break;
      case 'r': plain = "\r"; break;
      case 't': plain = "\t"; break;
    }
    if (plain) {
      STR_PUT(plain, 1);
      i = run + 2;
      continue;
    }
    if (e != 'u') {
      if (run + 1 >= p->n) STR_FAIL(run, "invalid escape \\");
      if ((unsigned char)e < 0x20) STR_FAIL(run, "invalid escape \\ before control character %d", e);
      STR_FAIL(run, "invalid escape \\%c", e);
    }
    const char *written = p->s + run + 2;      /* the hex digits as written, for messages */
    long cp = hex4(p, run + 2);
    if (cp < 0) STR_FAIL(run + 2, "expected 4 hex digits after \\u");
    i = run + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (p->n - i < 2 || p->s[i] != '\\' || p->s[i + 1] != 'u') STR_FAIL(run, "lone high surrogate \\u%.4s", written);
      long lo = hex4(p, i + 2);
      if (lo < 0) STR_FAIL(i + 2, "expected 4 hex digits after \\u");
      if (lo < 0xDC00 || lo > 0xDFFF) STR_FAIL(i, "invalid low surrogate after \\u%.4s", written);
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      i += 6;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      STR_FAIL(run, "lone low surrogate \\u%.4s", written);
    }
    char u[4];
    size_t k = utf8_encode((unsigned long)cp, u);
    STR_PUT(u, k);
  }
#undef STR_PUT
#undef STR_FAIL
}

/* exactly the JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)? */
static int parse_number(jparser *p, mt_json *v) {
  size_t i = p->pos, start = i;
  int integral = 1;
  if (p->s[i] == '-') i++;
  if (i < p->n && p->s[i] == '0') i++;
  else if (i < p->n && p->s[i] >= '1' && p->s[i] <= '9') while (is_digit(p, i)) i++;
  else return fail(p, i, "expected a digit");
  if (i < p->n && p->s[i] == '.') {
    integral = 0;
    i++;
    if (!is_digit(p, i)) return fail(p, i, "expected a digit after '.'");
    while (is_digit(p, i)) i++;
  }
  if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
    integral = 0;
    i++;
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
    if (!is_digit(p, i)) return fail(p, i, "expected a digit in the exponent");
    while (is_digit(p, i)) i++;
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
  size_t cap = 0;
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
    if (p->pos < p->n && p->s[p->pos] == ']') { p->pos++; return 0; }
    if (p->pos >= p->n || p->s[p->pos] != ',') return fail(p, p->pos, "expected ',' or ']'");
    p->pos++;
    skip_ws(p);
  }
}

static int parse_object(jparser *p, mt_json *v) {
  size_t cap = 0, kcap = 0, lcap = 0;
  v->type = MT_JSON_OBJECT;
  p->pos++;
  skip_ws(p);
  if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; return 0; }
  for (;;) {
    if (p->pos >= p->n || p->s[p->pos] != '"') return fail(p, p->pos, "expected a string key");
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
    if (p->pos >= p->n || p->s[p->pos] != ':') return fail(p, p->pos, "expected ':'");
    p->pos++;
    skip_ws(p);
    if (parse_value(p, item)) return -1;
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') { p->pos++; return 0; }
    if (p->pos >= p->n || p->s[p->pos] != ',') return fail(p, p->pos, "expected ',' or '}'");
    p->pos++;
    skip_ws(p);
  }
}

static int literal(jparser *p, const char *word) {
  size_t n = strlen(word);
  return p->n - p->pos >= n && !memcmp(p->s + p->pos, word, n);
}

static int parse_value(jparser *p, mt_json *v) {
  char what[16];
  if (p->depth > MT_JSON_MAX_DEPTH) return fail(p, p->pos, "nesting deeper than %d", MT_JSON_MAX_DEPTH);
  if (p->pos >= p->n) return fail(p, p->pos, "unexpected end of input");
  char c = p->s[p->pos];
  if (c == '{' || c == '[') {
    p->depth++;
    int rc = c == '{' ? parse_object(p, v) : parse_array(p, v);
    p->depth--;
    return rc;
  }
  if (c == '"') {
    v->type = MT_JSON_STRING;
    return parse_string(p, &v->str, &v->len);
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
  if (literal(p, "true") || literal(p, "false")) {
    v->type = MT_JSON_BOOL;
    v->boolean = c == 't';
    p->pos += c == 't' ? 4 : 5;
    return 0;
  }
  if (literal(p, "null")) { v->type = MT_JSON_NULL; p->pos += 4; return 0; }
  return fail(p, p->pos, "unexpected %s", describe(p, p->pos, what, sizeof what));
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
    char what[16];
    fail(&p, p.pos, "unexpected %s after the value", describe(&p, p.pos, what, sizeof what));
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

/* Floats are written so that they read back as the same double and as a float:
   integral values below 2^53 as "%.1f" ("100.0", not "1e+02"); others with the
   fewest significant digits that read back exactly, ".0" added when that text
   would look like an integer. For a normal double the search may start at 15
   digits: a decimal of up to 15 digits survives the trip through a double, so
   a value whose shortest form has p <= 15 digits prints as that same form at
   %.15g; and %.15g picks the same notation as %.pg here (a non-integral value
   has more digits than its exponent, an integral one reaching this loop is at
   least 2^53 > 10^15). Subnormals carry fewer digits (5e-324), so they search
   from 1. */
void mt_jbuf_number(mt_jbuf *b, double v) {
  if (!isfinite(v)) { mt_jbuf_puts(b, "null"); return; }
  char buf[48];
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    for (int prec = fabs(v) >= DBL_MIN ? 15 : 1; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, v);
      if (strtod(buf, NULL) == v) break;      /* strtod reads the locale's own notation */
    }
  }
  fix_decimal_point(buf);
  if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
  mt_jbuf_puts(b, buf);
}

void mt_jbuf_int(mt_jbuf *b, int64_t v) { mt_jbuf_printf(b, "%lld", (long long)v); }

static void put_indent(mt_jbuf *b, const char *indent, int level) {
  mt_jbuf_put(b, "\n", 1);
  for (int i = 0; i < level; i++) mt_jbuf_puts(b, indent);
}

static int is_container(const mt_json *v) { return v->type == MT_JSON_ARRAY || v->type == MT_JSON_OBJECT; }

static void write_value(mt_jbuf *b, const mt_json *v, const char *indent, int level) {
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
    case MT_JSON_ARRAY: {
      if (!v->len) { mt_jbuf_puts(b, "[]"); break; }
      /* an array of scalars stays on one line when indenting: vectors read better so */
      int flat = 1;
      for (size_t i = 0; indent && i < v->len && flat; i++) flat = !is_container(&v->items[i]);
      mt_jbuf_put(b, "[", 1);
      for (size_t i = 0; i < v->len; i++) {
        if (i) mt_jbuf_puts(b, indent && flat ? ", " : ",");
        if (!flat) put_indent(b, indent, level + 1);
        write_value(b, &v->items[i], indent, level + 1);
      }
      if (!flat) put_indent(b, indent, level);
      mt_jbuf_put(b, "]", 1);
      break;
    }
    case MT_JSON_OBJECT: {
      if (!v->len) { mt_jbuf_puts(b, "{}"); break; }
      mt_jbuf_put(b, "{", 1);
      for (size_t i = 0; i < v->len; i++) {
        if (i) mt_jbuf_put(b, ",", 1);
        if (indent) put_indent(b, indent, level + 1);
        if (!v->keys[i] || mt_jbuf_string(b, v->keys[i], v->keylens[i])) mt_jbuf_puts(b, "\"\"");
        mt_jbuf_puts(b, indent ? ": " : ":");
        write_value(b, &v->items[i], indent, level + 1);
      }
      if (indent) put_indent(b, indent, level);
      mt_jbuf_put(b, "}", 1);
      break;
    }
  }
}

int mt_json_write_indented(mt_jbuf *b, const mt_json *v, const char *indent) {
  if (indent && !*indent) indent = NULL;
  if (!v) mt_jbuf_puts(b, "null");
  else write_value(b, v, indent, 0);
  return b->failed ? -1 : 0;
}

int mt_json_write(mt_jbuf *b, const mt_json *v) { return mt_json_write_indented(b, v, NULL); }

char *mt_json_dump(const mt_json *v, size_t *len) {
  mt_jbuf b = MT_JBUF_INIT;
  if (mt_json_write(&b, v) || !b.data) { mt_jbuf_free(&b); return NULL; }
  if (len) *len = b.len;
  return b.data;
}

/* ---- building ---- */

mt_json *mt_json_new(void) { return calloc(1, sizeof(mt_json)); }

int mt_json_set_array(mt_json *v, size_t n) {
  mt_json *items = n ? calloc(n, sizeof *items) : NULL;
  if (n && !items) return -1;
  v->type = MT_JSON_ARRAY;
  v->items = items;
  v->len = n;
  return 0;
}

int mt_json_set_object(mt_json *v, size_t n) {
  if (!n) { v->type = MT_JSON_OBJECT; return 0; }
  mt_json *items = calloc(n, sizeof *items);
  char **keys = calloc(n, sizeof *keys);
  size_t *keylens = calloc(n, sizeof *keylens);
  if (!items || !keys || !keylens) { free(items); free(keys); free(keylens); return -1; }
  v->type = MT_JSON_OBJECT;
  v->items = items;
  v->keys = keys;
  v->keylens = keylens;
  v->len = n;
  return 0;
}

static char *copy_bytes(const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (!c) return NULL;
  if (n) memcpy(c, s, n);
  c[n] = 0;
  return c;
}

int mt_json_set_key(mt_json *obj, size_t i, const char *k, size_t n) {
  char *c = copy_bytes(k, n);
  if (!c) return -1;
  free(obj->keys[i]);
  obj->keys[i] = c;
  obj->keylens[i] = n;
  return 0;
}

int mt_json_set_string(mt_json *v, const char *s, size_t n) {
  char *c = copy_bytes(s, n);
  if (!c) return -1;
  v->type = MT_JSON_STRING;
  v->str = c;
  v->len = n;
  return 0;
}

void mt_json_set_int(mt_json *v, int64_t x) {
  v->type = MT_JSON_NUMBER;
  v->is_int = 1;
  v->integer = x;
  v->number = (double)x;
}

void mt_json_set_number(mt_json *v, double x) {
  v->type = MT_JSON_NUMBER;
  v->is_int = 0;
  v->number = x;
}

void mt_json_set_bool(mt_json *v, int x) {
  v->type = MT_JSON_BOOL;
  v->boolean = !!x;
}
