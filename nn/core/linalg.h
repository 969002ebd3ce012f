/* Dense linear algebra through LAPACK (the copy inside OpenBLAS).
   Inputs are 2-d (b may be 1-d) float32 or int32 tensors of any strides; the
   work is done in double precision and the results are new contiguous float32
   tensors without autograd history (these ops are not differentiable).
   Every function returns 0 / a tensor, or -1 / NULL with mt_error() set.

   Sign convention (so results are deterministic): every eigenvector, and every
   right singular vector (row of vt), is flipped so that its entry of largest
   magnitude is positive (the first such entry when several tie); the matching
   left singular vector (column of u) is flipped with it, so u diag(s) vt == a. */
#ifndef MT_LINALG_H
#define MT_LINALG_H
#include "core/tensor.h"

/* a [n,n] symmetric (checked to a relative 1e-4; the lower triangle is used):
   values [n] in ascending order, vectors [n,n] whose column j goes with values[j] */
int mt_eigh(mt_tensor *a, mt_tensor **values, mt_tensor **vectors);

/* thin SVD of a [m,n], k = min(m,n): u [m,k], s [k] descending, vt [k,n] */
int mt_svd(mt_tensor *a, mt_tensor **u, mt_tensor **s, mt_tensor **vt);

/* minimum-norm least squares min ||a x - b|| (divide and conquer SVD, dgelsd):
   a [m,n], b [m] or [m,k] -> x [n] or [n,k]; singular values below
   rcond * s_max count as zero (rcond < 0: machine precision). *rank may be NULL. */
mt_tensor *mt_lstsq(mt_tensor *a, mt_tensor *b, double rcond, int *rank);

/* a x = b for square a (LU with partial pivoting): b [n] or [n,k] -> x like b */
mt_tensor *mt_solve(mt_tensor *a, mt_tensor *b);

#endif
