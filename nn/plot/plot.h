/* Raster plots written as PNG: heatmaps, line plots, scatters and bar charts.
   Plain C, no Lua. Each plot_* call renders one image and writes it to a
   temporary file in the target directory that is renamed into place, so a
   failed call never leaves a half-written PNG. Output bytes depend only on
   the inputs (no timestamps, fixed compression). Every function returns 0 on
   success or -1 with a message naming the function in mt_error() (the error
   channel of all of nn/, core/error.h); nothing is ever printed. */
#ifndef MT_PLOT_H
#define MT_PLOT_H

/* colour maps for heatmaps and scatter colour values */
enum { PLOT_CMAP_AUTO = 0,      /* diverging when the data span zero, else viridis */
       PLOT_CMAP_VIRIDIS = 1,   /* sequential, dark purple -> yellow */
       PLOT_CMAP_DIVERGING = 2  /* blue - white - red, white at 0 unless vmin/vmax say otherwise */
};

/* Options shared by all kinds; zero-initialise and set what you need.
   Fields a kind does not use are ignored. Strings are UTF-8; characters
   outside printable ASCII are drawn as '?'. */
typedef struct plot_opts {
  const char *title, *xlabel, *ylabel;
  int width, height;             /* canvas size hint in pixels; 0 = automatic */
  /* heatmap: labels of columns (x) and rows (y), e.g. tokens; NULL = 1-based indices */
  const char *const *xticks; int n_xticks;
  const char *const *yticks; int n_yticks;
  /* heatmap and scatter colours: fixed ends of the colour scale */
  int has_vmin, has_vmax; double vmin, vmax;
  int cmap;                      /* PLOT_CMAP_* */
  const char *clabel;            /* label of the colour bar */
  /* line */
  int logy;                      /* log10 y axis; non-positive values are skipped */
  int markers;                   /* line: 1 draw points, -1 never, 0 = only for short series */
  /* scatter: one category string per point (legend, one colour each), and
     annotate = 1 to write each point's category next to it */
  const char *const *categories;
  int annotate;
  /* bar: names of the series of a grouped chart (legend) */
  const char *const *series_names;
  /* line, scatter, bar: fixed ends of an axis (has_* = 1). The axis spans exactly [min, max]
     plus a 2% margin, whatever the data: an accuracy axis drawn from 0 to 1 shows one wrong
     answer in 2000 as the sliver it is. Points outside are clipped. */
  int has_xmin, has_xmax, has_ymin, has_ymax;
  double xmin, xmax, ymin, ymax;
  /* line, scatter, bar: ticks on whole numbers only (layers, heads, depths, lengths) */
  int xinteger, yinteger;
  /* line: horizontal reference lines (chance, a baseline), dashed and named in the legend;
     they count in the automatic y range */
  const double *hlines;
  const char *const *hline_labels;   /* NULL or n_hlines names (NULL entries: unnamed) */
  int n_hlines;
  /* heatmap: each cell's value printed in it. 0: when every cell has room for its text
     (small maps), 1: in every cell that has room, -1: never */
  int cell_values;
  /* filled in when not NULL: what was drawn (ranges, ticks, whether cell values were printed) */
  struct plot_axes *axes;
} plot_opts;

#define PLOT_MAX_TICKS 64
typedef struct plot_axes {
  double xlo, xhi, ylo, yhi;        /* the axes' ends (log10 units on a log axis) */
  int nx, ny;                       /* tick counts; category axes (bars) report nx = 0 */
  double xticks[PLOT_MAX_TICKS], yticks[PLOT_MAX_TICKS];
  int cell_values;                  /* heatmap: 1 when the values were printed */
  int xstride, ystride;             /* heatmap: every k-th column / row label is drawn */
  int xrot;                         /* heatmap: the column labels stand upright */
} plot_axes;

/* values: rows*cols floats, row-major (row 0 drawn at the top). NaN cells are grey. */
int plot_heatmap(const char *path, const float *values, int rows, int cols, const plot_opts *o);

/* one line of a line plot; x may be NULL for 1, 2, ..., n. Non-finite points break the line. */
typedef struct plot_series {
  const double *x, *y;
  int n;
  const char *label;             /* NULL: not in the legend */
} plot_series;
int plot_line(const char *path, const plot_series *series, int n_series, const plot_opts *o);

/* c: optional colour values (NULL: one colour, or one per category in o->categories) */
int plot_scatter(const char *path, const double *x, const double *y, const double *c, int n,
                 const plot_opts *o);

/* values: n_series*n doubles, row-major [series][group]; labels: n group names or NULL.
   Several series give grouped bars side by side; negative values hang below zero. */
int plot_bar(const char *path, const double *values, int n_series, int n, const char *const *labels,
             const plot_opts *o);

/* ---- lower level, shared by nn/plot/plot.c, nn/plot/png.c and nn/plot/font.c ---- */
/* write w*h RGB8 pixels (row-major, 3 bytes each) as a PNG, atomically */
/* its messages start "plot: "; the plot kinds put their own name there */
int plot_write_png(const char *path, const unsigned char *rgb, int w, int h);
/* the built-in font: each printable ASCII glyph is PLOT_GLYPH_H rows of
   PLOT_GLYPH_W '#'/'.' characters; cap height 7 rows, rows 7-8 descenders */
#define PLOT_GLYPH_W 5
#define PLOT_GLYPH_H 9
#define PLOT_GLYPH_ADVANCE 6
const char *const *plot_font_glyph(int c);   /* '?' for anything unprintable */

#endif
