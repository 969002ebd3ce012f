/* T.eigh, T.svd, T.lstsq, T.solve: LAPACK through nn/core/linalg.c. Results are
   float32 and carry no autograd history; indices and dims stay 1-based (the
   eigenvector for values[j] is column j of the vectors). */
#include "milua.h"
#include "tensor_priv.h"
#include "core/linalg.h"

/* T.eigh(a) -> values [n] ascending, vectors [n,n] (column j goes with values[j]) */
static int f_eigh(lua_State *L) {
  mt_tensor *a = milua_checktensor(L, 1), *w, *v;
  if (mt_eigh(a, &w, &v)) return milua_coreerror(L);
  milua_pushtensor(L, w);
  milua_pushtensor(L, v);
  return 2;
}

/* T.svd(a) -> u [m,k], s [k] descending, vh [k,n], k = min(m,n): a == u diag(s) vh */
static int f_svd(lua_State *L) {
  mt_tensor *a = milua_checktensor(L, 1), *u, *s, *vt;
  if (mt_svd(a, &u, &s, &vt)) return milua_coreerror(L);
  milua_pushtensor(L, u);
  milua_pushtensor(L, s);
  milua_pushtensor(L, vt);
  return 3;
}

/* T.lstsq(a, b [, rcond]) -> x, rank: the minimum-norm least-squares solution */
static int f_lstsq(lua_State *L) {
  mt_tensor *a = milua_checktensor(L, 1), *b = milua_checktensor(L, 2);
  double rcond = luaL_optnumber(L, 3, -1);
  int rank = 0;
  mt_tensor *x = mt_lstsq(a, b, rcond, &rank);
  if (!x) return milua_coreerror(L);
  milua_pushtensor(L, x);
  lua_pushinteger(L, rank);
  return 2;
}

/* T.solve(a, b) -> x with a x = b (a square) */
static int f_solve(lua_State *L) {
  mt_tensor *a = milua_checktensor(L, 1), *b = milua_checktensor(L, 2);
  mt_tensor *x = mt_solve(a, b);
  if (!x) return milua_coreerror(L);
  milua_pushtensor(L, x);
  return 1;
}

static const luaL_Reg linalg_funcs[] = {
  {"eigh", f_eigh}, {"svd", f_svd}, {"lstsq", f_lstsq}, {"solve", f_solve}, {NULL, NULL}};

void mb_register_linalg(lua_State *L) { luaL_setfuncs(L, linalg_funcs, 0); }
