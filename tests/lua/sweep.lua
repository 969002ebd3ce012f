-- milua.sweep without running jobs: the grid syntax, job names and arguments, the collect maths
-- on a sweep directory written by hand (values computed by hand), CSV and JSON output, and the
-- error messages of the milua-sweep command (run as a process: it must exit non-zero, say what
-- was wrong, and leave nothing behind).
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"
local S = require "milua.sweep"

-- the launcher beside the milua under test (build/ or build-asan/)
local launcher = (os.getenv("MILUA_BUILD") or "build") .. "/milua-sweep"
if not io.open(launcher) then test.bail("no " .. launcher .. ": build it with make " .. launcher) end
local function sweep(args) return test.sh(launcher .. " " .. args) end
local tmp = os.tmpname()
os.remove(tmp)
assert(sys.mkdir(tmp))

------------------------------------------------------------------------------ grid syntax
test.is(S.parse_values("seed", "1..4"), { "1", "2", "3", "4" }, "1..4 is a range")
test.is(S.parse_values("seed", "1..3,7"), { "1", "2", "3", "7" }, "a range and a value in one list")
test.is(S.parse_values("bias", "-2..1"), { "-2", "-1", "0", "1" }, "ranges through negative numbers")
test.is(S.parse_values("lr", "3e-4,1e-3"), { "3e-4", "1e-3" }, "list items stay as written")
test.is(S.parse_values("seed", "5..5"), { "5" }, "a range of one")
test.throws(function() S.parse_values("seed", "4..1") end, "--seed 4..1: empty range 4..1 (a range counts up: write 1..4)",
  "a descending range is refused and the fix named")
test.throws(function() S.parse_values("lr", "3e-4,,1e-3") end, "empty item", "two commas")
test.throws(function() S.parse_values("lr", "3e-4,") end, "empty item", "a trailing comma")
test.throws(function() S.parse_values("seed", "1..x") end, "'1..x' is not a range of integers", "a range of non-integers")
test.throws(function() S.parse_values("seed", "1.5..3") end, "not a range of integers", "a range from a fraction")
test.throws(function() S.parse_values("seed", "1..3,2") end, "value 2 is listed twice", "a value listed twice")
test.throws(function() S.parse_values("seed", "1..200000") end, "at most 100000", "a range too long")
test.throws(function() S.parse_values("seed", "1..100001") end, "--seed 1..100001: range of 100001 values; at most 100000",
  "the first range too long")
test.is(#S.parse_values("seed", "1..100000"), 100000, "the longest range allowed")
test.throws(function() S.parse_values("seed", "1..99999999999999999999") end,
  "--seed 1..99999999999999999999: range 1..99999999999999999999 has an end beyond the 64-bit integers", "a range end beyond the integers")

local r = S.parse_run({ "x.lua", "--seed", "1..2", "--lr=3e-4,1e-3", "--quick", "--steps", "200", "--out", "d",
  "--jobs", "2", "--only", "3", "--only", "seed=1,lr=3e-4", "--", "--jobs", "5", "--verbose" })
test.is(r.target, "x.lua", "the script comes first")
test.is(r.grid, { { name = "seed", values = { "1", "2" } }, { name = "lr", values = { "3e-4", "1e-3" } } },
  "two swept flags, in the order given")
test.is(r.fixed, { { name = "quick", value = true }, { name = "steps", value = "200" }, { name = "jobs", value = "5" },
  { name = "verbose", value = true } }, "fixed flags: bare ones are true, --jobs after -- is the script's")
test.is({ r.opts.out, r.opts.jobs, r.opts.only }, { "d", "2", { "3", "seed=1,lr=3e-4" } }, "the sweep's own flags")
test.throws(function() S.parse_run({ "x.lua", "--seed", "1", "--seed", "2" }) end, "the script flag --seed is given twice",
  "a script flag twice")
test.throws(function() S.parse_run({ "x.lua", "seed", "1" }) end, "unexpected word 'seed'", "a word that is not a flag")
test.throws(function() S.parse_run({ "--seed", "1..2" }) end, "expected a script", "no script")
test.throws(function() S.parse_run({ "x.lua", "--out" }) end, "--out needs a value", "--out without a value")

local jobs = S.expand(r.grid, r.fixed)
test.is(#jobs, 4, "2 x 2 grid points")
local names = {}
for i, j in ipairs(jobs) do names[i] = j.name end
test.is(names, { "seed=1,lr=3e-4", "seed=1,lr=1e-3", "seed=2,lr=3e-4", "seed=2,lr=1e-3" },
  "names from the swept flags, the first flag outermost")
test.is(jobs[2].args, { "--seed=1", "--lr=1e-3", "--quick", "--steps=200", "--jobs=5", "--verbose" },
  "a job's arguments: swept then fixed flags")
test.is(jobs[3].flags, { { "seed", "2" }, { "lr", "3e-4" } }, "a job's swept values")
test.is(S.expand({}, { { name = "steps", value = "10" } })[1].name, "run", "no swept flag: one job named run")
test.is(S.expand({ { name = "data", values = { "a/b", "c d" } } }, {})[2].name, "data=c_d",
  "characters outside letters, digits and . - + _ become _ in names")
test.throws(function() S.expand({ { name = "data", values = { "a/b", "a b" } } }, {}) end,
  "share the directory name 'data=a_b'", "two values that clean to one name are refused")
-- each range is allowed, their product is not: refused before a single job is built
local wide = S.parse_run({ "x.lua", "--seed", "1..1000", "--lr", "1..1000", "--bias", "1,2", "--out", "d" })
test.throws(function() S.expand(wide.grid, wide.fixed) end,
  "the grid has more than 100000 jobs (values per flag: --seed 1000 x --lr 1000 x ...): sweep fewer values at a time",
  "a grid whose ranges multiply past the limit is refused, the sizes named")
local huge = {}
for i = 1, 40 do huge[i] = { name = "f" .. i, values = { "1", "2" } } end
test.throws(function() S.expand(huge, {}) end, "more than 100000 jobs", "2^40 grid points are refused, not enumerated")
test.is(#S.expand({ { name = "seed", values = S.parse_values("seed", "1..1000") },
  { name = "lr", values = S.parse_values("lr", "1..100") } }, {}), 100000, "a grid of exactly the limit is built")

------------------------------------------------------------------------------ collect maths
test.is(S.get({ a = { b = { 10, 20 } } }, "a.b.2"), 20, "dotted path into a list")
test.is(S.get({ best_head = { score = 0.5 } }, "best_head.score"), 0.5, "dotted path into an object")
test.is(S.get({ a = 1 }, "a.b"), nil, "a path through a number is nil")
test.is(S.flatten({ x = 1, y = { 2, 3 }, z = { w = true } }, "r"),
  { { "r.x", 1 }, { "r.y.1", 2 }, { "r.y.2", 3 }, { "r.z.w", true } }, "flatten: every leaf with its path")
test.is(S.stats({ 1, true, nil, "x", 4 }, 5), { n = 3, mean = 2.0, min = 1, max = 4 },
  "stats: numbers and booleans (as 1/0), holes and strings left out")
test.is(S.stats({}, 0), { n = 0 }, "stats of nothing")
test.is(S.eta({ 10, 20 }, 3, { 5, 20 }, 2), 27.5, "eta: (3 x 15 + (15 - 5) + 0) / 2 slots")
test.is(S.eta({}, 3, {}, 2), nil, "no eta before a job has finished")
test.is({ S.duration(59.4), S.duration(61), S.duration(3725) }, { "59s", "1m01s", "1h02m" }, "durations")

-- a sweep written by hand: lr 0.25 and 0.5 over seeds 1..3; seed 3 of lr 0.5 is missing and
-- seed 2 of lr 0.5 wrote a JSON array, which is not a result
local dir = tmp .. "/hand"
local swept = { "lr", "seed" }
local hand = { version = 1, script = "/x/toy.lua", script_given = "toy.lua", cwd = "/x", interpreter = "milua",
  swept = swept, fixed = {}, jobs = {}, runs = {} }
local values = {
  ["0.25"] = { { score = 1.5, best = { score = 0.25 }, acc = { 1.0, 0.5 }, ok = true },
               { score = 2.5, best = { score = 0.5 }, acc = { 1.0, 0.25 }, ok = false },
               { score = 5.0, best = { score = 0.75 }, acc = { 0.5, 0.0 }, ok = true } },
  ["0.5"] = { { score = 4.0, best = { score = 1.0 }, acc = { 1.0, 1.0 }, ok = true }, "array", nil },
}
for _, lr in ipairs({ "0.25", "0.5" }) do
  for seed = 1, 3 do
    local name = "lr=" .. lr .. ",seed=" .. seed
    hand.jobs[#hand.jobs + 1] = { name = name, flags = { { "lr", lr }, { "seed", tostring(seed) } }, args = {} }
    assert(sys.mkdir(dir .. "/" .. name))
    local v = values[lr][seed]
    if v == "array" then
      local f = assert(io.open(dir .. "/" .. name .. "/results.json", "w")); f:write("[1, 2]\n"); f:close()
    elseif v then
      json.write(dir .. "/" .. name .. "/results.json", v)
    end
  end
end
json.write(dir .. "/sweep.json", hand)

local c = S.collect(dir, { fields = { "score", "best.score", "acc", "ok" } })
test.is(c.columns, { "score", "best.score", "acc.1", "acc.2", "ok" }, "columns: a list field gives one per item")
test.is(#c.rows, 4, "four complete jobs")
test.is(c.missing, { "lr=0.5,seed=2", "lr=0.5,seed=3" }, "a JSON array and no file are both not complete")
test.is(#c.groups, 2, "grouped by lr (over the seeds)")
local g1, g2 = c.groups[1].stats, c.groups[2].stats
test.is(c.groups[1].key, "lr=0.25", "group key")
test.close(g1.score.mean, 3.0, 1e-12, "mean score of lr 0.25: (1.5 + 2.5 + 5) / 3")
test.is({ g1.score.min, g1.score.max, g1.score.n }, { 1.5, 5.0, 3 }, "min, max, n of lr 0.25")
test.close(g1["best.score"].mean, 0.5, 1e-12, "nested field: (0.25 + 0.5 + 0.75) / 3")
test.close(g1["acc.2"].mean, 0.25, 1e-12, "list item 2: (0.5 + 0.25 + 0) / 3")
test.close(g1.ok.mean, 2 / 3, 1e-12, "a boolean's mean is the fraction true")
test.is({ g2.score.n, g2.score.mean, g2.score.min, g2.score.max }, { 1, 4.0, 4.0, 4.0 }, "a group of one")

test.is(S.csv(c), table.concat({
  "job,lr,seed,score,best.score,acc.1,acc.2,ok",
  '"lr=0.25,seed=1",0.25,1,1.5,0.25,1.0,0.5,true',
  '"lr=0.25,seed=2",0.25,2,2.5,0.5,1.0,0.25,false',
  '"lr=0.25,seed=3",0.25,3,5.0,0.75,0.5,0.0,true',
  '"lr=0.5,seed=1",0.5,1,4.0,1.0,1.0,1.0,true', "" }, "\n"), "the CSV, exact values")
local jt = S.json_table(c)
test.is(jt.groups[1].stats["acc.1"], { n = 3, mean = 2.5 / 3, min = 0.5, max = 1.0 }, "the JSON table's group stats")
test.is(jt.rows[4].values.score, 4.0, "the JSON table's rows")

test.is(S.markdown(S.collect(dir, { fields = { "score", "ok" } })), table.concat({
  "| job | score | ok |", "| --- | --- | --- |",
  "| lr=0.25,seed=1 | 1.5 | true |", "| lr=0.25,seed=2 | 2.5 | false |", "| lr=0.25,seed=3 | 5 | true |",
  "| lr=0.5,seed=1 | 4 | true |",
  "| lr=0.25 mean (3) | 3 | 0.6667 |", "| lr=0.25 min (3) | 1.5 | 0 |", "| lr=0.25 max (3) | 5 | 1 |",
  "| lr=0.5 mean (1) | 4 | 1 |", "| lr=0.5 min (1) | 4 | 1 |", "| lr=0.5 max (1) | 4 | 1 |", "" }, "\n"),
  "the Markdown table: rows, then each group's mean, min, max")
local c2 = S.collect(dir, { fields = { "score" }, over = "lr" })
test.is(#c2.groups, 3, "--over lr groups by seed instead")
test.close(c2.groups[1].stats.score.mean, (1.5 + 4.0) / 2, 1e-12, "seed 1 over lr")

-- the terminal table and the PNG, through the command
local out, rc = sweep("collect " .. dir .. " --fields score,best.score --csv " .. tmp .. "/t.csv --json " .. tmp ..
  "/t.json --plot best.score --png " .. tmp .. "/t.png")
test.is(rc, 0, "collect exits 0")
test.like(out, "lr=0%.25 mean +3 +0%.5\n", "terminal: the group's means")
test.like(out, "\n  min +1%.5 +0%.25\n  max +5 +0%.75\n", "terminal: its min and max")
test.like(out, "not complete %(2%): lr=0%.5,seed=2 lr=0%.5,seed=3", "terminal: the missing jobs")
test.is(io.open(tmp .. "/t.csv"):read("a"):match("^[^\n]+"), "job,lr,seed,score,best.score", "the CSV file")
test.is(json.read(tmp .. "/t.json").groups[1].stats.score.mean, 3.0, "the JSON file")
test.png(tmp .. "/t.png", "the metric against --lr")

------------------------------------------------------------------------------ error paths
local function refused(args, text, desc)
  local o, code = sweep(args)
  test.ok(code ~= 0 and o:find(text, 1, true) ~= nil, desc)
  if code == 0 or not o:find(text, 1, true) then test.diag("exit " .. tostring(code) .. ", output:\n" .. o) end
end
local toy = "tests/sweep/toy.lua"
refused("run " .. toy .. " --seed 4..1 --out " .. tmp .. "/e1", "milua-sweep run: --seed 4..1: empty range", "bad range")
-- the range's length once wrapped to -1 and the loop ran through 2^64 values: in a child
-- under timeout (and a 4 GB ulimit -v outside the sanitized build) a regression fails here
do
  local o, code = test.sh((os.getenv("MILUA_SANITIZED") and "" or "ulimit -v 4000000; ") .. "timeout 60 " .. launcher
    .. " run " .. toy .. " --seed=-9223372036854775808..9223372036854775807 --out " .. tmp .. "/e1")
  local want = "--seed -9223372036854775808..9223372036854775807: range of 18446744073709551616 values; at most 100000"
  test.ok(code ~= 0 and code ~= 124 and o:find(want, 1, true) ~= nil, "a range whose length wraps past the integers")
  if code == 0 or not o:find(want, 1, true) then test.diag("exit " .. tostring(code) .. ", output:\n" .. o) end
end
refused("run " .. toy .. " --seed 1..2 --runner foo --out " .. tmp .. "/e1",
  "unknown runner 'foo' (expected local, parallel or slurm)", "unknown runner")
refused("run nope.lua --seed 1..2 --out " .. tmp .. "/e1", "no script 'nope.lua'", "missing script")
refused("run " .. toy .. " --sed 1..2 --out " .. tmp .. "/e1", "tests/sweep/toy.lua has no flag --sed (its flags:",
  "a flag the script does not have, caught before any job")
refused("run " .. toy .. " --seed 1..2", "--out DIR is required", "no --out")
refused("run " .. toy .. " --seed 1..2 --jobs 0 --out " .. tmp .. "/e1", "--jobs must be a positive integer, got '0'",
  "--jobs 0")
refused("run " .. toy .. " --seed 1..2 --sshloginfile x --out " .. tmp .. "/e1", "--sshloginfile goes with --runner parallel",
  "--sshloginfile without parallel")
refused("run tests/sweep --seed 1 --out " .. tmp .. "/e1", "is a directory without sweep.json", "a directory as the script")
test.ok(not sys.is_dir(tmp .. "/e1"), "refused runs create nothing")
refused("status " .. tmp .. "/none", "milua-sweep status: no sweep directory", "status of a missing directory")
refused("status " .. tmp, "holds no sweep.json", "status of a directory that is not a sweep")
refused("collect " .. dir .. " --fields score --plot nope", "--plot nope: not a collected column (columns: score)",
  "plot of a field not collected")
refused("collect " .. dir .. " --bogus 1", "unknown flag --bogus", "collect flag")
refused("job " .. dir .. " 9", "job 9: the sweep has jobs 1 to 6", "job number out of range")
refused("job " .. dir .. " seed=9", "no job 'seed=9'", "job name unknown")
refused("frobnicate", "unknown command 'frobnicate' (expected run, status, collect or job)", "unknown command")
-- a sweep directory is tied to its script and fixed flags
local _, rc1 = sweep("run " .. toy .. " --seed 1,2 --steps 3 --out " .. tmp .. "/tied --dry-run")
test.is(rc1, 0, "a dry run records the sweep")
refused("run " .. toy .. " --seed 1,2 --steps 4 --out " .. tmp .. "/tied",
  "was run with the fixed flags --steps=3, this run has --steps=4: use another --out", "changed fixed flags are refused")
refused("collect " .. tmp .. "/tied", "has no complete job yet", "collect before any job is complete")
refused("run " .. tmp .. "/tied --seed 3", "resuming it takes no script flags", "resuming with a changed grid")
refused("collect " .. dir .. " --fields score,,ok", "--fields score,,ok: empty field name", "an empty field name")
refused("collect " .. dir .. " --fields score --plot score --x steps", "--x steps: not a swept flag (swept: lr seed)",
  "plot against a flag not swept")
refused("job " .. dir .. " 1 --threads 0", "--threads must be a positive integer, got '0'", "job --threads 0")
-- the Slurm job array script, written without submitting (make test-slurm submits one)
local sd = tmp .. "/sl"
local so, src = sweep("run " .. toy .. " --seed 1..3 --quick --out " .. sd .. " --runner slurm --jobs 2 --threads 2 " ..
  "--slurm-time 20 --slurm-mem 1G --slurm-partition short")
test.is(src, 0, "--runner slurm without --submit exits 0")
test.like(so, "wrote " .. sd .. "/slurm%.sh; submit it with: sbatch " .. sd .. "/slurm%.sh", "and says how to submit")
local script = io.open(sd .. "/slurm.sh"):read("a")
test.like(script, "^#!/bin/sh\n", "a shell script")
for _, line in ipairs({ "#SBATCH --array=1,2,3%2", "#SBATCH --cpus-per-task=2", "#SBATCH --time=20", "#SBATCH --mem=1G",
    "#SBATCH --partition=short", "#SBATCH --output=" .. sd .. "/slurm/%A_%a.out" }) do
  test.ok(script:find("\n" .. line .. "\n", 1, true) ~= nil, "slurm.sh has " .. line)
end
test.like(script, 'milua%-sweep job ' .. sd:gsub("%p", "%%%0") .. ' "%$SLURM_ARRAY_TASK_ID" %-%-threads "%${SLURM_CPUS_PER_TASK:%-2}"\n$',
  "each task runs its job with the task's CPUs as threads")
refused("run " .. toy .. " --seed 1..2 --submit --out " .. tmp .. "/e1", "--submit goes with --runner slurm", "--submit alone")
-- a fake `parallel` that is not GNU parallel (moreutils ships one)
local fake = tmp .. "/fakebin"
assert(sys.mkdir(fake))
local f = assert(io.open(fake .. "/parallel", "w"))
f:write("#!/bin/sh\necho 'parallel from moreutils'\n")
f:close()
os.execute("chmod +x " .. fake .. "/parallel")
local o, code = sweep("run " .. toy .. " --seed 1..2 --runner parallel --out " .. tmp .. "/e2")
test.ok(code == 0, "(with GNU parallel on PATH the run works)")
local h = io.popen("PATH=" .. fake .. ":$PATH " .. launcher .. " run " .. toy .. " --seed 1..2 --runner parallel --out " ..
  tmp .. "/e3 2>&1; echo rc=$?")
o = h:read("a")
h:close()
test.like(o, "needs GNU parallel %(Debian package 'parallel'%)", "a parallel that is not GNU parallel is named")
test.like(o, "rc=2\n$", "and the run exits 2")

os.execute("rm -rf " .. tmp)
test.done()
