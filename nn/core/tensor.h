/* The native tensor core: storage, views, creation.
   Plain C, no Lua. Every function that can fail returns NULL (or -1) and
   leaves a message naming the function in mt_error() (core/error.h). */
#ifndef MT_TENSOR_H
#define MT_TENSOR_H
#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#define MT_MAXDIM 8

typedef enum { MT_F32 = 0, MT_I32 = 1 } mt_dtype;

typedef struct mt_storage {
  int refcount;
  uint32_t version;      /* bumped by every in-place write: autograd checks it */
  size_t nbytes;
  void *data;
} mt_storage;

struct mt_node;

typedef struct mt_tensor {
  int refcount;
  mt_dtype dtype;
  int ndim;
  int64_t shape[MT_MAXDIM];
  int64_t stride[MT_MAXDIM];   /* in elements */
  int64_t offset;              /* in elements */
  mt_storage *storage;
  /* autograd */
  int requires_grad;           /* leaf flag, or "produced by a recorded op" */
  int retains_grad;
  struct mt_tensor *grad;      /* accumulated gradient (leaves, retained non-leaves) */
  struct mt_node *grad_fn;     /* op that produced it (strong ref); NULL for leaves */
  struct mt_node *acc;         /* leaf's accumulate node, created on first use (strong ref) */
} mt_tensor;

/* ---- names for messages ---- */
/* "[2,3]" into buf */
const char *mt_shape_str(const mt_tensor *t, char *buf, size_t n);
const char *mt_dims_str(const int64_t *shape, int ndim, char *buf, size_t n);
const char *mt_dtype_name(mt_dtype d);

/* ---- memory accounting: bytes of live storage, for the Lua collector ---- */
size_t mt_live_bytes(void);
/* bytes in tensors now and at most, in freed buffers kept for reuse, and their peak sum;
   total ever allocated; and malloc's own view of the whole process (glibc's mallinfo2:
   bytes in use, bytes free but kept; both 0 where it is not available) */
typedef struct { size_t live, cached, peak_live, peak_held, total, heap_used, heap_free; } mt_memory;
void mt_memory_stats(mt_memory *m, int reset_peaks);
size_t mt_total_allocated(void);   /* monotone counter */
void mt_release_cache(void);       /* return cached free buffers to the system */
/* give the pages of freed heap memory back to the system (glibc's malloc_trim; a no-op
   elsewhere): a buffer that left the cache may sit between live ones, where malloc alone
   never returns it, so without this the resident size keeps every hole ever made */
void mt_trim_heap(void);

/* ---- lifetime ---- */
mt_tensor *mt_ref(mt_tensor *t);
void mt_unref(mt_tensor *t);      /* NULL-safe */

/* ---- creation (results have refcount 1, contiguous) ---- */
mt_tensor *mt_empty(mt_dtype dt, int ndim, const int64_t *shape);
mt_tensor *mt_zeros(mt_dtype dt, int ndim, const int64_t *shape);
mt_tensor *mt_full(mt_dtype dt, int ndim, const int64_t *shape, double v);
mt_tensor *mt_scalar(mt_dtype dt, double v);              /* 0-d */
mt_tensor *mt_arange(double start, double end, double step, mt_dtype dt);
mt_tensor *mt_from_data(mt_dtype dt, int ndim, const int64_t *shape, const void *data); /* copies */
mt_tensor *mt_zeros_like(const mt_tensor *t);
mt_tensor *mt_empty_like(const mt_tensor *t);
mt_tensor *mt_alias(mt_tensor *t);  /* same storage/view, no autograd history */

/* ---- inspection ---- */
int64_t mt_numel(const mt_tensor *t);
int mt_is_contiguous(const mt_tensor *t);
size_t mt_dtype_size(mt_dtype d);
static inline float *mt_f32(const mt_tensor *t) { return (float *)t->storage->data + t->offset; }
static inline int32_t *mt_i32(const mt_tensor *t) { return (int32_t *)t->storage->data + t->offset; }
double mt_get(const mt_tensor *t, const int64_t *idx);     /* idx 0-based */
void mt_set(mt_tensor *t, const int64_t *idx, double v);
int mt_same_shape(const mt_tensor *a, const mt_tensor *b);
/* normalise a 0-based dim that may be negative (-1 = last); -1 + error if out of range */
int mt_wrap_dim(const char *fn, int dim, int ndim);

/* ---- random: one global generator (xoshiro256**, seeded by splitmix64) ---- */
void mt_seed(uint64_t seed);
uint64_t mt_rand_u64(void);
double mt_rand_double(void);               /* [0,1), 53 bits */
double mt_rand_normal(void);               /* Box-Muller, standard normal */
mt_tensor *mt_rand(int ndim, const int64_t *shape);   /* U[0,1) float32 */
mt_tensor *mt_randn(int ndim, const int64_t *shape);
mt_tensor *mt_randint(int64_t lo, int64_t hi, int ndim, const int64_t *shape); /* [lo,hi] inclusive, int32 */
/* save/restore generator state (4 words) for checkpoints */
void mt_rng_get_state(uint64_t s[4]);
void mt_rng_set_state(const uint64_t s[4]);

#endif
