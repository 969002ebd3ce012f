/* milua.json_core: the JSON codec of nn/io/json.c for Lua values; stdlib/milua/json.lua
   documents the module and adds the file helpers.

   encode turns a Lua value into an mt_json tree and lets the C writer print it;
   decode parses with the C parser and turns the tree into Lua values. What is
   Lua's alone lives here: which tables are arrays, key order (Lua tables have
   none, so keys are sorted), json.null and json.object, tensors (anything with
   a totable method), cycles, and the path of a value in messages ($.a[2]).

   Memory: the tree being built or read hangs from a userdata whose __gc frees
   it, so a Lua error in the middle (a bad value, a failing totable, out of
   memory) leaks nothing. */
#include "milua.h"
#include "io/json.h"
#include <stdlib.h>
#include <string.h>

#define BOX_MT "milua.json.tree"
#define NULL_UV lua_upvalueindex(1)        /* json.null */
#define OBJECT_UV lua_upvalueindex(2)      /* the metatable of json.object() tables */

typedef struct {
  mt_json *root;
  mt_jbuf text;
} box;

static int box_gc(lua_State *L) {
  box *b = luaL_checkudata(L, 1, BOX_MT);
  mt_json_free(b->root);
  b->root = NULL;
  mt_jbuf_free(&b->text);
  return 0;
}

static box *push_box(lua_State *L) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->root = NULL;
  b->text = (mt_jbuf)MT_JBUF_INIT;
  luaL_setmetatable(L, BOX_MT);
  return b;
}

/* ---------------------------------------------------------------- encode */

/* one step of the path from the root to the value being encoded */
typedef struct {
  const char *key;          /* NULL: an array index */
  size_t keylen;
  lua_Integer index;
} step;

typedef struct {
  lua_State *L;
  int depth;                                 /* steps to the current value */
  step path[MT_JSON_MAX_DEPTH + 1];
  const void *tables[MT_JSON_MAX_DEPTH + 1]; /* the tables on the path, for cycles */
} encoder;

/* s as Lua's %q writes it, which is how a key that is not a name shows in a path */
static void add_quoted(luaL_Buffer *B, const char *s, size_t n) {
  luaL_addchar(B, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\' || c == '\n') {
      luaL_addchar(B, '\\');
      luaL_addchar(B, (char)c);
    } else if (c < 0x20 || c == 0x7F) {
      char num[8];
      int next_is_digit = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
      snprintf(num, sizeof num, next_is_digit ? "\\%03d" : "\\%d", c);
      luaL_addstring(B, num);
    } else {
      luaL_addchar(B, (char)c);
    }
  }
  luaL_addchar(B, '"');
}

static int is_name(const char *s, size_t n) {
  if (!n || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
  for (size_t i = 1; i < n; i++) {
    char c = s[i];
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
  }
  return 1;
}

/* raises "json.encode: <what> at $.a[2]<after>", the path being the first `depth` steps */
static int encode_error(encoder *e, int depth, const char *what, const char *after) {
  lua_State *L = e->L;
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  luaL_addstring(&B, "json.encode: ");
  luaL_addstring(&B, what);
  luaL_addstring(&B, " at $");
  for (int i = 0; i < depth; i++) {
    const step *s = &e->path[i];
    if (!s->key) {
      lua_pushfstring(L, "[%I]", (LUAI_UACINT)s->index);
      luaL_addvalue(&B);
    } else if (is_name(s->key, s->keylen)) {
      luaL_addchar(&B, '.');
      luaL_addlstring(&B, s->key, s->keylen);
    } else {
      luaL_addchar(&B, '[');
      add_quoted(&B, s->key, s->keylen);
      luaL_addchar(&B, ']');
    }
  }
  luaL_addstring(&B, after);
  luaL_pushresult(&B);
  return lua_error(L);
}

static void out_of_memory(lua_State *L) { luaL_error(L, "json.encode: out of memory"); }

static int get_totable(lua_State *L) {
  lua_getfield(L, 1, "totable");
  return 1;
}

/* a tensor or anything else with a metatable and a totable method: pushes
   v:totable() and returns 1; returns 0 (nothing pushed) otherwise */
static int push_totable(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t != LUA_TUSERDATA && t != LUA_TLIGHTUSERDATA && t != LUA_TTABLE) return 0;
  if (!lua_getmetatable(L, idx)) return 0;
  int plain_object = lua_rawequal(L, -1, OBJECT_UV);
  lua_pop(L, 1);
  if (plain_object) return 0;
  /* an __index that raises is not a totable method */
  lua_pushcfunction(L, get_totable);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, idx);
  lua_call(L, 1, 1);
  return 1;
}

/* n when the table at idx has exactly the keys 1..n, else -1 */
static lua_Integer array_length(lua_State *L, int idx) {
  if (lua_getmetatable(L, idx)) {
    int object = lua_rawequal(L, -1, OBJECT_UV);
    lua_pop(L, 1);
    if (object) return -1;
  }
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return -1;
    }
    lua_Integer k = lua_tointeger(L, -1);
    count++;
    if (k > max) max = k;
  }
  return count == max ? count : -1;
}

typedef struct {
  const char *s;
  size_t n;
} keytext;

/* byte order, which is how Lua compares strings in the C locale */
static int keytext_cmp(const void *a, const void *b) {
  const keytext *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
  if (c) return c;
  return (x->n > y->n) - (x->n < y->n);
}

static void encode_value(encoder *e, int idx, mt_json *node);

static void encode_array(encoder *e, int idx, lua_Integer n, mt_json *node) {
  lua_State *L = e->L;
  if ((lua_Unsigned)n > (size_t)-1 / sizeof(mt_json) || mt_json_set_array(node, (size_t)n)) out_of_memory(L);
  for (lua_Integer i = 1; i <= n; i++) {
    e->path[e->depth] = (step){NULL, 0, i};
    e->depth++;
    lua_rawgeti(L, idx, i);
    encode_value(e, -1, &node->items[i - 1]);
    lua_pop(L, 1);
    e->depth--;
  }
}

static void encode_object(encoder *e, int idx, mt_json *node) {
  lua_State *L = e->L;
  /* names: key text -> the key itself, so that 1 and "1" are caught as one name */
  lua_newtable(L);
  int names = lua_gettop(L);
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {                             /* ... key value */
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) lua_pushvalue(L, -1);
    else if (lua_isinteger(L, -1)) lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
    else {
      lua_pushfstring(L, "key of type %s in object", luaL_typename(L, -1));
      encode_error(e, e->depth, lua_tostring(L, -1), "");
    }                                                    /* ... key text */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, names) != LUA_TNIL) {
      size_t kl;
      const char *ks = lua_tolstring(L, -2, &kl);
      luaL_Buffer B;
      luaL_buffinit(L, &B);
      luaL_addstring(&B, "key ");
      add_quoted(&B, ks, kl);
      luaL_addstring(&B, " appears twice (as a string and a number)");
      luaL_pushresult(&B);
      encode_error(e, e->depth, lua_tostring(L, -1), "");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, names);                                /* names[text] = key; ... key */
    count++;
  }
  if ((size_t)count > (size_t)-1 / sizeof(keytext)) out_of_memory(L);
  keytext *keys = lua_newuserdatauv(L, (count ? count : 1) * sizeof *keys, 0);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, names)) {          /* the strings stay alive as keys of `names` */
    lua_pop(L, 1);
    keys[k].s = lua_tolstring(L, -1, &keys[k].n);
    k++;
  }
  qsort(keys, count, sizeof *keys, keytext_cmp);
  if (mt_json_set_object(node, count)) out_of_memory(L);
  for (size_t i = 0; i < count; i++) {
    e->path[e->depth] = (step){keys[i].s, keys[i].n, 0};
    e->depth++;
    if (mt_utf8_check(keys[i].s, keys[i].n) != keys[i].n) encode_error(e, e->depth, "string", " is not valid UTF-8");
    if (mt_json_set_key(node, i, keys[i].s, keys[i].n)) out_of_memory(L);
    lua_pushlstring(L, keys[i].s, keys[i].n);
    lua_rawget(L, names);               /* the key as the table holds it */
    lua_rawget(L, idx);
    encode_value(e, -1, &node->items[i]);
    lua_pop(L, 1);
    e->depth--;
  }
  lua_pop(L, 2);                        /* keys, names */
}

static void encode_value(encoder *e, int idx, mt_json *node) {
  lua_State *L = e->L;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 8, "json.encode: nesting too deep");
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return;                               /* a new node is null */
    case LUA_TBOOLEAN: mt_json_set_bool(node, lua_toboolean(L, idx)); return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) mt_json_set_int(node, (int64_t)lua_tointeger(L, idx));
      else mt_json_set_number(node, (double)lua_tonumber(L, idx));
      return;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (mt_utf8_check(s, n) != n) encode_error(e, e->depth, "string", " is not valid UTF-8");
      if (mt_json_set_string(node, s, n)) out_of_memory(L);
      return;
    }
  }
  if (lua_rawequal(L, idx, NULL_UV)) return;
  if (push_totable(L, idx)) {
    encode_value(e, -1, node);
    lua_pop(L, 1);
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE) {
    lua_pushfstring(L, "cannot encode a %s", luaL_typename(L, idx));
    encode_error(e, e->depth, lua_tostring(L, -1), "");
  }
  const void *self = lua_topointer(L, idx);
  for (int i = 0; i < e->depth; i++)
    if (e->tables[i] == self) encode_error(e, e->depth, "cycle", "");
  /* deeper than json.decode reads back */
  if (e->depth >= MT_JSON_MAX_DEPTH) luaL_error(L, "json.encode: tables nested deeper than %d", MT_JSON_MAX_DEPTH);
  e->tables[e->depth] = self;
  lua_Integer n = array_length(L, idx);
  if (n >= 0) encode_array(e, idx, n, node);
  else encode_object(e, idx, node);
}

/* json_core.encode(v [, {indent = true | n | "str"}]) -> text */
static int l_encode(lua_State *L) {
  lua_settop(L, 2);
  const char *indent = NULL;
  if (lua_toboolean(L, 2)) {
    lua_getfield(L, 2, "indent");
    if (lua_isboolean(L, -1) && lua_toboolean(L, -1)) {
      lua_pushliteral(L, "  ");
    } else if (lua_isinteger(L, -1)) {
      lua_Integer n = lua_tointeger(L, -1);
      if (n > 4096) return luaL_error(L, "json.encode: indent of %I spaces is too wide", (LUAI_UACINT)n);
      luaL_Buffer B;
      luaL_buffinit(L, &B);
      for (lua_Integer i = 0; i < n; i++) luaL_addchar(&B, ' ');
      luaL_pushresult(&B);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -1);
    } else if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) {
      return luaL_error(L, "json.encode: indent must be true, a number of spaces or a string");
    } else {
      lua_pushnil(L);
    }
    indent = lua_tostring(L, -1);      /* stays on the stack while encoding */
  }
  box *b = push_box(L);
  b->root = mt_json_new();
  if (!b->root) out_of_memory(L);
  encoder *e = lua_newuserdatauv(L, sizeof *e, 0);
  e->L = L;
  e->depth = 0;
  encode_value(e, 1, b->root);
  if (mt_json_write_indented(&b->text, b->root, indent)) out_of_memory(L);
  lua_pushlstring(L, b->text.data, b->text.len);
  mt_json_free(b->root);
  b->root = NULL;
  mt_jbuf_free(&b->text);
  return 1;
}

/* ---------------------------------------------------------------- decode */

static void push_tree(lua_State *L, const mt_json *v) {
  luaL_checkstack(L, 4, "json.decode: nesting too deep");
  switch (v->type) {
    case MT_JSON_NULL: lua_pushvalue(L, NULL_UV); break;
    case MT_JSON_BOOL: lua_pushboolean(L, v->boolean); break;
    case MT_JSON_NUMBER:
      if (v->is_int) lua_pushinteger(L, (lua_Integer)v->integer);
      else lua_pushnumber(L, (lua_Number)v->number);
      break;
    case MT_JSON_STRING: lua_pushlstring(L, v->str, v->len); break;
    case MT_JSON_ARRAY:
      lua_createtable(L, v->len < INT32_MAX ? (int)v->len : 0, 0);
      for (size_t i = 0; i < v->len; i++) {
        push_tree(L, &v->items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      break;
    case MT_JSON_OBJECT:
      lua_createtable(L, 0, v->len < INT32_MAX ? (int)v->len : 0);
      for (size_t i = 0; i < v->len; i++) {     /* a repeated key: the last one wins */
        lua_pushlstring(L, v->keys[i], v->keylens[i]);
        push_tree(L, &v->items[i]);
        lua_rawset(L, -3);
      }
      /* an empty object stays an object when written back */
      if (!v->len) {
        lua_pushvalue(L, OBJECT_UV);
        lua_setmetatable(L, -2);
      }
      break;
  }
}

/* json_core.decode(text) -> value */
static int l_decode(lua_State *L) {
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "json.decode: expected a string, got %s", lua_isnone(L, 1) ? "nil" : luaL_typename(L, 1));
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  box *b = push_box(L);
  char err[256];
  b->root = mt_json_parse(s, n, err, sizeof err);
  if (!b->root) {
    lua_pushfstring(L, "json.decode: %s", err);
    return lua_error(L);
  }
  push_tree(L, b->root);
  mt_json_free(b->root);
  b->root = NULL;
  return 1;
}

/* json_core.object([t]) -> t, marked to encode as an object even when empty */
static int l_object(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
  }
  lua_pushvalue(L, OBJECT_UV);
  lua_setmetatable(L, 1);
  return 1;
}

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

int luaopen_milua_json_core(lua_State *L) {
  luaL_newmetatable(L, BOX_MT);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {"object", l_object}, {NULL, NULL}};
  lua_newtable(L);                                /* the module */
  lua_newtable(L);                                /* json.null */
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "json.null");
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "null");
  lua_createtable(L, 0, 1);                       /* the metatable of json.object() */
  lua_pushliteral(L, "json.object");
  lua_setfield(L, -2, "__name");
  luaL_setfuncs(L, fns, 2);
  return 1;
}
