/* nn/io/json and nn/io/safetensors: JSON parsing and writing, round trips, dtype
   conversion from hand-built files, every validation error, and a fuzz loop
   over corrupted files (run it under -fsanitize=address,undefined too). */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tap.h"
#include "io/json.h"
#include "core/ops.h"
#include "io/safetensors.h"

static char dir[256];

static const char *P(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int has(const char *msg, const char *part) { return msg && strstr(msg, part) != NULL; }

/* ---------------------------------------------------------------- JSON */

static mt_json *J(const char *s, char *err) { return mt_json_parse(s, strlen(s), err, 200); }

static void json_error(const char *text, const char *part) {
  char err[200];
  mt_json *v = J(text, err);
  char shown[64];
  size_t k = 0;
  for (const char *c = text; *c && k < 40; c++) {      /* one TAP line: show control bytes escaped */
    if ((unsigned char)*c < 0x20) k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02X", *c);
    else shown[k++] = *c;
  }
  shown[k] = 0;
  tap_ok(!v && has(err, part), "json: %s -> error mentioning '%s' (%s)", shown, part, err);
  mt_json_free(v);
}

static void test_json(void) {
  char err[200];
  mt_json *v = J(" {\"a\": [1, -2.5e3, true, false, null, {\"b\": \"c\"}], \"n\": 0, \"big\": 12345678901234567890,"
                 " \"neg\": -9223372036854775808, \"f\": 0.1} ", err);
  tap_ok(v && v->type == MT_JSON_OBJECT && mt_json_len(v) == 5, "json: nested document parses (%s)", err);
  const mt_json *a = mt_json_get(v, "a");
  tap_ok(a && a->type == MT_JSON_ARRAY && mt_json_len(a) == 6, "json: array of 6");
  int64_t i;
  tap_ok(!mt_json_int(mt_json_at(a, 0), &i) && i == 1, "json: integer 1");
  tap_ok(mt_json_number(mt_json_at(a, 1), 0) == -2500.0, "json: -2.5e3");
  tap_ok(!mt_json_int(mt_json_at(a, 1), &i) && i == -2500, "json: -2.5e3 is an integral value");
  tap_ok(mt_json_bool(mt_json_at(a, 2), 0) == 1 && mt_json_bool(mt_json_at(a, 3), 1) == 0, "json: true, false");
  tap_ok(mt_json_at(a, 4)->type == MT_JSON_NULL, "json: null");
  tap_ok(!strcmp(mt_json_get_string(mt_json_at(a, 5), "b", "?"), "c"), "json: nested object string");
  tap_ok(mt_json_at(a, 6) == NULL && mt_json_get(v, "zzz") == NULL && mt_json_get(a, "b") == NULL,
         "json: missing lookups give NULL");
  const mt_json *big = mt_json_get(v, "big");
  tap_ok(big && !big->is_int && big->number > 1.2e19, "json: integer beyond int64 becomes a double");
  tap_ok(!mt_json_int(mt_json_get(v, "neg"), &i) && i == INT64_MIN, "json: INT64_MIN exact");
  tap_ok(mt_json_get_number(v, "f", 0) == 0.1, "json: 0.1");
  tap_ok(!strcmp(mt_json_key(v, 1), "n"), "json: keys in order");
  mt_json_free(v);

  /* escapes */
  const char *esc = "\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\u20AC \\ud83d\\ude00 \\u0000z\"";
  v = J(esc, err);
  static const char want[] = "q\" b\\ s/ \b\f\n\r\t \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \0z";
  size_t wl = sizeof want - 1;
  size_t got;
  const char *s = mt_json_string(v, &got);
  tap_ok(s && got == wl && !memcmp(s, want, wl), "json: escapes incl. surrogate pair and \\u0000 decode (%zu bytes)", got);
  /* writer: escaping and reparse */
  mt_jbuf b = MT_JBUF_INIT;
  tap_ok(mt_jbuf_string(&b, want, wl) == 0, "json: writer accepts valid UTF-8");
  tap_ok(has(b.data, "\\\"") && has(b.data, "\\\\") && has(b.data, "\\n") && has(b.data, "\\u0000") &&
         has(b.data, "\\b") && has(b.data, "\\t"), "json: writer escapes quotes, backslashes, controls: %s", b.data);
  mt_json *back = mt_json_parse(b.data, b.len, err, sizeof err);
  s = mt_json_string(back, &got);
  tap_ok(s && got == wl && !memcmp(s, want, wl), "json: written string parses back identically");
  mt_json_free(back);
  mt_jbuf_free(&b);
  mt_json_free(v);
  tap_ok(mt_jbuf_string(&b, "a\xFF", 2) == -1 && b.len == 0, "json: writer refuses invalid UTF-8");
  mt_jbuf_free(&b);

  /* numbers round trip through the writer */
  double nums[] = {0.1, 1.0 / 3, -1e-300, 6.02214076e23, 3.0, -0.5, 1e21, 123456789.125};
  int all = 1;
  for (size_t k = 0; k < sizeof nums / sizeof *nums; k++) {
    mt_jbuf nb = MT_JBUF_INIT;
    mt_jbuf_number(&nb, nums[k]);
    mt_json *nv = mt_json_parse(nb.data, nb.len, err, sizeof err);
    if (!nv || nv->number != nums[k]) { all = 0; printf("# %.17g -> %s\n", nums[k], nb.data); }
    mt_json_free(nv);
    mt_jbuf_free(&nb);
  }
  tap_ok(all, "json: numbers written read back exactly");
  mt_jbuf nb = MT_JBUF_INIT;
  mt_jbuf_number(&nb, NAN);
  tap_ok(!strcmp(nb.data, "null"), "json: NaN written as null");
  mt_jbuf_free(&nb);

  /* whole-tree dump and reparse */
  const char *doc = "{\"x\":[1,2.5,\"a\\nb\",{\"y\":null,\"z\":[true,false]}],\"e\":{},\"f\":[]}";
  v = J(doc, err);
  char *d = mt_json_dump(v, NULL);
  tap_ok(d && !strcmp(d, doc), "json: dump reproduces compact text (%s)", d ? d : "NULL");
  free(d);
  mt_json_free(v);

  /* errors */
  json_error("", "unexpected end of input at byte 1");
  json_error("{\"a\":1,}", "expected a string key at byte 8");
  json_error("[1,2,]", "unexpected \"]\" at byte 6");
  json_error("[1 2]", "expected ',' or ']' at byte 4");
  json_error("{\"a\" 1}", "expected ':' at byte 6");
  json_error("{\"a\":1", "expected ',' or '}' at byte 7");
  json_error("[1", "expected ',' or ']' at byte 3");
  json_error("\"abc", "unterminated string starting at byte 1");
  json_error("\"a\\x\"", "invalid escape \\x at byte 3");
  json_error("\"\\u12G4\"", "expected 4 hex digits after \\u at byte 4");
  json_error("\"\\ud83d\"", "lone high surrogate \\ud83d at byte 2");
  json_error("\"\\ude00\"", "lone low surrogate \\ude00 at byte 2");
  json_error("\"a\tb\"", "control character in string at byte 3");
  json_error("\"\xC3(\"", "invalid UTF-8 in string starting at byte 1");
  json_error("\"\xED\xA0\x80\"", "invalid UTF-8");
  json_error("01", "unexpected \"1\" after the value at byte 2");
  json_error("1.", "expected a digit after '.' at byte 3");
  json_error("1e", "expected a digit in the exponent at byte 3");
  json_error("-", "expected a digit at byte 2");
  json_error("tru", "unexpected \"t\" at byte 1");
  json_error("NaN", "unexpected \"N\" at byte 1");
  json_error("{} x", "unexpected \"x\" after the value at byte 4");
  json_error("[1,\n  oops]", "unexpected \"o\" at byte 7 (line 2, column 3)");
  char deep[1200];
  memset(deep, '[', 600);
  deep[600] = 0;
  json_error(deep, "nesting deeper than 512");
  /* MT_JSON_MAX_DEPTH arrays around a value: 513 nested empty arrays are the most */
  memset(deep, '[', 513);
  memset(deep + 513, ']', 513);
  deep[1026] = 0;
  v = J(deep, err);
  tap_ok(v != NULL, "json: 513 nested arrays are fine (%s)", err);
  mt_json_free(v);
  memset(deep, '[', 514);
  memset(deep + 514, ']', 514);
  deep[1028] = 0;
  json_error(deep, "nesting deeper than 512 at byte 514");
  memset(deep, '[', 513);
  deep[513] = '1';
  memset(deep + 514, ']', 513);
  deep[1027] = 0;
  json_error(deep, "nesting deeper than 512 at byte 514");

  /* the writer: floats stay floats, indentation keeps arrays of scalars on a line */
  struct { double x; const char *text; } fl[] = {
    {2.0, "2.0"}, {100.0, "100.0"}, {-0.0, "-0.0"}, {0.1, "0.1"}, {1e20, "1e+20"}, {1e-7, "1e-07"},
    {0.1 + 0.2, "0.30000000000000004"}, {9007199254740992.0, "9007199254740992.0"},
    {9007199254740994.0, "9007199254740994.0"}, {1.5e300, "1.5e+300"}, {INFINITY, "null"}};
  for (size_t k = 0; k < sizeof fl / sizeof *fl; k++) {
    mt_jbuf fb = MT_JBUF_INIT;
    mt_jbuf_number(&fb, fl[k].x);
    tap_ok(fb.data && !strcmp(fb.data, fl[k].text), "json: float %.17g written as %s (got %s)", fl[k].x, fl[k].text,
           fb.data ? fb.data : "NULL");
    mt_jbuf_free(&fb);
  }
  v = J("{\"b\":[1,2.5,\"x\"],\"a\":{\"c\":[[],{}],\"d\":null},\"e\":{},\"f\":[]}", err);
  mt_jbuf ib = MT_JBUF_INIT;
  tap_ok(v && mt_json_write_indented(&ib, v, "  ") == 0 &&
         !strcmp(ib.data, "{\n  \"b\": [1, 2.5, \"x\"],\n  \"a\": {\n    \"c\": [\n      [],\n      {}\n    ],\n"
                          "    \"d\": null\n  },\n  \"e\": {},\n  \"f\": []\n}"),
         "json: indented writing (%s)", ib.data ? ib.data : "NULL");
  mt_jbuf_free(&ib);
  mt_json_free(v);

  /* a tree built by hand writes as the same text a parse of that text gives */
  mt_json *t = mt_json_new();
  int ok = t && !mt_json_set_object(t, 3) && !mt_json_set_key(t, 0, "n", 1) && !mt_json_set_key(t, 1, "x", 1);
  if (ok) {
    mt_json_set_int(&t->items[0], -7);
    ok = !mt_json_set_array(&t->items[1], 3) && !mt_json_set_string(&t->items[1].items[2], "q\"\n", 3);
  }
  if (ok) {
    mt_json_set_number(&t->items[1].items[0], 3.0);
    mt_json_set_bool(&t->items[1].items[1], 1);
  }
  char *bt = ok ? mt_json_dump(t, NULL) : NULL;
  tap_ok(bt && !strcmp(bt, "{\"n\":-7,\"x\":[3.0,true,\"q\\\"\\n\"],\"\":null}"),
         "json: a built tree writes back (%s; an unset key is \"\", an unset value null)", bt ? bt : "NULL");
  free(bt);
  mt_json_free(t);

  /* fuzz the parser on mutations of a document */
  uint64_t st = 12345;
  int crashes_would_show = 1;
  for (int it = 0; it < 20000; it++) {
    char buf[128];
    size_t n = strlen(doc);
    memcpy(buf, doc, n);
    int muts = 1 + (int)((st >> 33) % 4);
    for (int m = 0; m < muts; m++) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      buf[(st >> 33) % n] = (char)(st >> 20);
    }
    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    if ((st >> 40) % 3 == 0) n = (st >> 20) % n;
    mt_json *fv = mt_json_parse(buf, n, err, sizeof err);
    if (fv) { char *dd = mt_json_dump(fv, NULL); free(dd); }
    mt_json_free(fv);
  }
  tap_ok(crashes_would_show, "json: 20000 mutated documents parse or fail cleanly");
}

/* ---------------------------------------------------------------- round trips */

static int bits_equal(const mt_tensor *a, const mt_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++) if (a->shape[d] != b->shape[d]) return 0;
  int64_t n = mt_numel(a), idx[MT_MAXDIM] = {0};
  for (int64_t k = 0; k < n; k++) {
    int64_t oa = a->offset, ob = b->offset;
    for (int d = 0; d < a->ndim; d++) { oa += idx[d] * a->stride[d]; ob += idx[d] * b->stride[d]; }
    if (memcmp((char *)a->storage->data + oa * 4, (char *)b->storage->data + ob * 4, 4)) return 0;
    for (int d = a->ndim - 1; d >= 0; d--) { if (++idx[d] < a->shape[d]) break; idx[d] = 0; }
  }
  return 1;
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)sz + 1);
  *n = fread(buf, 1, (size_t)sz, f);
  fclose(f);
  return buf;
}

static int no_temp_files(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int ok = 1;
  while ((e = readdir(d))) if (strstr(e->d_name, ".tmp.")) ok = 0;
  closedir(d);
  return ok;
}

static void save_err(int rc, const char *part, const char *what) {
  tap_ok(rc == -1 && has(mt_error(), part) && has(mt_error(), "save: "), "save error: %s (%s)", what, mt_error());
}

static void test_roundtrip(void) {
  mt_seed(7);
  int64_t s34[] = {3, 4}, s0[] = {0, 3}, s5[] = {5};
  mt_tensor *a = mt_randn(2, s34);
  mt_tensor *at = mt_transpose(a, 0, 1);          /* [4,3] non-contiguous view */
  mt_tensor *nar = mt_narrow(a, 1, 1, 2);          /* [3,2] with a gap in each row */
  mt_tensor *sc = mt_scalar(MT_F32, -1.5);
  mt_tensor *em = mt_empty(MT_F32, 2, s0);
  mt_tensor *ii = mt_arange(-2, 3, 1, MT_I32);
  mt_tensor *big = mt_full(MT_I32, 1, s5, 2147483647.0);
  ((float *)a->storage->data)[0] = NAN;            /* NaN and -0 must survive bit for bit */
  ((float *)a->storage->data)[1] = -0.0f;
  tap_ok(at && !mt_is_contiguous(at) && nar && !mt_is_contiguous(nar), "round trip: views are non-contiguous");
  const char *names[] = {"a", "a.T", "narrow", "scalar", "empty", "ints", "big"};
  mt_tensor *ts[] = {a, at, nar, sc, em, ii, big};
  const char *keys[] = {"note", "format", "quote\"key", "config"};
  const char *vals[] = {"hi \xE2\x82\xAC\n", "pt", "back\\slash", "{\"n_layers\": 2}"};
  int rc = mt_st_save(P("rt.safetensors"), 7, names, ts, 4, keys, vals);
  tap_ok(rc == 0, "save: 7 tensors (%s)", rc ? mt_error() : "ok");
  tap_ok(no_temp_files(), "save: no temporary file left behind");
  mt_st_file *f = mt_st_load(P("rt.safetensors"));
  tap_ok(f && f->n == 7, "load: 7 tensors back (%s)", f ? "ok" : mt_error());
  if (!f) return;
  int order = 1, same = 1;
  for (int i = 0; i < 7; i++) {
    if (strcmp(f->names[i], names[i])) order = 0;
    mt_tensor *t = mt_st_get(f, names[i]);
    if (!t || !bits_equal(t, ts[i])) { same = 0; printf("# tensor %s differs\n", names[i]); }
  }
  tap_ok(order, "load: header order is the order written");
  tap_ok(same, "load: every tensor bit-exact (NaN, -0, views, 0-d, empty, int32 extremes)");
  mt_tensor *t = mt_st_get(f, "scalar");
  tap_ok(t && t->ndim == 0 && mt_numel(t) == 1, "load: 0-d stays 0-d");
  t = mt_st_get(f, "empty");
  tap_ok(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3, "load: empty [0,3] keeps its shape");
  tap_ok(mt_st_get(f, "ints")->dtype == MT_I32 && mt_st_get(f, "a")->dtype == MT_F32, "load: dtypes kept");
  tap_ok(f->nmeta == 4 && !strcmp(f->meta_keys[0], "format") && !strcmp(mt_st_meta(f, "format"), "pt"),
         "metadata: format=pt comes first, given once");
  int mok = 1;
  for (int i = 0; i < 4; i++) if (!mt_st_meta(f, keys[i]) || strcmp(mt_st_meta(f, keys[i]), vals[i])) mok = 0;
  tap_ok(mok, "metadata: values with escapes and UTF-8 round trip");
  tap_ok(mt_st_meta(f, "nope") == NULL && mt_st_get(f, "nope") == NULL, "lookups of absent names give NULL");
  mt_st_free(f);

  /* file layout: header padded with spaces to 8, offsets contiguous */
  size_t n;
  unsigned char *buf = slurp(P("rt.safetensors"), &n);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
  tap_ok(hl % 8 == 0 && buf[8] == '{' && (buf[8 + hl - 1] == ' ' || buf[8 + hl - 1] == '}'),
         "layout: header is padded to a multiple of 8");
  uint64_t datasz = 4 * (12 + 12 + 6 + 1 + 0 + 5 + 5);
  tap_ok(n == 8 + hl + datasz, "layout: file is 8 + header + %llu data bytes", (unsigned long long)datasz);
  tap_ok(has((char *)buf + 8, "\"format\":\"pt\""), "layout: header has \"format\":\"pt\"");
  free(buf);

  /* nothing but metadata; then overwrite an existing file */
  tap_ok(mt_st_save(P("meta.safetensors"), 0, NULL, NULL, 0, NULL, NULL) == 0, "save: no tensors, no metadata");
  f = mt_st_load(P("meta.safetensors"));
  tap_ok(f && f->n == 0 && f->nmeta == 1 && !strcmp(mt_st_meta(f, "format"), "pt"), "load: only format=pt");
  mt_st_free(f);
  tap_ok(mt_st_save(P("meta.safetensors"), 1, names, ts, 0, NULL, NULL) == 0, "save: overwrite in place");
  f = mt_st_load(P("meta.safetensors"));
  tap_ok(f && f->n == 1 && bits_equal(f->tensors[0], a), "load: the overwritten file has the new content");
  mt_st_free(f);

  /* save errors */
  const char *dn[] = {"x", "x"};
  mt_tensor *dt[] = {a, a};
  save_err(mt_st_save(P("e.safetensors"), 2, dn, dt, 0, NULL, NULL), "given twice", "duplicate names");
  const char *rn[] = {"__metadata__"};
  save_err(mt_st_save(P("e.safetensors"), 1, rn, dt, 0, NULL, NULL), "reserved", "__metadata__ as a name");
  const char *bn[] = {"bad\xFF"};
  save_err(mt_st_save(P("e.safetensors"), 1, bn, dt, 0, NULL, NULL), "'bad\\xFF' is not valid UTF-8",
           "invalid UTF-8 name");
  const char *fk[] = {"format"}, *fv[] = {"np"};
  save_err(mt_st_save(P("e.safetensors"), 1, names, dt, 1, fk, fv), "\"format\" must be \"pt\"", "format np");
  const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
  save_err(mt_st_save(P("e.safetensors"), 1, names, dt, 2, mk, mv), "metadata key 'k' is given twice", "duplicate metadata");
  save_err(mt_st_save(P("no/such/dir/x.safetensors"), 1, names, dt, 0, NULL, NULL),
           "no/such/dir/x.safetensors.tmp.", "missing directory (names the file)");
  save_err(mt_st_save(P("no/such/dir/x.safetensors"), 1, names, dt, 0, NULL, NULL), "No such file or directory",
           "missing directory (gives strerror)");
  mkdir(P("adir"), 0755);
  save_err(mt_st_save(P("adir"), 1, names, dt, 0, NULL, NULL), "rename", "rename onto a directory");
  tap_ok(no_temp_files(), "save: the temporary file was removed after the failure");
  tap_ok(access(P("e.safetensors"), F_OK) != 0, "save: failed saves created no file");

  mt_unref(a); mt_unref(at); mt_unref(nar); mt_unref(sc); mt_unref(em); mt_unref(ii); mt_unref(big);
}

/* ---------------------------------------------------------------- hand-built files */

typedef struct { unsigned char *p; size_t n; } bytes;

/* 8-byte length + header (unpadded, as given) + data */
static bytes mkfile(const char *hdr, const void *data, size_t dn) {
  size_t hl = strlen(hdr);
  bytes b = {malloc(8 + hl + dn + 1), 8 + hl + dn};
  for (int i = 0; i < 8; i++) b.p[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b.p + 8, hdr, hl);
  if (dn) memcpy(b.p + 8 + hl, data, dn);
  return b;
}

static mt_st_file *load_bytes(bytes b) {
  mt_st_file *f = mt_st_load_mem("x.safetensors", b.p, b.n);
  free(b.p);
  return f;
}

static void test_conversions(void) {
  /* F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), 2^-14 (smallest normal), inf, -0 */
  uint16_t h[] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x0400, 0x7C00, 0x8000, 0x0200};
  float hw[] = {1, -2, 0.5f, 65504, 5.9604644775390625e-8f, 6.103515625e-5f, INFINITY, -0.0f, 3.0517578125e-5f};
  mt_st_file *f = load_bytes(mkfile("{\"h\":{\"dtype\":\"F16\",\"shape\":[9],\"data_offsets\":[0,18]}}", h, sizeof h));
  int ok = f && f->n == 1 && f->tensors[0]->dtype == MT_F32;
  for (int i = 0; ok && i < 9; i++) {
    float g = mt_f32(f->tensors[0])[i];
    if (memcmp(&g, &hw[i], 4)) { ok = 0; printf("# F16 %d: %g vs %g\n", i, g, hw[i]); }
  }
  tap_ok(ok, "F16 -> float32 exact, incl. subnormals, inf, -0 (%s)", f ? "ok" : mt_error());
  mt_st_free(f);
  uint16_t nanh = 0x7E00;
  f = load_bytes(mkfile("{\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}", &nanh, 2));
  tap_ok(f && isnan(mt_f32(f->tensors[0])[0]) && f->tensors[0]->ndim == 0, "F16 NaN -> NaN, 0-d");
  mt_st_free(f);

  uint16_t bf[] = {0x3F80, 0xC040, 0x4049, 0x0000};     /* 1, -3, 3.140625, 0 */
  float bw[] = {1, -3, 3.140625f, 0};
  f = load_bytes(mkfile("{\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", bf, sizeof bf));
  ok = f && f->tensors[0]->ndim == 2;
  for (int i = 0; ok && i < 4; i++) if (mt_f32(f->tensors[0])[i] != bw[i]) ok = 0;
  tap_ok(ok, "BF16 -> float32 exact");
  mt_st_free(f);

  double dv[] = {0.1, -1e10, 1e300, 3.5};
  f = load_bytes(mkfile("{\"d\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[0,32]}}", dv, sizeof dv));
  ok = f != NULL;
  for (int i = 0; ok && i < 4; i++) if (mt_f32(f->tensors[0])[i] != (float)dv[i]) ok = 0;
  tap_ok(ok && isinf(mt_f32(f->tensors[0])[2]), "F64 -> float32 rounded (1e300 -> inf)");
  mt_st_free(f);

  int64_t iv[] = {0, -1, 2147483647, -2147483648LL, 42};
  f = load_bytes(mkfile("{\"i\":{\"dtype\":\"I64\",\"shape\":[5],\"data_offsets\":[0,40]}}", iv, sizeof iv));
  ok = f && f->tensors[0]->dtype == MT_I32;
  for (int i = 0; ok && i < 5; i++) if (mt_i32(f->tensors[0])[i] != iv[i]) ok = 0;
  tap_ok(ok, "I64 -> int32 incl. both int32 extremes");
  mt_st_free(f);
  int64_t over[] = {1, 2147483648LL};
  f = load_bytes(mkfile("{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", over, sizeof over));
  tap_ok(!f && has(mt_error(), "'ids'") && has(mt_error(), "2147483648") && has(mt_error(), "does not fit int32"),
         "I64 out of int32 range is an error (%s)", mt_error());

  int16_t sv[] = {-32768, 7};
  int8_t cv[] = {-128, 127};
  uint8_t uv[] = {255, 0};
  uint8_t bv[] = {0, 1, 2};
  uint32_t u32[] = {4000000000u};
  unsigned char mix[4 + 2 + 2 + 3 + 4];
  memcpy(mix, sv, 4); memcpy(mix + 4, cv, 2); memcpy(mix + 6, uv, 2); memcpy(mix + 8, bv, 3); memcpy(mix + 11, u32, 4);
  f = load_bytes(mkfile("{\"s\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                        "\"c\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                        "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]},"
                        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[8,11]}}", mix, 11));
  ok = f && f->n == 4;
  if (ok) {
    int32_t *s = mt_i32(mt_st_get(f, "s")), *c = mt_i32(mt_st_get(f, "c")), *u = mt_i32(mt_st_get(f, "u")),
            *bb = mt_i32(mt_st_get(f, "b"));
    ok = s[0] == -32768 && s[1] == 7 && c[0] == -128 && c[1] == 127 && u[0] == 255 && u[1] == 0 && bb[0] == 0 &&
         bb[1] == 1 && bb[2] == 1;
  }
  tap_ok(ok, "I16, I8, U8, BOOL -> int32 (%s)", f ? "ok" : mt_error());
  mt_st_free(f);
  f = load_bytes(mkfile("{\"w\":{\"dtype\":\"U32\",\"shape\":[1],\"data_offsets\":[0,4]}}", mix + 11, 4));
  tap_ok(!f && has(mt_error(), "4000000000"), "U32 beyond int32 is an error");

  /* header padding, extra fields, gaps and trailing bytes are accepted */
  float fv[] = {1, 2, 3};
  f = load_bytes(mkfile("{\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12],"
                        "\"extra\":[1]}}        ", fv, sizeof fv));
  tap_ok(f && mt_f32(f->tensors[0])[0] == 2 && mt_f32(f->tensors[0])[1] == 3 && !strcmp(mt_st_meta(f, "k"), "v"),
         "padding, unknown fields and a gap before the data are accepted");
  mt_st_free(f);
  f = load_bytes(mkfile("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                        "\"y\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", fv, sizeof fv));
  tap_ok(f && f->n == 2, "an empty tensor inside another's range overlaps nothing");
  mt_st_free(f);
}

/* ---------------------------------------------------------------- validation errors */

static void bad(const char *hdr, size_t dn, const char *part, const char *what) {
  static unsigned char zeros[256];
  mt_st_file *f = load_bytes(mkfile(hdr, zeros, dn));
  tap_ok(!f && has(mt_error(), part) && has(mt_error(), "load: x.safetensors: "), "error: %s (%s)", what, mt_error());
  mt_st_free(f);
}

static void test_errors(void) {
  /* file level */
  mt_st_file *f = mt_st_load(P("missing.safetensors"));
  tap_ok(!f && has(mt_error(), "missing.safetensors") && has(mt_error(), "No such file"),
         "error: missing file names the file and strerror (%s)", mt_error());
  f = mt_st_load(dir);
  tap_ok(!f && has(mt_error(), "directory"), "error: a directory is not a file (%s)", mt_error());
  FILE *fp = fopen(P("short.safetensors"), "wb");
  fwrite("\x10\0\0", 1, 3, fp);
  fclose(fp);
  f = mt_st_load(P("short.safetensors"));
  tap_ok(!f && has(mt_error(), "file too short (3 bytes"), "error: file shorter than 8 bytes (%s)", mt_error());
  unsigned char hb[20] = {0xD2, 0x04};           /* says 1234 */
  f = mt_st_load_mem("x.safetensors", hb, sizeof hb);
  tap_ok(!f && has(mt_error(), "truncated file (header says 1234 bytes"), "error: header past the end (%s)", mt_error());
  unsigned char huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80};
  f = mt_st_load_mem("x.safetensors", huge, sizeof huge);
  tap_ok(!f && has(mt_error(), "truncated file"), "error: absurd header length");
  /* over 100 MB but within the file: use a sparse file so the test stays cheap */
  fp = fopen(P("bighdr.safetensors"), "wb");
  uint64_t hl = 100000001;
  fwrite(&hl, 8, 1, fp);
  fclose(fp);
  if (truncate(P("bighdr.safetensors"), 8 + 100000001 + 8) == 0) {
    f = mt_st_load(P("bighdr.safetensors"));
    tap_ok(!f && has(mt_error(), "over the 100000000-byte limit"), "error: header over 100 MB (%s)", mt_error());
  } else tap_ok(1, "# SKIP cannot make a sparse file");
  unlink(P("bighdr.safetensors"));

  /* header level */
  bad("", 0, "header is not valid JSON", "empty header");
  bad("{\"a\":", 0, "header is not valid JSON", "cut JSON");
  bad("[1,2]", 0, "header is an array", "header not an object");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
      "\"data_offsets\":[4,8]}}", 8, "appears twice", "duplicate tensor name");
  bad("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "NUL", "NUL in a name");
  bad("{\"__metadata__\":[1]}", 0, "\"__metadata__\" is an array", "metadata not an object");
  bad("{\"__metadata__\":{\"n\":3}}", 0, "value for 'n' is a number", "metadata value not a string");
  bad("{\"__metadata__\":{\"n\":\"a\",\"n\":\"b\"}}", 0, "key 'n' appears twice", "duplicate metadata key");
  bad("{\"t\":5}", 0, "tensor 't' is described by a number", "entry not an object");
  bad("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 't' has no \"dtype\"", "missing dtype");
  bad("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "has no \"shape\"", "missing shape");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "has no \"data_offsets\"", "missing data_offsets");
  bad("{\"t\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" is a number", "dtype not a string");
  bad("{\"t\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "unsupported dtype \"F8_E4M3\"",
      "unknown dtype");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, "\"shape\" is a number", "shape not array");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,-2],\"data_offsets\":[0,4]}}", 4, "shape entry 2 is not a non-negative",
      "negative shape entry");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape entry 1", "fractional shape");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape entry 1", "string shape");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dims",
      "too many dims");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,4]}}", 4,
      "impossibly large", "shape product overflow");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "must be [begin, end]", "one offset");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4, "must be [begin, end]", "offsets object");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "non-negative", "negative offset");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 4, "must be [begin, end]",
      "offset beyond int64");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4, "end before they begin", "begin > end");
  bad("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "run past the end of the data section (4",
      "offsets past the data");
  bad("{\"blocks.0.attn.W_Q\":{\"dtype\":\"F32\",\"shape\":[4,8,16],\"data_offsets\":[0,100]}}", 100,
      "tensor 'blocks.0.attn.W_Q' data_offsets [0, 100] do not match shape [4,8,16] of F32 (2048 bytes)",
      "size mismatch");
  bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "of F16 (6 bytes)", "F16 size mismatch");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
      "\"data_offsets\":[4,12]}}", 12, "overlap", "overlapping tensors");
}

/* ---------------------------------------------------------------- fuzz */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return rng;
}

static void test_fuzz(void) {
  size_t n;
  unsigned char *orig = slurp(P("rt.safetensors"), &n);
  /* a second seed file with converted dtypes */
  int16_t h[6] = {1, 2, 3, 4, 5, 6};
  bytes conv = mkfile("{\"__metadata__\":{\"a\":\"\\u00e9\"},\"h\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[0,4]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]}}", h, 12);
  tap_ok(orig != NULL && n > 100, "fuzz: seed file read (%zu bytes)", n);
  if (!orig) return;
  int loaded = 0, failed = 0, weird = 0;
  unsigned char *buf = malloc(n > conv.n ? n : conv.n);
  for (int it = 0; it < 6000; it++) {
    const unsigned char *src = it % 3 == 2 ? conv.p : orig;
    size_t len = it % 3 == 2 ? conv.n : n;
    memcpy(buf, src, len);
    uint64_t r = next();
    switch (r % 6) {
      case 0: case 1: {     /* a few random bytes anywhere */
        int m = 1 + (int)(next() % 8);
        for (int k = 0; k < m; k++) buf[next() % len] = (unsigned char)next();
        break;
      }
      case 2: {             /* bytes in the header only, biased to JSON punctuation and digits */
        static const char pick[] = "{}[]\",:0123456789-e.\\u ";
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
        if (hl && hl < len - 8) buf[8 + next() % hl] = (unsigned char)pick[next() % (sizeof pick - 1)];
        break;
      }
      case 3:               /* the length field */
        buf[next() % 8] = (unsigned char)next();
        break;
      case 4:               /* truncation */
        len = next() % len;
        break;
      default: {            /* a digit run in the header bumped: offsets and shapes go wrong */
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
        if (hl && hl < len - 8) {
          size_t at = 8 + next() % hl;
          if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (unsigned char)('0' + next() % 10);
          else buf[at] = (unsigned char)('0' + next() % 10);
        }
      }
    }
    /* a heap copy of exactly len bytes, so ASan sees any read past the end */
    unsigned char *exact = malloc(len ? len : 1);
    memcpy(exact, buf, len);
    mt_st_file *f = mt_st_load_mem("fuzz.safetensors", exact, len);
    if (f) {
      loaded++;
      for (int i = 0; i < f->n; i++) if (!f->tensors[i] || !f->names[i]) weird++;
      mt_st_free(f);
    } else {
      failed++;
      if (!has(mt_error(), "load: fuzz.safetensors: ")) { weird++; printf("# odd message: %s\n", mt_error()); }
    }
    free(exact);
  }
  tap_ok(weird == 0, "fuzz: 6000 mutations: %d loaded, %d clean errors, no crash", loaded, failed);
  tap_ok(loaded > 0 && failed > 0, "fuzz: both outcomes were exercised");
  /* every truncation of the valid file */
  int trunc_ok = 1;
  for (size_t len = 0; len < n; len++) {
    unsigned char *exact = malloc(len ? len : 1);
    memcpy(exact, orig, len);
    mt_st_file *f = mt_st_load_mem("t.safetensors", exact, len);
    if (f) trunc_ok = 0;   /* every tensor has data up to the end: any cut must fail */
    mt_st_free(f);
    free(exact);
  }
  tap_ok(trunc_ok, "fuzz: each of the %zu truncations is an error", n);
  /* and through a real file, a few */
  int file_ok = 1;
  for (int it = 0; it < 50; it++) {
    memcpy(buf, orig, n);
    for (int k = 0; k < 4; k++) buf[next() % n] = (unsigned char)next();
    size_t len = it % 2 ? n : next() % n;
    FILE *fp = fopen(P("fz.safetensors"), "wb");
    fwrite(buf, 1, len, fp);
    fclose(fp);
    mt_st_file *f = mt_st_load(P("fz.safetensors"));
    if (!f && !has(mt_error(), "fz.safetensors")) file_ok = 0;
    mt_st_free(f);
  }
  tap_ok(file_ok, "fuzz: 50 corrupted files on disk load or fail cleanly");
  unlink(P("fz.safetensors"));
  free(buf);
  free(orig);
  free(conv.p);
}

static void cleanup(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[600];
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (rmdir(path)) unlink(path);
  }
  if (d) closedir(d);
  rmdir(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/milua_st_XXXXXX");
  if (!mkdtemp(dir)) { printf("Bail out! mkdtemp failed\n"); return 1; }
  test_json();
  test_roundtrip();
  test_conversions();
  test_errors();
  test_fuzz();
  cleanup();
  return tap_done();
}
