-- Finite-difference gradient checks (T.gradcheck) of every differentiable op:
-- unary, binary with broadcasting both ways, reductions with dim/keepdim
-- variants, the softmax family, norms, max/min/topk/sort values, cumsum, every
-- matmul form, views of strided inputs, joining and indexing, where/masked_fill/
-- clamp, and the losses of milua.nn_core.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn_core"

T.seed(2024)

local function gc(desc, fn, inputs, opts)
  local ok, report = T.gradcheck(fn, inputs, opts)
  test.ok(ok, "gradcheck " .. desc)
  if not ok then test.diag(report) end
end
local function P(...) return T.randn(...):requires_grad(true) end
local function Ppos(...) return (T.rand(...) + 0.5):requires_grad(true) end   -- in [0.5, 1.5)

-- gradcheck itself must be able to fail: a function whose graph hides half of it
do
  local x = P(3)
  local ok = T.gradcheck(function(a) return a * T.no_grad(function() return a * 1 end) end, { x })
  test.ok(not ok, "gradcheck reports a wrong gradient")
  local ok2 = T.gradcheck(function(a) return (a * a):sum() end, { x })
  test.ok(ok2, "gradcheck accepts a right gradient")
  -- the tolerance follows the gradient's own size: the mean of 24 elements has gradient 1/24,
  -- and a backward that divides by 23 instead (4% off) must fail; the right one must pass
  local m = P(4, 6)
  test.ok(T.gradcheck(function(a) return a:mean() end, { m }), "gradcheck accepts the mean's 1/24")
  local ok3, why = T.gradcheck(function(a)
    local s = a:sum()
    return a:mean() + (s - s:detach()) * (1 / 23 - 1 / 24)   -- value: the mean; gradient: 1/23
  end, { m })
  test.ok(not ok3, "gradcheck rejects a gradient 4% too large on small gradients")
  test.like(why or "", "gradient scale", "the report names the element and the scale")
  local ok4 = T.gradcheck(function(a) return a * 10 + (a - a:detach()) * 0.4 end, { P(5) })
  test.ok(not ok4, "gradcheck rejects a gradient 4% off on large gradients")
end

-- ---- unary ----
local ux = P(3, 4)
local upos = Ppos(3, 4)
for _, op in ipairs({ "neg", "exp", "abs", "tanh", "sigmoid", "relu", "gelu", "sin", "cos", "square",
                      "floor", "ceil", "round", "sign" }) do
  gc(op, function(a) return a[op](a) end, { ux })
end
for _, op in ipairs({ "log", "sqrt", "rsqrt" }) do gc(op, function(a) return a[op](a) end, { upos }) end
gc("unary minus operator", function(a) return -a end, { ux })
gc("gelu around 0", function(a) return (a * 0.1):gelu() end, { ux })

-- ---- binary, broadcasting both ways ----
local bshapes = { { { 2, 3 }, { 2, 3 } }, { { 2, 3 }, { 3 } }, { { 3 }, { 2, 3 } }, { { 2, 1 }, { 1, 3 } },
                  { { 2, 1, 3 }, { 4, 1 } }, { {}, { 2, 2 } } }
for _, sh in ipairs(bshapes) do
  local tag = test.show(sh[1]) .. " with " .. test.show(sh[2])
  local a, b = P(table.unpack(sh[1])), P(table.unpack(sh[2]))
  local bp = Ppos(table.unpack(sh[2]))
  local ap = Ppos(table.unpack(sh[1]))
  gc("add " .. tag, function(x, y) return x + y end, { a, b })
  gc("sub " .. tag, function(x, y) return x - y end, { a, b })
  gc("mul " .. tag, function(x, y) return x * y end, { a, b })
  gc("div " .. tag, function(x, y) return x / y end, { a, bp })
  gc("pow " .. tag, function(x, y) return x:pow(y) end, { ap, b })
  gc("maximum " .. tag, function(x, y) return x:maximum(y) end, { a, b })
  gc("minimum " .. tag, function(x, y) return x:minimum(y) end, { a, b })
end
local s = P(2, 3)
gc("tensor + number", function(x) return x + 2 end, { s })
gc("number - tensor", function(x) return 2 - x end, { s })
gc("number * tensor", function(x) return 3 * x end, { s })
gc("number / tensor", function(x) return 1 / x end, { Ppos(2, 3) })
gc("tensor ^ number", function(x) return x ^ 3 end, { s })
gc("number ^ tensor", function(x) return 2 ^ x end, { s })
gc("x * x (one leaf twice)", function(x) return x * x end, { s })
gc("mul with an int32 operand", function(x) return x * T.tensor({ 1, -2, 3 }, "int32") end, { s })

-- ---- reductions ----
local r = P(3, 4, 2)
for d = 1, 3 do
  for _, kd in ipairs({ false, true }) do
    local tag = string.format("dim %d keepdim %s", d, tostring(kd))
    gc("sum " .. tag, function(x) return x:sum(d, kd) end, { r })
    gc("mean " .. tag, function(x) return x:mean(d, kd) end, { r })
    gc("var " .. tag, function(x) return x:var(d, kd) end, { r })
    gc("var biased " .. tag, function(x) return x:var(d, kd, false) end, { r })
    gc("std " .. tag, function(x) return x:std(d, kd) end, { r })
    gc("std biased " .. tag, function(x) return x:std(d, kd, false) end, { r })
    gc("max " .. tag, function(x) return (x:max(d, kd)) end, { r })
    gc("min " .. tag, function(x) return (x:min(d, kd)) end, { r })
    gc("logsumexp " .. tag, function(x) return x:logsumexp(d, kd) end, { r })
    for _, p in ipairs({ 1, 2, 3, math.huge }) do
      gc("norm p=" .. tostring(p) .. " " .. tag, function(x) return x:norm(p, d, kd) end, { r })
    end
  end
  gc("softmax dim " .. d, function(x) return x:softmax(d) end, { r })
  gc("log_softmax dim " .. d, function(x) return x:log_softmax(d) end, { r })
  gc("cumsum dim " .. d, function(x) return x:cumsum(d) end, { r })
  gc("sort values dim " .. d, function(x) return (x:sort(d)) end, { r })
  gc("sort descending values dim " .. d, function(x) return (x:sort(d, true)) end, { r })
  gc("topk values dim " .. d, function(x) return (x:topk(2, d)) end, { r })
  gc("topk smallest values dim " .. d, function(x) return (x:topk(1, d, false)) end, { r })
end
for _, name in ipairs({ "sum", "mean", "var", "std", "max", "min" }) do
  gc(name .. " of everything", function(x) return x[name](x) end, { r })
end
gc("sum of everything keepdim", function(x) return x:sum(nil, true) end, { r })
for _, p in ipairs({ 1, 2, 3, math.huge }) do
  gc("norm p=" .. tostring(p) .. " of everything", function(x) return x:norm(p) end, { r })
end
gc("logsumexp default dim", function(x) return x:logsumexp() end, { r })
gc("softmax of a 1-d tensor", function(x) return x:softmax() end, { P(5) })
gc("sum of a strided input", function(x) return x:t():sum(2) end, { P(3, 4) })
gc("softmax of a strided input", function(x) return x:permute(2, 3, 1):softmax(2) end, { r })
gc("logsumexp of a strided input", function(x) return x:transpose(1, 3):logsumexp(1, true) end, { r })
gc("cumsum of a strided input", function(x) return x:t():cumsum(1) end, { P(3, 4) })
gc("sort of a strided input", function(x) return (x:t():sort(1)) end, { P(3, 4) })

-- ---- matmul, every form ----
local mforms = {
  { { 4 }, { 4 } }, { { 4 }, { 4, 3 } }, { { 2, 4 }, { 4 } }, { { 2, 4 }, { 4, 3 } },
  { { 2, 2, 4 }, { 2, 4, 3 } }, { { 2, 2, 4 }, { 4, 3 } }, { { 2, 4 }, { 2, 4, 3 } }, { { 2, 2, 4 }, { 4 } },
  { { 4 }, { 2, 4, 3 } }, { { 2, 1, 3, 4 }, { 3, 4, 2 } }, { { 1, 2, 2, 3 }, { 2, 1, 3, 2 } },
}
for _, f in ipairs(mforms) do
  gc("matmul " .. test.show(f[1]) .. " @ " .. test.show(f[2]), function(a, b) return a:matmul(b) end,
    { P(table.unpack(f[1])), P(table.unpack(f[2])) })
end
gc("matmul of transposed operands", function(a, b) return a:t():matmul(b:t()) end, { P(4, 2), P(3, 4) })
gc("matmul of a narrowed operand", function(a, b) return a:narrow(2, 2, 3):matmul(b) end, { P(2, 5), P(3, 2) })
gc("matmul of a permuted batch", function(a, b) return a:permute(2, 1, 3):matmul(b) end, { P(3, 2, 4), P(4, 2) })
gc("matmul x @ x", function(a) return a:matmul(a) end, { P(3, 3) })
gc("matmul with only the left requiring grad", function(a) return a:matmul(T.ones(3, 2)) end, { P(2, 3) })
gc("matmul with only the right requiring grad", function(b) return T.ones(2, 3):matmul(b) end, { P(3, 2) })
gc("T.matmul", function(a, b) return T.matmul(a, b) end, { P(2, 3), P(3, 2) })

-- ---- views of strided inputs ----
local v = P(3, 4, 2)
gc("narrow", function(x) return x:narrow(2, 2, 2) end, { v })
gc("narrow of a transpose", function(x) return x:transpose(1, 2):narrow(1, 1, 3) end, { v })
gc("select", function(x) return x:select(3, 2) end, { v })
gc("select of a permute", function(x) return x:permute(3, 1, 2):select(2, 3) end, { v })
gc("t[i] indexing", function(x) return x[2] end, { v })
gc("t[-1][2] indexing", function(x) return x[-1][2] end, { v })
gc("permute", function(x) return x:permute(2, 3, 1) end, { v })
gc("transpose", function(x) return x:transpose(1, 3) end, { v })
gc("t()", function(x) return x:t() end, { P(2, 3) })
gc("expand", function(x) return x:expand(3, 2, 4) end, { P(2, 1) })
gc("expand of a transpose", function(x) return x:t():expand(2, 3, 4) end, { P(4, 3) })
gc("view", function(x) return x:view(4, 6) end, { v })
gc("view of a narrowed tensor", function(x) return x:narrow(1, 2, 2):view(2, 8) end, { v })
gc("reshape of a transpose (copies)", function(x) return x:transpose(1, 2):reshape(-1) end, { v })
gc("reshape of a permute (copies)", function(x) return x:permute(3, 1, 2):reshape(2, 12) end, { v })
gc("squeeze", function(x) return x:squeeze() end, { P(2, 1, 3, 1) })
gc("squeeze(dim)", function(x) return x:squeeze(2) end, { P(2, 1, 3, 1) })
gc("squeeze of a transpose", function(x) return x:transpose(1, 3):squeeze(3) end, { P(2, 1, 3) })
gc("unsqueeze", function(x) return x:unsqueeze(2) end, { v })
gc("unsqueeze of a transpose", function(x) return x:t():unsqueeze(-1) end, { P(2, 3) })
gc("flatten", function(x) return x:flatten() end, { v })
gc("flatten of a permute", function(x) return x:permute(2, 1, 3):flatten(2) end, { v })
gc("contiguous of a transpose", function(x) return x:t():contiguous() end, { P(2, 3) })
gc("clone", function(x) return x:clone() end, { v })
gc("float() of a float tensor", function(x) return x:float() * 2 end, { P(3) })
gc("a chain of views", function(x) return x:permute(3, 2, 1):narrow(2, 2, 3):select(3, 2):unsqueeze(1):expand(2, 2, 3) end, { v })

-- ---- joining, indexing, selection ----
gc("cat", function(a, b) return T.cat({ a, b }, 2) end, { P(2, 3), P(2, 2) })
gc("cat dim 1 of strided inputs", function(a, b) return T.cat({ a:t(), b }) end, { P(3, 2), P(1, 3) })
gc("cat of 10 tensors", function(a) local l = {} for i = 1, 10 do l[i] = a * i end return T.cat(l) end, { P(2) })
gc("cat of one tensor twice", function(a) return T.cat({ a, a }) end, { P(2) })
gc("stack", function(a, b) return T.stack({ a, b }, 2) end, { P(2, 3), P(2, 3) })
gc("stack at the end", function(a, b) return T.stack({ a, b }, -1) end, { P(2, 3), P(2, 3) })
gc("index_select with repeats", function(x) return x:index_select(1, T.tensor({ 3, 1, 3 }, "int32")) end, { P(3, 2) })
gc("index_select dim 2", function(x) return x:index_select(2, { 2, 2, 1 }) end, { P(3, 2) })
gc("index_select of a transpose", function(x) return x:t():index_select(2, { 3, 1 }) end, { P(3, 2) })
gc("gather", function(x) return x:gather(2, T.tensor({ { 1, 1, 3 }, { 2, 3, 3 } }, "int32")) end, { P(2, 3) })
gc("gather dim 1", function(x) return x:gather(1, T.tensor({ { 2, 1, 2 } }, "int32")) end, { P(2, 3) })
gc("scatter_add (tensor and src)", function(t, src)
  return t:scatter_add(2, T.tensor({ { 1, 3, 1 }, { 2, 2, 3 } }, "int32"), src)
end, { P(2, 3), P(2, 3) })
gc("scatter_add (src only)", function(src)
  return T.zeros(2, 4):scatter_add(2, T.tensor({ { 4, 4 }, { 1, 2 } }, "int32"), src)
end, { P(2, 2) })
local cond = T.tensor({ { 1, 0, 1 }, { 0, 1, 0 } })
gc("where (both branches)", function(a, b) return T.where(cond, a, b) end, { P(2, 3), P(2, 3) })
gc("where with broadcast branches", function(a, b) return T.where(cond, a, b) end, { P(3), P(2, 1) })
gc("where with a number", function(a) return T.where(cond, a, 0) end, { P(2, 3) })
gc("x:where(cond, y)", function(a, b) return a:where(cond, b) end, { P(2, 3), P(3) })
gc("masked_fill", function(a) return a:masked_fill(cond, -3) end, { P(2, 3) })
gc("masked_fill with a broadcast mask", function(a) return a:masked_fill(T.tensor({ 0, 1, 0 }), 5) end, { P(2, 3) })
gc("masked_fill then softmax (causal pattern)", function(a)
  local mask = T.arange(3):view(3, 1):lt(T.arange(3):view(1, 3))
  return a:masked_fill(mask, -math.huge):softmax(2)
end, { P(3, 3) })
local cl = T.tensor({ { -2.1, -0.5, 0.3 }, { 0.9, 1.6, 3.2 } }):requires_grad(true)
gc("clamp", function(a) return a:clamp(-1, 1) end, { cl })
gc("clamp min only", function(a) return a:clamp(0) end, { cl })
gc("clamp max only", function(a) return a:clamp(nil, 0) end, { cl })

-- ---- losses ----
local logits = P(2, 3, 5)
local targets = T.tensor({ { 1, 5, 3 }, { 2, 2, 4 } }, "int32")
local mask = T.tensor({ { 1, 0, 1 }, { 1, 1, 0 } })
gc("cross_entropy", function(l) return nn.cross_entropy(l, targets) end, { logits })
gc("cross_entropy with a mask", function(l) return nn.cross_entropy(l, targets, mask) end, { logits })
gc("cross_entropy of 2-d logits", function(l) return nn.cross_entropy(l, T.tensor({ 3, 1 }, "int32")) end, { P(2, 4) })
gc("cross_entropy of a strided input", function(l) return nn.cross_entropy(l:transpose(1, 2), targets) end, { P(3, 2, 5) })
gc("mse", function(a, b) return nn.mse(a, b) end, { P(2, 3), P(2, 3) })
gc("mse with broadcasting", function(a, b) return nn.mse(a, b) end, { P(2, 3), P(3) })

-- ---- a small network end to end ----
gc("two-layer MLP", function(x, w1, b1, w2)
  return (x:matmul(w1) + b1):gelu():matmul(w2):log_softmax(2)
end, { P(3, 4), P(4, 5), P(5), P(5, 2) })
gc("attention-like block", function(q, k, vv)
  local scores = q:matmul(k:transpose(2, 3)) / 2
  return scores:softmax(3):matmul(vv)
end, { P(2, 3, 4), P(2, 3, 4), P(2, 3, 2) })
gc("layer norm by hand", function(x)
  local c = x - x:mean(2, true)
  return c / (c:square():mean(2, true) + 1e-5):sqrt()
end, { P(3, 4) })

test.done()
