-- milua-sweep running jobs for real on this machine (the local runner): threads per job, a
-- failed job reported with its error and re-run alone, a grid extended by more seeds, and a
-- sweep killed half-way (SIGKILL to its whole process group) that, started again, runs only what
-- was not finished. The jobs are tests/sweep/toy.lua, whose results the tests know by hand.
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"

local launcher = (os.getenv("MILUA_BUILD") or "build") .. "/milua-sweep"
if not io.open(launcher) then test.bail("no " .. launcher .. ": build it with make " .. launcher) end
local sh = test.sh
local function sweep(args) return sh(launcher .. " " .. args) end
local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
-- how many times each seed started, from the toy's --count file
local function starts(path)
  local n = {}
  for seed in (read(path) or ""):gmatch("(%d+) [^\n]*\n") do n[tonumber(seed)] = (n[tonumber(seed)] or 0) + 1 end
  return n
end
local function complete(dir, name)
  local ok, v = pcall(json.read, dir .. "/" .. name .. "/results.json")
  return ok and type(v) == "table" and v or nil
end
-- nproc honours OMP_NUM_THREADS, which the test suite sets to 1: the machine's count without it
local cores = tonumber((sh("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc")))
local tmp = os.tmpname()
os.remove(tmp)
assert(sys.mkdir(tmp))
local toy = "tests/sweep/toy.lua"

------------------------------------------------------------------------------ a failure, re-run alone
local d1, count1, flag = tmp .. "/fail", tmp .. "/fail.count", tmp .. "/broken"
io.open(flag, "w"):close()
local out, rc = sweep(string.format("run %s --seed 1..3 --fail-seed 2 --fail-while %s --count %s --out %s",
  toy, flag, count1, d1))
test.is(rc, 1, "a sweep with a failed job exits 1")
test.like(out, "%d+ already complete, 3 to run %(local runner, " .. cores .. " at a time, 1 thread each%)",
  "default: a job per core, one thread each")
test.like(out, "failed seed=2: exit status 1: milua: [^\n]*toy%.lua:%d+: toy: seed 2 fails on purpose",
  "the failure is reported with the script's error")
test.like(out, "re%-run alone: milua%-sweep job [^\n]*/fail 2", "and how to re-run it alone")
test.ok(complete(d1, "seed=1") and complete(d1, "seed=3") and not complete(d1, "seed=2"), "the other jobs completed")
test.is(complete(d1, "seed=1").threads, 1, "a job ran with the one thread it was given")
test.is(complete(d1, "seed=3").score, 3 + 100 * 0.5, "a job's result (seed + 100 lr)")
local st, src = sweep("status " .. d1)
test.is(src, 1, "status exits 1 while a job has failed")
test.like(st, "2  seed=2%s+failed[^\n]+seed 2 fails on purpose", "status shows the failed job and its error")
test.like(st, "2/3 done, 0 running, 1 failed, 0 to start", "status counts")
os.remove(flag)
out, rc = sweep("run " .. d1 .. " --only seed=2 --jobs 1")
test.is(rc, 0, "re-running the failed job alone succeeds once the cause is gone")
test.like(out, "1 jobs of " .. toy .. ", 0 already complete, 1 to run", "only that job ran")
test.is(starts(count1), { 1, 2, 1 }, "seed 2 started twice, seeds 1 and 3 once")
test.is(complete(d1, "seed=2").threads, cores, "--jobs 1 gives the job every core")
out, rc = sweep("job " .. d1 .. " 1")
test.is({ rc, out }, { 0, "job 1 seed=1: already complete\n" }, "a complete job is not run again by `job`")
-- the grid extended by a seed: only the new job runs
out, rc = sweep(string.format("run %s --seed 1..4 --fail-seed 2 --fail-while %s --count %s --out %s",
  toy, flag, count1, d1))
test.is(rc, 0, "the extended sweep succeeds")
test.like(out, "4 jobs of " .. toy .. ", 3 already complete, 1 to run", "three jobs were already complete")
test.is(starts(count1), { 1, 2, 1, 1 }, "only seed 4 started")
st, src = sweep("status " .. d1)
test.is(src, 0, "status exits 0 when every job is done")
test.like(st, "4/4 done, 0 running, 0 failed, 0 to start | %d+s in all, finished", "status: all done")

------------------------------------------------------------------------------ killed and started again
local d2, count2, pidfile = tmp .. "/kill", tmp .. "/kill.count", tmp .. "/kill.pid"
local args = string.format("run %s --seed 1..5 --sleep 1 --count %s --out %s --jobs 1", toy, count2, d2)
os.execute(string.format("setsid sh -c 'echo $$ > %s; exec %s %s' > %s/kill.log 2>&1 &", pidfile, launcher, args, tmp))
-- wait until one job is complete and another is running, then kill the whole process group
-- (the kill comes within half a second of the job's script starting, so well before its 1 s
-- sleep ends)
local t0, killed, running_name, first_seen = sys.clock(), false, nil, {}
while sys.clock() - t0 < 180 do
  local done_n = 0
  running_name = nil
  for seed = 1, 5 do
    local name = "seed=" .. seed
    local s = read(d2 .. "/" .. name .. "/sweep.state")
    -- a job is complete once its results.json is, a moment before its state says so
    if complete(d2, name) then done_n = done_n + 1
    elseif s and s:find('"state":"running"', 1, true) and starts(count2)[seed] then
      running_name = name
      first_seen[name] = first_seen[name] or sys.clock()
    end
  end
  if done_n >= 1 and running_name and sys.clock() - first_seen[running_name] < 0.5 then
    os.execute("kill -KILL -" .. read(pidfile):match("%d+"))
    killed = true
    break
  end
  os.execute("sleep 0.1")
end
test.ok(killed, "the sweep was killed with a job complete and one running")
os.execute("sleep 0.5")
-- (zombies do not count: in a container nobody may reap the orphans)
local left = sh("ps -eo pgid=,stat=,args= | awk '$1 == " .. read(pidfile):match("%d+") .. " && $2 !~ /^Z/'")
test.is(left, "", "nothing of the killed sweep is left running")
local done_before, started_before = {}, starts(count2)
for seed = 1, 5 do done_before[seed] = complete(d2, "seed=" .. seed) ~= nil end
local n_done = 0
for seed = 1, 5 do if done_before[seed] then n_done = n_done + 1 end end
test.ok(n_done >= 1 and n_done < 5, "part of the sweep was done when it was killed (" .. n_done .. " of 5)")
st = sweep("status " .. d2)
test.like(st, running_name .. "%s+interrupted%s+killed while running", "status: the running job was interrupted")
test.like(st, "the sweep is not running", "status says the sweep is no longer running")
out, rc = sweep(args)
test.is(rc, 0, "the restarted sweep finishes")
test.like(out, "5 jobs of " .. toy .. ", " .. n_done .. " already complete, " .. (5 - n_done) .. " to run",
  "the restart runs only the jobs not complete")
test.like(out, "%d/5 done, 1 running, 0 failed, %d to start | %d+s so far, about %d+s left",
  "progress: counts, time so far, and the time left from the jobs timed before the kill")
local started_after = starts(count2)
local ok_counts = true
for seed = 1, 5 do
  local expect = (started_before[seed] or 0) + (done_before[seed] and 0 or 1)
  if started_after[seed] ~= expect then
    ok_counts = false
    test.diag(string.format("seed %d started %s times, expected %d", seed, tostring(started_after[seed]), expect))
  end
end
test.ok(ok_counts, "complete jobs did not start again; the others started once more")
test.is(started_after[tonumber(running_name:match("%d+"))], 2, "the interrupted job ran again from the start")
local all = true
for seed = 1, 5 do
  local r = complete(d2, "seed=" .. seed)
  all = all and r ~= nil and r.score == seed + 50.0 and r.threads == cores
end
test.ok(all, "every job is complete with its own result, on every core (--jobs 1)")

os.execute("rm -rf " .. tmp)
test.done()
