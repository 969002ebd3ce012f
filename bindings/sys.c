/* milua.sys: the few operating-system facts the stdlib needs (clocks, terminals). */
#include "milua.h"
#include "core/parallel.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int s_clock(lua_State *L) {   /* monotonic wall clock, seconds */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
  return 1;
}
static int s_cpu_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec * 1e-9);
  return 1;
}
static int s_isatty(lua_State *L) { lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1))); return 1; }
static int s_term_width(lua_State *L) {
  struct winsize w;
  if (ioctl(1, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) lua_pushinteger(L, w.ws_col);
  else lua_pushinteger(L, 80);
  return 1;
}
static int s_mkdir(lua_State *L) {   /* mkdir -p */
  const char *p = luaL_checkstring(L, 1);
  char buf[4096];
  size_t n = strlen(p);
  if (n >= sizeof buf) return luaL_error(L, "mkdir: path too long");
  memcpy(buf, p, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] == '/' || buf[i] == 0) {
      char c = buf[i];
      buf[i] = 0;
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        lua_pushnil(L);
        lua_pushfstring(L, "mkdir: cannot create '%s': %s", buf, strerror(errno));
        return 2;
      }
      buf[i] = c;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}
static int s_is_dir(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISDIR(st.st_mode));
  return 1;
}
/* the global generator's state as an int32 tensor [8], for exact resumes */
static int s_rng_state(lua_State *L) {
  uint64_t st[4];
  mt_rng_get_state(st);
  int64_t n = 8;
  mt_tensor *t = mt_empty(MT_I32, 1, &n);
  if (t) memcpy(mt_i32(t), st, sizeof st);
  milua_pushtensor(L, t);
  return 1;
}
static int s_set_rng_state(lua_State *L) {
  mt_tensor *t = milua_checktensor(L, 1);
  if (t->dtype != MT_I32 || mt_numel(t) != 8 || !mt_is_contiguous(t))
    return luaL_error(L, "set_rng_state: expected the int32 tensor [8] from rng_state()");
  uint64_t st[4];
  memcpy(st, mt_i32(t), sizeof st);
  mt_rng_set_state(st);
  return 0;
}
static int s_getpid(lua_State *L) { lua_pushinteger(L, getpid()); return 1; }

/* threads of milua's own parallel loops: the results do not depend on it, only the speed */
static int s_num_threads(lua_State *L) {
  lua_pushinteger(L, mt_threads());
  return 1;
}
static int s_set_num_threads(lua_State *L) {
  /* own message: luaL_argcheck would name the function by its internal module path */
  if (!lua_isinteger(L, 1) || lua_tointeger(L, 1) < 1 || lua_tointeger(L, 1) > 1024)
    return luaL_error(L, "T.set_num_threads: the thread count must be an integer from 1 to 1024, got %s",
                      luaL_tolstring(L, 1, NULL));
  lua_Integer n = lua_tointeger(L, 1);
  mt_set_threads((int)n);
  return 0;
}

/* the GEMM engine: "auto" (the shape table of core/parallel.c), "openblas" or "onednn" */
static int s_gemm_engine(lua_State *L) {
  lua_pushstring(L, mt_gemm_engine_name(mt_gemm_get_engine()));
  return 1;
}
static int s_set_gemm_engine(lua_State *L) {
  const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
  int code = name ? mt_gemm_engine_code(name) : -1;
  if (code < 0)
    return luaL_error(L, "T.set_gemm_engine: the engine must be \"auto\", \"openblas\" or \"onednn\", got %s",
                      luaL_tolstring(L, 1, NULL));
  mt_gemm_set_engine(code);
  return 0;
}

static const luaL_Reg fns[] = {{"gemm_engine", s_gemm_engine}, {"set_gemm_engine", s_set_gemm_engine},
                               {"clock", s_clock}, {"cpu_clock", s_cpu_clock}, {"isatty", s_isatty},
                               {"term_width", s_term_width}, {"mkdir", s_mkdir}, {"is_dir", s_is_dir},
                               {"getpid", s_getpid}, {"rng_state", s_rng_state}, {"set_rng_state", s_set_rng_state},
                               {"num_threads", s_num_threads}, {"set_num_threads", s_set_num_threads}, {NULL, NULL}};

int luaopen_milua_sys(lua_State *L) {
  luaL_newlib(L, fns);
  return 1;
}
