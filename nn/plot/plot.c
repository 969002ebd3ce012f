/* Raster plots: an RGB canvas with anti-aliased lines and discs, the bitmap
   font of nn/plot/font.c, nice tick values, colour maps, and four plot kinds
   (heatmap, line, scatter, bar) that lay out margins from the sizes of their
   texts so nothing overlaps or clips. Pixel centres sit at integer
   coordinates; data are mapped to doubles in that space. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plot/plot.h"
#include "core/error.h"

/* ---------------------------------------------------------------- colours */

typedef struct { unsigned char r, g, b; } rgb;

static const rgb C_WHITE = {255, 255, 255};
static const rgb C_INK = {25, 25, 25};        /* text */
static const rgb C_AXIS = {40, 40, 40};       /* frames, ticks, zero line */
static const rgb C_GRID = {228, 228, 228};
static const rgb C_NAN = {150, 150, 150};
static const rgb C_LEGEND_EDGE = {190, 190, 190};

/* ten distinct series colours (the familiar "category10" hues) */
static const rgb palette[10] = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
  {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

/* viridis sampled at nine evenly spaced points; linear in between */
static const rgb viridis[9] = {
  {68, 1, 84}, {71, 45, 123}, {59, 82, 139}, {44, 114, 142}, {33, 145, 140},
  {40, 174, 128}, {94, 201, 98}, {173, 220, 48}, {253, 231, 37},
};
/* blue - white - red, white exactly in the middle */
static const rgb diverging[5] = {
  {33, 102, 172}, {103, 169, 207}, {255, 255, 255}, {239, 138, 98}, {178, 24, 43},
};

static unsigned char mix8(unsigned char a, unsigned char b, double f) {
  return (unsigned char)lrint(a + (b - a) * f);
}

static rgb cmap_eval(int cmap, double t) {
  if (isnan(t)) return C_NAN;
  if (t < 0) t = 0;
  if (t > 1) t = 1;
  const rgb *pts = cmap == PLOT_CMAP_DIVERGING ? diverging : viridis;
  int n = cmap == PLOT_CMAP_DIVERGING ? 5 : 9;
  double u = t * (n - 1);
  int i = (int)floor(u);
  if (i >= n - 1) return pts[n - 1];
  double f = u - i;
  rgb c = { mix8(pts[i].r, pts[i + 1].r, f), mix8(pts[i].g, pts[i + 1].g, f),
            mix8(pts[i].b, pts[i + 1].b, f) };
  return c;
}

/* ---------------------------------------------------------------- canvas */

#define PLOT_MAX_SIDE 8000

typedef struct {
  int w, h;
  unsigned char *px;
  int cx0, cy0, cx1, cy1;      /* clip rectangle, inclusive */
} canvas;

static int canvas_init(canvas *c, int w, int h, const char *fn) {
  c->px = NULL;
  if (w <= 0 || h <= 0 || w > PLOT_MAX_SIDE || h > PLOT_MAX_SIDE) {
    mt_seterr("%s: image of %dx%d pixels is out of range (max %d a side)", fn, w, h, PLOT_MAX_SIDE);
    return -1;
  }
  c->w = w; c->h = h;
  c->px = malloc((size_t)w * h * 3);
  if (!c->px) { mt_seterr("%s: out of memory", fn); return -1; }
  memset(c->px, 255, (size_t)w * h * 3);
  c->cx0 = 0; c->cy0 = 0; c->cx1 = w - 1; c->cy1 = h - 1;
  return 0;
}

static void clip_to(canvas *c, int x0, int y0, int x1, int y1) {
  c->cx0 = x0 < 0 ? 0 : x0;
  c->cy0 = y0 < 0 ? 0 : y0;
  c->cx1 = x1 >= c->w ? c->w - 1 : x1;
  c->cy1 = y1 >= c->h ? c->h - 1 : y1;
}
static void clip_reset(canvas *c) { clip_to(c, 0, 0, c->w - 1, c->h - 1); }

static void pset(canvas *c, int x, int y, rgb col) {
  if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1) return;
  unsigned char *p = c->px + ((size_t)y * c->w + x) * 3;
  p[0] = col.r; p[1] = col.g; p[2] = col.b;
}

static void pblend(canvas *c, int x, int y, rgb col, double a) {
  if (a <= 0) return;
  if (x < c->cx0 || x > c->cx1 || y < c->cy0 || y > c->cy1) return;
  unsigned char *p = c->px + ((size_t)y * c->w + x) * 3;
  if (a >= 1) { p[0] = col.r; p[1] = col.g; p[2] = col.b; return; }
  p[0] = mix8(p[0], col.r, a); p[1] = mix8(p[1], col.g, a); p[2] = mix8(p[2], col.b, a);
}

/* filled rectangle, corners inclusive */
static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, rgb col) {
  if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
  if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
  if (x0 < c->cx0) x0 = c->cx0;
  if (y0 < c->cy0) y0 = c->cy0;
  if (x1 > c->cx1) x1 = c->cx1;
  if (y1 > c->cy1) y1 = c->cy1;
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) pset(c, x, y, col);
}

static void hline(canvas *c, int x0, int x1, int y, rgb col) { fill_rect(c, x0, y, x1, y, col); }
static void vline(canvas *c, int x, int y0, int y1, rgb col) { fill_rect(c, x, y0, x, y1, col); }
static void rect_outline(canvas *c, int x0, int y0, int x1, int y1, rgb col) {
  hline(c, x0, x1, y0, col); hline(c, x0, x1, y1, col);
  vline(c, x0, y0, y1, col); vline(c, x1, y0, y1, col);
}

/* Liang-Barsky: clip segment to a box; 0 when nothing is left */
static int clip_segment(double *x0, double *y0, double *x1, double *y1,
                        double bx0, double by0, double bx1, double by1) {
  double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
  double p[4] = {-dx, dx, -dy, dy};
  double q[4] = {*x0 - bx0, bx1 - *x0, *y0 - by0, by1 - *y0};
  for (int i = 0; i < 4; i++) {
    if (p[i] == 0) { if (q[i] < 0) return 0; continue; }
    double r = q[i] / p[i];
    if (p[i] < 0) { if (r > t1) return 0; if (r > t0) t0 = r; }
    else { if (r < t0) return 0; if (r < t1) t1 = r; }
  }
  double ax = *x0 + t0 * dx, ay = *y0 + t0 * dy;
  *x1 = *x0 + t1 * dx; *y1 = *y0 + t1 * dy;
  *x0 = ax; *y0 = ay;
  return 1;
}

static double seg_dist(double px, double py, double x0, double y0, double x1, double y1) {
  double dx = x1 - x0, dy = y1 - y0, l2 = dx * dx + dy * dy, t = 0;
  if (l2 > 0) {
    t = ((px - x0) * dx + (py - y0) * dy) / l2;
    if (t < 0) t = 0;
    if (t > 1) t = 1;
  }
  double ex = x0 + t * dx - px, ey = y0 + t * dy - py;
  return sqrt(ex * ex + ey * ey);
}

/* anti-aliased segment of width w: coverage falls off over the last pixel */
static void aa_segment(canvas *c, double x0, double y0, double x1, double y1, double w, rgb col) {
  if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
  double r = w / 2, m = r + 2;
  if (!clip_segment(&x0, &y0, &x1, &y1, c->cx0 - m, c->cy0 - m, c->cx1 + m, c->cy1 + m)) return;
  double dx = x1 - x0, dy = y1 - y0, len = sqrt(dx * dx + dy * dy);
  int steep = fabs(dy) > fabs(dx);
  /* walk the major axis; scan the minor axis across the stroke's thickness */
  double a0 = steep ? y0 : x0, a1 = steep ? y1 : x1, b0 = steep ? x0 : y0;
  double da = steep ? dy : dx, db = steep ? dx : dy;
  double lo = fmin(a0, a1) - r - 1, hi = fmax(a0, a1) + r + 1;
  double half = (r + 1) * (fabs(da) > 0 ? len / fabs(da) : 1) + 1;
  for (int a = (int)floor(lo); a <= (int)ceil(hi); a++) {
    double t = fabs(da) > 0 ? (a - a0) / da : 0;
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double bc = b0 + t * db;
    for (int b = (int)floor(bc - half); b <= (int)ceil(bc + half); b++) {
      int px = steep ? b : a, py = steep ? a : b;
      double d = seg_dist(px, py, x0, y0, x1, y1);
      double cov = r + 0.5 - d;
      if (cov > 0) pblend(c, px, py, col, cov > 1 ? 1 : cov);
    }
  }
}

static void aa_disc(canvas *c, double cx, double cy, double r, rgb col) {
  if (!isfinite(cx) || !isfinite(cy)) return;
  if (cx < c->cx0 - r - 1 || cx > c->cx1 + r + 1 || cy < c->cy0 - r - 1 || cy > c->cy1 + r + 1) return;
  for (int y = (int)floor(cy - r - 1); y <= (int)ceil(cy + r + 1); y++)
    for (int x = (int)floor(cx - r - 1); x <= (int)ceil(cx + r + 1); x++) {
      double d = sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
      double cov = r + 0.5 - d;
      if (cov > 0) pblend(c, x, y, col, cov > 1 ? 1 : cov);
    }
}

/* ---------------------------------------------------------------- text */

/* Text is UTF-8; each code point takes one glyph cell, non-ASCII ones show '?'.
   A line of text at scale s is TEXT_H(s) tall; capitals fill the top CAP_H(s). */
#define TEXT_H(s) (PLOT_GLYPH_H * (s))
#define CAP_H(s) (7 * (s))
#define MAX_LABEL 160          /* bytes kept of any one label */

static int text_len(const char *s) {
  int n = 0;
  for (; s && *s; s++) if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

static int text_w(const char *s, int sc) {
  int n = text_len(s);
  return n ? (n * PLOT_GLYPH_ADVANCE - 1) * sc : 0;
}

/* rot = 0: (x, y) is the top-left corner, text runs right.
   rot = 1: turned 90 degrees anticlockwise, reading upwards; (x, y) is the
   bottom-left corner of the turned box (glyph tops face left). */
static void draw_text(canvas *c, int x, int y, const char *s, int sc, rgb col, int rot) {
  int pen = 0;
  for (; s && *s; s++) {
    unsigned char b = (unsigned char)*s;
    if ((b & 0xC0) == 0x80) continue;
    const char *const *g = plot_font_glyph(b < 128 ? b : '?');
    for (int gy = 0; gy < PLOT_GLYPH_H; gy++)
      for (int gx = 0; gx < PLOT_GLYPH_W; gx++) {
        if (g[gy][gx] != '#') continue;
        int tx = pen + gx * sc, ty = gy * sc;
        if (!rot) fill_rect(c, x + tx, y + ty, x + tx + sc - 1, y + ty + sc - 1, col);
        else fill_rect(c, x + ty, y - tx - sc + 1, x + ty + sc - 1, y - tx, col);
      }
    pen += PLOT_GLYPH_ADVANCE * sc;
  }
}

/* horizontal text anchored at (x, y): ha 0 left / 1 centre / 2 right;
   va 0 top / 1 middle of the capitals / 2 bottom of the descenders */
static void text_at(canvas *c, const char *s, int sc, rgb col, int x, int y, int ha, int va) {
  int w = text_w(s, sc);
  x -= ha == 1 ? w / 2 : ha == 2 ? w : 0;
  y -= va == 1 ? CAP_H(sc) / 2 : va == 2 ? TEXT_H(sc) : 0;
  draw_text(c, x, y, s, sc, col, 0);
}

/* upward text whose capitals are centred on column x; along the text
   ha 0 starts at y (going up) / 1 centred on y / 2 ends at y */
static void vtext_at(canvas *c, const char *s, int sc, rgb col, int x, int y, int ha) {
  int w = text_w(s, sc);
  int y0 = ha == 0 ? y : ha == 1 ? y + w / 2 : y + w - 1;
  draw_text(c, x - CAP_H(sc) / 2, y0, s, sc, col, 1);
}

/* copy s into dst (cap bytes) keeping at most maxw pixels at scale sc;
   cut labels end in ".." */
static void fit_text(char *dst, size_t cap, const char *s, int sc, int maxw) {
  if (!s) s = "";
  size_t n = 0;
  int len = 0;
  int maxn = maxw / (PLOT_GLYPH_ADVANCE * sc);   /* glyphs that fit, roughly */
  if ((maxw + sc) / (PLOT_GLYPH_ADVANCE * sc) > maxn) maxn = (maxw + sc) / (PLOT_GLYPH_ADVANCE * sc);
  int total = text_len(s);
  int keep = total <= maxn ? total : maxn - 2;
  if (keep < 0) keep = 0;
  for (const char *p = s; *p && n + 4 < cap; p++) {
    unsigned char b = (unsigned char)*p;
    if ((b & 0xC0) != 0x80) { if (len == keep) break; len++; }
    dst[n++] = (char)b;
  }
  /* don't leave half a UTF-8 sequence */
  while (n > 0 && ((unsigned char)dst[n - 1] & 0xC0) == 0xC0) n--;
  if (total > keep && maxn >= 2) { dst[n++] = '.'; dst[n++] = '.'; }
  dst[n] = 0;
}

/* ---------------------------------------------------------------- numbers and ticks */

/* tick label for v on a grid of spacing step: as few digits as the grid needs */
static void fmt_num(char *buf, size_t n, double v, double step) {
  double a = fabs(v);
  if (step > 0 && a < step * 1e-6) { snprintf(buf, n, "0"); return; }
  if (a >= 1e6 || (a < 1e-4 && a > 0) || (step > 0 && step < 1e-5)) {
    int e = (int)floor(log10(a));
    int d = step > 0 ? e - (int)floor(log10(step) + 1e-9) : 2;
    if (d < 0) d = 0;
    if (d > 6) d = 6;
    double m = v / pow(10, e);
    if (fabs(m) >= 10 - 0.5 * pow(10, -d)) { m /= 10; e++; }
    snprintf(buf, n, "%.*fe%d", d, m, e);
    return;
  }
  int d = step > 0 ? -(int)floor(log10(step) + 1e-9) : 3;
  if (d < 0) d = 0;
  if (d > 8) d = 8;
  snprintf(buf, n, "%.*f", d, v);
  if (strcmp(buf, "-0") == 0 || (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1)))
    memmove(buf, buf + 1, strlen(buf));
}

/* the 1, 2, 5 x 10^k nearest (geometrically) to range/target */
static double nice_step(double range, int target) {
  if (!(range > 0) || target < 1) return 1;
  double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
  return (f < 1.42 ? 1 : f < 3.17 ? 2 : f < 7.08 ? 5 : 10) * mag;
}

/* the smallest of 1, 2, 5, 10, 20, ... above k */
static int next_125(int k) {
  for (long m = 1;; m *= 10)
    for (int i = 0; i < 3; i++) {
      long v = m * (i == 0 ? 1 : i == 1 ? 2 : 5);
      if (v > k) return v > 1000000000 ? 1000000000 : (int)v;
    }
}

#define MAX_TICKS PLOT_MAX_TICKS
typedef struct {
  double lo, hi;                 /* range of the axis (log10 of values when log) */
  int log;
  int integer;                   /* ticks on whole numbers only */
  int n;
  double pos[MAX_TICKS];         /* in axis units */
  char lab[MAX_TICKS][32];
  double step;
} axis_t;

static void axis_ticks(axis_t *a, int target) {
  if (target < 2) target = 2;
  a->n = 0;
  if (a->log) {
    /* whole decades when the range holds at least two of them */
    double lo = ceil(a->lo - 1e-9), hi = floor(a->hi + 1e-9);
    if (hi - lo >= 1) {
      double st = nice_step(a->hi - a->lo, target);
      if (st < 1) st = 1;
      st = round(st);
      for (double k = ceil(lo / st) * st; k <= hi && a->n < MAX_TICKS; k += st) {
        a->pos[a->n] = k;
        if (k >= -3 && k <= 4) fmt_num(a->lab[a->n], 32, pow(10, k), pow(10, k));
        else snprintf(a->lab[a->n], 32, "1e%d", (int)k);
        a->n++;
      }
      a->step = st;
      return;
    }
    /* under two decades: nice values, placed logarithmically */
    double vlo = pow(10, a->lo), vhi = pow(10, a->hi);
    double st = nice_step(vhi - vlo, target);
    for (double v = ceil(vlo / st) * st; v <= vhi * (1 + 1e-12) && a->n < MAX_TICKS; v += st) {
      if (v <= 0) continue;
      a->pos[a->n] = log10(v);
      fmt_num(a->lab[a->n], 32, v, st);
      a->n++;
    }
    a->step = st;
    return;
  }
  double st = nice_step(a->hi - a->lo, target);
  if (!isfinite(st) || !(st > 0)) return;
  if (a->integer && st < 1) st = 1;
  /* the tolerance keeps float-rounded ends (0.1f) on the grid */
  double first = ceil(a->lo / st - 1e-6);
  for (int i = 0; a->n < MAX_TICKS; i++) {
    double v = (first + i) * st;
    if (v > a->hi + st * 1e-6) break;
    if (fabs(v) < st * 1e-9) v = 0;
    a->pos[a->n] = v;
    fmt_num(a->lab[a->n], 32, v, st);
    a->n++;
  }
  a->step = st;
}

/* set the range from data extremes, padded by frac of the span on each side */
static void axis_range(axis_t *a, double dmin, double dmax, double frac) {
  if (a->log) { dmin = log10(dmin); dmax = log10(dmax); }
  /* keep the span and its padding finite even for data near DBL_MAX */
  if (dmin < -1e307) dmin = -1e307;
  if (dmax > 1e307) dmax = 1e307;
  if (!(dmax > dmin)) {
    double d = a->log ? 0.5 : (fabs(dmin) > 0 ? fabs(dmin) * 0.1 : 0.5);
    dmin -= d; dmax += d;
  }
  double pad = (dmax - dmin) * frac;
  a->lo = dmin - pad; a->hi = dmax + pad;
}

/* fixed ends from the options: exactly [lo, hi] plus a 2% margin on each fixed side; a free
   side keeps the data's end */
static void axis_limits(axis_t *a, int has_lo, double lo, int has_hi, double hi) {
  if (!has_lo && !has_hi) return;
  if (a->log) { lo = log10(lo); hi = log10(hi); }
  double L = has_lo ? lo : a->lo, H = has_hi ? hi : a->hi;
  if (!(H > L)) {                /* the data lie wholly beyond the one fixed end */
    if (has_lo) H = L + (a->log ? 1 : fabs(L) > 0 ? fabs(L) : 1);
    else L = H - (a->log ? 1 : fabs(H) > 0 ? fabs(H) : 1);
  }
  double m = (H - L) * 0.02;
  a->lo = has_lo ? L - m : L;
  a->hi = has_hi ? H + m : H;
}

static double axis_frac(const axis_t *a, double v) {
  if (a->log) v = v > 0 ? log10(v) : -INFINITY;
  return (v - a->lo) / (a->hi - a->lo);
}

static int axis_labw(const axis_t *a, int sc) {
  int w = 0;
  for (int i = 0; i < a->n; i++) { int t = text_w(a->lab[i], sc); if (t > w) w = t; }
  return w;
}

/* ---------------------------------------------------------------- colour scale */

typedef struct {
  double vmin, vmax;
  int cmap;
} cscale;

/* choose map and limits: user limits win; AUTO picks diverging for data across 0 */
static void cscale_init(cscale *cs, double dmin, double dmax, const plot_opts *o) {
  int cmap = o->cmap;
  double lo = dmin, hi = dmax;
  int have = isfinite(dmin) && isfinite(dmax);
  if (cmap == PLOT_CMAP_AUTO) {
    double l = o->has_vmin ? o->vmin : lo, h = o->has_vmax ? o->vmax : hi;
    cmap = have && l < 0 && h > 0 ? PLOT_CMAP_DIVERGING : PLOT_CMAP_VIRIDIS;
  }
  if (!have) { lo = 0; hi = 1; }
  if (cmap == PLOT_CMAP_DIVERGING) {
    double m = fmax(fabs(lo), fabs(hi));
    if (o->has_vmin && !o->has_vmax) m = fabs(o->vmin);
    if (o->has_vmax && !o->has_vmin) m = fabs(o->vmax);
    lo = -m; hi = m;
  }
  if (o->has_vmin) lo = o->vmin;
  if (o->has_vmax) hi = o->vmax;
  if (!(hi > lo)) {
    if (o->has_vmin && !o->has_vmax) hi = lo + 1;
    else if (o->has_vmax && !o->has_vmin) lo = hi - 1;
    else { double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 0.5; lo -= d; hi += d; }
  }
  if (lo < -1e307) lo = -1e307;      /* keep vmax - vmin finite */
  if (hi > 1e307) hi = 1e307;
  cs->vmin = lo; cs->vmax = hi; cs->cmap = cmap;
}

static rgb cscale_color(const cscale *cs, double v) {
  if (isnan(v)) return C_NAN;
  return cmap_eval(cs->cmap, (v - cs->vmin) / (cs->vmax - cs->vmin));
}

#define CBAR_W 18
#define CBAR_MIN_H 160

typedef struct {
  axis_t ax;
  char label[MAX_LABEL];
  int sc, width;
} cbar_t;

static void cbar_layout(cbar_t *cb, const cscale *cs, int height, const char *label, int sc) {
  memset(&cb->ax, 0, sizeof cb->ax);
  cb->ax.lo = cs->vmin; cb->ax.hi = cs->vmax;
  int target = height / 40;
  if (target > 8) target = 8;
  axis_ticks(&cb->ax, target);
  cb->sc = sc;
  fit_text(cb->label, sizeof cb->label, label, sc, height);
  cb->width = CBAR_W + 4 + 4 + axis_labw(&cb->ax, sc) + (cb->label[0] ? 10 + TEXT_H(sc) : 0);
}

static void cbar_draw(canvas *c, const cbar_t *cb, const cscale *cs, int x, int y0, int y1) {
  for (int y = y0; y <= y1; y++) {
    double t = y1 > y0 ? (double)(y1 - y) / (y1 - y0) : 0;
    hline(c, x, x + CBAR_W - 1, y, cmap_eval(cs->cmap, t));
  }
  rect_outline(c, x - 1, y0 - 1, x + CBAR_W, y1 + 1, C_AXIS);
  int lw = axis_labw(&cb->ax, cb->sc);
  for (int i = 0; i < cb->ax.n; i++) {
    double f = (cb->ax.pos[i] - cb->ax.lo) / (cb->ax.hi - cb->ax.lo);
    int y = (int)lrint(y1 - f * (y1 - y0));
    hline(c, x + CBAR_W, x + CBAR_W + 3, y, C_AXIS);
    text_at(c, cb->ax.lab[i], cb->sc, C_INK, x + CBAR_W + 7, y, 0, 1);
  }
  if (cb->label[0])
    vtext_at(c, cb->label, cb->sc, C_INK, x + CBAR_W + 8 + lw + 10 + CAP_H(cb->sc) / 2, (y0 + y1) / 2, 1);
}

/* ---------------------------------------------------------------- legend */

enum { LEG_LINE, LEG_BOX, LEG_DOT };
typedef struct { const char *label; rgb col; int dashed; } leg_item;

#define LEG_ROW 16
#define LEG_MAXW 220

/* width of the legend box; max_h as for legend_draw, which may end in "(+N more)" */
static int legend_width(const leg_item *it, int n, int sc, int max_h) {
  int w = 0;
  char buf[MAX_LABEL];
  for (int i = 0; i < n; i++) {
    fit_text(buf, sizeof buf, it[i].label, sc, LEG_MAXW);
    int t = text_w(buf, sc);
    if (t > w) w = t;
  }
  if (n > (max_h - 8) / LEG_ROW) {
    snprintf(buf, sizeof buf, "(+%d more)", n);
    if (text_w(buf, sc) - 28 > w) w = text_w(buf, sc) - 28;
  }
  return 8 + 22 + 6 + w + 8;
}

/* rows that fit in max_h; the last one says how many were left out */
static void legend_draw(canvas *c, const leg_item *it, int n, int kind, int sc, int x, int y,
                        int width, int max_h) {
  int rows = n, fit = (max_h - 8) / LEG_ROW;
  if (fit < 1) fit = 1;
  if (rows > fit) rows = fit;
  int h = rows * LEG_ROW + 8;
  fill_rect(c, x, y, x + width - 1, y + h - 1, C_WHITE);
  rect_outline(c, x, y, x + width - 1, y + h - 1, C_LEGEND_EDGE);
  char buf[MAX_LABEL];
  for (int i = 0; i < rows; i++) {
    int cy = y + 4 + i * LEG_ROW + LEG_ROW / 2;
    if (i == rows - 1 && rows < n) {
      snprintf(buf, sizeof buf, "(+%d more)", n - rows + 1);
      text_at(c, buf, sc, C_INK, x + 8, cy, 0, 1);
      break;
    }
    int sx = x + 8;
    if (kind == LEG_LINE && it[i].dashed) {
      for (int d = 0; d < 22; d += 9) aa_segment(c, sx + d, cy, sx + (d + 5 < 22 ? d + 5 : 22), cy, 2.0, it[i].col);
    } else if (kind == LEG_LINE) {
      aa_segment(c, sx, cy, sx + 22, cy, 2.0, it[i].col);
    } else if (kind == LEG_BOX) {
      fill_rect(c, sx + 5, cy - 5, sx + 16, cy + 5, it[i].col);
    } else {
      aa_disc(c, sx + 11, cy, 4, it[i].col);
    }
    fit_text(buf, sizeof buf, it[i].label, sc, LEG_MAXW);
    text_at(c, buf, sc, C_INK, sx + 28, cy, 0, 1);
  }
}

/* ---------------------------------------------------------------- the axes frame */

/* Text sizes: tick labels and axis labels at scale 1, titles at scale 2. */
#define SC_TICK 1
#define SC_LABEL 1
#define SC_TITLE 2
#define TICK_LEN 5

typedef struct {
  int W, H;
  int x0, y0, x1, y1;            /* plot area, inclusive */
  axis_t ax, ay;
  char title[256], xlabel[MAX_LABEL], ylabel[MAX_LABEL];
  /* category x axis (bars): labels centred on n slots */
  int ncat;
  const char *const *catlab;
  int cat_rot, cat_stride, cat_w;
} frame_t;

static int title_h(const frame_t *f) { return f->title[0] ? TEXT_H(SC_TITLE) + 12 : 0; }

/* x tick labels of a category axis: horizontal when they fit their slot, else
   turned upright, and every k-th only when even that is too tight */
static void cat_layout(frame_t *f, int slot_px) {
  int maxw = 0;
  char buf[MAX_LABEL];
  for (int i = 0; i < f->ncat; i++) {
    const char *s = f->catlab ? f->catlab[i] : NULL;
    char num[16];
    if (!s) { snprintf(num, sizeof num, "%d", i + 1); s = num; }
    fit_text(buf, sizeof buf, s, SC_TICK, 120);
    int w = text_w(buf, SC_TICK);
    if (w > maxw) maxw = w;
  }
  f->cat_rot = maxw + 6 > slot_px;
  int need = f->cat_rot ? TEXT_H(SC_TICK) + 2 : maxw + 6;
  f->cat_stride = slot_px > 0 ? (need + slot_px - 1) / slot_px : 1;
  if (f->cat_stride < 1) f->cat_stride = 1;
  f->cat_w = f->cat_rot ? maxw : TEXT_H(SC_TICK);
}

/* margins from the texts: fills x0..y1 given W, H and extra right width */
static void frame_layout(frame_t *f, int right_extra) {
  int left = 10 + (f->ylabel[0] ? TEXT_H(SC_LABEL) + 10 : 0) + axis_labw(&f->ay, SC_TICK) + TICK_LEN + 5;
  int xtick_h = f->ncat ? f->cat_w : TEXT_H(SC_TICK);
  int bottom = TICK_LEN + 5 + xtick_h + (f->xlabel[0] ? 10 + TEXT_H(SC_LABEL) : 0) + 10;
  int top = 14 + title_h(f);
  int right = 24 + right_extra;
  f->x0 = left; f->x1 = f->W - right;
  f->y0 = top; f->y1 = f->H - bottom;
}

static double map_x(const frame_t *f, double v) {
  return f->x0 + axis_frac(&f->ax, v) * (f->x1 - f->x0);
}
static double map_y(const frame_t *f, double v) {
  return f->y1 - axis_frac(&f->ay, v) * (f->y1 - f->y0);
}

/* y ticks: about one per 75 px */
static void frame_yticks(frame_t *f) {
  int target = (f->y1 - f->y0) / 75;
  if (target > 10) target = 10;
  axis_ticks(&f->ay, target);
}

/* x ticks: about one per 100 px, fewer while labels would touch */
static void frame_xticks(frame_t *f) {
  int target = (f->x1 - f->x0) / 100;
  if (target > 10) target = 10;
  for (; target >= 2; target--) {
    axis_ticks(&f->ax, target);
    int ok = 1;
    for (int i = 1; i < f->ax.n && ok; i++) {
      double a = map_x(f, f->ax.log ? pow(10, f->ax.pos[i - 1]) : f->ax.pos[i - 1]);
      double b = map_x(f, f->ax.log ? pow(10, f->ax.pos[i]) : f->ax.pos[i]);
      int need = (text_w(f->ax.lab[i - 1], SC_TICK) + text_w(f->ax.lab[i], SC_TICK)) / 2 + 12;
      if (b - a < need) ok = 0;
    }
    if (ok) return;
  }
  axis_ticks(&f->ax, 2);
}

static void frame_grid(canvas *c, const frame_t *f, int vertical) {
  for (int i = 0; i < f->ay.n; i++) {
    int y = (int)lrint(f->y1 - (f->ay.pos[i] - f->ay.lo) / (f->ay.hi - f->ay.lo) * (f->y1 - f->y0));
    if (y > f->y0 && y < f->y1) hline(c, f->x0 + 1, f->x1 - 1, y, C_GRID);
  }
  if (!vertical) return;
  for (int i = 0; i < f->ax.n; i++) {
    int x = (int)lrint(f->x0 + (f->ax.pos[i] - f->ax.lo) / (f->ax.hi - f->ax.lo) * (f->x1 - f->x0));
    if (x > f->x0 && x < f->x1) vline(c, x, f->y0 + 1, f->y1 - 1, C_GRID);
  }
}

/* minor log ticks at 2..9 x 10^k when whole decades are labelled */
static void minor_log_ticks(canvas *c, const frame_t *f) {
  if (!f->ay.log || f->ay.n < 2 || f->ay.step != 1) return;
  for (int k = (int)floor(f->ay.lo); k <= (int)ceil(f->ay.hi); k++)
    for (int m = 2; m <= 9; m++) {
      double p = k + log10(m);
      if (p <= f->ay.lo || p >= f->ay.hi) continue;
      int y = (int)lrint(f->y1 - (p - f->ay.lo) / (f->ay.hi - f->ay.lo) * (f->y1 - f->y0));
      hline(c, f->x0 - 3, f->x0 - 1, y, C_AXIS);
    }
}

static void frame_decorate(canvas *c, frame_t *f) {
  clip_reset(c);
  rect_outline(c, f->x0, f->y0, f->x1, f->y1, C_AXIS);
  for (int i = 0; i < f->ay.n; i++) {
    int y = (int)lrint(f->y1 - (f->ay.pos[i] - f->ay.lo) / (f->ay.hi - f->ay.lo) * (f->y1 - f->y0));
    hline(c, f->x0 - TICK_LEN, f->x0 - 1, y, C_AXIS);
    text_at(c, f->ay.lab[i], SC_TICK, C_INK, f->x0 - TICK_LEN - 4, y, 2, 1);
  }
  minor_log_ticks(c, f);
  int ty = f->y1 + TICK_LEN + 5;
  if (f->ncat) {
    double slot = (double)(f->x1 - f->x0) / f->ncat;
    char buf[MAX_LABEL], num[16];
    for (int i = 0; i < f->ncat; i += f->cat_stride) {
      int x = (int)lrint(f->x0 + (i + 0.5) * slot);
      const char *s = f->catlab ? f->catlab[i] : NULL;
      if (!s) { snprintf(num, sizeof num, "%d", i + 1); s = num; }
      fit_text(buf, sizeof buf, s, SC_TICK, 120);
      vline(c, x, f->y1 + 1, f->y1 + TICK_LEN, C_AXIS);
      if (f->cat_rot) vtext_at(c, buf, SC_TICK, C_INK, x, ty, 2);
      else text_at(c, buf, SC_TICK, C_INK, x, ty, 1, 0);
    }
  } else {
    for (int i = 0; i < f->ax.n; i++) {
      int x = (int)lrint(f->x0 + (f->ax.pos[i] - f->ax.lo) / (f->ax.hi - f->ax.lo) * (f->x1 - f->x0));
      vline(c, x, f->y1 + 1, f->y1 + TICK_LEN, C_AXIS);
      text_at(c, f->ax.lab[i], SC_TICK, C_INK, x, ty, 1, 0);
    }
  }
  int xtick_h = f->ncat ? f->cat_w : TEXT_H(SC_TICK);
  if (f->xlabel[0])
    text_at(c, f->xlabel, SC_LABEL, C_INK, (f->x0 + f->x1) / 2, ty + xtick_h + 10, 1, 0);
  if (f->ylabel[0])
    vtext_at(c, f->ylabel, SC_LABEL, C_INK, 10 + CAP_H(SC_LABEL) / 2, (f->y0 + f->y1) / 2, 1);
  if (f->title[0]) {
    int w = text_w(f->title, SC_TITLE), x = (f->x0 + f->x1) / 2 - w / 2;
    if (x + w > f->W - 8) x = f->W - 8 - w;
    if (x < 8) x = 8;
    text_at(c, f->title, SC_TITLE, C_INK, x, 14, 0, 0);
  }
}

/* copy the texts of the options, trimmed to what the canvas can hold */
static void frame_texts(frame_t *f, const plot_opts *o, int maxw) {
  fit_text(f->title, sizeof f->title, o->title, SC_TITLE, maxw);
  fit_text(f->xlabel, sizeof f->xlabel, o->xlabel, SC_LABEL, maxw);
  fit_text(f->ylabel, sizeof f->ylabel, o->ylabel, SC_LABEL, 600);
}

/* once the plot area is known: axis labels are centred on it and must not
   run off the canvas, the title must fit across */
static void frame_fit_texts(frame_t *f, const plot_opts *o) {
  int xm = (f->x0 + f->x1) / 2, ym = (f->y0 + f->y1) / 2;
  int wx = 2 * (xm < f->W - xm ? xm : f->W - xm) - 16;
  int wy = 2 * (ym < f->H - ym ? ym : f->H - ym) - 16;
  fit_text(f->title, sizeof f->title, o->title, SC_TITLE, f->W - 16);
  fit_text(f->xlabel, sizeof f->xlabel, o->xlabel, SC_LABEL, wx);
  fit_text(f->ylabel, sizeof f->ylabel, o->ylabel, SC_LABEL, wy);
}

/* write the PNG; its errors ("plot: ...") are renamed after the caller */
static int finish(canvas *c, const char *path, const char *fn) {
  int r = plot_write_png(path, c->px, c->w, c->h);
  free(c->px);
  c->px = NULL;
  if (r && strncmp(mt_error(), "plot: ", 6) == 0) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", mt_error() + 6);
    mt_seterr("%s: %s", fn, tmp);
  }
  return r;
}

static int check_path(const char *fn, const char *path) {
  if (!path || !*path) { mt_seterr("%s: empty output path", fn); return -1; }
  return 0;
}

static const plot_opts no_opts;

static int check_limits(const char *fn, const plot_opts *o) {
  if ((o->has_vmin && !isfinite(o->vmin)) || (o->has_vmax && !isfinite(o->vmax))) {
    mt_seterr("%s: vmin and vmax must be finite numbers", fn);
    return -1;
  }
  if (o->has_vmin && o->has_vmax && !(o->vmax > o->vmin)) {
    mt_seterr("%s: vmin (%g) must be below vmax (%g)", fn, o->vmin, o->vmax);
    return -1;
  }
  return 0;
}

static int check_axis_limits(const char *fn, const plot_opts *o) {
  const char *name[2] = {"x", "y"};
  int has[2][2] = {{o->has_xmin, o->has_xmax}, {o->has_ymin, o->has_ymax}};
  double v[2][2] = {{o->xmin, o->xmax}, {o->ymin, o->ymax}};
  for (int k = 0; k < 2; k++) {
    for (int e = 0; e < 2; e++)
      if (has[k][e] && !isfinite(v[k][e])) {
        mt_seterr("%s: the %s limits must be finite numbers", fn, name[k]);
        return -1;
      }
    if (has[k][0] && has[k][1] && !(v[k][1] > v[k][0])) {
      mt_seterr("%s: the %s limits must rise (%g, %g)", fn, name[k], v[k][0], v[k][1]);
      return -1;
    }
  }
  if (o->logy && ((o->has_ymin && !(o->ymin > 0)) || (o->has_ymax && !(o->ymax > 0)))) {
    mt_seterr("%s: the y limits of a log axis must be positive", fn);
    return -1;
  }
  for (int i = 0; i < o->n_hlines; i++)
    if (!o->hlines || !isfinite(o->hlines[i])) {
      mt_seterr("%s: reference line %d is not a finite number", fn, i + 1);
      return -1;
    }
  return 0;
}

/* what was drawn, for callers that check it */
static void report_axes(const frame_t *f, const plot_opts *o) {
  plot_axes *a = o->axes;
  if (!a) return;
  a->xlo = f->ax.lo; a->xhi = f->ax.hi; a->ylo = f->ay.lo; a->yhi = f->ay.hi;
  a->nx = f->ncat ? 0 : f->ax.n;
  a->ny = f->ay.n;
  for (int i = 0; i < a->nx; i++) a->xticks[i] = f->ax.log ? pow(10, f->ax.pos[i]) : f->ax.pos[i];
  for (int i = 0; i < a->ny; i++) a->yticks[i] = f->ay.log ? pow(10, f->ay.pos[i]) : f->ay.pos[i];
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---------------------------------------------------------------- heatmap */

#define HM_MAX_SIDE 1000        /* larger matrices are sampled to this many pixels */

/* is 0-based label i one to draw? tokens: every stride-th; indices: the first
   and the 1-based multiples of the stride (1, 5, 10, 15 ...) */
static int hm_shown(int i, int stride, int tokens) {
  if (stride <= 1) return 1;
  if (tokens || stride == 2) return i % stride == 0;
  return i == 0 || (i + 1) % stride == 0;
}

/* Prints each cell's value in it, dark on light cells and white on dark ones. One format for
   the whole map: integers as such, else two decimals below 10, one below 100, three
   significant digits beyond. all = 0: only when every cell has room (else nothing is printed);
   all = 1: in each cell that has room. Returns whether anything was printed. */
static int heatmap_values(canvas *cv, const float *values, int rows, int cols, int x0, int y0, double cellw,
                          double cellh, const cscale *cs, int all) {
  if (cellh < TEXT_H(SC_TICK) + 2) return 0;
  double m = 0;
  int integers = 1;
  for (size_t i = 0; i < (size_t)rows * cols; i++) {
    double v = values[i];
    if (!isfinite(v)) continue;
    if (fabs(v) > m) m = fabs(v);
    if (v != floor(v)) integers = 0;
  }
  const char *fmt = integers && m < 1e6 ? "%.0f" : m < 10 ? "%.2f" : m < 100 ? "%.1f" : "%.3g";
  char buf[32];
  for (int pass = all ? 1 : 0; pass < 2; pass++) {   /* pass 0: does every label fit? */
    int drawn = 0;
    for (int r = 0; r < rows; r++)
      for (int k = 0; k < cols; k++) {
        double v = values[(size_t)r * cols + k];
        if (!isfinite(v)) continue;
        snprintf(buf, sizeof buf, fmt, v);
        if (strcmp(buf, "-0") == 0 || strcmp(buf, "-0.00") == 0 || strcmp(buf, "-0.0") == 0) memmove(buf, buf + 1, strlen(buf));
        if (text_w(buf, SC_TICK) > cellw - 4) {
          if (pass == 0) return 0;
          continue;
        }
        if (pass == 0) continue;
        rgb bg = cscale_color(cs, v);
        double lum = 0.299 * bg.r + 0.587 * bg.g + 0.114 * bg.b;
        text_at(cv, buf, SC_TICK, lum > 140 ? C_INK : C_WHITE, (int)lrint(x0 + (k + 0.5) * cellw - 0.5),
                (int)lrint(y0 + (r + 0.5) * cellh - 0.5), 1, 1);
        drawn = 1;
      }
    if (pass == 1) return drawn;
  }
  return 0;
}

int plot_heatmap(const char *path, const float *values, int rows, int cols, const plot_opts *o) {
  const char *fn = "plot_heatmap";
  if (!o) o = &no_opts;
  if (check_path(fn, path)) return -1;
  if (!values || rows <= 0 || cols <= 0) {
    mt_seterr("%s: empty data (%d rows, %d columns)", fn, rows, cols);
    return -1;
  }
  if ((long long)rows * cols > (1LL << 28)) {
    mt_seterr("%s: %dx%d is too large to draw", fn, rows, cols);
    return -1;
  }
  if (o->xticks && o->n_xticks != cols) {
    mt_seterr("%s: %d column labels for %d columns", fn, o->n_xticks, cols);
    return -1;
  }
  if (o->yticks && o->n_yticks != rows) {
    mt_seterr("%s: %d row labels for %d rows", fn, o->n_yticks, rows);
    return -1;
  }
  if (check_limits(fn, o)) return -1;
  size_t N = (size_t)rows * cols;
  double dmin = INFINITY, dmax = -INFINITY;
  for (size_t i = 0; i < N; i++) {
    double v = values[i];
    if (!isfinite(v)) continue;
    if (v < dmin) dmin = v;
    if (v > dmax) dmax = v;
  }
  cscale cs;
  cscale_init(&cs, dmin, dmax, o);

  /* cell sizes: square cells filling about 640 px, each side at least ~240 px */
  int base_w = o->width > 0 ? clampi(o->width - 200, 100, HM_MAX_SIDE) : 640;
  int base_h = o->height > 0 ? clampi(o->height - 160, 100, HM_MAX_SIDE) : 640;
  int cw = clampi(base_w / cols, 1, 64), ch = clampi(base_h / rows, 1, 64);
  int s = cw < ch ? cw : ch;
  int cw2 = s, ch2 = s;
  if (cols * s < 240) cw2 = clampi((240 + cols - 1) / cols, s, 4 * s);
  if (rows * s < 240) ch2 = clampi((240 + rows - 1) / rows, s, 4 * s);
  cw = cw2; ch = ch2;
  int pw = cols * cw, ph = rows * ch;
  if (pw > HM_MAX_SIDE) pw = HM_MAX_SIDE;
  if (ph > HM_MAX_SIDE) ph = HM_MAX_SIDE;
  double cellw = (double)pw / cols, cellh = (double)ph / rows;

  /* labels: given strings or 1-based indices */
  char **xl = calloc((size_t)cols, sizeof *xl), **yl = calloc((size_t)rows, sizeof *yl);
  canvas cv = {0};
  int ret = -1;
  if (!xl || !yl) { mt_seterr("%s: out of memory", fn); goto out; }
  int xmaxw = 0, ymaxw = 0;
  for (int pass = 0; pass < 2; pass++) {
    int n = pass ? rows : cols;
    const char *const *given = pass ? o->yticks : o->xticks;
    char **dst = pass ? yl : xl;
    int *mw = pass ? &ymaxw : &xmaxw;
    for (int i = 0; i < n; i++) {
      char buf[MAX_LABEL], num[16];
      const char *src = given ? given[i] : NULL;
      if (!given) { snprintf(num, sizeof num, "%d", i + 1); src = num; }
      fit_text(buf, sizeof buf, src ? src : "", SC_TICK, 120);
      dst[i] = strdup(buf);
      if (!dst[i]) { mt_seterr("%s: out of memory", fn); goto out; }
      int w = text_w(buf, SC_TICK);
      if (w > *mw) *mw = w;
    }
  }
  /* which labels to show: every k-th token when cells are small; indices at
     1 and at multiples of a 1-2-5 stride */
  /* token labels lie flat when each has its cell plus a gap, else they stand upright (the same
     test as the stride below, so that a label never goes missing merely for lack of a gap) */
  int xrot = o->xticks && xmaxw + 8 > cellw;
  double xneed = xrot ? TEXT_H(SC_TICK) + 1 : o->xticks ? xmaxw + 8 : xmaxw + 24;
  double yneed = o->yticks ? TEXT_H(SC_TICK) + 1 : TEXT_H(SC_TICK) + 14;
  int xstride = 1, ystride = 1;
  while (xstride * cellw < xneed) xstride = o->xticks ? xstride + 1 : next_125(xstride);
  while (ystride * cellh < yneed) ystride = o->yticks ? ystride + 1 : next_125(ystride);

  frame_t f;
  memset(&f, 0, sizeof f);
  frame_texts(&f, o, 2000);
  cbar_t cb;
  int cbh = ph > CBAR_MIN_H ? ph : CBAR_MIN_H;
  cbar_layout(&cb, &cs, cbh, o->clabel, SC_TICK);

  int left = 10 + (f.ylabel[0] ? TEXT_H(SC_LABEL) + 10 : 0) + ymaxw + 3 + 5;
  int xlab_h = xrot ? xmaxw : TEXT_H(SC_TICK);
  int bottom = 3 + 5 + xlab_h + (f.xlabel[0] ? 10 + TEXT_H(SC_LABEL) : 0) + 10;
  int top = 14 + title_h(&f);
  int right = 24 + cb.width + 12;
  int extra = ph < CBAR_MIN_H ? (CBAR_MIN_H - ph + 1) / 2 : 0;  /* short maps: centre them on the bar */
  int W = left + pw + right, H = top + extra + ph + bottom;
  if (H < top + CBAR_MIN_H + 10) H = top + CBAR_MIN_H + 10;
  /* a title wider than the map widens the image, up to 900 px */
  int tw = text_w(f.title, SC_TITLE) + 16;
  if (tw > W) W = tw < 900 ? tw : (W > 900 ? W : 900);
  if (canvas_init(&cv, W, H, fn)) goto out;
  f.W = W; f.H = H;
  int x0 = left, y0 = top + extra;
  f.x0 = x0; f.x1 = x0 + pw - 1; f.y0 = y0; f.y1 = y0 + ph - 1;
  frame_fit_texts(&f, o);

  /* cells; a pixel standing for several cells shows their mean (NaNs aside) */
  for (int py = 0; py < ph; py++) {
    int r0 = (int)((long long)py * rows / ph), r1 = (int)((long long)(py + 1) * rows / ph);
    if (r1 <= r0) r1 = r0 + 1;
    for (int px = 0; px < pw; px++) {
      int c0 = (int)((long long)px * cols / pw), c1 = (int)((long long)(px + 1) * cols / pw);
      if (c1 <= c0) c1 = c0 + 1;
      double v = values[(size_t)r0 * cols + c0];
      if (r1 - r0 > 1 || c1 - c0 > 1) {
        double sum = 0;
        long cnt = 0;
        for (int r = r0; r < r1; r++)
          for (int k = c0; k < c1; k++) {
            double u = values[(size_t)r * cols + k];
            if (isfinite(u)) { sum += u; cnt++; }
          }
        v = cnt ? sum / cnt : NAN;
      }
      pset(&cv, x0 + px, y0 + py, cscale_color(&cs, v));
    }
  }
  rect_outline(&cv, x0 - 1, y0 - 1, x0 + pw, y0 + ph, C_AXIS);
  int values_shown = o->cell_values >= 0 && heatmap_values(&cv, values, rows, cols, x0, y0, cellw, cellh, &cs,
                                                           o->cell_values > 0);

  /* y labels (rows), then x labels (columns); each is skipped when it
     would crowd the one before */
  double last = -1e9;
  for (int i = 0; i < rows; i++) {
    if (!hm_shown(i, ystride, o->yticks != NULL)) continue;
    int y = (int)lrint(y0 + (i + 0.5) * cellh - 0.5);
    if (y - last < yneed) continue;
    last = y;
    hline(&cv, x0 - 4, x0 - 2, y, C_AXIS);
    text_at(&cv, yl[i], SC_TICK, C_INK, x0 - 7, y, 2, 1);
  }
  last = -1e9;
  for (int i = 0; i < cols; i++) {
    if (!hm_shown(i, xstride, o->xticks != NULL)) continue;
    int x = (int)lrint(x0 + (i + 0.5) * cellw - 0.5);
    int w = xrot ? TEXT_H(SC_TICK) : text_w(xl[i], SC_TICK);
    if (x - w / 2 < last + (xrot ? 1 : 6)) continue;
    last = x - w / 2 + w;
    vline(&cv, x, y0 + ph + 1, y0 + ph + 3, C_AXIS);
    if (xrot) vtext_at(&cv, xl[i], SC_TICK, C_INK, x, y0 + ph + 7, 2);
    else text_at(&cv, xl[i], SC_TICK, C_INK, x, y0 + ph + 7, 1, 0);
  }
  /* colour bar */
  int cbx = x0 + pw + 24;
  int cby0 = ph >= CBAR_MIN_H ? y0 : top, cby1 = ph >= CBAR_MIN_H ? y0 + ph - 1 : top + CBAR_MIN_H - 1;
  cbar_draw(&cv, &cb, &cs, cbx, cby0, cby1);
  /* texts */
  if (f.xlabel[0])
    text_at(&cv, f.xlabel, SC_LABEL, C_INK, x0 + pw / 2, y0 + ph + 7 + xlab_h + 10, 1, 0);
  if (f.ylabel[0])
    vtext_at(&cv, f.ylabel, SC_LABEL, C_INK, 10 + CAP_H(SC_LABEL) / 2, y0 + ph / 2, 1);
  if (f.title[0]) {
    int w = text_w(f.title, SC_TITLE), x = x0 + pw / 2 - w / 2;
    if (x + w > W - 8) x = W - 8 - w;
    if (x < 8) x = 8;
    text_at(&cv, f.title, SC_TITLE, C_INK, x, 14, 0, 0);
  }
  if (o->axes) {
    memset(o->axes, 0, sizeof *o->axes);
    o->axes->xlo = 0.5; o->axes->xhi = cols + 0.5; o->axes->ylo = 0.5; o->axes->yhi = rows + 0.5;
    o->axes->cell_values = values_shown;
    o->axes->xstride = xstride; o->axes->ystride = ystride; o->axes->xrot = xrot;
  }
  ret = finish(&cv, path, fn);
out:
  free(cv.px);
  if (xl) for (int i = 0; i < cols; i++) free(xl[i]);
  if (yl) for (int i = 0; i < rows; i++) free(yl[i]);
  free(xl); free(yl);
  return ret;
}

/* ---------------------------------------------------------------- line, scatter, bar */

/* canvas size from the hint or the default, plus room on the right */
static void frame_size(frame_t *f, const plot_opts *o, int defw, int defh, int right_extra) {
  f->W = o->width > 0 ? clampi(o->width, 200, PLOT_MAX_SIDE) : defw + right_extra;
  f->H = o->height > 0 ? clampi(o->height, 160, PLOT_MAX_SIDE) : defh;
}

/* margins depend on the y labels' widths and those on the plot height: settle both */
static void frame_settle(frame_t *f, int right_extra) {
  frame_layout(f, right_extra);
  for (int k = 0; k < 2; k++) {
    frame_yticks(f);
    frame_layout(f, right_extra);
  }
}

static int frame_check(const frame_t *f, const char *fn) {
  if (f->x1 - f->x0 < 40 || f->y1 - f->y0 < 40) {
    mt_seterr("%s: a %dx%d image leaves no room for the plot", fn, f->W, f->H);
    return -1;
  }
  return 0;
}

static int usable(double x, double y, int logy) {
  return isfinite(x) && isfinite(y) && (!logy || y > 0);
}

/* The frame of a plot with two numeric axes (line, scatter): default size, title and labels,
 * data ranges padded by `xpad` and 5% of y, then the user's limits and integer ticks. */
static void frame_xy(frame_t *f, const plot_opts *o, int defw, int defh, int right, int logy,
                     double xmin, double xmax, double xpad, double ymin, double ymax) {
  memset(f, 0, sizeof *f);
  frame_size(f, o, defw, defh, right);
  frame_texts(f, o, f->W - 20);
  f->ay.log = logy;
  f->ax.integer = o->xinteger;
  f->ay.integer = o->yinteger;
  axis_range(&f->ax, xmin, xmax, xpad);
  axis_range(&f->ay, ymin, ymax, 0.05);
  axis_limits(&f->ax, o->has_xmin, o->xmin, o->has_xmax, o->xmax);
  axis_limits(&f->ay, o->has_ymin, o->ymin, o->has_ymax, o->ymax);
}

int plot_line(const char *path, const plot_series *series, int n_series, const plot_opts *o) {
  const char *fn = "plot_line";
  if (!o) o = &no_opts;
  if (check_path(fn, path)) return -1;
  if (!series || n_series <= 0) { mt_seterr("%s: no series to plot", fn); return -1; }
  if (check_axis_limits(fn, o)) return -1;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  int nleg = 0;
  for (int s = 0; s < n_series; s++) {
    const plot_series *S = &series[s];
    if (!S->y || S->n <= 0) { mt_seterr("%s: series %d is empty", fn, s + 1); return -1; }
    for (int i = 0; i < S->n; i++) {
      double x = S->x ? S->x[i] : i + 1, y = S->y[i];
      if (!usable(x, y, o->logy)) continue;
      xmin = fmin(xmin, x); xmax = fmax(xmax, x);
      ymin = fmin(ymin, y); ymax = fmax(ymax, y);
    }
    if (S->label && *S->label) nleg++;
  }
  for (int k = 0; k < o->n_hlines; k++) {
    if (o->logy && !(o->hlines[k] > 0)) continue;
    ymin = fmin(ymin, o->hlines[k]); ymax = fmax(ymax, o->hlines[k]);
    if (o->hline_labels && o->hline_labels[k] && *o->hline_labels[k]) nleg++;
  }
  if (!(xmin <= xmax)) {
    mt_seterr(o->logy ? "%s: no positive finite values to plot on a log axis"
                        : "%s: no finite values to plot", fn);
    return -1;
  }
  leg_item *leg = calloc((size_t)(nleg ? nleg : 1), sizeof *leg);
  if (!leg) { mt_seterr("%s: out of memory", fn); return -1; }
  int k = 0;
  for (int s = 0; s < n_series; s++)
    if (series[s].label && *series[s].label) {
      leg[k].label = series[s].label; leg[k].col = palette[s % 10]; k++;
    }
  for (int h = 0; h < o->n_hlines; h++)   /* reference lines take the colours after the series' */
    if (o->hline_labels && o->hline_labels[h] && *o->hline_labels[h] && !(o->logy && !(o->hlines[h] > 0))) {
      leg[k].label = o->hline_labels[h]; leg[k].col = palette[(n_series + h) % 10]; leg[k].dashed = 1; k++;
    }
  int lw = nleg ? legend_width(leg, nleg, SC_TICK, (o->height > 0 ? o->height : 520) - 100) + 14 : 0;
  frame_t f;
  frame_xy(&f, o, 760, 520, lw, o->logy, xmin, xmax, 0.03, ymin, ymax);
  frame_settle(&f, lw);
  canvas cv = {0};
  if (frame_check(&f, fn) || canvas_init(&cv, f.W, f.H, fn)) { free(leg); return -1; }
  frame_xticks(&f);
  frame_fit_texts(&f, o);
  frame_grid(&cv, &f, 1);
  clip_to(&cv, f.x0 + 1, f.y0 + 1, f.x1 - 1, f.y1 - 1);
  for (int s = 0; s < n_series; s++) {
    const plot_series *S = &series[s];
    rgb col = palette[s % 10];
    int marks = o->markers > 0 || (o->markers == 0 && S->n <= 25);
    double px = 0, py = 0;
    int have = 0;
    for (int i = 0; i < S->n; i++) {
      double x = S->x ? S->x[i] : i + 1, y = S->y[i];
      if (!usable(x, y, o->logy)) { have = 0; continue; }
      double qx = map_x(&f, x), qy = map_y(&f, y);
      if (have) aa_segment(&cv, px, py, qx, qy, 2.0, col);
      /* a point with no neighbour on either side would vanish: mark it */
      int next = i + 1 < S->n && usable(S->x ? S->x[i + 1] : i + 2, S->y[i + 1], o->logy);
      if (marks || (!have && !next)) aa_disc(&cv, qx, qy, 3.0, col);
      px = qx; py = qy; have = 1;
    }
  }
  for (int h = 0; h < o->n_hlines; h++) {   /* dashed: 8 px on, 5 off */
    if (o->logy && !(o->hlines[h] > 0)) continue;
    double y = map_y(&f, o->hlines[h]);
    for (int x = f.x0 + 1; x < f.x1; x += 13)
      aa_segment(&cv, x, y, x + 8 < f.x1 ? x + 8 : f.x1 - 1, y, 1.6, palette[(n_series + h) % 10]);
  }
  frame_decorate(&cv, &f);
  if (nleg) legend_draw(&cv, leg, nleg, LEG_LINE, SC_TICK, f.x1 + 14, f.y0, lw - 14, f.y1 - f.y0);
  free(leg);
  report_axes(&f, o);
  return finish(&cv, path, fn);
}

#define MAX_CATS 64

int plot_scatter(const char *path, const double *x, const double *y, const double *c, int n,
                 const plot_opts *o) {
  const char *fn = "plot_scatter";
  if (!o) o = &no_opts;
  if (check_path(fn, path)) return -1;
  if (!x || !y || n <= 0) { mt_seterr("%s: empty data (%d points)", fn, n); return -1; }
  if (check_limits(fn, o) || check_axis_limits(fn, o)) return -1;
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  double cmin = INFINITY, cmax = -INFINITY;
  for (int i = 0; i < n; i++) {
    if (!usable(x[i], y[i], 0)) continue;
    xmin = fmin(xmin, x[i]); xmax = fmax(xmax, x[i]);
    ymin = fmin(ymin, y[i]); ymax = fmax(ymax, y[i]);
    if (c && isfinite(c[i])) { cmin = fmin(cmin, c[i]); cmax = fmax(cmax, c[i]); }
  }
  if (!(xmin <= xmax)) { mt_seterr("%s: no finite points to plot", fn); return -1; }

  /* categories in order of first appearance; too many of them are only annotations */
  const char *cats[MAX_CATS];
  int ncat = 0, many = 0;
  unsigned char *cat = NULL;
  if (o->categories) {
    cat = malloc((size_t)n);
    if (!cat) { mt_seterr("%s: out of memory", fn); return -1; }
    for (int i = 0; i < n && !many; i++) {
      const char *s = o->categories[i] ? o->categories[i] : "";
      int k = 0;
      while (k < ncat && strcmp(cats[k], s) != 0) k++;
      if (k == ncat) {
        if (ncat == MAX_CATS) { many = 1; break; }
        cats[ncat++] = s;
      }
      cat[i] = (unsigned char)k;
    }
  }
  int bycat = o->categories && !many && !c;
  leg_item leg[MAX_CATS];
  int nleg = bycat ? ncat : 0;
  for (int k = 0; k < nleg; k++) { leg[k].label = cats[k]; leg[k].col = palette[k % 10]; }

  cscale cs;
  cbar_t cb;
  int right = 0;
  if (c) {
    cscale_init(&cs, cmin, cmax, o);
    cbar_layout(&cb, &cs, (o->height > 0 ? o->height : 560) - 100, o->clabel, SC_TICK);
    right = cb.width + 20;
  } else if (nleg) {
    right = legend_width(leg, nleg, SC_TICK, (o->height > 0 ? o->height : 540) - 100) + 14;
  }
  frame_t f;
  frame_xy(&f, o, 700, 560, right, 0, xmin, xmax, 0.05, ymin, ymax);
  frame_settle(&f, right);
  if (c) {     /* the bar's ticks follow the plot's real height; its width may change */
    cbar_layout(&cb, &cs, f.y1 - f.y0, o->clabel, SC_TICK);
    if (cb.width + 20 > right) {
      if (!(o->width > 0)) f.W += cb.width + 20 - right;
      right = cb.width + 20;
      frame_settle(&f, right);
    }
  }
  canvas cv = {0};
  if (frame_check(&f, fn) || canvas_init(&cv, f.W, f.H, fn)) { free(cat); return -1; }
  frame_xticks(&f);
  frame_fit_texts(&f, o);
  frame_grid(&cv, &f, 1);
  clip_to(&cv, f.x0 + 1, f.y0 + 1, f.x1 - 1, f.y1 - 1);
  double r = n <= 200 ? 4 : n <= 2000 ? 3 : 2;
  for (int i = 0; i < n; i++) {
    if (!usable(x[i], y[i], 0)) continue;
    rgb col = c ? cscale_color(&cs, c[i]) : bycat ? palette[cat[i] % 10] : palette[0];
    /* near-white points of the diverging map get a grey rim to stay visible */
    if (c && cs.cmap == PLOT_CMAP_DIVERGING) aa_disc(&cv, map_x(&f, x[i]), map_y(&f, y[i]), r + 1, C_NAN);
    aa_disc(&cv, map_x(&f, x[i]), map_y(&f, y[i]), r, col);
  }
  if (o->categories && o->annotate) {
    char buf[MAX_LABEL];
    for (int i = 0; i < n; i++) {
      if (!usable(x[i], y[i], 0)) continue;
      fit_text(buf, sizeof buf, o->categories[i], SC_TICK, 120);
      text_at(&cv, buf, SC_TICK, C_INK, (int)lrint(map_x(&f, x[i]) + r + 2),
              (int)lrint(map_y(&f, y[i]) - r), 0, 1);
    }
  }
  frame_decorate(&cv, &f);
  if (c) {
    cbar_draw(&cv, &cb, &cs, f.x1 + 20, f.y0, f.y1);
  } else if (nleg) {
    legend_draw(&cv, leg, nleg, LEG_DOT, SC_TICK, f.x1 + 14, f.y0, right - 14, f.y1 - f.y0);
  }
  free(cat);
  report_axes(&f, o);
  return finish(&cv, path, fn);
}

int plot_bar(const char *path, const double *values, int n_series, int n, const char *const *labels,
             const plot_opts *o) {
  const char *fn = "plot_bar";
  if (!o) o = &no_opts;
  if (check_path(fn, path)) return -1;
  if (!values || n_series <= 0 || n <= 0) {
    mt_seterr("%s: empty data (%d series of %d bars)", fn, n_series, n);
    return -1;
  }
  if ((long long)n_series * n > (1 << 24)) { mt_seterr("%s: too many bars", fn); return -1; }
  if (check_axis_limits(fn, o)) return -1;
  double vmin = 0, vmax = 0;
  int any = 0;
  for (size_t i = 0; i < (size_t)n_series * n; i++) {
    if (!isfinite(values[i])) continue;
    any = 1;
    vmin = fmin(vmin, values[i]); vmax = fmax(vmax, values[i]);
  }
  if (!any) { mt_seterr("%s: no finite values to plot", fn); return -1; }
  leg_item *leg = NULL;
  int nleg = o->series_names ? n_series : 0, right = 0;
  if (nleg) {
    leg = calloc((size_t)nleg, sizeof *leg);
    if (!leg) { mt_seterr("%s: out of memory", fn); return -1; }
    for (int s = 0; s < nleg; s++) {
      leg[s].label = o->series_names[s] ? o->series_names[s] : "";
      leg[s].col = palette[s % 10];
    }
    right = legend_width(leg, nleg, SC_TICK, (o->height > 0 ? o->height : 540) - 100) + 14;
  }
  frame_t f;
  memset(&f, 0, sizeof f);
  frame_size(&f, o, clampi(n * (n_series * 14 + 12) + 140, 520, 1400), 500, right);
  frame_texts(&f, o, f.W - 20);
  /* zero is always on the axis; pad only the sides that hold bars */
  double span = vmax - vmin;
  if (!(span > 0)) span = 1, vmax = vmin + 1;
  f.ay.lo = vmin < 0 ? vmin - 0.05 * span : 0;
  f.ay.hi = vmax > 0 ? vmax + 0.05 * span : 0;
  f.ay.integer = o->yinteger;
  axis_limits(&f.ay, o->has_ymin, o->ymin, o->has_ymax, o->ymax);
  f.ncat = n;
  f.catlab = labels;
  f.cat_w = TEXT_H(SC_TICK);
  frame_settle(&f, right);
  cat_layout(&f, (f.x1 - f.x0) / n);
  frame_settle(&f, right);
  canvas cv = {0};
  if (frame_check(&f, fn) || canvas_init(&cv, f.W, f.H, fn)) { free(leg); return -1; }
  frame_fit_texts(&f, o);
  frame_grid(&cv, &f, 0);
  clip_to(&cv, f.x0 + 1, f.y0 + 1, f.x1 - 1, f.y1 - 1);
  double slot = (double)(f.x1 - f.x0) / n, bw = slot * 0.8 / n_series;
  int zy = (int)lrint(map_y(&f, 0));
  for (int i = 0; i < n; i++)
    for (int s = 0; s < n_series; s++) {
      double v = values[(size_t)s * n + i];
      if (!isfinite(v)) continue;
      double left = f.x0 + i * slot + 0.1 * slot + s * bw;
      int a = (int)lrint(left), b = (int)lrint(left + bw) - (bw >= 4 ? 1 : 0);
      if (b < a) b = a;
      int vy = (int)lrint(map_y(&f, v));
      if (vy == zy) continue;
      fill_rect(&cv, a, vy, b, vy < zy ? zy - 1 : zy + 1, palette[s % 10]);
    }
  clip_reset(&cv);
  if (zy > f.y0 && zy < f.y1) hline(&cv, f.x0, f.x1, zy, C_AXIS);
  frame_decorate(&cv, &f);
  if (nleg) legend_draw(&cv, leg, nleg, LEG_BOX, SC_TICK, f.x1 + 14, f.y0, right - 14, f.y1 - f.y0);
  free(leg);
  report_axes(&f, o);
  return finish(&cv, path, fn);
}
