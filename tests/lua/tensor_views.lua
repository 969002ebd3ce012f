-- Views share memory and never copy; reshape of a non-viewable layout copies
-- but gives NumPy's values; writes through views reach the base; t[i] and t[i] = v.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local test = require "milua.test"
local T = require "milua.tensor"
local np = require "tensor_np"
if not np.available() then test.bail("python3-numpy is needed at " .. np.python .. " (make deps installs it)") end

local x = T.arange(24):float():view(2, 3, 4)
local base = x:data_ptr()

-- ---- view / reshape ----
local v = x:view(6, 4)
test.is(v:shape(), { 6, 4 }, "view(6, 4)")
test.is(v:data_ptr(), base, "view shares memory")
test.is(v[2]:totable(), { 4, 5, 6, 7 }, "view keeps row-major order")
test.is(x:view(-1):shape(), { 24 }, "view(-1) flattens")
test.is(x:view(4, -1):shape(), { 4, 6 }, "view infers one -1")
test.is(x:view({ 3, 8 }):shape(), { 3, 8 }, "view takes a shape table")
test.is(x:reshape(2, 12):data_ptr(), base, "reshape of a contiguous tensor is a view")
test.is(x:flatten():shape(), { 24 }, "flatten")
test.is(x:flatten(2):shape(), { 2, 12 }, "flatten(2)")
test.is(x:flatten(1, 2):shape(), { 6, 4 }, "flatten(1, 2)")
test.is(x:flatten():data_ptr(), base, "flatten of a contiguous tensor is a view")
test.is(T.tensor(5):view(1, 1):shape(), { 1, 1 }, "0-d view to [1,1]")
test.is(T.ones(1, 1):view():shape(), {}, "view() of one element is 0-d")

-- ---- transpose / permute / t ----
local tr = x:transpose(1, 3)
test.is(tr:shape(), { 4, 3, 2 }, "transpose(1, 3) shape")
test.is(tr:data_ptr(), base, "transpose shares memory")
test.is(tr:stride(), { 1, 4, 12 }, "transpose swaps strides")
test.ok(not tr:is_contiguous(), "a transpose is not contiguous")
test.is(tr[4][3][2]:item(), x[2][3][4]:item(), "transpose indexes swap")
test.is(x:transpose(-1, -2):shape(), { 2, 4, 3 }, "transpose with negative dims")
local p = x:permute(3, 1, 2)
test.is(p:shape(), { 4, 2, 3 }, "permute(3, 1, 2)")
test.is(p:data_ptr(), base, "permute shares memory")
test.is(x:permute({ 2, 3, 1 }):shape(), { 3, 4, 2 }, "permute takes a table")
local m = T.arange(6):view(2, 3)
test.is(m:t():totable(), { { 0, 3 }, { 1, 4 }, { 2, 5 } }, "t() of a matrix")
do -- as in PyTorch, a vector or a scalar is its own transpose
  local v = T.tensor({ 1, 2, 3 })
  test.ok(rawequal(v:t(), v), "t() of a 1-d tensor returns the tensor itself")
  test.is(v:t():totable(), { 1, 2, 3 }, "t() of a 1-d tensor keeps its values")
  test.is(T.tensor(5):t():item(), 5, "t() of a 0-d tensor")
end

-- ---- narrow / select / t[i] ----
local nw = x:narrow(3, 2, 2)
test.is(nw:shape(), { 2, 3, 2 }, "narrow(3, 2, 2) shape")
test.is(nw:data_ptr(), base, "narrow shares memory")
test.is(nw[1][1]:totable(), { 1, 2 }, "narrow starts at the 1-based position")
test.is(x:narrow(1, 2, 1):shape(), { 1, 3, 4 }, "narrow along dim 1")
test.is(x:narrow(2, 1, 0):numel(), 0, "narrow to length 0")
local sl = x:select(2, 3)
test.is(sl:shape(), { 2, 4 }, "select removes the dim")
test.is(sl:totable(), { { 8, 9, 10, 11 }, { 20, 21, 22, 23 } }, "select(2, 3) values")
test.is(x:select(3, -1):totable(), { { 3, 7, 11 }, { 15, 19, 23 } }, "select with a negative index")
test.is(x[2]:shape(), { 3, 4 }, "x[i] selects along dim 1")
test.is(x[2][1][1]:item(), 12.0, "x[2][1][1]")
test.is(x[-1][-1][-1]:item(), 23.0, "negative indices count from the end")
test.is(x[-2]:data_ptr(), base, "x[i] is a view")
test.is(x[1][2]:dim(), 1, "x[i][j] drops two dims")

-- ---- unsqueeze / squeeze / expand ----
local u = m:unsqueeze(1)
test.is(u:shape(), { 1, 2, 3 }, "unsqueeze(1)")
test.is(m:unsqueeze(3):shape(), { 2, 3, 1 }, "unsqueeze(3) appends")
test.is(m:unsqueeze(-1):shape(), { 2, 3, 1 }, "unsqueeze(-1) appends")
test.is(m:unsqueeze(2):shape(), { 2, 1, 3 }, "unsqueeze(2)")
test.is(u:data_ptr(), m:data_ptr(), "unsqueeze shares memory")
local sq = T.zeros(1, 3, 1, 2)
test.is(sq:squeeze():shape(), { 3, 2 }, "squeeze() drops every size-1 dim")
test.is(sq:squeeze(3):shape(), { 1, 3, 2 }, "squeeze(3)")
test.is(sq:squeeze(2):shape(), { 1, 3, 1, 2 }, "squeeze of a dim that is not 1 is a no-op")
local col = T.tensor({ { 1 }, { 2 } })
local e = col:expand(2, 3)
test.is(e:shape(), { 2, 3 }, "expand")
test.is(e:totable(), { { 1, 1, 1 }, { 2, 2, 2 } }, "expand repeats")
test.is(e:stride()[2], 0, "expand uses a zero stride")
test.is(e:data_ptr(), col:data_ptr(), "expand shares memory")
test.is(T.tensor({ 1, 2 }):expand(3, 2):totable(), { { 1, 2 }, { 1, 2 }, { 1, 2 } }, "expand adds leading dims")
test.is(col:expand(-1, 4):shape(), { 2, 4 }, "expand with -1 keeps a size")

-- ---- contiguous / clone ----
local tc = tr:contiguous()
test.ok(tc:is_contiguous(), "contiguous() of a transpose is contiguous")
test.ok(tc:data_ptr() ~= base, "contiguous() of a transpose copies")
test.is(tc:totable(), tr:totable(), "contiguous() keeps the values")
test.is(x:contiguous():data_ptr(), base, "contiguous() of a contiguous tensor does not copy")
local cl = x:clone()
test.ok(cl:data_ptr() ~= base, "clone copies")
test.is(cl, x, "clone keeps the values")
cl[1]:fill_(-1)
test.is(x[1][1][1]:item(), 0.0, "writing a clone leaves the original alone")

-- ---- closing one handle leaves views and other handles working ----
do
  local keepv, other
  do
    local base <close> = T.arange(6):float()
    keepv = base:view(2, 3)
    other = base:contiguous()   -- the same tensor, another handle
  end
  test.is(keepv:totable(), { { 0, 1, 2 }, { 3, 4, 5 } }, "a view outlives the closed base")
  test.is(other:totable(), { 0, 1, 2, 3, 4, 5 }, "another handle on the same tensor outlives <close>")
end

-- ---- writes through views are visible in the base ----
local b = T.zeros(3, 4)
b:narrow(2, 2, 2):fill_(5)
test.is(b:totable(), { { 0, 5, 5, 0 }, { 0, 5, 5, 0 }, { 0, 5, 5, 0 } }, "fill_ through narrow")
b:t()[4]:add_(1)
test.is(b:select(2, 4):totable(), { 1, 1, 1 }, "add_ through t() and select")
b:view(12)[1] = 9
test.is(b[1][1]:item(), 9.0, "t[i] = v through a view")
b[2] = 3
test.is(b[2]:totable(), { 3, 3, 3, 3 }, "t[i] = number fills a row")
b[3] = T.tensor({ 1, 2, 3, 4 })
test.is(b[3]:totable(), { 1, 2, 3, 4 }, "t[i] = tensor copies a row")
b[-1] = T.tensor(7)
test.is(b[3]:totable(), { 7, 7, 7, 7 }, "t[-1] = 0-d tensor broadcasts")
b[1][2] = 4
test.is(b[1][2]:item(), 4.0, "t[i][j] = v sets one element")
local ib = T.zeros(3, "int32")
ib[2] = 7
test.is(ib:totable(), { 0, 7, 0 }, "t[i] = v on int32")
local pm = T.zeros(2, 3, 4)
pm:permute(3, 1, 2)[2][1][3] = 1
test.is(pm[1][3][2]:item(), 1.0, "write through permute lands at the permuted index")
test.throws(function() b[4] = 1 end, "out of range", "t[i] = v out of range")
test.throws(function() b[1] = "x" end, "expected a number or a tensor", "t[i] = string")
test.throws(function() b[1] = T.ones(5) end, "copy_", "t[i] = tensor of the wrong shape")
test.throws(function() return b[0] end, "index: 0 is out of range for dim 1 of size 3", "t[0] names the index")
test.throws(function() return b[4] end, "index: 4 is out of range", "t[n+1]")
test.throws(function() return b[-4] end, "index: -4 is out of range", "t[-n-1]")
test.throws(function() return b[1.5] end, "integer", "fractional index")
test.throws(function() return T.tensor(1)[1] end, "0-d", "indexing a 0-d tensor")

-- ---- random layouts against NumPy's reshape ----
T.seed(5)
local py = np.script()
local cases = {}
local perms = { { 1, 2, 3 }, { 3, 2, 1 }, { 2, 1, 3 }, { 1, 3, 2 }, { 3, 1, 2 }, { 2, 3, 1 } }
for k, perm in ipairs(perms) do
  local src = T.randn(4, 5, 6)
  -- permute, narrow one dim, then reshape to [a, -1]
  local pv = src:permute(perm)
  local nd = (k % 3) + 1
  local n = pv:narrow(nd, 2, pv:size(nd) - 2)
  local flat = n:reshape(-1)
  local two = n:reshape(n:size(1), -1)
  local sp = string.format("np.transpose(a, (%d,%d,%d))", perm[1] - 1, perm[2] - 1, perm[3] - 1)
  local sl = { ":", ":", ":" }
  sl[nd] = "1:-1"
  local narrowed = sp .. "[" .. table.concat(sl, ",") .. "]"
  cases[#cases + 1] = { flat, py:emit(narrowed .. ".reshape(-1)", { a = src }), "reshape(-1) perm " .. k }
  cases[#cases + 1] = { two, py:emit(narrowed .. ".reshape(" .. n:size(1) .. ", -1)", { a = src }),
    "reshape(n, -1) perm " .. k }
  cases[#cases + 1] = { n:contiguous(), py:emit(narrowed, { a = src }), "contiguous perm " .. k }
end
-- a view of a transposed matrix that splits a dim stays a view
local mt = T.randn(6, 4)
local tv = mt:t():view(2, 2, 6)
test.is(tv:data_ptr(), mt:data_ptr(), "splitting a dim of a transpose is still a view")
cases[#cases + 1] = { tv, py:emit("a.T.reshape(2, 2, 6)", { a = mt }), "split dim of a transpose" }
-- merging dims of a transpose needs a copy
local mv = mt:t():reshape(24)
test.ok(mv:data_ptr() ~= mt:data_ptr(), "reshape of a transpose that merges dims copies")
cases[#cases + 1] = { mv, py:emit("a.T.reshape(24)", { a = mt }), "merged transpose" }
-- merging the contiguous inner dims of a narrowed tensor is a view
local wide = T.randn(5, 3, 4)
local nv = wide:narrow(1, 2, 3):view(3, 12)
test.is(nv:data_ptr(), wide:data_ptr(), "merging contiguous inner dims of a narrowed tensor is a view")
cases[#cases + 1] = { nv, py:emit("a[1:4].reshape(3, 12)", { a = wide }), "narrowed then merged" }
local ex = T.randn(3, 1):expand(3, 4)
cases[#cases + 1] = { ex:reshape(2, 6), py:emit("np.broadcast_to(a, (3, 4)).reshape(2, 6)", { a = ex:narrow(2, 1, 1) }),
  "reshape of an expanded tensor" }
local res = py:run()
for _, c in ipairs(cases) do test.is(c[1], res[c[2]], c[3]) end

-- ---- errors ----
test.throws(function() x:view(5, 5) end, "view: shape [5,5] is invalid for a tensor [2,3,4] of 24 elements",
  "view with the wrong numel names both shapes")
test.throws(function() x:view(-1, -1) end, "only one dimension can be -1", "two -1 in view")
test.throws(function() x:view(7, -1) end, "view", "-1 that does not divide")
test.throws(function() x:transpose(1, 4) end, "transpose: dim 4 is out of range for a 3-d tensor", "transpose dim too large")
test.throws(function() x:transpose(0, 1) end, "dim 0 is out of range", "transpose dim 0")
test.throws(function() x:permute(1, 1, 2) end, "permute: dim 1 appears twice", "permute with a repeat")
test.throws(function() x:permute(1, 2) end, "permute: got 2 dims for a 3-d tensor", "permute too short")
test.throws(function() x:narrow(2, 3, 2) end, "narrow: range 3..4 is outside dim 2 of size 3", "narrow past the end")
test.throws(function() x:narrow(2, 0, 1) end, "narrow: start 0", "narrow start 0")
test.throws(function() x:narrow(4, 1, 1) end, "narrow: dim 4", "narrow bad dim")
test.throws(function() x:select(1, 3) end, "select: index 3 is out of range for dim 1 of size 2", "select past the end")
test.throws(function() x:unsqueeze(5) end, "unsqueeze: dim 5 is out of range", "unsqueeze too far")
test.throws(function() x:squeeze(4) end, "squeeze: dim 4", "squeeze bad dim")
test.throws(function() col:expand(3, 3) end, "expand: cannot expand [2,1] to [3,3]", "expand a size that is not 1")
test.throws(function() col:expand(3) end, "expand", "expand to fewer dims")
test.throws(function() x:flatten(3, 1) end, "flatten", "flatten end before start")
test.throws(function() x:t() end, "t: expects at most 2 dimensions, got [2,3,4]", "t() of a 3-d tensor")

test.done()
