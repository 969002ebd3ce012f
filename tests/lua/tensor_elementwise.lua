-- Elementwise ops against NumPy: broadcasting (also of strided and expanded
-- inputs), every unary op, comparisons, where/masked_fill/clamp, int32 rules,
-- in-place forms, and that plain methods never mutate.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local test = require "milua.test"
local T = require "milua.tensor"
local np = require "tensor_np"
if not np.available() then test.bail("python3-numpy is needed at " .. np.python .. " (make deps installs it)") end

T.seed(11)
local py = np.script()
local checks = {}
local function check(got, expr, vars, tol, desc)
  checks[#checks + 1] = { got, py:emit(expr, vars), tol, desc }
end

-- ---- binary ops with broadcasting, on plain, strided and expanded operands ----
local shapes = {
  { { 2, 3 }, { 2, 3 } }, { { 2, 3 }, { 3 } }, { { 2, 1, 4 }, { 3, 1 } }, { { 4 }, {} },
  { { 1, 5 }, { 4, 1 } }, { { 3, 1, 2 }, { 1, 4, 1 } }, { {}, { 2, 2 } },
}
local ops = {
  { "add", "+", "a + b" }, { "sub", "-", "a - b" }, { "mul", "*", "a * b" }, { "div", "/", "a / b" },
  { "maximum", nil, "np.maximum(a, b)" }, { "minimum", nil, "np.minimum(a, b)" },
}
local function rand(shape) return T.randn(table.unpack(shape)) end
for _, sh in ipairs(shapes) do
  local a, b = rand(sh[1]), rand(sh[2])
  for _, op in ipairs(ops) do
    local desc = op[1] .. " " .. test.show(sh[1]) .. " with " .. test.show(sh[2])
    check(a[op[1]](a, b), op[3], { a = a, b = b }, 1e-5, desc)
    if op[2] == "+" then check(a + b, op[3], { a = a, b = b }, 1e-5, desc .. " via operator") end
  end
end
-- pow on positive bases
local pa, pb = T.rand(3, 4) + 0.5, T.randn(4)
check(pa:pow(pb), "a ** b", { a = pa, b = pb }, 1e-5, "pow broadcast")
check(pa ^ 2, "a ** 2", { a = pa }, 1e-5, "^ 2")
check(pa ^ 0.5, "a ** 0.5", { a = pa }, 1e-6, "^ 0.5")
check(2 ^ pb, "2.0 ** b", { b = pb }, 1e-5, "number ^ tensor")
check(pa:t():pow(pb:view(4, 1)), "a.T ** b.reshape(4, 1)", { a = pa, b = pb }, 1e-5, "pow of a transpose with a column")
-- numbers on either side of the operators
local q = T.randn(3, 2)
check(q + 1, "q + 1", { q = q }, 1e-6, "tensor + number")
check(2 - q, "2 - q", { q = q }, 1e-6, "number - tensor")
check(3 * q, "3 * q", { q = q }, 1e-6, "number * tensor")
check(1 / (q:abs() + 1), "1 / (np.abs(q) + 1)", { q = q }, 1e-6, "number / tensor")
check(-q, "-q", { q = q }, 0, "unary minus")
check(q:add(true), "q + 1", { q = q }, 0, "a boolean operand counts as 1")

-- strided operands: transposed, narrowed, selected, expanded
local big = T.randn(5, 6)
local tt = big:t()                       -- [6,5] strided
local nn_ = big:narrow(2, 2, 4)          -- [5,4] with row stride 6
local other = T.randn(6, 5)
check(tt + other, "a.T + b", { a = big, b = other }, 1e-6, "transposed + contiguous")
check(other * tt, "b * a.T", { a = big, b = other }, 1e-6, "contiguous * transposed")
check(tt - tt:contiguous(), "a.T - a.T", { a = big }, 0, "transposed - its contiguous copy")
check(nn_ / (nn_:abs() + 1), "a[:,1:5] / (np.abs(a[:,1:5]) + 1)", { a = big }, 1e-6, "narrowed / narrowed")
local rowv = T.randn(1, 4)
local ex = rowv:expand(5, 4)
check(nn_ * ex, "a[:,1:5] * r", { a = big, r = rowv }, 1e-6, "narrowed * expanded")
check(ex + ex:t():t(), "2 * np.broadcast_to(r, (5, 4))", { r = rowv }, 1e-6, "expanded + expanded")
local cube = T.randn(3, 4, 5)
local pc = cube:permute(3, 1, 2)         -- [5,3,4]
local v4 = T.randn(4)
check(pc:maximum(v4), "np.maximum(np.transpose(c, (2, 0, 1)), v)", { c = cube, v = v4 }, 0, "permuted maximum vector")
local s1, s2 = cube:select(2, 3), cube:select(3, 2)
check(s1:narrow(2, 1, 4) * s2, "c[:,2,0:4] * c[:,:,1]", { c = cube }, 1e-6, "selected * selected")

-- ---- unary ops ----
local ux = T.randn(4, 5) * 2
local upos = T.rand(4, 5) * 3 + 0.05
local unary = {
  { "neg", "-x", ux, 0 }, { "exp", "np.exp(x)", ux, 1e-4 }, { "log", "np.log(x)", upos, 1e-6 },
  { "sqrt", "np.sqrt(x)", upos, 1e-6 }, { "abs", "np.abs(x)", ux, 0 }, { "tanh", "np.tanh(x)", ux, 1e-6 },
  { "sigmoid", "1 / (1 + np.exp(-x.astype(np.float64)))", ux, 1e-6 }, { "relu", "np.maximum(x, 0)", ux, 0 },
  { "floor", "np.floor(x)", ux, 0 }, { "ceil", "np.ceil(x)", ux, 0 }, { "round", "np.round(x)", ux, 0 },
  { "sin", "np.sin(x)", ux, 1e-6 }, { "cos", "np.cos(x)", ux, 1e-6 }, { "rsqrt", "1 / np.sqrt(x)", upos, 1e-5 },
  { "sign", "np.sign(x)", ux, 0 }, { "square", "x * x", ux, 1e-5 },
}
for _, u in ipairs(unary) do
  check(u[3][u[1]](u[3]), u[2], { x = u[3] }, u[4], u[1])
  check(T[u[1]](u[3]), u[2], { x = u[3] }, u[4], "T." .. u[1] .. " functional form")
  check(u[3]:t()[u[1]](u[3]:t()), "(" .. u[2] .. ").T", { x = u[3] }, u[4], u[1] .. " of a transpose")
end
-- round is half to even, as NumPy and PyTorch
local halves = T.tensor({ -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 })
test.is(halves:round():totable(), { -2, -2, -0, 0, 2, 2 }, "round half to even")
-- gelu: the exact erf formula, against Python's math.erf in double precision
local gx = T.tensor({ -6, -3, -1.5, -1, -0.5, -1e-3, 0, 1e-3, 0.3, 0.5, 1, 1.7, 3, 6 })
check(gx:gelu(), "[0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)]", { x = gx }, 2e-6,
  "gelu is x * Phi(x) with erf")
-- gelu and its derivative on a dense grid, against erf in double precision
local grid = T.arange(-10, 10.0005, 0.001):requires_grad(true)
local ggrid = grid:gelu()
ggrid:sum():backward()
check(ggrid, "[0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(float)]", { x = grid:detach() }, 1e-6,
  "gelu on 20001 points in [-10, 10]")
check(grid.grad, "[0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi) for v in x.astype(float)]",
  { x = grid:detach() }, 1e-6, "gelu derivative on 20001 points")
check(grid:detach():view(1, -1):t():gelu(), "[[0.5 * v * (1 + math.erf(v / math.sqrt(2)))] for v in x.astype(float)]",
  { x = grid:detach() }, 1e-6, "gelu of a column view")
test.close(T.tensor(1):gelu():item(), 0.8413447460685429, 1e-6, "gelu(1) by hand")
test.ok(math.abs(T.tensor(1):gelu():item() - 0.8411919906082768) > 1e-4, "gelu is not the tanh approximation")
test.is(T.tensor({ -1, 0, 2 }):relu():totable(), { 0, 0, 2 }, "relu by hand")
test.is(T.tensor({ 0 }):sigmoid():item(), 0.5, "sigmoid(0)")
local nanr = T.tensor({ 0 / 0, -1, 2 }):relu():totable()
test.ok(nanr[1] ~= nanr[1] and nanr[2] == 0 and nanr[3] == 2, "relu lets NaN through (as PyTorch and NumPy)")
local nanr2 = T.tensor({ 0 / 0, -1 }):relu_():totable()
test.ok(nanr2[1] ~= nanr2[1] and nanr2[2] == 0, "relu_ lets NaN through")
test.close(T.tensor({ -100, 100 }):sigmoid(), { 0, 1 }, 1e-30, "sigmoid saturates without NaN")

-- ---- comparisons give float masks ----
local ca, cb = T.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }), T.tensor({ 3, 2, 1 })
local cmps = { { "eq", "==" }, { "ne", "!=" }, { "lt", "<" }, { "le", "<=" }, { "gt", ">" }, { "ge", ">=" } }
for _, c in ipairs(cmps) do
  local r = ca[c[1]](ca, cb)
  test.is(r:dtype(), "float32", c[1] .. " gives float32")
  check(r, "(a " .. c[2] .. " b).astype(np.float32)", { a = ca, b = cb }, 0, c[1] .. " broadcast")
end
test.is(ca:gt(3):totable(), { { 0, 0, 0 }, { 1, 1, 1 } }, "compare with a number")
local big_ids = T.tensor({ 16777217, 16777216 }, "int32")
test.is(big_ids:eq(T.tensor({ 16777216, 16777216 }, "int32")):totable(), { 0, 1 },
  "int32 compare is exact beyond float precision")
test.is(T.tensor({ 0 / 0, 1 }):eq(T.tensor({ 0 / 0, 1 })):totable(), { 0, 1 }, "NaN is not equal to NaN")
test.is(T.tensor({ 0 / 0, 1 }):ne(T.tensor({ 0 / 0, 1 })):totable(), { 1, 0 }, "NaN ne NaN")

-- ---- where / masked_fill / clamp ----
local cond = T.tensor({ { 1, 0, 1 }, { 0, 0, 1 } })
local wa, wb = T.randn(2, 3), T.randn(3)
check(T.where(cond, wa, wb), "np.where(c != 0, a, b)", { c = cond, a = wa, b = wb }, 0, "T.where broadcast")
check(wa:where(cond, wb), "np.where(c != 0, a, b)", { c = cond, a = wa, b = wb }, 0, "x:where(cond, y)")
check(T.where(cond, wa, 0), "np.where(c != 0, a, 0)", { c = cond, a = wa }, 0, "where with a number")
check(T.where(cond:t():t(), 1, -1), "np.where(c != 0, 1, -1)", { c = cond }, 0, "where with two numbers")
test.is(T.where(T.tensor({ 1, 0 }), T.tensor({ 5, 6 }, "int32"), T.tensor({ 7, 8 }, "int32")):dtype(), "int32",
  "where of int32 stays int32")
local mf = wa:masked_fill(cond, -1e9)
check(mf, "np.where(c != 0, np.float32(-1e9), a)", { c = cond, a = wa }, 0, "masked_fill")
local causal = T.arange(4):view(4, 1):lt(T.arange(4):view(1, 4))
local sc = T.randn(2, 4, 4)
check(sc:masked_fill(causal, -1), "np.where(m != 0, -1, s)", { m = causal, s = sc }, 0, "masked_fill broadcast mask")
local cl = T.randn(3, 4) * 3
check(cl:clamp(-1, 2), "np.clip(x, -1, 2)", { x = cl }, 0, "clamp(lo, hi)")
check(cl:clamp(0.5), "np.maximum(x, 0.5)", { x = cl }, 0, "clamp(lo)")
check(cl:clamp(nil, 0.5), "np.minimum(x, 0.5)", { x = cl }, 0, "clamp(nil, hi)")
check(cl:t():clamp(-1, 1), "np.clip(x.T, -1, 1)", { x = cl }, 0, "clamp of a transpose")
test.is(T.tensor({ -5, 0, 5 }, "int32"):clamp(-2, 3):totable(), { -2, 0, 3 }, "clamp of int32")
test.is(T.tensor({ -5, 5 }, "int32"):clamp(-2, 3):dtype(), "int32", "clamp keeps int32")

-- ---- dtype rules ----
local ia, ib = T.tensor({ 7, -7, 3 }, "int32"), T.tensor({ 2, 2, -4 }, "int32")
test.is((ia + ib):dtype(), "int32", "int32 + int32 is int32")
test.is((ia - ib):totable(), { 5, -9, 7 }, "int32 - int32")
test.is((ia * ib):totable(), { 14, -14, -12 }, "int32 * int32")
test.is((ia * 3):dtype(), "int32", "int32 * integer stays int32")
test.is((ia + 1):totable(), { 8, -6, 4 }, "int32 + integer")
test.is((ia * 0.5):dtype(), "float32", "int32 * float number is float32")
test.is((ia * 0.5):totable(), { 3.5, -3.5, 1.5 }, "int32 * 0.5 values")
test.is((ia / ib):dtype(), "float32", "int32 / int32 is true division in float32")
test.is((ia / ib):totable(), { 3.5, -3.5, -0.75 }, "int32 / int32 values")
test.is((ia + T.tensor({ 0.5, 0.5, 0.5 })):totable(), { 7.5, -6.5, 3.5 }, "int32 + float32 is float32")
test.is((T.tensor({ 0.5, 0.5, 0.5 }) + ia):dtype(), "float32", "float32 + int32 is float32")
test.is(ia:maximum(ib):totable(), { 7, 2, 3 }, "int32 maximum")
test.is(ia:maximum(ib):dtype(), "int32", "int32 maximum stays int32")
test.is((-ia):dtype(), "int32", "unary minus keeps int32")
test.is(ia:abs():totable(), { 7, 7, 3 }, "int32 abs")
test.is(ia:exp():dtype(), "float32", "exp of int32 is float32")
local imax = T.tensor({ 2147483647 }, "int32")
test.is((imax + 1):item(), -2147483648, "int32 addition wraps (no undefined behaviour)")
test.is(ia:float():dtype(), "float32", ":float()")
test.is(T.tensor({ 2.9, -2.9 }):int():totable(), { 2, -2 }, ":int() truncates")

-- ---- in place, and plain methods do not mutate ----
local orig = T.randn(3, 4)
local keep = orig:clone()
for _, name in ipairs({ "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "lt" }) do
  local _ = orig[name](orig, 2)
end
for _, u in ipairs(unary) do local _ = orig[u[1]](orig) end
local _ = orig:clamp(0, 1)
_ = orig:masked_fill(orig:gt(0), 0)
_ = orig:where(orig:gt(0), 0)
_ = orig:gelu()
test.is(orig, keep, "no plain elementwise method mutates its input")

local ip = T.randn(3, 4)
local ipc = ip:clone()
local ptr = ip:data_ptr()
test.ok(ip:add_(1) == ip, "add_ returns the tensor itself")
test.close(ip, ipc + 1, 0, "add_")
ip:mul_(T.tensor({ 1, 2, 3, 4 }))
test.close(ip, (ipc + 1) * T.tensor({ 1, 2, 3, 4 }), 0, "mul_ broadcasting the other operand")
ip:sub_(ip)
test.close(ip, 0, 0, "sub_ with itself")
test.is(ip:data_ptr(), ptr, "in-place ops keep the memory")
local up = T.tensor({ -1, 4 })
up:abs_():sqrt_()
test.is(up:totable(), { 1, 2 }, "unary in place chain")
local d = T.tensor({ 1, 2, 4 })
d:div_(2):pow_(2):neg_():exp_():log_()
test.close(d, { -0.25, -1, -4 }, 1e-6, "div_ pow_ neg_ exp_ log_")
local mm = T.tensor({ 1, 5, 3 })
mm:maximum_(T.tensor(2)):minimum_(4)
test.is(mm:totable(), { 2, 4, 3 }, "maximum_ minimum_")
local cf = T.tensor({ -3, 0, 3 })
cf:clamp_(-1, 1)
test.is(cf:totable(), { -1, 0, 1 }, "clamp_")
local fm = T.tensor({ 1, 2, 3 })
fm:masked_fill_(T.tensor({ 0, 1, 0 }), 9)
test.is(fm:totable(), { 1, 9, 3 }, "masked_fill_")
fm:fill_(2)
test.is(fm:totable(), { 2, 2, 2 }, "fill_")
fm:zero_()
test.is(fm:totable(), { 0, 0, 0 }, "zero_")
fm:copy_(T.tensor({ 4, 5, 6 }))
test.is(fm:totable(), { 4, 5, 6 }, "copy_")
fm:copy_(T.tensor({ 1, 2, 3 }, "int32"))
test.is(fm:totable(), { 1, 2, 3 }, "copy_ converts int32 to float32")
local ov = T.arange(5):float()
ov:narrow(1, 2, 4):add_(ov:narrow(1, 1, 4))
test.is(ov:totable(), { 0, 1, 3, 5, 7 }, "add_ with an overlapping view reads the old values")
local rv = T.tensor({ { 1, 2 }, { 3, 4 } })
rv:add_(rv:t())
test.is(rv:totable(), { { 2, 5 }, { 5, 8 } }, "add_ with its own transpose")
local rowalias = T.tensor({ { 1, 2 }, { 3, 4 } })
rowalias:add_(rowalias[1])
test.is(rowalias:totable(), { { 2, 4 }, { 4, 6 } }, "add_ of its own first row uses the row's old values for every row")
local tcopy = T.tensor({ { 1, 2 }, { 3, 4 } })
tcopy:copy_(tcopy:t())
test.is(tcopy:totable(), { { 1, 3 }, { 2, 4 } }, "copy_ from its own transpose")
local ci = T.tensor({ 1, 2 }, "int32")
ci:add_(T.tensor({ 1, 1 }, "int32")):mul_(3)
test.is(ci:totable(), { 6, 9 }, "int32 in place")
test.throws(function() ci:add_(0.5) end, "add_: the result would be float32 but the tensor is int32",
  "int32 add_ of a float is an error")
test.throws(function() ci:exp_() end, "exp_: needs a float32 tensor", "exp_ on int32")
test.throws(function() T.zeros(3):expand(2, 3):add_(T.ones(2, 3)) end,
  "add: in-place write to an expanded tensor", "in place on an expanded tensor is refused")
test.throws(function() T.zeros(3, 1):expand(3, 3):fill_(1) end, "fill_: in-place write to an expanded tensor", "fill_ expanded")
test.throws(function() local e = T.zeros(1, 3):expand(2, 3); e[1] = 2 end, "index assignment: in-place write to an expanded tensor",
  "t[i] = v on an expanded tensor")
local ok_ex = T.zeros(3, 1)
ok_ex:expand(3, 1):add_(1)
test.is(ok_ex:totable(), { { 1 }, { 1 }, { 1 } }, "an expand that repeats nothing stays writable")
test.throws(function() T.zeros(3):add_(T.zeros(2, 3)) end, "add_: the result shape [2,3] does not fit the in-place tensor [3]",
  "add_ cannot grow the tensor")

-- ---- broadcasting errors ----
test.throws(function() return T.zeros(2, 3) + T.zeros(4) end, "add: shapes [2,3] and [4] cannot be broadcast",
  "incompatible shapes name both")
test.throws(function() return T.zeros(2, 3):mul(T.zeros(3, 2)) end, "mul: shapes [2,3] and [3,2]", "mul shapes")
test.throws(function() T.where(T.ones(2), T.ones(3), T.ones(3)) end, "where: shapes", "where shapes")
test.throws(function() T.zeros(2, 3):masked_fill(T.ones(3, 3), 0) end, "masked_fill", "masked_fill bad mask")
test.throws(function() T.zeros(3):masked_fill(T.ones(2, 3), 0) end, "masked_fill: mask [2,3] has more dimensions",
  "masked_fill mask with more dims")
test.throws(function() T.zeros(3):clamp(2, 1) end, "clamp: min 2 is greater than max 1", "clamp bounds")
test.throws(function() return T.zeros(2) + {} end, "add: cannot combine a tensor with a table", "tensor + table")
test.throws(function() return T.zeros(2) * "x" end, "mul", "tensor * string")

local res = py:run()
for _, c in ipairs(checks) do test.close(c[1], res[c[2]], c[3], c[4]) end
test.done()
