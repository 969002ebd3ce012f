/* The transformer forward pass. Each step is a recorded autograd op, so the
   backward pass comes from the engine; each named activation passes through
   fire(), which costs one branch when no hook wants it. */
#include "model/transformer.h"
#include "core/ops.h"
#include "core/autograd.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */
static const char *layer_hooks[] = {
  "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
  "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
  "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"};
enum {
  H_RESID_PRE, H_LN1_SCALE, H_LN1_NORM, H_Q, H_K, H_V, H_SCORES, H_PATTERN, H_Z, H_ATTN_OUT, H_RESID_MID,
  H_LN2_SCALE, H_LN2_NORM, H_PRE, H_POST, H_MLP_OUT, H_RESID_POST, H_PER_LAYER
};
enum { H_EMBED = 0, H_POS = 1, H_GLOBAL0 = 2 };

static int hook_id(const mt_config *c, int layer, int k) { return H_GLOBAL0 + layer * H_PER_LAYER + k; }
int mt_tf_n_hooks(const mt_config *c) { return H_GLOBAL0 + c->n_layers * H_PER_LAYER + 2; }

static int layer_hook_exists(const mt_config *c, int k) {
  int ln = c->layer_norm, mlp = c->d_mlp > 0;
  switch (k) {
    case H_LN1_SCALE: case H_LN1_NORM: return ln;
    case H_LN2_SCALE: case H_LN2_NORM: return ln && mlp;
    case H_RESID_MID: case H_PRE: case H_POST: case H_MLP_OUT: return mlp;
    default: return 1;
  }
}

const char *mt_tf_hook_name(const mt_config *c, int i, char *buf, size_t n) {
  if (i == H_EMBED) return snprintf(buf, n, "hook_embed"), buf;
  if (i == H_POS) return c->positional == MT_POS_NONE ? NULL : (snprintf(buf, n, "hook_pos_embed"), buf);
  int end = H_GLOBAL0 + c->n_layers * H_PER_LAYER;
  if (i >= end) {
    if (!c->layer_norm || i >= end + 2) return NULL;
    snprintf(buf, n, "ln_final.%s", i == end ? "hook_scale" : "hook_normalized");
    return buf;
  }
  int l = (i - H_GLOBAL0) / H_PER_LAYER, k = (i - H_GLOBAL0) % H_PER_LAYER;
  if (!layer_hook_exists(c, k)) return NULL;
  snprintf(buf, n, "blocks.%d.%s", l, layer_hooks[k]);
  return buf;
}

/* ---- parameters ---- */
typedef struct { const char *name; int kind; } pspec;   /* kind: shape recipe below */
enum { P_WE, P_WPOS, P_LNW, P_LNB, P_WQKV, P_BQKV, P_WO, P_BO, P_WIN, P_BIN, P_WOUT, P_BOUT, P_WU, P_BU };

static const pspec block_params[] = {
  {"ln1.w", P_LNW}, {"ln1.b", P_LNB}, {"attn.W_Q", P_WQKV}, {"attn.b_Q", P_BQKV}, {"attn.W_K", P_WQKV},
  {"attn.b_K", P_BQKV}, {"attn.W_V", P_WQKV}, {"attn.b_V", P_BQKV}, {"attn.W_O", P_WO}, {"attn.b_O", P_BO},
  {"ln2.w", P_LNW}, {"ln2.b", P_LNB}, {"mlp.W_in", P_WIN}, {"mlp.b_in", P_BIN}, {"mlp.W_out", P_WOUT},
  {"mlp.b_out", P_BOUT}};
#define N_BLOCK_PARAMS 16

static int block_param_exists(const mt_config *c, int k) {
  if (k <= 1) return c->layer_norm;
  if (k >= 10 && k <= 11) return c->layer_norm && c->d_mlp > 0;
  if (k >= 12) return c->d_mlp > 0;
  return 1;
}

static int shape_of(const mt_config *c, int kind, int64_t *s) {
  int64_t D = c->d_model, H = c->n_heads, E = c->d_head, M = c->d_mlp;
  switch (kind) {
    case P_WE: s[0] = c->d_vocab; s[1] = D; return 2;
    case P_WPOS: s[0] = c->n_ctx; s[1] = D; return 2;
    case P_LNW: case P_LNB: case P_BO: case P_BOUT: s[0] = D; return 1;
    case P_WQKV: s[0] = H; s[1] = D; s[2] = E; return 3;
    case P_BQKV: s[0] = H; s[1] = E; return 2;
    case P_WO: s[0] = H; s[1] = E; s[2] = D; return 3;
    case P_WIN: s[0] = D; s[1] = M; return 2;
    case P_BIN: s[0] = M; return 1;
    case P_WOUT: s[0] = M; s[1] = D; return 2;
    case P_WU: s[0] = D; s[1] = c->d_vocab_out; return 2;
    case P_BU: s[0] = c->d_vocab_out; return 1;
  }
  return 0;
}

/* walks the parameter list; returns the kind of parameter i and fills its name */
static int param_at(const mt_config *c, int i, char *name, size_t n) {
  int k = 0;
  if (i == k++) { snprintf(name, n, "embed.W_E"); return P_WE; }
  if (c->positional == MT_POS_LEARNED && i == k++) { snprintf(name, n, "pos_embed.W_pos"); return P_WPOS; }
  int layers = c->tie_layers ? 1 : c->n_layers;
  for (int l = 0; l < layers; l++)
    for (int j = 0; j < N_BLOCK_PARAMS; j++) {
      if (!block_param_exists(c, j)) continue;
      if (i == k++) { snprintf(name, n, "blocks.%d.%s", l, block_params[j].name); return block_params[j].kind; }
    }
  if (c->layer_norm) {
    if (i == k++) { snprintf(name, n, "ln_final.w"); return P_LNW; }
    if (i == k++) { snprintf(name, n, "ln_final.b"); return P_LNB; }
  }
  if (i == k++) { snprintf(name, n, "unembed.W_U"); return P_WU; }
  if (i == k++) { snprintf(name, n, "unembed.b_U"); return P_BU; }
  return -(k);   /* count when i is past the end */
}

int mt_tf_n_params(const mt_config *c) {
  char buf[64];
  return -param_at(c, 1 << 30, buf, sizeof buf);
}

int mt_tf_param_info(const mt_config *c, int i, char *name, size_t n, int *ndim, int64_t *shape) {
  int kind = param_at(c, i, name, n);
  if (kind < 0) return -1;
  *ndim = shape_of(c, kind, shape);
  return kind;
}

mt_tensor *mt_tf_init_param(const mt_config *c, int i) {
  char name[64];
  int ndim;
  int64_t shape[4];
  int kind = mt_tf_param_info(c, i, name, sizeof name, &ndim, shape);
  if (kind < 0) { mt_seterr("transformer: no parameter %d", i); return NULL; }
  switch (kind) {
    case P_LNW: return mt_full(MT_F32, ndim, shape, 1.0);
    case P_LNB: case P_BQKV: case P_BO: case P_BIN: case P_BOUT: case P_BU: return mt_zeros(MT_F32, ndim, shape);
    default: {
      mt_tensor *t = mt_randn(ndim, shape);
      if (!t) return NULL;
      float *p = mt_f32(t), s = (float)c->init_range;
      for (int64_t j = 0, n = mt_numel(t); j < n; j++) p[j] *= s;
      return t;
    }
  }
}

/* ---- forward ---- */
typedef struct {
  const mt_config *c;
  const mt_forward_opts *o;
  int failed;
  mt_tensor *fixed[3];   /* the fixed patterns of this forward, by kind: they depend on the tokens only */
} fctx;

/* pass an activation through its hook point; the tensor in *t may be replaced */
static int fire(fctx *f, int id, int layer, mt_tensor **t) {
#ifdef MILUA_NO_HOOKS   /* the benchmark's baseline build: hook points compiled out */
  (void)f; (void)id; (void)layer; (void)t;
  return 0;
#endif
  if (!f->o || !f->o->active || !f->o->active[id]) return 0;
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

#define TRY(x) do { if (!(x)) goto fail; } while (0)
#define SWAP(var, expr) do { mt_tensor *_n = (expr); mt_unref(var); var = _n; if (!var) goto fail; } while (0)

/* LayerNorm with hook points for the scale and the normalized stream */
static int active(fctx *f, int id) {
#ifdef MILUA_NO_HOOKS
  (void)f; (void)id;
  return 0;
#endif
  return f->o && f->o->active && f->o->active[id];
}

/* the hooked LayerNorm when no gradient is needed (a cache, an intervention): three passes */
static mt_tensor *layer_norm_nograd(fctx *f, mt_tensor *x, mt_tensor *w, mt_tensor *b, int id_scale, int layer) {
  mt_tensor *sc = NULL, *xn = NULL, *out = NULL;
  TRY(sc = mt_ln_scale(x, f->c->ln_eps));
  if (fire(f, id_scale, layer, &sc)) goto fail;
  TRY(xn = mt_ln_normalize(x, sc));
  if (fire(f, id_scale + 1, layer, &xn)) goto fail;
  out = mt_affine(xn, w, b);
fail:
  mt_unref(sc); mt_unref(xn);
  return out;
}

static mt_tensor *layer_norm(fctx *f, mt_tensor *x, mt_tensor *w, mt_tensor *b, int id_scale, int layer) {
  /* the fused kernel unless a hook wants the scale or the normalized stream */
  if (!active(f, id_scale) && !active(f, id_scale + 1)) return mt_layer_norm(x, w, b, f->c->ln_eps);
  mt_tensor *in[3] = {x, w, b};
  if (!mt_needs_grad(3, in)) return layer_norm_nograd(f, x, w, b, id_scale, layer);
  mt_tensor *mean = NULL, *xc = NULL, *sq = NULL, *ms = NULL, *eps = NULL, *var = NULL, *scale = NULL, *xn = NULL,
            *y = NULL, *out = NULL;
  TRY(mean = mt_mean(x, -1, 1));
  TRY(xc = mt_binary(MT_SUB, x, mean));
  TRY(sq = mt_binary(MT_MUL, xc, xc));
  TRY(ms = mt_mean(sq, -1, 1));
  TRY(eps = mt_scalar(MT_F32, f->c->ln_eps));
  TRY(var = mt_binary(MT_ADD, ms, eps));
  TRY(scale = mt_unary(MT_SQRT, var));
  if (fire(f, id_scale, layer, &scale)) goto fail;
  TRY(xn = mt_binary(MT_DIV, xc, scale));
  if (fire(f, id_scale + 1, layer, &xn)) goto fail;
  TRY(y = mt_binary(MT_MUL, xn, w));
  out = mt_binary(MT_ADD, y, b);
fail:
  mt_unref(mean); mt_unref(xc); mt_unref(sq); mt_unref(ms); mt_unref(eps); mt_unref(var); mt_unref(scale);
  mt_unref(xn); mt_unref(y);
  return out;
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

static mt_tensor *attention(fctx *f, int l, mt_tensor *x, mt_tensor *const *w, mt_tensor *tokens) {
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
    TRY(wq = learned_heads(w[0], idx));
    TRY(bq = learned_heads(w[1], idx));
    TRY(wk = learned_heads(w[2], idx));
    TRY(bk = learned_heads(w[3], idx));
    TRY(q = head_proj(x, wq, bq));
    if (fire(f, hook_id(c, l, H_Q), l, &q)) goto fail;
    TRY(k = head_proj(x, wk, bk));
    if (fire(f, hook_id(c, l, H_K), l, &k)) goto fail;
  }
  TRY(v = head_proj(x, w[4], w[5]));
  if (fire(f, hook_id(c, l, H_V), l, &v)) goto fail;
  if (n_learned > 0) {
    TRY(scores = mt_attn_scores(q, k));       /* [B,H',T,T], unscaled */
    if (active(f, hook_id(c, l, H_SCORES))) {  /* materialise the hooked scores */
      TRY(tmp = mt_scalar(MT_F32, 1.0 / sqrt((double)E)));
      SWAP(scores, mt_binary(MT_MUL, scores, tmp));
      if (c->causal) {
        int64_t st[2] = {T, T};
        TRY(mask = mt_zeros(MT_F32, 2, st));
        float *pm = mt_f32(mask);
        for (int64_t i = 0; i < T; i++) for (int64_t j = i + 1; j < T; j++) pm[i * T + j] = 1;
        SWAP(scores, mt_masked_fill(scores, mask, -INFINITY));
      }
      if (fire(f, hook_id(c, l, H_SCORES), l, &scores)) goto fail;
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
      if (kind && !f->fixed[kind]) f->fixed[kind] = fixed_pattern(kind, tokens, c->causal);   /* once per forward */
      heads[h] = kind ? mt_ref(f->fixed[kind]) : mt_select(pattern, 1, j++);
      ok = heads[h] != NULL;
    }
    mt_tensor *st = ok ? mt_stack((int)H, heads, 1) : NULL;
    for (int h = 0; h < H && heads; h++) mt_unref(heads[h]);
    free(heads);
    SWAP(pattern, st);
  }
  if (fire(f, hook_id(c, l, H_PATTERN), l, &pattern)) goto fail;
  TRY(z = mt_attn_apply(pattern, v));          /* [B,T,H,E] */
  if (fire(f, hook_id(c, l, H_Z), l, &z)) goto fail;
  TRY(z2 = mt_view(z, 3, sz3));
  TRY(wo = mt_view(w[6], 2, swo));
  out = mt_linear(z2, wo, w[7]);
fail:
  mt_unref(q); mt_unref(k); mt_unref(v); mt_unref(scores); mt_unref(pattern); mt_unref(z); mt_unref(z2);
  mt_unref(wo); mt_unref(mask); mt_unref(tmp); mt_unref(idx); mt_unref(wq); mt_unref(bq); mt_unref(wk); mt_unref(bk);
  return out;
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

mt_tensor *mt_tf_forward(const mt_config *c, mt_tensor *const *P, mt_tensor *tokens, const mt_forward_opts *o) {
  fctx f = {c, o, 0, {NULL, NULL, NULL}};
  char sh[64];
  if (tokens->dtype != MT_I32 || tokens->ndim != 2) {
    mt_seterr("forward: tokens must be an int32 tensor [batch, pos], got %s %s", mt_dtype_name(tokens->dtype),
              mt_shape_str(tokens, sh, sizeof sh));
    return NULL;
  }
  int64_t B = tokens->shape[0], T = tokens->shape[1], D = c->d_model;
  if (T > c->n_ctx) {
    mt_seterr("forward: %lld positions exceed n_ctx = %d", (long long)T, c->n_ctx);
    return NULL;
  }
  if (B == 0 || T == 0) { mt_seterr("forward: empty batch %s", mt_shape_str(tokens, sh, sizeof sh)); return NULL; }
  {
    mt_tensor *tc = mt_contiguous(tokens);
    if (!tc) return NULL;
    const int32_t *p = mt_i32(tc);
    for (int64_t i = 0; i < B * T; i++)
      if (p[i] < 0 || p[i] >= c->d_vocab) {
        mt_seterr("forward: token id %d at [%lld,%lld] is out of range 1..%d", p[i] + 1, (long long)(i / T) + 1,
                  (long long)(i % T) + 1, c->d_vocab);
        mt_unref(tc);
        return NULL;
      }
    mt_unref(tc);
  }
  int stop = (o && o->stop_at_layer >= 0 && o->stop_at_layer < c->n_layers) ? o->stop_at_layer : c->n_layers;
  mt_tensor *flat = NULL, *emb = NULL, *pos = NULL, *resid = NULL, *x = NULL, *tmp = NULL, *out = NULL;
  int64_t sflat = B * T, s3[3] = {B, T, D};
  int pi = 0;
  mt_tensor *W_E = P[pi++];
  TRY(flat = mt_view(tokens, 1, &sflat));
  TRY(tmp = mt_index_select(W_E, 0, flat));
  TRY(emb = mt_view(tmp, 3, s3));
  if (fire(&f, H_EMBED, -1, &emb)) goto fail;
  if (c->positional != MT_POS_NONE) {
    mt_tensor *table = c->positional == MT_POS_LEARNED ? mt_ref(P[pi++]) : sinusoid(T, D);
    TRY(table);
    mt_tensor *nar = mt_narrow(table, 0, 0, T);
    mt_unref(table);
    TRY(nar);
    mt_tensor *u = mt_unsqueeze(nar, 0);
    mt_unref(nar);
    TRY(u);
    pos = mt_expand(u, 3, s3);
    mt_unref(u);
    TRY(pos);
    if (fire(&f, H_POS, -1, &pos)) goto fail;
    TRY(resid = mt_binary(MT_ADD, emb, pos));
  } else resid = mt_ref(emb);
  int per_block = 0;
  for (int j = 0; j < N_BLOCK_PARAMS; j++) per_block += block_param_exists(c, j);
  int block0 = pi;
  for (int l = 0; l < stop; l++) {
    mt_tensor *const *bw = P + block0 + (c->tie_layers ? 0 : l * per_block);
    int bi = 0;
    mt_tensor *ln1w = NULL, *ln1b = NULL, *ln2w = NULL, *ln2b = NULL;
    if (c->layer_norm) { ln1w = bw[bi++]; ln1b = bw[bi++]; }
    mt_tensor *const *aw = bw + bi;
    bi += 8;
    if (c->layer_norm && c->d_mlp > 0) { ln2w = bw[bi++]; ln2b = bw[bi++]; }
    mt_tensor *const *mw = bw + bi;
    if (fire(&f, hook_id(c, l, H_RESID_PRE), l, &resid)) goto fail;
    x = c->layer_norm ? layer_norm(&f, resid, ln1w, ln1b, hook_id(c, l, H_LN1_SCALE), l) : mt_ref(resid);
    TRY(x);
    mt_tensor *a = attention(&f, l, x, aw, tokens);
    mt_unref(x); x = NULL;
    TRY(a);
    if (fire(&f, hook_id(c, l, H_ATTN_OUT), l, &a)) { mt_unref(a); goto fail; }
    SWAP(resid, mt_binary(MT_ADD, resid, a));
    mt_unref(a);
    if (c->d_mlp > 0) {
      if (fire(&f, hook_id(c, l, H_RESID_MID), l, &resid)) goto fail;
      x = c->layer_norm ? layer_norm(&f, resid, ln2w, ln2b, hook_id(c, l, H_LN2_SCALE), l) : mt_ref(resid);
      TRY(x);
      mt_tensor *pre = mt_linear(x, mw[0], mw[1]);
      mt_unref(x); x = NULL;
      TRY(pre);
      if (fire(&f, hook_id(c, l, H_PRE), l, &pre)) { mt_unref(pre); goto fail; }
      mt_tensor *post = mt_unary(c->act_fn == MT_ACT_RELU ? MT_RELU : MT_GELU, pre);
      mt_unref(pre);
      TRY(post);
      if (fire(&f, hook_id(c, l, H_POST), l, &post)) { mt_unref(post); goto fail; }
      mt_tensor *mo = mt_linear(post, mw[2], mw[3]);
      mt_unref(post);
      TRY(mo);
      if (fire(&f, hook_id(c, l, H_MLP_OUT), l, &mo)) { mt_unref(mo); goto fail; }
      SWAP(resid, mt_binary(MT_ADD, resid, mo));
      mt_unref(mo);
    }
    if (fire(&f, hook_id(c, l, H_RESID_POST), l, &resid)) goto fail;
  }
  if (stop < c->n_layers) { out = resid; resid = NULL; goto fail; }
  {
    int fi = block0 + (c->tie_layers ? 1 : c->n_layers) * per_block;
    int end = H_GLOBAL0 + c->n_layers * H_PER_LAYER;
    if (c->layer_norm) {
      x = layer_norm(&f, resid, P[fi], P[fi + 1], end, -1);
      fi += 2;
    } else x = mt_ref(resid);
    TRY(x);
    if (o && o->return_resid) { out = x; x = NULL; goto fail; }
    out = mt_linear(x, P[fi], P[fi + 1]);
  }
fail:
  mt_unref(flat); mt_unref(emb); mt_unref(pos); mt_unref(resid); mt_unref(x); mt_unref(tmp);
  for (int k = 0; k < 3; k++) mt_unref(f.fixed[k]);
  return out;
}
