/* Threads and matrix products. milua runs its own OpenMP loops (row blocks of a product,
   batch x heads, elementwise chunks) and keeps the GEMM libraries single-threaded inside
   them, so the two never oversubscribe the cores. The work split depends only on sizes,
   never on the thread count, and every block is one single-threaded GEMM call, so results
   are bit-identical for any thread count.

   Two GEMM engines: OpenBLAS (also milua's LAPACK) and oneDNN's dnnl_sgemm (the library
   PyTorch uses for CPU matmul). mt_gemm_choose picks one per product from its shape; the
   table and the measurements behind it are in parallel.c. The choice depends only on the
   product's shape, so it too is the same for any thread count. */
#ifndef MT_PARALLEL_H
#define MT_PARALLEL_H
#include <stdint.h>
#include <cblas.h>

/* threads milua uses (OMP_NUM_THREADS, else the cores) */
int mt_threads(void);
/* set the threads milua's own loops use (n >= 1); the GEMM libraries stay at one */
void mt_set_threads(int n);

enum { MT_GEMM_AUTO = 0, MT_GEMM_OPENBLAS = 1, MT_GEMM_ONEDNN = 2 };
/* the engine for every later product: MT_GEMM_AUTO (the shape table, the default),
   or one engine for all (benchmarks and tests). The environment variable MILUA_GEMM
   (auto, openblas, onednn) sets the initial value. Returns -1 for an unknown value. */
int mt_gemm_set_engine(int engine);
int mt_gemm_get_engine(void);
/* "openblas" / "onednn" / "auto" -> the constant, or -1 */
int mt_gemm_engine_code(const char *name);
const char *mt_gemm_engine_name(int engine);
/* the engine (MT_GEMM_OPENBLAS or MT_GEMM_ONEDNN) a single-threaded block of this shape uses */
int mt_gemm_choose(int transA, int transB, int64_t M, int64_t N, int64_t K);

/* C = A @ B (+ beta C) like cblas_sgemm row-major, split over fixed row (or column)
   blocks across threads when the product is large enough to pay for it */
void mt_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
              int64_t ldb, float beta, float *C, int64_t ldc);
/* one single-threaded product, for callers that already run inside a parallel loop
   (and for small products outside one) */
void mt_sgemm1(int transA, int transB, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, float beta, float *C, int64_t ldc);
/* worth parallelising a loop of this much work (in flops or elements)? */
static inline int mt_par_worth(double work) { return work >= 65536.0; }
#endif
