-- Tests of milua.test: runs small scripts that use it in a child interpreter and checks
-- their TAP output and exit status. This file prints its own TAP by hand, so a broken
-- milua.test cannot hide its own failures.

local run, failed = 0, 0
local function ok(cond, desc, extra)
  run = run + 1
  print((cond and "ok " or "not ok ") .. run .. " - " .. desc)
  if not cond then
    failed = failed + 1
    if extra then io.stdout:write("# ", (tostring(extra):gsub("\n", "\n# ")), "\n") end
  end
  return cond
end

-- The interpreter for the children: the milua build, or (while it does not exist) the
-- interpreter running this file, which then needs LUA_PATH to reach stdlib/.
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end
local interp = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
if not exists(interp) then
  interp = arg[-1] or "lua5.4"
end

local function shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Runs `source` as a script; returns stdout, stderr, exit code, and both streams merged
-- in order (a second run with 2>&1).
local function child(source)
  local script, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "wb"))
  f:write(source)
  f:close()
  local _, _, code = os.execute(shq(interp) .. " " .. shq(script) .. " >" .. shq(out) .. " 2>" .. shq(err))
  local o, e = slurp(out), slurp(err)
  os.execute(shq(interp) .. " " .. shq(script) .. " >" .. shq(out) .. " 2>&1")
  local merged = slurp(out)
  os.remove(script); os.remove(out); os.remove(err)
  return o, e, code, merged, script
end

local function has(s, text) return s:find(text, 1, true) ~= nil end
-- TAP lines: the text must start at the beginning of a line ("ok 1" is inside "not ok 1")
local function tap(s, text) return ("\n" .. s):find("\n" .. text, 1, true) ~= nil end

local prelude = 'local test = require "milua.test"\n'

-- 1. all passing, with a plan: exactly this TAP, status 0
do
  local o, e, code = child(prelude .. [[
test.plan(3)
test.ok(true, "first")
test.is(2 + 2, 4, "second")
test.is({1, {a = "x"}}, {1, {a = "x"}}, "third")
test.done()
]])
  ok(o == "1..3\nok 1 - first\nok 2 - second\nok 3 - third\n", "planned passing run prints exact TAP", o)
  ok(code == 0, "passing run exits 0", code)
  ok(e == "", "passing run writes nothing to stderr", e)
end

-- 2. no plan: done() prints the plan last
do
  local o, _, code = child(prelude .. [[
test.ok(1, "truthy number")
test.ok("s", "truthy string")
test.done()
]])
  ok(o == "ok 1 - truthy number\nok 2 - truthy string\n1..2\n", "done() prints 1..N at the end", o)
  ok(code == 0, "exit 0 without failures", code)
end

-- 3. a failing is(): "not ok", got/expected diagnostics, non-zero status
do
  local o, e, code, merged = child(prelude .. [[
test.ok(true, "good")
test.is(3, 4, "bad sum")
test.is("abc", "abc", "good string")
test.done()
]])
  ok(tap(o, "ok 1 - good\nnot ok 2 - bad sum\nok 3 - good string\n1..3\n"), "failing test reported as not ok", o)
  ok(has(e, "#   Failed test 'bad sum'"), "failure names the test", e)
  ok(has(e, "line 3"), "failure gives the caller's line", e)
  ok(e:find("#%s+got:%s+3\n") and e:find("#%s+expected:%s+4\n"), "got/expected diagnostics", e)
  ok(code == 1, "exit status = number of failures (1)", code)
  ok(tap(merged, "not ok 2 - bad sum\n#   Failed test 'bad sum'"), "diagnostics follow their test line when merged", merged)
  ok(has(e, "Looks like you failed 1 test of 3"), "summary of failures", e)
end

-- 4. plan mismatch fails even when every test passed
do
  local o, e, code = child(prelude .. [[
test.plan(3)
test.ok(true, "one")
test.ok(true, "two")
test.done()
]])
  ok(has(o, "1..3\n") and not has(o, "not ok"), "mismatch run's tests pass", o)
  ok(has(e, "planned 3 tests but ran 2"), "plan mismatch reported", e)
  ok(code ~= 0, "plan mismatch exits non-zero", code)
end

-- 5. deep is() on tables reports where they differ; isnt and like
do
  local o, e, code = child(prelude .. [[
test.is({1, 2, {k = "v"}}, {1, 2, {k = "w"}}, "nested")
test.is({1, {k = "v"}}, {1, {k = "v", extra = 0}}, "missing key")
test.isnt(1, 2, "isnt passes")
test.like("loss = 0.25", "loss = %d", "like passes")
test.like("nothing", "^x", "like fails")
test.done()
]])
  ok(tap(o, "not ok 1 - nested\nnot ok 2 - missing key\nok 3 - isnt passes\nok 4 - like passes\nnot ok 5 - like fails\n"), "deep is, isnt, like", o)
  ok(has(e, '[3]["k"]'), "deep difference located", e)
  ok(has(e, '[2]["extra"]'), "a key missing from got is found", e)
  ok(code == 3, "three failures -> status 3", code)
end

-- 6. close(): numbers, nested tables, scalar expected, NaN, shape mismatch
do
  local o, e = child(prelude .. [[
test.close(1.0, 1.05, 0.1, "number within tol")
test.close(1.0, 1.5, 0.1, "number outside tol")
test.close({{1, 2}, {3, 4}}, {{1, 2}, {3, 4.25}}, 0.01, "table off at [2,2]")
test.close({0.5, 0.5}, 0.5, 1e-9, "scalar expected")
test.close({1, 0/0}, {1, 0}, 1, "nan fails")
test.close({1, 2, 3}, {1, 2}, 1, "shape mismatch")
test.done()
]])
  ok(tap(o, "ok 1 - number within tol\nnot ok 2 - number outside tol\nnot ok 3 - table off at [2,2]\nok 4 - scalar expected\nnot ok 5 - nan fails\nnot ok 6 - shape mismatch\n"),
    "close verdicts", o)
  ok(has(e, "max abs difference 0.25 at [2,2]"), "close reports the largest difference and where", e)
  ok(has(e, "shapes differ"), "close reports a shape mismatch", e)
end

-- 7. close() on tensors
do
  local o, e = child(prelude .. [[
local T = require "milua.tensor"
local a = T.tensor({{1, 2, 3}, {4, 5, 6}}, "float32")
test.close(a, {{1, 2, 3}, {4, 5, 6.001}}, 0.01, "tensor vs table")
test.close(a, T.tensor({{1, 2, 3}, {4, 7, 6}}, "float32"), 0.5, "tensor vs tensor")
test.is(T.tensor({1, 2}, "int32"), {1, 2}, "is tensor vs table")
test.done()
]])
  ok(tap(o, "ok 1 - tensor vs table\nnot ok 2 - tensor vs tensor\nok 3 - is tensor vs table\n"), "tensor comparisons", o .. e)
  ok(has(e, "max abs difference 2 at [2,2]"), "tensor difference located", e)
end

-- 8. throws(): plain substring (magic characters are literal), wrong message, no error
do
  local o, e, code = child(prelude .. [[
test.throws(function() error("bad shape [2,3] (want 1.5%)") end, "[2,3] (want 1.5%)", "plain text with magic chars")
test.throws(function() error("boom") end, nil, "any error")
test.throws(function() error("alpha") end, "beta", "wrong message")
test.throws(function() return 1 end, "x", "no error")
test.throws(function() error({code = 1}) end, "table", "non-string error value")
test.done()
]])
  ok(tap(o, "ok 1 - plain text with magic chars\nok 2 - any error\nnot ok 3 - wrong message\nnot ok 4 - no error\nok 5 - non-string error value\n"),
    "throws verdicts", o)
  ok(has(e, 'error message: "') and has(e, 'alpha"') and has(e, 'expected it to contain: "beta"'), "throws shows the actual message", e)
  ok(has(e, "returned normally"), "throws reports a missing error", e)
  ok(code == 2, "two throws failures -> status 2", code)
end

-- 9. lives(), skip, todo, diag, note, '#' in descriptions
do
  local o, e, code = child(prelude .. [[
test.lives(function() local x = 1 end, "quiet function")
test.lives(function() error("kaput") end, "dies")
test.skip("needs a GPU", "no GPU here")
test.todo(false, "not yet", "later")
test.ok(true, "issue #12 fixed")
test.diag("to stderr")
test.note("to stdout")
test.done()
]])
  -- a failing TODO's diagnostics go to stdout (as Test::More does), between lines 4 and 5
  ok(tap(o, "ok 1 - quiet function\nnot ok 2 - dies\nok 3 - needs a GPU # SKIP no GPU here\nnot ok 4 - not yet # TODO later\n")
    and tap(o, "ok 5 - issue \\#12 fixed\n# to stdout\n1..5\n"), "lives, skip, todo, escaped #, note", o)
  ok(has(e, "died: ") and has(e, "kaput"), "lives reports the error", e)
  ok(has(e, "# to stderr"), "diag goes to stderr", e)
  ok(code == 1, "a failing TODO does not count", code)
end

-- 10. skip_all and bail
do
  local o, _, code = child(prelude .. 'test.skip_all("no data")\ntest.ok(false, "never")\n')
  ok(o == "1..0 # SKIP no data\n", "skip_all prints an empty plan", o)
  ok(code == 0, "skip_all exits 0", code)
  local o2, _, code2 = child(prelude .. 'test.ok(true, "a")\ntest.bail("broken setup")\ntest.ok(true, "b")\n')
  ok(has(o2, "Bail out! broken setup") and not tap(o2, "ok 2"), "bail stops the run", o2)
  ok(code2 ~= 0, "bail exits non-zero", code2)
end

-- 11. misuse is an error: plan after a test, a test after done
do
  local _, e, code = child(prelude .. 'test.ok(true, "x")\ntest.plan(2)\n')
  ok(code ~= 0 and has(e, "plan must come before"), "late plan is an error", e)
  local _, e2, code2 = child(prelude .. 'test.ok(true, "x")\ntest.done()\ntest.ok(true, "y")\n')
  ok(code2 ~= 0 and has(e2, "after test.done()"), "a test after done is an error", e2)
end

-- 12. prove accepts the output: a passing script passes, a failing one fails
do
  local has_prove = os.execute("command -v prove >/dev/null 2>&1")
  if not has_prove then
    run = run + 1
    print("ok " .. run .. " - prove # SKIP prove not installed")
    run = run + 1
    print("ok " .. run .. " - prove # SKIP prove not installed")
  else
    local function prove(source)
      local script, out = os.tmpname() .. ".lua", os.tmpname()
      local f = assert(io.open(script, "wb"))
      f:write(source)
      f:close()
      local okv = os.execute("prove -e " .. shq(interp) .. " " .. shq(script) .. " >" .. shq(out) .. " 2>&1")
      local text = slurp(out)
      os.remove(script); os.remove(out)
      return okv, text
    end
    local pass, text = prove(prelude .. [[
test.plan(4)
test.ok(true, "a")
test.skip("b", "why")
test.todo(false, "c", "later")
test.close({1, 2}, {1, 2.0000001}, 1e-6, "d")
test.done()
]])
    ok(pass and has(text, "Result: PASS"), "prove passes a passing script", text)
    local pass2, text2 = prove(prelude .. 'test.ok(true, "a")\ntest.ok(false, "b")\ntest.done()\n')
    ok(not pass2 and has(text2, "Failed 1/2"), "prove fails a failing script", text2)
  end
end

-- test.png_info / test.png: a whole PNG passes, a truncated, foreign or missing file fails with a reason
do
  local M = require "milua.test"
  local plot = require "milua.plot"
  local good, cut, other = os.tmpname(), os.tmpname(), os.tmpname()
  plot.heatmap({ { 0, 1 }, { 1, 0 } }, good, { title = "png" })
  local bytes = slurp(good)
  local f = io.open(cut, "wb"); f:write(bytes:sub(1, #bytes - 12)); f:close()
  f = io.open(other, "wb"); f:write("GIF89a" .. string.rep("\0", 64)); f:close()
  local w, h = M.png_info(good)
  ok(type(w) == "number" and w >= 100 and h >= 100, "png_info: a written plot has its size")
  local w2, why2 = M.png_info(cut)
  ok(w2 == nil and why2 == "does not end with IEND", "png_info: a truncated PNG fails", tostring(why2))
  local w3, why3 = M.png_info(other)
  ok(w3 == nil and why3 == "no PNG signature", "png_info: another format fails", tostring(why3))
  local w4, why4 = M.png_info(good .. ".none")
  ok(w4 == nil and why4 == "missing", "png_info: a missing file fails", tostring(why4))
  local out = child('local test = require "milua.test"\ntest.png(' .. string.format("%q", cut) .. ', "cut")\ntest.png(' ..
    string.format("%q", good) .. ', "small enough", 5000)\ntest.done()\n')
  ok(has(out, "not ok 1 - cut: does not end with IEND") and has(out, "not ok 2 - small enough: image is "),
    "test.png reports the reason in the test line", out)
  os.remove(good); os.remove(cut); os.remove(other)
end

-- test.sh: the output with stderr merged, and the exit status
do
  local T = require "milua.test"
  local text, code = T.sh("echo out; echo err 1>&2; exit 3")
  ok(text == "out\nerr\n" and code == 3, "test.sh returns merged output and the exit status", tostring(text) .. " " .. tostring(code))
  local _, zero = T.sh("true")
  ok(zero == 0, "test.sh: status 0 of a command that succeeds", zero)
end

-- test.run_script and test.pinned: a small "experiment" that writes results.json from its flags,
-- run by a child test script; pinned values in a directory of this test's own
do
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. shq(dir .. "/pinned"))
  local exp = dir .. "/exp.lua"
  local f = assert(io.open(exp, "w"))
  f:write([=[
local cli = require "milua.cli"
local json = require "milua.json"
local o = cli.parse(arg, { { "lr", 0.5, "a rate" }, { "out", "x", "where" }, { "fail", false, "exit 1" } }, "exp")
if o.fail then io.stderr:write("exp: told to fail\n"); os.exit(1) end
os.execute("mkdir -p '" .. o.out .. "'")
-- a result whose bits depend on the flag, and a nested list, and the thread count it saw
json.write(o.out .. "/results.json", { loss = 1 / (1 + o.lr), acc = { 0.25, 0.5 + o.lr / 4 },
  threads = tonumber(os.getenv("OMP_NUM_THREADS")) })
]=])
  f:close()
  local pin = dir .. "/pinned/exp.json"
  f = assert(io.open(pin, "w"))
  f:write(string.format('{"script": %q, "flags": "--lr 0.5", "machine": "elsewhere", "values": {"loss": %.17g, "acc.2": 0.625}, ' ..
    '"tolerance": {"loss": 0, "acc.2": 0}, "chance": {"acc.2": {"above": 0.5, "why": "one of two"}}}', exp, 1 / 1.5))
  f:close()
  local function body(flags, machine_line, out)
    return string.format([[
local test = require "milua.test"
test.pinned_dir = %q
test.sanitized = false   -- under the sanitizer build too: this tests the comparison itself
%s
local res, out, log = test.run_script(%q, %q, { out = %q })
test.ok(res.threads == 1, "run at one thread")
test.pinned(res, "exp", %q, %q)
test.done()
]], dir .. "/pinned", machine_line or "", exp, flags, out or (dir .. "/out"), exp, flags)
  end
  local o, _, code = child(body("--lr 0.5"))
  ok(code == 0 and tap(o, "ok 1 - exp: " .. exp .. " --lr 0.5 runs") and tap(o, "ok 2 - exp: results.json parses")
    and tap(o, "ok 3 - run at one thread") and tap(o, "ok 4 - exp: acc.2 = 0.625 as pinned (within 0)")
    and tap(o, "ok 6 - exp: acc.2 above chance (0.5: one of two)"),
    "test.run_script runs a script at one thread; test.pinned passes values equal to the pins", o)
  -- a deliberate change: another rate moves both values; the pin was made for other flags
  local o2, e2, code2 = child(body("--lr 0.25"))
  ok(code2 ~= 0 and tap(o2, "not ok 4 - exp: pinned results are for this run") and has(e2, "run `make pin`"),
    "test.pinned refuses a run with other flags than the pin's", o2 .. e2)
  -- the same flags but another result: each field named with the pinned and the measured value
  f = assert(io.open(pin, "w"))
  f:write(string.format('{"script": %q, "flags": "--lr 0.5", "machine": "elsewhere", "values": {"loss": %.17g, "acc.2": 0.6}, ' ..
    '"tolerance": {"loss": 0, "acc.2": 0.01}, "chance": {"acc.2": {"above": 0.7, "why": "made up"}}}', exp, 1 / 1.5 + 1e-12))
  f:close()
  local o3, e3, code3 = child(body("--lr 0.5"))
  ok(code3 ~= 0 and tap(o3, "not ok 4 - exp: acc.2 = 0.6 as pinned (within 0.01)") and tap(o3, "not ok 5 - exp: loss = ")
    and has(e3, "field loss of " .. pin) and has(e3, "pinned:   0.6666666666676666")
    and has(e3, "measured: 0.6666666666666666")
    and tap(o3, "not ok 6 - exp: acc.2 above chance (0.7: made up)"),
    "test.pinned fails a changed value, naming the field, the pinned and the measured value, and a result at chance", o3 .. e3)
  -- on the machine the pins were made on, equality is exact: no tolerance
  local o4, e4, code4 = child(body("--lr 0.5", "test.machine = function() return 'elsewhere' end"))
  ok(code4 ~= 0 and tap(o4, "not ok 4 - exp: acc.2 = 0.6 as pinned\n"), "test.pinned compares exactly on the pins' machine", o4 .. e4)
  -- a script that fails: its output in the diagnostics, and an empty result
  local o5, e5 = child(body("--lr 0.5 --fail", nil, dir .. "/out_fail"))
  ok(tap(o5, "not ok 1 - exp: " .. exp .. " --lr 0.5 --fail runs") and has(e5, "exp: told to fail")
    and tap(o5, "not ok 2 - exp: results.json parses"), "test.run_script reports a failing script with its output", o5 .. e5)
  os.execute("rm -rf " .. shq(dir))
end

print("1.." .. run)
if failed > 0 then os.exit(1) end
