/* safetensors: validate-then-read loading with dtype conversion, and atomic
   writing through a temporary file. */
#include "io/safetensors.h"
#include "io/json.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nn/io/safetensors.c reads and writes raw little-endian data: port the byte order first"
#endif

/* ---- dtypes ---- */

typedef enum { K_F32, K_F64, K_F16, K_BF16, K_I32, K_I64, K_I16, K_I8, K_U64, K_U32, K_U16, K_U8, K_BOOL } kind;

static const struct { const char *name; int size; mt_dtype to; } DT[] = {
  [K_F32] = {"F32", 4, MT_F32},  [K_F64] = {"F64", 8, MT_F32}, [K_F16] = {"F16", 2, MT_F32},
  [K_BF16] = {"BF16", 2, MT_F32}, [K_I32] = {"I32", 4, MT_I32}, [K_I64] = {"I64", 8, MT_I32},
  [K_I16] = {"I16", 2, MT_I32},  [K_I8] = {"I8", 1, MT_I32},   [K_U64] = {"U64", 8, MT_I32},
  [K_U32] = {"U32", 4, MT_I32},  [K_U16] = {"U16", 2, MT_I32}, [K_U8] = {"U8", 1, MT_I32},
  [K_BOOL] = {"BOOL", 1, MT_I32},
};
#define NKINDS ((int)(sizeof DT / sizeof DT[0]))
#define KIND_LIST "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL"

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0 && man == 0) bits = sign;
  else if (exp == 0) {                  /* subnormal: renormalise into float's range */
    uint32_t e = 113;
    while (!(man & 0x400)) { man <<= 1; e--; }
    bits = sign | (e << 23) | ((man & 0x3FF) << 13);
  } else if (exp == 31) bits = sign | 0x7F800000u | (man << 13);   /* inf, nan (payload kept) */
  else bits = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static float bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static uint64_t le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* ---- reading ---- */

typedef struct {
  const char *label;
  int fd;                          /* -1 when reading from memory */
  const unsigned char *mem;
  uint64_t size;
} source;

static int src_read(source *s, uint64_t off, void *buf, size_t n) {
  if (off > s->size || n > s->size - off) {
    mt_seterr("load: %s: unexpected end of file (%zu bytes wanted at offset %llu of %llu)", s->label, n,
              (unsigned long long)off, (unsigned long long)s->size);
    return -1;
  }
  if (s->mem) { if (n) memcpy(buf, s->mem + off, n); return 0; }
  char *p = buf;
  while (n) {
    ssize_t k = pread(s->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) { mt_seterr("load: %s: read error: %s", s->label, strerror(errno)); return -1; }
    if (k == 0) { mt_seterr("load: %s: the file got shorter while being read", s->label); return -1; }
    p += k;
    off += (uint64_t)k;
    n -= (size_t)k;
  }
  return 0;
}

typedef struct {
  const char *name;                /* borrowed from the parsed header */
  kind k;
  int ndim;
  int64_t shape[MT_MAXDIM];
  uint64_t begin, end;
} entry;

typedef struct { const char *s; size_t n; size_t idx; } keyref;

static int keyref_cmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  if (c) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* first key of obj given twice, or NULL; sorts (scratch holds obj->len), so a
   header of a million names stays fast */
static const char *duplicate_key(const mt_json *obj, keyref *scratch) {
  for (size_t i = 0; i < obj->len; i++) scratch[i] = (keyref){obj->keys[i], obj->keylens[i], i};
  qsort(scratch, obj->len, sizeof *scratch, keyref_cmp);
  for (size_t i = 1; i < obj->len; i++)
    if (!keyref_cmp(&scratch[i - 1], &scratch[i])) return scratch[i].s;
  return NULL;
}

static int entry_cmp(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* "an array", "a number", ... for messages */
static const char *a_type(mt_json_type t) {
  switch (t) {
    case MT_JSON_ARRAY: return "an array";
    case MT_JSON_OBJECT: return "an object";
    case MT_JSON_NULL: return "null";
    case MT_JSON_BOOL: return "a boolean";
    case MT_JSON_NUMBER: return "a number";
    case MT_JSON_STRING: return "a string";
  }
  return "?";
}

/* checks one header entry and fills e; -1 with the error set */
static int check_entry(const char *label, const char *name, const mt_json *v, uint64_t dsize, entry *e) {
  char sh[160];
  e->name = name;
  if (v->type != MT_JSON_OBJECT) {
    mt_seterr("load: %s: tensor '%s' is described by %s, expected an object with dtype, shape and data_offsets",
              label, name, a_type(v->type));
    return -1;
  }
  const mt_json *dt = mt_json_get(v, "dtype"), *shape = mt_json_get(v, "shape"), *off = mt_json_get(v, "data_offsets");
  const char *missing = !dt ? "dtype" : !shape ? "shape" : !off ? "data_offsets" : NULL;
  if (missing) { mt_seterr("load: %s: tensor '%s' has no \"%s\"", label, name, missing); return -1; }
  if (dt->type != MT_JSON_STRING) {
    mt_seterr("load: %s: tensor '%s': \"dtype\" is %s, expected a string like \"F32\"", label, name,
              a_type(dt->type));
    return -1;
  }
  int k;
  for (k = 0; k < NKINDS; k++)
    if (strlen(DT[k].name) == dt->len && !memcmp(DT[k].name, dt->str, dt->len)) break;
  if (k == NKINDS) {
    mt_seterr("load: %s: tensor '%s' has unsupported dtype \"%s\" (milua reads " KIND_LIST ")", label, name, dt->str);
    return -1;
  }
  e->k = (kind)k;
  if (shape->type != MT_JSON_ARRAY) {
    mt_seterr("load: %s: tensor '%s': \"shape\" is %s, expected an array of sizes", label, name,
              a_type(shape->type));
    return -1;
  }
  if (shape->len > MT_MAXDIM) {
    mt_seterr("load: %s: tensor '%s' has %zu dims; milua tensors have at most %d", label, name, shape->len, MT_MAXDIM);
    return -1;
  }
  e->ndim = (int)shape->len;
  uint64_t numel = 1;
  int too_big = 0;
  for (int d = 0; d < e->ndim; d++) {
    int64_t s;
    if (mt_json_int(&shape->items[d], &s) || s < 0) {
      mt_seterr("load: %s: tensor '%s': shape entry %d is not a non-negative integer", label, name, d + 1);
      return -1;
    }
    e->shape[d] = s;
    if (__builtin_mul_overflow(numel, (uint64_t)s, &numel)) too_big = 1;
  }
  mt_dims_str(e->shape, e->ndim, sh, sizeof sh);
  uint64_t nbytes;
  if (too_big || __builtin_mul_overflow(numel, (uint64_t)DT[k].size, &nbytes)) {
    mt_seterr("load: %s: tensor '%s': shape %s is impossibly large", label, name, sh);
    return -1;
  }
  int64_t b, en;
  if (off->type != MT_JSON_ARRAY || off->len != 2 || mt_json_int(&off->items[0], &b) ||
      mt_json_int(&off->items[1], &en) || b < 0 || en < 0) {
    mt_seterr("load: %s: tensor '%s': \"data_offsets\" must be [begin, end] with non-negative integers", label, name);
    return -1;
  }
  e->begin = (uint64_t)b;
  e->end = (uint64_t)en;
  if (e->begin > e->end) {
    mt_seterr("load: %s: tensor '%s' data_offsets [%llu, %llu] end before they begin", label, name,
              (unsigned long long)e->begin, (unsigned long long)e->end);
    return -1;
  }
  if (e->end > dsize) {
    mt_seterr("load: %s: tensor '%s' data_offsets [%llu, %llu] run past the end of the data section (%llu bytes): "
              "truncated file?", label, name, (unsigned long long)e->begin, (unsigned long long)e->end,
              (unsigned long long)dsize);
    return -1;
  }
  if (e->end - e->begin != nbytes) {
    mt_seterr("load: %s: tensor '%s' data_offsets [%llu, %llu] do not match shape %s of %s (%llu bytes)", label, name,
              (unsigned long long)e->begin, (unsigned long long)e->end, sh, DT[k].name, (unsigned long long)nbytes);
    return -1;
  }
  return 0;
}

/* the tensor's bytes -> a new milua tensor */
static mt_tensor *read_tensor(source *s, uint64_t data_start, const entry *e) {
  mt_tensor *t = mt_empty(DT[e->k].to, e->ndim, e->shape);
  if (!t) {
    char why[256];
    snprintf(why, sizeof why, "%s", mt_error());
    mt_seterr("load: %s: tensor '%s': %s", s->label, e->name, why);
    return NULL;
  }
  uint64_t nbytes = e->end - e->begin;
  if (!nbytes) return t;
  if (e->k == K_F32 || e->k == K_I32) {
    if (src_read(s, data_start + e->begin, t->storage->data, (size_t)nbytes)) { mt_unref(t); return NULL; }
    return t;
  }
  enum { CHUNK = 1 << 16 };
  unsigned char buf[CHUNK];
  int es = DT[e->k].size;
  size_t per = CHUNK / (size_t)es;
  uint64_t n = nbytes / (uint64_t)es;
  float *f = (float *)t->storage->data;
  int32_t *q = (int32_t *)t->storage->data;
  for (uint64_t i0 = 0; i0 < n; i0 += per) {
    size_t m = (size_t)(n - i0 < per ? n - i0 : per);
    if (src_read(s, data_start + e->begin + i0 * (uint64_t)es, buf, m * (size_t)es)) { mt_unref(t); return NULL; }
    for (size_t j = 0; j < m; j++) {
      const unsigned char *p = buf + j * (size_t)es;
      uint64_t i = i0 + j;
      switch (e->k) {
        case K_F64: { double d; memcpy(&d, p, 8); f[i] = (float)d; break; }
        case K_F16: { uint16_t h; memcpy(&h, p, 2); f[i] = f16_to_f32(h); break; }
        case K_BF16: { uint16_t h; memcpy(&h, p, 2); f[i] = bf16_to_f32(h); break; }
        case K_I16: { int16_t v; memcpy(&v, p, 2); q[i] = v; break; }
        case K_I8: q[i] = (int8_t)p[0]; break;
        case K_U16: { uint16_t v; memcpy(&v, p, 2); q[i] = v; break; }
        case K_U8: q[i] = p[0]; break;
        case K_BOOL: q[i] = p[0] != 0; break;
        case K_I64: {
          int64_t v;
          memcpy(&v, p, 8);
          if (v < INT32_MIN || v > INT32_MAX) {
            mt_seterr("load: %s: tensor '%s' (I64) element %llu is %lld, which does not fit int32", s->label, e->name,
                      (unsigned long long)i + 1, (long long)v);
            mt_unref(t);
            return NULL;
          }
          q[i] = (int32_t)v;
          break;
        }
        case K_U64:
        case K_U32: {
          uint64_t v;
          if (e->k == K_U64) memcpy(&v, p, 8);
          else { uint32_t w; memcpy(&w, p, 4); v = w; }
          if (v > INT32_MAX) {
            mt_seterr("load: %s: tensor '%s' (%s) element %llu is %llu, which does not fit int32", s->label, e->name,
                      DT[e->k].name, (unsigned long long)i + 1, (unsigned long long)v);
            mt_unref(t);
            return NULL;
          }
          q[i] = (int32_t)v;
          break;
        }
        default: break;   /* F32, I32 handled above */
      }
    }
  }
  return t;
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) { memcpy(d, s, n); d[n] = 0; }
  return d;
}

static mt_st_file *load_source(source *s) {
  const char *L = s->label;
  unsigned char lenb[8];
  if (s->size < 8) {
    mt_seterr("load: %s: file too short (%llu bytes; a safetensors file starts with an 8-byte header length)", L,
              (unsigned long long)s->size);
    return NULL;
  }
  if (src_read(s, 0, lenb, 8)) return NULL;
  uint64_t hlen = le64(lenb);
  if (hlen > s->size - 8) {
    mt_seterr("load: %s: truncated file (header says %llu bytes, file has %llu after the 8-byte length)%s", L,
              (unsigned long long)hlen, (unsigned long long)(s->size - 8),
              hlen > MT_ST_MAX_HEADER ? "; not a safetensors file?" : "");
    return NULL;
  }
  if (hlen > MT_ST_MAX_HEADER) {
    mt_seterr("load: %s: header of %llu bytes is over the %u-byte limit", L, (unsigned long long)hlen,
              MT_ST_MAX_HEADER);
    return NULL;
  }
  uint64_t data_start = 8 + hlen, dsize = s->size - data_start;
  char *hdr = malloc(hlen ? (size_t)hlen : 1);
  if (!hdr) { mt_seterr("load: %s: out of memory for a %llu-byte header", L, (unsigned long long)hlen); return NULL; }
  if (src_read(s, 8, hdr, (size_t)hlen)) { free(hdr); return NULL; }
  char jerr[200];
  mt_json *root = mt_json_parse(hdr, (size_t)hlen, jerr, sizeof jerr);
  free(hdr);
  mt_st_file *f = NULL;
  entry *ents = NULL;
  entry **order = NULL;
  keyref *keys = NULL;
  const mt_json *meta = NULL;
  if (!root) { mt_seterr("load: %s: header is not valid JSON: %s", L, jerr); goto fail; }
  if (root->type != MT_JSON_OBJECT) {
    mt_seterr("load: %s: header is %s, expected a JSON object of tensors", L, a_type(root->type));
    goto fail;
  }
  size_t nk = root->len;
  if (nk > (size_t)INT32_MAX) { mt_seterr("load: %s: too many entries in the header", L); goto fail; }
  keys = malloc((nk ? nk : 1) * sizeof *keys);
  ents = malloc((nk ? nk : 1) * sizeof *ents);
  order = malloc((nk ? nk : 1) * sizeof *order);
  if (!keys || !ents || !order) { mt_seterr("load: %s: out of memory", L); goto fail; }

  /* names: no NULs, no duplicates */
  for (size_t i = 0; i < nk; i++)
    if (memchr(root->keys[i], 0, root->keylens[i])) {
      mt_seterr("load: %s: a tensor name contains a NUL character (\"%s\\u0000...\")", L, root->keys[i]);
      goto fail;
    }
  const char *dupname = duplicate_key(root, keys);
  if (dupname) { mt_seterr("load: %s: name '%s' appears twice in the header", L, dupname); goto fail; }

  int nt = 0, nm = 0;
  for (size_t i = 0; i < nk; i++) {
    const mt_json *v = &root->items[i];
    if (!strcmp(root->keys[i], "__metadata__")) {
      if (v->type != MT_JSON_OBJECT) {
        mt_seterr("load: %s: \"__metadata__\" is %s, expected an object of strings", L, a_type(v->type));
        goto fail;
      }
      for (size_t j = 0; j < v->len; j++) {
        const mt_json *mv = &v->items[j];
        if (mv->type != MT_JSON_STRING) {
          mt_seterr("load: %s: __metadata__ value for '%s' is %s, expected a string", L, v->keys[j],
                    a_type(mv->type));
          goto fail;
        }
        if (memchr(v->keys[j], 0, v->keylens[j]) || memchr(mv->str, 0, mv->len)) {
          mt_seterr("load: %s: __metadata__ entry '%s' contains a NUL character", L, v->keys[j]);
          goto fail;
        }
      }
      keyref *mk = malloc((v->len ? v->len : 1) * sizeof *mk);
      if (!mk) { mt_seterr("load: %s: out of memory", L); goto fail; }
      const char *mdup = duplicate_key(v, mk);
      free(mk);
      if (mdup) { mt_seterr("load: %s: __metadata__ key '%s' appears twice", L, mdup); goto fail; }
      if (v->len > (size_t)INT32_MAX) { mt_seterr("load: %s: too many metadata entries", L); goto fail; }
      meta = v;
      nm = (int)v->len;
      continue;
    }
    if (check_entry(L, root->keys[i], v, dsize, &ents[nt])) goto fail;
    nt++;
  }

  /* overlapping byte ranges would let a small file claim many copies of its data */
  int nz = 0;
  for (int i = 0; i < nt; i++) if (ents[i].end > ents[i].begin) order[nz++] = &ents[i];
  qsort(order, (size_t)nz, sizeof *order, entry_cmp);
  for (int i = 1; i < nz; i++)
    if (order[i]->begin < order[i - 1]->end) {
      mt_seterr("load: %s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", L, order[i - 1]->name,
                (unsigned long long)order[i - 1]->begin, (unsigned long long)order[i - 1]->end, order[i]->name,
                (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
      goto fail;
    }

  /* the header is sound: build the result */
  f = calloc(1, sizeof *f);
  if (!f) { mt_seterr("load: %s: out of memory", L); goto fail; }
  f->names = calloc((size_t)nt + 1, sizeof *f->names);
  f->tensors = calloc((size_t)nt + 1, sizeof *f->tensors);
  f->meta_keys = calloc((size_t)nm + 1, sizeof *f->meta_keys);
  f->meta_values = calloc((size_t)nm + 1, sizeof *f->meta_values);
  if (!f->names || !f->tensors || !f->meta_keys || !f->meta_values) { mt_seterr("load: %s: out of memory", L); goto fail; }
  for (int i = 0; i < nm; i++) {
    f->meta_keys[i] = dupn(meta->keys[i], meta->keylens[i]);
    f->meta_values[i] = dupn(meta->items[i].str, meta->items[i].len);
    f->nmeta = i + 1;
    if (!f->meta_keys[i] || !f->meta_values[i]) { mt_seterr("load: %s: out of memory", L); goto fail; }
  }
  for (int i = 0; i < nt; i++) {
    f->names[i] = strdup(ents[i].name);
    f->n = i + 1;
    if (!f->names[i]) { mt_seterr("load: %s: out of memory", L); goto fail; }
    f->tensors[i] = read_tensor(s, data_start, &ents[i]);
    if (!f->tensors[i]) goto fail;
  }
  mt_json_free(root);
  free(keys);
  free(ents);
  free(order);
  return f;

fail:
  mt_st_free(f);
  mt_json_free(root);
  free(keys);
  free(ents);
  free(order);
  return NULL;
}

mt_st_file *mt_st_load(const char *path) {
  if (!path) { mt_seterr("load: no path given"); return NULL; }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { mt_seterr("load: %s: cannot open: %s", path, strerror(errno)); return NULL; }
  struct stat st;
  if (fstat(fd, &st)) {
    mt_seterr("load: %s: cannot stat: %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    mt_seterr("load: %s: not a regular file: %s", path, S_ISDIR(st.st_mode) ? strerror(EISDIR) : "special file");
    close(fd);
    return NULL;
  }
  source s = {path, fd, NULL, (uint64_t)st.st_size};
  mt_st_file *f = load_source(&s);
  close(fd);
  return f;
}

mt_st_file *mt_st_load_mem(const char *label, const void *data, size_t size) {
  static const unsigned char none[1];
  source s = {label ? label : "<memory>", -1, data ? data : none, data ? size : 0};
  return load_source(&s);
}

void mt_st_free(mt_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    free(f->names[i]);
    mt_unref(f->tensors[i]);
  }
  for (int i = 0; i < f->nmeta; i++) {
    free(f->meta_keys[i]);
    free(f->meta_values[i]);
  }
  free(f->names);
  free(f->tensors);
  free(f->meta_keys);
  free(f->meta_values);
  free(f);
}

mt_tensor *mt_st_get(const mt_st_file *f, const char *name) {
  if (!f || !name) return NULL;
  for (int i = 0; i < f->n; i++) if (!strcmp(f->names[i], name)) return f->tensors[i];
  return NULL;
}

const char *mt_st_meta(const mt_st_file *f, const char *key) {
  if (!f || !key) return NULL;
  for (int i = 0; i < f->nmeta; i++) if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
  return NULL;
}

/* ---- writing ---- */

typedef struct {
  int fd;
  size_t len;
  int err;                         /* errno of the first failed write */
  char buf[1 << 16];
} writer;

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno;
    if (k == 0) return EIO;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static void w_flush(writer *w) {
  if (!w->err && w->len) w->err = write_all(w->fd, w->buf, w->len);
  w->len = 0;
}

static void w_put(writer *w, const void *p, size_t n) {
  if (w->err) return;
  if (n > sizeof w->buf - w->len) {
    w_flush(w);
    if (n >= sizeof w->buf) { if (!w->err) w->err = write_all(w->fd, p, n); return; }
  }
  memcpy(w->buf + w->len, p, n);
  w->len += n;
}

/* the tensor's elements in row-major order, whatever its strides */
static void w_tensor(writer *w, const mt_tensor *t) {
  int64_t n = mt_numel(t);
  if (n == 0) return;
  const char *base = (const char *)t->storage->data;
  if (mt_is_contiguous(t)) { w_put(w, base + t->offset * 4, (size_t)n * 4); return; }
  int last = t->ndim - 1;              /* ndim >= 1 here: a 0-d tensor is contiguous */
  int64_t idx[MT_MAXDIM] = {0};
  for (int64_t done = 0; done < n; done += t->shape[last]) {
    int64_t off = t->offset;
    for (int d = 0; d < last; d++) off += idx[d] * t->stride[d];
    for (int64_t j = 0; j < t->shape[last]; j++) {
      if (sizeof w->buf - w->len < 4) w_flush(w);
      if (w->err) return;
      memcpy(w->buf + w->len, base + (off + j * t->stride[last]) * 4, 4);
      w->len += 4;
    }
    for (int d = last - 1; d >= 0; d--) {
      if (++idx[d] < t->shape[d]) break;
      idx[d] = 0;
    }
  }
}

static int strp_cmp(const void *a, const void *b) {
  return strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
}

/* first duplicate among n strings, or NULL */
static const char *find_duplicate(int n, const char *const *s) {
  if (n < 2) return NULL;
  const char *const **p = malloc((size_t)n * sizeof *p);
  if (!p) return NULL;
  for (int i = 0; i < n; i++) p[i] = &s[i];
  qsort(p, (size_t)n, sizeof *p, strp_cmp);
  const char *dup = NULL;
  for (int i = 1; i < n && !dup; i++) if (!strcmp(*p[i - 1], *p[i])) dup = *p[i];
  free(p);
  return dup;
}

static void fsync_dir_of(const char *path) {
  size_t n = strlen(path);
  char *d = dupn(path, n);
  if (!d) return;
  char *slash = strrchr(d, '/');
  const char *dir = ".";
  if (slash == d) dir = "/";
  else if (slash) { *slash = 0; dir = d; }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) { fsync(fd); close(fd); }   /* best effort: the rename itself is durable on most systems */
  free(d);
}

/* The temporary name of a save: PATH.tmp.<host>.<pid>. A writer killed
   mid-save leaves it behind; the host and the pid say whose it was, so the
   next save of PATH removes the ones of processes that no longer run on this
   host (and never touches a temporary of a live writer, here or on another
   machine sharing the directory). */
static int temp_name(const char *path, char *buf, size_t n) {
  char host[256];
  if (gethostname(host, sizeof host)) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = 0;
  for (char *c = host; *c; c++) if (*c == '/') *c = '_';
  return snprintf(buf, n, "%s.tmp.%s.%ld", path, host, (long)getpid()) >= (int)n ? -1 : 0;
}

static void remove_stale_temps(const char *path) {
  char self[4096];
  if (temp_name(path, self, sizeof self)) return;
  /* the prefix shared by every writer on this host: up to and including the '.' before the pid */
  size_t plen = (size_t)(strrchr(self, '.') - self) + 1;
  const char *slash = strrchr(self, '/');
  const char *base = slash ? slash + 1 : self;
  size_t blen = plen - (size_t)(base - self);
  char dir[4096];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == self) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - self), self);
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (strncmp(e->d_name, base, blen)) continue;
    const char *digits = e->d_name + blen;
    char *end;
    errno = 0;
    long pid = strtol(digits, &end, 10);
    if (!*digits || *end || errno || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive, or not ours to judge */
    unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

/* s with bytes that are not UTF-8 shown as \xNN, for messages */
static const char *escape_bad_utf8(const char *s, char *buf, size_t n) {
  size_t k = 0, len = strlen(s), i = 0;
  while (i < len && k + 5 < n) {
    size_t ok = mt_utf8_check(s + i, len - i);
    size_t take = ok < n - k - 5 ? ok : n - k - 5;
    memcpy(buf + k, s + i, take);
    k += take;
    i += take;
    if (take < ok) break;
    if (i < len) { snprintf(buf + k, n - k, "\\x%02X", (unsigned char)s[i]); k += 4; i++; }
  }
  buf[k] = 0;
  return buf;
}

int mt_st_save(const char *path, int n, const char *const *names, mt_tensor *const *tensors,
               int nmeta, const char *const *keys, const char *const *values) {
  if (!path || !*path) { mt_seterr("save: no path given"); return -1; }
  if (n < 0 || nmeta < 0 || (n && (!names || !tensors)) || (nmeta && (!keys || !values))) {
    mt_seterr("save: %s: bad arguments (n %d, nmeta %d)", path, n, nmeta);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    const char *nm = names[i];
    if (!nm) { mt_seterr("save: %s: tensor %d has no name", path, i + 1); return -1; }
    if (mt_utf8_check(nm, strlen(nm)) != strlen(nm)) {
      char buf[200];
      mt_seterr("save: %s: tensor name '%s' is not valid UTF-8", path, escape_bad_utf8(nm, buf, sizeof buf));
      return -1;
    }
    if (!strcmp(nm, "__metadata__")) {
      mt_seterr("save: %s: \"__metadata__\" is reserved and cannot name a tensor", path);
      return -1;
    }
    const mt_tensor *t = tensors[i];
    if (!t) { mt_seterr("save: %s: tensor '%s' is NULL", path, nm); return -1; }
    if (t->dtype != MT_F32 && t->dtype != MT_I32) {
      mt_seterr("save: %s: tensor '%s' has an unsupported dtype", path, nm);
      return -1;
    }
  }
  const char *dup = find_duplicate(n, names);
  if (dup) { mt_seterr("save: %s: tensor name '%s' is given twice", path, dup); return -1; }
  for (int i = 0; i < nmeta; i++) {
    if (!keys[i] || !values[i]) { mt_seterr("save: %s: metadata entry %d is NULL", path, i + 1); return -1; }
    if (mt_utf8_check(keys[i], strlen(keys[i])) != strlen(keys[i]) ||
        mt_utf8_check(values[i], strlen(values[i])) != strlen(values[i])) {
      char buf[200];
      mt_seterr("save: %s: metadata entry '%s' is not valid UTF-8", path, escape_bad_utf8(keys[i], buf, sizeof buf));
      return -1;
    }
    if (!strcmp(keys[i], "format") && strcmp(values[i], "pt")) {
      mt_seterr("save: %s: metadata \"format\" must be \"pt\" (safetensors readers require it), got \"%s\"", path,
                values[i]);
      return -1;
    }
  }
  dup = find_duplicate(nmeta, keys);
  if (dup) { mt_seterr("save: %s: metadata key '%s' is given twice", path, dup); return -1; }

  /* the header */
  mt_jbuf h = MT_JBUF_INIT;
  mt_jbuf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"");
  for (int i = 0; i < nmeta; i++) {
    if (!strcmp(keys[i], "format")) continue;
    mt_jbuf_put(&h, ",", 1);
    mt_jbuf_string(&h, keys[i], strlen(keys[i]));
    mt_jbuf_put(&h, ":", 1);
    mt_jbuf_string(&h, values[i], strlen(values[i]));
  }
  mt_jbuf_put(&h, "}", 1);
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const mt_tensor *t = tensors[i];
    uint64_t nb = (uint64_t)mt_numel(t) * 4;
    mt_jbuf_put(&h, ",", 1);
    mt_jbuf_string(&h, names[i], strlen(names[i]));
    mt_jbuf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype == MT_F32 ? "F32" : "I32");
    for (int d = 0; d < t->ndim; d++) mt_jbuf_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    mt_jbuf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + nb));
    off += nb;
  }
  mt_jbuf_put(&h, "}", 1);
  while (!h.failed && h.len % 8) mt_jbuf_put(&h, " ", 1);
  if (h.failed) { mt_jbuf_free(&h); mt_seterr("save: %s: out of memory building the header", path); return -1; }
  if (h.len > MT_ST_MAX_HEADER) {
    mt_seterr("save: %s: header of %zu bytes is over the %u-byte limit readers accept", path, h.len, MT_ST_MAX_HEADER);
    mt_jbuf_free(&h);
    return -1;
  }

  /* the file, through a temporary name */
  size_t tl = strlen(path) + 300;
  char *tmp = malloc(tl);
  writer *w = malloc(sizeof *w);
  if (!tmp || !w) { free(tmp); free(w); mt_jbuf_free(&h); mt_seterr("save: %s: out of memory", path); return -1; }
  temp_name(path, tmp, tl);
  remove_stale_temps(path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    mt_seterr("save: %s: cannot create %s: %s", path, tmp, strerror(errno));
    free(tmp); free(w); mt_jbuf_free(&h);
    return -1;
  }
  w->fd = fd;
  w->len = 0;
  w->err = 0;
  unsigned char lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
  w_put(w, lenb, 8);
  w_put(w, h.data, h.len);
  mt_jbuf_free(&h);
  for (int i = 0; i < n; i++) w_tensor(w, tensors[i]);
  w_flush(w);
  const char *step = "write to";
  int err = w->err;
  if (!err && fsync(fd)) { err = errno; step = "fsync of"; }
  if (close(fd) && !err) { err = errno; step = "close of"; }
  if (!err && rename(tmp, path)) { err = errno; step = "rename of"; }
  if (err) {
    mt_seterr("save: %s: %s %s failed: %s", path, step, tmp, strerror(err));
    unlink(tmp);
    free(tmp); free(w);
    return -1;
  }
  fsync_dir_of(path);
  free(tmp);
  free(w);
  return 0;
}
