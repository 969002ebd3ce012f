/* Reverse-mode autograd: a node per recorded op, an engine that walks them.
   A tensor owns its grad_fn; a node owns the nodes of its inputs (edges) and
   detached aliases of the tensors it saved, so no reference cycles exist. */
#ifndef MT_AUTOGRAD_H
#define MT_AUTOGRAD_H
#include "core/tensor.h"

#define MT_MAX_INPUTS 8
#define MT_MAX_SAVED 6

typedef struct mt_node mt_node;
/* gout: gradient of the node's output (contiguous, output shape).
   gin[i]: set to a new tensor (refcount 1) for every input i with n->next[i] != NULL;
   it may have a broadcast shape: the engine sums it back to the input's shape.
   return 0, or -1 with mt_seterr. */
typedef int (*mt_backward_fn)(mt_node *n, mt_tensor *gout, mt_tensor **gin);

struct mt_node {
  int refcount;
  const char *name;                 /* op name, for error messages */
  mt_backward_fn backward;
  void (*free_ctx)(void *);         /* frees ctx, may be NULL */
  int n_inputs;
  mt_node *next[MT_MAX_INPUTS];     /* producer node of each input, or NULL when no grad needed */
  int in_ndim[MT_MAX_INPUTS];
  int64_t in_shape[MT_MAX_INPUTS][MT_MAXDIM];
  int n_saved;
  mt_tensor *saved[MT_MAX_SAVED];   /* detached aliases */
  uint32_t saved_version[MT_MAX_SAVED];
  int64_t iarg[8];                  /* small op parameters */
  double darg[4];
  void *ctx;                        /* larger op state */
  mt_tensor *leaf;                  /* accumulate nodes: weak pointer to the leaf */
  int retain;                       /* copy output gradient into retained */
  mt_tensor *retained;              /* retained gradient of a non-leaf output */
  int released;                     /* saved tensors freed by backward */
  /* engine scratch */
  int deps;
  unsigned mark;                    /* visit stamp of the current backward */
  mt_tensor *gacc;
};

/* grad mode */
int mt_grad_enabled(void);
int mt_set_grad_enabled(int on);    /* returns previous */

/* true when any of the inputs requires grad and grad mode is on */
int mt_needs_grad(int n, mt_tensor *const *inputs);
/* new node recording inputs (edges) and its backward; attaches nothing yet */
mt_node *mt_node_new(const char *name, mt_backward_fn bw, int n, mt_tensor *const *inputs);
/* save a tensor for backward (stored as an alias with its version) */
void mt_node_save(mt_node *n, mt_tensor *t);
/* check saved versions; returns the saved tensor i or NULL with error set */
mt_tensor *mt_node_saved(mt_node *n, int i);
/* make `out` the output of node n: out->grad_fn = n, out->requires_grad = 1 (steals n) */
void mt_node_attach(mt_node *n, mt_tensor *out);
void mt_node_unref(mt_node *n);

/* run backward from `root` with gradient `grad` (NULL: root must have one element -> 1) */
int mt_backward(mt_tensor *root, mt_tensor *grad);

/* leaf API */
int mt_set_requires_grad(mt_tensor *t, int on);   /* errors on non-leaf turning off */
int mt_retain_grad(mt_tensor *t);
mt_tensor *mt_grad_of(mt_tensor *t);               /* borrowed; NULL if none */
void mt_zero_grad(mt_tensor *t);                   /* drop .grad */
mt_tensor *mt_detach(mt_tensor *t);                /* alias without history */
int mt_is_leaf(const mt_tensor *t);

/* in-place guard: errors when t requires grad while grad mode is on */
int mt_check_inplace(const char *fn, mt_tensor *t);
void mt_bump_version(mt_tensor *t);

#endif
