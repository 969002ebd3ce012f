/* Dense linear algebra through LAPACK: symmetric eigendecomposition, SVD,
   least squares and linear solves. The Fortran routines are declared here
   (OpenBLAS exports them; Debian ships no LAPACKE header with it), and every
   matrix is copied into a column-major double buffer first, so callers may
   pass any strides and float32 rounding does not pile up inside LAPACK. */
#include "core/linalg.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* gfortran passes the length of each CHARACTER argument after the others */
typedef size_t fstrlen;
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, fstrlen, fstrlen);
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
                    const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork,
                    int *info, fstrlen);
extern void dgelsd_(const int *m, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                    const int *ldb, double *s, const double *rcond, int *rank, double *work, const int *lwork,
                    int *iwork, int *info);
extern void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b, const int *ldb,
                   int *info);

/* LAPACK indexes with 32-bit ints */
#define LA_MAXDIM 46340

static double elem(const mt_tensor *t, int64_t i, int64_t j) {
  int64_t off = t->offset + i * t->stride[0] + (t->ndim > 1 ? j * t->stride[1] : 0);
  return t->dtype == MT_F32 ? (double)((const float *)t->storage->data)[off]
                            : (double)((const int32_t *)t->storage->data)[off];
}

static int check_matrix(const char *fn, const char *what, const mt_tensor *t, int allow_1d) {
  char s[64];
  if (!t) { mt_seterr("%s: %s is missing", fn, what); return -1; }
  if (!(t->ndim == 2 || (allow_1d && t->ndim == 1))) {
    mt_seterr("%s: %s must be a %smatrix, got shape %s", fn, what, allow_1d ? "vector or " : "",
              mt_shape_str(t, s, sizeof s));
    return -1;
  }
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] < 1 || t->shape[d] > LA_MAXDIM) {
      mt_seterr("%s: %s has shape %s; every size must be in 1..%d", fn, what, mt_shape_str(t, s, sizeof s), LA_MAXDIM);
      return -1;
    }
  return 0;
}

/* t (2-d, or 1-d as one column) -> column-major rows x cols buffer with leading
   dimension ld >= rows (extra rows zeroed); -1 on a non-finite entry */
static double *to_colmajor(const char *fn, const char *what, const mt_tensor *t, int64_t ld) {
  int64_t rows = t->shape[0], cols = t->ndim > 1 ? t->shape[1] : 1;
  double *buf = calloc((size_t)(ld * cols), sizeof *buf);
  if (!buf) { mt_seterr("%s: out of memory", fn); return NULL; }
  for (int64_t j = 0; j < cols; j++)
    for (int64_t i = 0; i < rows; i++) {
      double v = elem(t, i, j);
      if (!isfinite(v)) {
        free(buf);
        mt_seterr("%s: %s has a %s entry at [%lld,%lld]", fn, what, isnan(v) ? "NaN" : "infinite", (long long)i + 1,
                  (long long)j + 1);
        return NULL;
      }
      buf[i + j * ld] = v;
    }
  return buf;
}

static mt_tensor *new_f32(const char *fn, int ndim, int64_t d0, int64_t d1) {
  int64_t shape[2] = {d0, d1};
  mt_tensor *t = mt_empty(MT_F32, ndim, shape);
  if (!t) mt_seterr("%s: out of memory", fn);
  return t;
}

/* index of the entry of largest magnitude among n values at stride s (first on ties) */
static int64_t argmax_abs(const double *v, int64_t n, int64_t s) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (fabs(v[i * s]) > fabs(v[best * s])) best = i;
  return best;
}

int mt_eigh(mt_tensor *a, mt_tensor **values, mt_tensor **vectors) {
  const char *fn = "eigh";
  *values = *vectors = NULL;
  if (check_matrix(fn, "the matrix", a, 0)) return -1;
  char s[64];
  if (a->shape[0] != a->shape[1]) {
    mt_seterr("%s: expected a square symmetric matrix, got shape %s", fn, mt_shape_str(a, s, sizeof s));
    return -1;
  }
  int n = (int)a->shape[0];
  double *m = to_colmajor(fn, "the matrix", a, n);
  if (!m) return -1;
  double scale = 0;
  for (int64_t k = 0; k < (int64_t)n * n; k++) scale = fmax(scale, fabs(m[k]));
  for (int j = 0; j < n; j++)
    for (int i = j + 1; i < n; i++)
      if (fabs(m[i + (int64_t)j * n] - m[j + (int64_t)i * n]) > 1e-4 * scale) {
        mt_seterr("%s: the matrix is not symmetric: entry [%d,%d] = %g but [%d,%d] = %g", fn, i + 1, j + 1,
                  m[i + (int64_t)j * n], j + 1, i + 1, m[j + (int64_t)i * n]);
        free(m);
        return -1;
      }
  double *w = malloc(sizeof *w * (size_t)n);
  if (!w) { mt_seterr("%s: out of memory", fn); free(m); return -1; }
  int lwork = -1, liwork = -1, info = 0, iq;
  double wq;
  dsyevd_("V", "L", &n, m, &n, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);   /* workspace query */
  lwork = (int)wq;
  liwork = iq;
  double *work = malloc(sizeof *work * (size_t)lwork);
  int *iwork = malloc(sizeof *iwork * (size_t)liwork);
  if (!work || !iwork) { mt_seterr("%s: out of memory", fn); info = -1000; }
  else dsyevd_("V", "L", &n, m, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  free(work);
  free(iwork);
  if (info != 0) {
    if (info != -1000) mt_seterr("%s: LAPACK dsyevd failed (info %d): the eigenvalues did not converge", fn, info);
    free(m); free(w);
    return -1;
  }
  mt_tensor *vals = new_f32(fn, 1, n, 0), *vecs = new_f32(fn, 2, n, n);
  if (!vals || !vecs) { mt_unref(vals); mt_unref(vecs); free(m); free(w); return -1; }
  float *pv = mt_f32(vals), *pm = mt_f32(vecs);
  for (int j = 0; j < n; j++) {
    double *col = m + (int64_t)j * n;
    double sign = col[argmax_abs(col, n, 1)] < 0 ? -1 : 1;
    pv[j] = (float)w[j];
    for (int i = 0; i < n; i++) pm[(int64_t)i * n + j] = (float)(sign * col[i]);
  }
  free(m);
  free(w);
  *values = vals;
  *vectors = vecs;
  return 0;
}

int mt_svd(mt_tensor *a, mt_tensor **u, mt_tensor **s, mt_tensor **vt) {
  const char *fn = "svd";
  *u = *s = *vt = NULL;
  if (check_matrix(fn, "the matrix", a, 0)) return -1;
  /* LAPACK sees the row-major [m,n] data as the column-major transpose at = a^T [n,m].
     at = U' S V'^T gives a = V' S U'^T: the column-major V'^T [k,m] is a's u stored
     row-major [m,k], and the column-major U' [n,k] is a's vt stored row-major [k,n]. */
  int m = (int)a->shape[0], n = (int)a->shape[1], k = m < n ? m : n;
  int64_t mm = m, nn = n, kk = k;
  double *at = malloc(sizeof *at * (size_t)(mm * nn));
  if (!at) { mt_seterr("%s: out of memory", fn); return -1; }
  for (int64_t i = 0; i < mm; i++)
    for (int64_t j = 0; j < nn; j++) {
      double v = elem(a, i, j);
      if (!isfinite(v)) {
        mt_seterr("%s: the matrix has a %s entry at [%lld,%lld]", fn, isnan(v) ? "NaN" : "infinite", (long long)i + 1,
                  (long long)j + 1);
        free(at);
        return -1;
      }
      at[j + i * nn] = v;   /* column-major n x m, leading dimension n */
    }
  double *sv = malloc(sizeof *sv * (size_t)kk);
  double *uu = malloc(sizeof *uu * (size_t)(nn * kk));   /* U' : n x k */
  double *vv = malloc(sizeof *vv * (size_t)(kk * mm));   /* V'^T : k x m */
  int *iwork = malloc(sizeof *iwork * (size_t)(8 * kk));
  int lwork = -1, info = 0;
  double wq;
  if (!sv || !uu || !vv || !iwork) { mt_seterr("%s: out of memory", fn); info = -1000; }
  else {
    dgesdd_("S", &n, &m, at, &n, sv, uu, &n, vv, &k, &wq, &lwork, iwork, &info, 1);
    lwork = (int)wq;
    double *work = malloc(sizeof *work * (size_t)lwork);
    if (!work) { mt_seterr("%s: out of memory", fn); info = -1000; }
    else dgesdd_("S", &n, &m, at, &n, sv, uu, &n, vv, &k, work, &lwork, iwork, &info, 1);
    free(work);
  }
  free(at);
  free(iwork);
  if (info != 0) {
    if (info != -1000) mt_seterr("%s: LAPACK dgesdd failed (info %d): the SVD did not converge", fn, info);
    free(sv); free(uu); free(vv);
    return -1;
  }
  mt_tensor *tu = new_f32(fn, 2, m, k), *ts = new_f32(fn, 1, k, 0), *tv = new_f32(fn, 2, k, n);
  if (!tu || !ts || !tv) { mt_unref(tu); mt_unref(ts); mt_unref(tv); free(sv); free(uu); free(vv); return -1; }
  float *pu = mt_f32(tu), *ps = mt_f32(ts), *pt = mt_f32(tv);
  for (int64_t j = 0; j < kk; j++) {
    const double *row = uu + j * nn;   /* a's vt row j, contiguous */
    double sign = row[argmax_abs(row, nn, 1)] < 0 ? -1 : 1;
    ps[j] = (float)sv[j];
    for (int64_t c = 0; c < nn; c++) pt[j * nn + c] = (float)(sign * row[c]);
    for (int64_t i = 0; i < mm; i++) pu[i * kk + j] = (float)(sign * vv[j + i * kk]);
  }
  free(sv); free(uu); free(vv);
  *u = tu; *s = ts; *vt = tv;
  return 0;
}

mt_tensor *mt_lstsq(mt_tensor *a, mt_tensor *b, double rcond, int *rank) {
  const char *fn = "lstsq";
  if (check_matrix(fn, "a", a, 0) || check_matrix(fn, "b", b, 1)) return NULL;
  char s1[64], s2[64];
  if (b->shape[0] != a->shape[0]) {
    mt_seterr("%s: a %s and b %s have different numbers of rows", fn, mt_shape_str(a, s1, sizeof s1),
              mt_shape_str(b, s2, sizeof s2));
    return NULL;
  }
  int m = (int)a->shape[0], n = (int)a->shape[1], nrhs = b->ndim > 1 ? (int)b->shape[1] : 1;
  int ldb = m > n ? m : n, k = m < n ? m : n, r = 0, info = 0, lwork = -1, iq = 0;
  double *ma = to_colmajor(fn, "a", a, m);
  double *mb = ma ? to_colmajor(fn, "b", b, ldb) : NULL;
  if (!mb) { free(ma); return NULL; }
  double *sv = malloc(sizeof *sv * (size_t)k), wq;
  if (rcond < 0) rcond = -1;
  if (!sv) { mt_seterr("%s: out of memory", fn); info = -1000; }
  else {
    dgelsd_(&m, &n, &nrhs, ma, &m, mb, &ldb, sv, &rcond, &r, &wq, &lwork, &iq, &info);
    lwork = (int)wq;
    int liwork = iq > 1 ? iq : 1;
    double *work = malloc(sizeof *work * (size_t)lwork);
    int *iwork = malloc(sizeof *iwork * (size_t)liwork);
    if (!work || !iwork) { mt_seterr("%s: out of memory", fn); info = -1000; }
    else dgelsd_(&m, &n, &nrhs, ma, &m, mb, &ldb, sv, &rcond, &r, work, &lwork, iwork, &info);
    free(work);
    free(iwork);
  }
  free(ma);
  free(sv);
  if (info != 0) {
    if (info != -1000) mt_seterr("%s: LAPACK dgelsd failed (info %d): the SVD did not converge", fn, info);
    free(mb);
    return NULL;
  }
  mt_tensor *x = new_f32(fn, b->ndim, n, nrhs);
  if (!x) { free(mb); return NULL; }
  float *px = mt_f32(x);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < nrhs; j++) px[i * nrhs + j] = (float)mb[i + j * ldb];
  free(mb);
  if (rank) *rank = r;
  return x;
}

mt_tensor *mt_solve(mt_tensor *a, mt_tensor *b) {
  const char *fn = "solve";
  if (check_matrix(fn, "a", a, 0) || check_matrix(fn, "b", b, 1)) return NULL;
  char s1[64], s2[64];
  if (a->shape[0] != a->shape[1]) {
    mt_seterr("%s: a must be square, got shape %s", fn, mt_shape_str(a, s1, sizeof s1));
    return NULL;
  }
  if (b->shape[0] != a->shape[0]) {
    mt_seterr("%s: a %s and b %s have different numbers of rows", fn, mt_shape_str(a, s1, sizeof s1),
              mt_shape_str(b, s2, sizeof s2));
    return NULL;
  }
  int n = (int)a->shape[0], nrhs = b->ndim > 1 ? (int)b->shape[1] : 1, info = 0;
  double *ma = to_colmajor(fn, "a", a, n);
  double *mb = ma ? to_colmajor(fn, "b", b, n) : NULL;
  int *ipiv = malloc(sizeof *ipiv * (size_t)n);
  if (!mb || !ipiv) {
    if (mb && !ipiv) mt_seterr("%s: out of memory", fn);
    free(ma); free(mb); free(ipiv);
    return NULL;
  }
  dgesv_(&n, &nrhs, ma, &n, ipiv, mb, &n, &info);
  free(ma);
  free(ipiv);
  if (info != 0) {
    if (info > 0) mt_seterr("%s: the matrix is singular (U[%d,%d] is exactly zero)", fn, info, info);
    else mt_seterr("%s: LAPACK dgesv failed (info %d)", fn, info);
    free(mb);
    return NULL;
  }
  mt_tensor *x = new_f32(fn, b->ndim, n, nrhs);
  if (!x) { free(mb); return NULL; }
  float *px = mt_f32(x);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < nrhs; j++) px[i * nrhs + j] = (float)mb[i + j * (int64_t)n];
  free(mb);
  return x;
}
