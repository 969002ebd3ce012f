/* Optimizer updates (core/optim.h): AdamW and SGD with momentum, element by
   element in PyTorch's operation order so results match torch.optim; the
   squared norm that gradient clipping sums. */
#include "core/optim.h"
#include <math.h>

void mt_optim_adamw(mt_tensor *p, const mt_tensor *g, mt_tensor *m, mt_tensor *v, double lr, double beta1,
                    double beta2, double eps, double weight_decay, int64_t step) {
  float *pp = mt_f32(p), *pm = mt_f32(m), *pv = mt_f32(v);
  const float *pg = mt_f32(g);
  int64_t n = mt_numel(p);
  /* the same operation order as torch.optim.AdamW (single-tensor path) */
  /* Every constant is formed in double and rounded once, as PyTorch does: 1 - 0.999f in float
     is 0.00099998713, a 1.3e-5 relative bias in the second moment. */
  float decay = (float)(1.0 - lr * weight_decay);
  float b2 = (float)beta2, one_minus_b1 = (float)(1.0 - beta1), one_minus_b2 = (float)(1.0 - beta2);
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), e = (float)eps;
  for (int64_t i = 0; i < n; i++) {
    pp[i] *= decay;
    pm[i] += (pg[i] - pm[i]) * one_minus_b1;
    pv[i] = pv[i] * b2 + one_minus_b2 * pg[i] * pg[i];
    float denom = sqrtf(pv[i]) / bc2_sqrt + e;
    pp[i] -= step_size * (pm[i] / denom);
  }
  p->storage->version++;
}

void mt_optim_sgd(mt_tensor *p, const mt_tensor *g, mt_tensor *buf, double lr, double momentum,
                  double weight_decay, int nesterov, int first) {
  float *pp = mt_f32(p), *pb = buf ? mt_f32(buf) : NULL;
  const float *pg = mt_f32(g);
  float mu = (float)momentum, wd = (float)weight_decay, a = (float)lr;
  for (int64_t i = 0, n = mt_numel(p); i < n; i++) {
    float d = pg[i] + wd * pp[i];
    if (pb) {
      pb[i] = first ? d : mu * pb[i] + d;
      d = nesterov ? d + mu * pb[i] : pb[i];
    }
    pp[i] -= a * d;
  }
  p->storage->version++;
}

double mt_optim_sqnorm(const mt_tensor *t) {
  double s = 0;
  int64_t idx[MT_MAXDIM] = {0}, n = mt_numel(t);
  if (mt_is_contiguous(t) && t->dtype == MT_F32) {
    const float *p = mt_f32(t);
    for (int64_t i = 0; i < n; i++) s += (double)p[i] * p[i];
    return s;
  }
  for (int64_t k = 0; k < n; k++) {
    double v = mt_get(t, idx);
    s += v * v;
    for (int d = t->ndim - 1; d >= 0; d--) { if (++idx[d] < t->shape[d]) break; idx[d] = 0; }
  }
  return s;
}
