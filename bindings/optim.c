/* milua.optim_core: fused optimizer updates (the bookkeeping lives in stdlib/milua/optim.lua). */
#include "milua.h"
#include "core/optim.h"

static mt_tensor *same_f32(lua_State *L, int idx, mt_tensor *like, const char *what) {
  mt_tensor *t = milua_checktensor(L, idx);
  if (t->dtype != MT_F32 || !mt_same_shape(t, like) || !mt_is_contiguous(t)) {
    char a[64], b[64];
    luaL_error(L, "optim: %s must be a contiguous float32 tensor %s, got %s", what, mt_shape_str(like, a, sizeof a),
               mt_shape_str(t, b, sizeof b));
  }
  return t;
}

/* adamw_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step) */
static int l_adamw(lua_State *L) {
  mt_tensor *p = milua_checktensor(L, 1);
  if (p->dtype != MT_F32 || !mt_is_contiguous(p)) return luaL_error(L, "optim: parameters must be contiguous float32 tensors");
  mt_tensor *g = same_f32(L, 2, p, "a gradient"), *m = same_f32(L, 3, p, "state m"), *v = same_f32(L, 4, p, "state v");
  mt_optim_adamw(p, g, m, v, luaL_checknumber(L, 5), luaL_checknumber(L, 6), luaL_checknumber(L, 7),
                 luaL_checknumber(L, 8), luaL_checknumber(L, 9), luaL_checkinteger(L, 10));
  return 0;
}

/* sgd_step(param, grad, buf|nil, lr, momentum, weight_decay, nesterov, first) */
static int l_sgd(lua_State *L) {
  mt_tensor *p = milua_checktensor(L, 1);
  if (p->dtype != MT_F32 || !mt_is_contiguous(p)) return luaL_error(L, "optim: parameters must be contiguous float32 tensors");
  mt_tensor *g = same_f32(L, 2, p, "a gradient");
  mt_tensor *b = lua_isnoneornil(L, 3) ? NULL : same_f32(L, 3, p, "the momentum buffer");
  mt_optim_sgd(p, g, b, luaL_checknumber(L, 4), luaL_checknumber(L, 5), luaL_checknumber(L, 6),
               lua_toboolean(L, 7), lua_toboolean(L, 8));
  return 0;
}

/* squared L2 norm of a tensor, in double */
static int l_sqnorm(lua_State *L) {
  lua_pushnumber(L, mt_optim_sqnorm(milua_checktensor(L, 1)));
  return 1;
}

static const luaL_Reg fns[] = {{"adamw_step", l_adamw}, {"sgd_step", l_sgd}, {"sqnorm", l_sqnorm}, {NULL, NULL}};

int luaopen_milua_optim_core(lua_State *L) {
  luaL_newlib(L, fns);
  return 1;
}
