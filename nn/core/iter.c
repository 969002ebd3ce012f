/* Strided iteration (core/iter.h): broadcast shapes, dims merged where every
   operand is contiguous across them, rows handed to a kernel callback. */
#include "core/iter.h"
#include <string.h>

int mt_broadcast_shapes(const char *fn, int n, mt_tensor *const *ts, int *ndim, int64_t *shape) {
  int nd = 0;
  for (int i = 0; i < n; i++) if (ts[i]->ndim > nd) nd = ts[i]->ndim;
  for (int d = 0; d < nd; d++) shape[d] = 1;
  for (int i = 0; i < n; i++) {
    int off = nd - ts[i]->ndim;
    for (int d = 0; d < ts[i]->ndim; d++) {
      int64_t s = ts[i]->shape[d], *o = &shape[off + d];
      if (s == *o || s == 1) continue;
      if (*o == 1) { *o = s; continue; }
      char a[64], b[64];
      mt_seterr("%s: shapes %s and %s cannot be broadcast (size %lld vs %lld at dim %d)", fn,
                mt_shape_str(ts[0], a, sizeof a), mt_shape_str(ts[i > 0 ? i : 1 < n ? 1 : 0], b, sizeof b),
                (long long)*o, (long long)s, off + d + 1);
      return -1;
    }
  }
  *ndim = nd;
  return 0;
}

void mt_iter_init(mt_iter *it, int ndim, const int64_t *shape, int n, mt_tensor *const *ts) {
  int64_t st[3][MT_MAXDIM];
  for (int i = 0; i < n; i++) {
    int off = ndim - ts[i]->ndim;
    for (int d = 0; d < ndim; d++) {
      int sd = d - off;
      st[i][d] = (sd < 0 || ts[i]->shape[sd] == 1) ? 0 : ts[i]->stride[sd];
    }
    it->base[i] = (char *)ts[i]->storage->data + ts[i]->offset * 4;
  }
  /* drop size-1 dims, then merge dims that are contiguous for every operand */
  int k = 0;
  int64_t sh[MT_MAXDIM];
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1) continue;
    if (k > 0) {
      int merge = 1;
      for (int i = 0; i < n; i++) if (it->st[i][k - 1] != st[i][d] * shape[d]) merge = 0;
      if (merge) {
        sh[k - 1] *= shape[d];
        for (int i = 0; i < n; i++) it->st[i][k - 1] = st[i][d];
        continue;
      }
    }
    sh[k] = shape[d];
    for (int i = 0; i < n; i++) it->st[i][k] = st[i][d];
    k++;
  }
  if (k == 0) { sh[0] = 1; for (int i = 0; i < n; i++) it->st[i][0] = 0; k = 1; }
  for (int d = 0; d < ndim; d++) if (shape[d] == 0) { sh[0] = 0; k = 1; }
  it->ndim = k;
  memcpy(it->shape, sh, sizeof(int64_t) * (size_t)k);
  it->n = n;
}

/* rows are cut into fixed chunks, spread over threads when there is enough work;
   every element is computed the same way whatever the thread count */
#define ITER_CHUNK 16384

void mt_iter_run(mt_iter *it, mt_row_fn fn, void *ud) {
  int nd = it->ndim, n = it->n;
  int64_t len = it->shape[nd - 1];
  if (len == 0) return;
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= it->shape[d];
  int64_t rst[3];
  for (int i = 0; i < n; i++) rst[i] = it->st[i][nd - 1];
  int64_t per_row = (len + ITER_CHUNK - 1) / ITER_CHUNK, items = rows * per_row;
#pragma omp parallel for schedule(static) if (rows * len >= 4 * ITER_CHUNK)
  for (int64_t w = 0; w < items; w++) {
    int64_t r = w / per_row, c0 = (w % per_row) * ITER_CHUNK;
    int64_t clen = len - c0 < ITER_CHUNK ? len - c0 : ITER_CHUNK;
    char *p[3];
    for (int i = 0; i < n; i++) {
      int64_t o = c0 * rst[i], rest = r;
      for (int d = nd - 2; d >= 0; d--) {   /* the row's coordinates, last dim fastest */
        o += (rest % it->shape[d]) * it->st[i][d];
        rest /= it->shape[d];
      }
      p[i] = it->base[i] + o * 4;
    }
    fn(clen, p, rst, ud);
  }
}
