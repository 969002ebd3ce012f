/* Storage, views, creation and the global generator. */
#include "core/tensor.h"
#include "core/autograd.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/mman.h>

const char *mt_dims_str(const int64_t *shape, int ndim, char *buf, size_t n) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

const char *mt_shape_str(const mt_tensor *t, char *buf, size_t n) {
  return mt_dims_str(t->shape, t->ndim, buf, n);
}

const char *mt_dtype_name(mt_dtype d) { return d == MT_F32 ? "float32" : "int32"; }
size_t mt_dtype_size(mt_dtype d) { (void)d; return 4; }

/* ---- memory accounting ---- */
static size_t live_bytes, total_bytes, peak_live_bytes, peak_held_bytes;
size_t mt_live_bytes(void) { return live_bytes; }
size_t mt_total_allocated(void) { return total_bytes; }

/* Freed buffers wait in a cache keyed by their exact size: a training step
   allocates the same shapes every step, so after the first one no memory comes
   from the system (no page faults, no zeroing by the kernel).

   The cache forgets buffers nobody asked for: time is counted in epochs of
   allocation volume (at least 64 MB, and at least twice the bytes live and
   cached when the epoch began), and a buffer that sat in the cache through a
   whole epoch goes back to malloc. Without this, the cache keeps for every size
   the largest number of buffers ever freed together (by one garbage collection,
   say), and the sum of these per-size maxima creeps up over a long run even
   though the working set does not. */
#define CACHE_BUCKETS 256
#define CACHE_LIMIT ((size_t)256 << 20)   /* beyond it, freed buffers go back to malloc */
#define EPOCH_MIN ((size_t)64 << 20)
typedef struct cached { struct cached *next; size_t size; uint64_t epoch; } cached;
static cached *cache_bucket[CACHE_BUCKETS];
static size_t cache_bytes;
static uint64_t cache_epoch;              /* the current epoch */
static size_t epoch_end = EPOCH_MIN;      /* total_bytes at which it ends */

/* Buffers of at least MAP_MIN bytes are pages of their own (mmap), never part of malloc's heap.
   GEMM engines allocate and free packing buffers on every call, in every worker thread;
   in a heap shared with long-lived tensor buffers, those short-lived blocks leave holes that
   no tensor fits, and the heap grows step after step (by ~3 MB per training step of the
   2-layer d128 encoder at 2 threads). Pages of their own go back to the system whole when a
   buffer is released, and the heap is left to the small and short-lived blocks. */
#if defined(__SANITIZE_ADDRESS__)
#define MAP_MIN SIZE_MAX   /* AddressSanitizer checks heap blocks only */
#else
#define MAP_MIN ((size_t)64 << 10)
#endif
static size_t mapped_bytes;
static void *buffer_alloc(size_t sz) {
  if (sz < MAP_MIN) return aligned_alloc(64, sz);
  void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  mapped_bytes += sz;
  return p;
}
static void buffer_free(void *p, size_t sz) {
  if (sz < MAP_MIN) { free(p); return; }
  munmap(p, sz);
  mapped_bytes -= sz;
}

static size_t bucket_of(size_t sz) { return (sz / 64 * 2654435761u) % CACHE_BUCKETS; }

/* start a new epoch; free what was put into the cache before the previous one began */
static void cache_age(void) {
  cache_epoch++;
  for (int i = 0; i < CACHE_BUCKETS; i++)
    for (cached **pp = &cache_bucket[i]; *pp;) {
      cached *c = *pp;
      if (c->epoch + 2 <= cache_epoch) {
        *pp = c->next;
        cache_bytes -= c->size;
        buffer_free(c, c->size);
      } else pp = &c->next;
    }
  size_t len = 2 * (live_bytes + cache_bytes);
  epoch_end = total_bytes + (len > EPOCH_MIN ? len : EPOCH_MIN);
}

static void *buffer_get(size_t sz) {
  cached **pp = &cache_bucket[bucket_of(sz)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->size == sz) {
      cached *c = *pp;
      *pp = c->next;
      cache_bytes -= sz;
      return c;
    }
  return buffer_alloc(sz);
}

/* sanitizer builds free at once, so that AddressSanitizer sees every use after free */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ENABLED 0
#else
#define CACHE_ENABLED 1
#endif

static void buffer_put(void *p, size_t sz) {
  if (!CACHE_ENABLED || sz < sizeof(cached) || cache_bytes + sz > CACHE_LIMIT) { buffer_free(p, sz); return; }
  cached *c = p;
  c->size = sz;
  c->epoch = cache_epoch;
  c->next = cache_bucket[bucket_of(sz)];
  cache_bucket[bucket_of(sz)] = c;
  cache_bytes += sz;
}

void mt_memory_stats(mt_memory *m, int reset_peaks) {
  m->live = live_bytes;
  m->cached = cache_bytes;
  m->peak_live = peak_live_bytes;
  m->peak_held = peak_held_bytes;
  m->total = total_bytes;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  struct mallinfo2 mi = mallinfo2();
  m->heap_used = mi.uordblks + mi.hblkhd + mapped_bytes;
  m->heap_free = mi.fordblks;
#else
  m->heap_used = m->heap_free = 0;   /* mapped_bytes alone would read as a partial report */
#endif
  if (reset_peaks) { peak_live_bytes = live_bytes; peak_held_bytes = live_bytes + cache_bytes; }
}

void mt_release_cache(void) {
  for (int i = 0; i < CACHE_BUCKETS; i++)
    while (cache_bucket[i]) {
      cached *c = cache_bucket[i];
      cache_bucket[i] = c->next;
      buffer_free(c, c->size);
    }
  cache_bytes = 0;
}

void mt_trim_heap(void) {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

__attribute__((destructor)) static void release_at_exit(void) { mt_release_cache(); }

static mt_storage *storage_new(size_t nbytes, int zero) {
  mt_storage *s = malloc(sizeof *s);
  if (!s) { mt_seterr("out of memory"); return NULL; }
  /* 64-byte alignment for vector loads; at least one element so data is never NULL */
  size_t sz = (nbytes + 63) & ~(size_t)63;
  if (sz == 0) sz = 64;
  if (total_bytes >= epoch_end) cache_age();
  s->data = buffer_get(sz);
  if (!s->data) {
    mt_release_cache();   /* memory may be tied up in cached buffers of other sizes */
    s->data = buffer_alloc(sz);
  }
  if (!s->data) { free(s); mt_seterr("out of memory allocating %zu bytes", nbytes); return NULL; }
  if (zero) memset(s->data, 0, sz);
  s->refcount = 1;
  s->version = 0;
  s->nbytes = nbytes;
  live_bytes += nbytes;
  total_bytes += nbytes;
  if (live_bytes > peak_live_bytes) peak_live_bytes = live_bytes;
  if (live_bytes + cache_bytes > peak_held_bytes) peak_held_bytes = live_bytes + cache_bytes;
  return s;
}

static void storage_unref(mt_storage *s) {
  if (s && --s->refcount == 0) {
    live_bytes -= s->nbytes;
    size_t sz = (s->nbytes + 63) & ~(size_t)63;
    buffer_put(s->data, sz ? sz : 64);
    free(s);
  }
}

/* ---- lifetime ---- */
mt_tensor *mt_ref(mt_tensor *t) { if (t) t->refcount++; return t; }

void mt_unref(mt_tensor *t) {
  if (!t || --t->refcount > 0) return;
  storage_unref(t->storage);
  mt_unref(t->grad);
  if (t->grad_fn) mt_node_unref(t->grad_fn);
  if (t->acc) { t->acc->leaf = NULL; mt_node_unref(t->acc); }
  free(t);
}

static mt_tensor *header_new(mt_dtype dt, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > MT_MAXDIM) {
    mt_seterr("tensors have at most %d dimensions, got %d", MT_MAXDIM, ndim);
    return NULL;
  }
  int64_t span = 1;   /* product of the sizes (0 counted as 1): bounds the strides too */
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) { mt_seterr("negative size %lld in a shape", (long long)shape[i]); return NULL; }
    int64_t m = shape[i] ? shape[i] : 1;
    if (span > ((int64_t)1 << 40) / m) {   /* checked before multiplying: no int64 overflow */
      char b[160];
      mt_seterr("a tensor of shape %s is too large", mt_dims_str(shape, ndim, b, sizeof b));
      return NULL;
    }
    span *= m;
  }
  mt_tensor *t = calloc(1, sizeof *t);
  if (!t) { mt_seterr("out of memory"); return NULL; }
  t->refcount = 1;
  t->dtype = dt;
  t->ndim = ndim;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->shape[i] = shape[i];
    t->stride[i] = st;
    st *= shape[i] ? shape[i] : 1;
  }
  return t;
}

static mt_tensor *alloc_tensor(mt_dtype dt, int ndim, const int64_t *shape, int zero) {
  mt_tensor *t = header_new(dt, ndim, shape);
  if (!t) return NULL;
  int64_t n = mt_numel(t);
  if (n > (int64_t)1 << 40) { free(t); mt_seterr("tensor of %lld elements is too large", (long long)n); return NULL; }
  t->storage = storage_new((size_t)n * mt_dtype_size(dt), zero);
  if (!t->storage) { free(t); return NULL; }
  return t;
}

mt_tensor *mt_empty(mt_dtype dt, int ndim, const int64_t *shape) { return alloc_tensor(dt, ndim, shape, 0); }
mt_tensor *mt_zeros(mt_dtype dt, int ndim, const int64_t *shape) { return alloc_tensor(dt, ndim, shape, 1); }

/* double -> int32 without undefined behaviour: NaN is 0, out-of-range values saturate */
static int32_t to_i32(double v) {
  return v != v ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
}

mt_tensor *mt_full(mt_dtype dt, int ndim, const int64_t *shape, double v) {
  mt_tensor *t = alloc_tensor(dt, ndim, shape, 0);
  if (!t) return NULL;
  int64_t n = mt_numel(t);
  if (dt == MT_F32) { float *p = mt_f32(t); for (int64_t i = 0; i < n; i++) p[i] = (float)v; }
  else { int32_t *p = mt_i32(t), iv = to_i32(v); for (int64_t i = 0; i < n; i++) p[i] = iv; }
  return t;
}

mt_tensor *mt_scalar(mt_dtype dt, double v) { return mt_full(dt, 0, NULL, v); }

mt_tensor *mt_arange(double start, double end, double step, mt_dtype dt) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step)) {
    mt_seterr("arange: step must be non-zero and bounds finite (start %g, end %g, step %g)", start, end, step);
    return NULL;
  }
  double c = ceil((end - start) / step);
  if (c > (double)((int64_t)1 << 40)) {
    mt_seterr("arange: %g elements (start %g, end %g, step %g) are too many", c, start, end, step);
    return NULL;
  }
  int64_t n = c > 0 ? (int64_t)c : 0;
  mt_tensor *t = mt_empty(dt, 1, &n);
  if (!t) return NULL;
  for (int64_t i = 0; i < n; i++) {
    double v = start + (double)i * step;
    if (dt == MT_F32) mt_f32(t)[i] = (float)v; else mt_i32(t)[i] = to_i32(v);
  }
  return t;
}

mt_tensor *mt_from_data(mt_dtype dt, int ndim, const int64_t *shape, const void *data) {
  mt_tensor *t = mt_empty(dt, ndim, shape);
  if (t && mt_numel(t)) memcpy(t->storage->data, data, (size_t)mt_numel(t) * mt_dtype_size(dt));
  return t;
}

mt_tensor *mt_zeros_like(const mt_tensor *t) { return mt_zeros(t->dtype, t->ndim, t->shape); }
mt_tensor *mt_empty_like(const mt_tensor *t) { return mt_empty(t->dtype, t->ndim, t->shape); }

mt_tensor *mt_alias(mt_tensor *t) {
  mt_tensor *a = calloc(1, sizeof *a);
  if (!a) { mt_seterr("out of memory"); return NULL; }
  a->refcount = 1;
  a->dtype = t->dtype;
  a->ndim = t->ndim;
  memcpy(a->shape, t->shape, sizeof a->shape);
  memcpy(a->stride, t->stride, sizeof a->stride);
  a->offset = t->offset;
  a->storage = t->storage;
  a->storage->refcount++;
  return a;
}

/* ---- inspection ---- */
int64_t mt_numel(const mt_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int mt_is_contiguous(const mt_tensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != st) return 0;
    st *= t->shape[i];
  }
  return 1;
}

static int64_t flat_index(const mt_tensor *t, const int64_t *idx) {
  int64_t o = t->offset;
  for (int i = 0; i < t->ndim; i++) o += idx[i] * t->stride[i];
  return o;
}

double mt_get(const mt_tensor *t, const int64_t *idx) {
  int64_t o = flat_index(t, idx);
  /* each arm as double: a plain ?: of float and int32_t would round the int32 through float */
  return t->dtype == MT_F32 ? (double)((float *)t->storage->data)[o] : (double)((int32_t *)t->storage->data)[o];
}

void mt_set(mt_tensor *t, const int64_t *idx, double v) {
  int64_t o = flat_index(t, idx);
  if (t->dtype == MT_F32) ((float *)t->storage->data)[o] = (float)v;
  else ((int32_t *)t->storage->data)[o] = to_i32(v);
  t->storage->version++;
}

int mt_same_shape(const mt_tensor *a, const mt_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

int mt_wrap_dim(const char *fn, int dim, int ndim) {
  int n = ndim ? ndim : 1;
  if (dim < -n || dim >= n) {
    mt_seterr("%s: dim %d out of range for a %d-d tensor", fn, dim + 1, ndim);
    return -1;
  }
  return dim < 0 ? dim + n : dim;
}

/* ---- random: xoshiro256** seeded through splitmix64 ---- */
static uint64_t rng[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 1};

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void mt_seed(uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) rng[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mt_rand_u64(void) {
  uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
  rng[2] ^= rng[0]; rng[3] ^= rng[1]; rng[1] ^= rng[2]; rng[0] ^= rng[3];
  rng[2] ^= t; rng[3] = rotl(rng[3], 45);
  return r;
}

double mt_rand_double(void) { return (double)(mt_rand_u64() >> 11) * 0x1.0p-53; }

double mt_rand_normal(void) {
  /* Box-Muller; one draw per call so the stream does not depend on call pairing */
  double u1 = mt_rand_double(), u2 = mt_rand_double();
  return sqrt(-2.0 * log1p(-u1)) * cos(2.0 * M_PI * u2);
}

void mt_rng_get_state(uint64_t s[4]) { memcpy(s, rng, sizeof rng); }
void mt_rng_set_state(const uint64_t s[4]) { memcpy(rng, s, sizeof rng); }

mt_tensor *mt_rand(int ndim, const int64_t *shape) {
  mt_tensor *t = mt_empty(MT_F32, ndim, shape);
  if (!t) return NULL;
  float *p = mt_f32(t);
  for (int64_t i = 0, n = mt_numel(t); i < n; i++) p[i] = (float)(mt_rand_u64() >> 40) * 0x1.0p-24f;
  return t;
}

mt_tensor *mt_randn(int ndim, const int64_t *shape) {
  mt_tensor *t = mt_empty(MT_F32, ndim, shape);
  if (!t) return NULL;
  float *p = mt_f32(t);
  for (int64_t i = 0, n = mt_numel(t); i < n; i++) p[i] = (float)mt_rand_normal();
  return t;
}

mt_tensor *mt_randint(int64_t lo, int64_t hi, int ndim, const int64_t *shape) {
  /* unsigned difference: no overflow for extreme bounds; the values must fit int32 */
  if (hi < lo || lo < INT32_MIN || hi > INT32_MAX || (uint64_t)hi - (uint64_t)lo >= ((uint64_t)1 << 31)) {
    mt_seterr("randint: empty or too wide range [%lld, %lld] (int32 values, at most 2^31 of them)", (long long)lo,
              (long long)hi);
    return NULL;
  }
  mt_tensor *t = mt_empty(MT_I32, ndim, shape);
  if (!t) return NULL;
  uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
  int32_t *p = mt_i32(t);
  for (int64_t i = 0, n = mt_numel(t); i < n; i++) p[i] = (int32_t)(lo + (int64_t)(mt_rand_u64() % span));
  return t;
}
