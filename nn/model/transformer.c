/* The transformer forward pass: embedding, blocks (pre-LN or post-LN), readout. Each step
   is a recorded autograd op, so the backward pass comes from the engine; each named
   activation passes through fire(), which costs one branch when no hook wants it. */
#include "model/transformer.h"
#include "core/ops.h"
#include "core/autograd.h"
#include "core/parallel.h"
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hook points ----
   Per layer, by meaning (H_*); a config lists them in the order they fire, which differs
   between pre-LN and post-LN blocks. */
enum {
  H_RESID_PRE, H_LN1_SCALE, H_LN1_NORM, H_Q, H_K, H_V, H_SCORES, H_PATTERN, H_Z, H_ATTN_OUT, H_RESID_MID,
  H_LN2_SCALE, H_LN2_NORM, H_PRE, H_POST, H_MLP_OUT, H_RESID_POST, H_NORM_RESID_POST, H_PER_LAYER
};
static const char *layer_hooks[H_PER_LAYER] = {
  "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
  "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
  "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
  "hook_normalized_resid_post"};
static const unsigned char fire_order[2][H_PER_LAYER] = {
  /* pre-LN: x = LN(resid) feeds each sublayer, the sums stay un-normalized */
  {H_RESID_PRE, H_LN1_SCALE, H_LN1_NORM, H_Q, H_K, H_V, H_SCORES, H_PATTERN, H_Z, H_ATTN_OUT, H_RESID_MID,
   H_LN2_SCALE, H_LN2_NORM, H_PRE, H_POST, H_MLP_OUT, H_RESID_POST, H_NORM_RESID_POST},
  /* post-LN: each sum (hook_resid_mid, hook_resid_post) is normalized after it fires */
  {H_RESID_PRE, H_Q, H_K, H_V, H_SCORES, H_PATTERN, H_Z, H_ATTN_OUT, H_RESID_MID, H_LN1_SCALE, H_LN1_NORM,
   H_PRE, H_POST, H_MLP_OUT, H_RESID_POST, H_LN2_SCALE, H_LN2_NORM, H_NORM_RESID_POST}};
/* after the layers */
enum { G_LN_FINAL_SCALE, G_LN_FINAL_NORM, G_POOLER_OUT, G_COUNT };
static const char *global_hooks[G_COUNT] = {"ln_final.hook_scale", "ln_final.hook_normalized", "pooler.hook_out"};
enum { H_EMBED = 0, H_POS = 1, H_LAYER0 = 2 };

static int post_ln(const mt_config *c) { return c->ln_position == MT_LN_POST; }
static int layer_hook_id(const mt_config *c, int layer, int k) {
  const unsigned char *order = fire_order[post_ln(c)];
  int rank = 0;
  while (order[rank] != k) rank++;
  return H_LAYER0 + layer * H_PER_LAYER + rank;
}
static int global_hook_id(const mt_config *c, int g) { return H_LAYER0 + c->n_layers * H_PER_LAYER + g; }
int mt_tf_n_hooks(const mt_config *c) { return H_LAYER0 + c->n_layers * H_PER_LAYER + G_COUNT; }

static int layer_hook_exists(const mt_config *c, int k) {
  int ln = c->layer_norm, mlp = c->d_mlp > 0;
  switch (k) {
    case H_LN1_SCALE: case H_LN1_NORM: return ln;
    case H_LN2_SCALE: case H_LN2_NORM: return ln && mlp;
    case H_RESID_MID: case H_PRE: case H_POST: case H_MLP_OUT: return mlp;
    case H_NORM_RESID_POST: return post_ln(c);
    default: return 1;
  }
}

const char *mt_tf_hook_name(const mt_config *c, int i, char *buf, size_t n) {
  if (i == H_EMBED) return snprintf(buf, n, "hook_embed"), buf;
  if (i == H_POS) return c->positional == MT_POS_NONE ? NULL : (snprintf(buf, n, "hook_pos_embed"), buf);
  int end = H_LAYER0 + c->n_layers * H_PER_LAYER;
  if (i >= end) {
    int g = i - end;
    int ok = (g == G_LN_FINAL_SCALE || g == G_LN_FINAL_NORM) ? c->layer_norm && !post_ln(c)
             : g == G_POOLER_OUT ? c->readout == MT_READOUT_CLS_POOLER : 0;
    return ok ? (snprintf(buf, n, "%s", global_hooks[g]), buf) : NULL;
  }
  int l = (i - H_LAYER0) / H_PER_LAYER, k = fire_order[post_ln(c)][(i - H_LAYER0) % H_PER_LAYER];
  if (!layer_hook_exists(c, k)) return NULL;
  snprintf(buf, n, "blocks.%d.%s", l, layer_hooks[k]);
  return buf;
}

/* ---- parameters ----
   A table of specs gives each parameter its name, shape recipe, the config it needs, and
   its slot in the structs below, so the forward pass reads weights by name. */
typedef struct {
  mt_tensor *ln1_w, *ln1_b, *W_Q, *b_Q, *W_K, *b_K, *W_V, *b_V, *W_O, *b_O, *ln2_w, *ln2_b, *W_in, *b_in, *W_out, *b_out;
} block_weights;
typedef struct {
  mt_tensor *W_E, *W_pos, *ln_final_w, *ln_final_b, *W_U, *b_U, *pooler_W, *pooler_b, *readout_W, *readout_b;
  block_weights *blocks;   /* n_layers of them, or 1 with tie_layers */
} weights;

enum { P_WE, P_WPOS, P_LNW, P_LNB, P_WQKV, P_BQKV, P_WO, P_BO, P_WIN, P_BIN, P_WOUT, P_BOUT, P_WU, P_BU, P_POOLW,
       P_POOLB, P_ROW, P_ROB };
/* what a parameter needs of the config */
enum { N_LN = 1, N_MLP = 2, N_FINAL_LN = 4, N_LEARNED_POS = 8, N_UNEMBED = 16, N_POOLER = 32, N_READOUT = 64 };
typedef struct { const char *name; int kind, needs; size_t slot; } pspec;

#define B(f) offsetof(block_weights, f)
#define W(f) offsetof(weights, f)
static const pspec head_params[] = {{"embed.W_E", P_WE, 0, W(W_E)}, {"pos_embed.W_pos", P_WPOS, N_LEARNED_POS, W(W_pos)}};
static const pspec block_params[] = {
  {"ln1.w", P_LNW, N_LN, B(ln1_w)}, {"ln1.b", P_LNB, N_LN, B(ln1_b)}, {"attn.W_Q", P_WQKV, 0, B(W_Q)},
  {"attn.b_Q", P_BQKV, 0, B(b_Q)}, {"attn.W_K", P_WQKV, 0, B(W_K)}, {"attn.b_K", P_BQKV, 0, B(b_K)},
  {"attn.W_V", P_WQKV, 0, B(W_V)}, {"attn.b_V", P_BQKV, 0, B(b_V)}, {"attn.W_O", P_WO, 0, B(W_O)},
  {"attn.b_O", P_BO, 0, B(b_O)}, {"ln2.w", P_LNW, N_LN | N_MLP, B(ln2_w)}, {"ln2.b", P_LNB, N_LN | N_MLP, B(ln2_b)},
  {"mlp.W_in", P_WIN, N_MLP, B(W_in)}, {"mlp.b_in", P_BIN, N_MLP, B(b_in)}, {"mlp.W_out", P_WOUT, N_MLP, B(W_out)},
  {"mlp.b_out", P_BOUT, N_MLP, B(b_out)}};
static const pspec tail_params[] = {
  {"ln_final.w", P_LNW, N_FINAL_LN, W(ln_final_w)}, {"ln_final.b", P_LNB, N_FINAL_LN, W(ln_final_b)},
  {"unembed.W_U", P_WU, N_UNEMBED, W(W_U)}, {"unembed.b_U", P_BU, N_UNEMBED, W(b_U)},
  {"pooler.W", P_POOLW, N_POOLER, W(pooler_W)}, {"pooler.b", P_POOLB, N_POOLER, W(pooler_b)},
  {"readout.W", P_ROW, N_READOUT, W(readout_W)}, {"readout.b", P_ROB, N_READOUT, W(readout_b)}};
#undef B
#undef W
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

static int has(const mt_config *c, int needs) {
  return (!(needs & N_LN) || c->layer_norm) && (!(needs & N_MLP) || c->d_mlp > 0) &&
         (!(needs & N_FINAL_LN) || (c->layer_norm && !post_ln(c))) &&
         (!(needs & N_LEARNED_POS) || c->positional == MT_POS_LEARNED) &&
         (!(needs & N_UNEMBED) || c->readout == MT_READOUT_UNEMBED) &&
         (!(needs & N_POOLER) || c->readout == MT_READOUT_CLS_POOLER) &&
         (!(needs & N_READOUT) || c->readout != MT_READOUT_UNEMBED);
}

static int shape_of(const mt_config *c, int kind, int64_t *s) {
  int64_t D = c->d_model, H = c->n_heads, E = c->d_head, M = c->d_mlp;
  switch (kind) {
    case P_WE: s[0] = c->d_vocab; s[1] = D; return 2;
    case P_WPOS: s[0] = c->n_ctx; s[1] = D; return 2;
    case P_LNW: case P_LNB: case P_BO: case P_BOUT: case P_POOLB: s[0] = D; return 1;
    case P_WQKV: s[0] = H; s[1] = D; s[2] = E; return 3;
    case P_BQKV: s[0] = H; s[1] = E; return 2;
    case P_WO: s[0] = H; s[1] = E; s[2] = D; return 3;
    case P_WIN: s[0] = D; s[1] = M; return 2;
    case P_BIN: s[0] = M; return 1;
    case P_WOUT: s[0] = M; s[1] = D; return 2;
    case P_WU: s[0] = D; s[1] = c->d_vocab_out; return 2;
    case P_BU: s[0] = c->d_vocab_out; return 1;
    case P_POOLW: s[0] = D; s[1] = D; return 2;
    case P_ROW: s[0] = c->readout == MT_READOUT_FLATTEN ? (int64_t)c->n_ctx * D : D; s[1] = c->d_out; return 2;
    case P_ROB: s[0] = c->d_out; return 1;
  }
  return 0;
}

/* how many of specs[0..n) this config has */
static int count_present(const mt_config *c, const pspec *specs, int n) {
  int k = 0;
  for (int j = 0; j < n; j++) k += has(c, specs[j].needs);
  return k;
}

/* the k-th present spec of specs[0..n) */
static const pspec *nth_present(const mt_config *c, const pspec *specs, int n, int k) {
  for (int j = 0; j < n; j++)
    if (has(c, specs[j].needs) && k-- == 0) return &specs[j];
  return NULL;
}

/* the spec of parameter i (and its layer, -1 outside the blocks), or NULL past the end with
   *count set to the number of parameters. Indexes the blocks directly, so listing every
   parameter of a deep model stays linear in its depth. */
static const pspec *param_at(const mt_config *c, int i, int *layer, int *count) {
  int nh = count_present(c, head_params, COUNT(head_params));
  int nb = count_present(c, block_params, COUNT(block_params));
  int nt = count_present(c, tail_params, COUNT(tail_params));
  int layers = c->tie_layers ? 1 : c->n_layers;
  *layer = -1;
  if (i >= 0 && i < nh) return nth_present(c, head_params, COUNT(head_params), i);
  if (i >= nh && (int64_t)(i - nh) < (int64_t)layers * nb) {
    *layer = (i - nh) / nb;
    return nth_present(c, block_params, COUNT(block_params), (i - nh) % nb);
  }
  int64_t t = (int64_t)i - nh - (int64_t)layers * nb;
  if (t >= 0 && t < nt) return nth_present(c, tail_params, COUNT(tail_params), (int)t);
  if (count) *count = (int)(nh + (int64_t)layers * nb + nt);
  return NULL;
}

/* the numbers in all parameters, as a double: the size check of a config runs before any
   allocation, and a count that large must not wrap */
double mt_tf_param_numel(const mt_config *c) {
  const struct { const pspec *specs; int n; double times; } groups[] = {
    {head_params, COUNT(head_params), 1}, {block_params, COUNT(block_params), c->tie_layers ? 1 : c->n_layers},
    {tail_params, COUNT(tail_params), 1}};
  double total = 0;
  for (int g = 0; g < 3; g++)
    for (int j = 0; j < groups[g].n; j++) {
      if (!has(c, groups[g].specs[j].needs)) continue;
      int64_t shape[4];
      int nd = shape_of(c, groups[g].specs[j].kind, shape);
      double n = 1;
      for (int d = 0; d < nd; d++) n *= (double)shape[d];
      total += n * groups[g].times;
    }
  return total;
}

int mt_tf_n_params(const mt_config *c) {
  int layer, n = 0;
  param_at(c, INT_MAX, &layer, &n);
  return n;
}

int mt_tf_param_info(const mt_config *c, int i, char *name, size_t n, int *ndim, int64_t *shape) {
  int layer;
  const pspec *p = param_at(c, i, &layer, NULL);
  if (!p) return -1;
  if (layer >= 0) snprintf(name, n, "blocks.%d.%s", layer, p->name);
  else snprintf(name, n, "%s", p->name);
  *ndim = shape_of(c, p->kind, shape);
  return p->kind;
}

mt_tensor *mt_tf_init_param(const mt_config *c, int i) {
  char name[64];
  int ndim;
  int64_t shape[4];
  int kind = mt_tf_param_info(c, i, name, sizeof name, &ndim, shape);
  if (kind < 0) { mt_seterr("transformer: no parameter %d", i); return NULL; }
  switch (kind) {
    case P_LNW: return mt_full(MT_F32, ndim, shape, 1.0);
    case P_LNB: case P_BQKV: case P_BO: case P_BIN: case P_BOUT: case P_BU: case P_POOLB: case P_ROB:
      return mt_zeros(MT_F32, ndim, shape);
    default: {
      mt_tensor *t = mt_randn(ndim, shape);
      if (!t) return NULL;
      float *p = mt_f32(t), s = (float)c->init_range;
      for (int64_t j = 0, n = mt_numel(t); j < n; j++) p[j] *= s;
      return t;
    }
  }
}

/* the parameters (in mt_tf_param_info order) into their named slots; blocks has room for
   the stored layers */
static void bind_weights(const mt_config *c, mt_tensor *const *P, weights *w) {
  block_weights *blocks = w->blocks;
  memset(w, 0, sizeof *w);
  w->blocks = blocks;
  int layer;
  const pspec *p;
  for (int i = 0; (p = param_at(c, i, &layer, NULL)); i++) {
    char *base = layer >= 0 ? (char *)&blocks[layer] : (char *)w;
    *(mt_tensor **)(base + p->slot) = P[i];
  }
}

/* ---- forward ---- */
typedef struct {
  const mt_config *c;
  const mt_forward_opts *o;
  mt_tensor *tokens;     /* 0-based ids [B, T] */
  mt_tensor *fixed[3];   /* the fixed patterns of this forward, by kind: they depend on the tokens only */
} fctx;

static int active(fctx *f, int id) {
#ifdef MILUA_NO_HOOKS   /* the benchmark's baseline build: hook points compiled out */
  (void)f; (void)id;
  return 0;
#endif
  return f->o && f->o->active && f->o->active[id];
}

/* pass an activation through its hook point; the tensor in *t may be replaced */
static int fire(fctx *f, int id, int layer, mt_tensor **t) {
  if (!active(f, id)) return 0;
  char name[64];
  mt_tf_hook_name(f->c, id, name, sizeof name);
  mt_tensor *before = *t;
  int64_t shape[MT_MAXDIM];
  int nd = before->ndim;
  memcpy(shape, before->shape, sizeof shape);
  mt_ref(before);
  if (f->o->cb(f->o->ud, id, name, layer, t)) { mt_unref(before); return -1; }
  if (*t != before) {
    mt_tensor *now = *t;
    int ok = now->ndim == nd && now->dtype == MT_F32;
    for (int d = 0; ok && d < nd; d++) if (now->shape[d] != shape[d]) ok = 0;
    if (!ok) {
      char a[64], b[64];
      mt_seterr("hook %s: the replacement has shape %s %s but the activation is %s float32", name,
                mt_shape_str(now, a, sizeof a), mt_dtype_name(now->dtype), mt_dims_str(shape, nd, b, sizeof b));
      mt_unref(before);
      return -1;
    }
  }
  mt_unref(before);
  return 0;
}
static int fire_layer(fctx *f, int layer, int k, mt_tensor **t) { return fire(f, layer_hook_id(f->c, layer, k), layer, t); }

#define TRY(x) do { if (!(x)) goto fail; } while (0)
#define SWAP(var, expr) do { mt_tensor *_n = (expr); mt_unref(var); var = _n; if (!var) goto fail; } while (0)

/* LayerNorm with hook points for the scale and the normalized stream: the fused kernel unless
   a hook wants one of them, then the same arithmetic in three steps (fused.c). Without
   gradients the three come from one pass (mt_ln_parts), and a step is recomputed only when a
   hook replaced its input (or made it require a gradient); with gradients, each step is its
   own node, so that they flow to the hooked activations. */
static mt_tensor *layer_norm(fctx *f, mt_tensor *x, mt_tensor *w, mt_tensor *b, int id_scale, int id_norm, int layer) {
  if (!active(f, id_scale) && !active(f, id_norm)) return mt_layer_norm(x, w, b, f->c->ln_eps);
  mt_tensor *sc = NULL, *xn = NULL, *out = NULL, *before = NULL, *in[3] = {x, w, b};
  int ok = 0, one_pass = !mt_needs_grad(3, in);
  if (one_pass) { if (mt_ln_parts(x, w, b, f->c->ln_eps, &sc, &xn, &out)) goto fail; }
  else TRY(sc = mt_ln_scale(x, f->c->ln_eps));
  before = mt_ref(sc);   /* held, so that a replacement cannot reuse its address */
  if (fire(f, id_scale, layer, &sc)) goto fail;
  if (!one_pass || sc != before || mt_needs_grad(1, &sc)) {
    SWAP(xn, mt_ln_normalize(x, sc));
    mt_unref(out);
    out = NULL;
  }
  mt_unref(before);
  before = mt_ref(xn);
  if (fire(f, id_norm, layer, &xn)) goto fail;
  if (!out || xn != before || mt_needs_grad(1, &xn)) SWAP(out, mt_affine(xn, w, b));
  ok = 1;
fail:
  mt_unref(sc); mt_unref(xn); mt_unref(before);
  if (!ok) { mt_unref(out); out = NULL; }
  return out;
}

/* a block's LayerNorm 1 or 2 */
static mt_tensor *block_ln(fctx *f, int l, int which, mt_tensor *x, const block_weights *bw) {
  return which == 1 ? layer_norm(f, x, bw->ln1_w, bw->ln1_b, layer_hook_id(f->c, l, H_LN1_SCALE), layer_hook_id(f->c, l, H_LN1_NORM), l)
                    : layer_norm(f, x, bw->ln2_w, bw->ln2_b, layer_hook_id(f->c, l, H_LN2_SCALE), layer_hook_id(f->c, l, H_LN2_NORM), l);
}

/* x [B,T,D] @ W [H,D,E] + b [H,E] -> [B,T,H,E] */
static mt_tensor *head_proj(mt_tensor *x, mt_tensor *W, mt_tensor *b) {
  int64_t s4[4] = {x->shape[0], x->shape[1], W->shape[0], W->shape[2]};
  mt_tensor *y = mt_linear(x, W, b);
  if (!y) return NULL;
  mt_tensor *out = mt_view(y, 4, s4);
  mt_unref(y);
  return out;
}

/* fixed attention patterns of the LEGO attention module, [B, T, T] */
static mt_tensor *fixed_pattern(int kind, mt_tensor *tokens, int causal) {
  int64_t B = tokens->shape[0], T = tokens->shape[1], s[3] = {B, T, T};
  mt_tensor *p = mt_zeros(MT_F32, 3, s), *tk = mt_contiguous(tokens);
  if (!p || !tk) { mt_unref(p); mt_unref(tk); return NULL; }
  float *pp = mt_f32(p);
  const int32_t *pt = mt_i32(tk);
  static const float local_w[5] = {1, 2, 4, 2, 1};
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < T; i++) {
      float *row = pp + (b * T + i) * T;
      double total = 0;
      for (int64_t j = 0; j < T; j++) {
        if (causal && j > i) continue;
        float w = 0;
        if (kind == MT_HEAD_ASSOC) w = (j != i && pt[b * T + j] == pt[b * T + i]) ? 1.0f : 0.0f;
        else if (j >= i - 2 && j <= i + 2) w = local_w[j - i + 2];
        row[j] = w;
        total += w;
      }
      if (total == 0) row[i] = 1.0f;   /* nothing to attend to: keep the position itself */
      else for (int64_t j = 0; j < T; j++) row[j] = (float)(row[j] / total);
    }
  mt_unref(tk);
  return p;
}

/* the learned heads' slice of a per-head weight [H, ...] (all of it when no head is fixed) */
static mt_tensor *learned_heads(mt_tensor *w, mt_tensor *idx) { return idx ? mt_index_select(w, 0, idx) : mt_ref(w); }

/* scores [..., T, S] *= scale, and -inf above the diagonal when causal, in place */
static void scale_mask_scores(mt_tensor *scores, float scale, int causal) {
  int64_t S = scores->shape[scores->ndim - 1], T = scores->shape[scores->ndim - 2], R = S ? mt_numel(scores) / S : 0;
  float *p = mt_f32(scores);
#pragma omp parallel for schedule(static) if (mt_par_worth(2.0 * R * S))
  for (int64_t r = 0; r < R; r++) {
    float *row = p + r * S;
    int64_t lim = causal ? r % (T ? T : 1) + 1 : S;
    for (int64_t j = 0; j < S; j++) row[j] = j < lim ? row[j] * scale : -INFINITY;
  }
  scores->storage->version++;
}

/* hook_q ... hook_z and the output projection: x [B,T,D] -> [B,T,D] */
static mt_tensor *attention(fctx *f, int l, mt_tensor *x, const block_weights *bw) {
  const mt_config *c = f->c;
  int64_t B = x->shape[0], T = x->shape[1], H = c->n_heads, E = c->d_head, D = c->d_model;
  mt_tensor *q = NULL, *k = NULL, *v = NULL, *scores = NULL, *pattern = NULL, *z = NULL, *z2 = NULL, *wo = NULL,
            *out = NULL, *mask = NULL, *tmp = NULL, *idx = NULL, *wq = NULL, *bq = NULL, *wk = NULL, *bk = NULL;
  int64_t sz3[3] = {B, T, H * E}, swo[2] = {H * E, D};
  /* heads with a fixed pattern (the LEGO attention module) compute no Q, K nor scores: those
     run on the learned heads only, and hook_q, hook_k and hook_attn_scores carry those heads */
  int64_t n_learned = 0;
  for (int h = 0; h < H; h++) n_learned += mt_config_head_kind(c, h) == MT_HEAD_LEARNED;
  if (n_learned < H && n_learned > 0) {
    TRY(idx = mt_empty(MT_I32, 1, &n_learned));
    int32_t *pi = mt_i32(idx);
    for (int h = 0, j = 0; h < H; h++) if (mt_config_head_kind(c, h) == MT_HEAD_LEARNED) pi[j++] = h;
  }
  if (n_learned > 0) {
    TRY(wq = learned_heads(bw->W_Q, idx));
    TRY(bq = learned_heads(bw->b_Q, idx));
    TRY(wk = learned_heads(bw->W_K, idx));
    TRY(bk = learned_heads(bw->b_K, idx));
    TRY(q = head_proj(x, wq, bq));
    if (fire_layer(f, l, H_Q, &q)) goto fail;
    TRY(k = head_proj(x, wk, bk));
    if (fire_layer(f, l, H_K, &k)) goto fail;
  }
  TRY(v = head_proj(x, bw->W_V, bw->b_V));
  if (fire_layer(f, l, H_V, &v)) goto fail;
  if (n_learned > 0) {
    TRY(scores = mt_attn_scores(q, k));       /* [B,H',T,T], unscaled */
    mt_tensor *qk[2] = {q, k};
    if (active(f, layer_hook_id(c, l, H_SCORES)) && !mt_needs_grad(2, qk) && scores->refcount == 1 &&
        scores->storage->refcount == 1 && mt_is_contiguous(scores)) {
      /* without gradients the fresh scores are scaled and masked in place, in one pass: the
         same products and -inf as the two steps below, without their two new tensors */
      scale_mask_scores(scores, (float)(1.0 / sqrt((double)E)), c->causal);
      if (fire_layer(f, l, H_SCORES, &scores)) goto fail;
      TRY(pattern = mt_attn_softmax(scores, 1.0, c->causal));
    } else if (active(f, layer_hook_id(c, l, H_SCORES))) {  /* materialise the hooked scores */
      TRY(tmp = mt_scalar(MT_F32, 1.0 / sqrt((double)E)));
      SWAP(scores, mt_binary(MT_MUL, scores, tmp));
      if (c->causal) {
        int64_t st[2] = {T, T};
        TRY(mask = mt_zeros(MT_F32, 2, st));
        float *pm = mt_f32(mask);
        for (int64_t i = 0; i < T; i++) for (int64_t j = i + 1; j < T; j++) pm[i * T + j] = 1;
        SWAP(scores, mt_masked_fill(scores, mask, -INFINITY));
      }
      if (fire_layer(f, l, H_SCORES, &scores)) goto fail;
      /* the kernel of the unhooked path, so a hook that changes nothing changes no bit */
      TRY(pattern = mt_attn_softmax(scores, 1.0, c->causal));
    } else
      TRY(pattern = mt_attn_softmax(scores, 1.0 / sqrt((double)E), c->causal));
  }
  if (n_learned < H) {   /* interleave the fixed patterns with the learned heads' */
    mt_tensor **heads = calloc((size_t)H, sizeof *heads);
    int ok = heads != NULL;
    if (!ok) mt_seterr("out of memory");
    for (int h = 0, j = 0; h < H && ok; h++) {
      int kind = mt_config_head_kind(c, h);
      if (kind && !f->fixed[kind]) f->fixed[kind] = fixed_pattern(kind, f->tokens, c->causal);   /* once per forward */
      heads[h] = kind ? mt_ref(f->fixed[kind]) : mt_select(pattern, 1, j++);
      ok = heads[h] != NULL;
    }
    mt_tensor *st = ok ? mt_stack((int)H, heads, 1) : NULL;
    for (int h = 0; h < H && heads; h++) mt_unref(heads[h]);
    free(heads);
    SWAP(pattern, st);
  }
  if (fire_layer(f, l, H_PATTERN, &pattern)) goto fail;
  TRY(z = mt_attn_apply(pattern, v));          /* [B,T,H,E] */
  if (fire_layer(f, l, H_Z, &z)) goto fail;
  TRY(z2 = mt_view(z, 3, sz3));
  TRY(wo = mt_view(bw->W_O, 2, swo));
  TRY(out = mt_linear(z2, wo, bw->b_O));
  if (fire_layer(f, l, H_ATTN_OUT, &out)) { mt_unref(out); out = NULL; }
fail:
  mt_unref(q); mt_unref(k); mt_unref(v); mt_unref(scores); mt_unref(pattern); mt_unref(z); mt_unref(z2);
  mt_unref(wo); mt_unref(mask); mt_unref(tmp); mt_unref(idx); mt_unref(wq); mt_unref(bq); mt_unref(wk); mt_unref(bk);
  return out;
}

/* hook_pre, hook_post, hook_mlp_out: x [B,T,D] -> [B,T,D] */
static mt_tensor *mlp(fctx *f, int l, mt_tensor *x, const block_weights *bw) {
  mt_tensor *pre = NULL, *post = NULL, *out = NULL;
  TRY(pre = mt_linear(x, bw->W_in, bw->b_in));
  if (fire_layer(f, l, H_PRE, &pre)) goto fail;
  TRY(post = mt_unary(f->c->act_fn == MT_ACT_RELU ? MT_RELU : MT_GELU, pre));
  if (fire_layer(f, l, H_POST, &post)) goto fail;
  TRY(out = mt_linear(post, bw->W_out, bw->b_out));
  if (fire_layer(f, l, H_MLP_OUT, &out)) { mt_unref(out); out = NULL; }
fail:
  mt_unref(pre); mt_unref(post);
  return out;
}

/* one block; takes the reference to resid, returns the block's output (a new reference)
     pre-LN:  mid = resid + attn(LN1(resid));  out = mid + mlp(LN2(mid))
     post-LN: mid = LN1(resid + attn(resid));  out = LN2(mid + mlp(mid))   */
static mt_tensor *block(fctx *f, int l, mt_tensor *resid, const block_weights *bw) {
  const mt_config *c = f->c;
  mt_tensor *x = NULL, *a = NULL, *m = NULL;
  if (fire_layer(f, l, H_RESID_PRE, &resid)) goto fail;
  if (!post_ln(c)) {
    TRY(x = c->layer_norm ? block_ln(f, l, 1, resid, bw) : mt_ref(resid));
    TRY(a = attention(f, l, x, bw));
    SWAP(resid, mt_binary(MT_ADD, resid, a));
    if (c->d_mlp > 0) {
      if (fire_layer(f, l, H_RESID_MID, &resid)) goto fail;
      mt_unref(x);
      TRY(x = c->layer_norm ? block_ln(f, l, 2, resid, bw) : mt_ref(resid));
      TRY(m = mlp(f, l, x, bw));
      SWAP(resid, mt_binary(MT_ADD, resid, m));
    }
    if (fire_layer(f, l, H_RESID_POST, &resid)) goto fail;
  } else {   /* config.c ensures LayerNorm and an MLP */
    TRY(a = attention(f, l, resid, bw));
    SWAP(resid, mt_binary(MT_ADD, resid, a));
    if (fire_layer(f, l, H_RESID_MID, &resid)) goto fail;
    SWAP(resid, block_ln(f, l, 1, resid, bw));
    TRY(m = mlp(f, l, resid, bw));
    SWAP(resid, mt_binary(MT_ADD, resid, m));
    if (fire_layer(f, l, H_RESID_POST, &resid)) goto fail;
    SWAP(resid, block_ln(f, l, 2, resid, bw));
    if (fire_layer(f, l, H_NORM_RESID_POST, &resid)) goto fail;
  }
  mt_unref(x); mt_unref(a); mt_unref(m);
  return resid;
fail:
  mt_unref(x); mt_unref(a); mt_unref(m); mt_unref(resid);
  return NULL;
}

static mt_tensor *sinusoid(int64_t T, int64_t D) {
  int64_t s[2] = {T, D};
  mt_tensor *p = mt_empty(MT_F32, 2, s);
  if (!p) return NULL;
  float *pp = mt_f32(p);
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < D; i += 2) {
      double a = (double)t / pow(10000.0, (double)i / (double)D);
      pp[t * D + i] = (float)sin(a);
      pp[t * D + i + 1] = (float)cos(a);
    }
  return p;
}

/* hook_embed + hook_pos_embed: tokens [B,T] -> resid [B,T,D] */
static mt_tensor *embed(fctx *f, const weights *w) {
  const mt_config *c = f->c;
  mt_tensor *tokens = f->tokens;
  int64_t B = tokens->shape[0], T = tokens->shape[1], D = c->d_model, sflat = B * T, s3[3] = {B, T, D};
  mt_tensor *flat = NULL, *rows = NULL, *emb = NULL, *table = NULL, *pos = NULL, *resid = NULL;
  TRY(flat = mt_view(tokens, 1, &sflat));
  TRY(rows = mt_index_select(w->W_E, 0, flat));
  TRY(emb = mt_view(rows, 3, s3));
  if (fire(f, H_EMBED, -1, &emb)) goto fail;
  if (c->positional == MT_POS_NONE) { resid = mt_ref(emb); goto fail; }
  TRY(table = c->positional == MT_POS_LEARNED ? mt_ref(w->W_pos) : sinusoid(T, D));
  SWAP(table, mt_narrow(table, 0, 0, T));
  SWAP(table, mt_unsqueeze(table, 0));
  TRY(pos = mt_expand(table, 3, s3));
  if (fire(f, H_POS, -1, &pos)) goto fail;
  resid = mt_binary(MT_ADD, emb, pos);
fail:
  mt_unref(flat); mt_unref(rows); mt_unref(emb); mt_unref(table); mt_unref(pos);
  return resid;
}

/* the final states x [B,T,D] into the output: logits [B,T,d_vocab_out], or [B,d_out] */
static mt_tensor *readout(fctx *f, const weights *w, mt_tensor *x) {
  const mt_config *c = f->c;
  int64_t B = x->shape[0], T = x->shape[1], D = c->d_model;
  mt_tensor *h = NULL, *p = NULL, *out = NULL;
  switch (c->readout) {
    case MT_READOUT_UNEMBED: return mt_linear(x, w->W_U, w->b_U);
    case MT_READOUT_FLATTEN: {   /* every position's state side by side: [B, T*D] */
      int64_t s2[2] = {B, T * D};
      TRY(h = mt_view(x, 2, s2));
      out = mt_linear(h, w->readout_W, w->readout_b);
      break;
    }
    case MT_READOUT_CLS_POOLER:   /* BERT's pooler on position 1: tanh(h W_pool + b_pool) W + b */
      TRY(h = mt_select(x, 1, 0));
      TRY(p = mt_linear(h, w->pooler_W, w->pooler_b));
      SWAP(p, mt_unary(MT_TANH, p));
      if (fire(f, global_hook_id(c, G_POOLER_OUT), -1, &p)) goto fail;
      out = mt_linear(p, w->readout_W, w->readout_b);
      break;
  }
fail:
  mt_unref(h); mt_unref(p);
  return out;
}

static int check_tokens(const mt_config *c, mt_tensor *tokens) {
  char sh[64];
  if (tokens->dtype != MT_I32 || tokens->ndim != 2) {
    mt_seterr("forward: tokens must be an int32 tensor [batch, pos], got %s %s", mt_dtype_name(tokens->dtype),
              mt_shape_str(tokens, sh, sizeof sh));
    return -1;
  }
  int64_t B = tokens->shape[0], T = tokens->shape[1];
  if (T > c->n_ctx) { mt_seterr("forward: %lld positions exceed n_ctx = %d", (long long)T, c->n_ctx); return -1; }
  if (B == 0 || T == 0) { mt_seterr("forward: empty batch %s", mt_shape_str(tokens, sh, sizeof sh)); return -1; }
  mt_tensor *tc = mt_contiguous(tokens);
  if (!tc) return -1;
  const int32_t *p = mt_i32(tc);
  for (int64_t i = 0; i < B * T; i++)
    if (p[i] < 0 || p[i] >= c->d_vocab) {
      mt_seterr("forward: token id %d at [%lld,%lld] is out of range 1..%d", p[i] + 1, (long long)(i / T) + 1,
                (long long)(i % T) + 1, c->d_vocab);
      mt_unref(tc);
      return -1;
    }
  mt_unref(tc);
  return 0;
}

mt_tensor *mt_tf_forward(const mt_config *c, mt_tensor *const *P, mt_tensor *tokens, const mt_forward_opts *o) {
  if (check_tokens(c, tokens)) return NULL;
  int stop = (o && o->stop_at_layer >= 0 && o->stop_at_layer < c->n_layers) ? o->stop_at_layer : c->n_layers;
  int return_resid = stop < c->n_layers || (o && o->return_resid);
  if (c->readout == MT_READOUT_FLATTEN && !return_resid && tokens->shape[1] != c->n_ctx) {
    mt_seterr("forward: readout = \"flatten\" reads all n_ctx = %d positions, got %lld", c->n_ctx,
              (long long)tokens->shape[1]);
    return NULL;
  }
  weights w;
  w.blocks = malloc(sizeof(block_weights) * (size_t)(c->tie_layers ? 1 : c->n_layers));
  if (!w.blocks) { mt_seterr("out of memory"); return NULL; }
  bind_weights(c, P, &w);
  fctx f = {c, o, tokens, {NULL, NULL, NULL}};
  mt_tensor *resid = embed(&f, &w), *out = NULL;
  for (int l = 0; l < stop && resid; l++) resid = block(&f, l, resid, &w.blocks[c->tie_layers ? 0 : l]);
  TRY(resid);
  if (stop < c->n_layers) { out = resid; resid = NULL; goto fail; }
  if (c->layer_norm && !post_ln(c))
    SWAP(resid, layer_norm(&f, resid, w.ln_final_w, w.ln_final_b, global_hook_id(c, G_LN_FINAL_SCALE),
                           global_hook_id(c, G_LN_FINAL_NORM), -1));
  if (return_resid) { out = resid; resid = NULL; goto fail; }
  out = readout(&f, &w, resid);
fail:
  mt_unref(resid);
  for (int k = 0; k < 3; k++) mt_unref(f.fixed[k]);
  free(w.blocks);
  return out;
}
