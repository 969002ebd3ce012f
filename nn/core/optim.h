/* Optimizer updates, in place on contiguous float32 tensors (PyTorch's formulas). */
#ifndef MT_OPTIM_H
#define MT_OPTIM_H
#include "core/tensor.h"
/* AdamW with decoupled weight decay; step counts from 1 */
void mt_optim_adamw(mt_tensor *p, const mt_tensor *g, mt_tensor *m, mt_tensor *v, double lr, double beta1,
                    double beta2, double eps, double weight_decay, int64_t step);
/* SGD; buf may be NULL when momentum == 0; first = buf is uninitialised (PyTorch copies g into it) */
void mt_optim_sgd(mt_tensor *p, const mt_tensor *g, mt_tensor *buf, double lr, double momentum,
                  double weight_decay, int nesterov, int first);
double mt_optim_sqnorm(const mt_tensor *t);
#endif
