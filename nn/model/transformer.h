/* The transformer of DESIGN.md (TransformerLens names and shapes), built from
   autograd ops, with named hook points that cost nothing when unused. The config
   (model/config.h) chooses pre-LN or post-LN blocks and the readout (unembedding, flatten,
   [CLS] tanh pooler); man/milua-nn.3 gives the equations, parameter and hook names. */
#ifndef MT_TRANSFORMER_H
#define MT_TRANSFORMER_H
#include "core/tensor.h"
#include "model/config.h"

/* Parameters in a fixed order; the i-th name and shape */
int mt_tf_n_params(const mt_config *c);
int mt_tf_param_info(const mt_config *c, int i, char *name, size_t n, int *ndim, int64_t *shape);
/* the numbers in all parameters together (a double: it is checked before anything is allocated) */
double mt_tf_param_numel(const mt_config *c);
/* Hook points in the order they fire */
int mt_tf_n_hooks(const mt_config *c);
const char *mt_tf_hook_name(const mt_config *c, int i, char *buf, size_t n);
/* fresh parameters: normal(0, init_range) weights, LN w = 1, biases 0 (global generator) */
mt_tensor *mt_tf_init_param(const mt_config *c, int i);

/* hook callback: may replace *act (unref the old, store a new reference); -1 aborts */
typedef int (*mt_hook_cb)(void *ud, int hook_id, const char *name, int layer, mt_tensor **act);

typedef struct {
  const unsigned char *active;   /* per hook id; NULL = none */
  mt_hook_cb cb;
  void *ud;
  int stop_at_layer;             /* run this many layers; -1 = all */
  int return_resid;              /* 1: the final states the readout reads, instead of its output */
} mt_forward_opts;

/* tokens int32 [B, T], 0-based ids. params in mt_tf_param_info order. Returns
   [B, T, d_vocab_out] (readout "unembed") or [B, d_out], or NULL with mt_error() set. */
mt_tensor *mt_tf_forward(const mt_config *c, mt_tensor *const *params, mt_tensor *tokens, const mt_forward_opts *o);

#endif
