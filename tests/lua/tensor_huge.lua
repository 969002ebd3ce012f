-- Huge views and counts: x:expand(2^40) is legal and costs no memory (every element shares
-- one), so a call that reads every element from Lua must refuse it or summarize it at once,
-- not loop for hours while a Lua table grows by gigabytes (binding fuzz sequence 1796186869
-- did so through totable); the data generators, which build their rows as Lua tables, refuse
-- a batch too large for them the same way (T.max_table_numbers() is the bound). Each case runs in a child milua under `timeout`, and, outside the
-- sanitized build (whose shadow memory needs an unlimited address space), under a 4 GB
-- `ulimit -v`: a regression fails here instead of hanging the suite or eating the machine.
local test = require "milua.test"
local T = require "milua.tensor"
local json = require "milua.json"

local BIN = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
local SANITIZED = os.getenv("MILUA_SANITIZED") ~= nil
local INT_MAX = 2147483647

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- runs `code` (Lua, with T and json preloaded) in a child; returns its output and exit code
local function child(code)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write('local T = require "milua.tensor"\nlocal json = require "milua.json"\n', code, "\n")
  f:close()
  local limit = SANITIZED and "" or "ulimit -v 4000000; "
  local p = assert(io.popen("sh -c " .. quote(limit .. "timeout 60 " .. quote(BIN) .. " " .. quote(script)
    .. " 2>&1; echo \"exit $?\"")))
  local out = p:read("a")
  p:close()
  os.remove(script)
  local body, code_ = out:match("^(.-)exit (%d+)\n$")
  return body or out, tonumber(code_)
end

-- the child prints the error of `expr` under pcall, then proves it survived
local function refused(expr, want, name)
  local out, rc = child(string.format([[
local ok, err = pcall(function() return %s end)
print(ok and "no error" or tostring(err))
print("survived " .. (T.tensor({ 1, 2 }) + T.tensor({ 3, 4 })):sum():item())]], expr))
  local pass = rc == 0 and out:find(want, 1, true) ~= nil and out:find("survived 10", 1, true) ~= nil
  test.ok(pass, name)
  if not pass then test.diag("exit " .. tostring(rc) .. (rc == 124 and " (timed out)" or ""), out, "expected: " .. want) end
end

-- totable: more elements than a Lua table holds
refused("T.tensor(1.5):expand(2^40):totable()",
  "totable: a tensor [1099511627776] of 1099511627776 elements is too large for a Lua table (at most 2147483647 elements)",
  "totable of a 2^40-element expanded view is refused at once")
refused("T.tensor(1.5):expand(2^20, 2^20):totable()",
  "totable: a tensor [1048576,1048576] of 1099511627776 elements is too large for a Lua table",
  "totable of a [2^20, 2^20] view (every dim small, the product not) is refused")
refused("T.tensor(1, 'int32'):expand(2^31):totable()",
  "totable: a tensor [2147483648] of 2147483648 elements is too large for a Lua table",
  "totable of INT_MAX + 1 elements is refused (the first size past the bound)")
refused("json.encode(T.tensor(1.5):expand(2^40))", "totable: a tensor [1099511627776]",
  "json.encode of a 2^40-element view names totable's refusal")

-- totable: fewer elements than that, but more bytes as Lua numbers (16 each) than the
-- machine has: the bound is the physical memory, read here from /proc/meminfo
local mi = io.open("/proc/meminfo", "r")
test.ok(mi ~= nil, "/proc/meminfo is readable (the memory bound of totable is checked against it)")
if mi then
  local kb = tonumber(mi:read("a"):match("MemTotal:%s*(%d+) kB"))
  mi:close()
  test.ok(kb ~= nil, "MemTotal is in /proc/meminfo")
  local bytes = (kb or 0) * 1024
  test.is(T.max_table_numbers(), math.min(INT_MAX, bytes // 16),
    "T.max_table_numbers() is the smaller of 2^31 - 1 and MemTotal / 16 bytes")
  local n = bytes // 16 + 1   -- the fewest elements that do not fit
  if n <= INT_MAX then
    refused(string.format("T.tensor(1.5):expand(%d):totable()", n),
      string.format("totable: out of memory: a tensor [%d] of %d elements needs at least %d bytes as Lua numbers, "
        .. "more than the %d bytes of this machine", n, n, 16 * n, bytes),
      "totable of more Lua-number bytes than the machine has is refused at once")
  else
    test.diag("this machine has " .. bytes .. " bytes: every tensor that exceeds them as Lua numbers has more than "
      .. INT_MAX .. " elements, refused by the count bound tested above")
    refused(string.format("T.tensor(1.5):expand(%d):totable()", n), "too large for a Lua table",
      "totable beyond the memory bound is refused (by the count bound on this machine)")
  end
end

-- the data generators: a batch of more numbers than that is refused before the first draw,
-- whether the count is a typo of 2^40 or the first size past the bound
local max = T.max_table_numbers()
for _, c in ipairs({
  { "require('milua.data.addition').batch(%d, 2)", 9, "addition.batch: a batch of %d examples of 9 tokens is more numbers than Lua tables hold on this machine (T.max_table_numbers() = %d)" },
  { "require('milua.data.lego').batch(%d, 3)", 17, "lego.batch: a batch of %d examples of 17 tokens is more numbers than Lua tables hold on this machine (T.max_table_numbers() = %d)" },
  { "require('milua.data.tree_paths').dataset(%d, 4)", 18, "tree_paths.dataset: %d examples of 18 tokens are more numbers than Lua tables hold on this machine (T.max_table_numbers() = %d)" },
}) do
  for _, count in ipairs({ 1 << 40, max // c[2] + 1 }) do
    local call = string.format(c[1], count)
    refused(call, string.format(c[3], count, max), call .. " is refused at once")
  end
end

-- tostring of a huge view: summarized, and the format chosen from the printed elements only
local out, rc = child("io.write(tostring(T.tensor(1.5):expand(2^40)))")
test.is(out, "tensor([1.5000, 1.5000, 1.5000 ..., 1.5000, 1.5000, 1.5000], shape=[1099511627776], dtype=float32)",
  "tostring of a 2^40-element view prints its summary at once")
test.is(rc, 0, "tostring of a 2^40-element view exits normally")
out, rc = child("io.write(tostring(T.tensor(7, 'int32'):expand(2^20, 2^20)))")
test.is(out, "tensor([[7, 7, 7 ..., 7, 7, 7],\n        [7, 7, 7 ..., 7, 7, 7],\n        [7, 7, 7 ..., 7, 7, 7]\n"
  .. "        ...,\n        [7, 7, 7 ..., 7, 7, 7],\n        [7, 7, 7 ..., 7, 7, 7],\n        [7, 7, 7 ..., 7, 7, 7]], "
  .. "shape=[1048576,1048576], dtype=int32)", "tostring of a [2^20, 2^20] int32 view")

-- the format follows the printed elements, as in PyTorch (torch.cat([ones(1000), [0.5],
-- ones(1000)]) prints "tensor([1., 1., 1.,  ..., 1., 1., 1.])"): the hidden 0.5 does not
-- turn the integers into 1.0000
local mid = T.cat({ T.ones(1000), T.tensor({ 0.5 }), T.ones(1000) })
test.is(tostring(mid), "tensor([1., 1., 1. ..., 1., 1., 1.], shape=[2001], dtype=float32)",
  "an elided middle element does not change the format")
mid = T.cat({ T.ones(1000), T.tensor({ 0.5 }), T.ones(2) })
test.is(tostring(mid), "tensor([1.0000, 1.0000, 1.0000 ..., 0.5000, 1.0000, 1.0000], shape=[1003], dtype=float32)",
  "a printed last-edge element does")
test.is(tostring(T.tensor({ { 1, 2.5 }, { 3, 4 } })), "tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]], shape=[2,2], dtype=float32)",
  "small tensors print every element in one format")
test.is(tostring(T.zeros(0, 3)), "tensor([], shape=[0,3], dtype=float32)", "an empty tensor prints")

-- below the bounds nothing changes: an expanded view's values, nested as its shape
test.is(T.tensor(2.5):expand(3, 2):totable(), { { 2.5, 2.5 }, { 2.5, 2.5 }, { 2.5, 2.5 } }, "totable of a small expanded view")
test.is(T.arange(1, 7):view(2, 3):t():totable(), { { 1, 4 }, { 2, 5 }, { 3, 6 } }, "totable of a transposed view")
test.is(T.zeros(2, 0):totable(), { {}, {} }, "totable of an empty dim")
test.is(json.encode(T.tensor({ { 1, 2 } }, "int32")), "[[1,2]]", "json.encode of a small tensor")
test.done()
