/* libFuzzer harness of the JSON codec (nn/io/json.c): any bytes either parse or are refused
   with a message. What parses is written back, and the text milua writes parses again to a
   tree that writes the same bytes (the writer's output is a fixed point); the indented
   writing of it is the same document. `make fuzz` builds it with clang's libFuzzer, ASan
   and UBSan; tests/c/fuzz_replay.c replays the corpus in tests/fuzz/corpus/json in `make
   check`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/json.h"

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

static void json_fail(const char *what) {
  fprintf(stderr, "fuzz_json: %s\n", what);
  abort();
}

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
  char err[256] = "";
  mt_json *v = mt_json_parse((const char *)data, size, err, sizeof err);
  if (!v) {
    if (!err[0]) json_fail("a refusal without a message");
    return 0;
  }
  size_t n1 = 0, n2 = 0;
  char *text = mt_json_dump(v, &n1);
  if (!text) json_fail("a parsed tree cannot be written");
  mt_json *w = mt_json_parse(text, n1, err, sizeof err);
  if (!w) json_fail("the writer's output does not parse");
  char *again = mt_json_dump(w, &n2);
  if (!again || n1 != n2 || memcmp(text, again, n1) != 0) json_fail("writing is not a fixed point");
  free(again);
  /* the indented text is the same document */
  mt_jbuf ib = MT_JBUF_INIT;
  if (mt_json_write_indented(&ib, v, "  ")) json_fail("a parsed tree cannot be written indented");
  mt_json *u = mt_json_parse(ib.data, ib.len, err, sizeof err);
  if (!u) json_fail("the indented output does not parse");
  again = mt_json_dump(u, &n2);
  if (!again || n1 != n2 || memcmp(text, again, n1) != 0) json_fail("indenting changes the document");
  free(again);
  mt_json_free(u);
  mt_jbuf_free(&ib);
  free(text);
  mt_json_free(w);
  mt_json_free(v);
  return 0;
}
