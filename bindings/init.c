/* Registers the native modules and the stdlib search path. */
#include "milua.h"
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

static const luaL_Reg natives[] = {
  {"milua.tensor_core", luaopen_milua_tensor},
  {"milua.nn_core", luaopen_milua_nn_core},
  {"milua.optim_core", luaopen_milua_optim_core},
  {"milua.plot_core", luaopen_milua_plot_core},
  {"milua.sys", luaopen_milua_sys},
  {"milua.json_core", luaopen_milua_json_core},
  {NULL, NULL}};

/* prepend "dir/?.lua;dir/?/init.lua;" to package.path */
static void add_dir(lua_State *L, const char *dir, size_t len) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, dir, len);
  luaL_addstring(&b, "/?.lua;");
  luaL_addlstring(&b, dir, len);
  luaL_addstring(&b, "/?/init.lua;");
  luaL_addstring(&b, old ? old : "");
  luaL_pushresult(&b);
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

void milua_openlibs(lua_State *L, const char *stdlib_dir) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const luaL_Reg *r = natives; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pop(L, 1);
  if (stdlib_dir) add_dir(L, stdlib_dir, strlen(stdlib_dir));
  /* MILUA_PATH entries come first so a user's module can shadow a stdlib one */
  const char *mp = getenv("MILUA_PATH");
  if (mp && *mp) {
    const char *s = mp + strlen(mp);
    while (s > mp) {   /* walk backwards so the first entry ends up first */
      const char *e = s;
      while (s > mp && s[-1] != ';') s--;
      if (e > s) add_dir(L, s, (size_t)(e - s));
      if (s > mp) s--;
    }
  }
}
