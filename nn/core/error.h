/* The error convention of every library under nn/ (core, model, io, plot).

   A function that can fail returns NULL (or -1) and leaves one message here
   saying what was wrong, led by the name of the public function that failed
   ("plot_heatmap: 3 column labels for 2 columns"). Success leaves the channel
   as it was, so read it only right after a failure. The bindings raise the
   message as a Lua error. Nothing under nn/ prints or exits.

   The channel is one static buffer, not per thread: nn/ is entered from one
   thread at a time (its OpenMP loops run inside a call and report nothing). */
#ifndef MT_ERROR_H
#define MT_ERROR_H

void mt_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* the last message, or "unknown error" when none was ever set */
const char *mt_error(void);

#endif
