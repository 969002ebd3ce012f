/* nn/ tensor core from C: creation and accounting, views, broadcasting
   iteration, kernels against naive loops, the autograd engine, the generator,
   and the error channel. Every test ends by checking that live bytes return
   to where they started, so a leaked storage fails here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "core/tensor.h"
#include "core/ops.h"
#include "core/autograd.h"
#include "core/iter.h"

static int64_t S1[1], S2[2], S3[3];
static const int64_t *sh1(int64_t a) { S1[0] = a; return S1; }
static const int64_t *sh2(int64_t a, int64_t b) { S2[0] = a; S2[1] = b; return S2; }
static const int64_t *sh3(int64_t a, int64_t b, int64_t c) { S3[0] = a; S3[1] = b; S3[2] = c; return S3; }

static double at2(const mt_tensor *t, int64_t i, int64_t j) { int64_t ix[2] = {i, j}; return mt_get(t, ix); }
static double at1(const mt_tensor *t, int64_t i) { return mt_get(t, &i); }

static mt_tensor *randn2(int64_t a, int64_t b) { return mt_randn(2, sh2(a, b)); }

static int has(const char *needle) { return strstr(mt_error(), needle) != NULL; }

static void test_creation(void) {
  size_t base = mt_live_bytes();
  mt_tensor *z = mt_zeros(MT_F32, 2, sh2(3, 4));
  tap_ok(z && z->refcount == 1 && z->ndim == 2 && z->shape[0] == 3 && z->shape[1] == 4, "zeros [3,4]");
  tap_ok(z->stride[0] == 4 && z->stride[1] == 1 && mt_is_contiguous(z), "row-major strides");
  tap_ok(mt_live_bytes() - base == 48, "live bytes count 12 float32 (%zu)", mt_live_bytes() - base);
  double s = 0;
  for (int i = 0; i < 12; i++) s += fabs(mt_f32(z)[i]);
  tap_ok(s == 0, "zeros are zero");
  mt_tensor *r = mt_ref(z);
  tap_ok(r == z && z->refcount == 2, "mt_ref counts");
  mt_unref(r);
  mt_unref(z);
  tap_ok(mt_live_bytes() == base, "the last unref frees the storage");
  mt_unref(NULL);
  tap_ok(mt_live_bytes() == base, "mt_unref(NULL) is a no-op");

  mt_tensor *f = mt_full(MT_I32, 1, sh1(3), 7.9);
  tap_ok(f->dtype == MT_I32 && mt_i32(f)[0] == 7 && mt_i32(f)[2] == 7, "full int32 truncates 7.9 to 7");
  mt_unref(f);
  f = mt_full(MT_I32, 1, sh1(2), 1e12);
  tap_ok(mt_i32(f)[0] == INT32_MAX, "full int32 saturates 1e12");
  mt_unref(f);
  mt_tensor *sc = mt_scalar(MT_F32, 2.5);
  tap_ok(sc->ndim == 0 && mt_numel(sc) == 1 && mt_f32(sc)[0] == 2.5f, "0-d scalar");
  mt_unref(sc);
  mt_tensor *ar = mt_arange(1, 2, 0.25, MT_F32);
  tap_ok(ar && mt_numel(ar) == 4 && mt_f32(ar)[3] == 1.75f, "arange(1, 2, 0.25)");
  mt_unref(ar);
  ar = mt_arange(5, 0, -2, MT_I32);
  tap_ok(ar && mt_numel(ar) == 3 && mt_i32(ar)[2] == 1, "arange(5, 0, -2) = 5 3 1");
  mt_unref(ar);
  tap_ok(mt_arange(0, 1, 0, MT_F32) == NULL && has("arange"), "arange step 0 fails naming arange");
  tap_ok(mt_arange(0, 1e300, 1, MT_F32) == NULL && has("too many"), "arange of 1e300 elements fails");
  float data[6] = {1, 2, 3, 4, 5, 6};
  mt_tensor *d = mt_from_data(MT_F32, 2, sh2(2, 3), data);
  data[0] = 100;
  tap_ok(at2(d, 1, 2) == 6 && at2(d, 0, 0) == 1, "from_data copies");
  int64_t ix[2] = {1, 0};
  uint32_t v0 = d->storage->version;
  mt_set(d, ix, -4);
  tap_ok(at2(d, 1, 0) == -4 && d->storage->version == v0 + 1, "mt_set writes and bumps the version");
  mt_unref(d);
  int32_t big[2] = {16777217, INT32_MIN + 1};
  mt_tensor *bi = mt_from_data(MT_I32, 1, sh1(2), big);
  tap_ok(at1(bi, 0) == 16777217.0 && at1(bi, 1) == (double)(INT32_MIN + 1), "mt_get of int32 is exact (no float rounding)");
  mt_unref(bi);
  tap_ok(mt_zeros(MT_F32, 2, sh2(-1, 2)) == NULL && has("negative size -1"), "negative size fails");
  tap_ok(mt_zeros(MT_F32, 2, sh2(INT64_MAX, 99)) == NULL && has("too large"), "overflowing shape fails, no overflow");
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  tap_ok(mt_zeros(MT_F32, 9, nine) == NULL && has("at most 8"), "9 dims fail");
  mt_tensor *e = mt_zeros(MT_F32, 2, sh2(0, 5));
  tap_ok(e && mt_numel(e) == 0 && e->storage->data != NULL, "an empty tensor has a valid data pointer");
  mt_unref(e);
  tap_ok(mt_live_bytes() == base, "creation: no storage leaked");
}

static void test_views(void) {
  size_t base = mt_live_bytes();
  mt_tensor *a = mt_arange(0, 24, 1, MT_F32);
  mt_tensor *v = mt_view(a, 3, sh3(2, 3, 4));
  tap_ok(v && v->storage == a->storage && a->storage->refcount == 2, "view shares the storage");
  mt_tensor *t = mt_transpose(v, 0, 2);
  tap_ok(t->shape[0] == 4 && t->stride[0] == 1 && t->stride[2] == 12 && !mt_is_contiguous(t), "transpose swaps strides");
  int64_t ix[3] = {3, 2, 1};
  tap_ok(mt_get(t, ix) == 23, "transpose indexing");
  mt_tensor *n = mt_narrow(v, 2, 1, 2);
  tap_ok(n->offset == 1 && n->shape[2] == 2, "narrow moves the offset");
  mt_tensor *s = mt_select(v, 1, 2);
  tap_ok(s->ndim == 2 && s->offset == 8 && mt_get(s, (int64_t[]){1, 3}) == 23, "select");
  int perm[3] = {2, 0, 1};
  mt_tensor *p = mt_permute(v, perm);
  tap_ok(p->shape[0] == 4 && p->shape[1] == 2 && p->stride[0] == 1 && p->stride[1] == 12, "permute");
  int bad[3] = {0, 0, 1};
  tap_ok(mt_permute(v, bad) == NULL && has("appears twice"), "permute with a repeated dim fails");
  mt_tensor *c = mt_contiguous(t);
  tap_ok(c != t && mt_is_contiguous(c) && mt_get(c, ix) == 23, "contiguous copies a transpose");
  mt_tensor *c2 = mt_contiguous(v);
  tap_ok(c2 == v && v->refcount == 2, "contiguous of a contiguous tensor is a new reference");
  mt_unref(c2);
  mt_tensor *rs = mt_view(t, 1, sh1(24));   /* not viewable: reshape semantics copy */
  tap_ok(rs && rs->storage != a->storage && mt_f32(rs)[1] == 12 && mt_f32(rs)[2] == 4 && mt_f32(rs)[23] == 23, "view of a transpose copies in the right order");
  mt_tensor *split = mt_view(t, 4, (int64_t[]){2, 2, 3, 2});
  tap_ok(split && split->storage == a->storage, "splitting a dim of a transpose is a view");
  tap_ok(mt_view(v, 1, sh1(7)) == NULL && has("[7] is invalid for a tensor [2,3,4]"), "view with the wrong numel fails");
  mt_tensor *u = mt_unsqueeze(s, 1);
  tap_ok(u->ndim == 3 && u->shape[1] == 1, "unsqueeze");
  mt_tensor *sq = mt_squeeze(u, MT_ALL);
  tap_ok(sq->ndim == 2, "squeeze all");
  mt_tensor *one = mt_full(MT_F32, 2, sh2(3, 1), 2);
  mt_tensor *ex = mt_expand(one, 3, sh3(2, 3, 4));
  tap_ok(ex && ex->stride[0] == 0 && ex->stride[2] == 0 && ex->shape[2] == 4, "expand uses zero strides");
  mt_tensor *ex2 = mt_expand(one, 2, sh2(-1, 2));
  tap_ok(ex2 && ex2->shape[0] == 3 && ex2->shape[1] == 2 && ex2->stride[0] == 1, "expand with -1 keeps a size");
  mt_unref(ex2);
  tap_ok(mt_expand(v, 3, sh3(2, 5, 4)) == NULL && has("expand"), "expand of a size that is not 1 fails");
  tap_ok(mt_narrow(v, 1, 2, 2) == NULL && has("narrow"), "narrow out of range fails");
  tap_ok(mt_select(v, 0, 2) == NULL && has("index 3 is out of range for dim 1 of size 2"), "select out of range names the 1-based index");
  tap_ok(mt_wrap_dim("f", -1, 3) == 2 && mt_wrap_dim("f", 3, 3) == -1, "wrap_dim");
  mt_tensor *al = mt_alias(v);
  tap_ok(al->storage == v->storage && al->grad_fn == NULL && !al->requires_grad, "alias shares storage without history");
  mt_tensor *ts[] = {a, v, t, n, s, p, c, rs, split, u, sq, one, ex, al};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) mt_unref(ts[i]);
  tap_ok(mt_live_bytes() == base, "views: no storage leaked");
}

static void test_iter(void) {
  size_t base = mt_live_bytes();
  mt_tensor *a = randn2(3, 1), *b = randn2(1, 4), *c = mt_zeros(MT_F32, 1, sh1(5));
  int nd;
  int64_t shape[MT_MAXDIM];
  mt_tensor *ab[2] = {a, b};
  tap_ok(mt_broadcast_shapes("f", 2, ab, &nd, shape) == 0 && nd == 2 && shape[0] == 3 && shape[1] == 4, "broadcast [3,1] [1,4]");
  mt_tensor *ac[2] = {b, c};
  tap_ok(mt_broadcast_shapes("myop", 2, ac, &nd, shape) == -1 && has("myop: shapes [1,4] and [5]"), "broadcast error names the op");
  mt_tensor *sum = mt_binary(MT_ADD, a, b);
  int ok = sum && sum->shape[0] == 3 && sum->shape[1] == 4;
  for (int i = 0; ok && i < 3; i++)
    for (int j = 0; j < 4; j++) ok &= at2(sum, i, j) == (float)(mt_f32(a)[i] + mt_f32(b)[j]);
  tap_ok(ok, "a + b broadcast matches a loop");
  /* strided operands: a transposed matrix times a narrowed one */
  mt_tensor *m = randn2(4, 6), *w = randn2(6, 5);
  mt_tensor *mt = mt_transpose(m, 0, 1);           /* [6,4] */
  mt_tensor *wn = mt_narrow(w, 1, 1, 4);           /* [6,4], row stride 5 */
  mt_tensor *prod = mt_binary(MT_MUL, mt, wn);
  ok = 1;
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) ok &= at2(prod, i, j) == (float)(mt_f32(m)[j * 6 + i] * mt_f32(w)[i * 5 + j + 1]);
  tap_ok(ok, "strided * strided matches a loop");
  /* in place with an overlapping source */
  mt_tensor *r = mt_arange(0, 6, 1, MT_F32);
  mt_tensor *hi = mt_narrow(r, 0, 1, 5), *lo = mt_narrow(r, 0, 0, 5);
  tap_ok(mt_binary_(MT_ADD, hi, lo) == 0, "add_ of an overlapping view");
  tap_ok(mt_f32(r)[1] == 1 && mt_f32(r)[2] == 3 && mt_f32(r)[5] == 9, "overlap reads the old values (0 1 3 5 7 9)");
  mt_tensor *ts[] = {a, b, c, sum, m, w, mt, wn, prod, r, hi, lo};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) mt_unref(ts[i]);
  tap_ok(mt_live_bytes() == base, "iter: no storage leaked");
}

/* random layouts: operands of a 4-d broadcast shape seen through permutes,
   narrows and expands; every result element checked against mt_get */
static mt_tensor *random_layout(const int64_t *shape, int bcast_mask) {
  int64_t want[4], big[4];
  for (int d = 0; d < 4; d++) { want[d] = (bcast_mask >> d & 1) ? 1 : shape[d]; big[d] = want[d] + (int64_t)(mt_rand_u64() % 3); }
  int perm[4] = {0, 1, 2, 3};
  for (int i = 3; i > 0; i--) { int j = (int)(mt_rand_u64() % (uint64_t)(i + 1)), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
  int64_t stored[4];
  for (int d = 0; d < 4; d++) stored[d] = big[perm[d]];
  mt_tensor *base = mt_randn(4, stored), *cur = NULL;
  int inv[4];
  for (int d = 0; d < 4; d++) inv[perm[d]] = d;
  cur = mt_permute(base, inv);   /* now shape big[] */
  mt_unref(base);
  for (int d = 0; d < 4; d++) {
    int64_t start = (int64_t)(mt_rand_u64() % (uint64_t)(big[d] - want[d] + 1));
    mt_tensor *n = mt_narrow(cur, d, start, want[d]);
    mt_unref(cur);
    cur = n;
  }
  mt_tensor *e = mt_expand(cur, 4, shape);
  mt_unref(cur);
  return e;
}

static void test_layouts(void) {
  size_t base = mt_live_bytes();
  int bad = 0, total = 0;
  for (int trial = 0; trial < 200; trial++) {
    int64_t shape[4];
    for (int d = 0; d < 4; d++) shape[d] = 1 + (int64_t)(mt_rand_u64() % 4);
    mt_tensor *a = random_layout(shape, (int)(mt_rand_u64() % 16)), *b = random_layout(shape, (int)(mt_rand_u64() % 16));
    mt_binop op = (mt_binop)(mt_rand_u64() % 4);
    mt_tensor *r = mt_binary(op, a, b);
    int64_t ix[4];
    for (ix[0] = 0; ix[0] < shape[0]; ix[0]++)
      for (ix[1] = 0; ix[1] < shape[1]; ix[1]++)
        for (ix[2] = 0; ix[2] < shape[2]; ix[2]++)
          for (ix[3] = 0; ix[3] < shape[3]; ix[3]++) {
            float x = (float)mt_get(a, ix), y = (float)mt_get(b, ix);
            float want = op == MT_ADD ? x + y : op == MT_SUB ? x - y : op == MT_MUL ? x * y : x / y;
            total++;
            if (mt_get(r, ix) != want) bad++;
          }
    /* the same layouts through a unary op and a reduction */
    mt_tensor *u = mt_unary(MT_NEG, a), *sm = mt_sum(a, 2, 0);
    for (ix[0] = 0; ix[0] < shape[0]; ix[0]++)
      for (ix[1] = 0; ix[1] < shape[1]; ix[1]++)
        for (ix[3] = 0; ix[3] < shape[3]; ix[3]++) {
          double acc = 0;
          for (ix[2] = 0; ix[2] < shape[2]; ix[2]++) {
            acc += mt_get(a, ix);
            if (mt_get(u, ix) != -mt_get(a, ix)) bad++;
          }
          int64_t jx[3] = {ix[0], ix[1], ix[3]};
          if (fabs(mt_get(sm, jx) - acc) > 1e-5) bad++;
        }
    mt_unref(a); mt_unref(b); mt_unref(r); mt_unref(u); mt_unref(sm);
  }
  tap_ok(bad == 0, "200 random strided/broadcast layouts: %d of %d elements wrong", bad, total);
  tap_ok(mt_live_bytes() == base, "layouts: no storage leaked");
}

static void naive_mm(const mt_tensor *a, const mt_tensor *b, double *out, int64_t M, int64_t K, int64_t N) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += at2(a, i, k) * at2(b, k, j);
      out[i * N + j] = s;
    }
}

static void test_matmul(void) {
  size_t base = mt_live_bytes();
  int64_t dims[][3] = {{1, 1, 1}, {3, 5, 2}, {7, 1, 4}, {16, 33, 9}, {2, 64, 1}};
  for (size_t k = 0; k < sizeof dims / sizeof *dims; k++) {
    int64_t M = dims[k][0], K = dims[k][1], N = dims[k][2];
    for (int variant = 0; variant < 4; variant++) {
      /* variant bit 0: a stored transposed; bit 1: b stored transposed */
      mt_tensor *as = variant & 1 ? randn2(K, M) : randn2(M, K), *bs = variant & 2 ? randn2(N, K) : randn2(K, N);
      mt_tensor *a = variant & 1 ? mt_transpose(as, 0, 1) : mt_ref(as), *b = variant & 2 ? mt_transpose(bs, 0, 1) : mt_ref(bs);
      mt_tensor *c = mt_matmul(a, b);
      double *ref = malloc(sizeof(double) * (size_t)(M * N)), worst = 0;
      naive_mm(a, b, ref, M, K, N);
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) worst = fmax(worst, fabs(at2(c, i, j) - ref[i * N + j]));
      tap_ok(c && c->shape[0] == M && c->shape[1] == N && worst < 1e-4,
             "matmul [%lld,%lld]@[%lld,%lld] variant %d (max err %g)", (long long)M, (long long)K, (long long)K, (long long)N,
             variant, worst);
      free(ref);
      mt_unref(as); mt_unref(bs); mt_unref(a); mt_unref(b); mt_unref(c);
    }
  }
  /* batched with broadcasting: [2,1,3,4] @ [5,4,2] -> [2,5,3,2] */
  int64_t sa[4] = {2, 1, 3, 4};
  mt_tensor *a = mt_randn(4, sa), *b = mt_randn(3, sh3(5, 4, 2));
  mt_tensor *c = mt_matmul(a, b);
  int ok = c && c->ndim == 4 && c->shape[0] == 2 && c->shape[1] == 5 && c->shape[2] == 3 && c->shape[3] == 2;
  double worst = 0;
  for (int i = 0; ok && i < 2; i++)
    for (int j = 0; j < 5; j++)
      for (int r = 0; r < 3; r++)
        for (int q = 0; q < 2; q++) {
          double s = 0;
          for (int k = 0; k < 4; k++) s += mt_get(a, (int64_t[]){i, 0, r, k}) * mt_get(b, (int64_t[]){j, k, q});
          worst = fmax(worst, fabs(mt_get(c, (int64_t[]){i, j, r, q}) - s));
        }
  tap_ok(ok && worst < 1e-5, "batched broadcast matmul (max err %g)", worst);
  mt_unref(c);
  mt_tensor *b2 = randn2(5, 4);
  tap_ok(mt_matmul(a, b2) == NULL && has("matmul: [2,1,3,4] @ [5,4]: inner dimensions 4 and 5 differ"), "inner mismatch message");
  mt_unref(a); mt_unref(b); mt_unref(b2);
  tap_ok(mt_live_bytes() == base, "matmul: no storage leaked");
}

static void test_reduce(void) {
  size_t base = mt_live_bytes();
  float data[6] = {1, 5, 3, 4, 2, 6};
  mt_tensor *t = mt_from_data(MT_F32, 2, sh2(2, 3), data);
  mt_tensor *idx = NULL;
  mt_tensor *mx = mt_max(t, 1, 0, &idx);
  tap_ok(mx && at1(mx, 0) == 5 && at1(mx, 1) == 6, "max along dim 1 values");
  tap_ok(idx && idx->dtype == MT_I32 && mt_i32(idx)[0] == 1 && mt_i32(idx)[1] == 2, "max indices are 0-based in the core");
  mt_tensor *s = mt_sum(t, MT_ALL, 0);
  tap_ok(s->ndim == 0 && mt_f32(s)[0] == 21, "sum of everything");
  mt_tensor *m = mt_mean(t, 0, 1);
  tap_ok(m->ndim == 2 && m->shape[0] == 1 && at2(m, 0, 1) == 3.5, "mean keepdim");
  mt_tensor *v = mt_var(t, MT_ALL, 0, 1);
  tap_ok(fabs(mt_f32(v)[0] - 3.5) < 1e-6, "unbiased variance of 1..6 is 3.5");
  mt_tensor *sm = mt_softmax(t, 1);
  double rs = at2(sm, 0, 0) + at2(sm, 0, 1) + at2(sm, 0, 2);
  tap_ok(fabs(rs - 1) < 1e-6, "softmax rows sum to 1");
  mt_tensor *si = NULL, *so = mt_sort(t, 1, 0, &si);
  tap_ok(at2(so, 1, 0) == 2 && mt_i32(si)[3] == 1, "sort ascending with 0-based indices");
  mt_tensor *cs = mt_cumsum(t, 0);
  tap_ok(at2(cs, 1, 2) == 9, "cumsum along dim 0");
  tap_ok(mt_topk(t, 4, 1, 1, NULL) == NULL && has("topk: k = 4"), "topk k too large");
  mt_tensor *ts[] = {t, idx, mx, s, m, v, sm, si, so, cs};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) mt_unref(ts[i]);
  tap_ok(mt_live_bytes() == base, "reduce: no storage leaked");
}

static void test_autograd(void) {
  size_t base = mt_live_bytes();
  float xd[3] = {1, -2, 3};
  mt_tensor *x = mt_from_data(MT_F32, 1, sh1(3), xd);
  tap_ok(mt_set_requires_grad(x, 1) == 0 && x->requires_grad, "requires_grad on a float leaf");
  mt_tensor *y = mt_binary(MT_MUL, x, x);
  tap_ok(y->grad_fn && !strcmp(y->grad_fn->name, "mul") && !mt_is_leaf(y), "mul records a node");
  mt_tensor *l = mt_sum(y, MT_ALL, 0);
  tap_ok(mt_backward(l, NULL) == 0, "backward runs");
  mt_tensor *g = mt_grad_of(x);
  tap_ok(g && at1(g, 0) == 2 && at1(g, 1) == -4 && at1(g, 2) == 6, "d sum(x*x)/dx = 2x");
  tap_ok(mt_backward(l, NULL) == -1 && has("already freed"), "a second backward through the graph fails clearly");
  mt_unref(y); mt_unref(l);

  /* accumulation and the version counter */
  mt_tensor *w = mt_full(MT_F32, 1, sh1(3), 2);
  mt_tensor *p = mt_binary(MT_MUL, x, w);
  mt_tensor *lp = mt_sum(p, MT_ALL, 0);
  tap_ok(mt_backward(lp, NULL) == 0 && at1(mt_grad_of(x), 0) == 4, "gradients accumulate over backward calls (2 + 2)");
  mt_unref(p); mt_unref(lp);
  p = mt_binary(MT_MUL, x, w);
  lp = mt_sum(p, MT_ALL, 0);
  mt_tensor *two = mt_scalar(MT_F32, 2);
  tap_ok(mt_binary_(MT_MUL, w, two) == 0, "w (no grad) can be changed in place");
  tap_ok(mt_backward(lp, NULL) == -1 && has("modified in place"), "backward sees the changed saved tensor");
  tap_ok(mt_check_inplace("f", x) == -1 && has("f: in-place operation"), "in place on a leaf that requires grad fails");
  mt_tensor *col = mt_zeros(MT_F32, 2, sh2(3, 1)), *wide = mt_expand(col, 2, sh2(3, 4));
  tap_ok(mt_fill_(wide, 1) == -1 && has("fill_: in-place write to an expanded tensor"), "fill_ of an expanded tensor fails");
  tap_ok(mt_unary_(MT_EXP, wide) == -1 && mt_f32(col)[0] == 0, "exp_ of an expanded tensor fails and writes nothing");
  mt_unref(col); mt_unref(wide);
  int prev = mt_set_grad_enabled(0);
  tap_ok(mt_check_inplace("f", x) == 0, "... but is allowed with grad mode off");
  mt_tensor *ng = mt_binary(MT_MUL, x, two);
  tap_ok(ng->grad_fn == NULL && !ng->requires_grad, "grad mode off records nothing");
  mt_set_grad_enabled(prev);
  mt_unref(ng); mt_unref(p); mt_unref(lp); mt_unref(w); mt_unref(two);

  /* backward with a gradient; a retained intermediate; non-scalar errors */
  mt_zero_grad(x);
  tap_ok(mt_grad_of(x) == NULL, "zero_grad drops .grad");
  mt_tensor *h = mt_unary(MT_EXP, x);
  tap_ok(mt_retain_grad(h) == 0, "retain_grad on an intermediate");
  mt_tensor *h2 = mt_binary(MT_MUL, h, h);
  tap_ok(mt_backward(h2, NULL) == -1 && has("shape [3]"), "backward of a non-scalar without a gradient names its shape");
  mt_tensor *go = mt_full(MT_F32, 1, sh1(3), 1);
  tap_ok(mt_backward(h2, go) == 0, "backward with a gradient");
  g = mt_grad_of(x);
  double want = 2 * exp(2.0 * 1);
  tap_ok(g && fabs(at1(g, 0) - want) / want < 1e-5, "d exp(x)^2 / dx = 2 exp(2x) (%g vs %g)", g ? at1(g, 0) : 0, want);
  mt_tensor *hg = mt_grad_of(h);
  tap_ok(hg && fabs(at1(hg, 0) - 2 * exp(1.0)) < 1e-4, "the retained gradient is 2h");
  mt_unref(go); mt_unref(h); mt_unref(h2);

  /* cat of more inputs than a node holds, and its backward */
  mt_tensor *parts[11];
  for (int i = 0; i < 11; i++) parts[i] = mt_binary(MT_MUL, x, x);
  mt_tensor *cat = mt_cat(11, parts, 0);
  tap_ok(cat && cat->shape[0] == 33, "cat of 11 tensors");
  mt_tensor *lc = mt_sum(cat, MT_ALL, 0);
  mt_zero_grad(x);
  tap_ok(mt_backward(lc, NULL) == 0 && at1(mt_grad_of(x), 2) == 11 * 6, "the gradient flows to all 11 parts");
  for (int i = 0; i < 11; i++) mt_unref(parts[i]);
  mt_unref(cat); mt_unref(lc);

  /* cross entropy: base 0 and base 1 ids give the same loss */
  float ld[6] = {1, 2, 3, 0, 0, 0};
  int32_t t0[2] = {2, 0}, t1[2] = {3, 1};
  mt_tensor *lg = mt_from_data(MT_F32, 2, sh2(2, 3), ld);
  mt_tensor *tg0 = mt_from_data(MT_I32, 1, sh1(2), t0), *tg1 = mt_from_data(MT_I32, 1, sh1(2), t1);
  mt_tensor *ce0 = mt_cross_entropy(lg, tg0, NULL, 0), *ce1 = mt_cross_entropy(lg, tg1, NULL, 1);
  double expect = ((log(exp(1) + exp(2) + exp(3)) - 3) + log(3.0)) / 2;
  tap_ok(ce0 && ce1 && fabs(mt_f32(ce0)[0] - expect) < 1e-5 && mt_f32(ce0)[0] == mt_f32(ce1)[0], "cross entropy, base 0 and 1");
  tap_ok(mt_cross_entropy(lg, tg1, NULL, 0) == NULL && has("target 3 at position 1 is out of range 0..2"),
         "a base-0 target out of range");
  mt_unref(lg); mt_unref(tg0); mt_unref(tg1); mt_unref(ce0); mt_unref(ce1);

  mt_tensor *it = mt_zeros(MT_I32, 1, sh1(2));
  tap_ok(mt_set_requires_grad(it, 1) == -1 && has("only float32"), "int32 cannot require grad");
  mt_unref(it);
  mt_unref(x);
  tap_ok(mt_live_bytes() == base, "autograd: no storage leaked");
}

static void test_rng(void) {
  size_t base = mt_live_bytes();
  mt_seed(42);
  uint64_t a = mt_rand_u64(), st[4];
  mt_rng_get_state(st);
  uint64_t b = mt_rand_u64();
  mt_seed(42);
  tap_ok(mt_rand_u64() == a && mt_rand_u64() == b, "same seed, same stream");
  mt_rng_set_state(st);
  tap_ok(mt_rand_u64() == b, "state save and restore");
  mt_seed(43);
  tap_ok(mt_rand_u64() != a, "another seed, another stream");
  double lo = 1, hi = 0;
  for (int i = 0; i < 100000; i++) { double u = mt_rand_double(); lo = fmin(lo, u); hi = fmax(hi, u); }
  tap_ok(lo >= 0 && hi < 1 && lo < 1e-3 && hi > 0.999, "rand_double fills [0,1)");
  mt_tensor *ri = mt_randint(-2, 2, 1, sh1(10000));
  int32_t mn = 99, mxv = -99;
  for (int i = 0; i < 10000; i++) { mn = mt_i32(ri)[i] < mn ? mt_i32(ri)[i] : mn; mxv = mt_i32(ri)[i] > mxv ? mt_i32(ri)[i] : mxv; }
  tap_ok(mn == -2 && mxv == 2, "randint [lo, hi] is inclusive in the core");
  mt_unref(ri);
  tap_ok(mt_randint(INT64_MIN, INT64_MAX, 1, sh1(1)) == NULL && has("randint"), "randint with extreme bounds fails without overflow");
  tap_ok(mt_randint((int64_t)1 << 40, ((int64_t)1 << 40) + 3, 1, sh1(1)) == NULL, "randint outside int32 fails");
  mt_tensor *n = mt_randn(1, sh1(200000));
  double s = 0, s2 = 0;
  for (int i = 0; i < 200000; i++) { s += mt_f32(n)[i]; s2 += (double)mt_f32(n)[i] * mt_f32(n)[i]; }
  double mean = s / 200000, var = s2 / 200000 - mean * mean;
  tap_ok(fabs(mean) < 0.01 && fabs(var - 1) < 0.015, "randn mean 0 var 1 (%g, %g)", mean, var);
  mt_unref(n);
  tap_ok(mt_live_bytes() == base, "rng: no storage leaked");
}

static void test_cast(void) {
  size_t base = mt_live_bytes();
  float d[5] = {2.7f, -2.7f, 3e9f, -3e9f, NAN};
  mt_tensor *f = mt_from_data(MT_F32, 1, sh1(5), d);
  mt_tensor *i = mt_cast(f, MT_I32);
  tap_ok(mt_i32(i)[0] == 2 && mt_i32(i)[1] == -2 && mt_i32(i)[2] == INT32_MAX && mt_i32(i)[3] == INT32_MIN && mt_i32(i)[4] == 0,
         "float -> int32 truncates and saturates");
  mt_tensor *back = mt_cast(i, MT_F32);
  tap_ok(back->dtype == MT_F32 && mt_f32(back)[0] == 2, "int32 -> float");
  mt_unref(f); mt_unref(i); mt_unref(back);
  tap_ok(mt_live_bytes() == base, "cast: no storage leaked");
}

int main(void) {
  test_creation();
  test_views();
  test_iter();
  test_layouts();
  test_matmul();
  test_reduce();
  test_autograd();
  test_rng();
  test_cast();
  return tap_done();
}
