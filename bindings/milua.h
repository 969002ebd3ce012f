/* The seam between the Lua world and the native core. vm/ calls milua_openlibs;
   each bindings file exposes one luaopen_milua_* module. */
#ifndef MILUA_H
#define MILUA_H
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include "core/tensor.h"

#define MILUA_VERSION "0.1.0"
#define MILUA_TENSOR_MT "milua.Tensor"

/* registers the native modules in package.preload and extends package.path
   with the stdlib directory and MILUA_PATH (see vm/main.c for how the stdlib
   directory is found). */
void milua_openlibs(lua_State *L, const char *stdlib_dir);

/* tensor userdata */
mt_tensor *milua_checktensor(lua_State *L, int idx);      /* raises a clear error */
mt_tensor *milua_totensor(lua_State *L, int idx);         /* NULL if not a tensor */
/* push a tensor, taking over the reference the caller holds; raises mt_error() when t is NULL */
void milua_pushtensor(lua_State *L, mt_tensor *t);
/* accepts a tensor or a Lua number (as a 0-d tensor); returns a new reference */
mt_tensor *milua_checktensorish(lua_State *L, int idx, mt_dtype hint);
/* 1-based dim (negative counts from the end) -> 0-based, with a clear error */
int milua_checkdim(lua_State *L, int idx, const char *fn, int ndim);
/* raise the core's message (mt_error(), led by the failing function) as a Lua error */
int milua_coreerror(lua_State *L);
/* let the collector keep pace with native allocation */
void milua_gcpace(lua_State *L);
/* the machine's physical memory in bytes, 0 if unknown: sizes past it are refused up front */
uint64_t milua_physical_bytes(void);

int luaopen_milua_tensor(lua_State *L);
int luaopen_milua_nn_core(lua_State *L);     /* transformer, losses */
int luaopen_milua_optim_core(lua_State *L);
int luaopen_milua_plot_core(lua_State *L);
int luaopen_milua_sys(lua_State *L);         /* clock, isatty, terminal width */
int luaopen_milua_json_core(lua_State *L);   /* encode, decode, null, object */

#endif
