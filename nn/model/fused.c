/* Fused kernels for the transformer's hot path: each replaces a chain of generic ops by one
   autograd node. Each forward comes first, its backward right after it (llm.c style), with
   the gradients in a comment above the backward. Shapes:

     mt_layer_norm   x [..., D], w [D], b [D]           -> y [..., D]
     mt_ln_scale     x [..., D]                         -> scale [..., 1]      (hooked LayerNorm,
     mt_ln_normalize x [..., D], scale [..., 1]         -> xn [..., D]          step by step)
     mt_affine       xn [..., D], w [D], b [D]          -> y [..., D]
     mt_ln_parts     x [..., D], w [D], b [D]           -> scale, xn, y        (the three, no grad)
     mt_linear       x [..., K], W [K, N] or [H, K, E], b [N] or [H, E] -> [..., N] (N = H*E)
     mt_attn_softmax scores [..., T, S], scale, causal  -> pattern [..., T, S]
     mt_attn_scores  q [B, T, H, E], k [B, S, H, E]     -> scores [B, H, T, S] (unscaled)
     mt_attn_apply   pattern [B, H, T, S], v [B, S, H, E] -> z [B, T, H, E]                     */
#include "core/ops.h"
#include "core/autograd.h"
#include "core/fastmath.h"
#include "core/parallel.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- LayerNorm ----------------
   Per row x [D] of x [..., D], with mean m = sum_i x_i / D and scale s = sqrt(sum_i (x_i - m)^2 / D + eps):
     y_i = (x_i - m) / s * w_i + b_i
   One node (mt_layer_norm) on the hot path; three (mt_ln_scale, mt_ln_normalize, mt_affine)
   when a hook point sits between the steps. Both read a row's statistics from ln_row_stats,
   so the two paths give the same bits. */

/* a row's mean and scale: sums in double, the results rounded to float as the kernels use them */
static inline void ln_row_stats(const float *x, int64_t D, double eps, float *mean, float *scale) {
  double s = 0, v = 0;
  for (int64_t i = 0; i < D; i++) s += x[i];
  float m = D ? (float)(s / D) : 0.0f;
  for (int64_t i = 0; i < D; i++) { float c = x[i] - m; v += (double)c * c; }
  *mean = m;
  *scale = sqrtf((D ? (float)(v / D) : 0.0f) + (float)eps);
}
static inline float ln_row_mean(const float *x, int64_t D) {
  double s = 0;
  for (int64_t i = 0; i < D; i++) s += x[i];
  return D ? (float)(s / D) : 0.0f;
}

static int ln_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_layer_norm(mt_tensor *x, mt_tensor *w, mt_tensor *b, double eps) {
  char s1[64], s2[64];
  if (x->ndim < 1 || x->dtype != MT_F32) { mt_seterr("layer_norm: needs a float32 tensor [..., D]"); return NULL; }
  int64_t D = x->shape[x->ndim - 1];
  if (w->ndim != 1 || b->ndim != 1 || w->shape[0] != D || b->shape[0] != D || !mt_is_contiguous(w) || !mt_is_contiguous(b)) {
    mt_seterr("layer_norm: weight %s and bias %s must be contiguous [%lld] for input %s", mt_shape_str(w, s1, sizeof s1),
              mt_shape_str(b, s2, sizeof s2), (long long)D, mt_shape_str(x, s1, sizeof s1));
    return NULL;
  }
  mt_tensor *xc = mt_contiguous(x);
  if (!xc) return NULL;
  int64_t R = D ? mt_numel(xc) / D : 0, sst[1] = {2 * R};
  mt_tensor *y = mt_empty(MT_F32, xc->ndim, xc->shape), *stats = mt_empty(MT_F32, 1, sst);
  if (!y || !stats) { mt_unref(xc); mt_unref(y); mt_unref(stats); return NULL; }
  const float *px = mt_f32(xc), *pw = mt_f32(w), *pb = mt_f32(b);
  float *py = mt_f32(y), *ps = mt_f32(stats);
#pragma omp parallel for schedule(static) if (mt_par_worth(4.0 * R * D))
  for (int64_t r = 0; r < R; r++) {
    const float *xr = px + r * D;
    float *yr = py + r * D, mean, scale;
    ln_row_stats(xr, D, eps, &mean, &scale);
    for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - mean) / scale * pw[i] + pb[i];
    ps[2 * r] = mean;
    ps[2 * r + 1] = scale;
  }
  mt_tensor *in[3] = {x, w, b};
  if (mt_needs_grad(3, in)) {
    mt_node *n = mt_node_new("layer_norm", ln_backward, 3, in);
    if (!n) { mt_unref(xc); mt_unref(y); mt_unref(stats); return NULL; }
    mt_node_save(n, xc);
    mt_node_save(n, w);
    mt_node_save(n, stats);
    mt_node_attach(n, y);
  }
  mt_unref(xc);
  mt_unref(stats);
  return y;
}

/* with xn = (x - m) / s and dxn = dy * w:
     dx_i = (dxn_i - mean(dxn) - xn_i mean(dxn xn)) / s,  dw = sum_rows dy xn,  db = sum_rows dy */
static int ln_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *w = mt_node_saved(n, 1), *stats = mt_node_saved(n, 2);
  if (!x || !w || !stats) return -1;
  int64_t D = x->shape[x->ndim - 1], R = mt_numel(x) / D;
  const float *px = mt_f32(x), *pw = mt_f32(w), *pg = mt_f32(g), *ps = mt_f32(stats);
  mt_tensor *dx = n->next[0] ? mt_empty(MT_F32, x->ndim, x->shape) : NULL;
  mt_tensor *dw = n->next[1] ? mt_zeros(MT_F32, 1, &D) : NULL, *db = n->next[2] ? mt_zeros(MT_F32, 1, &D) : NULL;
  if ((n->next[0] && !dx) || (n->next[1] && !dw) || (n->next[2] && !db)) { mt_unref(dx); mt_unref(dw); mt_unref(db); return -1; }
  float *pdw = dw ? mt_f32(dw) : NULL, *pdb = db ? mt_f32(db) : NULL;
  /* rows in fixed blocks, each with its own partial dw and db, summed in block order:
     parallel, and the same bits for any thread count */
  int64_t blk = 64, nb = (R + blk - 1) / blk;
  int64_t pshape[2] = {nb, 2 * D};
  mt_tensor *part = (pdw || pdb) ? mt_zeros(MT_F32, 2, pshape) : NULL;
  if ((pdw || pdb) && !part) { mt_unref(dx); mt_unref(dw); mt_unref(db); return -1; }
  float *pp = part ? mt_f32(part) : NULL, *pdx = dx ? mt_f32(dx) : NULL;
#pragma omp parallel for schedule(static) if (mt_par_worth(8.0 * R * D))
  for (int64_t bi = 0; bi < nb; bi++) {
    float *bw = pp ? pp + bi * 2 * D : NULL, *bb = bw ? bw + D : NULL;
    for (int64_t r = bi * blk; r < R && r < (bi + 1) * blk; r++) {
      const float *xr = px + r * D, *gr = pg + r * D;
      float mean = ps[2 * r], scale = ps[2 * r + 1], inv = 1.0f / scale;
      double s1 = 0, s2 = 0;   /* mean(dxn), mean(dxn * xn) */
      for (int64_t i = 0; i < D; i++) {
        float xn = (xr[i] - mean) * inv, dxn = gr[i] * pw[i];
        s1 += dxn;
        s2 += (double)dxn * xn;
        if (bw) { bw[i] += gr[i] * xn; bb[i] += gr[i]; }
      }
      if (pdx) {
        float m1 = (float)(s1 / D), m2 = (float)(s2 / D);
        float *dr = pdx + r * D;
        for (int64_t i = 0; i < D; i++) {
          float xn = (xr[i] - mean) * inv;
          dr[i] = (gr[i] * pw[i] - m1 - xn * m2) * inv;
        }
      }
    }
  }
  for (int64_t bi = 0; bi < nb && pp; bi++)
    for (int64_t i = 0; i < D; i++) {
      if (pdw) pdw[i] += pp[bi * 2 * D + i];
      if (pdb) pdb[i] += pp[bi * 2 * D + D + i];
    }
  mt_unref(part);
  gin[0] = dx; gin[1] = dw; gin[2] = db;
  return 0;
}

/* The hooked steps. scale [..., 1] = s of each row of x [..., D] */
static int ln_scale_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_ln_scale(mt_tensor *x, double eps) {
  if (x->ndim < 1 || x->dtype != MT_F32) { mt_seterr("ln_scale: needs a float32 tensor [..., D]"); return NULL; }
  mt_tensor *xc = mt_contiguous(x);
  if (!xc) return NULL;
  int64_t shape[MT_MAXDIM], D = x->shape[x->ndim - 1];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = 1;
  mt_tensor *sc = mt_empty(MT_F32, x->ndim, shape);
  if (!sc) { mt_unref(xc); return NULL; }
  int64_t R = mt_numel(sc);
  const float *px = mt_f32(xc);
  float *ps = mt_f32(sc);
#pragma omp parallel for schedule(static) if (mt_par_worth(3.0 * R * D))
  for (int64_t r = 0; r < R; r++) {
    float mean;
    ln_row_stats(px + r * D, D, eps, &mean, &ps[r]);
  }
  if (mt_needs_grad(1, &x)) {
    mt_node *n = mt_node_new("ln_scale", ln_scale_backward, 1, &x);
    if (!n) { mt_unref(xc); mt_unref(sc); return NULL; }
    mt_node_save(n, xc);
    mt_node_save(n, sc);
    mt_node_attach(n, sc);
  }
  mt_unref(xc);
  return sc;
}

/* ds/dx_i = (x_i - m) / (D s): the mean's own term sums to zero */
static int ln_scale_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *sc = mt_node_saved(n, 1);
  if (!x || !sc) return -1;
  int64_t D = x->shape[x->ndim - 1], R = mt_numel(sc);
  mt_tensor *dx = mt_empty(MT_F32, x->ndim, x->shape);
  if (!dx) return -1;
  const float *px = mt_f32(x), *ps = mt_f32(sc), *pg = mt_f32(g);
  float *pd = mt_f32(dx);
  for (int64_t r = 0; r < R; r++) {
    const float *xr = px + r * D;
    float m = ln_row_mean(xr, D), k = pg[r] / ((float)D * ps[r]);
    for (int64_t i = 0; i < D; i++) pd[r * D + i] = (xr[i] - m) * k;
  }
  gin[0] = dx;
  return 0;
}

/* xn [..., D] = (x - m) / scale, with the scale an input of its own (a hook may have replaced it) */
static int ln_normalize_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_ln_normalize(mt_tensor *x, mt_tensor *scale) {
  if (x->ndim < 1 || x->dtype != MT_F32 || scale->dtype != MT_F32 || mt_numel(scale) * x->shape[x->ndim - 1] != mt_numel(x)) {
    mt_seterr("ln_normalize: needs float32 x [..., D] and scale [..., 1]");
    return NULL;
  }
  mt_tensor *xc = mt_contiguous(x), *sc = mt_contiguous(scale);
  mt_tensor *y = (xc && sc) ? mt_empty(MT_F32, x->ndim, x->shape) : NULL;
  if (y) {
    int64_t D = x->shape[x->ndim - 1], R = mt_numel(sc);
    const float *px = mt_f32(xc), *ps = mt_f32(sc);
    float *py = mt_f32(y);
#pragma omp parallel for schedule(static) if (mt_par_worth(3.0 * R * D))
    for (int64_t r = 0; r < R; r++) {
      const float *xr = px + r * D;
      float mean = ln_row_mean(xr, D);
      for (int64_t i = 0; i < D; i++) py[r * D + i] = (xr[i] - mean) / ps[r];
    }
    mt_tensor *in[2] = {x, scale};
    if (mt_needs_grad(2, in)) {
      mt_node *n = mt_node_new("ln_normalize", ln_normalize_backward, 2, in);
      if (!n) { mt_unref(y); y = NULL; }
      else { mt_node_save(n, xc); mt_node_save(n, sc); mt_node_attach(n, y); }
    }
  }
  mt_unref(xc); mt_unref(sc);
  return y;
}

/* dx_i = (g_i - mean(g)) / s;  ds = -sum_i g_i (x_i - m) / s^2 */
static int ln_normalize_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *sc = mt_node_saved(n, 1);
  if (!x || !sc) return -1;
  int64_t D = x->shape[x->ndim - 1], R = mt_numel(sc);
  mt_tensor *dx = n->next[0] ? mt_empty(MT_F32, x->ndim, x->shape) : NULL;
  mt_tensor *ds = n->next[1] ? mt_empty(MT_F32, n->in_ndim[1], n->in_shape[1]) : NULL;
  if ((n->next[0] && !dx) || (n->next[1] && !ds)) { mt_unref(dx); mt_unref(ds); return -1; }
  const float *px = mt_f32(x), *ps = mt_f32(sc), *pg = mt_f32(g);
  for (int64_t r = 0; r < R; r++) {
    const float *xr = px + r * D, *gr = pg + r * D;
    float m = ln_row_mean(xr, D), s = ps[r];
    double sg = 0, sgx = 0;
    for (int64_t i = 0; i < D; i++) { sg += gr[i]; sgx += (double)gr[i] * (xr[i] - m); }
    if (dx) {
      float mg = (float)(sg / D), *dr = mt_f32(dx) + r * D;
      for (int64_t i = 0; i < D; i++) dr[i] = (gr[i] - mg) / s;
    }
    if (ds) mt_f32(ds)[r] = (float)(-sgx / ((double)s * s));
  }
  gin[0] = dx; gin[1] = ds;
  return 0;
}

/* The three steps at once, without gradients: scale, xn and y = xn * w + b from one pass over
   each row (the statistics once, x read three times instead of six), the same bits as
   mt_ln_scale, mt_ln_normalize and mt_affine in turn. The hooked LayerNorm runs it when no
   input needs a gradient and recomputes only what a hook replaces. */
int mt_ln_parts(mt_tensor *x, mt_tensor *w, mt_tensor *b, double eps, mt_tensor **scale, mt_tensor **xn, mt_tensor **y) {
  *scale = *xn = *y = NULL;
  int64_t D = x->ndim ? x->shape[x->ndim - 1] : 0;
  if (x->ndim < 1 || x->dtype != MT_F32 || mt_numel(w) != D || mt_numel(b) != D || w->dtype != MT_F32 || b->dtype != MT_F32) {
    mt_seterr("ln_parts: needs float32 x [..., D], w [D] and b [D]");
    return -1;
  }
  mt_tensor *in[3] = {x, w, b};
  if (mt_needs_grad(3, in)) { mt_seterr("ln_parts: computes no gradients (use ln_scale, ln_normalize, affine)"); return -1; }
  int64_t shape[MT_MAXDIM];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = 1;
  mt_tensor *xc = mt_contiguous(x), *wc = mt_contiguous(w), *bc = mt_contiguous(b);
  mt_tensor *sc = mt_empty(MT_F32, x->ndim, shape), *n = mt_empty(MT_F32, x->ndim, x->shape),
            *out = mt_empty(MT_F32, x->ndim, x->shape);
  if (!xc || !wc || !bc || !sc || !n || !out) {
    mt_unref(xc); mt_unref(wc); mt_unref(bc); mt_unref(sc); mt_unref(n); mt_unref(out);
    return -1;
  }
  int64_t R = mt_numel(sc);
  const float *px = mt_f32(xc), *pw = mt_f32(wc), *pb = mt_f32(bc);
  float *ps = mt_f32(sc), *pn = mt_f32(n), *py = mt_f32(out);
#pragma omp parallel for schedule(static) if (mt_par_worth(5.0 * R * D))
  for (int64_t r = 0; r < R; r++) {
    const float *xr = px + r * D;
    float mean, s;
    ln_row_stats(xr, D, eps, &mean, &s);
    ps[r] = s;
    for (int64_t i = 0; i < D; i++) {
      float v = (xr[i] - mean) / s;
      pn[r * D + i] = v;
      py[r * D + i] = v * pw[i] + pb[i];
    }
  }
  mt_unref(xc); mt_unref(wc); mt_unref(bc);
  *scale = sc; *xn = n; *y = out;
  return 0;
}

/* y [..., D] = x * w + b, w and b [D] */
static int affine_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_affine(mt_tensor *x, mt_tensor *w, mt_tensor *b) {
  int64_t D = x->ndim ? x->shape[x->ndim - 1] : 0;
  if (x->ndim < 1 || x->dtype != MT_F32 || mt_numel(w) != D || mt_numel(b) != D || w->dtype != MT_F32 || b->dtype != MT_F32) {
    mt_seterr("affine: needs float32 x [..., D], w [D] and b [D]");
    return NULL;
  }
  mt_tensor *xc = mt_contiguous(x), *wc = mt_contiguous(w), *bc = mt_contiguous(b);
  mt_tensor *y = (xc && wc && bc) ? mt_empty(MT_F32, x->ndim, x->shape) : NULL;
  if (y) {
    int64_t R = D ? mt_numel(xc) / D : 0;
    const float *px = mt_f32(xc), *pw = mt_f32(wc), *pb = mt_f32(bc);
    float *py = mt_f32(y);
#pragma omp parallel for schedule(static) if (mt_par_worth(2.0 * R * D))
    for (int64_t r = 0; r < R; r++)
      for (int64_t i = 0; i < D; i++) py[r * D + i] = px[r * D + i] * pw[i] + pb[i];
    mt_tensor *in[3] = {x, w, b};
    if (mt_needs_grad(3, in)) {
      mt_node *n = mt_node_new("affine", affine_backward, 3, in);
      if (!n) { mt_unref(y); y = NULL; }
      else { mt_node_save(n, xc); mt_node_save(n, wc); mt_node_attach(n, y); }
    }
  }
  mt_unref(xc); mt_unref(wc); mt_unref(bc);
  return y;
}

/* dx = g * w;  dw = sum_rows g x;  db = sum_rows g */
static int affine_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *w = mt_node_saved(n, 1);
  if (!x || !w) return -1;
  int64_t D = x->shape[x->ndim - 1], R = D ? mt_numel(x) / D : 0;
  mt_tensor *dx = n->next[0] ? mt_empty(MT_F32, x->ndim, x->shape) : NULL;
  mt_tensor *dw = n->next[1] ? mt_empty(MT_F32, n->in_ndim[1], n->in_shape[1]) : NULL;
  mt_tensor *db = n->next[2] ? mt_empty(MT_F32, n->in_ndim[2], n->in_shape[2]) : NULL;
  double *acc = calloc((size_t)(2 * D + 1), sizeof *acc);
  if ((n->next[0] && !dx) || (n->next[1] && !dw) || (n->next[2] && !db) || !acc) {
    mt_unref(dx); mt_unref(dw); mt_unref(db); free(acc);
    if (!acc) mt_seterr("out of memory");
    return -1;
  }
  const float *px = mt_f32(x), *pw = mt_f32(w), *pg = mt_f32(g);
  for (int64_t r = 0; r < R; r++)
    for (int64_t i = 0; i < D; i++) {
      float gi = pg[r * D + i];
      if (dx) mt_f32(dx)[r * D + i] = gi * pw[i];
      acc[i] += (double)gi * px[r * D + i];
      acc[D + i] += gi;
    }
  for (int64_t i = 0; i < D; i++) {
    if (dw) mt_f32(dw)[i] = (float)acc[i];
    if (db) mt_f32(db)[i] = (float)acc[D + i];
  }
  free(acc);
  gin[0] = dx; gin[1] = dw; gin[2] = db;
  return 0;
}

/* ---------------- linear (bias folded into the GEMM) ---------------- */
/* W [H, K, E] as one [K, H*E] matrix, so a per-head projection is a single GEMM
   (packing x once instead of once per head); the copy is small next to x */
static mt_tensor *heads_to_cols(const float *W, int64_t H, int64_t K, int64_t E) {
  int64_t shape[2] = {K, H * E};
  mt_tensor *t = mt_empty(MT_F32, 2, shape);   /* from the buffer cache: no page faults */
  if (!t) return NULL;
  float *w = mt_f32(t);
  for (int64_t h = 0; h < H; h++)
    for (int64_t k = 0; k < K; k++) memcpy(w + k * H * E + h * E, W + (h * K + k) * E, sizeof(float) * (size_t)E);
  return t;
}

/* out [R, N] = x [R, K] @ W [K, N] + b */
static void linear_fwd(const float *x, const float *W, const float *b, float *out, int64_t R, int64_t K, int64_t N) {
  for (int64_t r = 0; r < R; r++) memcpy(out + r * N, b, sizeof(float) * (size_t)N);
  if (R == 0 || K == 0 || N == 0) return;
  mt_sgemm(0, 0, R, N, K, x, K, W, N, 1.0f, out, N);
}

static int linear_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_linear(mt_tensor *x, mt_tensor *W, mt_tensor *b) {
  char s1[64], s2[64], s3[64];
  int64_t K = x->ndim ? x->shape[x->ndim - 1] : 0, N, H = 0;
  if (W->ndim == 2) N = W->shape[1];
  else if (W->ndim == 3) { H = W->shape[0]; N = H * W->shape[2]; }
  else N = -1;
  int wk = W->ndim == 2 ? W->shape[0] == K : W->ndim == 3 ? W->shape[1] == K : 0;
  if (x->ndim < 1 || x->dtype != MT_F32 || W->dtype != MT_F32 || b->dtype != MT_F32 || N < 0 || !wk ||
      mt_numel(b) != N || !mt_is_contiguous(W) || !mt_is_contiguous(b)) {
    mt_seterr("linear: %s @ %s + %s: expected x [..., K], contiguous W [K, N] or [H, K, E], and b with N elements",
              mt_shape_str(x, s1, sizeof s1), mt_shape_str(W, s2, sizeof s2), mt_shape_str(b, s3, sizeof s3));
    return NULL;
  }
  mt_tensor *xc = mt_contiguous(x);
  if (!xc) return NULL;
  int64_t shape[MT_MAXDIM];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = N;
  mt_tensor *out = mt_empty(MT_F32, x->ndim, shape);
  if (!out) { mt_unref(xc); return NULL; }
  int64_t R = K ? mt_numel(xc) / K : 0;
  if (!K) { R = 1; for (int i = 0; i < x->ndim - 1; i++) R *= x->shape[i]; }
  mt_tensor *wc = H ? heads_to_cols(mt_f32(W), H, K, N / H) : NULL;
  if (H && !wc) { mt_unref(xc); mt_unref(out); return NULL; }
  linear_fwd(mt_f32(xc), H ? mt_f32(wc) : mt_f32(W), mt_f32(b), mt_f32(out), R, K, N);
  mt_unref(wc);
  mt_tensor *in[3] = {x, W, b};
  if (mt_needs_grad(3, in)) {
    mt_node *n = mt_node_new("linear", linear_backward, 3, in);
    if (!n) { mt_unref(xc); mt_unref(out); return NULL; }
    n->iarg[0] = K; n->iarg[1] = N; n->iarg[2] = H;
    mt_node_save(n, n->next[1] ? xc : NULL);
    mt_node_save(n, n->next[0] ? W : NULL);
    mt_node_attach(n, out);
  }
  mt_unref(xc);
  return out;
}

/* y = x W + b:  dx = g W^T,  dW = x^T g (scattered back to [H, K, E] for per-head weights),  db = sum_rows g */
static int linear_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = n->next[1] ? mt_node_saved(n, 0) : NULL, *W = n->next[0] ? mt_node_saved(n, 1) : NULL;
  if ((n->next[1] && !x) || (n->next[0] && !W)) return -1;
  int64_t K = n->iarg[0], N = n->iarg[1], H = n->iarg[2], R = mt_numel(g) / (N ? N : 1), E = H ? N / H : 0;
  const float *pg = mt_f32(g);
  if (n->next[0]) {   /* dx = g @ W^T */
    mt_tensor *dx = mt_empty(MT_F32, n->in_ndim[0], n->in_shape[0]);
    mt_tensor *wc = (H && W) ? heads_to_cols(mt_f32(W), H, K, E) : NULL;
    if (!dx || (H && !wc)) { mt_unref(dx); mt_unref(wc); return -1; }
    float *pdx = mt_f32(dx);
    if (R && K && N)
      mt_sgemm(0, 1, R, K, N, pg, N, H ? mt_f32(wc) : mt_f32(W), N, 0.0f, pdx, K);
    else memset(pdx, 0, sizeof(float) * (size_t)mt_numel(dx));
    mt_unref(wc);
    gin[0] = dx;
  }
  if (n->next[1]) {   /* dW = x^T @ g, scattered back to [H, K, E] for per-head weights */
    mt_tensor *dW = mt_zeros(MT_F32, n->in_ndim[1], n->in_shape[1]);
    int64_t tshape[2] = {K, N};
    mt_tensor *tmpt = H ? mt_empty(MT_F32, 2, tshape) : NULL;
    if (!dW || (H && !tmpt)) { mt_unref(dW); mt_unref(tmpt); return -1; }
    float *pdw = mt_f32(dW), *tmp = H ? mt_f32(tmpt) : NULL, *dst = H ? tmp : pdw;
    if (R && K && N)
      mt_sgemm(1, 0, K, N, R, mt_f32(x), K, pg, N, 0.0f, dst, N);
    else memset(dst, 0, sizeof(float) * (size_t)(K * N));
    if (H)
      for (int64_t h = 0; h < H; h++)
        for (int64_t k = 0; k < K; k++) memcpy(pdw + (h * K + k) * E, tmp + k * N + h * E, sizeof(float) * (size_t)E);
    mt_unref(tmpt);
    gin[1] = dW;
  }
  if (n->next[2]) {   /* db = column sums of g */
    mt_tensor *db = mt_empty(MT_F32, n->in_ndim[2], n->in_shape[2]);
    if (!db) return -1;
    float *pdb = mt_f32(db);
    double *acc = calloc((size_t)(N ? N : 1), sizeof *acc);
    if (!acc) { mt_unref(db); mt_seterr("out of memory"); return -1; }
    for (int64_t r = 0; r < R; r++) for (int64_t j = 0; j < N; j++) acc[j] += pg[r * N + j];
    for (int64_t j = 0; j < N; j++) pdb[j] = (float)acc[j];
    free(acc);
    gin[2] = db;
  }
  return 0;
}

/* ---------------- scaled, masked softmax ----------------
   p = softmax(scale * scores) over the last dim, keys after the query weighing 0 when causal */
static int attn_softmax_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_attn_softmax(mt_tensor *scores, double scale, int causal) {
  if (scores->ndim < 2 || scores->dtype != MT_F32) { mt_seterr("attn_softmax: needs float32 scores [..., T, S]"); return NULL; }
  mt_tensor *sc = mt_contiguous(scores);
  if (!sc) return NULL;
  mt_tensor *p = mt_empty(MT_F32, sc->ndim, sc->shape);
  if (!p) { mt_unref(sc); return NULL; }
  int64_t S = sc->shape[sc->ndim - 1], T = sc->shape[sc->ndim - 2], R = S ? mt_numel(sc) / S : 0;
  const float *px = mt_f32(sc);
  float *pp = mt_f32(p), fs = (float)scale;
#pragma omp parallel for schedule(static) if (mt_par_worth(8.0 * R * S))
  for (int64_t r = 0; r < R; r++) {
    const float *xr = px + r * S;
    float *pr = pp + r * S;
    int64_t q = r % (T ? T : 1), lim = causal ? (q + 1 < S ? q + 1 : S) : S;
    float m = -INFINITY;
    for (int64_t j = 0; j < lim; j++) { float v = xr[j] * fs; pr[j] = v; if (v > m) m = v; }
    for (int64_t j = 0; j < lim; j++) pr[j] -= m;
    mt_map_array(MT_MAP_EXP, lim, pr, NULL, pr);
    for (int64_t j = 0; j < lim; j++)   /* a score masked to -inf (by a hook) weighs exactly 0 */
      if (xr[j] == -INFINITY) pr[j] = 0.0f;
    double s = 0;
    for (int64_t j = 0; j < lim; j++) s += pr[j];
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < lim; j++) pr[j] *= inv;
    for (int64_t j = lim; j < S; j++) pr[j] = 0.0f;
  }
  mt_unref(sc);
  if (mt_needs_grad(1, &scores)) {
    mt_node *n = mt_node_new("attn_softmax", attn_softmax_backward, 1, &scores);
    if (!n) { mt_unref(p); return NULL; }
    n->darg[0] = scale;
    mt_node_save(n, p);
    mt_node_attach(n, p);
  }
  return p;
}

/* d scores_j = scale * p_j (g_j - sum_k p_k g_k) */
static int attn_softmax_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *p = mt_node_saved(n, 0);
  if (!p) return -1;
  int64_t S = p->shape[p->ndim - 1], R = mt_numel(p) / (S ? S : 1);
  float scale = (float)n->darg[0];
  mt_tensor *d = mt_empty(MT_F32, p->ndim, p->shape);
  if (!d) return -1;
  const float *pp = mt_f32(p), *pg = mt_f32(g);
  float *pd = mt_f32(d);
#pragma omp parallel for schedule(static) if (mt_par_worth(4.0 * R * S))
  for (int64_t r = 0; r < R; r++) {
    const float *pr = pp + r * S, *gr = pg + r * S;
    float *dr = pd + r * S;
    double s = 0;
    for (int64_t j = 0; j < S; j++) s += (double)pr[j] * gr[j];
    float sf = (float)s;
    for (int64_t j = 0; j < S; j++) dr[j] = scale * pr[j] * (gr[j] - sf);
  }
  gin[0] = d;
  return 0;
}

/* ---------------- per-(batch, head) products ----------------
   Attention's operands come in two layouts: a pattern [B,H,rows,cols] and a projection
   [B,rows,H,cols] (q, k, v, z as the linear layers write them). A product per (batch, head)
   reads either through strides, so nothing is permuted into a copy. */
typedef struct { const float *p; int64_t rows, cols; int proj; } head_operand;

static head_operand pattern_of(const float *p, int64_t rows, int64_t cols) { return (head_operand){p, rows, cols, 0}; }
static head_operand proj_of(const float *p, int64_t rows, int64_t cols) { return (head_operand){p, rows, cols, 1}; }

static const float *head_at(head_operand o, int64_t b, int64_t h, int64_t H) {
  return o.proj ? o.p + (b * o.rows * H + h) * o.cols : o.p + (b * H + h) * o.rows * o.cols;
}

/* C[b,h] = op(A[b,h]) @ op(B[b,h]) for every batch and head; C is M x N, the inner size K */
static void per_head_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, head_operand A, head_operand Bo, head_operand C,
                          int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (mt_par_worth(2.0 * B * H * M * N * K))
  for (int64_t bh = 0; bh < B * H; bh++) {
    int64_t b = bh / H, h = bh % H;
    mt_sgemm1(ta, tb, M, N, K, head_at(A, b, h, H), A.proj ? H * A.cols : A.cols, head_at(Bo, b, h, H),
              Bo.proj ? H * Bo.cols : Bo.cols, 0.0f, (float *)head_at(C, b, h, H), C.proj ? H * C.cols : C.cols);
  }
}

/* the gradient of one operand of a per-head product, in its own layout, or -1 */
static int head_grad(mt_node *n, int which, mt_tensor *like, int ta, int tb, int64_t M, int64_t Nn, int64_t K, head_operand A,
                     head_operand Bo, int proj, int64_t B, int64_t H, mt_tensor **gin) {
  if (!n->next[which]) return 0;
  mt_tensor *d = mt_empty(MT_F32, like->ndim, like->shape);
  if (!d) return -1;
  per_head_gemm(ta, tb, M, Nn, K, A, Bo, (head_operand){mt_f32(d), M, Nn, proj}, B, H);
  gin[which] = d;
  return 0;
}

/* the forward of a per-head product node: checks done by the caller, inputs made contiguous,
   out [B,H,T,S] (pattern layout) or [B,T,H,E] (projection layout) */
static mt_tensor *per_head_node(const char *name, mt_backward_fn bw, mt_tensor *x, mt_tensor *y, int out_ndim,
                                const int64_t *out_shape, int tb, int64_t M, int64_t N, int64_t K, int x_proj, int out_proj) {
  mt_tensor *xc = mt_contiguous(x), *yc = mt_contiguous(y);
  mt_tensor *out = (xc && yc) ? mt_empty(MT_F32, out_ndim, out_shape) : NULL;
  if (out) {
    int64_t B = x->shape[0], H = x_proj ? x->shape[2] : x->shape[1];
    if (K) per_head_gemm(0, tb, M, N, K, (head_operand){mt_f32(xc), M, K, x_proj}, proj_of(mt_f32(yc), tb ? N : K, tb ? K : N),
                         (head_operand){mt_f32(out), M, N, out_proj}, B, H);
    else memset(mt_f32(out), 0, sizeof(float) * (size_t)mt_numel(out));
    mt_tensor *in[2] = {x, y};
    if (mt_needs_grad(2, in)) {
      mt_node *n = mt_node_new(name, bw, 2, in);
      if (!n) { mt_unref(out); out = NULL; }
      else { mt_node_save(n, xc); mt_node_save(n, yc); mt_node_attach(n, out); }
    }
  }
  mt_unref(xc); mt_unref(yc);
  return out;
}

/* ---------------- attention scores: s[b,h,t,u] = sum_e q[b,t,h,e] k[b,u,h,e] ----------------
   unscaled (the softmax scales) */
static int attn_scores_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_attn_scores(mt_tensor *q, mt_tensor *k) {
  char s1[64], s2[64];
  if (q->ndim != 4 || k->ndim != 4 || q->shape[0] != k->shape[0] || q->shape[2] != k->shape[2] ||
      q->shape[3] != k->shape[3] || q->dtype != MT_F32 || k->dtype != MT_F32) {
    mt_seterr("attn_scores: q %s and k %s must be float32 [B,T,H,E] and [B,S,H,E]", mt_shape_str(q, s1, sizeof s1),
              mt_shape_str(k, s2, sizeof s2));
    return NULL;
  }
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], E = q->shape[3], S = k->shape[1];
  int64_t ss[4] = {B, H, T, S};
  return per_head_node("attn_scores", attn_scores_backward, q, k, 4, ss, 1, T, S, E, 1, 0);
}

static int attn_scores_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *q = mt_node_saved(n, 0), *k = mt_node_saved(n, 1);
  if (!q || !k) return -1;
  int64_t B = q->shape[0], T = q->shape[1], H = q->shape[2], E = q->shape[3], S = k->shape[1];
  const float *pg = mt_f32(g);
  /* dq[b,:,h,:] = g[b,h] @ k[b,:,h,:];  dk[b,:,h,:] = g[b,h]^T @ q[b,:,h,:] */
  if (head_grad(n, 0, q, 0, 0, T, E, S, pattern_of(pg, T, S), proj_of(mt_f32(k), S, E), 1, B, H, gin)) return -1;
  if (head_grad(n, 1, k, 1, 0, S, E, T, pattern_of(pg, T, S), proj_of(mt_f32(q), T, E), 1, B, H, gin)) return -1;
  return 0;
}

/* ---------------- attention apply: z[b,t,h,:] = sum_s p[b,h,t,s] v[b,s,h,:] ---------------- */
static int attn_apply_backward(mt_node *n, mt_tensor *g, mt_tensor **gin);

mt_tensor *mt_attn_apply(mt_tensor *pattern, mt_tensor *v) {
  char s1[64], s2[64];
  if (pattern->ndim != 4 || v->ndim != 4 || pattern->shape[0] != v->shape[0] || pattern->shape[1] != v->shape[2] ||
      pattern->shape[3] != v->shape[1] || pattern->dtype != MT_F32 || v->dtype != MT_F32) {
    mt_seterr("attn_apply: pattern %s and v %s must be [B,H,T,S] and [B,S,H,E]", mt_shape_str(pattern, s1, sizeof s1),
              mt_shape_str(v, s2, sizeof s2));
    return NULL;
  }
  int64_t B = pattern->shape[0], H = pattern->shape[1], T = pattern->shape[2], S = pattern->shape[3], E = v->shape[3];
  int64_t zs[4] = {B, T, H, E};
  return per_head_node("attn_apply", attn_apply_backward, pattern, v, 4, zs, 0, T, E, S, 0, 1);
}

static int attn_apply_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *p = mt_node_saved(n, 0), *v = mt_node_saved(n, 1);
  if (!p || !v) return -1;
  int64_t B = p->shape[0], H = p->shape[1], T = p->shape[2], S = p->shape[3], E = v->shape[3];
  const float *pg = mt_f32(g);
  /* dp[b,h] = g[b,:,h,:] @ v[b,:,h,:]^T;  dv[b,:,h,:] = p[b,h]^T @ g[b,:,h,:] */
  if (head_grad(n, 0, p, 0, 1, T, S, E, proj_of(pg, T, E), proj_of(mt_f32(v), S, E), 0, B, H, gin)) return -1;
  if (head_grad(n, 1, v, 1, 0, S, E, T, pattern_of(mt_f32(p), T, S), proj_of(pg, T, E), 1, B, H, gin)) return -1;
  return 0;
}
