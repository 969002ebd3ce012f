/* milua.plot_core: the Lua face of nn/plot/plot.c. It only converts: tensors
   (float32 or int32, any strides) and Lua tables become C arrays, option
   tables become a plot_opts, and core errors become Lua errors named after
   the Lua function. The friendly argument shapes live in stdlib/milua/plot.lua.
   Buffers are Lua userdata kept in an anchor table, so a raised error frees
   them with the rest of the call. */
#include "milua.h"
#include "plot/plot.h"
#include <limits.h>
#include <string.h>

typedef struct {
  lua_State *L;
  const char *fn;                /* Lua name for messages: "plot.heatmap" */
  int anchor;                    /* stack index of a table keeping buffers and strings alive */
  int kept;
} pctx;

static void ctx_init(pctx *c, lua_State *L, const char *fn) {
  c->L = L; c->fn = fn; c->kept = 0;
  lua_newtable(L);
  c->anchor = lua_gettop(L);
}

/* move the value on top of the stack into the anchor */
static void keep(pctx *c) { lua_rawseti(c->L, c->anchor, ++c->kept); }

static void *buffer(pctx *c, size_t n, size_t size) {
  if (n > (size_t)INT_MAX) luaL_error(c->L, "%s: too many values (%zu)", c->fn, n);
  void *p = lua_newuserdatauv(c->L, n ? n * size : 1, 0);
  keep(c);
  return p;
}

/* "what: " before a message about a named argument; nothing for the main one */
#define WHAT(w) (w) ? (w) : "", (w) ? ": " : ""

static mt_tensor *as_tensor(lua_State *L, int idx) {
  return luaL_testudata(L, idx, MILUA_TENSOR_MT) ? milua_checktensor(L, idx) : NULL;
}

static double tensor_at(const mt_tensor *t, int64_t off) {
  return t->dtype == MT_I32 ? (double)mt_i32(t)[off] : (double)mt_f32(t)[off];
}

static int is_array(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TTABLE && !luaL_testudata(L, idx, MILUA_TENSOR_MT);
}

/* numbers of a 1-d tensor or a Lua sequence at idx; `what` names the argument */
static double *read_vec(pctx *c, int idx, const char *what, int *n) {
  lua_State *L = c->L;
  idx = lua_absindex(L, idx);
  mt_tensor *t = as_tensor(L, idx);
  if (t) {
    char sb[64];
    if (t->ndim != 1)
      luaL_error(L, "%s: %s: expected a 1-d tensor, got %s", c->fn, what, mt_shape_str(t, sb, sizeof sb));
    double *v = buffer(c, (size_t)t->shape[0], sizeof *v);
    for (int64_t i = 0; i < t->shape[0]; i++) v[i] = tensor_at(t, i * t->stride[0]);
    *n = (int)t->shape[0];
    return v;
  }
  if (!is_array(L, idx))
    luaL_error(L, "%s: %s: expected a table of numbers or a 1-d tensor, got %s", c->fn, what, luaL_typename(L, idx));
  lua_Integer len = luaL_len(L, idx);
  double *v = buffer(c, (size_t)len, sizeof *v);
  for (lua_Integer i = 1; i <= len; i++) {
    if (lua_geti(L, idx, i) != LUA_TNUMBER)
      luaL_error(L, "%s: %s[%d] is a %s, expected a number", c->fn, what, (int)i, luaL_typename(L, -1));
    v[i - 1] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return v;
}

/* a matrix: a 2-d tensor (1-d counts as one row), a table of equally long
   rows, or a flat table of numbers (one row) */
static double *read_mat(pctx *c, int idx, const char *what, int *rows, int *cols) {
  lua_State *L = c->L;
  idx = lua_absindex(L, idx);
  mt_tensor *t = as_tensor(L, idx);
  if (t) {
    char sb[64];
    if (t->ndim != 1 && t->ndim != 2)
      luaL_error(L, "%s: %s%sexpected a 2-d tensor, got %s", c->fn, WHAT(what), mt_shape_str(t, sb, sizeof sb));
    int64_t r = t->ndim == 2 ? t->shape[0] : 1, k = t->shape[t->ndim - 1];
    int64_t sr = t->ndim == 2 ? t->stride[0] : 0, sk = t->stride[t->ndim - 1];
    if (r > INT_MAX || k > INT_MAX) luaL_error(L, "%s: %s%sdata too large", c->fn, WHAT(what));
    double *v = buffer(c, (size_t)(r * k), sizeof *v);
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < k; j++) v[i * k + j] = tensor_at(t, i * sr + j * sk);
    *rows = (int)r; *cols = (int)k;
    return v;
  }
  if (!is_array(L, idx))
    luaL_error(L, "%s: %s%sexpected a 2-d tensor or a table of rows, got %s", c->fn, WHAT(what), luaL_typename(L, idx));
  lua_Integer nr = luaL_len(L, idx);
  if (nr == 0) { *rows = 0; *cols = 0; return buffer(c, 0, sizeof(double)); }
  int first = lua_geti(L, idx, 1);
  lua_pop(L, 1);
  if (first == LUA_TNUMBER) {        /* a flat table is one row */
    *rows = 1;
    return read_vec(c, idx, what ? what : "values", cols);
  }
  double *v = NULL;
  lua_Integer nc = 0;
  for (lua_Integer i = 1; i <= nr; i++) {
    lua_geti(L, idx, i);
    if (!is_array(L, -1))
      luaL_error(L, "%s: %s[%d] is a %s, expected a table of numbers", c->fn, what ? what : "values", (int)i, luaL_typename(L, -1));
    lua_Integer len = luaL_len(L, -1);
    if (i == 1) {
      nc = len;
      if ((size_t)nr * (size_t)nc > (size_t)INT_MAX) luaL_error(L, "%s: %s%sdata too large", c->fn, WHAT(what));
      v = buffer(c, (size_t)(nr * nc), sizeof *v);
    } else if (len != nc) {
      luaL_error(L, "%s: %s%srow %d has %d values, row 1 has %d", c->fn, WHAT(what), (int)i, (int)len, (int)nc);
    }
    for (lua_Integer j = 1; j <= len; j++) {
      if (lua_geti(L, -1, j) != LUA_TNUMBER)
        luaL_error(L, "%s: %s[%d][%d] is a %s, expected a number", c->fn, what ? what : "values", (int)i, (int)j, luaL_typename(L, -1));
      v[(i - 1) * nc + (j - 1)] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  *rows = (int)nr; *cols = (int)nc;
  return v;
}

/* a string or number at the top of the stack, kept alive; pops it */
static const char *top_string(pctx *c, const char *what) {
  lua_State *L = c->L;
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: %s is a %s, expected a string", c->fn, what, luaL_typename(L, -1));
  const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : luaL_tolstring(L, -1, NULL);
  if (t != LUA_TSTRING) lua_remove(L, -2);
  keep(c);
  return s;
}

/* a sequence of strings (numbers are written as numbers) */
static const char **read_strs(pctx *c, int idx, const char *what, int *n) {
  lua_State *L = c->L;
  idx = lua_absindex(L, idx);
  if (!is_array(L, idx))
    luaL_error(L, "%s: %s: expected a table of strings, got %s", c->fn, what, luaL_typename(L, idx));
  lua_Integer len = luaL_len(L, idx);
  const char **v = buffer(c, (size_t)len, sizeof *v);
  char item[64];
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, idx, i);
    snprintf(item, sizeof item, "%s[%d]", what, (int)i);
    v[i - 1] = top_string(c, item);
  }
  *n = (int)len;
  return v;
}

/* ---- options ---- */

/* every key of opts must be one of `known` (space separated): a typo is an error */
static void check_keys(pctx *c, int opts, const char *known) {
  lua_State *L = c->L;
  lua_pushnil(L);
  while (lua_next(L, opts)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option keys must be strings, got a %s", c->fn, luaL_typename(L, -1));
    const char *k = lua_tostring(L, -1);
    size_t kl = strlen(k);
    int found = 0;
    for (const char *p = known; *p && !found;) {
      const char *e = strchr(p, ' ');
      size_t l = e ? (size_t)(e - p) : strlen(p);
      found = l == kl && strncmp(p, k, l) == 0;
      p += l + (e ? 1 : 0);
    }
    if (!found) luaL_error(L, "%s: unknown option '%s' (options: %s)", c->fn, k, known);
  }
}

/* pushes opts[key]; returns its type */
static int opt_get(pctx *c, int opts, const char *key) {
  if (!opts) { lua_pushnil(c->L); return LUA_TNIL; }
  return lua_getfield(c->L, opts, key);
}

static const char *opt_str(pctx *c, int opts, const char *key) {
  if (opt_get(c, opts, key) == LUA_TNIL) { lua_pop(c->L, 1); return NULL; }
  char what[64];
  snprintf(what, sizeof what, "opts.%s", key);
  return top_string(c, what);
}

static int opt_num(pctx *c, int opts, const char *key, double *v) {
  int t = opt_get(c, opts, key);
  if (t == LUA_TNIL) { lua_pop(c->L, 1); return 0; }
  if (t != LUA_TNUMBER)
    luaL_error(c->L, "%s: opts.%s is a %s, expected a number", c->fn, key, luaL_typename(c->L, -1));
  *v = lua_tonumber(c->L, -1);
  lua_pop(c->L, 1);
  return 1;
}

static int opt_bool(pctx *c, int opts, const char *key) {
  int t = opt_get(c, opts, key);
  int b = lua_toboolean(c->L, -1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(c->L, "%s: opts.%s is a %s, expected a boolean", c->fn, key, luaL_typename(c->L, -1));
  lua_pop(c->L, 1);
  return b;
}

static int opt_size(pctx *c, int opts, const char *key) {
  double v;
  if (!opt_num(c, opts, key, &v)) return 0;
  if (!(v >= 100 && v <= 8000))
    luaL_error(c->L, "%s: opts.%s = %g is out of range (100..8000 pixels)", c->fn, key, v);
  return (int)v;
}

/* the options every kind shares */
static void read_common(pctx *c, int opts, plot_opts *o) {
  memset(o, 0, sizeof *o);
  o->title = opt_str(c, opts, "title");
  o->xlabel = opt_str(c, opts, "xlabel");
  o->ylabel = opt_str(c, opts, "ylabel");
  o->width = opt_size(c, opts, "width");
  o->height = opt_size(c, opts, "height");
}

static void read_colour(pctx *c, int opts, plot_opts *o) {
  o->has_vmin = opt_num(c, opts, "vmin", &o->vmin);
  o->has_vmax = opt_num(c, opts, "vmax", &o->vmax);
  o->clabel = opt_str(c, opts, "clabel");
  const char *m = opt_str(c, opts, "cmap");
  if (!m || strcmp(m, "auto") == 0) o->cmap = PLOT_CMAP_AUTO;
  else if (strcmp(m, "viridis") == 0) o->cmap = PLOT_CMAP_VIRIDIS;
  else if (strcmp(m, "diverging") == 0) o->cmap = PLOT_CMAP_DIVERGING;
  else luaL_error(c->L, "%s: unknown cmap '%s' (expected \"viridis\", \"diverging\" or \"auto\")", c->fn, m);
}

/* optional options table at idx: 0 when absent */
static int opts_arg(pctx *c, int idx, const char *known) {
  int t = lua_type(c->L, idx);
  if (t == LUA_TNONE || t == LUA_TNIL) return 0;
  if (t != LUA_TTABLE)
    luaL_error(c->L, "%s: options must be a table, got %s", c->fn, luaL_typename(c->L, idx));
  check_keys(c, idx, known);
  return idx;
}

/* "plot_heatmap: msg" from the core becomes "plot.heatmap: msg" */
static int core_error(pctx *c) {
  const char *e = mt_error();
  if (strncmp(e, "plot", 4) == 0) {
    const char *colon = strstr(e, ": ");
    if (colon) e = colon + 2;
  }
  return luaL_error(c->L, "%s: %s", c->fn, e);
}

#define COMMON "title xlabel ylabel width height"
#define AXES "xlim ylim xinteger yinteger"

/* opts.xlim / opts.ylim = {lo, hi}: fixed ends of an axis */
static void read_lim(pctx *c, int opts, const char *key, int *has_lo, double *lo, int *has_hi, double *hi) {
  lua_State *L = c->L;
  int t = opt_get(c, opts, key);
  if (t != LUA_TNIL) {
    int ok = t == LUA_TTABLE && luaL_len(L, -1) == 2;
    for (int i = 1; ok && i <= 2; i++) {
      ok = lua_geti(L, -1, i) == LUA_TNUMBER;
      if (ok) *(i == 1 ? lo : hi) = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    if (!ok) luaL_error(L, "%s: opts.%s must be {low, high}, two numbers", c->fn, key);
    *has_lo = *has_hi = 1;
  }
  lua_pop(L, 1);
}

static void read_axes(pctx *c, int opts, plot_opts *o) {
  read_lim(c, opts, "xlim", &o->has_xmin, &o->xmin, &o->has_xmax, &o->xmax);
  read_lim(c, opts, "ylim", &o->has_ymin, &o->ymin, &o->has_ymax, &o->ymax);
  o->xinteger = opt_bool(c, opts, "xinteger");
  o->yinteger = opt_bool(c, opts, "yinteger");
}

/* pushes {xlim = {lo, hi}, ylim = {lo, hi}, xticks = {...}, yticks = {...}}: what was drawn */
static void push_axes(lua_State *L, const plot_axes *a) {
  lua_createtable(L, 0, 4);
  const char *names[2] = {"xlim", "ylim"};
  double ends[2][2] = {{a->xlo, a->xhi}, {a->ylo, a->yhi}};
  for (int k = 0; k < 2; k++) {
    lua_createtable(L, 2, 0);
    lua_pushnumber(L, ends[k][0]); lua_rawseti(L, -2, 1);
    lua_pushnumber(L, ends[k][1]); lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, names[k]);
  }
  lua_createtable(L, a->nx, 0);
  for (int i = 0; i < a->nx; i++) { lua_pushnumber(L, a->xticks[i]); lua_rawseti(L, -2, i + 1); }
  lua_setfield(L, -2, "xticks");
  lua_createtable(L, a->ny, 0);
  for (int i = 0; i < a->ny; i++) { lua_pushnumber(L, a->yticks[i]); lua_rawseti(L, -2, i + 1); }
  lua_setfield(L, -2, "yticks");
}

/* core.heatmap(matrix, path, opts) -> path */
static int l_heatmap(lua_State *L) {
  pctx c;
  const char *path = luaL_checkstring(L, 2);
  ctx_init(&c, L, "plot.heatmap");
  int opts = opts_arg(&c, 3, COMMON " xticks yticks vmin vmax cmap clabel values");
  int rows, cols;
  double *d = read_mat(&c, 1, NULL, &rows, &cols);
  plot_opts o;
  read_common(&c, opts, &o);
  read_colour(&c, opts, &o);
  if (opt_get(&c, opts, "xticks") != LUA_TNIL) o.xticks = read_strs(&c, -1, "opts.xticks", &o.n_xticks);
  lua_pop(L, 1);
  if (opt_get(&c, opts, "yticks") != LUA_TNIL) o.yticks = read_strs(&c, -1, "opts.yticks", &o.n_yticks);
  lua_pop(L, 1);
  if (o.xticks && o.n_xticks != cols)
    return luaL_error(L, "%s: %d xticks for %d columns", c.fn, o.n_xticks, cols);
  if (o.yticks && o.n_yticks != rows)
    return luaL_error(L, "%s: %d yticks for %d rows", c.fn, o.n_yticks, rows);
  if (opt_get(&c, opts, "values") != LUA_TNIL) {
    if (!lua_isboolean(L, -1)) return luaL_error(L, "%s: opts.values is a %s, expected a boolean", c.fn, luaL_typename(L, -1));
    o.cell_values = lua_toboolean(L, -1) ? 1 : -1;
  }
  lua_pop(L, 1);
  plot_axes ax;
  o.axes = &ax;
  float *f = buffer(&c, (size_t)rows * cols, sizeof *f);
  for (size_t i = 0; i < (size_t)rows * cols; i++) f[i] = (float)d[i];
  if (plot_heatmap(path, f, rows, cols, &o)) return core_error(&c);
  lua_pushvalue(L, 2);
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, ax.cell_values);
  lua_setfield(L, -2, "values");
  lua_pushinteger(L, ax.xstride);
  lua_setfield(L, -2, "xlabel_stride");
  lua_pushinteger(L, ax.ystride);
  lua_setfield(L, -2, "ylabel_stride");
  lua_pushboolean(L, ax.xrot);
  lua_setfield(L, -2, "xlabels_upright");
  return 2;
}

/* core.line({{x=, y=, label=}, ...}, path, opts) -> path */
static int l_line(lua_State *L) {
  pctx c;
  const char *path = luaL_checkstring(L, 2);
  ctx_init(&c, L, "plot.line");
  int opts = opts_arg(&c, 3, COMMON " " AXES " logy markers labels hlines");
  if (!is_array(L, 1))
    return luaL_error(L, "%s: expected a list of series, got %s", c.fn, luaL_typename(L, 1));
  lua_Integer ns = luaL_len(L, 1);
  if (ns > 100000) return luaL_error(L, "%s: too many series (%d)", c.fn, (int)ns);
  plot_series *s = buffer(&c, (size_t)ns, sizeof *s);
  char what[64];
  for (lua_Integer k = 1; k <= ns; k++) {
    lua_geti(L, 1, k);
    int e = lua_gettop(L);
    if (!is_array(L, e))
      return luaL_error(L, "%s: series %d is a %s, expected a table {x=, y=, label=}", c.fn, (int)k, luaL_typename(L, e));
    memset(&s[k - 1], 0, sizeof s[k - 1]);
    if (lua_getfield(L, e, "y") == LUA_TNIL)
      return luaL_error(L, "%s: series %d has no y values", c.fn, (int)k);
    snprintf(what, sizeof what, "series %d y", (int)k);
    s[k - 1].y = read_vec(&c, -1, what, &s[k - 1].n);
    lua_pop(L, 1);
    if (lua_getfield(L, e, "x") != LUA_TNIL) {
      int nx;
      snprintf(what, sizeof what, "series %d x", (int)k);
      s[k - 1].x = read_vec(&c, -1, what, &nx);
      if (nx != s[k - 1].n)
        return luaL_error(L, "%s: series %d has %d x values and %d y values", c.fn, (int)k, nx, s[k - 1].n);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, e, "label") != LUA_TNIL) {
      snprintf(what, sizeof what, "series %d label", (int)k);
      s[k - 1].label = top_string(&c, what);
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  plot_opts o;
  read_common(&c, opts, &o);
  read_axes(&c, opts, &o);
  o.logy = opt_bool(&c, opts, "logy");
  if (opt_get(&c, opts, "markers") != LUA_TNIL) o.markers = lua_toboolean(L, -1) ? 1 : -1;
  lua_pop(L, 1);
  /* opts.hlines: a list of numbers or of {y =, label =} */
  if (opt_get(&c, opts, "hlines") != LUA_TNIL) {
    int h = lua_gettop(L);
    if (!is_array(L, h)) return luaL_error(L, "%s: opts.hlines must be a list of numbers or {y =, label =}", c.fn);
    lua_Integer nh = luaL_len(L, h);
    if (nh > 1000) return luaL_error(L, "%s: too many reference lines (%d)", c.fn, (int)nh);
    double *hy = buffer(&c, (size_t)(nh ? nh : 1), sizeof *hy);
    const char **hl = buffer(&c, (size_t)(nh ? nh : 1), sizeof *hl);
    for (lua_Integer k = 1; k <= nh; k++) {
      int t = lua_geti(L, h, k);
      hl[k - 1] = NULL;
      if (t == LUA_TNUMBER) {
        hy[k - 1] = lua_tonumber(L, -1);
      } else if (t == LUA_TTABLE && lua_getfield(L, -1, "y") == LUA_TNUMBER) {
        hy[k - 1] = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (lua_getfield(L, -1, "label") != LUA_TNIL) {
          snprintf(what, sizeof what, "opts.hlines[%d].label", (int)k);
          hl[k - 1] = top_string(&c, what);
        } else {
          lua_pop(L, 1);
        }
      } else {
        return luaL_error(L, "%s: opts.hlines[%d] must be a number or {y = number, label = string}", c.fn, (int)k);
      }
      lua_pop(L, 1);
    }
    o.hlines = hy; o.hline_labels = hl; o.n_hlines = (int)nh;
  }
  lua_pop(L, 1);
  plot_axes ax;
  o.axes = &ax;
  if (plot_line(path, s, (int)ns, &o)) return core_error(&c);
  lua_pushvalue(L, 2);
  push_axes(L, &ax);
  return 2;
}

/* core.scatter(x, y, path, opts) -> path */
static int l_scatter(lua_State *L) {
  pctx c;
  const char *path = luaL_checkstring(L, 3);
  ctx_init(&c, L, "plot.scatter");
  int opts = opts_arg(&c, 4, COMMON " " AXES " c labels annotate vmin vmax cmap clabel");
  int nx, ny, nc = 0, nl = 0;
  double *x = read_vec(&c, 1, "x", &nx);
  double *y = read_vec(&c, 2, "y", &ny);
  if (nx != ny) return luaL_error(L, "%s: x has %d values and y has %d", c.fn, nx, ny);
  plot_opts o;
  read_common(&c, opts, &o);
  read_colour(&c, opts, &o);
  double *col = NULL;
  if (opt_get(&c, opts, "c") != LUA_TNIL) {
    col = read_vec(&c, -1, "opts.c", &nc);
    if (nc != nx) return luaL_error(L, "%s: opts.c has %d values for %d points", c.fn, nc, nx);
  }
  lua_pop(L, 1);
  if (opt_get(&c, opts, "labels") != LUA_TNIL) {
    o.categories = read_strs(&c, -1, "opts.labels", &nl);
    if (nl != nx) return luaL_error(L, "%s: opts.labels has %d entries for %d points", c.fn, nl, nx);
  }
  lua_pop(L, 1);
  o.annotate = opt_bool(&c, opts, "annotate");
  read_axes(&c, opts, &o);
  plot_axes ax;
  o.axes = &ax;
  if (plot_scatter(path, x, y, col, nx, &o)) return core_error(&c);
  lua_pushvalue(L, 3);
  push_axes(L, &ax);
  return 2;
}

/* core.bar(values, path, opts) -> path; values 1-d, or 2-d as [series][group] */
static int l_bar(lua_State *L) {
  pctx c;
  const char *path = luaL_checkstring(L, 2);
  ctx_init(&c, L, "plot.bar");
  int opts = opts_arg(&c, 3, COMMON " ylim yinteger labels series");
  int ns, n, nl = 0, nn = 0;
  double *v = read_mat(&c, 1, NULL, &ns, &n);
  plot_opts o;
  read_common(&c, opts, &o);
  const char **labels = NULL;
  if (opt_get(&c, opts, "labels") != LUA_TNIL) {
    labels = read_strs(&c, -1, "opts.labels", &nl);
    if (nl != n) return luaL_error(L, "%s: opts.labels has %d entries for %d bars", c.fn, nl, n);
  }
  lua_pop(L, 1);
  if (opt_get(&c, opts, "series") != LUA_TNIL) {
    o.series_names = read_strs(&c, -1, "opts.series", &nn);
    if (nn != ns) return luaL_error(L, "%s: opts.series has %d names for %d series", c.fn, nn, ns);
  }
  lua_pop(L, 1);
  read_lim(&c, opts, "ylim", &o.has_ymin, &o.ymin, &o.has_ymax, &o.ymax);
  o.yinteger = opt_bool(&c, opts, "yinteger");
  plot_axes ax;
  o.axes = &ax;
  if (plot_bar(path, v, ns, n, labels, &o)) return core_error(&c);
  lua_pushvalue(L, 2);
  push_axes(L, &ax);
  return 2;
}

int luaopen_milua_plot_core(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"heatmap", l_heatmap}, {"line", l_line}, {"scatter", l_scatter}, {"bar", l_bar}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
