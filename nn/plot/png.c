/* PNG output through libpng: 8-bit RGB, no time chunk, fixed compression, so
   the same pixels always give the same bytes. The file is written under a
   temporary name next to the target and renamed into place. */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "plot/plot.h"
#include "core/error.h"

/* libpng reports errors here; we keep the message and unwind to setjmp */
static void png_on_error(png_structp png, png_const_charp msg) {
  mt_seterr("plot: PNG encoder: %s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* returns 1 on success; the caller closes fp */
static int png_encode(FILE *fp, const unsigned char *rgb, int w, int h) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_error, png_on_warning);
  if (!png) { mt_seterr("plot: cannot create a PNG writer (out of memory?)"); return 0; }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    mt_seterr("plot: cannot create a PNG writer (out of memory?)");
    return 0;
  }
  png_bytep *rows = malloc((size_t)h * sizeof *rows);
  if (!rows) {
    png_destroy_write_struct(&png, &info);
    mt_seterr("plot: out of memory");
    return 0;
  }
  for (int y = 0; y < h; y++) rows[y] = (png_bytep)(rgb + (size_t)y * w * 3);
  /* nothing set below is read after a longjmp, so no volatile is needed */
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(rows);
    return 0;
  }
  png_init_io(png, fp);
  png_set_compression_level(png, 6);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(rows);
  return 1;
}

int plot_write_png(const char *path, const unsigned char *rgb, int w, int h) {
  if (!path || !*path) { mt_seterr("plot: empty output path"); return -1; }
  if (!rgb || w <= 0 || h <= 0) { mt_seterr("plot: empty image (%dx%d)", w, h); return -1; }
  size_t n = strlen(path) + 48;
  char *tmp = malloc(n);
  if (!tmp) { mt_seterr("plot: out of memory"); return -1; }
  int fd = -1;
  for (int k = 0; k < 100 && fd < 0; k++) {
    snprintf(tmp, n, "%s.tmp%ld.%d", path, (long)getpid(), k);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    mt_seterr("plot: cannot write '%s': %s", path, strerror(errno));
    free(tmp);
    return -1;
  }
  FILE *fp = fdopen(fd, "wb");
  if (!fp) {
    mt_seterr("plot: cannot write '%s': %s", path, strerror(errno));
    close(fd); unlink(tmp); free(tmp);
    return -1;
  }
  int ok = png_encode(fp, rgb, w, h);
  if (ok && (fflush(fp) != 0 || ferror(fp))) {
    mt_seterr("plot: cannot write '%s': %s", path, strerror(errno));
    ok = 0;
  }
  if (fclose(fp) != 0 && ok) {
    mt_seterr("plot: cannot write '%s': %s", path, strerror(errno));
    ok = 0;
  }
  if (ok && rename(tmp, path) != 0) {
    mt_seterr("plot: cannot rename to '%s': %s", path, strerror(errno));
    ok = 0;
  }
  if (!ok) unlink(tmp);
  free(tmp);
  return ok ? 0 : -1;
}
