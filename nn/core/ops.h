/* Tensor operations. Every op checks its arguments, returns a new tensor
   (refcount 1) or NULL with mt_error() set, and records itself on the autograd
   tape when an input requires grad. Dims are 0-based here (bindings convert). */
#ifndef MT_OPS_H
#define MT_OPS_H
#include "core/tensor.h"

/* ---- views (share storage; differentiable) ---- */
mt_tensor *mt_view(mt_tensor *t, int ndim, const int64_t *shape); /* one -1 allowed; copies if not viewable (reshape) */
mt_tensor *mt_transpose(mt_tensor *t, int d0, int d1);
mt_tensor *mt_permute(mt_tensor *t, const int *perm);
mt_tensor *mt_narrow(mt_tensor *t, int dim, int64_t start, int64_t len);
mt_tensor *mt_select(mt_tensor *t, int dim, int64_t index);
mt_tensor *mt_unsqueeze(mt_tensor *t, int dim);
mt_tensor *mt_squeeze(mt_tensor *t, int dim);      /* dim < 0 after wrap: all size-1 dims -> use MT_ALL */
mt_tensor *mt_expand(mt_tensor *t, int ndim, const int64_t *shape); /* -1 keeps a size */
mt_tensor *mt_contiguous(mt_tensor *t);            /* new ref to t if already contiguous */
mt_tensor *mt_clone(mt_tensor *t);
mt_tensor *mt_cast(mt_tensor *t, mt_dtype dt);     /* differentiable for f32->f32 only */
#define MT_ALL (-1000)

/* ---- elementwise ---- */
typedef enum {
  MT_ADD, MT_SUB, MT_MUL, MT_DIV, MT_POW, MT_MAXIMUM, MT_MINIMUM,
  MT_EQ, MT_NE, MT_LT, MT_LE, MT_GT, MT_GE
} mt_binop;
typedef enum {
  MT_NEG, MT_EXP, MT_LOG, MT_SQRT, MT_ABS, MT_TANH, MT_SIGMOID, MT_RELU, MT_GELU,
  MT_FLOOR, MT_SIN, MT_COS, MT_RSQRT, MT_SIGN, MT_CEIL, MT_ROUND, MT_SQUARE
} mt_unop;
mt_tensor *mt_binary(mt_binop op, mt_tensor *a, mt_tensor *b);      /* NumPy broadcasting */
mt_tensor *mt_unary(mt_unop op, mt_tensor *a);
int mt_binary_(mt_binop op, mt_tensor *a, mt_tensor *b);            /* in place into a */
int mt_unary_(mt_unop op, mt_tensor *a);
mt_tensor *mt_where(mt_tensor *cond, mt_tensor *a, mt_tensor *b);
mt_tensor *mt_masked_fill(mt_tensor *t, mt_tensor *mask, double v);
int mt_masked_fill_(mt_tensor *t, mt_tensor *mask, double v);
mt_tensor *mt_clamp(mt_tensor *t, double lo, double hi);           /* +-INFINITY for none */
int mt_fill_(mt_tensor *t, double v);
int mt_copy_(mt_tensor *dst, mt_tensor *src);                       /* src broadcast to dst */
const char *mt_binop_name(mt_binop op);
const char *mt_unop_name(mt_unop op);

/* ---- reductions (dim = MT_ALL reduces everything to 0-d) ---- */
mt_tensor *mt_sum(mt_tensor *t, int dim, int keepdim);
mt_tensor *mt_mean(mt_tensor *t, int dim, int keepdim);
mt_tensor *mt_var(mt_tensor *t, int dim, int keepdim, int unbiased);
mt_tensor *mt_std(mt_tensor *t, int dim, int keepdim, int unbiased);
/* values and 0-based int32 indices (indices may be NULL) */
mt_tensor *mt_max(mt_tensor *t, int dim, int keepdim, mt_tensor **indices);
mt_tensor *mt_min(mt_tensor *t, int dim, int keepdim, mt_tensor **indices);
mt_tensor *mt_argmax(mt_tensor *t, int dim, int keepdim);          /* 0-based int32 */
mt_tensor *mt_argmin(mt_tensor *t, int dim, int keepdim);
mt_tensor *mt_logsumexp(mt_tensor *t, int dim, int keepdim);
mt_tensor *mt_softmax(mt_tensor *t, int dim);
mt_tensor *mt_log_softmax(mt_tensor *t, int dim);
mt_tensor *mt_norm(mt_tensor *t, double p, int dim, int keepdim);
mt_tensor *mt_topk(mt_tensor *t, int64_t k, int dim, int largest, mt_tensor **indices);
mt_tensor *mt_sort(mt_tensor *t, int dim, int descending, mt_tensor **indices);
mt_tensor *mt_cumsum(mt_tensor *t, int dim);

/* ---- linear algebra ---- */
mt_tensor *mt_matmul(mt_tensor *a, mt_tensor *b);                 /* PyTorch matmul rules */

/* ---- joining and indexing (indices 0-based int32 here) ---- */
mt_tensor *mt_cat(int n, mt_tensor *const *ts, int dim);
mt_tensor *mt_stack(int n, mt_tensor *const *ts, int dim);
mt_tensor *mt_index_select(mt_tensor *t, int dim, mt_tensor *index);
mt_tensor *mt_gather(mt_tensor *t, int dim, mt_tensor *index);
mt_tensor *mt_scatter_add(mt_tensor *t, int dim, mt_tensor *index, mt_tensor *src);
mt_tensor *mt_one_hot(mt_tensor *index, int64_t n);               /* float32 [..., n] */

/* ---- losses ---- */
/* logits [..., C], targets int32 0-based [...], mask optional [...] (0 drops) -> 0-d mean */
/* targets hold class ids base..base+C-1 (base 1 from Lua); masked-out targets are ignored */
mt_tensor *mt_cross_entropy(mt_tensor *logits, mt_tensor *targets, mt_tensor *mask, int base);
mt_tensor *mt_mse(mt_tensor *a, mt_tensor *b);

/* ---- fused transformer kernels, implemented in nn/model/fused.c: one tape node instead of many ---- */
/* LayerNorm over the last dim: (x - mean) / sqrt(var + eps) * w + b */
mt_tensor *mt_layer_norm(mt_tensor *x, mt_tensor *w, mt_tensor *b, double eps);
/* x [..., K] @ W + b. W is [K, N], or [H, K, E] (per-head, N = H*E); b has N elements */
mt_tensor *mt_linear(mt_tensor *x, mt_tensor *W, mt_tensor *b);
/* LayerNorm's hooked steps, each differentiable: scale [..., 1], (x - mean) / scale, x * w + b */
mt_tensor *mt_ln_scale(mt_tensor *x, double eps);
mt_tensor *mt_ln_normalize(mt_tensor *x, mt_tensor *scale);
mt_tensor *mt_affine(mt_tensor *x, mt_tensor *w, mt_tensor *b);
/* the three steps in one pass, the same bits, when no input needs a gradient (else an error):
   *scale, *xn, *y set; 0 on success, -1 with the error set */
int mt_ln_parts(mt_tensor *x, mt_tensor *w, mt_tensor *b, double eps, mt_tensor **scale, mt_tensor **xn, mt_tensor **y);
/* unscaled attention scores [B,H,T,S] from q [B,T,H,E] and k [B,S,H,E] */
mt_tensor *mt_attn_scores(mt_tensor *q, mt_tensor *k);
/* softmax(scores * scale) over the last dim, keys after the query masked when causal */
mt_tensor *mt_attn_softmax(mt_tensor *scores, double scale, int causal);
/* pattern [B,H,T,S] applied to v [B,S,H,E] -> z [B,T,H,E] */
mt_tensor *mt_attn_apply(mt_tensor *pattern, mt_tensor *v);

#endif
