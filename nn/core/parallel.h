/* Threads: milua runs its own OpenMP loops (rows of a product, batch x heads,
   elementwise chunks) and keeps OpenBLAS single-threaded inside them, so the
   two never oversubscribe the cores. The work split depends only on sizes,
   never on the thread count, so results are identical for any thread count. */
#ifndef MT_PARALLEL_H
#define MT_PARALLEL_H
#include <stdint.h>
#include <cblas.h>

/* threads milua uses (OMP_NUM_THREADS, else the cores) */
int mt_threads(void);
/* set the threads milua's own loops use (n >= 1); OpenBLAS stays at one */
void mt_set_threads(int n);
/* C = A @ B (+ beta C) like cblas_sgemm row-major, split over row (or column)
   blocks across threads when the product is large enough to pay for it */
void mt_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
              int64_t ldb, float beta, float *C, int64_t ldc);
/* one single-threaded product, for callers that already run inside a parallel loop */
void mt_sgemm1(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc);
/* worth parallelising a loop of this much work (in flops or elements)? */
static inline int mt_par_worth(double work) { return work >= 65536.0; }
#endif
