/* milua.nn_core: transformer configs and the forward pass with Lua hooks. */
#include "milua.h"
#include "core/ops.h"
#include "model/transformer.h"
#include <string.h>

#define CONFIG_MT "milua.TransformerConfig"

static const char *known_keys[] = {
  "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx", "act_fn",
  "normalization", "causal", "init_range", "tie_layers", "positional", "attn_only", "fixed_patterns", NULL};

static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 40 || lb > 40) return 99;
  int d[41][41];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < s) s = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < s) s = d[i][j - 1] + 1;
      d[i][j] = s;
    }
  return d[la][lb];
}

static int get_int(lua_State *L, int idx, const char *key, int def, int required) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (required) luaL_error(L, "transformer: config key '%s' is required", key);
    return def;
  }
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) luaL_error(L, "transformer: config key '%s' must be an integer, got %s", key, luaL_typename(L, -1));
  lua_pop(L, 1);
  if (v < -1 || v > (1 << 24)) luaL_error(L, "transformer: config key '%s' = %d is out of range", key, (int)v);
  return (int)v;
}

static int get_bool(lua_State *L, int idx, const char *key, int def) {
  lua_getfield(L, idx, key);
  int v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1)) luaL_error(L, "transformer: config key '%s' must be true or false, got %s", key, luaL_typename(L, -1));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int get_choice(lua_State *L, int idx, const char *key, const char *const *opts, int def) {
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
  const char *s = lua_tostring(L, -1);
  for (int i = 0; s && opts[i]; i++) if (!strcmp(s, opts[i])) { lua_pop(L, 1); return i; }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; opts[i]; i++) { luaL_addstring(&b, i ? ", \"" : "\""); luaL_addstring(&b, opts[i]); luaL_addchar(&b, '"'); }
  luaL_pushresult(&b);
  luaL_error(L, "transformer: config key '%s' must be one of %s, got %s", key, lua_tostring(L, -1),
             s ? s : luaL_typename(L, -2));
  return def;
}

/* nn_core.config(tbl) -> config userdata */
static int l_config(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int found = 0;
    for (int i = 0; k && known_keys[i]; i++) if (!strcmp(k, known_keys[i])) found = 1;
    if (!found) {
      if (!k) return luaL_error(L, "transformer: config keys must be strings");
      const char *best = NULL;
      int bd = 4;
      for (int i = 0; known_keys[i]; i++) {
        int d = edit_distance(k, known_keys[i]);
        if (d < bd) { bd = d; best = known_keys[i]; }
      }
      if (best) return luaL_error(L, "transformer: unknown config key '%s' (did you mean '%s'?)", k, best);
      return luaL_error(L, "transformer: unknown config key '%s'", k);
    }
  }
  mt_config *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CONFIG_MT);
  c->n_layers = get_int(L, 1, "n_layers", 0, 1);
  c->d_model = get_int(L, 1, "d_model", 0, 1);
  c->n_heads = get_int(L, 1, "n_heads", 1, 0);
  c->d_head = get_int(L, 1, "d_head", c->n_heads > 0 ? c->d_model / c->n_heads : 0, 0);
  int attn_only = get_bool(L, 1, "attn_only", 0);
  c->d_mlp = get_int(L, 1, "d_mlp", attn_only ? 0 : 4 * c->d_model, 0);
  if (attn_only && c->d_mlp != 0) return luaL_error(L, "transformer: attn_only = true conflicts with d_mlp = %d", c->d_mlp);
  c->d_vocab = get_int(L, 1, "d_vocab", 0, 1);
  c->d_vocab_out = get_int(L, 1, "d_vocab_out", c->d_vocab, 0);
  c->n_ctx = get_int(L, 1, "n_ctx", 0, 1);
  static const char *acts[] = {"relu", "gelu", NULL}, *norms[] = {"none", "LN", NULL},
                    *poss[] = {"learned", "sinusoidal", "none", NULL};
  c->act_fn = get_choice(L, 1, "act_fn", acts, MT_ACT_GELU);
  c->layer_norm = get_choice(L, 1, "normalization", norms, 1);
  c->positional = get_choice(L, 1, "positional", poss, MT_POS_LEARNED);
  c->causal = get_bool(L, 1, "causal", 1);
  c->tie_layers = get_bool(L, 1, "tie_layers", 0);
  lua_getfield(L, 1, "init_range");
  c->init_range = lua_isnil(L, -1) ? 0.02 : lua_tonumber(L, -1);
  if (!lua_isnil(L, -1) && !lua_isnumber(L, -1)) return luaL_error(L, "transformer: config key 'init_range' must be a number");
  lua_pop(L, 1);
  lua_getfield(L, 1, "fixed_patterns");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "transformer: config key 'fixed_patterns' must be a table {[head] = \"assoc\"|\"local\"}");
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
      int ok;
      lua_Integer h = lua_tointegerx(L, -2, &ok);
      const char *kind = lua_tostring(L, -1);
      if (!ok || h < 1 || h > c->n_heads || h > 64)
        return luaL_error(L, "transformer: fixed_patterns: head %s is not in 1..%d", lua_tostring(L, -2), c->n_heads);
      if (!kind || (strcmp(kind, "assoc") && strcmp(kind, "local")))
        return luaL_error(L, "transformer: fixed_patterns[%d] must be \"assoc\" or \"local\"", (int)h);
      c->fixed_pattern[h - 1] = !strcmp(kind, "assoc") ? 1 : 2;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (mt_tf_check(c)) return milua_coreerror(L);
  return 1;
}

static mt_config *checkconfig(lua_State *L, int idx) { return luaL_checkudata(L, idx, CONFIG_MT); }

/* cfg:params() -> list of {name = , shape = {...}} in the model's order */
static int c_params(lua_State *L) {
  mt_config *c = checkconfig(L, 1);
  int n = mt_tf_n_params(c);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    char name[64];
    int nd;
    int64_t shape[4];
    mt_tf_param_info(c, i, name, sizeof name, &nd, shape);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, nd, 0);
    for (int d = 0; d < nd; d++) { lua_pushinteger(L, shape[d]); lua_rawseti(L, -2, d + 1); }
    lua_setfield(L, -2, "shape");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* cfg:init_params() -> table name -> fresh tensor (drawn from the global generator) */
static int c_init_params(lua_State *L) {
  mt_config *c = checkconfig(L, 1);
  int n = mt_tf_n_params(c);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    char name[64];
    int nd;
    int64_t shape[4];
    mt_tf_param_info(c, i, name, sizeof name, &nd, shape);
    mt_tensor *t = mt_tf_init_param(c, i);
    if (t) t->requires_grad = 1;
    milua_pushtensor(L, t);
    lua_setfield(L, -2, name);
  }
  return 1;
}

/* cfg:hooks() -> list of hook names in firing order */
static int c_hooks(lua_State *L) {
  mt_config *c = checkconfig(L, 1);
  int n = mt_tf_n_hooks(c), k = 0;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    char buf[64];
    if (!mt_tf_hook_name(c, i, buf, sizeof buf)) continue;
    lua_pushstring(L, buf);
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

static int c_get(lua_State *L) {   /* cfg:get(key) for the resolved values */
  mt_config *c = checkconfig(L, 1);
  const char *k = luaL_checkstring(L, 2);
#define I(name) if (!strcmp(k, #name)) { lua_pushinteger(L, c->name); return 1; }
  I(n_layers) I(d_model) I(n_heads) I(d_head) I(d_mlp) I(d_vocab) I(d_vocab_out) I(n_ctx)
#undef I
  if (!strcmp(k, "act_fn")) { lua_pushstring(L, c->act_fn == MT_ACT_RELU ? "relu" : "gelu"); return 1; }
  if (!strcmp(k, "normalization")) { lua_pushstring(L, c->layer_norm ? "LN" : "none"); return 1; }
  if (!strcmp(k, "positional")) {
    lua_pushstring(L, c->positional == MT_POS_LEARNED ? "learned" : c->positional == MT_POS_SINUSOIDAL ? "sinusoidal" : "none");
    return 1;
  }
  if (!strcmp(k, "causal")) { lua_pushboolean(L, c->causal); return 1; }
  if (!strcmp(k, "tie_layers")) { lua_pushboolean(L, c->tie_layers); return 1; }
  if (!strcmp(k, "init_range")) { lua_pushnumber(L, c->init_range); return 1; }
  if (!strcmp(k, "fixed_patterns")) {
    lua_newtable(L);
    for (int h = 0; h < c->n_heads && h < 64; h++)
      if (c->fixed_pattern[h]) { lua_pushstring(L, c->fixed_pattern[h] == 1 ? "assoc" : "local"); lua_rawseti(L, -2, h + 1); }
    return 1;
  }
  return luaL_error(L, "transformer: no config key '%s'", k);
}

/* ---- forward ---- */
typedef struct {
  lua_State *L;
  int dispatch;   /* stack index of the Lua dispatch function */
  int tokens;     /* stack index of the user's tokens */
} hookud;

static int call_hook(void *ud, int id, const char *name, int layer, mt_tensor **act) {
  hookud *h = ud;
  lua_State *L = h->L;
  if (!lua_checkstack(L, 6)) { mt_seterr("hook %s: Lua stack overflow", name); return -1; }
  lua_pushvalue(L, h->dispatch);
  milua_pushtensor(L, mt_ref(*act));
  lua_pushstring(L, name);
  lua_pushinteger(L, layer);
  if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    mt_seterr("%s", msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
    return -1;
  }
  if (!lua_isnil(L, -1)) {
    mt_tensor *r = milua_totensor(L, -1);
    if (!r) {
      mt_seterr("hook %s: must return a tensor or nothing, returned a %s", name, luaL_typename(L, -1));
      lua_pop(L, 1);
      return -1;
    }
    mt_unref(*act);
    *act = mt_ref(r);
  }
  lua_pop(L, 1);
  return 0;
}

/* nn_core.forward(cfg, params, tokens, active, dispatch, stop_at_layer, return_resid)
   active: table name -> true for the hook points the dispatch function wants */
static int l_forward(lua_State *L) {
  mt_config *c = checkconfig(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  mt_tensor *tokens = milua_checktensor(L, 3);
  int n = mt_tf_n_params(c);
  mt_tensor *P[1024];
  if (n > 1024) return luaL_error(L, "transformer: too many parameters");
  for (int i = 0; i < n; i++) {
    char name[64];
    int nd;
    int64_t shape[4];
    mt_tf_param_info(c, i, name, sizeof name, &nd, shape);
    lua_getfield(L, 2, name);
    mt_tensor *t = milua_totensor(L, -1);
    lua_pop(L, 1);   /* the params table keeps it alive */
    if (!t) return luaL_error(L, "forward: parameter '%s' is missing from model.params", name);
    int ok = t->dtype == MT_F32 && t->ndim == nd;
    for (int d = 0; ok && d < nd; d++) if (t->shape[d] != shape[d]) ok = 0;
    if (!ok) {
      char a[64], b[64];
      return luaL_error(L, "forward: parameter '%s' has shape %s %s, expected %s float32", name,
                        mt_shape_str(t, a, sizeof a), mt_dtype_name(t->dtype), mt_dims_str(shape, nd, b, sizeof b));
    }
    P[i] = t;
  }
  if (tokens->dtype != MT_I32) return luaL_error(L, "forward: tokens must be int32 ids, got %s", mt_dtype_name(tokens->dtype));
  unsigned char active[4096];
  int nh = mt_tf_n_hooks(c), any = 0;
  if (nh > (int)sizeof active) return luaL_error(L, "transformer: too many hook points");
  memset(active, 0, (size_t)nh);
  if (lua_istable(L, 4)) {
    for (int i = 0; i < nh; i++) {
      char buf[64];
      if (!mt_tf_hook_name(c, i, buf, sizeof buf)) continue;
      lua_getfield(L, 4, buf);
      active[i] = lua_toboolean(L, -1);
      any |= active[i];
      lua_pop(L, 1);
    }
  }
  if (any) luaL_checktype(L, 5, LUA_TFUNCTION);
  int stop = (int)luaL_optinteger(L, 6, -1);
  if (stop != -1 && (stop < 0 || stop > c->n_layers))
    return luaL_error(L, "forward: stop_at_layer = %d is outside 0..%d", stop, c->n_layers);
  /* ids are 1-based in Lua */
  mt_tensor *one = mt_scalar(MT_I32, 1);
  mt_tensor *tok0 = one ? mt_binary(MT_SUB, tokens, one) : NULL;
  mt_unref(one);
  if (!tok0) return milua_coreerror(L);
  hookud hu = {L, 5, 3};
  mt_forward_opts o = {any ? active : NULL, call_hook, &hu, stop, lua_toboolean(L, 7)};
  mt_tensor *out = mt_tf_forward(c, P, tok0, &o);
  mt_unref(tok0);
  milua_pushtensor(L, out);
  return 1;
}

static const luaL_Reg cfg_methods[] = {{"params", c_params}, {"init_params", c_init_params}, {"hooks", c_hooks},
                                       {"get", c_get}, {NULL, NULL}};

void mb_register_model(lua_State *L) {
  if (luaL_newmetatable(L, CONFIG_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, cfg_methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_config);
  lua_setfield(L, -2, "config");
  lua_pushcfunction(L, l_forward);
  lua_setfield(L, -2, "forward");
}
