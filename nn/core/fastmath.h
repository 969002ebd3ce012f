/* GELU and exp on GCC vector extensions, eight floats at a time (portable to
   any target GCC or clang supports): the scalar libm erff/expf cost a third of
   a training step. Accuracy: |GELU error| < 5e-7, |GELU' error| < 3e-7. */
#ifndef MT_FASTMATH_H
#define MT_FASTMATH_H
#include <stdint.h>
#include <string.h>

/* eight lanes: one AVX register, or two SSE registers on the baseline build */
typedef float mt_v8f __attribute__((vector_size(32)));
typedef int32_t mt_v8i __attribute__((vector_size(32)));

static inline mt_v8f mt_v8_splat(float x) { return (mt_v8f){x, x, x, x, x, x, x, x}; }

/* hot array loops are compiled twice on x86-64, for AVX2+FMA and for the baseline,
   and the loader picks one for the machine (GCC function multiversioning) */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)   /* clang: the fuzz build */
#define MT_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MT_MULTIVERSION
#endif

/* e^x: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
   (truncation below 6e-9 relative), 2^k put into the exponent bits. Inputs are
   clamped to [-80, 88] so results stay normal floats (denormals are slow). */
static inline mt_v8f mt_v8_exp(mt_v8f x) {
  mt_v8f lo = mt_v8_splat(-80.0f), hi = mt_v8_splat(88.0f);
  mt_v8i below = x < lo, above = x > hi;
  x = (mt_v8f)(((mt_v8i)x & ~below) | ((mt_v8i)lo & below));
  x = (mt_v8f)(((mt_v8i)x & ~above) | ((mt_v8i)hi & above));
  /* round to nearest by the 1.5 * 2^23 trick */
  mt_v8f k = (x * 1.4426950408889634f + 12582912.0f) - 12582912.0f;
  mt_v8f r = x - k * 0.693145751953125f;   /* ln2 split in two: k*ln2 exact */
  r = r - k * 1.4286068203094172e-06f;
  mt_v8f p = mt_v8_splat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  mt_v8i ki = __builtin_convertvector(k, mt_v8i);
  return p * (mt_v8f)((ki + 127) << 23);
}

/* the standard normal CDF: erfc of |x|/sqrt2 by Abramowitz & Stegun 7.1.26
   (|error| < 1.5e-7), computing the tail directly so that 1 + erf(x) does not
   cancel for negative x, then q or 1 - q chosen by the sign bit */
static inline mt_v8f mt_v8_phi(mt_v8f x) {
  mt_v8i sign = (mt_v8i)x & (int32_t)0x80000000;
  mt_v8f a = (mt_v8f)((mt_v8i)x ^ sign) * 0.70710678118654752f;
  mt_v8f t = 1.0f / (1.0f + 0.3275911f * a);
  mt_v8f y = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  mt_v8f q = 0.5f * y * mt_v8_exp(-a * a);
  mt_v8i neg = sign != 0;
  return (mt_v8f)(((mt_v8i)q & neg) | ((mt_v8i)(1.0f - q) & ~neg));
}

static inline mt_v8f mt_v8_gelu(mt_v8f x) { return x * mt_v8_phi(x); }
/* gelu'(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi): the density's exponential is
   the one inside the erfc tail (e^(-a^2), a = |x|/sqrt2), so one exp serves both terms */
static inline mt_v8f mt_v8_dgelu(mt_v8f x) {
  mt_v8i sign = (mt_v8i)x & (int32_t)0x80000000;
  mt_v8f a = (mt_v8f)((mt_v8i)x ^ sign) * 0.70710678118654752f;
  mt_v8f t = 1.0f / (1.0f + 0.3275911f * a);
  mt_v8f y = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  mt_v8f e = mt_v8_exp(-a * a), q = 0.5f * y * e;
  mt_v8i neg = sign != 0;
  mt_v8f phi = (mt_v8f)(((mt_v8i)q & neg) | ((mt_v8i)(1.0f - q) & ~neg));
  return phi + x * e * 0.3989422804014327f;
}

/* array forms, one loop for all kinds: out = gelu(x), exp(x), or g * gelu'(x) */
enum { MT_MAP_GELU, MT_MAP_EXP, MT_MAP_DGELU };

static inline mt_v8f mt_v8_apply(int kind, mt_v8f x, mt_v8f g) {
  return kind == MT_MAP_GELU ? mt_v8_gelu(x) : kind == MT_MAP_EXP ? mt_v8_exp(x) : g * mt_v8_dgelu(x);
}

MT_MULTIVERSION __attribute__((unused)) static void mt_map_array(int kind, int64_t n, const float *x, const float *g,
                                                                 float *out) {
  mt_v8f v, w = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {   /* constant-size copies compile to plain vector loads and stores */
    memcpy(&v, x + i, sizeof v);
    if (g) memcpy(&w, g + i, sizeof w);
    v = mt_v8_apply(kind, v, w);
    memcpy(out + i, &v, sizeof v);
  }
  if (i < n) {
    size_t rest = sizeof(float) * (size_t)(n - i);
    v = (mt_v8f){0};
    memcpy(&v, x + i, rest);
    if (g) memcpy(&w, g + i, rest);
    v = mt_v8_apply(kind, v, w);
    memcpy(out + i, &v, rest);
  }
}

/* the same in fixed chunks across threads (g may be NULL for the one-input kinds) */
#define MT_CHUNK 16384
__attribute__((unused)) static void mt_map(int kind, int64_t n, const float *x, const float *g, float *out) {
#pragma omp parallel for schedule(static) if (n >= 2 * MT_CHUNK)
  for (int64_t c = 0; c < (n + MT_CHUNK - 1) / MT_CHUNK; c++) {
    int64_t i = c * MT_CHUNK, m = n - i < MT_CHUNK ? n - i : MT_CHUNK;
    mt_map_array(kind, m, x + i, g ? g + i : NULL, out + i);
  }
}

static inline float mt_gelu(float x) { return mt_v8_gelu(mt_v8_splat(x))[0]; }
static inline float mt_dgelu(float x) { return mt_v8_dgelu(mt_v8_splat(x))[0]; }
#endif
