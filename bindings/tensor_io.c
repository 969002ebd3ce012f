/* T.save / T.load: the Lua face of nn/io/safetensors. Argument checking lives
   here; the format, validation and atomic writing live in the core. */
#include "milua.h"
#include "tensor_priv.h"
#include "io/safetensors.h"
#include <stdlib.h>
#include <string.h>

#define FILE_MT "milua.safetensors_file"

typedef struct { const char *name; mt_tensor *t; } named;

static int named_cmp(const void *a, const void *b) {
  return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* a string key at idx (during lua_next), with a clear error otherwise */
static const char *check_key(lua_State *L, int idx, const char *what) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TSTRING) {
    const char *shown = luaL_tolstring(L, idx, NULL);    /* pushes a copy: the key itself is untouched */
    luaL_error(L, "save: %s keys must be strings, got a %s (%s)", what, luaL_typename(L, idx), shown);
  }
  size_t len;
  const char *k = lua_tolstring(L, idx, &len);
  if (strlen(k) != len) luaL_error(L, "save: %s key '%s...' contains a NUL byte", what, k);
  return k;
}

/* T.save(path, {name = tensor, ...}, {key = "value", ...}?) */
static int io_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!lua_istable(L, 2))
    return luaL_error(L, "save: expected a table of tensors as argument 2, got %s", luaL_typename(L, 2));
  if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
    return luaL_error(L, "save: expected a table of metadata strings (or nil) as argument 3, got %s",
                      luaL_typename(L, 3));
  int has_meta = lua_istable(L, 3);
  lua_settop(L, 3);
  lua_newtable(L);                 /* 4: anchors the strings converted from numbers */

  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    const char *k = check_key(L, -2, "tensor table");
    if (!milua_totensor(L, -1))
      return luaL_error(L, "save: value for key '%s' is a %s, expected a tensor", k,
                        luaL_testudata(L, -1, MILUA_TENSOR_MT) ? "closed tensor" : luaL_typename(L, -1));
    if (n == 0x3FFFFFFF) return luaL_error(L, "save: too many tensors");
    n++;
    lua_pop(L, 1);
  }
  named *ts = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *ts, 0);      /* 5 */
  const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
  mt_tensor **tensors = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *tensors, 0);
  int i = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (i < n) ts[i++] = (named){lua_tostring(L, -2), milua_totensor(L, -1)};
    lua_pop(L, 1);
  }
  n = i;
  qsort(ts, (size_t)n, sizeof *ts, named_cmp);    /* sorted names: the same tensors give the same file */
  for (i = 0; i < n; i++) { names[i] = ts[i].name; tensors[i] = ts[i].t; }

  int nmeta = 0;
  if (has_meta) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = check_key(L, -2, "metadata");
      int t = lua_type(L, -1);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(L, "save: metadata value for '%s' is a %s, expected a string or a number", k,
                          luaL_typename(L, -1));
      if (nmeta == 0x3FFFFFFF) return luaL_error(L, "save: too many metadata entries");
      nmeta++;
      lua_pop(L, 1);
    }
  }
  const char **keys = lua_newuserdatauv(L, (size_t)(nmeta ? nmeta : 1) * sizeof *keys, 0);
  const char **vals = lua_newuserdatauv(L, (size_t)(nmeta ? nmeta : 1) * sizeof *vals, 0);
  i = 0;
  if (has_meta) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (i < nmeta) {
        const char *k = lua_tostring(L, -2);
        size_t len;
        const char *v = luaL_tolstring(L, -1, &len);    /* numbers as tostring() shows them */
        if (strlen(v) != len) return luaL_error(L, "save: metadata value for '%s' contains a NUL byte", k);
        lua_rawseti(L, 4, i + 1);                       /* keep the string alive */
        lua_rawgeti(L, 4, i + 1);
        keys[i] = k;
        vals[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
        i++;
      }
      lua_pop(L, 1);
    }
  }
  nmeta = i;
  /* sorted too, so the same call always writes the same bytes */
  for (int a = 1; a < nmeta; a++)
    for (int b = a; b > 0 && strcmp(keys[b - 1], keys[b]) > 0; b--) {
      const char *tk = keys[b], *tv = vals[b];
      keys[b] = keys[b - 1]; vals[b] = vals[b - 1];
      keys[b - 1] = tk; vals[b - 1] = tv;
    }
  /* the pointers are stable: keys live in argument 3, converted values in the anchor table */
  if (mt_st_save(path, n, names, tensors, nmeta, keys, vals)) return milua_coreerror(L);
  return 0;
}

static int file_gc(lua_State *L) {
  mt_st_file **box = luaL_checkudata(L, 1, FILE_MT);
  mt_st_free(*box);
  *box = NULL;
  return 0;
}

/* local tensors, meta = T.load(path) */
static int io_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  /* the loaded file sits in a collectable box, so an error while building the tables leaks nothing */
  mt_st_file **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, FILE_MT);
  *box = mt_st_load(path);
  if (!*box) return milua_coreerror(L);
  mt_st_file *f = *box;
  lua_createtable(L, 0, f->n);
  for (int i = 0; i < f->n; i++) {
    milua_pushtensor(L, mt_ref(f->tensors[i]));
    lua_setfield(L, -2, f->names[i]);
  }
  lua_createtable(L, 0, f->nmeta);
  for (int i = 0; i < f->nmeta; i++) {
    lua_pushstring(L, f->meta_values[i]);
    lua_setfield(L, -2, f->meta_keys[i]);
  }
  mt_st_free(f);
  *box = NULL;
  return 2;
}

void mb_register_io(lua_State *L) {
  if (luaL_newmetatable(L, FILE_MT)) {
    lua_pushcfunction(L, file_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, io_save);
  lua_setfield(L, -2, "save");
  lua_pushcfunction(L, io_load);
  lua_setfield(L, -2, "load");
}
