/* matmul with PyTorch's rules: 1-d operands promoted, batch dims broadcast,
   each [M,K]@[K,N] product handed to cblas_sgemm on strided memory when BLAS
   can read it as is, folded into one big product when the right side is shared. */
#include "core/ops.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include <stdlib.h>
#include <string.h>

/* how BLAS can read a [rows, cols] matrix with strides (sr, sc): 0 no-trans, 1 trans, -1 copy */
static int blas_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, int64_t *ld) {
  if (sc == 1 && (sr >= (cols > 1 ? cols : 1) || rows == 1)) { *ld = rows == 1 ? (cols > 1 ? cols : 1) : sr; return 0; }
  if (sr == 1 && (sc >= (rows > 1 ? rows : 1) || cols == 1)) { *ld = cols == 1 ? (rows > 1 ? rows : 1) : sc; return 1; }
  return -1;
}

/* out [batch..., M, N] (contiguous) = a [..., M, K] @ b [..., K, N], both ndim >= 2, no autograd */
static int bmm_raw(mt_tensor *a, mt_tensor *b, mt_tensor **res) {
  int nb_a = a->ndim - 2, nb_b = b->ndim - 2;
  int nb = nb_a > nb_b ? nb_a : nb_b;
  int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
  int64_t shape[MT_MAXDIM], sa[MT_MAXDIM], sb[MT_MAXDIM];
  for (int d = 0; d < nb; d++) {
    int da = d - (nb - nb_a), db = d - (nb - nb_b);
    int64_t xa = da >= 0 ? a->shape[da] : 1, xb = db >= 0 ? b->shape[db] : 1;
    if (xa != xb && xa != 1 && xb != 1) {
      char s1[64], s2[64];
      mt_seterr("matmul: %s @ %s: batch dimensions %lld and %lld cannot be broadcast", mt_shape_str(a, s1, sizeof s1),
                mt_shape_str(b, s2, sizeof s2), (long long)xa, (long long)xb);
      return -1;
    }
    shape[d] = xa > xb ? xa : xb;
    sa[d] = (da >= 0 && xa != 1) ? a->stride[da] : 0;
    sb[d] = (db >= 0 && xb != 1) ? b->stride[db] : 0;
  }
  shape[nb] = M; shape[nb + 1] = N;
  mt_tensor *out = mt_empty(MT_F32, nb + 2, shape);
  if (!out) return -1;
  *res = out;
  int64_t nbatch = 1;
  for (int d = 0; d < nb; d++) nbatch *= shape[d];
  if (nbatch == 0 || M == 0 || N == 0) return 0;
  if (K == 0) { memset(mt_f32(out), 0, sizeof(float) * (size_t)mt_numel(out)); return 0; }

  mt_tensor *ac = NULL, *bc = NULL;
  int64_t lda, ldb;
  int64_t asr = a->stride[a->ndim - 2], asc = a->stride[a->ndim - 1];
  int64_t bsr = b->stride[b->ndim - 2], bsc = b->stride[b->ndim - 1];
  int ta = blas_layout(M, K, asr, asc, &lda), tb = blas_layout(K, N, bsr, bsc, &ldb);
  if (ta < 0) {
    ac = mt_contiguous(a);
    if (!ac) return -1;
    a = ac; ta = 0; lda = K;
    for (int d = 0; d < nb; d++) { int da = d - (nb - nb_a); sa[d] = (da >= 0 && a->shape[da] != 1) ? a->stride[da] : 0; }
  }
  if (tb < 0) {
    bc = mt_contiguous(b);
    if (!bc) { mt_unref(ac); return -1; }
    b = bc; tb = 0; ldb = N;
    for (int d = 0; d < nb; d++) { int db = d - (nb - nb_b); sb[d] = (db >= 0 && b->shape[db] != 1) ? b->stride[db] : 0; }
  }
  const float *pa = mt_f32(a), *pb = mt_f32(b);
  float *po = mt_f32(out);

  /* b shared by every batch and a's batch rows evenly spaced: one product of nbatch*M rows */
  int b_shared = 1;
  for (int d = 0; d < nb; d++) if (sb[d] != 0) b_shared = 0;
  if (b_shared && ta == 0 && nb > 0) {
    int fold = 1;
    int64_t expect = lda * M;
    for (int d = nb - 1; d >= 0; d--) {
      if (shape[d] == 1) continue;
      if (sa[d] != expect) { fold = 0; break; }
      expect *= shape[d];
    }
    if (fold) {
      mt_sgemm(0, tb, nbatch * M, N, K, pa, lda, pb, ldb, 0.0f, po, N);
      mt_unref(ac); mt_unref(bc);
      return 0;
    }
  }
  if (nbatch == 1) {
    mt_sgemm(ta, tb, M, N, K, pa, lda, pb, ldb, 0.0f, po, N);
  } else {
#pragma omp parallel for schedule(static) if (mt_par_worth(2.0 * nbatch * M * N * K))
    for (int64_t bi = 0; bi < nbatch; bi++) {
      int64_t oa = 0, ob = 0, rest = bi;
      for (int d = nb - 1; d >= 0; d--) {   /* the batch index's coordinates, last dim fastest */
        int64_t i = rest % shape[d];
        rest /= shape[d];
        oa += i * sa[d];
        ob += i * sb[d];
      }
      mt_sgemm1(ta, tb, M, N, K, pa + oa, lda, pb + ob, ldb, 0.0f, po + bi * M * N, N);
    }
  }
  mt_unref(ac); mt_unref(bc);
  return 0;
}

static int bmm_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *a = NULL, *b = NULL;
  if (n->next[0] && !(b = mt_node_saved(n, 1))) return -1;
  if (n->next[1] && !(a = mt_node_saved(n, 0))) return -1;
  if (n->next[0]) {   /* dA = G @ B^T, summed over broadcast batch dims by the engine */
    mt_tensor *bt = mt_transpose(b, -1, -2);
    if (!bt || bmm_raw(g, bt, &gin[0])) { mt_unref(bt); return -1; }
    mt_unref(bt);
  }
  if (n->next[1]) {   /* dB = A^T @ G */
    mt_tensor *at = mt_transpose(a, -1, -2);
    if (!at || bmm_raw(at, g, &gin[1])) { mt_unref(at); return -1; }
    mt_unref(at);
  }
  return 0;
}

static mt_tensor *bmm(mt_tensor *a, mt_tensor *b) {
  mt_tensor *out = NULL;
  if (bmm_raw(a, b, &out)) { mt_unref(out); return NULL; }
  mt_tensor *in[2] = {a, b};
  if (mt_needs_grad(2, in)) {
    mt_node *n = mt_node_new("matmul", bmm_backward, 2, in);
    if (!n) { mt_unref(out); return NULL; }
    mt_node_save(n, n->next[1] ? a : NULL);
    mt_node_save(n, n->next[0] ? b : NULL);
    mt_node_attach(n, out);
  }
  return out;
}

mt_tensor *mt_matmul(mt_tensor *a, mt_tensor *b) {
  char s1[64], s2[64];
  if (a->ndim == 0 || b->ndim == 0) {
    mt_seterr("matmul: %s @ %s: both operands need at least one dimension", mt_shape_str(a, s1, sizeof s1),
              mt_shape_str(b, s2, sizeof s2));
    return NULL;
  }
  if (a->dtype != MT_F32 || b->dtype != MT_F32) {
    mt_seterr("matmul: needs float32 operands, got %s @ %s (use :float())", mt_dtype_name(a->dtype), mt_dtype_name(b->dtype));
    return NULL;
  }
  int64_t K1 = a->shape[a->ndim - 1], K2 = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
  if (K1 != K2) {
    mt_seterr("matmul: %s @ %s: inner dimensions %lld and %lld differ", mt_shape_str(a, s1, sizeof s1),
              mt_shape_str(b, s2, sizeof s2), (long long)K1, (long long)K2);
    return NULL;
  }
  if ((a->ndim > b->ndim ? a->ndim : b->ndim) + (a->ndim == 1 || b->ndim == 1) > MT_MAXDIM) {
    mt_seterr("matmul: too many dimensions");
    return NULL;
  }
  mt_tensor *a2 = a->ndim == 1 ? mt_unsqueeze(a, 0) : mt_ref(a);
  mt_tensor *b2 = b->ndim == 1 ? mt_unsqueeze(b, 1) : mt_ref(b);
  mt_tensor *r = (a2 && b2) ? bmm(a2, b2) : NULL;
  mt_unref(a2); mt_unref(b2);
  if (r && a->ndim == 1) { mt_tensor *s = mt_squeeze(r, -2); mt_unref(r); r = s; }
  if (r && b->ndim == 1) { mt_tensor *s = mt_squeeze(r, -1); mt_unref(r); r = s; }
  return r;
}
