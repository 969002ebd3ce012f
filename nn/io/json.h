/* The JSON codec of milua: safetensors headers, model configs kept in
   checkpoint metadata, and (through bindings/json.c) the Lua module milua.json
   that reads and writes results files. Plain C, no Lua.

   Parsing builds a tree of mt_json values. The parser is strict RFC 8259:
   UTF-8 input only, no trailing commas, no comments, no NaN/Infinity; string
   escapes (\uXXXX with surrogate pairs included) are decoded to UTF-8. A value
   nested in more than MT_JSON_MAX_DEPTH arrays/objects is an error, never a
   stack overflow. Any byte sequence gives either a tree or NULL with a message
   in err naming the first problem and its byte: "expected ',' or '}' at byte
   17" (line and column added when the text has several lines).

   Writing appends to an mt_jbuf, a growable byte buffer. A tree writes back as
   it was read, numbers included: an integer as an integer, a float so that it
   reads back as the same double and still as a float ("2.0", "0.1", "1e+20").

   Memory: mt_json_parse and mt_json_new return a tree the caller owns and frees
   with mt_json_free; every string and array in it belongs to the tree. */
#ifndef MT_JSON_H
#define MT_JSON_H
#include <stddef.h>
#include <stdint.h>

#define MT_JSON_MAX_DEPTH 512

typedef enum {
  MT_JSON_NULL, MT_JSON_BOOL, MT_JSON_NUMBER, MT_JSON_STRING, MT_JSON_ARRAY, MT_JSON_OBJECT
} mt_json_type;

/* A parsed value. Read it through the accessors below or directly; never
   modify it. Strings are NUL-terminated but may contain NUL bytes (\u0000):
   `len` is authoritative. */
typedef struct mt_json {
  mt_json_type type;
  int boolean;              /* MT_JSON_BOOL */
  int is_int;               /* MT_JSON_NUMBER written as an integer that fits int64 */
  int64_t integer;          /* exact value when is_int */
  double number;            /* MT_JSON_NUMBER (also set when is_int) */
  char *str;                /* MT_JSON_STRING */
  size_t len;               /* string bytes, or number of array items / object members */
  struct mt_json *items;    /* array items, object member values (len of them) */
  char **keys;              /* object member names (len of them), in file order */
  size_t *keylens;
} mt_json;

/* Parse n bytes at s (need not be NUL-terminated). Returns the root or NULL
   with a message like "expected ':' at byte 12" in err (errlen bytes, may be 0). */
mt_json *mt_json_parse(const char *s, size_t n, char *err, size_t errlen);
void mt_json_free(mt_json *v);              /* NULL-safe; frees the whole tree */

const char *mt_json_type_name(mt_json_type t);   /* "null", "boolean", "number", ... */
/* NULL when v is not an object or has no such key; the first of duplicates */
const mt_json *mt_json_get(const mt_json *obj, const char *key);
/* NULL when v is not an array/object or i is out of range (i is 0-based) */
const mt_json *mt_json_at(const mt_json *v, size_t i);
const char *mt_json_key(const mt_json *obj, size_t i);
size_t mt_json_len(const mt_json *v);       /* items or members; 0 for scalars */
/* typed accessors: `def` (or NULL) when v is NULL or of another type */
double mt_json_number(const mt_json *v, double def);
int mt_json_bool(const mt_json *v, int def);
const char *mt_json_string(const mt_json *v, size_t *len);
/* 0 and *out set when v is an integer number (exact); -1 otherwise */
int mt_json_int(const mt_json *v, int64_t *out);
/* convenience for configs: mt_json_get + typed accessor */
double mt_json_get_number(const mt_json *obj, const char *key, double def);
int mt_json_get_bool(const mt_json *obj, const char *key, int def);
const char *mt_json_get_string(const mt_json *obj, const char *key, const char *def);

/* index of the first byte of s that is not part of valid UTF-8, or n */
size_t mt_utf8_check(const char *s, size_t n);

/* ---- writing ---- */
typedef struct {
  char *data;               /* NUL-terminated while !failed */
  size_t len, cap;
  int failed;               /* set on out of memory; later appends do nothing */
} mt_jbuf;

#define MT_JBUF_INIT {NULL, 0, 0, 0}
void mt_jbuf_free(mt_jbuf *b);
void mt_jbuf_put(mt_jbuf *b, const char *s, size_t n);
void mt_jbuf_puts(mt_jbuf *b, const char *s);
void mt_jbuf_printf(mt_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a quoted, escaped JSON string; -1 (nothing written) if s is not valid UTF-8 */
int mt_jbuf_string(mt_jbuf *b, const char *s, size_t n);
/* a float: the shortest text that reads back to the same double and looks like
   a float ("2.0", "0.30000000000000004", "1e-07"); non-finite values as null */
void mt_jbuf_number(mt_jbuf *b, double v);
void mt_jbuf_int(mt_jbuf *b, int64_t v);
/* compact serialization of a tree: 0, or -1 if b ran out of memory */
int mt_json_write(mt_jbuf *b, const mt_json *v);
/* indented by `indent` per level (NULL or "" is compact): each member of an
   object on its own line as "key": value, an array of scalars on one line
   ([1, 2.5, "a"]), an array holding arrays or objects one item per line */
int mt_json_write_indented(mt_jbuf *b, const mt_json *v, const char *indent);
/* malloc'd NUL-terminated text of a tree (len optional), NULL on out of memory */
char *mt_json_dump(const mt_json *v, size_t *len);

/* ---- building a tree to write ----
   mt_json_new gives a null root; each mt_json_set_* turns one null node into a
   value (a string is copied). An array or object comes with n null items (and
   n keys, written as "" until set) to fill in place, so a tree half built is still whole and
   mt_json_free releases it. The int-returning calls give -1 on out of memory,
   leaving the node null. */
mt_json *mt_json_new(void);
int mt_json_set_array(mt_json *v, size_t n);
int mt_json_set_object(mt_json *v, size_t n);
int mt_json_set_key(mt_json *obj, size_t i, const char *k, size_t n);
int mt_json_set_string(mt_json *v, const char *s, size_t n);
void mt_json_set_int(mt_json *v, int64_t x);
void mt_json_set_number(mt_json *v, double x);
void mt_json_set_bool(mt_json *v, int x);

#endif
