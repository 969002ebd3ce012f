/* milua.nn_core: losses, the fused kernels of the transformer (and, with bindings/model.c, the model). */
#include "milua.h"
#include "core/ops.h"

static int l_cross_entropy(lua_State *L) {
  mt_tensor *logits = milua_checktensor(L, 1), *targets = milua_checktensor(L, 2);
  mt_tensor *mask = lua_isnoneornil(L, 3) ? NULL : milua_checktensor(L, 3);
  milua_pushtensor(L, mt_cross_entropy(logits, targets, mask, 1));
  return 1;
}
static int l_mse(lua_State *L) {
  milua_pushtensor(L, mt_mse(milua_checktensor(L, 1), milua_checktensor(L, 2)));
  return 1;
}

/* the transformer's fused kernels, callable one by one (for tests and for researchers'
   own variants of attention) */
static int l_layer_norm(lua_State *L) {
  milua_pushtensor(L, mt_layer_norm(milua_checktensor(L, 1), milua_checktensor(L, 2), milua_checktensor(L, 3),
                                    luaL_optnumber(L, 4, 1e-5)));
  return 1;
}
static int l_ln_scale(lua_State *L) {
  milua_pushtensor(L, mt_ln_scale(milua_checktensor(L, 1), luaL_optnumber(L, 2, 1e-5)));
  return 1;
}
static int l_ln_normalize(lua_State *L) {
  milua_pushtensor(L, mt_ln_normalize(milua_checktensor(L, 1), milua_checktensor(L, 2)));
  return 1;
}
static int l_affine(lua_State *L) {
  milua_pushtensor(L, mt_affine(milua_checktensor(L, 1), milua_checktensor(L, 2), milua_checktensor(L, 3)));
  return 1;
}
static int l_ln_parts(lua_State *L) {   /* nn.ln_parts(x, w, b [, eps]) -> scale, xn, y */
  mt_tensor *sc, *xn, *y;
  if (mt_ln_parts(milua_checktensor(L, 1), milua_checktensor(L, 2), milua_checktensor(L, 3), luaL_optnumber(L, 4, 1e-5),
                  &sc, &xn, &y))
    return milua_coreerror(L);
  milua_pushtensor(L, sc);
  milua_pushtensor(L, xn);
  milua_pushtensor(L, y);
  return 3;
}
static int l_linear(lua_State *L) {
  milua_pushtensor(L, mt_linear(milua_checktensor(L, 1), milua_checktensor(L, 2), milua_checktensor(L, 3)));
  return 1;
}
static int l_attn_scores(lua_State *L) {
  milua_pushtensor(L, mt_attn_scores(milua_checktensor(L, 1), milua_checktensor(L, 2)));
  return 1;
}
static int l_attn_softmax(lua_State *L) {
  milua_pushtensor(L, mt_attn_softmax(milua_checktensor(L, 1), luaL_optnumber(L, 2, 1.0), lua_toboolean(L, 3)));
  return 1;
}
static int l_attn_apply(lua_State *L) {
  milua_pushtensor(L, mt_attn_apply(milua_checktensor(L, 1), milua_checktensor(L, 2)));
  return 1;
}

static const luaL_Reg fns[] = {{"cross_entropy", l_cross_entropy}, {"mse", l_mse}, {"layer_norm", l_layer_norm},
                               {"ln_scale", l_ln_scale}, {"ln_normalize", l_ln_normalize},
                               {"affine", l_affine}, {"ln_parts", l_ln_parts}, {"linear", l_linear}, {"attn_scores", l_attn_scores}, {"attn_softmax", l_attn_softmax},
                               {"attn_apply", l_attn_apply}, {NULL, NULL}};

void mb_register_model(lua_State *L);   /* bindings/model.c */

int luaopen_milua_nn_core(lua_State *L) {
  luaL_newlib(L, fns);
  mb_register_model(L);
  return 1;
}
