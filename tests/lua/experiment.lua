-- milua.experiment: a tiny experiment script run as a subprocess. Flags (common and the script's
-- own), the script's folder on package.path from any working directory, checkpoint reuse when
-- the recipe matches and retraining when it differs, checks in results.json and report.txt, and
-- the error paths (one line on stderr, non-zero status, nothing written).
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"

local BIN = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
if BIN:sub(1, 1) ~= "/" then BIN = os.getenv("PWD") .. "/" .. BIN end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  assert(f:write(text))
  assert(f:close())
end
local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local function exists(path) return read_file(path) ~= nil end

local root = os.tmpname()
os.remove(root)
assert(sys.mkdir(root .. "/experiments/tiny"))

-- the paper's helper, found as "tiny.helper" beside the entry script
write_file(root .. "/experiments/tiny/helper.lua", 'return { answer = function(x) return 2 * x end }\n')
-- the entry script: a one-layer model whose "training" moves its weights by a seeded amount and
-- counts builds in a file, so a test can tell a reuse from a retraining
write_file(root .. "/experiments/tiny.lua", [[
local T = require "milua.tensor"
local nn = require "milua.nn"
local experiment = require "milua.experiment"
local helper = require "tiny.helper"   -- before start: loading milua.experiment put experiments/ on the path
local E = experiment.start(arg, {
  name = "tiny", about = "a tiny experiment",
  flags = { { "width", 8, "d_model" }, { "seed", 3, "the tiny seed" }, { "crash", false, "fail midway" } },
})
local o = E.opts
local steps = o.steps or 5
local recipe = { d_model = o.width, steps = steps }
local model, info = E:model("model", recipe, function()
  T.seed(o.seed)
  local m = nn.transformer { n_layers = 1, d_model = o.width, n_heads = 2, d_head = o.width // 2,
    d_mlp = 2 * o.width, d_vocab = 5, n_ctx = 4, act_fn = "gelu", normalization = "LN" }
  local counter = E.out .. "/builds.txt"
  local f = io.open(counter, "a"); f:write("built\n"); f:close()
  return m, { steps_done = steps }
end)
E:say("model %s (%d steps)", info.reused and "reused" or "trained", info.steps_done)
E:say("a line with a %% sign and no arguments 100%")
local total = 0
for _, n in ipairs(model.param_names) do total = total + model.params[n]:float():abs():sum():item() end
if o.crash then error("the measurement failed") end
E:check("positive", total > 0, "sum of |weights| %.3f > 0", total)
E:check("impossible", total < 0, "sum of |weights| %.3f < 0", total)
local f = io.open(E:file("figure.png"), "wb"); f:write("not really a png"); f:close()
E:finish({ total = total, reused = info.reused, train_seconds = info.train_seconds, helper = helper.answer(21),
  seed_flag = o.seed, quick_flag = o.quick, steps = steps, path = package.path:match("^[^;]*") })
]])

-- runs the script from directory cwd with args; returns status, stdout, stderr
local n_runs = 0
local function run(cwd, script, args)
  n_runs = n_runs + 1
  local out, err = root .. "/stdout" .. n_runs, root .. "/stderr" .. n_runs
  local cmd = string.format("cd %s && %s %s %s >%s 2>%s", quote(cwd), quote(BIN), script, args, quote(out), quote(err))
  local _, how, code = os.execute(cmd)
  if how ~= "exit" then code = -1 end
  return code, read_file(out) or "", read_file(err) or ""
end

local function has(s, text) return s:find(text, 1, true) ~= nil end
local function lines(s) local n = 0; for _ in s:gmatch("[^\n]*\n") do n = n + 1 end; return n end

-- ---- a run from another working directory, absolute paths ----
local out1 = root .. "/out1"
local code, stdout, stderr = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1))
test.is(code, 0, "the script runs from / with an absolute path")
if code ~= 0 then test.diag(stderr) end
local r1 = exists(out1 .. "/results.json") and json.read(out1 .. "/results.json") or {}
test.is(r1.helper, 42, "require \"tiny.helper\" loads experiments/tiny/helper.lua")
test.is(r1.path, root .. "/experiments/?.lua", "the script's folder comes first on package.path")
test.is(r1.seed, 3, "a script's own --seed entry changes the default (3)")
test.is(r1.seed_flag, 3, "and E.opts.seed holds it")
test.is(r1.quick, false, "results.quick records --quick (off)")
test.is(r1.steps, 5, "--steps absent: E.opts.steps is nil and the script uses its own default")
test.is(r1.reused, false, "the first run trains")
test.ok(type(r1.wall_seconds) == "number" and r1.wall_seconds >= 0, "results.wall_seconds is added")
test.ok(type(r1.train_seconds) == "number" and r1.train_seconds >= 0, "info.train_seconds is measured")
local checks = r1.checks or {}
test.is(checks.positive, { holds = true, text = string.format("sum of |weights| %.3f > 0", r1.total) },
  "results.checks.positive: held, with its text")
test.is(checks.impossible and checks.impossible.holds, false, "results.checks.impossible: did not hold")
test.ok(has(stdout, "check positive: held -- sum of |weights|"), "a check is printed as held")
test.ok(has(stdout, "check impossible: did not hold -- sum of |weights|"), "a failed check is printed as did not hold")
local report = read_file(out1 .. "/report.txt") or ""
test.ok(has(report, "model trained (5 steps)") and has(report, "100%") and has(report, "checks:")
  and has(report, "impossible     did not hold"), "report.txt holds the said lines and the checks")
test.ok(has(stdout, "wrote results.json, report.txt, figure.png in " .. out1), "finish lists the files written")
test.is(read_file(out1 .. "/builds.txt"), "built\n", "the model was built once")
test.ok(exists(out1 .. "/model.safetensors"), "the checkpoint is saved in --out")

-- ---- the same recipe: reuse; the same weights; the original training time ----
code = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1))
local r2 = json.read(out1 .. "/results.json")
test.is(code, 0, "the second run succeeds")
test.is(r2.reused, true, "the same recipe reuses the checkpoint")
test.is(read_file(out1 .. "/builds.txt"), "built\n", "and does not build the model again")
test.is(r2.total, r1.total, "the reused model has the same weights")
test.is(r2.train_seconds, r1.train_seconds, "info.train_seconds is the time of the run that trained it")

-- ---- a different recipe (steps, width) or a different seed: retrain ----
code = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1) .. " --steps 7")
local r3 = json.read(out1 .. "/results.json")
test.is({ code, r3.reused, r3.steps }, { 0, false, 7 }, "--steps 7 changes the recipe: retrained")
code = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1) .. " --steps 7 --width 12")
test.is(json.read(out1 .. "/results.json").reused, false, "--width 12 changes the recipe: retrained")
code = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1) .. " --steps 7 --width 12 --seed 4")
local r5 = json.read(out1 .. "/results.json")
test.is({ r5.reused, r5.seed }, { false, 4 }, "--seed 4 changes the key: retrained")
test.isnt(r5.total, r1.total, "with other weights")
code = run("/", quote(root .. "/experiments/tiny.lua"), "--out " .. quote(out1) .. " --steps 7 --width 12 --seed 4 --retrain")
test.is(json.read(out1 .. "/results.json").reused, false, "--retrain trains even when the recipe matches")
test.is(lines(read_file(out1 .. "/builds.txt")), 5, "five builds in all")

-- ---- a relative script path and the default --out (out/<name> under the working directory) ----
code, stdout, stderr = run(root, "experiments/tiny.lua", "--quick")
test.is(code, 0, "a relative script path from the project root works")
local r6 = exists(root .. "/out/tiny/results.json") and json.read(root .. "/out/tiny/results.json") or {}
test.is(r6.helper, 42, "the default --out is out/tiny, and the helper is found")
test.is(r6.quick, true, "results.quick records --quick")
test.is(r6.path, root .. "/experiments/?.lua", "a relative script's folder is made absolute on package.path")

-- ---- errors: one line on stderr, non-zero status, nothing written ----
local function refused(args, text, desc)
  local out = root .. "/bad" .. n_runs
  local c, so, se = run(root, "experiments/tiny.lua", "--out " .. quote(out) .. " " .. args)
  test.ok(c ~= 0, desc .. ": non-zero status")
  test.ok(has(se, text) and lines(se) == 1 and has(se, "experiments/tiny.lua: "),
    desc .. ": one line naming the script and the problem")
  if not has(se, text) then test.diag("stderr: " .. se) end
  test.ok(not exists(out .. "/results.json") and not exists(out .. "/model.safetensors"), desc .. ": nothing written")
  test.is(so, "", desc .. ": nothing on stdout")
end
refused("--steps 0", "flag --steps: expected a positive number of steps, got 0", "--steps 0")
refused("--steps=-3", "got -3", "--steps -3")
refused("--seed=abc", "flag --seed: expected an integer, got 'abc'", "--seed=abc")
refused("--widht 3", "unknown flag '--widht'", "an unknown flag")
refused("--width", "flag --width needs a value", "a flag without its value")
write_file(root .. "/a_file", "x")
do
  local c, _, se = run(root, "experiments/tiny.lua", "--out " .. quote(root .. "/a_file/sub"))
  test.ok(c ~= 0 and lines(se) == 1 and has(se, "flag --out: mkdir: cannot create"),
    "an --out under a regular file: one line saying it cannot be created")
end
do
  local c, _, se = run(root, "experiments/tiny.lua", "--out " .. quote(root .. "/a_file"))
  test.ok(c ~= 0 and lines(se) == 1 and has(se, "is not a directory"), "an --out that is a file: refused")
end

-- ---- a script that fails midway leaves no results.json (and keeps an older one whole) ----
do
  local out = root .. "/crash"
  local c, _, se = run(root, "experiments/tiny.lua", "--out " .. quote(out) .. " --crash")
  test.ok(c ~= 0 and has(se, "the measurement failed"), "an error in the script fails the run")
  test.ok(not exists(out .. "/results.json") and not exists(out .. "/report.txt"), "and writes no results.json nor report.txt")
  c = run(root, "experiments/tiny.lua", "--out " .. quote(out))
  local before = read_file(out .. "/results.json")
  c = run(root, "experiments/tiny.lua", "--out " .. quote(out) .. " --crash")
  test.is(read_file(out .. "/results.json"), before, "a failed rerun leaves the previous results.json as it was")
end

-- ---- --help lists the common flags and the script's own ----
do
  local c, so = run(root, "experiments/tiny.lua", "--help")
  test.ok(c == 0 and has(so, "a tiny experiment") and has(so, "--out=STR") and has(so, "--[no-]quick")
    and has(so, "--steps=N") and has(so, "--width=N") and has(so, "the tiny seed (default 3)"),
    "--help: the about line, the common flags and the script's own")
end

-- ---- programmer errors in the calls are raised at the caller ----
do
  local experiment = require "milua.experiment"
  test.throws(function() experiment.start({ [0] = "x" }, {}) end, "expected {name", "start without a name")
  test.throws(function()
    experiment.start({ [0] = "x", "--out", root .. "/prog" }, { name = "x", flags = { { "n", nil, "no type" } } })
  end, "cli.parse: flag 'n' has no usable type", "a bad flag spec is the script's error, raised")
  write_file(root .. "/experiments/tiny/other.lua", "return 'found by start'\n")
  for _, bad in ipairs({ { "steps", 0, "zero steps" }, { "seed", "one", "a word" }, { "quick", 1, "a number" } }) do
    test.throws(function()
      experiment.start({ [0] = "x", "--out", root .. "/prog" }, { name = "x", flags = { bad } })
    end, "experiment.start: '" .. bad[1] .. "' is a common flag", "a common flag redefined with " .. bad[3] .. " is refused")
  end
  local E = experiment.start({ [0] = root .. "/experiments/prog.lua", "--out", root .. "/prog" }, { name = "prog" })
  test.is(require "tiny.other", "found by start", "start puts the folder of the script it is given on package.path")
  test.is(E.out, root .. "/prog", "E.out is --out")
  test.throws(function() E:check("x", 1, "text") end, "holds must be true or false", "E:check wants a boolean")
  test.throws(function() E:model("a/b", {}, function() end) end, "plain file name", "E:model wants a plain name")
  test.throws(function() E:model("m", { f = print }, function() end) end, "not plain data", "a recipe holding a function")
  test.throws(function() E:model("m", {}, function() return 3 end) end, "build must return a model", "build returns no model")
  test.throws(function() E:model("m", {}, function() end, { dir = 3 }) end, "options must be {dir",
    "E:model: a dir that is not a string is refused")
  test.throws(function() E:model("m", {}, function() end, "x") end, "options must be {dir", "E:model: options not a table")
  -- {dir}: the checkpoint lives in another directory, where a second experiment (another --out) finds it
  do
    local nn = require "milua.nn"
    local shared = root .. "/shared_models"
    local builds = 0
    local function build()
      builds = builds + 1
      return nn.transformer { n_layers = 1, d_model = 4, n_heads = 1, d_head = 4, d_mlp = 8, d_vocab = 3, n_ctx = 2 }
    end
    local _, i1 = E:model("m", { k = 1 }, build, { dir = shared })
    test.ok(exists(shared .. "/m.safetensors") and not exists(E.out .. "/m.safetensors") and not i1.reused,
      "E:model {dir}: trained into dir (created), not into --out")
    local E2 = experiment.start({ [0] = root .. "/experiments/prog.lua", "--out", root .. "/prog2" }, { name = "prog2" })
    local _, i2 = E2:model("m", { k = 1 }, build, { dir = shared })
    test.ok(i2.reused and builds == 1 and i2.train_seconds == i1.train_seconds,
      "E:model {dir}: an experiment with another --out reuses it (same recipe)")
    local _, i3 = E2:model("m", { k = 2 }, build, { dir = shared })
    test.ok(not i3.reused and builds == 2, "E:model {dir}: another recipe trains anew")
  end
  test.throws(function() E:file("../x.png") end, "without a directory", "E:file refuses a path")
  test.throws(function() E:finish(3) end, "results must be a table", "E:finish wants a table")
end

os.execute("rm -rf " .. quote(root))
test.done()
