-- Joining and indexing with 1-based indices against NumPy: cat, stack,
-- index_select, gather, scatter_add, one_hot; out-of-range indices name the value.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local test = require "milua.test"
local T = require "milua.tensor"
local np = require "tensor_np"
if not np.available() then test.bail("python3-numpy is needed at " .. np.python .. " (make deps installs it)") end

T.seed(41)
local py = np.script()
local checks = {}
local function check(got, expr, vars, desc)
  checks[#checks + 1] = { got, py:emit(expr, vars), desc }
end

-- ---- cat / stack ----
local a, b, c = T.randn(2, 3, 4), T.randn(2, 1, 4), T.randn(2, 5, 4)
check(T.cat({ a, b, c }, 2), "np.concatenate([a, b, c], axis=1)", { a = a, b = b, c = c }, "cat dim 2")
check(T.cat({ a, a }), "np.concatenate([a, a], axis=0)", { a = a }, "cat default dim 1")
check(T.cat({ a, a:narrow(3, 1, 2) }, -1), "np.concatenate([a, a[:, :, 0:2]], axis=2)", { a = a },
  "cat dim -1")
check(T.cat({ a:transpose(1, 3), c:transpose(1, 3) }, 2), "np.concatenate([a.transpose(2, 1, 0), c.transpose(2, 1, 0)], axis=1)",
  { a = a, c = c }, "cat of transposed inputs")
local many = {}
for i = 1, 11 do many[i] = T.full({ 1, 2 }, i) end
check(T.cat(many), "np.array([[i, i] for i in range(1, 12)])", nil, "cat of 11 tensors (more than one node's inputs)")
check(T.stack({ a, a * 2, a * 3 }), "np.stack([a, a * 2, a * 3])", { a = a }, "stack default dim 1")
check(T.stack({ a, a * 2 }, 3), "np.stack([a, a * 2], axis=2)", { a = a }, "stack dim 3")
check(T.stack({ a, a * 2 }, 4), "np.stack([a, a * 2], axis=3)", { a = a }, "stack at the end")
check(T.stack({ a, a * 2 }, -1), "np.stack([a, a * 2], axis=-1)", { a = a }, "stack dim -1")
check(T.stack({ a:permute(3, 2, 1), a:permute(3, 2, 1) }, 2), "np.stack([a.transpose(2, 1, 0)] * 2, axis=1)",
  { a = a }, "stack of permuted inputs")
local ic = T.cat({ T.tensor({ 1, 2 }, "int32"), T.tensor({ 3 }, "int32") })
test.is({ ic:dtype(), ic:totable() }, { "int32", { 1, 2, 3 } }, "cat of int32 stays int32")
test.is(T.stack({ T.tensor(1), T.tensor(2) }):totable(), { 1, 2 }, "stack of 0-d tensors")
local parts = { T.zeros(2), T.ones(2) }
local joined = T.cat(parts)
joined[1] = 5
test.is(parts[1]:totable(), { 0, 0 }, "cat copies: writing the result leaves the inputs alone")

-- ---- index_select ----
local x = T.randn(4, 5, 3)
local idx = T.tensor({ 3, 1, 3, 4 }, "int32")
check(x:index_select(1, idx), "np.take(x, [2, 0, 2, 3], axis=0)", { x = x }, "index_select dim 1")
check(x:index_select(2, idx), "np.take(x, [2, 0, 2, 3], axis=1)", { x = x }, "index_select dim 2")
check(x:index_select(3, { 3, 2 }), "np.take(x, [2, 1], axis=2)", { x = x }, "index_select with a Lua list")
check(x:index_select(-1, T.tensor({ 1 }, "int32")), "np.take(x, [0], axis=2)", { x = x }, "index_select dim -1")
check(x:transpose(1, 2):index_select(2, idx), "np.take(x.transpose(1, 0, 2), [2, 0, 2, 3], axis=1)", { x = x },
  "index_select of a transpose")
check(x:index_select(1, T.tensor({ 1, 2, 3, 4, 5 }, "int32"):narrow(1, 2, 3)), "np.take(x, [1, 2, 3], axis=0)", { x = x },
  "index_select with a narrowed index")
local emb = T.randn(10, 4)
local tok = T.tensor({ 10, 1, 5 }, "int32")
check(emb:index_select(1, tok), "e[[9, 0, 4]]", { e = emb }, "embedding lookup: id t is row t")
test.is(T.tensor({ 10, 20, 30 }, "int32"):index_select(1, { 3, 1 }):totable(), { 30, 10 }, "index_select of int32")
test.is(x:index_select(1, T.tensor({}, "int32")):shape(), { 0, 5, 3 }, "index_select with no indices")

-- ---- gather ----
local g = T.randn(3, 4)
local gi = T.tensor({ { 1, 4 }, { 2, 2 }, { 4, 3 } }, "int32")
check(g:gather(2, gi), "np.take_along_axis(g, np.array([[0, 3], [1, 1], [3, 2]]), axis=1)", { g = g }, "gather dim 2")
local gi1 = T.tensor({ { 3, 1, 2, 3 } }, "int32")
check(g:gather(1, gi1), "np.take_along_axis(g, np.array([[2, 0, 1, 2]]), axis=0)", { g = g }, "gather dim 1")
check(g:t():gather(1, T.tensor({ { 1, 2, 4 } }, "int32"):expand(3, 3)),
  "np.take_along_axis(g.T, np.array([[0, 1, 3]] * 3), axis=0)", { g = g }, "gather of a transpose with an expanded index")
local g3 = T.randn(2, 3, 4)
local gi3 = T.randint(1, 4, 2, 2, 4)
check(g3:gather(2, gi3), "np.take_along_axis(g, i - 1, axis=1)", { g = g3, i = gi3 }, "gather 3-d along dim 2")
local logp = T.randn(2, 5):log_softmax()
local target = T.tensor({ 5, 2 }, "int32")
test.close(logp:gather(2, target:view(2, 1)):view(2), { logp[1][5]:item(), logp[2][2]:item() }, 0,
  "gather picks the target's log-probability")

-- ---- scatter_add ----
local base = T.randn(3, 5)
local si = T.tensor({ { 1, 5, 1 }, { 2, 2, 2 }, { 5, 4, 3 } }, "int32")
local src = T.randn(3, 3)
check(base:scatter_add(2, si, src), [=[
(lambda b, s: [np.add.at(b, (np.arange(3)[:, None].repeat(3, 1), np.array([[0, 4, 0], [1, 1, 1], [4, 3, 2]])), s), b][1])(b.copy(), s)
]=], { b = base, s = src }, "scatter_add dim 2 accumulates repeated indices")
local si1 = T.tensor({ { 3, 1, 1, 2, 3 } }, "int32")
local src1 = T.randn(1, 5)
check(base:scatter_add(1, si1, src1), [=[
(lambda b, s: [np.add.at(b, (np.array([[2, 0, 0, 1, 2]]), np.arange(5)[None, :]), s), b][1])(b.copy(), s)
]=], { b = base, s = src1 }, "scatter_add dim 1")
local keep = base:clone()
local _ = base:scatter_add(2, si, src)
test.is(base, keep, "scatter_add does not mutate the tensor")
test.is(T.zeros(4):scatter_add(1, T.tensor({ 2, 2, 4 }, "int32"), T.tensor({ 1, 2, 3 })):totable(), { 0, 3, 0, 3 },
  "scatter_add by hand")

-- ---- one_hot ----
local oh = T.one_hot(T.tensor({ 3, 1, 2 }, "int32"), 4)
test.is(oh:totable(), { { 0, 0, 1, 0 }, { 1, 0, 0, 0 }, { 0, 1, 0, 0 } }, "one_hot of 1-based ids")
test.is(oh:dtype(), "float32", "one_hot is float32")
test.is(T.one_hot(T.tensor({ { 1, 2 } }, "int32"), 2):shape(), { 1, 2, 2 }, "one_hot appends a dim")
test.is(T.one_hot({ 2 }, 3):totable(), { { 0, 1, 0 } }, "one_hot of a Lua list")
local rid = T.randint(1, 7, 3, 4)
check(T.one_hot(rid, 6), "np.eye(6, dtype=np.float32)[i - 1]", { i = rid }, "one_hot against np.eye")

-- ---- out-of-range and malformed indices ----
test.throws(function() x:index_select(1, T.tensor({ 1, 5 }, "int32")) end, "index_select: index 5 is out of range 1..4",
  "index_select index too large names the value")
test.throws(function() x:index_select(1, T.tensor({ 0 }, "int32")) end, "index_select: index 0 is out of range 1..4",
  "index_select index 0 (indices are 1-based)")
test.throws(function() x:index_select(1, { -1 }) end, "index -1 is out of range", "negative index in a list")
test.throws(function() x:index_select(1, { 1.5 }) end, "index_select: index entry 1 is not an integer", "fractional list entry")
test.throws(function() x:index_select(1, { 4294967297 }) end, "index_select: index 4294967297 is out of range",
  "a huge list index is out of range, not wrapped")
test.throws(function() x:index_select(1, T.tensor({ 1 })) end, "index_select: indices must be int32, got float32",
  "float indices")
test.throws(function() x:index_select(1, T.tensor({ { 1 } }, "int32")) end, "index_select: the index must be 1-d",
  "2-d index")
test.throws(function() x:index_select(4, idx) end, "index_select: dim 4", "index_select bad dim")
test.throws(function() x:index_select(1, "x") end, "index_select: expected an int32 tensor", "string index")
test.throws(function() g:gather(2, T.tensor({ { 1, 5 }, { 1, 1 }, { 1, 1 } }, "int32")) end, "gather: index 5 is out of range 1..4",
  "gather index too large")
test.throws(function() g:gather(2, T.tensor({ 1, 2 }, "int32")) end, "gather: index [2] must have as many dims as the tensor [3,4]",
  "gather index with too few dims")
test.throws(function() g:gather(2, T.tensor({ { 1 }, { 1 } }, "int32")) end, "gather: index [2,1] and tensor [3,4] differ at dim 1",
  "gather index of another size")
test.throws(function() base:scatter_add(2, T.tensor({ { 6, 1, 1 }, { 1, 1, 1 }, { 1, 1, 1 } }, "int32"), src) end,
  "scatter_add: index 6 is out of range 1..5", "scatter_add index too large")
test.throws(function() base:scatter_add(2, si, T.randn(3, 2)) end, "scatter_add: src [3,2] must have the index's shape [3,3]",
  "scatter_add src shape")
test.throws(function() T.one_hot(T.tensor({ 1, 5 }, "int32"), 4) end, "one_hot: index 5 is out of range 1..4",
  "one_hot id too large")
test.throws(function() T.one_hot(T.tensor({ 1 }, "int32"), 0) end, "one_hot: number of classes must be positive, got 0",
  "one_hot with 0 classes")
test.throws(function() T.one_hot(T.tensor({ 1 }, "int32"), "x") end, "one_hot", "one_hot with a string class count")
test.throws(function() T.cat({ a, T.randn(3, 3, 4) }, 2) end, "cat: tensor 2 has shape [3,3,4] float32, which does not match [2,3,4] float32 outside dim 2",
  "cat shape mismatch names both shapes")
test.throws(function() T.cat({ a, a:int() }) end, "cat: tensor 2 has shape [2,3,4] int32", "cat dtype mismatch")
test.throws(function() T.cat({}) end, "cat: expected a non-empty list of tensors", "cat of nothing")
test.throws(function() T.cat({ a, 3 }) end, "cat: element 2 of the list is a number, expected a tensor", "cat of a number")
test.throws(function() T.cat({ a }, 4) end, "cat: dim 4 is out of range", "cat bad dim")
test.throws(function() T.cat({ T.tensor(1) }) end, "cat: zero-dimensional tensors cannot be joined", "cat of 0-d")
test.throws(function() T.stack({ a, b }) end, "stack: tensor 2 has shape [2,1,4] but tensor 1 has [2,3,4]", "stack shapes")
test.throws(function() T.stack({ a, a }, 5) end, "stack: dim 5 is out of range (1..4)", "stack bad dim")
test.throws(function() T.stack({ a, a }, 0) end, "stack: dim 0", "stack dim 0")
test.throws(function() T.cat(a) end, nil, "cat of a tensor instead of a list")

local res = py:run()
for _, ch in ipairs(checks) do test.close(ch[1], res[ch[2]], 0, ch[3]) end
test.done()
