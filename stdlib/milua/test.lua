-- milua.test: TAP output for milua's own tests and for users' scripts.
--
--   local test = require "milua.test"
--   test.plan(3)                       -- optional; without it test.done() prints "1..N"
--   test.ok(x > 0, "x is positive")
--   test.is(#list, 4, "four items")    -- deep comparison for tables and tensors
--   test.close(loss, 0.693, 1e-3, "loss near log 2")   -- numbers, tables, tensors
--   test.throws(function() f(nil) end, "expected a tensor", "f checks its argument")
--   test.done()                        -- exits non-zero on any failure or plan mismatch
--
-- Every check returns true when it passes. Failure details go to stderr as "# " lines,
-- as Test::More does, so `prove` shows them; stdout carries only TAP.
--
--   test.plan(n)            announce n tests (before the first one)
--   test.skip_all(reason)   "1..0 # SKIP reason" and exit 0
--   test.ok(cond, desc)     passes when cond is truthy
--   test.is(got, exp, desc) passes when got equals exp: == for plain values (NaN equals NaN),
--                           key by key for tables, shape and elements for tensors
--   test.isnt(got, exp, desc)
--   test.like(str, pattern, desc)   Lua pattern match (string.find, magic characters live)
--   test.close(got, exp, tol, desc) |got - exp| <= tol; got/exp may be numbers, nested tables
--                           or tensors (elementwise; a number exp is compared with every
--                           element); failure reports the largest difference and its index
--   test.throws(fn, text, desc)     passes when fn raises an error whose message contains
--                           `text` as a PLAIN substring (no pattern magic: "a.b" or "[1]" mean
--                           themselves); text nil accepts any error
--   test.lives(fn, desc)    passes when fn returns without error (the error is reported)
--   test.skip(desc, reason) a test that is skipped ("ok N - desc # SKIP reason")
--   test.todo(cond, desc, reason)   like ok, marked TODO (its failure does not fail the run)
--   test.diag(...)          "# " lines on stderr; test.note(...) "# " lines on stdout
--   test.bail(reason)       "Bail out! reason" and exit 255
--   test.done()             prints the plan if none was given, reports a plan mismatch and
--                           the number of failures, and exits with status min(failures, 254)
--                           (255 for a plan mismatch) when anything went wrong; returns true
--                           when all is well (the script then ends normally)
--   test.numpy(script, arrays)     runs /usr/bin/python3 with NumPy on tensors: the script sees
--                           A[0], A[1], ... (float64 arrays of the given tensors) and out(x),
--                           which prints x; each printed line comes back as a list of numbers
--   test.failures()         number of failed tests so far
--   test.sh(cmd)            runs a shell command with stderr merged into stdout; returns the
--                           output and the exit status (a child process under test)
--   test.run_script(script, flags, opts)   runs `milua SCRIPT FLAGS --out DIR` as a child at a
--                           fixed thread count (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
--                           opts.threads or 1) and reads DIR/results.json; two tests: it exits 0
--                           (else its output goes to the diagnostics) and results.json parses.
--                           opts.out: DIR (default a fresh temporary directory); opts.name: the
--                           name in the descriptions (default the script's file name);
--                           opts.milua: the binary (default the one running the test). Returns
--                           the results ({} when there are none), DIR and the child's output
--   test.pinned(res, name, script, flags)   compares results with tests/experiments/pinned/NAME.json,
--                           written by `make pin` (tests/experiments/pinned/pin.lua) from a run of the same
--                           script and flags at one thread: every pinned field must equal the
--                           measured one exactly, each a test naming the field, the pinned and the
--                           measured value; on another machine (CPU, OpenBLAS or oneDNN differ: other bits)
--                           within the field's tolerance instead. Fields given a chance level must
--                           also be above it. A pin made for other flags fails, asking for `make pin`.
--                           Under MILUA_SANITIZED (test.sanitized: other code, shorter runs) one
--                           visible skip
--   test.machine()          the machine the pins depend on: CPU model, OpenBLAS and oneDNN libraries
--   test.tmpdir([suffix])   a fresh empty directory under the system's temporary directory
--   test.milua()            the milua binary running the test (for child processes)

local M = {}

local state = { run = 0, failed = 0, planned = nil, finished = false }

local out, err = io.stdout, io.stderr

-- The file this module was loaded from: stack frames inside it are not the caller.
local this_source = debug.getinfo(1, "S").source

local function caller_location()
  local level = 2
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.source ~= this_source and info.what ~= "C" then
      return info.short_src, info.currentline
    end
    level = level + 1
  end
end

local function emit_diag(stream, ...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  local text = table.concat(parts, " ", 1, parts.n)
  -- stdout is flushed first so that a shared pipe (2>&1) keeps the lines in order
  out:flush()
  for line in (text .. "\n"):gmatch("(.-)\n") do
    stream:write(line == "" and "#\n" or "# " .. line .. "\n")
  end
  stream:flush()
end

function M.diag(...) emit_diag(err, ...) end
function M.note(...) emit_diag(out, ...) end

-- A description goes on one line and must not contain an unescaped '#' (TAP directive).
local function clean_desc(desc)
  if desc == nil then return "" end
  desc = tostring(desc):gsub("[\r\n]+", " "):gsub("#", "\\#")
  return desc
end

local function report(pass, desc, directive, details)
  if state.finished then
    error("milua.test: a test ran after test.done()", 3)
  end
  state.run = state.run + 1
  local line = (pass and "ok " or "not ok ") .. state.run
  local d = clean_desc(desc)
  if d ~= "" then line = line .. " - " .. d end
  if directive then line = line .. " # " .. directive end
  out:write(line, "\n")
  out:flush()
  local todo = directive and directive:match("^TODO")
  if not pass then
    if not todo then state.failed = state.failed + 1 end
    local file, lineno = caller_location()
    local msg = (todo and "  Failed (TODO) test" or "  Failed test")
    if d ~= "" then msg = msg .. " '" .. tostring(desc) .. "'" end
    if file then msg = msg .. "\n  at " .. file .. " line " .. lineno .. "." end
    emit_diag(todo and out or err, msg)
    if details then emit_diag(todo and out or err, details) end
  end
  return pass
end

function M.plan(n)
  if math.type(n) ~= "integer" or n < 0 then
    error("milua.test.plan: expected a non-negative integer, got " .. tostring(n), 2)
  end
  if state.planned then error("milua.test.plan: the plan was already set", 2) end
  if state.run > 0 then error("milua.test.plan: the plan must come before the first test", 2) end
  state.planned = n
  out:write("1..", n, "\n")
  out:flush()
end

function M.skip_all(reason)
  if state.run > 0 or state.planned then
    error("milua.test.skip_all: tests already started", 2)
  end
  out:write("1..0 # SKIP ", clean_desc(reason), "\n")
  out:flush()
  os.exit(0, true)
end

function M.bail(reason)
  out:write("Bail out! ", clean_desc(reason), "\n")
  out:flush()
  os.exit(255, true)
end

function M.failures() return state.failed end

-- Values shown in diagnostics: short, unambiguous (strings quoted, tables in braces).
local function is_tensor(v)
  if type(v) ~= "userdata" and type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if not mt then return false end
  local ok, f = pcall(function() return v.totable end)
  return ok and type(f) == "function"
end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return (string.format("%q", v):gsub("\\\n", "\\n")) end
  if is_tensor(v) then
    local ok, s = pcall(function() return "tensor " .. show(v:totable(), depth) end)
    if ok then return s end
    return tostring(v)
  end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local parts, n = {}, #v
  for i = 1, n do
    if #parts >= 12 then parts[#parts + 1] = "..."; break end
    parts[#parts + 1] = show(v[i], depth + 1)
  end
  local keys = {}
  for k in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do
    if i > 12 then parts[#parts + 1] = "..."; break end
    local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. show(k, depth + 1) .. "]"
    parts[#parts + 1] = ks .. " = " .. show(v[k], depth + 1)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end
M.show = show

local function is_nan(x) return x ~= x end

-- Deep equality. Returns true, or false plus the path of the first difference.
local function deep_equal(a, b, path, seen)
  if is_tensor(a) then
    local sa, sb = a:shape(), is_tensor(b) and b:shape() or nil
    if sb and not deep_equal(sa, sb, path, seen) then
      return false, path .. " (shape " .. show(sa) .. " vs " .. show(sb) .. ")"
    end
    a = a:totable()
  end
  if is_tensor(b) then b = b:totable() end
  if type(a) == "number" and type(b) == "number" then
    if a == b or (is_nan(a) and is_nan(b)) then return true end
    return false, path
  end
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return true end
    return false, path
  end
  if a == b then return true end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, va in pairs(a) do
    local ok, where = deep_equal(va, b[k], path .. "[" .. show(k) .. "]", seen)
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "[" .. show(k) .. "]" end
  end
  return true
end

function M.ok(cond, desc)
  return report(cond and true or false, desc)
end

function M.is(got, expected, desc)
  local pass, where = deep_equal(got, expected, "")
  if pass then return report(true, desc) end
  local details
  if where ~= "" and (type(got) == "table" or type(expected) == "table" or is_tensor(got) or is_tensor(expected)) then
    details = "  differ at " .. where .. "\n    got:      " .. show(got) .. "\n    expected: " .. show(expected)
  else
    details = "    got:      " .. show(got) .. "\n    expected: " .. show(expected)
  end
  return report(false, desc, nil, details)
end

function M.isnt(got, expected, desc)
  local same = deep_equal(got, expected, "")
  if not same then return report(true, desc) end
  return report(false, desc, nil, "    got:      " .. show(got) .. "\n    expected: anything else")
end

function M.like(got, pattern, desc)
  if type(got) == "string" and got:find(pattern) then return report(true, desc) end
  return report(false, desc, nil,
    "    got:      " .. show(got) .. "\n    expected: a string matching " .. show(pattern))
end

-- Flatten a number / nested table / tensor into {values}, {index paths} and a shape.
local function flatten(v, name)
  if is_tensor(v) then
    local shape = v:shape()
    v = v:totable()
    if type(v) == "number" then return {v}, {{}}, shape end
  end
  if type(v) == "number" then return {v}, {{}}, {} end
  if type(v) ~= "table" then
    error("milua.test.close: " .. name .. " must be a number, a table or a tensor, got " .. type(v), 3)
  end
  local vals, idx, shape = {}, {}, {}
  local function walk(t, prefix, d)
    if type(t) == "number" then
      vals[#vals + 1] = t
      idx[#idx + 1] = prefix
      return
    end
    if type(t) ~= "table" then
      error("milua.test.close: " .. name .. " holds a " .. type(t) .. " at [" .. table.concat(prefix, ",") .. "]", 4)
    end
    shape[d] = shape[d] and math.max(shape[d], #t) or #t
    for i = 1, #t do
      local p = table.move(prefix, 1, #prefix, 1, {})
      p[#p + 1] = i
      walk(t[i], p, d + 1)
    end
  end
  walk(v, {}, 1)
  return vals, idx, shape
end

function M.close(got, expected, tol, desc)
  if type(tol) ~= "number" or tol < 0 then
    error("milua.test.close: tolerance must be a non-negative number, got " .. tostring(tol), 2)
  end
  local gv, gi, gs = flatten(got, "got")
  local ev, _, es
  if type(expected) == "number" then
    ev = {}
    for i = 1, #gv do ev[i] = expected end
    es = gs
  else
    ev, _, es = flatten(expected, "expected")
  end
  if #gv ~= #ev or not deep_equal(gs, es, "") then
    return report(false, desc, nil, "  shapes differ: got " .. show(gs) .. " (" .. #gv ..
      " values), expected " .. show(es) .. " (" .. #ev .. " values)")
  end
  local worst, where = -1, nil
  for i = 1, #gv do
    local d = math.abs(gv[i] - ev[i])
    if d ~= d then d = math.huge end          -- a NaN on either side fails
    if d > worst then worst, where = d, i end
  end
  if worst <= tol then return report(true, desc) end
  local at = #gi[where] > 0 and (" at [" .. table.concat(gi[where], ",") .. "]") or ""
  return report(false, desc, nil, string.format(
    "  max abs difference %.6g%s (got %.9g, expected %.9g), tolerance %.3g",
    worst, at, gv[where], ev[where], tol))
end

function M.throws(fn, text, desc)
  if type(fn) ~= "function" then error("milua.test.throws: expected a function", 2) end
  local ok, e = pcall(fn)
  if ok then
    return report(false, desc, nil, "  expected an error" ..
      (text and (" containing " .. show(text)) or "") .. ", but the function returned normally")
  end
  local msg = tostring(e)
  if text == nil or msg:find(text, 1, true) then return report(true, desc) end
  return report(false, desc, nil, "  error message: " .. show(msg) .. "\n  expected it to contain: " .. show(text))
end

function M.lives(fn, desc)
  if type(fn) ~= "function" then error("milua.test.lives: expected a function", 2) end
  local ok, e = xpcall(fn, debug.traceback)
  if ok then return report(true, desc) end
  -- keep the traceback up to the test function; the harness frames below it are noise
  local msg = tostring(e):gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
  return report(false, desc, nil, "  died: " .. msg)
end

function M.skip(desc, reason)
  return report(true, desc, "SKIP" .. (reason and (" " .. clean_desc(reason)) or ""))
end

function M.todo(cond, desc, reason)
  return report(cond and true or false, desc, "TODO" .. (reason and (" " .. clean_desc(reason)) or ""))
end

function M.done()
  if state.finished then return state.failed == 0 end
  state.finished = true
  local status = 0
  if not state.planned then
    out:write("1..", state.run, "\n")
    out:flush()
  elseif state.planned ~= state.run then
    M.diag(string.format("Looks like you planned %d test%s but ran %d.",
      state.planned, state.planned == 1 and "" or "s", state.run))
    status = 255
  end
  if state.failed > 0 then
    M.diag(string.format("Looks like you failed %d test%s of %d run.",
      state.failed, state.failed == 1 and "" or "s", state.run))
    status = math.min(state.failed, 254)
  end
  if status ~= 0 then os.exit(status, true) end
  return true
end

--- test.png_info(path) -> width, height, or nil and why: a file that starts with the PNG
--- signature and an IHDR chunk and ends with IEND (a truncated write fails the last check)
function M.png_info(path)
  local f = io.open(path, "rb")
  if not f then return nil, "missing" end
  local data = f:read("a")
  f:close()
  if #data < 33 or data:sub(1, 8) ~= "\137PNG\r\n\26\n" then return nil, "no PNG signature" end
  if data:sub(13, 16) ~= "IHDR" then return nil, "first chunk is not IHDR" end
  if data:sub(-8, -5) ~= "IEND" then return nil, "does not end with IEND" end
  return string.unpack(">I4I4", data, 17)
end

--- test.png(path, desc [, min_side = 100]) -> width, height: one test that path is a whole PNG
--- of at least min_side pixels a side
function M.png(path, desc, min_side)
  local w, h = M.png_info(path)
  local why = not w and h or (math.min(w, h) < (min_side or 100) and ("image is " .. w .. "x" .. h)) or nil
  M.ok(why == nil, desc .. (why and (": " .. why) or (" (" .. w .. "x" .. h .. ")")))
  return w, h
end

function M.sh(cmd)
  local h = assert(io.popen("(" .. cmd .. "\n) 2>&1; echo \"rc=$?\""))   -- a subshell: any command line, even one that exits
  local text = h:read("a")
  h:close()
  return (text:gsub("rc=%d+\n$", "")), tonumber(text:match("rc=(%d+)\n$"))
end

-- ---- experiment scripts as child processes, and their pinned results ----

local function default_milua()
  return (arg and arg[-1]) or ((os.getenv("MILUA_BUILD") or "build") .. "/milua")
end
M.milua = default_milua

function M.tmpdir(suffix)
  local dir = os.tmpname()
  os.remove(dir)
  dir = dir .. (suffix and ("." .. suffix) or "")
  local ok, e = require("milua.sys").mkdir(dir)
  if not ok then M.bail("test.tmpdir: cannot make " .. dir .. ": " .. tostring(e)) end
  return dir
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- the command line of a run (the pin script uses the same one)
function M.script_command(script, flags, out, opts)
  opts = opts or {}
  local threads = opts.threads or 1
  return string.format("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d %s %s %s --out %s", threads, threads,
    opts.milua or default_milua(), script, flags or "", shell_quote(out))
end

function M.run_script(script, flags, opts)
  opts = opts or {}
  local name = opts.name or script:match("([^/]+)%.lua$") or script
  local out = opts.out or M.tmpdir(name)
  local log, status = M.sh(M.script_command(script, flags, out, opts))
  report(status == 0, name .. ": " .. script .. " " .. (flags or "") .. " runs",
    nil, status ~= 0 and ("    exit status " .. tostring(status) .. "; its output:\n" .. log) or nil)
  local json = require "milua.json"
  local ok, res = pcall(json.read, out .. "/results.json")
  report(ok and type(res) == "table", name .. ": results.json parses", nil, not ok and ("    " .. tostring(res)) or nil)
  return (ok and type(res) == "table") and res or {}, out, log
end

function M.machine()
  local function first_line(cmd)
    local h = io.popen(cmd .. " 2>/dev/null")
    local line = h and h:read("l") or ""
    if h then h:close() end
    return line
  end
  local cpu = first_line("grep -m1 'model name' /proc/cpuinfo"):gsub("^model name%s*:%s*", "")
  -- the GEMM libraries decide the bits: OpenBLAS and oneDNN, each by the file the binary loads
  local function lib(pattern)
    local path = first_line("ldd " .. shell_quote(default_milua()) .. " | grep -o '/[^ ]*" .. pattern .. "[^ ]*'")
    return path ~= "" and first_line("readlink -f " .. shell_quote(path)) or ""
  end
  return cpu .. " | " .. lib("openblas") .. " | " .. lib("dnnl")
end

-- the value at a dotted path: "acc_by_class.S3.acc", "losses.10" (list indices 1-based)
local function at_path(v, path)
  for part in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    local i = tonumber(part)
    if i and v[i] ~= nil then v = v[i] else v = v[part] end
  end
  return v
end
M.at_path = at_path

M.pinned_dir = "tests/experiments/pinned"
M.sanitized = os.getenv("MILUA_SANITIZED") ~= nil   -- a sanitizer build: pins do not apply

-- a float in the fewest digits that read back as the same double (a pin is exact); other
-- values as show() gives them
local function show_exact(v)
  if math.type(v) ~= "float" then return show(v) end
  for p = 15, 17 do
    local text = string.format("%." .. p .. "g", v)
    if tonumber(text) == v or p == 17 then return text end
  end
end

function M.pinned(res, name, script, flags)
  local json = require "milua.json"
  local file = M.pinned_dir .. "/" .. name .. ".json"
  if M.sanitized then
    return report(true, name .. ": results as pinned", "SKIP the sanitizer build compiles other code and the tests " ..
      "run it with shorter flags, so its bits differ from any pin")
  end
  local ok, pin = pcall(json.read, file)
  if not ok or type(pin) ~= "table" or type(pin.values) ~= "table" then
    return report(false, name .. ": pinned results " .. file, nil, "    cannot read them (" .. tostring(pin) ..
      "); make them with `make pin`")
  end
  if pin.script ~= script or pin.flags ~= (flags or "") then
    return report(false, name .. ": pinned results are for this run", nil, string.format(
      "    pinned for `%s %s`, the test runs `%s %s`: run `make pin` after changing a test's flags",
      tostring(pin.script), tostring(pin.flags), script, flags or ""))
  end
  local exact = pin.machine == M.machine()
  if not exact then
    M.note(name .. ": pinned on another machine (" .. tostring(pin.machine) .. "), compared within each field's tolerance")
  end
  local keys = {}
  for k in pairs(pin.values) do keys[#keys + 1] = k end
  table.sort(keys)
  local all = true
  for _, k in ipairs(keys) do
    local want, got = pin.values[k], at_path(res, k)
    local tol = (pin.tolerance or {})[k] or 0
    local pass
    if exact or type(want) ~= "number" or type(got) ~= "number" then pass = deep_equal(got, want, "")
    else pass = math.abs(got - want) <= tol end
    local desc = string.format("%s: %s = %s as pinned%s", name, k, show_exact(want),
      (exact or type(want) ~= "number") and "" or string.format(" (within %g)", tol))
    all = report(pass, desc, nil, not pass and string.format("    field %s of %s\n    pinned:   %s\n    measured: %s",
      k, file, show_exact(want), show_exact(got)) or nil) and all
  end
  local chance = pin.chance or {}
  keys = {}
  for k in pairs(chance) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local got = at_path(res, k)
    local c = chance[k]
    local pass = type(got) == "number" and got > c.above
    all = report(pass, string.format("%s: %s above chance (%g: %s)", name, k, c.above, c.why), nil,
      not pass and string.format("    measured: %s", show_exact(got)) or nil) and all
  end
  return all
end

-- independent truth for tests: NumPy computing the same thing from the same inputs
function M.numpy(script, arrays)
  local data, code = os.tmpname(), os.tmpname()
  local f = assert(io.open(data, "w"))
  for _, t in ipairs(arrays) do
    local shape = t:shape()
    f:write(#shape, " ", table.concat(shape, " "), "\n")
    local parts = {}
    for i, v in ipairs(t:contiguous():view(-1):totable()) do parts[i] = string.format("%.9g", v) end
    f:write(table.concat(parts, " "), "\n")
  end
  f:close()
  f = assert(io.open(code, "w"))
  f:write("import numpy as np, sys\nA = []\nwith open(sys.argv[1]) as fh:\n  lines = fh.read().split('\\n')\n",
    "for i in range(0, len(lines) - 1, 2):\n  h = [int(x) for x in lines[i].split()]\n",
    "  A.append(np.array([float(x) for x in lines[i + 1].split()], dtype=np.float64).reshape(h[1:]))\n",
    "def out(x):\n  print(' '.join('%.12g' % v for v in np.asarray(x, dtype=np.float64).ravel()))\n", script, "\n")
  f:close()
  local p = assert(io.popen("/usr/bin/python3 " .. code .. " " .. data .. " 2>&1"))
  local lines = {}
  for line in p:lines() do
    local nums = {}
    for w in line:gmatch("%S+") do nums[#nums + 1] = tonumber(w) end
    lines[#lines + 1] = nums
    if #nums == 0 then M.diag("numpy: " .. line) end
  end
  p:close()
  os.remove(data)
  os.remove(code)
  return lines
end

return M
