/* bench-gemm: single-precision GEMM throughput of each engine on given shapes, through
   milua's own product (core/parallel.h: fixed blocks, one single-threaded call each), at the
   thread count of OMP_NUM_THREADS. make bench runs it on every product of the model sizes.

     bench-gemm [--ms T] [--rounds R] [--cpu] SHAPE...
     SHAPE = "ta,tb,M,N,K"      one product C[M,N] = op(A) op(B), split by mt_sgemm
           = "ta,tb,M,N,K,xC"   C independent single-threaded products in a parallel loop
                                (attention's per-(batch, head) products)

   Prints one JSON object per line: the shape, and GFLOP/s for openblas, onednn and auto
   (the engine table). The engines alternate within each round, so a load change on a
   shared machine hits all of them alike, and the fastest round of each counts. With --cpu
   (meant for OMP_NUM_THREADS=1) a round is timed in process CPU time, which the other
   processes of a loaded machine barely move: how the engine table was measured. */
#include "core/parallel.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cpu_clock;   /* --cpu: the process's CPU time instead of wall time */

static double now(void) {
  struct timespec ts;
  clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { int ta, tb; int64_t M, N, K, count; float *A, *B, *C; } shape;

static void run(const shape *s) {
  int64_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
  if (s->count == 0) {
    mt_sgemm(s->ta, s->tb, s->M, s->N, s->K, s->A, lda, s->B, ldb, 0.0f, s->C, s->N);
    return;
  }
  int64_t sa = s->M * s->K, sb = s->K * s->N, sc = s->M * s->N;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < s->count; i++)
    mt_sgemm1(s->ta, s->tb, s->M, s->N, s->K, s->A + i * sa, lda, s->B + i * sb, ldb, 0.0f, s->C + i * sc, s->N);
}

int main(int argc, char **argv) {
  double ms = 30;
  int rounds = 7, first = 1;
  for (; first < argc && !strncmp(argv[first], "--", 2); first += 2) {
    if (!strcmp(argv[first], "--cpu")) { cpu_clock = 1; first--; continue; }
    if (first + 1 >= argc) { fprintf(stderr, "bench-gemm: %s needs a value\n", argv[first]); return 2; }
    if (!strcmp(argv[first], "--ms")) ms = atof(argv[first + 1]);
    else if (!strcmp(argv[first], "--rounds")) rounds = atoi(argv[first + 1]);
    else { fprintf(stderr, "bench-gemm: unknown option %s\n", argv[first]); return 2; }
  }
  if (first >= argc || rounds < 1 || ms <= 0) {
    fprintf(stderr, "usage: bench-gemm [--ms T] [--rounds R] [--cpu] ta,tb,M,N,K[,xC]...\n");
    return 2;
  }
  const int engines[3] = {MT_GEMM_OPENBLAS, MT_GEMM_ONEDNN, MT_GEMM_AUTO};
  for (int a = first; a < argc; a++) {
    shape s = {0};
    long long M, N, K, C = 0;
    int n = sscanf(argv[a], "%d,%d,%lld,%lld,%lld,x%lld", &s.ta, &s.tb, &M, &N, &K, &C);
    if (n < 5 || M < 1 || N < 1 || K < 1 || C < 0) {
      fprintf(stderr, "bench-gemm: bad shape %s (expected ta,tb,M,N,K or ta,tb,M,N,K,xC)\n", argv[a]);
      return 2;
    }
    s.M = M; s.N = N; s.K = K; s.count = C;
    int64_t c = C ? C : 1;
    s.A = malloc(sizeof(float) * (size_t)(c * M * K));
    s.B = malloc(sizeof(float) * (size_t)(c * K * N));
    s.C = malloc(sizeof(float) * (size_t)(c * M * N));
    if (!s.A || !s.B || !s.C) { fprintf(stderr, "bench-gemm: out of memory for %s\n", argv[a]); return 1; }
    for (int64_t i = 0; i < c * M * K; i++) s.A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (int64_t i = 0; i < c * K * N; i++) s.B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    double flops = 2.0 * M * N * K * c, best[3] = {1e30, 1e30, 1e30};
    int reps[3];
    for (int e = 0; e < 3; e++) {   /* warm up (JIT, packing buffers) and size a round to ~ms */
      mt_gemm_set_engine(engines[e]);
      run(&s);
      double t0 = now();
      run(&s);
      double one = now() - t0;
      reps[e] = one > 0 ? (int)(ms * 1e-3 / one) + 1 : 1000;
    }
    for (int r = 0; r < rounds; r++)
      for (int e = 0; e < 3; e++) {
        mt_gemm_set_engine(engines[e]);
        double t0 = now();
        for (int i = 0; i < reps[e]; i++) run(&s);
        double t = (now() - t0) / reps[e];
        if (t < best[e]) best[e] = t;
      }
    mt_gemm_set_engine(MT_GEMM_AUTO);
    printf("{\"shape\": \"%s\", \"threads\": %d, \"auto_engine\": \"%s\", \"openblas\": %.2f, \"onednn\": %.2f, \"auto\": %.2f}\n",
           argv[a], mt_threads(), mt_gemm_engine_name(mt_gemm_choose(s.ta, s.tb, s.M, s.N, s.K)), flops / best[0] / 1e9,
           flops / best[1] / 1e9, flops / best[2] / 1e9);
    fflush(stdout);
    free(s.A); free(s.B); free(s.C);
  }
  return 0;
}
