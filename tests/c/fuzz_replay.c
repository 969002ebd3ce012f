/* Replays the fuzz corpora (tests/fuzz/corpus/<harness>/) through the libFuzzer harnesses
   of tests/fuzz/, built here with the suite's compiler and sanitizers: every input found by
   `make fuzz` that once crashed, and the seeds, must pass through in seconds. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"

#define FUZZ_ENTRY fuzz_safetensors
#include "../fuzz/safetensors.c"
#undef FUZZ_ENTRY
#define FUZZ_ENTRY fuzz_json
#include "../fuzz/json.c"
#undef FUZZ_ENTRY

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, len = 0;
  unsigned char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *n = len;
  return buf;
}

/* runs every file of dir through entry; returns how many */
static int replay(const char *dir, int (*entry)(const uint8_t *, size_t)) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t len = 0;
    unsigned char *buf = slurp(path, &len);
    if (!buf) continue;
    entry(buf, len);   /* a failing input aborts (or ASan stops) the test */
    free(buf);
    n++;
  }
  closedir(d);
  return n;
}

int main(void) {
  int a = replay("tests/fuzz/corpus/safetensors", fuzz_safetensors);
  tap_ok(a >= 10, "the safetensors corpus replays without a crash (%d inputs)", a);
  int b = replay("tests/fuzz/corpus/json", fuzz_json);
  tap_ok(b >= 10, "the JSON corpus replays without a crash (%d inputs)", b);
  return tap_done();
}
