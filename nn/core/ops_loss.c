/* Losses: fused, numerically stable cross-entropy with a mask; MSE. */
#include "core/ops.h"
#include "core/autograd.h"
#include "core/iter.h"
#include <math.h>
#include <stdlib.h>

/* per row: lse - x[target]; the backward reuses the same rows */
static int ce_backward(mt_node *n, mt_tensor *g, mt_tensor **gin) {
  mt_tensor *x = mt_node_saved(n, 0), *t = mt_node_saved(n, 1), *m = n->saved[2] ? mt_node_saved(n, 2) : NULL;
  if (!x || !t || (n->saved[2] && !m)) return -1;
  int64_t C = x->shape[x->ndim - 1], R = mt_numel(x) / (C ? C : 1);
  int base = (int)n->iarg[0];
  double denom = n->darg[0];
  float go = mt_f32(g)[0];
  mt_tensor *r = mt_empty(MT_F32, x->ndim, x->shape);
  if (!r) return -1;
  const float *px = mt_f32(x), *pm = m ? mt_f32(m) : NULL;
  const int32_t *pt = mt_i32(t);
  float *pr = mt_f32(r);
  for (int64_t i = 0; i < R; i++) {
    const float *row = px + i * C;
    float *out = pr + i * C;
    float w = pm ? pm[i] : 1.0f;
    if (w == 0 || denom == 0) { for (int64_t c = 0; c < C; c++) out[c] = 0; continue; }
    float mx = row[0];
    for (int64_t c = 1; c < C; c++) if (row[c] > mx) mx = row[c];
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)(row[c] - mx));
    float scale = (float)(go * w / denom), inv = (float)(1.0 / s);
    for (int64_t c = 0; c < C; c++) out[c] = expf(row[c] - mx) * inv * scale;
    out[pt[i] - base] -= scale;
  }
  gin[0] = r;
  return 0;
}

mt_tensor *mt_cross_entropy(mt_tensor *logits, mt_tensor *targets, mt_tensor *mask, int base) {
  char a[64], b[64];
  if (logits->ndim < 1 || logits->dtype != MT_F32) {
    mt_seterr("cross_entropy: logits must be a float32 tensor [..., classes], got %s %s",
              mt_shape_str(logits, a, sizeof a), mt_dtype_name(logits->dtype));
    return NULL;
  }
  if (targets->dtype != MT_I32) {
    mt_seterr("cross_entropy: targets must be int32 class ids, got %s", mt_dtype_name(targets->dtype));
    return NULL;
  }
  int ok = targets->ndim == logits->ndim - 1;
  for (int d = 0; ok && d < targets->ndim; d++) if (targets->shape[d] != logits->shape[d]) ok = 0;
  if (!ok) {
    mt_seterr("cross_entropy: targets %s must have the logits' shape %s without the class dim",
              mt_shape_str(targets, a, sizeof a), mt_shape_str(logits, b, sizeof b));
    return NULL;
  }
  if (mask && !mt_same_shape(mask, targets)) {
    mt_seterr("cross_entropy: mask %s must have the targets' shape %s", mt_shape_str(mask, a, sizeof a),
              mt_shape_str(targets, b, sizeof b));
    return NULL;
  }
  int64_t C = logits->shape[logits->ndim - 1];
  if (C == 0) { mt_seterr("cross_entropy: zero classes"); return NULL; }
  mt_tensor *x = mt_contiguous(logits), *t = mt_contiguous(targets);
  mt_tensor *m = mask ? (mask->dtype == MT_F32 ? mt_contiguous(mask) : mt_cast(mask, MT_F32)) : NULL;
  mt_tensor *out = NULL;
  if (!x || !t || (mask && !m)) goto end;
  int64_t R = mt_numel(t);
  const float *px = mt_f32(x), *pm = m ? mt_f32(m) : NULL;
  const int32_t *pt = mt_i32(t);
  double total = 0, denom = 0;
  for (int64_t i = 0; i < R; i++) {
    float w = pm ? pm[i] : 1.0f;
    if (w == 0) continue;
    if (pt[i] < base || pt[i] >= base + C) {
      mt_seterr("cross_entropy: target %d at position %lld is out of range %d..%lld", pt[i], (long long)i + 1, base,
                (long long)(base + C - 1));
      goto end;
    }
    const float *row = px + i * C;
    float mx = row[0];
    for (int64_t c = 1; c < C; c++) if (row[c] > mx) mx = row[c];
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)(row[c] - mx));
    total += w * ((double)mx + log(s) - row[pt[i] - base]);
    denom += w;
  }
  /* an all-masked batch has no loss to average: 0, with zero gradient */
  out = mt_scalar(MT_F32, denom > 0 ? total / denom : 0.0);
  if (out && mt_needs_grad(1, &logits)) {
    mt_node *n = mt_node_new("cross_entropy", ce_backward, 1, &logits);
    if (!n) { mt_unref(out); out = NULL; goto end; }
    n->iarg[0] = base;
    n->darg[0] = denom;
    mt_node_save(n, x);
    mt_node_save(n, t);
    mt_node_save(n, m);
    mt_node_attach(n, out);
  }
end:
  mt_unref(x); mt_unref(t); mt_unref(m);
  return out;
}

mt_tensor *mt_mse(mt_tensor *a, mt_tensor *b) {
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *in[2] = {a, b};
  if (mt_broadcast_shapes("mse", 2, in, &nd, shape)) return NULL;   /* errors name mse, not its pieces */
  mt_tensor *d = mt_binary(MT_SUB, a, b);
  mt_tensor *sq = d ? mt_binary(MT_MUL, d, d) : NULL;
  mt_tensor *r = sq ? mt_mean(sq, MT_ALL, 0) : NULL;
  mt_unref(d); mt_unref(sq);
  return r;
}
