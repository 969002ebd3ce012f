/* The autograd engine: nodes, grad mode, backward traversal. */
#include "core/autograd.h"
#include "core/ops.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grad_enabled = 1;
int mt_grad_enabled(void) { return grad_enabled; }
int mt_set_grad_enabled(int on) { int old = grad_enabled; grad_enabled = on != 0; return old; }

int mt_needs_grad(int n, mt_tensor *const *inputs) {
  if (!grad_enabled) return 0;
  for (int i = 0; i < n; i++) if (inputs[i] && inputs[i]->requires_grad) return 1;
  return 0;
}

int mt_is_leaf(const mt_tensor *t) { return t->grad_fn == NULL; }

static mt_node *node_alloc(const char *name) {
  mt_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->refcount = 1;
  n->name = name;
  return n;
}

/* the node that receives the gradient flowing into tensor t */
static mt_node *edge_of(mt_tensor *t) {
  if (!t || !t->requires_grad) return NULL;
  if (t->grad_fn) { t->grad_fn->refcount++; return t->grad_fn; }
  if (!t->acc) {
    t->acc = node_alloc("AccumulateGrad");
    if (!t->acc) return NULL;
    t->acc->leaf = t;
  }
  t->acc->refcount++;
  return t->acc;
}

mt_node *mt_node_new(const char *name, mt_backward_fn bw, int n, mt_tensor *const *inputs) {
  mt_node *nd = node_alloc(name);
  if (!nd) { mt_seterr("out of memory"); return NULL; }
  nd->backward = bw;
  nd->n_inputs = n;
  for (int i = 0; i < n; i++) {
    nd->next[i] = edge_of(inputs[i]);
    if (inputs[i]) {
      nd->in_ndim[i] = inputs[i]->ndim;
      memcpy(nd->in_shape[i], inputs[i]->shape, sizeof(int64_t) * MT_MAXDIM);
    }
  }
  return nd;
}

void mt_node_save(mt_node *n, mt_tensor *t) {
  int i = n->n_saved++;
  n->saved[i] = t ? mt_alias(t) : NULL;
  n->saved_version[i] = t ? t->storage->version : 0;
}

mt_tensor *mt_node_saved(mt_node *n, int i) {
  mt_tensor *t = n->saved[i];
  if (n->released) {
    mt_seterr("backward: the graph through %s was already freed by an earlier backward; "
              "recompute the forward pass", n->name);
    return NULL;
  }
  if (t && t->storage->version != n->saved_version[i]) {
    mt_seterr("backward: a tensor needed by %s to compute gradients was modified in place "
              "(version %u, saved at %u); use the out-of-place op or clone it first",
              n->name, t->storage->version, n->saved_version[i]);
    return NULL;
  }
  return t;
}

void mt_node_attach(mt_node *n, mt_tensor *out) {
  out->grad_fn = n;
  out->requires_grad = 1;
}

static void node_release(mt_node *n) {
  for (int i = 0; i < n->n_saved; i++) { mt_unref(n->saved[i]); n->saved[i] = NULL; }
  if (n->ctx && n->free_ctx) n->free_ctx(n->ctx);
  n->ctx = NULL;
  n->released = 1;
}

/* iterative so that deep graphs (long Lua loops) cannot overflow the C stack */
void mt_node_unref(mt_node *n) {
  mt_node *stack_small[64], **stack = stack_small;
  int cap = 64, top = 0;
  if (n) stack[top++] = n;
  while (top) {
    mt_node *x = stack[--top];
    if (--x->refcount > 0) continue;
    node_release(x);
    mt_unref(x->retained);
    mt_unref(x->gacc);
    for (int i = 0; i < x->n_inputs; i++) {
      if (!x->next[i]) continue;
      if (top == cap) {
        int ncap = cap * 2;
        mt_node **ns = malloc(sizeof *ns * (size_t)ncap);
        if (!ns) { /* cannot recurse safely: leak rather than crash */ continue; }
        memcpy(ns, stack, sizeof *ns * (size_t)top);
        if (stack != stack_small) free(stack);
        stack = ns; cap = ncap;
      }
      stack[top++] = x->next[i];
    }
    free(x);
  }
  if (stack != stack_small) free(stack);
}

/* ---- leaf API ---- */
int mt_set_requires_grad(mt_tensor *t, int on) {
  if (!mt_is_leaf(t)) {
    if (on) return 0;
    mt_seterr("requires_grad: only leaf tensors can stop requiring grad; use detach()");
    return -1;
  }
  if (on && t->dtype != MT_F32) {
    mt_seterr("requires_grad: only float32 tensors can require gradients (got %s)", mt_dtype_name(t->dtype));
    return -1;
  }
  t->requires_grad = on != 0;
  return 0;
}

int mt_retain_grad(mt_tensor *t) {
  if (!t->requires_grad) {
    mt_seterr("retain_grad: the tensor does not require grad");
    return -1;
  }
  if (t->grad_fn) t->grad_fn->retain = 1;
  t->retains_grad = 1;
  return 0;
}

mt_tensor *mt_grad_of(mt_tensor *t) {
  if (t->grad_fn) return t->grad_fn->retained;
  return t->grad;
}

void mt_zero_grad(mt_tensor *t) {
  if (t->grad_fn) { mt_unref(t->grad_fn->retained); t->grad_fn->retained = NULL; }
  mt_unref(t->grad); t->grad = NULL;
}

mt_tensor *mt_detach(mt_tensor *t) { return mt_alias(t); }

void mt_bump_version(mt_tensor *t) { t->storage->version++; }

int mt_check_inplace(const char *fn, mt_tensor *t) {
  for (int d = 0; d < t->ndim; d++)   /* a write through a zero stride would land several times on one element */
    if (t->stride[d] == 0 && t->shape[d] > 1) {
      mt_seterr("%s: in-place write to an expanded tensor (several elements share one memory location); "
                "clone() it first", fn);
      return -1;
    }
  if (grad_enabled && t->requires_grad) {
    mt_seterr("%s: in-place operation on a tensor that requires grad; use the out-of-place "
              "form, or wrap the edit in T.no_grad", fn);
    return -1;
  }
  return 0;
}

/* ---- the engine ---- */

/* g summed over broadcast dims so that it has shape (ndim, shape); new reference */
static mt_tensor *sum_to(mt_tensor *g, int ndim, const int64_t *shape) {
  mt_tensor *cur = mt_ref(g);
  int lead = cur->ndim - ndim;
  for (int i = 0; i < lead; i++) {
    mt_tensor *s = mt_sum(cur, 0, 0);
    mt_unref(cur);
    if (!s) return NULL;
    cur = s;
  }
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1 && cur->shape[d] != 1) {
      mt_tensor *s = mt_sum(cur, d, 1);
      mt_unref(cur);
      if (!s) return NULL;
      cur = s;
    }
  }
  if (!mt_is_contiguous(cur)) { mt_tensor *c = mt_contiguous(cur); mt_unref(cur); cur = c; }
  return cur;
}

/* sum gradients; in place only when nobody else can see the slot's memory */
static int accumulate(mt_tensor **slot, mt_tensor *g) {
  if (!*slot) { *slot = g; return 0; }
  if ((*slot)->refcount == 1 && (*slot)->storage->refcount == 1) {
    int r = mt_binary_(MT_ADD, *slot, g);
    mt_unref(g);
    return r;
  }
  mt_tensor *s = mt_binary(MT_ADD, *slot, g);
  mt_unref(g);
  if (!s) return -1;
  mt_unref(*slot);
  *slot = s;
  return 0;
}

typedef struct { mt_node **v; int n, cap; } nodevec;
static int vec_push(nodevec *s, mt_node *n) {
  if (s->n == s->cap) {
    int nc = s->cap ? s->cap * 2 : 64;
    mt_node **nv = realloc(s->v, sizeof *nv * (size_t)nc);
    if (!nv) { mt_seterr("out of memory"); return -1; }
    s->v = nv; s->cap = nc;
  }
  s->v[s->n++] = n;
  return 0;
}

static unsigned epoch;

int mt_backward(mt_tensor *root, mt_tensor *grad) {
  if (!root->requires_grad) {
    mt_seterr("backward: the tensor does not require grad (no input had requires_grad(true), "
              "or it was computed inside T.no_grad)");
    return -1;
  }
  mt_tensor *g0;
  if (grad) {
    if (!mt_same_shape(grad, root)) {
      char a[64], b[64];
      mt_seterr("backward: gradient shape %s does not match the tensor's shape %s",
                mt_shape_str(grad, a, sizeof a), mt_shape_str(root, b, sizeof b));
      return -1;
    }
    int pm = mt_set_grad_enabled(0);   /* the seed gradient is data: no history even if grad requires grad */
    g0 = grad->dtype == MT_F32 ? mt_contiguous(grad) : mt_cast(grad, MT_F32);
    if (g0 == grad) { mt_unref(g0); g0 = mt_clone(grad); }
    mt_set_grad_enabled(pm);
  } else {
    if (mt_numel(root) != 1) {
      char a[64];
      mt_seterr("backward: the tensor has shape %s; backward() without a gradient needs a "
                "single-element tensor (a loss), or pass y:backward(grad)", mt_shape_str(root, a, sizeof a));
      return -1;
    }
    g0 = mt_full(MT_F32, root->ndim, root->shape, 1.0);
  }
  if (!g0) return -1;
  int prev_mode = mt_set_grad_enabled(0);   /* backward ops record nothing */
  mt_node *start = edge_of(root);
  nodevec all = {0}, ready = {0}, stack = {0};
  int rc = -1;
  if (!start) { mt_unref(g0); goto done; }
  /* count dependencies: number of edges pointing into each node from the reachable graph */
  if (vec_push(&stack, start)) goto done;
  start->deps = 0;
  if (vec_push(&all, start)) goto done;
  start->gacc = NULL;
  start->mark = ++epoch;
  while (stack.n) {
    mt_node *x = stack.v[--stack.n];
    for (int i = 0; i < x->n_inputs; i++) {
      mt_node *y = x->next[i];
      if (!y) continue;
      if (y->mark != epoch) {
        y->mark = epoch;
        y->deps = 0;
        if (vec_push(&all, y) || vec_push(&stack, y)) goto done;
      }
      y->deps++;
    }
  }
  start->gacc = g0;
  if (vec_push(&ready, start)) goto done;
  while (ready.n) {
    mt_node *x = ready.v[--ready.n];
    mt_tensor *gout = x->gacc;
    x->gacc = NULL;
    if (!gout) continue;
    if (x->retain) {
      mt_tensor *c = mt_clone(gout);
      if (!c || accumulate(&x->retained, c)) { mt_unref(gout); goto done; }
    }
    if (x->leaf || !x->backward) {           /* accumulate into the leaf's .grad */
      if (x->leaf) {
        mt_tensor *c = (gout->refcount == 1) ? mt_ref(gout) : mt_clone(gout);
        if (!c || accumulate(&x->leaf->grad, c)) { mt_unref(gout); goto done; }
      }
      mt_unref(gout);
      continue;
    }
    mt_tensor *gin[MT_MAX_INPUTS] = {0};
    if (x->released) {
      mt_seterr("backward: the graph through %s was already freed by an earlier backward; "
                "recompute the forward pass", x->name);
      mt_unref(gout);
      goto done;
    }
    int r = x->backward(x, gout, gin);
    mt_unref(gout);
    if (r) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", mt_error());
      for (int i = 0; i < x->n_inputs; i++) mt_unref(gin[i]);
      mt_seterr("%s", msg);
      goto done;
    }
    node_release(x);
    for (int i = 0; i < x->n_inputs; i++) {
      mt_node *y = x->next[i];
      if (!y) { mt_unref(gin[i]); continue; }
      if (gin[i]) {
        mt_tensor *gs = sum_to(gin[i], x->in_ndim[i], x->in_shape[i]);
        mt_unref(gin[i]);
        if (!gs || accumulate(&y->gacc, gs)) goto done;
      }
      if (--y->deps == 0 && vec_push(&ready, y)) goto done;
    }
  }
  rc = 0;
done:
  for (int i = 0; i < all.n; i++) { all.v[i]->deps = 0; mt_unref(all.v[i]->gacc); all.v[i]->gacc = NULL; }
  if (start) mt_node_unref(start);
  free(all.v); free(ready.v); free(stack.v);
  mt_set_grad_enabled(prev_mode);
  return rc;
}
