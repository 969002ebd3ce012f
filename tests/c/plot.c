/* nn/plot/plot.c: render every kind into a fresh directory, read the PNGs back
   with libpng and check sizes, colours at known places, byte-identical
   reruns and the error paths. PLOT_TEST_KEEP=1 keeps the images. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tap.h"
#include "plot/plot.h"
#include "core/error.h"

static char dir[256];

static const char *P(const char *name) {
  static char buf[8][512];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

typedef struct { int w, h; unsigned char *px; } img;

static int img_read(img *im, const char *path) {
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  im->px = NULL;
  if (!png_image_begin_read_from_file(&pi, path)) return -1;
  pi.format = PNG_FORMAT_RGB;
  im->px = malloc(PNG_IMAGE_SIZE(pi));
  if (!im->px || !png_image_finish_read(&pi, NULL, im->px, 0, NULL)) {
    png_image_free(&pi); free(im->px); im->px = NULL;
    return -1;
  }
  im->w = (int)pi.width; im->h = (int)pi.height;
  return 0;
}

static int is_col(const img *im, int x, int y, int r, int g, int b) {
  if (x < 0 || y < 0 || x >= im->w || y >= im->h) return 0;
  const unsigned char *p = im->px + ((size_t)y * im->w + x) * 3;
  return p[0] == r && p[1] == g && p[2] == b;
}

static long count_col(const img *im, int r, int g, int b) {
  long n = 0;
  for (int y = 0; y < im->h; y++)
    for (int x = 0; x < im->w; x++) n += is_col(im, x, y, r, g, b);
  return n;
}

/* top-left corner of the first k x k block of one colour (scan order); 0 if none */
static int find_block(const img *im, int r, int g, int b, int k, int *bx, int *by) {
  for (int y = 0; y + k <= im->h; y++)
    for (int x = 0; x + k <= im->w; x++) {
      int ok = 1;
      for (int dy = 0; dy < k && ok; dy += k - 1 > 0 ? k - 1 : 1)
        for (int dx = 0; dx < k && ok; dx++) ok = is_col(im, x + dx, y + dy, r, g, b);
      for (int dy = 0; dy < k && ok; dy++) ok = is_col(im, x, y + dy, r, g, b) && is_col(im, x + k - 1, y + dy, r, g, b);
      if (ok) { *bx = x; *by = y; return 1; }
    }
  return 0;
}

/* bounding box of a colour within columns [x0, x1) */
static int bbox(const img *im, int r, int g, int b, int x0, int x1, int box[4]) {
  box[0] = box[1] = 1 << 30; box[2] = box[3] = -1;
  for (int y = 0; y < im->h; y++)
    for (int x = x0; x < x1 && x < im->w; x++)
      if (is_col(im, x, y, r, g, b)) {
        if (x < box[0]) box[0] = x;
        if (y < box[1]) box[1] = y;
        if (x > box[2]) box[2] = x;
        if (y > box[3]) box[3] = y;
      }
  return box[2] >= 0;
}

static unsigned char *slurp(const char *path, long *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*n > 0 ? *n : 1);
  if (b && fread(b, 1, *n, f) != (size_t)*n) { free(b); b = NULL; }
  fclose(f);
  return b;
}

static int same_bytes(const char *a, const char *b) {
  long na, nb;
  unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
  int same = x && y && na == nb && memcmp(x, y, na) == 0;
  free(x); free(y);
  return same;
}

static int has_chunk(const char *path, const char *tag) {
  long n;
  unsigned char *b = slurp(path, &n);
  int found = 0;
  for (long i = 0; b && i + 4 <= n && !found; i++) found = memcmp(b + i, tag, 4) == 0;
  free(b);
  return found;
}

static int png_signature(const char *path) {
  long n;
  unsigned char *b = slurp(path, &n);
  static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  int ok = b && n > 8 && memcmp(b, sig, 8) == 0;
  free(b);
  return ok;
}

static int leftovers(void) {       /* temporary files left in dir */
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) if (strstr(e->d_name, ".tmp")) n++;
  if (d) closedir(d);
  return n;
}

static const char *tokens[20] = {"<bos>", "a", "=", "+1", ";", "b", "=", "-a", ";", "c",
                                 "=", "+b", ";", "d", "=", "-c", ";", "e", "=", "?"};

static void test_font(void) {
  int bad = 0;
  for (int c = 32; c <= 126; c++) {
    const char *const *g = plot_font_glyph(c);
    for (int r = 0; r < PLOT_GLYPH_H; r++)
      if (!g[r] || strlen(g[r]) != PLOT_GLYPH_W || strspn(g[r], "#.") != PLOT_GLYPH_W) bad++;
  }
  tap_ok(bad == 0, "font: 95 glyphs of %dx%d ('#'/'.')", PLOT_GLYPH_W, PLOT_GLYPH_H);
  tap_ok(plot_font_glyph(200) == plot_font_glyph('?'), "font: unprintable bytes draw '?'");
}

static void test_heatmap(void) {
  float v[400];
  for (int i = 0; i < 20; i++)
    for (int j = 0; j < 20; j++) v[i * 20 + j] = (j <= i) ? 0.05f + 0.001f * (i + j) : 0.0f;
  v[0 * 20 + 19] = 1.0f;           /* the max: top right */
  v[19 * 20 + 0] = -0.0f + 0.0f;   /* the min (0) also appears above the diagonal */
  v[5 * 20 + 5] = NAN;
  plot_opts o = {0};
  o.title = "L0H1 attention pattern";
  o.xlabel = "key position";
  o.ylabel = "query position";
  o.xticks = tokens; o.n_xticks = 20;
  o.yticks = tokens; o.n_yticks = 20;
  int r = plot_heatmap(P("heat.png"), v, 20, 20, &o);
  tap_ok(r == 0, "heatmap 20x20 with tokens written (%s)", mt_error());
  tap_ok(png_signature(P("heat.png")), "heatmap: PNG signature");
  tap_ok(!has_chunk(P("heat.png"), "tIME"), "heatmap: no tIME chunk");
  img im;
  tap_ok(img_read(&im, P("heat.png")) == 0, "heatmap: libpng reads it back");
  if (!im.px) return;
  tap_ok(im.w >= 300 && im.w <= 1200 && im.h >= 300 && im.h <= 1200, "heatmap: size %dx%d within 300..1200", im.w, im.h);
  tap_ok(is_col(&im, 0, 0, 255, 255, 255) && is_col(&im, im.w - 1, im.h - 1, 255, 255, 255), "heatmap: white background");
  int mx, my, nx, ny, gx, gy;
  int top = find_block(&im, 253, 231, 37, 16, &mx, &my);
  int bot = find_block(&im, 68, 1, 84, 16, &nx, &ny);
  tap_ok(top, "heatmap: the max cell has viridis' top colour (a 16px block)");
  tap_ok(bot, "heatmap: min cells have viridis' bottom colour");
  tap_ok(top && bot && mx > nx && my <= ny, "heatmap: max cell is top-right of the first min cell");
  tap_ok(find_block(&im, 150, 150, 150, 16, &gx, &gy), "heatmap: NaN cell is grey");
  tap_ok(count_col(&im, 253, 231, 37) < 40 * 40, "heatmap: only one cell (and the bar's end) at the top colour");
  free(im.px);

  /* same input, same bytes */
  r = plot_heatmap(P("heat2.png"), v, 20, 20, &o);
  tap_ok(r == 0 && same_bytes(P("heat.png"), P("heat2.png")), "heatmap: identical bytes on a rerun");

  /* vmin/vmax: 0.5 is the middle of [0, 1] -> viridis' middle control point */
  float w[6] = {0.5f, 0.5f, 0.25f, 0.75f, 2.0f, -1.0f};
  plot_opts o2 = {0};
  o2.has_vmin = 1; o2.vmin = 0; o2.has_vmax = 1; o2.vmax = 1;
  r = plot_heatmap(P("heat_vm.png"), w, 2, 3, &o2);
  tap_ok(r == 0 && img_read(&im, P("heat_vm.png")) == 0, "heatmap with vmin/vmax written");
  if (im.px) {
    tap_ok(find_block(&im, 33, 145, 140, 20, &gx, &gy), "heatmap: vmin/vmax map 0.5 to the middle colour");
    tap_ok(find_block(&im, 253, 231, 37, 20, &gx, &gy) && find_block(&im, 68, 1, 84, 20, &gx, &gy),
           "heatmap: out-of-range values clamp to the ends");
    free(im.px);
  }

  /* patching-style results across zero: diverging, symmetric, white at 0 */
  float d[12] = {-2, -1, 0, 1, 0.5f, 0, 0, 0, 1, 1, 1, 1};
  r = plot_heatmap(P("heat_div.png"), d, 3, 4, NULL);
  tap_ok(r == 0 && img_read(&im, P("heat_div.png")) == 0, "diverging heatmap written");
  if (im.px) {
    tap_ok(find_block(&im, 33, 102, 172, 20, &gx, &gy), "diverging: -2 (the min) is full blue");
    tap_ok(find_block(&im, 239, 138, 98, 20, &gx, &gy), "diverging: +1 of +-2 is the light red control point");
    tap_ok(count_col(&im, 178, 24, 43) < 200, "diverging: no cell is full red (range is symmetric)");
    free(im.px);
  }
  plot_opts o3 = {0};
  o3.cmap = PLOT_CMAP_VIRIDIS;
  r = plot_heatmap(P("heat_forced.png"), d, 3, 4, &o3);
  tap_ok(r == 0 && img_read(&im, P("heat_forced.png")) == 0, "cmap=viridis forced on signed data");
  if (im.px) {
    tap_ok(find_block(&im, 68, 1, 84, 20, &gx, &gy) && count_col(&im, 33, 102, 172) == 0, "forced viridis: no blue");
    free(im.px);
  }

  /* shapes: one row, one cell, tall, large (sampled), constant and all-NaN */
  float *bigp = malloc(sizeof(float) * 1200 * 1300);
  if (!bigp) return;
  for (int i = 0; i < 1200 * 1300; i++) bigp[i] = (float)sin(i * 0.001);
  float one[1] = {3};
  float row[7] = {1, 2, 3, 4, 5, 6, 7};
  float nan4[4] = {NAN, NAN, NAN, NAN};
  float cst[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
  tap_ok(plot_heatmap(P("heat_1x1.png"), one, 1, 1, NULL) == 0, "heatmap 1x1");
  tap_ok(plot_heatmap(P("heat_1x7.png"), row, 1, 7, NULL) == 0, "heatmap 1x7");
  tap_ok(plot_heatmap(P("heat_7x1.png"), row, 7, 1, NULL) == 0, "heatmap 7x1");
  tap_ok(plot_heatmap(P("heat_big.png"), bigp, 1200, 1300, NULL) == 0, "heatmap 1200x1300 (sampled)");
  if (img_read(&im, P("heat_big.png")) == 0) {
    tap_ok(im.w <= 1400 && im.h <= 1300, "heatmap: large data stays under ~1400 px (%dx%d)", im.w, im.h);
    free(im.px);
  }
  tap_ok(plot_heatmap(P("heat_nan.png"), nan4, 2, 2, NULL) == 0, "heatmap of NaNs only");
  tap_ok(plot_heatmap(P("heat_cst.png"), cst, 3, 3, NULL) == 0, "constant heatmap");
  free(bigp);
  /* 64 positions of long, non-ASCII and empty tokens: thinned labels */
  static float m64[64 * 64];
  static const char *tok64[64];
  static char tokbuf[64][24];
  for (int i = 0; i < 64; i++) {
    snprintf(tokbuf[i], sizeof tokbuf[i], i % 9 == 0 ? "tok_%d_long_name" : i % 7 == 0 ? "\xc3\xa9%d" : "t%d", i);
    tok64[i] = i == 3 ? "" : tokbuf[i];
    for (int j = 0; j < 64; j++) m64[i * 64 + j] = j <= i ? 1.0f / (i + 1) : 0;
  }
  plot_opts o4 = {0};
  o4.xticks = tok64; o4.n_xticks = 64; o4.yticks = tok64; o4.n_yticks = 64;
  o4.title = "a causal pattern over 64 positions with a title long enough to need room";
  o4.clabel = "attention";
  tap_ok(plot_heatmap(P("heat_64.png"), m64, 64, 64, &o4) == 0, "heatmap 64x64 with tokens and a colour bar label");
}

static void test_line(void) {
  double x[200], y1[200], y2[200], y3[5] = {1, 0, -1, 4, 8};
  for (int i = 0; i < 200; i++) {
    x[i] = i * 10;
    y1[i] = 3.0 * exp(-i / 40.0) + 0.05;
    y2[i] = 2.5 * exp(-i / 80.0) + 0.1 + 0.05 * sin(i * 0.7);
  }
  plot_series s[3] = {{x, y1, 200, "train"}, {x, y2, 200, "test"}, {NULL, y3, 5, NULL}};
  plot_opts o = {0};
  o.title = "loss"; o.xlabel = "step"; o.ylabel = "cross-entropy";
  int r = plot_line(P("line.png"), s, 2, &o);
  img im;
  tap_ok(r == 0 && img_read(&im, P("line.png")) == 0, "line plot written (%s)", mt_error());
  if (im.px) {
    tap_ok(im.h == 520 && im.w > 760 && im.w < 1100, "line: default size with room for the legend (%dx%d)", im.w, im.h);
    tap_ok(count_col(&im, 31, 119, 180) > 100, "line: first series in its colour");
    tap_ok(count_col(&im, 255, 127, 14) > 100, "line: second series in its colour");
    tap_ok(is_col(&im, 0, 0, 255, 255, 255), "line: white background");
    int b0[4], b1[4];
    /* series 1 falls from 3 to ~0; the legend swatch lies right of the plot */
    bbox(&im, 31, 119, 180, 0, im.w, b0);
    bbox(&im, 255, 127, 14, 0, im.w, b1);
    tap_ok(b0[1] < b1[1], "line: the series that starts higher reaches higher");
    free(im.px);
  }
  r = plot_line(P("line2.png"), s, 2, &o);
  tap_ok(r == 0 && same_bytes(P("line.png"), P("line2.png")), "line: identical bytes on a rerun");
  o.logy = 1;
  o.width = 640; o.height = 480;
  r = plot_line(P("line_log.png"), s, 3, &o);
  tap_ok(r == 0 && img_read(&im, P("line_log.png")) == 0, "log-y line plot with non-positive values written");
  if (im.px) {
    tap_ok(im.w == 640 && im.h == 480, "line: width/height honoured (%dx%d)", im.w, im.h);
    tap_ok(count_col(&im, 44, 160, 44) > 10, "line: third series (unlabelled, x defaulted) drawn");
    free(im.px);
  }
  /* one point, infinities, a constant series */
  double one = 2, inf[4] = {1, INFINITY, NAN, 2}, cst[3] = {5, 5, 5};
  plot_series s1[3] = {{NULL, &one, 1, "one"}, {NULL, inf, 4, "inf"}, {NULL, cst, 3, "constant"}};
  tap_ok(plot_line(P("line_odd.png"), s1, 3, NULL) == 0, "line: a point, non-finite values, a constant");
  /* many series: legend is cut with a count */
  double ys[40][10];
  plot_series many[40];
  char names[40][32];
  for (int k = 0; k < 40; k++) {
    for (int i = 0; i < 10; i++) ys[k][i] = k + i * 0.1 * k;
    snprintf(names[k], sizeof names[k], "head %d.%d", k / 8, k % 8);
    many[k] = (plot_series){NULL, ys[k], 10, names[k]};
  }
  plot_opts om = {0};
  om.height = 300; om.title = "forty series";
  tap_ok(plot_line(P("line_many.png"), many, 40, &om) == 0, "line: 40 series, legend truncated");
  /* small values and big x */
  double bx[3] = {1e6, 2e6, 3e6}, by[3] = {1e-6, 3e-6, 2e-6};
  plot_series sb[1] = {{bx, by, 3, NULL}};
  tap_ok(plot_line(P("line_tiny.png"), sb, 1, NULL) == 0, "line: tiny y, huge x");
}

static void test_scatter(void) {
  double x[300], y[300], c[300];
  const char *cats[300];
  static const char *names[3] = {"carry", "no carry", "sum 9"};
  for (int i = 0; i < 300; i++) {
    double t = i * 0.05;
    x[i] = cos(t) * (1 + i * 0.01);
    y[i] = sin(t) * (1 + i * 0.01);
    c[i] = i;
    cats[i] = names[i % 3];
  }
  plot_opts o = {0};
  o.title = "PCA of resid_post"; o.xlabel = "PC1"; o.ylabel = "PC2"; o.clabel = "intermediate value";
  o.width = 700; o.height = 560;
  img im;
  int r = plot_scatter(P("scatter_c.png"), x, y, c, 300, &o);
  tap_ok(r == 0 && img_read(&im, P("scatter_c.png")) == 0, "scatter with colour values written (%s)", mt_error());
  if (im.px) {
    tap_ok(im.w == 700 && im.h == 560, "scatter: size honoured");
    int bx, by;
    tap_ok(find_block(&im, 253, 231, 37, 3, &bx, &by) && find_block(&im, 68, 1, 84, 3, &bx, &by),
           "scatter: points at both ends of the colour map");
    free(im.px);
  }
  plot_opts oc = {0};
  oc.categories = cats;
  oc.title = "categories";
  r = plot_scatter(P("scatter_cat.png"), x, y, NULL, 300, &oc);
  tap_ok(r == 0 && img_read(&im, P("scatter_cat.png")) == 0, "scatter with categories written");
  if (im.px) {
    tap_ok(count_col(&im, 31, 119, 180) > 50 && count_col(&im, 255, 127, 14) > 50 &&
           count_col(&im, 44, 160, 44) > 50, "scatter: one colour per category");
    free(im.px);
  }
  static const char *digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  double dx[10], dy[10];
  for (int i = 0; i < 10; i++) { dx[i] = i; dy[i] = (i * 7) % 10; }
  plot_opts oa = {0};
  oa.categories = digits; oa.annotate = 1;
  tap_ok(plot_scatter(P("scatter_ann.png"), dx, dy, NULL, 10, &oa) == 0, "scatter with annotations");
  double px = 1, py = 1;
  tap_ok(plot_scatter(P("scatter_1.png"), &px, &py, NULL, 1, NULL) == 0, "scatter of one point");
  r = plot_scatter(P("scatter_c2.png"), x, y, c, 300, &o);
  tap_ok(r == 0 && same_bytes(P("scatter_c.png"), P("scatter_c2.png")), "scatter: identical bytes on a rerun");
}

static void test_bar(void) {
  double v[2] = {3, -2};
  plot_opts o = {0};
  const char *lab[2] = {"up", "down"};
  o.title = "bars";
  img im;
  int r = plot_bar(P("bar.png"), v, 1, 2, lab, &o);
  tap_ok(r == 0 && img_read(&im, P("bar.png")) == 0, "bar chart written (%s)", mt_error());
  if (im.px) {
    int a[4], b[4];
    int ha = bbox(&im, 31, 119, 180, 0, im.w / 2, a), hb = bbox(&im, 31, 119, 180, im.w / 2, im.w, b);
    tap_ok(ha && hb, "bar: both bars drawn");
    tap_ok(ha && hb && a[3] < b[1] && b[1] - a[3] <= 3, "bar: positive bar above the zero line, negative below");
    tap_ok(ha && hb && (a[3] - a[1]) * 2 > (b[3] - b[1]) * 3 - 6 && (a[3] - a[1]) * 2 < (b[3] - b[1]) * 3 + 6,
           "bar: heights in proportion 3:2 (%d vs %d px)", a[3] - a[1], b[3] - b[1]);
    free(im.px);
  }
  double g[3 * 6];
  const char *gl[6] = {"digit 0", "digit 1", "digit 2", "digit 3", "digit 4", "digit 5"};
  const char *sn[3] = {"base add", "carry", "sum 9"};
  for (int i = 0; i < 18; i++) g[i] = sin(i * 1.3) * (i % 5 + 1) * 0.1;
  o.series_names = sn; o.xlabel = "answer digit"; o.ylabel = "loss change"; o.title = "ablation by digit";
  r = plot_bar(P("bar_group.png"), g, 3, 6, gl, &o);
  tap_ok(r == 0 && img_read(&im, P("bar_group.png")) == 0, "grouped bar chart written");
  if (im.px) {
    tap_ok(count_col(&im, 255, 127, 14) > 50 && count_col(&im, 44, 160, 44) > 50, "bar: each series in its colour");
    free(im.px);
  }
  r = plot_bar(P("bar_group2.png"), g, 3, 6, gl, &o);
  tap_ok(r == 0 && same_bytes(P("bar_group.png"), P("bar_group2.png")), "bar: identical bytes on a rerun");
  double many[60];
  const char *ml[60];
  char mb[60][32];
  for (int i = 0; i < 60; i++) {
    many[i] = i * i * 0.01 + 1;
    snprintf(mb[i], sizeof mb[i], "label number %d", i);
    ml[i] = mb[i];
  }
  plot_opts om = {0};
  om.title = "sixty long labels";
  tap_ok(plot_bar(P("bar_many.png"), many, 1, 60, ml, &om) == 0, "bar: 60 bars with long labels (rotated, thinned)");
  double z[3] = {0, 0, 0};
  tap_ok(plot_bar(P("bar_zero.png"), z, 1, 3, NULL, NULL) == 0, "bar: all zero");
}

static void test_errors(void) {
  float v[4] = {1, 2, 3, 4};
  double d[4] = {1, 2, 3, 4};
  plot_series s = {NULL, d, 4, "x"};
  plot_series s0 = {NULL, d, 0, "x"};
  int r = plot_heatmap("/nonexistent-dir/x/heat.png", v, 2, 2, NULL);
  tap_ok(r == -1 && strstr(mt_error(), "plot_heatmap: cannot write") != NULL, "bad directory: -1 (%s)", mt_error());
  tap_ok(plot_line("/nonexistent-dir/l.png", &s, 1, NULL) == -1 && strstr(mt_error(), "plot_line: cannot write"),
         "line: bad directory (%s)", mt_error());
  tap_ok(plot_heatmap(P("e.png"), v, 0, 2, NULL) == -1 && strstr(mt_error(), "empty"), "heatmap: 0 rows (%s)", mt_error());
  tap_ok(plot_heatmap(P("e.png"), NULL, 2, 2, NULL) == -1, "heatmap: NULL data");
  tap_ok(plot_heatmap(NULL, v, 2, 2, NULL) == -1 && strstr(mt_error(), "path"), "heatmap: NULL path (%s)", mt_error());
  tap_ok(plot_heatmap("", v, 2, 2, NULL) == -1, "heatmap: empty path");
  plot_opts o = {0};
  o.xticks = tokens; o.n_xticks = 3;
  tap_ok(plot_heatmap(P("e.png"), v, 2, 2, &o) == -1 && strstr(mt_error(), "3 column labels for 2"), "heatmap: label count mismatch (%s)", mt_error());
  plot_opts ov = {0};
  ov.has_vmin = ov.has_vmax = 1; ov.vmin = 2; ov.vmax = 1;
  tap_ok(plot_heatmap(P("e.png"), v, 2, 2, &ov) == -1 && strstr(mt_error(), "vmin"), "heatmap: vmin >= vmax (%s)", mt_error());
  tap_ok(plot_line(P("e.png"), &s, 0, NULL) == -1 && strstr(mt_error(), "plot_line: no series"), "line: no series (%s)", mt_error());
  tap_ok(plot_line(P("e.png"), &s0, 1, NULL) == -1 && strstr(mt_error(), "series 1"), "line: empty series (%s)", mt_error());
  double neg[2] = {-1, 0};
  plot_series sn = {NULL, neg, 2, NULL};
  plot_opts ol = {0};
  ol.logy = 1;
  tap_ok(plot_line(P("e.png"), &sn, 1, &ol) == -1 && strstr(mt_error(), "log"), "line: log axis without positive values (%s)", mt_error());
  tap_ok(plot_scatter(P("e.png"), d, d, NULL, 0, NULL) == -1 && strstr(mt_error(), "plot_scatter: empty data"), "scatter: n=0 (%s)", mt_error());
  tap_ok(plot_scatter(P("e.png"), NULL, d, NULL, 4, NULL) == -1, "scatter: NULL x");
  tap_ok(plot_bar(P("e.png"), d, 1, 0, NULL, NULL) == -1 && strstr(mt_error(), "plot_bar: empty data"), "bar: n=0 (%s)", mt_error());
  tap_ok(plot_bar(P("e.png"), d, 0, 4, NULL, NULL) == -1, "bar: no series");
  double nan[2] = {NAN, NAN};
  tap_ok(plot_bar(P("e.png"), nan, 1, 2, NULL, NULL) == -1, "bar: nothing finite");
  plot_opts tiny = {0};
  tiny.width = 200; tiny.height = 160; tiny.title = "a very long title for a tiny plot";
  tiny.ylabel = "y"; tiny.xlabel = "x";
  mt_seterr("%s", "");      /* so that a refusal must leave its own message */
  r = plot_line(P("tiny.png"), &s, 1, &tiny);
  tap_ok(r == 0 || (strstr(mt_error(), "plot_line: ") && access(P("tiny.png"), F_OK) != 0), "line: tiny canvas is drawn or refused cleanly");
  /* writing over an existing file replaces it; a directory in the way fails */
  tap_ok(plot_heatmap(P("heat_1x1.png"), v, 2, 2, NULL) == 0, "overwrite an existing PNG");
  tap_ok(plot_heatmap(dir, v, 2, 2, NULL) == -1 && strstr(mt_error(), "plot_heatmap: cannot"), "a directory as target: -1 (%s)", mt_error());
  tap_ok(access(P("e.png"), F_OK) != 0, "failed calls leave no file");
  tap_ok(leftovers() == 0, "no temporary files left behind");
}

/* values at the edges of double and float, odd options: drawn or refused, never a crash */
static void test_extremes(void) {
  double big[4] = {-1e308, 1e308, 0, 5e-324}, tiny[3] = {1e-300, 1e-310, 2e-300};
  float fbig[4] = {-3e38f, 3e38f, INFINITY, -INFINITY};
  plot_series s[2] = {{big, big, 4, "huge"}, {NULL, tiny, 3, "tiny"}};
  plot_opts o = {0};
  tap_ok(plot_line(P("x_line.png"), s, 2, &o) == 0, "line: values near DBL_MAX and denormals (%s)", mt_error());
  o.logy = 1;
  tap_ok(plot_line(P("x_line_log.png"), s, 2, &o) == 0, "line: log axis over 600 decades (%s)", mt_error());
  tap_ok(plot_scatter(P("x_scatter.png"), big, big, big, 4, NULL) == 0, "scatter: extreme values and colours (%s)", mt_error());
  tap_ok(plot_bar(P("x_bar.png"), big, 1, 4, NULL, NULL) == 0, "bar: extreme values (%s)", mt_error());
  tap_ok(plot_heatmap(P("x_heat.png"), fbig, 2, 2, NULL) == 0, "heatmap: +-FLT_MAX and infinities (%s)", mt_error());
  plot_opts on = {0};
  on.has_vmin = 1; on.vmin = NAN;
  tap_ok(plot_heatmap(P("e.png"), fbig, 2, 2, &on) == -1 && strstr(mt_error(), "finite"), "heatmap: NaN vmin refused (%s)", mt_error());
  plot_opts od = {0};
  od.cmap = PLOT_CMAP_DIVERGING; od.has_vmax = 1; od.vmax = 0.5;
  float f4[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  tap_ok(plot_heatmap(P("x_div_vmax.png"), f4, 2, 2, &od) == 0, "heatmap: diverging with only vmax");
  plot_opts os = {0};
  os.width = 100000; os.height = -5;
  tap_ok(plot_line(P("x_wide.png"), s, 1, &os) == 0, "line: absurd width/height hints are clamped (%s)", mt_error());
  const char *nul[2] = {NULL, "b"};
  plot_opts ot = {0};
  ot.xticks = nul; ot.n_xticks = 2; ot.categories = nul;
  tap_ok(plot_heatmap(P("x_nul.png"), f4, 2, 2, &ot) == 0, "heatmap: a NULL label draws empty");
  double two[2] = {1, 2};
  tap_ok(plot_scatter(P("x_nulcat.png"), two, two, NULL, 2, &ot) == 0, "scatter: a NULL category");
  char longs[3000];
  memset(longs, 'w', sizeof longs - 1);
  longs[sizeof longs - 1] = 0;
  plot_opts ol = {0};
  ol.title = longs; ol.xlabel = longs; ol.ylabel = longs; ol.clabel = longs;
  const char *ll[2] = {longs, "\xff\xfe\x80"};
  ol.xticks = ll; ol.n_xticks = 2; ol.yticks = ll; ol.n_yticks = 2;
  tap_ok(plot_heatmap(P("x_long.png"), f4, 2, 2, &ol) == 0, "heatmap: 3000-char texts and bad UTF-8");
  plot_series sl[1] = {{NULL, two, 2, longs}};
  tap_ok(plot_line(P("x_long_line.png"), sl, 1, &ol) == 0, "line: 3000-char legend, title and labels");
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/milua_plot_XXXXXX");
  if (!mkdtemp(dir)) { printf("Bail out! mkdtemp failed\n"); return 1; }
  test_font();
  test_heatmap();
  test_line();
  test_scatter();
  test_bar();
  test_extremes();
  test_errors();
  if (getenv("PLOT_TEST_KEEP")) {
    printf("# images kept in %s\n", dir);
  } else {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (e->d_name[0] != '.') unlink(P(e->d_name));
    if (d) closedir(d);
    rmdir(dir);
  }
  return tap_done();
}
