/* The error channel shared by all of nn/ (see core/error.h). */
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>

static char errbuf[1024];

void mt_seterr(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
}

const char *mt_error(void) { return errbuf[0] ? errbuf : "unknown error"; }
