/* milua.nn_core: transformer configs (keys from nn/model/config.c) and the forward pass with Lua hooks. */
#include "milua.h"
#include "core/ops.h"
#include "model/transformer.h"
#include <stdio.h>
#include <string.h>

#define CONFIG_MT "milua.TransformerConfig"

/* the closest of names[0..n) to name, for "did you mean" (config.c's one algorithm) */
static const char *closest_key(const char *name) {
  const char *names[64];
  int n = 0, best;
  for (int i = 0; i < mt_config_nkeys && n < 64; i++) names[n++] = mt_config_keys[i].name;
  int max_edits = (int)strlen(name) / 3 > 2 ? (int)strlen(name) / 3 : 2;
  return mt_closest(name, names, n, 1, max_edits, &best) ? names[best] : NULL;
}

/* one key's Lua value (at the top of the stack) into the config */
static int set_key(lua_State *L, mt_config *c, const mt_config_key *k) {
  int ok = 1;
  switch (k->kind) {
    case MT_KEY_INT: {
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      return ok ? mt_config_set_int(c, k, v) : -2;
    }
    case MT_KEY_BOOL:
      if (!lua_isboolean(L, -1)) return -2;
      return mt_config_set_int(c, k, lua_toboolean(L, -1));
    case MT_KEY_NUMBER:
      if (!lua_isnumber(L, -1)) return -2;
      return mt_config_set_number(c, k, lua_tonumber(L, -1));
    case MT_KEY_CHOICE:
      if (lua_type(L, -1) != LUA_TSTRING) return -2;
      return mt_config_set_choice(c, k, lua_tostring(L, -1));
    case MT_KEY_HEADS: {
      if (!lua_istable(L, -1)) return -2;
      int t = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, t)) {
        lua_Integer h = lua_tointegerx(L, -2, &ok);
        if (!ok) {
          mt_seterr("transformer: fixed_patterns: head %s is not a head number", luaL_tolstring(L, -2, NULL));
          lua_pop(L, 3);
          return -1;
        }
        if (mt_config_set_head(c, h, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL)) { lua_pop(L, 2); return -1; }
        lua_pop(L, 1);
      }
      return 0;
    }
  }
  return -2;
}

static int config_gc(lua_State *L) {
  mt_config_free(luaL_checkudata(L, 1, CONFIG_MT));
  return 0;
}

/* nn_core.config(tbl) -> config userdata; every key and value checked against config.c's table */
static int l_config(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "transformer: config keys must be strings");
    const char *k = lua_tostring(L, -1);
    if (mt_config_key_find(k)) continue;
    const char *best = closest_key(k);
    if (best) return luaL_error(L, "transformer: unknown config key '%s' (did you mean '%s'?)", k, best);
    return luaL_error(L, "transformer: unknown config key '%s'", k);
  }
  mt_config *c = lua_newuserdatauv(L, sizeof *c, 0);
  mt_config_defaults(c);
  luaL_setmetatable(L, CONFIG_MT);
  for (int i = 0; i < mt_config_nkeys; i++) {
    const mt_config_key *k = &mt_config_keys[i];
    lua_getfield(L, 1, k->name);
    int r = lua_isnil(L, -1) ? 0 : set_key(L, c, k);
    if (r == -2)
      return luaL_error(L, "transformer: config key '%s' must be %s, got %s", k->name, mt_config_kind_name(k->kind),
                        luaL_typename(L, -1));
    if (r) return milua_coreerror(L);
    lua_pop(L, 1);
  }
  if (mt_config_resolve(c)) return milua_coreerror(L);
  /* a model past the machine's memory is refused here, before minutes of allocation */
  double numbers = mt_tf_param_numel(c), ram = (double)milua_physical_bytes();
  if (ram > 0 && numbers * sizeof(float) > ram) {
    char msg[160];   /* lua_pushfstring has no %.3g */
    snprintf(msg, sizeof msg, "transformer: the parameters alone take %.3g GB (%.4g numbers), more than this "
             "machine's %.3g GB of memory", numbers * sizeof(float) / 1e9, numbers, ram / 1e9);
    return luaL_error(L, "%s", msg);
  }
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

/* cfg:get(key): the resolved value; nil for a key that does not apply to this config (d_out
   without a readout, d_vocab_out with one); for fixed_patterns an empty table when every
   head learns */
static int c_get(lua_State *L) {
  mt_config *c = checkconfig(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const mt_config_key *k = mt_config_key_find(name);
  if (!k || !k->read_back) return luaL_error(L, "transformer: no config key '%s'", name);
  char buf[32];
  if (!mt_config_applies(c, k)) { lua_pushnil(L); return 1; }
  switch (k->kind) {
    case MT_KEY_INT: lua_pushinteger(L, mt_config_get_int(c, k)); break;
    case MT_KEY_BOOL: lua_pushboolean(L, mt_config_get_int(c, k)); break;
    case MT_KEY_NUMBER: lua_pushnumber(L, mt_config_get_number(c, k)); break;
    case MT_KEY_CHOICE: lua_pushstring(L, mt_config_get_choice(c, k, buf, sizeof buf)); break;
    case MT_KEY_HEADS:
      lua_newtable(L);
      for (int h = 0; h < c->n_fixed; h++)
        if (mt_config_head_pattern(c, h)) { lua_pushstring(L, mt_config_head_pattern(c, h)); lua_rawseti(L, -2, h + 1); }
      break;
  }
  return 1;
}

/* nn_core.config_keys() -> the keys a model reads back, in order */
static int l_config_keys(lua_State *L) {
  lua_newtable(L);
  for (int i = 0, n = 0; i < mt_config_nkeys; i++)
    if (mt_config_keys[i].read_back) { lua_pushstring(L, mt_config_keys[i].name); lua_rawseti(L, -2, ++n); }
  return 1;
}

/* nn_core.closest(name, names [, k = 3]) -> the k names closest to name, best first */
static int l_closest(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int k = (int)luaL_optinteger(L, 3, 3);
  if (k < 1) k = 1;
  if (k > 64) k = 64;
  lua_Integer n = luaL_len(L, 2);
  const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(n ? n : 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    names[i - 1] = lua_tostring(L, -1);   /* the table keeps the string alive */
    lua_pop(L, 1);
    if (!names[i - 1]) return luaL_error(L, "closest: names[%d] is not a string", (int)i);
  }
  int best[64], found = mt_closest(name, names, (int)n, k, -1, best);
  lua_createtable(L, found, 0);
  for (int i = 0; i < found; i++) { lua_pushstring(L, names[best[i]]); lua_rawseti(L, -2, i + 1); }
  return 1;
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
    lua_pushcfunction(L, config_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_config);
  lua_setfield(L, -2, "config");
  lua_pushcfunction(L, l_forward);
  lua_setfield(L, -2, "forward");
  lua_pushcfunction(L, l_config_keys);
  lua_setfield(L, -2, "config_keys");
  lua_pushcfunction(L, l_closest);
  lua_setfield(L, -2, "closest");
}
