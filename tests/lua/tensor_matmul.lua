-- matmul against NumPy: 1-d/2-d/3-d/4-d operands, batch broadcasting,
-- transposed and otherwise strided operands, and the error messages.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local test = require "milua.test"
local T = require "milua.tensor"
local np = require "tensor_np"
if not np.available() then test.bail("python3-numpy is needed at " .. np.python .. " (make deps installs it)") end

T.seed(31)
local py = np.script()
local checks = {}
local function check(got, expr, vars, desc)
  checks[#checks + 1] = { got, py:emit(expr, vars), desc }
end
local function R(...) return T.randn(...) end

local pairs_ = {
  { { 4 }, { 4 } }, { { 4 }, { 4, 3 } }, { { 2, 4 }, { 4 } }, { { 2, 4 }, { 4, 3 } },
  { { 5, 2, 4 }, { 5, 4, 3 } }, { { 5, 2, 4 }, { 4, 3 } }, { { 2, 4 }, { 5, 4, 3 } },
  { { 5, 2, 4 }, { 4 } }, { { 4 }, { 5, 4, 3 } }, { { 2, 1, 3, 4 }, { 5, 4, 2 } },
  { { 2, 3, 2, 4 }, { 2, 3, 4, 5 } }, { { 1, 3, 2, 4 }, { 2, 1, 4, 5 } }, { { 3, 1, 4 }, { 1, 4, 1 } },
  { { 1, 4 }, { 4, 1 } }, { { 6, 1 }, { 1, 7 } },
}
for _, p in ipairs(pairs_) do
  local a, b = R(table.unpack(p[1])), R(table.unpack(p[2]))
  local desc = test.show(p[1]) .. " @ " .. test.show(p[2])
  check(a:matmul(b), "np.matmul(a.astype(np.float64), b.astype(np.float64))", { a = a, b = b }, desc)
  check(T.matmul(a, b), "np.matmul(a.astype(np.float64), b.astype(np.float64))", { a = a, b = b }, "T.matmul " .. desc)
end

-- strided operands: transposes, narrowed rows/cols, permuted batches, expanded batches, selected
local A, B = R(6, 5), R(5, 7)
local At, Bt = R(5, 6), R(7, 5)
check(At:t():matmul(B), "a.T.astype(np.float64) @ b", { a = At, b = B }, "transposed left")
check(A:matmul(Bt:t()), "a.astype(np.float64) @ b.T", { a = A, b = Bt }, "transposed right")
check(At:t():matmul(Bt:t()), "a.T.astype(np.float64) @ b.T", { a = At, b = Bt }, "both transposed")
local W = R(8, 9)
check(W:narrow(1, 2, 6):narrow(2, 3, 5):matmul(B), "w[1:7, 2:7].astype(np.float64) @ b", { w = W, b = B },
  "narrowed left (row stride 9)")
check(A:matmul(W:narrow(1, 2, 5):narrow(2, 1, 7)), "a.astype(np.float64) @ w[1:6, 0:7]", { w = W, a = A },
  "narrowed right")
check(A:matmul(W:t():narrow(1, 1, 5):narrow(2, 2, 7)), "a.astype(np.float64) @ w.T[0:5, 1:8]", { w = W, a = A },
  "narrowed transpose on the right")
local C3 = R(4, 3, 5)
check(C3:permute(2, 1, 3):matmul(B:narrow(2, 1, 2)), "np.transpose(c, (1, 0, 2)).astype(np.float64) @ b[:, 0:2]",
  { c = C3, b = B }, "permuted batch on the left, shared right")
local D3 = R(3, 5, 4)
check(C3:matmul(D3:permute(3, 2, 1)), "c.astype(np.float64) @ np.transpose(d, (2, 1, 0))", { c = C3, d = D3 },
  "fully permuted right operand")
check(C3:transpose(2, 3):matmul(T.ones(3, 2)), "np.swapaxes(c, 1, 2).astype(np.float64) @ np.ones((3, 2))",
  { c = C3 }, "batched transposed left")
local row = R(1, 5, 6)
check(row:expand(4, 5, 6):matmul(A), "np.broadcast_to(r, (4, 5, 6)).astype(np.float64) @ a", { r = row, a = A },
  "expanded batch (stride 0) on the left")
check(C3:matmul(row:expand(4, 5, 6)), "c.astype(np.float64) @ np.broadcast_to(r, (4, 5, 6))", { c = C3, r = row },
  "expanded batch on the right")
local colv = R(5, 1)
check(A:matmul(colv:expand(5, 3)), "a.astype(np.float64) @ np.broadcast_to(v, (5, 3))", { a = A, v = colv },
  "expanded columns (stride 0 inside the matrix)")
local Q = R(2, 3, 4, 5)
check(Q:select(2, 2):matmul(B:narrow(2, 1, 3)), "q[:, 1].astype(np.float64) @ b[:, 0:3]", { q = Q, b = B },
  "selected batch slice")
check(Q:narrow(1, 2, 1):matmul(Q:transpose(3, 4)), "q[1:2].astype(np.float64) @ np.swapaxes(q, 2, 3)", { q = Q },
  "4-d narrowed batch against 4-d transposed")
check(A[2]:matmul(B), "a[1].astype(np.float64) @ b", { a = A, b = B }, "a row vector from a matrix")
check(A:matmul(Bt[3]), "a.astype(np.float64) @ b[2]", { a = A, b = Bt }, "a strided column vector")
check(A:t()[2]:matmul(A:t()[3]), "a.T[1].astype(np.float64) @ a.T[2]", { a = A }, "dot of two strided vectors")

-- each GEMM engine on every transpose combination: odd sizes, products too small to split,
-- and products split into row or column blocks across threads (M or N >= 64 and 65536 flops),
-- against NumPy; matmul reads a transposed view as a transposed operand (no copy), so each
-- case reaches the engine with that transpose flag
local sizes = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 31, 13 }, { 18, 18, 16 }, { 65, 67, 129 }, { 200, 70, 33 },
  { 37, 300, 65 }, { 130, 64, 513 } }
for _, engine in ipairs { "openblas", "onednn", "auto" } do
  T.set_gemm_engine(engine)
  test.is(T.gemm_engine(), engine, "T.set_gemm_engine(" .. engine .. ")")
  for _, mnk in ipairs(sizes) do
    local M, N, K = mnk[1], mnk[2], mnk[3]
    for _, tt in ipairs { { false, false }, { true, false }, { false, true }, { true, true } } do
      local a = tt[1] and R(K, M) or R(M, K)
      local b = tt[2] and R(N, K) or R(K, N)
      local desc = string.format("%s: %dx%dx%d%s%s", engine, M, N, K, tt[1] and " A^T" or "", tt[2] and " B^T" or "")
      check((tt[1] and a:t() or a):matmul(tt[2] and b:t() or b),
        string.format("%s.astype(np.float64) @ %s.astype(np.float64)", tt[1] and "a.T" or "a", tt[2] and "b.T" or "b"),
        { a = a, b = b }, desc)
    end
  end
  -- a batch of per-head sized products, and a shared right operand folded into one tall product
  local x, w = R(6, 27, 16), R(6, 16, 27)
  check(x:matmul(w), "np.matmul(x.astype(np.float64), w.astype(np.float64))", { x = x, w = w }, engine .. ": batched 27x27x16")
  local y, v = R(5, 40, 64), R(64, 96)
  check(y:matmul(v), "np.matmul(y.astype(np.float64), v.astype(np.float64))", { y = y, v = v }, engine .. ": folded 200x96x64")
end
test.throws(function() T.set_gemm_engine("mkl") end,
  'T.set_gemm_engine: the engine must be "auto", "openblas" or "onednn", got mkl', "an unknown engine is refused clearly")
test.throws(function() T.set_gemm_engine(42) end, "got 42", "T.set_gemm_engine needs a name")
test.is(T.gemm_engine(), "auto", "a refused engine leaves the current one")

-- shapes and a product by hand
local h = T.tensor({ { 1, 2 }, { 3, 4 } }):matmul(T.tensor({ { 5, 6 }, { 7, 8 } }))
test.is(h:totable(), { { 19, 22 }, { 43, 50 } }, "2x2 product by hand")
test.is(T.tensor({ 1, 2, 3 }):matmul(T.tensor({ 4, 5, 6 })):item(), 32.0, "dot product by hand")
test.is(T.tensor({ 1, 2, 3 }):matmul(T.tensor({ 4, 5, 6 })):dim(), 0, "1-d @ 1-d is 0-d")
test.is(R(2, 1, 3, 4):matmul(R(5, 4, 2)):shape(), { 2, 5, 3, 2 }, "[2,1,3,4] @ [5,4,2] broadcasts to [2,5,3,2]")
test.is(R(4):matmul(R(3, 4, 2)):shape(), { 3, 2 }, "1-d @ 3-d drops the prepended dim")
test.is(R(3, 2, 4):matmul(R(4)):shape(), { 3, 2 }, "3-d @ 1-d drops the appended dim")
test.is(R(0, 4):matmul(R(4, 3)):shape(), { 0, 3 }, "empty rows")
test.is(R(2, 0):matmul(R(0, 3)):totable(), { { 0, 0, 0 }, { 0, 0, 0 } }, "empty inner dim gives zeros")
local a0, b0 = R(3, 4), R(4, 2)
local ka, kb = a0:clone(), b0:clone()
local _ = a0:matmul(b0)
test.ok(a0:totable()[1][1] == ka:totable()[1][1] and (a0 - ka):abs():sum():item() == 0 and (b0 - kb):abs():sum():item() == 0,
  "matmul does not mutate its operands")

-- errors
test.throws(function() T.zeros(2, 3):matmul(T.zeros(4, 5)) end, "matmul: [2,3] @ [4,5]: inner dimensions 3 and 4 differ",
  "inner mismatch message")
test.throws(function() T.zeros(3):matmul(T.zeros(4)) end, "inner dimensions 3 and 4 differ", "1-d mismatch")
test.throws(function() T.zeros(2, 2, 3):matmul(T.zeros(3, 3, 4)) end,
  "matmul: [2,2,3] @ [3,3,4]: batch dimensions 2 and 3 cannot be broadcast", "batch mismatch")
test.throws(function() T.zeros(2, 3, "int32"):matmul(T.zeros(3, 2)) end, "matmul: needs float32 operands", "int32 operand")
test.throws(function() T.tensor(2):matmul(T.zeros(2)) end, "matmul: [] @ [2]: both operands need at least one dimension",
  "0-d operand")
test.throws(function() T.zeros(2, 3):matmul(3) end, "expected a tensor", "matmul with a number")

local res = py:run()
for _, c in ipairs(checks) do test.close(c[1], res[c[2]], 1e-4, c[3]) end
test.done()
