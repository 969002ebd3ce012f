-- NumPy as the independent reference for the tensor tests.
--
--   package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
--   local np = require "tensor_np"
--   local py = np.script()
--   local h = py:emit("np.sum(a, axis=0)", { a = x })   -- x: tensor, number or nested table
--   local res = py:run()                              -- one python process for the batch
--   test.close(x:sum(1), res[h], 1e-5, "sum")         -- res[h]: nested table (or number)
--
-- Inputs are written into the script text with 9 significant digits, so a float32
-- tensor reaches NumPy bit for bit (as np.float32 arrays; int32 tensors as int32).
-- Run directly, this file tests itself against values known by hand.
local M = {}

M.python = "/usr/bin/python3"

local prelude = [[
import sys, math
import numpy as np
np.seterr(all='ignore')
def arr(x, dt='float32'): return np.array(x, dtype=dt)
def emit(x):
    x = np.asarray(x)
    vals = ['%r' % float(v) for v in x.reshape(-1)]
    sys.stdout.write(' '.join([str(x.ndim)] + [str(s) for s in x.shape] + vals) + '\n')
]]

-- a Python literal for a tensor, a number or a nested table of numbers
function M.lit(v)
  if type(v) == "number" then
    if v ~= v then return "float('nan')" end
    if v == math.huge then return "float('inf')" end
    if v == -math.huge then return "float('-inf')" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.17g", v)
  end
  if type(v) == "userdata" then
    local dt = v:dtype() == "int32" and "'int32'" or "'float32'"
    local function rec(x)
      if type(x) == "number" then
        if math.type(x) == "integer" then return tostring(x) end
        if x ~= x then return "float('nan')" end
        if x == math.huge then return "float('inf')" end
        if x == -math.huge then return "float('-inf')" end
        return string.format("%.9g", x)
      end
      local parts = {}
      for i = 1, #x do parts[i] = rec(x[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    return "arr(" .. rec(v:totable()) .. ", " .. dt .. ")"
  end
  if type(v) == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = M.lit(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  if type(v) == "boolean" then return v and "True" or "False" end
  if type(v) == "string" then return string.format("%q", v) end
  error("tensor_np.lit: cannot write a " .. type(v))
end

local function parse_number(s)
  if s == "nan" then return 0 / 0 end
  if s == "inf" then return math.huge end
  if s == "-inf" then return -math.huge end
  local v = tonumber(s)
  if not v then error("tensor_np: bad number from python: " .. s) end
  return v
end

-- one output line -> number (0-d) or nested table
local function decode(line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local nd = tonumber(words[1])
  local shape = {}
  for i = 1, nd do shape[i] = tonumber(words[1 + i]) end
  local pos = 2 + nd
  if nd == 0 then return parse_number(words[pos]) end
  local function build(d)
    local t = {}
    for i = 1, shape[d] do
      if d == nd then t[i] = parse_number(words[pos]); pos = pos + 1
      else t[i] = build(d + 1) end
    end
    return t
  end
  return build(1)
end

local Script = {}
Script.__index = Script

function M.script()
  return setmetatable({ lines = { prelude }, n = 0 }, Script)
end

-- add "emit(expr)" after assigning vars; returns the handle of the result
function Script:emit(expr, vars)
  local names = {}
  for k in pairs(vars or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do self.lines[#self.lines + 1] = k .. " = " .. M.lit(vars[k]) end
  self.lines[#self.lines + 1] = "emit(" .. expr .. ")"
  self.n = self.n + 1
  return self.n
end

-- raw python lines (definitions shared by later emits)
function Script:code(text) self.lines[#self.lines + 1] = text end

function Script:run()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(table.concat(self.lines, "\n"), "\n")
  f:close()
  local p = assert(io.popen(M.python .. " " .. path .. " 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local res = {}
  for line in out:gmatch("[^\n]+") do
    if not line:match("^%d") then error("tensor_np: python failed:\n" .. out) end
    res[#res + 1] = decode(line)
  end
  if #res ~= self.n then error("tensor_np: expected " .. self.n .. " results, got " .. #res .. ":\n" .. out) end
  return res
end

-- one expression, run at once
function M.eval(expr, vars)
  local s = M.script()
  s:emit(expr, vars)
  return s:run()[1]
end

function M.available()
  local p = io.popen(M.python .. " -c 'import numpy; print(42)' 2>/dev/null")
  if not p then return false end
  local out = p:read("a")
  p:close()
  return out:match("42") ~= nil
end

if ... == "tensor_np" then return M end

-- ---- self test ----
local test = require "milua.test"
local T = require "milua.tensor"
if not M.available() then test.bail("python3-numpy is needed at " .. M.python .. " (make deps installs it)") end
local py = M.script()
local h1 = py:emit("np.arange(6).reshape(2, 3) * 2")
local h2 = py:emit("a.sum()", { a = T.tensor({ { 1.5, 2 }, { 3, 4 } }) })
local h3 = py:emit("np.array([np.nan, np.inf, -np.inf, 0.1])")
local h4 = py:emit("a.dtype == np.int32", { a = T.tensor({ 7, 8 }, "int32") })
local x = T.tensor({ 0.1, 1 / 3, -2.75e-7 })
local h5 = py:emit("a", { a = x })
local res = py:run()
test.is(res[h1], { { 0, 2, 4 }, { 6, 8, 10 } }, "2-d result decodes to a nested table")
test.is(res[h2], 10.5, "0-d result decodes to a number")
test.ok(res[h3][1] ~= res[h3][1] and res[h3][2] == math.huge and res[h3][3] == -math.huge and res[h3][4] == 0.1,
  "nan and infinities survive")
test.is(res[h4], 1, "int32 tensors reach numpy as int32")
test.is(x, res[h5], "float32 values reach numpy bit for bit")
test.throws(function() M.eval("undefined_name") end, "NameError", "a python error is reported")
test.done()
