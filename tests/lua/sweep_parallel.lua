-- milua-sweep through GNU parallel for real: two jobs of a --quick script handed to `parallel`
-- with an --sshloginfile naming this machine (":" is parallel's word for it), collected, then run
-- again to see that nothing is re-run. GNU parallel is a dependency (make deps installs it): its
-- absence fails this test.
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"

local launcher = (os.getenv("MILUA_BUILD") or "build") .. "/milua-sweep"
if not io.open(launcher) then test.bail("no " .. launcher .. ": build it with make " .. launcher) end
local sh = test.sh
local version = sh("parallel --version </dev/null")
if not version:find("GNU parallel", 1, true) then
  test.bail("GNU parallel is not installed (make deps installs the Debian package 'parallel')")
end

local tmp = os.tmpname()
os.remove(tmp)
assert(sys.mkdir(tmp))
local logins = tmp .. "/sshlogins"
local f = assert(io.open(logins, "w"))
f:write("2/:\n")                  -- two job slots on the local machine
f:close()
local dir = tmp .. "/par"
-- each job sleeps 3 s, so that the progress is seen while both run
local args = string.format("run tests/sweep/toy.lua --seed 1..2 --quick --lr 0.25 --sleep 3 --count %s/count --out %s " ..
  "--runner parallel --jobs 2 --sshloginfile %s", tmp, dir, logins)
local out, rc = sh(launcher .. " " .. args)
test.is(rc, 0, "the parallel sweep exits 0")
test.like(out, "running: parallel %-%-jobs 2 [^\n]*%-%-sshloginfile [^\n]*sshlogins", "parallel got the --sshloginfile")
test.like(out, "\n0/2 done, 2 running, 0 failed, 0 to start | ", "progress while both jobs run (parallel itself says nothing then)")
test.like(out, "2/2 done, 0 running, 0 failed, 0 to start | %d+s in all, finished", "progress ends with all done")
local joblog = io.open(dir .. "/parallel.joblog"):read("a")
local exits = {}
for line in joblog:gmatch("[^\n]+") do
  local seq, exit = line:match("^(%d+)\t%S+\t[%d%.]+\t%s*[%d%.]+\t%d+\t%d+\t(%d+)\t")
  if seq then exits[tonumber(seq)] = tonumber(exit) end
end
test.is(exits, { 0, 0 }, "parallel's job log: two jobs, both exit 0")
for seed = 1, 2 do
  local r = json.read(dir .. "/seed=" .. seed .. "/results.json")
  test.is({ r.seed, r.score, r.quick, r.threads }, { seed, seed + 25.0, true, 1 },
    "seed " .. seed .. ": its own result, --quick passed, one thread (two jobs on " .. "this machine)")
end
out, rc = sh(launcher .. " collect " .. dir .. " --fields score,best.score --csv " .. tmp .. "/par.csv")
test.is(rc, 0, "collect exits 0")
test.is(io.open(tmp .. "/par.csv"):read("a"),
  'job,seed,score,best.score\nseed=1,1,26.0,0.1\nseed=2,2,27.0,0.2\n', "the collected table")
test.like(out, "all mean +26%.5 +0%.15\n  min +26 +0%.1\n  max +27 +0%.2\n", "mean, min and max over the seeds")
-- again: both complete, parallel is not even started
out, rc = sh(launcher .. " " .. args)
test.is(rc, 0, "the second run exits 0")
test.like(out, "2 already complete, 0 to run", "nothing to run the second time")
local lines = {}
for line in io.open(tmp .. "/count"):lines() do lines[#lines + 1] = line end
table.sort(lines)            -- the two jobs start in either order
test.is(lines, { "1 0.25", "2 0.25" }, "each job started once in all")

os.execute("rm -rf " .. tmp)
test.done()
