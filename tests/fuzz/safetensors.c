/* libFuzzer harness of the safetensors reader (nn/io/safetensors.c): any bytes given to
   mt_st_load_mem either load or are refused with a message naming the file. What loads is
   checked to the end: every tensor's elements are read, names and metadata are NUL-free
   UTF-8, and a save and reload gives the same names, shapes and bits. `make fuzz` builds it
   with clang's libFuzzer, ASan and UBSan; tests/c/fuzz_replay.c replays the corpus in
   tests/fuzz/corpus/safetensors in `make check`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void fail(const char *what) {
  fprintf(stderr, "fuzz_safetensors: %s\n", what);
  abort();
}

/* names and tensors of b equal a's, bit for bit */
static void same_files(const mt_st_file *a, const mt_st_file *b) {
  if (a->n != b->n || a->nmeta > b->nmeta) fail("the reloaded file has other entries");
  for (int i = 0; i < a->n; i++) {
    const mt_tensor *x = a->tensors[i], *y = mt_st_get(b, a->names[i]);
    if (!y || x->ndim != y->ndim || x->dtype != y->dtype) fail("a tensor changed name, rank or dtype");
    for (int d = 0; d < x->ndim; d++) if (x->shape[d] != y->shape[d]) fail("a tensor changed shape");
    size_t bytes = (size_t)mt_numel(x) * mt_dtype_size(x->dtype);
    if (bytes && memcmp(mt_f32(x), mt_f32(y), bytes) != 0)   /* F32 and I32 only: 4-byte elements */ fail("a tensor changed its bits");
  }
  for (int i = 0; i < a->nmeta; i++) {
    const char *v = mt_st_meta(b, a->meta_keys[i]);
    if (!v || strcmp(v, a->meta_values[i]) != 0) fail("a metadata value changed");
  }
}

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
  mt_st_file *f = mt_st_load_mem("fuzz.safetensors", data, size);
  if (!f) {
    if (strncmp(mt_error(), "load: fuzz.safetensors", 22) != 0) fail("a refusal without a message naming the file");
    return 0;
  }
  double sink = 0;
  for (int i = 0; i < f->n; i++) {
    const mt_tensor *t = f->tensors[i];
    if (!t || !f->names[i]) fail("a loaded entry without a tensor or name");
    if (mt_utf8_check(f->names[i], strlen(f->names[i])) != strlen(f->names[i])) fail("a name is not UTF-8");
    int64_t n = mt_numel(t);
    for (int64_t k = 0; k < n; k++)   /* reads every element: ASan sees any short buffer */
      sink += t->dtype == MT_F32 ? (double)mt_f32(t)[k] : (double)mt_i32(t)[k];
  }
  for (int i = 0; i < f->nmeta; i++)
    if (!f->meta_keys[i] || !f->meta_values[i]) fail("a metadata entry without key or value");
  /* round trip for the small files that load; the writer refuses a "format" other than "pt" */
  const char *fmt = mt_st_meta(f, "format");
  if (size <= 1 << 16 && (!fmt || strcmp(fmt, "pt") == 0)) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/milua_fuzz_st_%d.safetensors", (int)getpid());
    if (mt_st_save(path, f->n, (const char *const *)f->names, f->tensors, f->nmeta,
                   (const char *const *)f->meta_keys, (const char *const *)f->meta_values) == 0) {
      mt_st_file *g = mt_st_load(path);
      if (!g) fail("a file milua wrote does not load");
      same_files(f, g);
      mt_st_free(g);
    }
    unlink(path);
  }
  mt_st_free(f);
  return sink != sink && 0;   /* keeps the reads from being optimised away */
}
