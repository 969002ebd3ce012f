/* Threads (core/parallel.h): the OpenMP thread count and the matrix product
   split into fixed row or column blocks, each one cblas_sgemm call. */
#include "core/parallel.h"
#include <omp.h>

static int inited;

/* OpenBLAS runs one thread: the parallelism is ours */
static void init_threads(void) {
  if (inited) return;
  inited = 1;
  openblas_set_num_threads(1);
}

int mt_threads(void) {
  init_threads();
  return omp_get_max_threads();
}

void mt_set_threads(int n) {
  init_threads();
  omp_set_num_threads(n < 1 ? 1 : n);
}

void mt_sgemm1(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void mt_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
              int64_t ldb, float beta, float *C, int64_t ldc) {
  int nt = mt_threads();
  if (M <= 0 || N <= 0) return;
  if (nt <= 1 || !mt_par_worth(2.0 * M * N * K) || (M < 64 && N < 64)) {
    mt_sgemm1(transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  /* blocks of a fixed size: each element of C is computed the same way whatever the thread count */
  if (M >= N) {
    int64_t blk = 64, nb = (M + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; i++) {
      int64_t m0 = i * blk, m = M - m0 < blk ? M - m0 : blk;
      const float *a = transA ? A + m0 : A + m0 * lda;
      mt_sgemm1(transA, transB, m, N, K, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
    }
  } else {
    int64_t blk = 64, nb = (N + blk - 1) / blk;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nb; i++) {
      int64_t n0 = i * blk, n = N - n0 < blk ? N - n0 : blk;
      const float *b = transB ? B + n0 * ldb : B + n0;
      mt_sgemm1(transA, transB, M, n, K, A, lda, b, ldb, beta, C + n0, ldc);
    }
  }
}
