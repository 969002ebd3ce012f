-- A fuzzer of milua's Lua bindings: random sequences of tensor calls (random shapes, dtypes,
-- views, out-of-range dims, empty and 0-d tensors, NaN and huge values, wrong argument
-- types), hooks that raise or return the wrong thing, and bad model configs. Every call runs
-- under pcall; the only acceptable outcomes are a result or a Lua error whose message is a
-- non-empty string. After each sequence a fixed reference computation must still give the
-- result it gave at the start (no state was corrupted). A crash kills the process: the last
-- "sequence N" line on stdout names the sequence to replay.
--
--   milua tests/fuzz/bindings.lua [--seconds S] [--sequences N] [--first K] [--steps M]
--   local fz = dofile("tests/fuzz/bindings.lua"); fz.run_sequence(k, steps) (from a test)
local T = require "milua.tensor"
local nn = require "milua.nn"

local M = {}

-- the sequence's own generator (a xorshift on Lua integers), so that the global tensor
-- generator is exercised by the calls themselves, and a sequence is replayable from its seed
local state = 1
local function rnd(n)   -- 1..n
  state = state ~ (state << 13); state = state ~ (state >> 7); state = state ~ (state << 17)
  return (state & 0x7fffffff) % n + 1
end
local function pick(list) return list[rnd(#list)] end

-- (no sizes between a few thousand and 2^40: they are valid allocations of gigabytes, slow, not wrong)
local specials = { 0, -0.0, 1, -1, 0.5, 2, 3, -3, 1e30, -1e30, 1e-40, 0 / 0, 1 / 0, -1 / 0, 2 ^ 40, -2 ^ 31, 2 ^ 62,
  1e300, 7, 64 }

local pool = {}   -- tensors made so far in this sequence

local function rand_shape()
  local d = rnd(5) - 1   -- 0..4 dims
  local s = {}
  for i = 1, d do s[i] = rnd(5) - 1 end   -- sizes 0..4
  return s
end

local function fresh_tensor()
  local shape = rand_shape()
  local kind = rnd(6)
  local ok, t = pcall(function()
    if kind == 1 then return T.randn(table.unpack(shape)) end
    if kind == 2 then return T.zeros(table.unpack(shape)) end
    if kind == 3 then return T.randint(-3, 4, table.unpack(shape)) end
    if kind == 4 then return T.full(shape, pick(specials)) end
    if kind == 5 then return T.arange(0, rnd(6) - 1) end
    return T.tensor(pick(specials))
  end)
  if ok and T.is_tensor(t) then return t end
  return T.ones(2, 3)
end

local function some_tensor()
  if #pool > 0 and rnd(3) > 1 then
    local t = pick(pool)
    local v = rnd(8)
    -- a view of it, sometimes
    local ok, w = pcall(function()
      if v == 1 and t:dim() >= 2 then return t:transpose(1, 2) end
      if v == 2 and t:dim() >= 1 and t:shape()[1] > 0 then return t:narrow(1, 1, rnd(t:shape()[1])) end
      if v == 3 and t:dim() >= 1 and t:shape()[1] > 0 then return t:select(1, rnd(t:shape()[1])) end
      if v == 4 then return t:unsqueeze(1) end
      if v == 5 and t:dim() >= 1 then return t:expand(table.unpack((function()
        local s = t:shape(); s[1] = s[1] == 1 and 3 or s[1]; return s end)())) end
      return t
    end)
    if ok and T.is_tensor(w) then return w end
    return t
  end
  local t = fresh_tensor()
  pool[#pool + 1] = t
  if #pool > 12 then table.remove(pool, 1) end
  return t
end

local function some_arg()
  local k = rnd(12)
  if k <= 4 then return some_tensor() end
  if k <= 7 then return rnd(9) - 4 end                  -- small ints, dims out of range included
  if k == 8 then return pick(specials) end
  if k == 9 then return pick({ "float32", "int32", "abc", "", "sum" }) end
  if k == 10 then return pick({ true, false }) end
  if k == 11 then return pick({ {}, { 1, 2 }, { { 1, 2 }, { 3 } }, { rnd(3), rnd(3) } }) end
  return nil
end

local methods = { "abs", "add", "add_", "argmax", "argmin", "ceil", "clamp", "clone", "contiguous", "copy_", "cos",
  "cumsum", "detach", "dim", "div", "div_", "dtype", "eq", "exp", "expand", "fill_", "flatten", "float", "floor",
  "gather", "ge", "gelu", "gt", "index_select", "int", "is_contiguous", "item", "le", "log", "log_softmax", "logsumexp",
  "lt", "masked_fill", "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "mul_", "narrow", "ne", "neg",
  "norm", "numel", "permute", "pow", "relu", "reshape", "round", "rsqrt", "scatter_add", "select", "shape", "sigmoid",
  "sign", "sin", "size", "softmax", "sort", "sqrt", "square", "squeeze", "std", "stride", "sub", "sum", "t", "tanh",
  "topk", "totable", "transpose", "unsqueeze", "var", "view", "where", "zero_", "requires_grad", "backward" }
local functions = { "zeros", "ones", "randn", "rand", "randint", "arange", "full", "tensor", "cat", "stack", "where",
  "one_hot", "eigh", "svd", "lstsq", "solve" }
local operators = { "__add", "__sub", "__mul", "__div", "__pow", "__unm", "__index", "__newindex", "__len",
  "__tostring" }

local function check_error(what, err)
  if type(err) ~= "string" or err == "" then
    error(string.format("%s raised a %s instead of a message", what, type(err)), 0)
  end
end

local trace = os.getenv("MILUA_FUZZ_TRACE")
local function show(v)
  if T.is_tensor(v) then return v:dtype() .. "[" .. table.concat(v:shape(), ",") .. "]" end
  return type(v) == "table" and "{table}" or tostring(v)
end

local function call_one()
  local k = rnd(10)
  local args, n = {}, rnd(4) - 1
  for i = 1, n do args[i] = some_arg() end
  if trace then
    local a = {}
    for i = 1, n do a[i] = show(args[i]) end
    io.stderr:write("call kind ", k, " args ", table.concat(a, ", "), "\n")
  end
  if k <= 6 then
    local t, name = some_tensor(), pick(methods)
    local ok, r = pcall(function() return t[name](t, table.unpack(args, 1, n)) end)
    if not ok then check_error("t:" .. name, r) elseif T.is_tensor(r) and rnd(2) == 1 then pool[#pool + 1] = r end
  elseif k <= 8 then
    local name = pick(functions)
    local ok, r = pcall(T[name], table.unpack(args, 1, n))
    if not ok then check_error("T." .. name, r) end
  else
    local t, op = some_tensor(), pick(operators)
    local ok, r = pcall(function()
      if op == "__add" then return t + args[1] end
      if op == "__sub" then return args[1] - t end
      if op == "__mul" then return t * args[1] end
      if op == "__div" then return t / args[1] end
      if op == "__pow" then return t ^ args[1] end
      if op == "__unm" then return -t end
      if op == "__index" then return t[args[1]] end
      if op == "__newindex" then t[args[1]] = args[2]; return t end
      if op == "__len" then return #t end
      return tostring(t)
    end)
    if not ok then check_error("operator " .. op, r) end
  end
  if #pool > 12 then table.remove(pool, 1) end
end

-- hooks that raise, return the wrong shape, dtype, a non-tensor or nothing; bad configs
local model, tokens, hook_names
local function hook_case()
  if not model then
    T.seed(77)
    model = nn.transformer { n_layers = 1, d_model = 8, n_heads = 2, d_mlp = 16, d_vocab = 5, n_ctx = 6 }
    tokens = T.randint(1, 6, 2, 4)
    hook_names = model.hook_names
  end
  local name = pick(hook_names)
  local ret = rnd(7)
  local fn = function(x)
    if ret == 1 then error("hook failed on purpose") end
    if ret == 2 then return x:narrow(x:dim(), 1, 1) end
    if ret == 3 then return x:int() end
    if ret == 4 then return "not a tensor" end
    if ret == 5 then return x * pick(specials) end
    if ret == 6 then return x:transpose(1, x:dim()) end
    return nil
  end
  local ok, r = pcall(model.run_with_hooks, model, tokens, { [name] = fn })
  if not ok then check_error("hook at " .. name, r) end
  local cfg = { n_layers = pick({ 1, 0, -1, 2.5, "x" }), d_model = pick({ 8, 0, 7, 1e9 }), n_heads = pick({ 2, 0, 3 }),
    d_vocab = pick({ 5, 0, -2 }), n_ctx = pick({ 6, 0 }), act_fn = pick({ "gelu", "tanh", 3 }) }
  local ok2, r2 = pcall(nn.transformer, cfg)
  if not ok2 then check_error("nn.transformer", r2) end
end

-- milua.json on random bytes and random Lua values: decode what encode wrote gives it back
local json = require "milua.json"
local function rand_value(depth)
  local k = rnd(depth > 3 and 5 or 8)
  if k == 1 then return pick(specials) end
  if k == 2 then return rnd(2000) - 1000 end
  if k == 3 then return pick({ "", "a\"b\\", "\0", "\xff", "\u{2603}", "\n\t" }) end
  if k == 4 then return pick({ true, false, json.null }) end
  if k == 5 then return some_tensor() end
  local t = {}
  for i = 1, rnd(4) - 1 do
    if k == 6 then t[i] = rand_value(depth + 1) else t[pick({ "a", "b", "c", i })] = rand_value(depth + 1) end
  end
  if k == 8 and rnd(4) == 1 then t.self = t end   -- a cycle
  return t
end
local function json_case()
  local bytes = {}
  for i = 1, rnd(30) do bytes[i] = string.char(pick({ 34, 44, 45, 46, 48, 49, 58, 91, 92, 93, 101, 110, 117, 123,
    125, rnd(256) - 1 })) end
  local ok, r = pcall(json.decode, table.concat(bytes))
  if not ok then check_error("json.decode", r) end
  local v = rand_value(0)
  local ok2, text = pcall(json.encode, v, rnd(2) == 1 and { indent = true } or nil)
  if not ok2 then check_error("json.encode", text); return end
  local ok3, back = pcall(json.decode, text)
  if not ok3 then error("json.decode cannot read what json.encode wrote: " .. tostring(back), 0) end
  local compact = json.encode(v)
  if json.encode(json.decode(compact)) ~= compact then
    error("json: decoding and encoding again changes " .. compact, 0)
  end
end

-- the reference computation: a fixed seed, a product, a softmax, a reduction
local function reference()
  local saved = T.get_rng_state()
  T.seed(12345)
  local a, b = T.randn(5, 7), T.randn(7, 3)
  local v = (a:matmul(b):softmax(2) * T.arange(1, 4)):sum():item()
  T.set_rng_state(saved)
  return v
end
local expected

function M.run_sequence(k, steps)
  expected = expected or reference()
  state = 0x9e3779b9 ~ (k * 2654435761)
  if state == 0 then state = 1 end
  pool = {}
  T.seed(k)
  for _ = 1, steps do
    local r = rnd(20)
    if r == 1 then hook_case() elseif r == 2 then json_case() else call_one() end
  end
  local got = reference()
  if got ~= expected then
    error(string.format("sequence %d: the reference computation gives %.17g instead of %.17g", k, got, expected), 0)
  end
  T.set_grad_enabled(true)
  collectgarbage()
end

if arg and arg[0] and arg[0]:match("fuzz/bindings%.lua$") then
  local opts = { seconds = 60, sequences = math.huge, first = 1, steps = 200 }
  local i = 1
  while arg and arg[i] do
    local key = arg[i]:match("^%-%-(%w+)$")
    if not key or opts[key] == nil or not tonumber(arg[i + 1]) then
      io.stderr:write("usage: milua tests/fuzz/bindings.lua [--seconds S] [--sequences N] [--first K] [--steps M]\n")
      os.exit(2)
    end
    opts[key] = tonumber(arg[i + 1])
    i = i + 2
  end
  local sys = require "milua.sys"
  local t0, k, calls = sys.clock(), opts.first, 0
  while sys.clock() - t0 < opts.seconds and k < opts.first + opts.sequences do
    io.stdout:write("sequence ", k, "\n")
    io.stdout:flush()
    M.run_sequence(k, opts.steps)
    calls = calls + opts.steps
    k = k + 1
  end
  print(string.format("bindings: %d sequences (%d calls) in %.0f s, no crash, reference intact",
    k - opts.first, calls, sys.clock() - t0))
end

return M
