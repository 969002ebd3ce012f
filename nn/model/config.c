/* The transformer's configuration keys, their defaults and their checks (config.h). */
#include "model/config.h"
#include "core/tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(mt_config, field)
/* In the order a model reads them back (and writes them to a checkpoint's config). */
const mt_config_key mt_config_keys[] = {
  {"n_layers", MT_KEY_INT, NULL, MT_KEY_REQUIRED, F(n_layers), 1},
  {"d_model", MT_KEY_INT, NULL, MT_KEY_REQUIRED, F(d_model), 1},
  {"n_heads", MT_KEY_INT, NULL, 1, F(n_heads), 1},
  {"d_head", MT_KEY_INT, NULL, MT_KEY_DERIVED, F(d_head), 1},            /* d_model / n_heads */
  {"d_mlp", MT_KEY_INT, NULL, MT_KEY_DERIVED, F(d_mlp), 1},              /* 4 d_model; 0 = no MLP */
  {"d_vocab", MT_KEY_INT, NULL, MT_KEY_REQUIRED, F(d_vocab), 1},
  {"d_vocab_out", MT_KEY_INT, NULL, MT_KEY_DERIVED, F(d_vocab_out), 1},  /* d_vocab */
  {"n_ctx", MT_KEY_INT, NULL, MT_KEY_REQUIRED, F(n_ctx), 1},
  {"act_fn", MT_KEY_CHOICE, "relu|gelu", MT_ACT_GELU, F(act_fn), 1},
  {"normalization", MT_KEY_CHOICE, "none|LN", 1, F(layer_norm), 1},
  {"ln_position", MT_KEY_CHOICE, "pre|post", MT_LN_PRE, F(ln_position), 1},
  {"ln_eps", MT_KEY_NUMBER, NULL, 1e-5, F(ln_eps), 1},
  {"causal", MT_KEY_BOOL, NULL, 1, F(causal), 1},
  {"init_range", MT_KEY_NUMBER, NULL, 0.02, F(init_range), 1},
  {"tie_layers", MT_KEY_BOOL, NULL, 0, F(tie_layers), 1},
  {"positional", MT_KEY_CHOICE, "learned|sinusoidal|none", MT_POS_LEARNED, F(positional), 1},
  {"readout", MT_KEY_CHOICE, "unembed|flatten|cls_pooler", MT_READOUT_UNEMBED, F(readout), 1},
  {"d_out", MT_KEY_INT, NULL, 0, F(d_out), 1},                           /* 0: no such key */
  {"attn_only", MT_KEY_BOOL, NULL, 0, F(attn_only), 0},
  {"fixed_patterns", MT_KEY_HEADS, NULL, 0, 0, 1},
};
#undef F
const int mt_config_nkeys = (int)(sizeof mt_config_keys / sizeof mt_config_keys[0]);

static const char *head_patterns[] = {NULL, "assoc", "local"};

const mt_config_key *mt_config_key_find(const char *name) {
  for (int i = 0; i < mt_config_nkeys; i++)
    if (!strcmp(mt_config_keys[i].name, name)) return &mt_config_keys[i];
  return NULL;
}

const char *mt_config_kind_name(mt_key_kind kind) {
  switch (kind) {
    case MT_KEY_INT: return "an integer";
    case MT_KEY_BOOL: return "true or false";
    case MT_KEY_NUMBER: return "a number";
    case MT_KEY_CHOICE: return "a string";
    case MT_KEY_HEADS: return "a table {[head] = \"assoc\"|\"local\"}";
  }
  return "?";
}

static int *int_field(mt_config *c, const mt_config_key *k) { return (int *)((char *)c + k->field); }
static double *num_field(mt_config *c, const mt_config_key *k) { return (double *)((char *)c + k->field); }

void mt_config_defaults(mt_config *c) {
  memset(c, 0, sizeof *c);
  for (int i = 0; i < mt_config_nkeys; i++) {
    const mt_config_key *k = &mt_config_keys[i];
    if (k->kind == MT_KEY_NUMBER) *num_field(c, k) = k->def;
    else if (k->kind != MT_KEY_HEADS) *int_field(c, k) = (int)k->def;   /* REQUIRED, DERIVED: -1, -2 */
  }
}

int mt_config_set_int(mt_config *c, const mt_config_key *k, long long v) {
  if (k->kind == MT_KEY_BOOL) { *int_field(c, k) = v != 0; return 0; }
  if (k->kind != MT_KEY_INT) { mt_seterr("transformer: config key '%s' is not an integer", k->name); return -1; }
  if (v < 0 || v > (1 << 24)) {
    mt_seterr("transformer: config key '%s' = %lld is out of range 0..%d", k->name, v, 1 << 24);
    return -1;
  }
  *int_field(c, k) = (int)v;
  return 0;
}

int mt_config_set_number(mt_config *c, const mt_config_key *k, double v) {
  if (k->kind != MT_KEY_NUMBER) { mt_seterr("transformer: config key '%s' is not a number", k->name); return -1; }
  if (!(v > 0) || v > 1e30) {
    mt_seterr("transformer: config key '%s' must be a positive number, got %g", k->name, v);
    return -1;
  }
  *num_field(c, k) = v;
  return 0;
}

int mt_config_set_choice(mt_config *c, const mt_config_key *k, const char *v) {
  if (k->kind != MT_KEY_CHOICE) { mt_seterr("transformer: config key '%s' is not a choice", k->name); return -1; }
  size_t n = strlen(v);
  int idx = 0;
  for (const char *p = k->choices; *p; idx++) {
    const char *e = strchr(p, '|');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncmp(p, v, n)) { *int_field(c, k) = idx; return 0; }
    p += len + (e != NULL);
  }
  char list[128] = "";
  size_t o = 0;
  for (const char *p = k->choices; *p && o + 8 < sizeof list;) {
    const char *e = strchr(p, '|');
    int len = e ? (int)(e - p) : (int)strlen(p);
    o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%.*s\"", o ? ", " : "", len, p);
    p += len + (e != NULL);
  }
  mt_seterr("transformer: config key '%s' must be one of %s, got \"%s\"", k->name, list, v);
  return -1;
}

int mt_config_set_head(mt_config *c, long long head, const char *pattern) {
  int kind = 0;
  for (int i = 1; i < 3; i++) if (pattern && !strcmp(pattern, head_patterns[i])) kind = i;
  if (!kind) {
    mt_seterr("transformer: fixed_patterns[%lld] must be \"assoc\" or \"local\", got %s%s%s", head, pattern ? "\"" : "",
              pattern ? pattern : "a non-string", pattern ? "\"" : "");
    return -1;
  }
  if (head < 1 || head > (1 << 16)) { mt_seterr("transformer: fixed_patterns: head %lld is not a head number", head); return -1; }
  if (head > c->n_fixed) {
    unsigned char *p = realloc(c->head_pattern, (size_t)head);
    if (!p) { mt_seterr("out of memory"); return -1; }
    memset(p + c->n_fixed, MT_HEAD_LEARNED, (size_t)(head - c->n_fixed));
    c->head_pattern = p;
    c->n_fixed = (int)head;
  }
  c->head_pattern[head - 1] = (unsigned char)kind;
  return 0;
}

void mt_config_free(mt_config *c) {
  free(c->head_pattern);
  c->head_pattern = NULL;
  c->n_fixed = 0;
}

static int fail_key(const char *key, const char *what, int v) {
  mt_seterr("transformer: config key '%s' %s, got %d", key, what, v);
  return -1;
}

int mt_config_resolve(mt_config *c) {
  for (int i = 0; i < mt_config_nkeys; i++) {
    const mt_config_key *k = &mt_config_keys[i];
    if (k->def == MT_KEY_REQUIRED && *int_field(c, k) < 0) {
      mt_seterr("transformer: config key '%s' is required", k->name);
      return -1;
    }
  }
  if (c->n_layers <= 0) return fail_key("n_layers", "must be a positive integer", c->n_layers);
  if (c->d_model <= 0) return fail_key("d_model", "must be a positive integer", c->d_model);
  if (c->n_heads <= 0) return fail_key("n_heads", "must be a positive integer", c->n_heads);
  if (c->d_head == (int)MT_KEY_DERIVED) c->d_head = c->d_model / c->n_heads;
  if (c->d_head <= 0) return fail_key("d_head", "must be a positive integer (default d_model / n_heads)", c->d_head);
  if (c->d_mlp == (int)MT_KEY_DERIVED) c->d_mlp = c->attn_only ? 0 : 4 * c->d_model;
  else if (c->attn_only && c->d_mlp != 0) {
    mt_seterr("transformer: attn_only = true conflicts with d_mlp = %d", c->d_mlp);
    return -1;
  }
  if (c->d_vocab <= 0) return fail_key("d_vocab", "must be a positive integer", c->d_vocab);
  if (c->d_vocab_out == (int)MT_KEY_DERIVED) c->d_vocab_out = c->d_vocab;
  else if (c->readout != MT_READOUT_UNEMBED) {
    mt_seterr("transformer: config key 'd_vocab_out' sizes the unembedding; readout = \"%s\" has d_out instead",
              c->readout == MT_READOUT_FLATTEN ? "flatten" : "cls_pooler");
    return -1;
  }
  if (c->d_vocab_out <= 0) return fail_key("d_vocab_out", "must be a positive integer", c->d_vocab_out);
  if (c->n_ctx <= 0) return fail_key("n_ctx", "must be a positive integer", c->n_ctx);
  if (c->readout == MT_READOUT_UNEMBED && c->d_out) {
    mt_seterr("transformer: config key 'd_out' = %d needs readout = \"flatten\" or \"cls_pooler\" (the unembedding has "
              "d_vocab_out outputs)", c->d_out);
    return -1;
  }
  if (c->readout != MT_READOUT_UNEMBED && c->d_out <= 0) {
    mt_seterr("transformer: readout = \"%s\" needs a positive 'd_out' (the number of outputs), got %d",
              c->readout == MT_READOUT_FLATTEN ? "flatten" : "cls_pooler", c->d_out);
    return -1;
  }
  if (c->ln_position == MT_LN_POST && !c->layer_norm) {
    mt_seterr("transformer: ln_position = \"post\" needs normalization = \"LN\"");
    return -1;
  }
  if (c->ln_position == MT_LN_POST && c->d_mlp == 0) {
    mt_seterr("transformer: ln_position = \"post\" needs an MLP (d_mlp > 0): its blocks end in the MLP's LayerNorm");
    return -1;
  }
  if (c->positional == MT_POS_SINUSOIDAL && c->d_model % 2)
    return fail_key("d_model", "must be even for sinusoidal positions", c->d_model);
  if (c->n_fixed > c->n_heads) {
    mt_seterr("transformer: fixed_patterns: head %d is not in 1..%d", c->n_fixed, c->n_heads);
    return -1;
  }
  int any = 0;
  for (int h = 0; h < c->n_fixed; h++) any |= c->head_pattern[h] != MT_HEAD_LEARNED;
  if (!any) mt_config_free(c);
  return 0;
}

int mt_config_applies(const mt_config *c, const mt_config_key *k) {
  if (!k->read_back) return 0;
  if (!strcmp(k->name, "d_out")) return c->readout != MT_READOUT_UNEMBED;
  if (!strcmp(k->name, "d_vocab_out")) return c->readout == MT_READOUT_UNEMBED;
  return 1;
}

int mt_config_get_int(const mt_config *c, const mt_config_key *k) { return *int_field((mt_config *)c, k); }
double mt_config_get_number(const mt_config *c, const mt_config_key *k) { return *num_field((mt_config *)c, k); }

const char *mt_config_get_choice(const mt_config *c, const mt_config_key *k, char *buf, size_t n) {
  int idx = mt_config_get_int(c, k);
  const char *p = k->choices;
  for (int i = 0; i < idx && p; i++) { p = strchr(p, '|'); if (p) p++; }
  if (!p) return NULL;
  const char *e = strchr(p, '|');
  snprintf(buf, n, "%.*s", e ? (int)(e - p) : (int)strlen(p), p);
  return buf;
}

int mt_config_head_kind(const mt_config *c, int head) {
  return head >= 0 && head < c->n_fixed ? c->head_pattern[head] : MT_HEAD_LEARNED;
}
const char *mt_config_head_pattern(const mt_config *c, int head) { return head_patterns[mt_config_head_kind(c, head)]; }

/* ---- "did you mean" ---- */
/* edits to turn a into some part of b (free start and end in b: Sellers' algorithm), and
   edits to turn a into all of b; long names are compared by their first 63 characters */
static void distances(const char *a, const char *b, int *part, int *whole) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 63) la = 63;
  if (lb > 63) lb = 63;
  int dp[64], dw[64];   /* column j of the previous row, for the part and the whole */
  for (int i = 0; i <= la; i++) dp[i] = dw[i] = i;
  for (int j = 1; j <= lb; j++) {
    int pp = dp[0], pw = dw[0];   /* diagonal */
    dp[0] = 0;                    /* a part may start anywhere in b */
    dw[0] = j;
    for (int i = 1; i <= la; i++) {
      int sub = a[i - 1] != b[j - 1];
      int np = pp + sub, nw = pw + sub;
      if (dp[i] + 1 < np) np = dp[i] + 1;
      if (dp[i - 1] + 1 < np) np = dp[i - 1] + 1;
      if (dw[i] + 1 < nw) nw = dw[i] + 1;
      if (dw[i - 1] + 1 < nw) nw = dw[i - 1] + 1;
      pp = dp[i]; pw = dw[i];
      dp[i] = np; dw[i] = nw;
    }
    if (j == 1 || dp[la] < part[0]) part[0] = dp[la];   /* ... and end anywhere */
  }
  if (lb == 0) part[0] = la;
  *whole = dw[la];
}

int mt_closest(const char *name, const char *const *names, int n, int k, int max_edits, int *best) {
  int found = 0, bp[64], bw[64];
  if (k > 64) k = 64;
  for (int i = 0; i < n; i++) {
    int part = 0, whole = 0;
    distances(name, names[i], &part, &whole);
    if (max_edits >= 0 && part > max_edits) continue;
    int at = found < k ? found : k;   /* insertion point, keeping the first of equals first */
    while (at > 0 && (part < bp[at - 1] || (part == bp[at - 1] && whole < bw[at - 1]))) at--;
    if (at >= k) continue;
    int last = found < k ? found : k - 1;
    for (int j = last; j > at; j--) { best[j] = best[j - 1]; bp[j] = bp[j - 1]; bw[j] = bw[j - 1]; }
    best[at] = i; bp[at] = part; bw[at] = whole;
    if (found < k) found++;
  }
  return found;
}
