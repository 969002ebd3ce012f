-- Reductions against NumPy along every dim of a strided 3-d input, with and
-- without keepdim, and over all elements: sum mean var std max min argmax
-- argmin logsumexp softmax log_softmax norm topk sort cumsum.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local test = require "milua.test"
local T = require "milua.tensor"
local np = require "tensor_np"
if not np.available() then test.bail("python3-numpy is needed at " .. np.python .. " (make deps installs it)") end

T.seed(21)
local py = np.script()
py:code([[
def lse(a, ax, kd):
    a = a.astype(np.float64); m = np.max(a, axis=ax, keepdims=True)
    r = np.log(np.sum(np.exp(a - m), axis=ax, keepdims=True)) + m
    return r if kd else np.squeeze(r, axis=ax)
def softmax(a, ax):
    a = a.astype(np.float64); e = np.exp(a - np.max(a, axis=ax, keepdims=True))
    return e / e.sum(axis=ax, keepdims=True)
def pnorm(a, p, ax, kd):
    a = np.abs(a.astype(np.float64))
    if p == float('inf'): return np.max(a, axis=ax, keepdims=kd)
    return np.sum(a ** p, axis=ax, keepdims=kd) ** (1.0 / p)
def desc_argsort(a, ax): return np.argsort(-a, axis=ax, kind='stable')
]])
local checks = {}
local function check(got, expr, vars, tol, desc)
  checks[#checks + 1] = { got, py:emit(expr, vars), tol, desc }
end

-- a strided input: [4,5,6] seen through a permutation (shape [5,6,4]), plus a narrowed one
local base = T.randn(4, 5, 6)
local inputs = {
  { base:permute(2, 3, 1), "np.transpose(b, (1, 2, 0))", "permuted" },
  { base:narrow(3, 2, 4):transpose(1, 2), "np.swapaxes(b[:, :, 1:5], 0, 1)", "narrowed+transposed" },
}
for _, inp in ipairs(inputs) do
  local x, xe, name = inp[1], inp[2], inp[3]
  local vars = { b = base }
  for d = 1, 3 do
    local ax = d - 1
    for _, kd in ipairs({ false, true }) do
      local K = kd and "True" or "False"
      local tag = string.format("%s dim %d keepdim %s", name, d, tostring(kd))
      check(x:sum(d, kd), string.format("np.sum(%s.astype(np.float64), axis=%d, keepdims=%s)", xe, ax, K), vars, 1e-5, "sum " .. tag)
      check(x:mean(d, kd), string.format("np.mean(%s.astype(np.float64), axis=%d, keepdims=%s)", xe, ax, K), vars, 1e-6, "mean " .. tag)
      check(x:var(d, kd), string.format("np.var(%s.astype(np.float64), axis=%d, ddof=1, keepdims=%s)", xe, ax, K), vars, 1e-5, "var " .. tag)
      check(x:std(d, kd, false), string.format("np.std(%s.astype(np.float64), axis=%d, ddof=0, keepdims=%s)", xe, ax, K), vars, 1e-5, "std biased " .. tag)
      local mv, mi = x:max(d, kd)
      check(mv, string.format("np.max(%s, axis=%d, keepdims=%s)", xe, ax, K), vars, 0, "max values " .. tag)
      check(mi, string.format("np.argmax(%s, axis=%d, keepdims=%s) + 1", xe, ax, K), vars, 0, "max indices " .. tag)
      local nv, ni = x:min(d, kd)
      check(nv, string.format("np.min(%s, axis=%d, keepdims=%s)", xe, ax, K), vars, 0, "min values " .. tag)
      check(ni, string.format("np.argmin(%s, axis=%d, keepdims=%s) + 1", xe, ax, K), vars, 0, "min indices " .. tag)
      check(x:argmax(d, kd), string.format("np.argmax(%s, axis=%d, keepdims=%s) + 1", xe, ax, K), vars, 0, "argmax " .. tag)
      check(x:argmin(d, kd), string.format("np.argmin(%s, axis=%d, keepdims=%s) + 1", xe, ax, K), vars, 0, "argmin " .. tag)
      check(x:logsumexp(d, kd), string.format("lse(%s, %d, %s)", xe, ax, K), vars, 1e-5, "logsumexp " .. tag)
      for _, p in ipairs({ 1, 2, 3, math.huge }) do
        local pl = p == math.huge and "float('inf')" or tostring(p)
        check(x:norm(p, d, kd), string.format("pnorm(%s, %s, %d, %s)", xe, pl, ax, K), vars, 1e-5,
          "norm p=" .. tostring(p) .. " " .. tag)
      end
    end
    local tag = name .. " dim " .. d
    check(x:std(d), string.format("np.std(%s.astype(np.float64), axis=%d, ddof=1)", xe, ax), vars, 1e-5, "std unbiased " .. tag)
    check(x:var(d, false, false), string.format("np.var(%s.astype(np.float64), axis=%d)", xe, ax), vars, 1e-5, "var biased " .. tag)
    check(x:softmax(d), string.format("softmax(%s, %d)", xe, ax), vars, 1e-6, "softmax " .. tag)
    check(x:log_softmax(d), string.format("np.log(softmax(%s, %d))", xe, ax), vars, 1e-5, "log_softmax " .. tag)
    check(x:cumsum(d), string.format("np.cumsum(%s.astype(np.float64), axis=%d)", xe, ax), vars, 1e-5, "cumsum " .. tag)
    local sv, si = x:sort(d)
    check(sv, string.format("np.sort(%s, axis=%d)", xe, ax), vars, 0, "sort values " .. tag)
    check(si, string.format("np.argsort(%s, axis=%d, kind='stable') + 1", xe, ax), vars, 0, "sort indices " .. tag)
    local dv, di = x:sort(d, true)
    check(dv, string.format("-np.sort(-%s, axis=%d)", xe, ax), vars, 0, "sort descending values " .. tag)
    check(di, string.format("desc_argsort(%s, %d) + 1", xe, ax), vars, 0, "sort descending indices " .. tag)
    local k = 2
    local tv, ti = x:topk(k, d)
    check(tv, string.format("np.take(-np.sort(-%s, axis=%d), range(%d), axis=%d)", xe, ax, k, ax), vars, 0, "topk values " .. tag)
    check(ti, string.format("np.take(desc_argsort(%s, %d), range(%d), axis=%d) + 1", xe, ax, k, ax), vars, 0, "topk indices " .. tag)
    local lv, li = x:topk(k, d, false)
    check(lv, string.format("np.take(np.sort(%s, axis=%d), range(%d), axis=%d)", xe, ax, k, ax), vars, 0, "topk smallest values " .. tag)
    check(li, string.format("np.take(np.argsort(%s, axis=%d, kind='stable'), range(%d), axis=%d) + 1", xe, ax, k, ax), vars, 0,
      "topk smallest indices " .. tag)
  end
  -- over all elements
  check(x:sum(), string.format("np.sum(%s.astype(np.float64))", xe), vars, 1e-4, "sum all " .. name)
  check(x:mean(), string.format("np.mean(%s.astype(np.float64))", xe), vars, 1e-6, "mean all " .. name)
  check(x:var(), string.format("np.var(%s.astype(np.float64), ddof=1)", xe), vars, 1e-5, "var all " .. name)
  check(x:std(), string.format("np.std(%s.astype(np.float64), ddof=1)", xe), vars, 1e-5, "std all " .. name)
  check(x:max(), string.format("np.max(%s)", xe), vars, 0, "max all " .. name)
  check(x:min(), string.format("np.min(%s)", xe), vars, 0, "min all " .. name)
  check(x:argmax(), string.format("np.argmax(%s) + 1", xe), vars, 0, "argmax all (flat, 1-based) " .. name)
  check(x:argmin(), string.format("np.argmin(%s) + 1", xe), vars, 0, "argmin all " .. name)
  check(x:norm(), string.format("np.sqrt(np.sum(%s.astype(np.float64) ** 2))", xe), vars, 1e-5, "norm all " .. name)
  check(x:norm(1), string.format("np.sum(np.abs(%s.astype(np.float64)))", xe), vars, 1e-4, "norm 1 all " .. name)
  check(x:logsumexp(), string.format("lse(%s, -1, False)", xe), vars, 1e-5, "logsumexp default last dim " .. name)
  check(x:softmax(), string.format("softmax(%s, -1)", xe), vars, 1e-6, "softmax default last dim " .. name)
  check(x:cumsum(), string.format("np.cumsum(%s.astype(np.float64), axis=-1)", xe), vars, 1e-5, "cumsum default last dim " .. name)
  check(x:sum(-1), string.format("np.sum(%s.astype(np.float64), axis=-1)", xe), vars, 1e-5, "sum(-1) " .. name)
end

-- ---- shapes, dtypes and values by hand ----
local m = T.tensor({ { 1, 5, 3 }, { 4, 2, 6 } })
test.is(m:sum():shape(), {}, "sum() is 0-d")
test.is(m:sum(nil, true):shape(), { 1, 1 }, "sum(nil, true) keeps every dim")
test.is(m:sum(1):totable(), { 5, 7, 9 }, "sum(1)")
test.is(m:sum(2, true):totable(), { { 9 }, { 12 } }, "sum(2, true)")
local mv, mi = m:max(2)
test.is(mv:totable(), { 5, 6 }, "max(2) values")
test.is(mi:totable(), { 2, 3 }, "max(2) 1-based indices")
test.is(mi:dtype(), "int32", "max indices are int32")
test.is(m:argmax():item(), 6, "argmax() over all is the flat 1-based index")
test.is(m:argmin(1):totable(), { 1, 2, 1 }, "argmin(1)")
test.is(T.tensor({ 3, 7, 7, 1 }):argmax():item(), 2, "argmax picks the first of equal maxima")
local tv, ti = T.tensor({ 2, 9, 2, 9 }):topk(2)
test.is({ tv:totable(), ti:totable() }, { { 9, 9 }, { 2, 4 } }, "topk ties keep the earlier index first")
local sv, si = T.tensor({ 3, 1, 2, 1 }):sort()
test.is({ sv:totable(), si:totable() }, { { 1, 1, 2, 3 }, { 2, 4, 3, 1 } }, "sort is stable")
test.is(T.tensor({ 1, 0 / 0, 3 }):max():item() ~= T.tensor({ 1, 0 / 0, 3 }):max():item(), true, "max propagates NaN")
test.is(T.tensor({ 1, 0 / 0, 3 }):argmax():item(), 2, "argmax points at the NaN")
local ints = T.tensor({ { 1, 2 }, { 3, 4 } }, "int32")
test.is(ints:sum():dtype(), "int32", "sum of int32 stays int32 (counts)")
test.is(ints:sum(1):totable(), { 4, 6 }, "int32 sum(1)")
test.is(ints:mean():dtype(), "float32", "mean of int32 is float32")
test.is(ints:mean():item(), 2.5, "mean of int32")
test.is(ints:max():item(), 4, "max of int32")
test.is(ints:max():dtype(), "int32", "max of int32 stays int32")
local bigids = T.tensor({ { 16777216, 16777217, 5 }, { -16777217, -16777216, 0 } }, "int32")
test.is(bigids:argmax(2):totable(), { 2, 3 }, "int32 argmax is exact beyond float precision")
test.is(bigids:argmin(2):totable(), { 3, 1 }, "int32 argmin is exact beyond float precision")
local bv, bi = bigids:max(2)
test.is({ bv:totable(), bi:totable() }, { { 16777217, 0 }, { 2, 3 } }, "int32 max values and indices beyond 2^24")
test.is(bigids:max():item(), 16777217, "int32 max of everything beyond 2^24")
local bs, bsi = bigids:sort(2)
test.is({ bs:totable(), bsi:totable() }, { { { 5, 16777216, 16777217 }, { -16777217, -16777216, 0 } }, { { 3, 1, 2 }, { 1, 2, 3 } } }, "int32 sort is exact beyond 2^24")
local bt, bti = bigids:topk(1, 2)
test.is({ bt:totable(), bti:totable() }, { { { 16777217 }, { 0 } }, { { 2 }, { 3 } } }, "int32 topk is exact beyond 2^24")
test.is(select(2, T.tensor({ 16777217, 16777216 }, "int32"):sort(1, true)):totable(), { 1, 2 }, "int32 descending sort beyond 2^24")
test.close(T.tensor({ 1, 2, 3, 4 }):var(), 5 / 3, 1e-6, "var is unbiased by default")
test.close(T.tensor({ 1, 2, 3, 4 }):var(nil, false, false), 1.25, 1e-6, "var(nil, false, false) is biased")
test.close(T.tensor({ 1, 2, 3, 4 }):std(), math.sqrt(5 / 3), 1e-6, "std unbiased")
test.close(T.tensor({ 3, 4 }):norm(), 5, 1e-6, "norm of (3, 4)")
test.close(T.tensor({ -3, 4 }):norm(math.huge), 4, 0, "inf norm")
test.close(T.tensor({ 1000, 1000 }):logsumexp(), 1000 + math.log(2), 1e-3, "logsumexp is stable for large inputs")
test.close(T.tensor({ 1000, 0 }):softmax(), { 1, 0 }, 1e-7, "softmax is stable for large inputs")
test.close(T.tensor({ -1000, 0 }):log_softmax(), { -1000, 0 }, 1e-3, "log_softmax is stable")
test.close(T.tensor({ 0, -math.huge }):softmax(), { 1, 0 }, 0, "softmax of -inf is 0")
test.is(T.tensor({ 1, 2, 3 }):cumsum():totable(), { 1, 3, 6 }, "cumsum by hand")
test.is(T.tensor(5):sum():item(), 5.0, "sum of a 0-d tensor")
test.is(T.zeros(0):sum():item(), 0.0, "sum of an empty tensor is 0")
test.is(T.zeros(2, 0):sum(2):totable(), { 0, 0 }, "sum over an empty dim is 0")
local big = T.ones(1000000)
test.is(big:sum():item(), 1000000.0, "sum of a million ones is exact")
local src = T.randn(3, 4)
local keep = src:clone()
local _ = src:sum(1) + src:mean() + src:var() + src:softmax(1):sum() + src:norm() + src:cumsum(2):sum()
_ = src:sort(1); _ = src:topk(2); _ = src:max(1); _ = src:logsumexp(1)
test.is(src, keep, "reductions do not mutate their input")

-- ---- errors ----
test.throws(function() m:sum(3) end, "sum: dim 3 is out of range for a 2-d tensor", "sum dim too large")
test.throws(function() m:sum(0) end, "sum: dim 0 is out of range", "sum dim 0")
test.throws(function() m:mean(-3) end, "mean: dim -3", "mean dim too negative")
test.throws(function() m:max(3) end, "max: dim 3", "max bad dim")
test.throws(function() m:softmax(3) end, "softmax: dim 3", "softmax bad dim")
test.throws(function() m:topk(4) end, "topk: k = 4 is out of range for a dim of size 3", "topk k too large")
test.throws(function() m:topk(-1) end, "topk: k = -1", "topk k negative")
test.throws(function() T.tensor({ 1 }):var() end, "var: 1 element(s) along the dim are too few", "var of one element")
test.throws(function() m:norm(0) end, "norm: p must be positive", "norm p = 0")
test.throws(function() T.zeros(0):mean() end, "mean: empty tensor", "mean of an empty tensor")
test.throws(function() T.zeros(2, 0):max(2) end, "max: cannot reduce an empty dimension", "max over an empty dim")
test.throws(function() T.zeros(0):argmax() end, "argmax", "argmax of an empty tensor")
test.throws(function() T.tensor(1):sort() end, "sort: needs at least a 1-d tensor", "sort of a 0-d tensor")
test.throws(function() m:cumsum(5) end, "cumsum: dim 5", "cumsum bad dim")

local res = py:run()
for _, c in ipairs(checks) do test.close(c[1], res[c[2]], c[3], c[4]) end
test.done()
