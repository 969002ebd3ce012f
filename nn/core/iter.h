/* Strided iteration over up to three tensors of one broadcast shape: the
   callback gets one innermost row at a time, so kernels are plain loops. */
#ifndef MT_ITER_H
#define MT_ITER_H
#include "core/tensor.h"

typedef struct {
  int ndim;                        /* after coalescing; the last dim is the row */
  int64_t shape[MT_MAXDIM];
  int64_t st[3][MT_MAXDIM];        /* strides per operand (0 where broadcast) */
  char *base[3];                   /* data pointers at offset 0 */
  int n;                           /* operands */
} mt_iter;

/* out shape = broadcast of inputs; returns -1 with error naming fn when incompatible */
int mt_broadcast_shapes(const char *fn, int n, mt_tensor *const *ts, int *ndim, int64_t *shape);
/* operands: their shapes must broadcast to (ndim, shape) */
void mt_iter_init(mt_iter *it, int ndim, const int64_t *shape, int n, mt_tensor *const *ts);
typedef void (*mt_row_fn)(int64_t len, char **p, const int64_t *st, void *ud);
void mt_iter_run(mt_iter *it, mt_row_fn fn, void *ud);

#endif
