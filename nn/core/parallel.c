/* Threads (core/parallel.h): the OpenMP thread count, the choice of GEMM engine, and the
   matrix product split into fixed row or column blocks, each one single-threaded GEMM call.

   The engine table (mt_gemm_choose), from single-threaded GEMM throughput of the blocks milua
   actually runs (bench-gemm --cpu at OMP_NUM_THREADS=1: process CPU time, fastest of 10
   rounds, both engines alternating; a 2-core AVX-512 VM shared with other jobs, so the
   rates are low and move by ~30% between runs, the ratios far less). GFLOP/s:

   | product (M x N x K, per block)         | OpenBLAS as detected | OpenBLAS Haswell | oneDNN  |
   | linear, d64: 3456x64x64 y = xW          | 23                   | 63               | 126     |
   | linear, d64: 3456x256x64 / 3456x64x256  | 25 / 17              | 65 / 64          | 129 / 84-135 |
   | dx = g W^T, d64: 3456x64x256            | 15                   | 46               | 69-79   |
   | dW = x^T g, d64: 64x256 inner 3456      | 17                   | 60               | 81-100  |
   | linear, d128: 4096x512x128 / dW 128x512 | 28 / 27              | 63 / 64          | 151 / 112 |
   | linear, d510: 1152x2040x510 / x510x2040 | 18 / 22              | 63 / 68          | 78-110 / 122-150 |
   | dW, d510: 510x2040 inner 1152           | 19                   | 65               | 62-99   |
   | per head: 33x64x33, 48x128x48, 18x170x18| 24, 23, 20           | 55, 58, 39       | 93, 111, 47-54 |
   | per head, tiny: 18x18x16 (all 3 layouts)| 16-18                | 26-31            | 16-20   |
   | 1024 x 1024 x 1024                      | 25                   | 66               | 79-110  |

   "As detected": this Debian OpenBLAS (0.3.21) finds no OSXSAVE flag in the VM and falls back
   to its SSE3 (Prescott) kernels; the Haswell column is the same library under
   OPENBLAS_CORETYPE=Haswell, measured only. oneDNN wins every class by 1.3-2.5x over the
   Haswell kernels (4-6x over Prescott) but the tiny per-head products, where the call costs
   more than the arithmetic and OpenBLAS's AVX2 kernels are ahead. Hence: oneDNN for every
   block of at least 8192 multiply-adds, and below that OpenBLAS when it runs AVX2 or wider
   kernels, else oneDNN. OpenBLAS keeps LAPACK (core/linalg.c). The choice depends on the
   block's shape and the library's kernels, never on the thread count. */
#include "core/parallel.h"
#if !__has_include(<dnnl.h>)
#error "oneDNN is missing (dnnl.h): make deps installs libdnnl-dev"
#endif
#include <dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int inited, engine = MT_GEMM_AUTO;

/* OpenBLAS runs one thread: the parallelism is ours */
static void init_threads(void) {
  if (inited) return;
  inited = 1;
  openblas_set_num_threads(1);
  const char *e = getenv("MILUA_GEMM");
  int code = e && *e ? mt_gemm_engine_code(e) : MT_GEMM_AUTO;
  engine = code < 0 ? MT_GEMM_AUTO : code;
}

int mt_threads(void) {
  init_threads();
  return omp_get_max_threads();
}

void mt_set_threads(int n) {
  init_threads();
  omp_set_num_threads(n < 1 ? 1 : n);
}

int mt_gemm_engine_code(const char *name) {
  if (!strcmp(name, "auto")) return MT_GEMM_AUTO;
  if (!strcmp(name, "openblas")) return MT_GEMM_OPENBLAS;
  if (!strcmp(name, "onednn")) return MT_GEMM_ONEDNN;
  return -1;
}

const char *mt_gemm_engine_name(int e) {
  return e == MT_GEMM_OPENBLAS ? "openblas" : e == MT_GEMM_ONEDNN ? "onednn" : e == MT_GEMM_AUTO ? "auto" : NULL;
}

int mt_gemm_set_engine(int e) {
  init_threads();
  if (!mt_gemm_engine_name(e)) return -1;
  engine = e;
  return 0;
}

int mt_gemm_get_engine(void) {
  init_threads();
  return engine;
}

/* does OpenBLAS run AVX2 (or wider) kernels here? fixed for the process */
static int openblas_wide(void) {
  static int wide = -1;
  if (wide < 0) {
    static const char *cores[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
    const char *name = openblas_get_corename();
    wide = 0;
    for (size_t i = 0; name && i < sizeof cores / sizeof *cores; i++)
      if (!strcasecmp(name, cores[i])) wide = 1;
  }
  return wide;
}

int mt_gemm_choose(int transA, int transB, int64_t M, int64_t N, int64_t K) {
  init_threads();
  if (engine != MT_GEMM_AUTO) return engine;
  if ((double)M * N * K < 8192.0 && openblas_wide()) return MT_GEMM_OPENBLAS;
  return MT_GEMM_ONEDNN;
}

/* oneDNN sizes its own thread team from omp_get_max_threads() unless it is called inside an
   active parallel region: outside one, the team is held at one thread for the call, so a
   block's arithmetic never depends on the thread count */
static void onednn_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  int outside = !omp_in_parallel(), was = outside ? omp_get_max_threads() : 1;
  if (outside && was > 1) omp_set_num_threads(1);
  dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  if (outside && was > 1) omp_set_num_threads(was);
}

void mt_sgemm1(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (mt_gemm_choose(transA, transB, M, N, K) == MT_GEMM_ONEDNN)
    onednn_sgemm(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

#ifndef MT_GEMM_MAX_BLOCKS
#define MT_GEMM_MAX_BLOCKS 8
#endif

/* the split of n rows (or columns): at most MT_GEMM_MAX_BLOCKS blocks of at least 64, a
   multiple of 16 each. A block re-packs the shared operand, so fewer, larger blocks waste
   less; 8 keep 1, 2, 4 or 8 threads evenly loaded. A function of n alone. */
static int64_t block_of(int64_t n) {
  int64_t nb = (n + 63) / 64;
  if (nb > MT_GEMM_MAX_BLOCKS) nb = MT_GEMM_MAX_BLOCKS;
  int64_t blk = (n + nb - 1) / nb;
  return (blk + 15) / 16 * 16;
}

void mt_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
              int64_t ldb, float beta, float *C, int64_t ldc) {
  init_threads();
  if (M <= 0 || N <= 0) return;
  /* not on the thread count: one thread runs the same blocks as many */
  if (!mt_par_worth(2.0 * M * N * K) || (M < 64 && N < 64)) {
    mt_sgemm1(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  /* blocks of a fixed size: each element of C is computed the same way whatever the thread count */
  if (M >= N) {
    int64_t blk = block_of(M), nb = (M + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; i++) {
      int64_t m0 = i * blk, m = M - m0 < blk ? M - m0 : blk;
      const float *a = transA ? A + m0 : A + m0 * lda;
      mt_sgemm1(transA, transB, m, N, K, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    }
  } else {
    int64_t blk = block_of(N), nb = (N + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; i++) {
      int64_t n0 = i * blk, n = N - n0 < blk ? N - n0 : blk;
      const float *b = transB ? B + n0 * ldb : B + n0;
      mt_sgemm1(transA, transB, M, n, K, A, lda, b, ldb, beta, C + n0, ldc);
    }
  }
}
