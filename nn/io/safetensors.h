/* safetensors files: named tensors plus string metadata, the format PyTorch,
   NumPy and TransformerLens read. Plain C, no Lua.

   Layout: an 8-byte little-endian header length N, N bytes of JSON
   {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}, ...}
   padded with spaces to a multiple of 8, then the raw little-endian data;
   data_offsets are relative to the start of the data.

   Writing: F32 and I32 tensors of any strides (written contiguous), in the
   order given; metadata always carries "format": "pt". The file is written to
   PATH.tmp.<host>.<pid>, fsync'ed and renamed over PATH, so a crash never
   leaves a half-written file; on error the temporary file is removed. A
   temporary that a killed writer left is removed by the next save of PATH on
   the same host once its process is gone.

   Reading validates the whole header against the file before reading data:
   sizes, JSON, every entry's dtype/shape/data_offsets. F32 and I32 load as they
   are; F64, F16 and BF16 convert to float32; I64, I16, I8, U64, U32, U16, U8
   and BOOL convert to int32 (a value that does not fit is an error). Tensors
   whose byte ranges overlap are rejected (empty tensors overlap nothing); gaps
   and trailing bytes after the last tensor are accepted. Duplicate names, and
   names or metadata containing a NUL character (\u0000), are rejected.

   Errors return NULL / -1 with mt_error() like
   "load: model.safetensors: truncated file (...)". */
#ifndef MT_SAFETENSORS_H
#define MT_SAFETENSORS_H
#include <stddef.h>
#include "core/tensor.h"

#define MT_ST_MAX_HEADER (100u * 1000 * 1000)   /* bytes, as the reference implementation */

typedef struct {
  int n;                  /* tensors, in header order */
  char **names;
  mt_tensor **tensors;    /* owned: mt_st_free drops them; take your own mt_ref to keep one */
  int nmeta;              /* metadata pairs, in header order */
  char **meta_keys;
  char **meta_values;
} mt_st_file;

mt_st_file *mt_st_load(const char *path);
/* the same from a buffer in memory; label names it in messages */
mt_st_file *mt_st_load_mem(const char *label, const void *data, size_t size);
void mt_st_free(mt_st_file *f);                           /* NULL-safe */
mt_tensor *mt_st_get(const mt_st_file *f, const char *name);    /* borrowed, NULL if absent */
const char *mt_st_meta(const mt_st_file *f, const char *key);    /* NULL if absent */

/* names[i] -> tensors[i] (n of them), metadata keys[i] -> values[i] (nmeta;
   both may be NULL when nmeta is 0). A "format" key, if given, must be "pt".
   Names and metadata must be valid UTF-8, names unique and not "__metadata__". */
int mt_st_save(const char *path, int n, const char *const *names, mt_tensor *const *tensors,
               int nmeta, const char *const *keys, const char *const *values);

#endif
