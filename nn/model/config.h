/* The transformer's configuration: one table of keys (name, kind, default, field) drives
   parsing, reading back, the list of keys and the error messages. A new option is one line
   in mt_config_keys (config.c) and one field here.

   Use: mt_config_defaults(&c); mt_config_set_*(&c, key, ...) for every key the user gave;
   mt_config_resolve(&c) fills the defaults that depend on other keys and validates the whole.
   Every setter returns 0, or -1 with a message naming the key, the value and what was
   expected in mt_error(). mt_config_free releases what the setters allocated. */
#ifndef MT_CONFIG_H
#define MT_CONFIG_H
#include <stddef.h>

enum { MT_POS_LEARNED, MT_POS_SINUSOIDAL, MT_POS_NONE };
enum { MT_ACT_RELU, MT_ACT_GELU };
enum { MT_LN_PRE, MT_LN_POST };
enum { MT_READOUT_UNEMBED, MT_READOUT_FLATTEN, MT_READOUT_CLS_POOLER };
/* a head's pattern in the LEGO attention module */
enum { MT_HEAD_LEARNED, MT_HEAD_ASSOC, MT_HEAD_LOCAL };

typedef struct {
  int n_layers, d_model, n_heads, d_head, d_mlp, d_vocab, d_vocab_out, n_ctx, d_out;
  int act_fn, layer_norm, ln_position, causal, tie_layers, positional, readout, attn_only;
  double init_range, ln_eps;
  /* per head MT_HEAD_*, n_fixed entries (heads past the end learn); NULL when every head learns */
  unsigned char *head_pattern;
  int n_fixed;
} mt_config;

typedef enum { MT_KEY_INT, MT_KEY_BOOL, MT_KEY_NUMBER, MT_KEY_CHOICE, MT_KEY_HEADS } mt_key_kind;

typedef struct {
  const char *name;
  mt_key_kind kind;
  const char *choices;   /* MT_KEY_CHOICE: the values, '|'-separated; the field holds the index */
  double def;            /* the default; MT_KEY_REQUIRED or MT_KEY_DERIVED for those below */
  size_t field;          /* offset of the int (or, for MT_KEY_NUMBER, double) field */
  int read_back;         /* 0 for input-only keys (attn_only is read back as d_mlp = 0) */
} mt_config_key;
#define MT_KEY_REQUIRED (-1.0)   /* no default: the user must give it */
#define MT_KEY_DERIVED (-2.0)    /* default computed from other keys by mt_config_resolve */

extern const mt_config_key mt_config_keys[];
extern const int mt_config_nkeys;
const mt_config_key *mt_config_key_find(const char *name);
const char *mt_config_kind_name(mt_key_kind kind);   /* "an integer", "true or false", ... */

void mt_config_defaults(mt_config *c);
int mt_config_set_int(mt_config *c, const mt_config_key *k, long long v);      /* also BOOL */
int mt_config_set_number(mt_config *c, const mt_config_key *k, double v);
int mt_config_set_choice(mt_config *c, const mt_config_key *k, const char *v);
int mt_config_set_head(mt_config *c, long long head, const char *pattern);     /* 1-based head */
int mt_config_resolve(mt_config *c);
void mt_config_free(mt_config *c);

/* 1 when a key means something for this config (d_out only with a readout, d_vocab_out only
   with the unembedding; input-only keys never): a model reads back those keys only */
int mt_config_applies(const mt_config *c, const mt_config_key *k);
/* the resolved value of a key: as an int (INT, BOOL, CHOICE index), a double, or the
   choice's name; the pattern name of a (0-based) head, NULL for a learned head */
int mt_config_get_int(const mt_config *c, const mt_config_key *k);
double mt_config_get_number(const mt_config *c, const mt_config_key *k);
const char *mt_config_get_choice(const mt_config *c, const mt_config_key *k, char *buf, size_t n);
const char *mt_config_head_pattern(const mt_config *c, int head);
int mt_config_head_kind(const mt_config *c, int head);   /* MT_HEAD_*, any head index */

/* "did you mean": the k names closest to `name` (at most n of them), best first, into best[];
   returns how many. Closeness: edits to turn `name` into a part of the candidate, then edits
   to the whole candidate, then the candidates' order. With max_edits >= 0 only candidates
   within that many edits of a part count. */
int mt_closest(const char *name, const char *const *names, int n, int k, int max_edits, int *best);

#endif
