-- Time budgets of the experiments' tests, measured here rather than asserted in the tests (a
-- shared machine makes a test's timing flaky; a benchmark reports it): each --quick run the
-- tests make (tests/experiments/pinned/runs.lua) must take under a minute of CPU at one thread, and the
-- analysis readouts' same-token score over 300 sequences of 50 tokens, 16 heads and 2 layers
-- under 3 s. CPU seconds (user + system, the shell's `times`), which other jobs on the machine do
-- not inflate as they do the wall clock; two threads on an idle 2-core machine take about 0.6x.
--
--   milua bench/experiments.lua [--only NAME] [--out out/bench_experiments]     (make bench)
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"
local test = require "milua.test"
local T = require "milua.tensor"
local analysis = require "milua.analysis"

local opts = cli.parse(arg, {
  { "only", "", "time only this run (a name in tests/experiments/pinned/runs.lua, or readout)" },
  { "out", "out/bench_experiments", "output directory: the runs' outputs and timings.json" },
}, "milua bench/experiments.lua: the experiment tests' runs timed against their budgets")
assert(sys.mkdir(opts.out))

local rows, over = {}, 0
local function record(name, what, seconds, budget, wall)
  local ok = seconds < budget
  if not ok then over = over + 1 end
  rows[#rows + 1] = { name = name, what = what, cpu_seconds = seconds, budget_seconds = budget, wall_seconds = wall, within = ok }
  print(string.format("%-24s %7.1f s CPU (%5.0f s wall)  budget %3.0f s  %s   %s", name, seconds, wall, budget,
    ok and "ok" or "OVER BUDGET", what))
end

for _, r in ipairs(dofile("tests/experiments/pinned/runs.lua")) do
  if opts.only == "" or opts.only == r.name then
    local dir = opts.out .. "/" .. r.name
    os.execute("rm -rf '" .. dir .. "'")
    local times = dir .. ".times"
    local t0 = sys.clock()
    local flags = r.flags .. (r.place and " " .. r.place:gsub("{out}", opts.out) or "")
    local ok = os.execute(test.script_command(r.script, flags, dir) .. " > '" .. dir .. ".log' 2>&1; s=$?; times > '" ..
      times .. "'; exit $s")
    local wall = sys.clock() - t0
    if not ok then error("bench/experiments: " .. r.name .. " failed; see " .. dir .. ".log", 0) end
    local f = assert(io.open(times))
    f:read("l")                                       -- the shell's own times
    local cpu = 0
    for m, s in (f:read("l") or ""):gmatch("(%d+)m([%d.]+)s") do cpu = cpu + 60 * tonumber(m) + tonumber(s) end
    f:close()
    record(r.name, r.script .. " " .. r.flags .. " (one thread)", cpu, 60, wall)
  end
end

if opts.only == "" or opts.only == "readout" then
  T.seed(5)
  local p = T.rand(300, 16, 50, 50):softmax(4)
  local toks = T.randint(1, 20, 300, 50):int()
  local t0, w0 = os.clock(), sys.clock()
  local s = analysis.same_token_score({ p, p }, toks, { query_tokens = { 1, 2, 3, 4, 5 } })
  assert(s:shape()[1] == 2 and s:shape()[2] == 16)
  record("readout", "analysis.same_token_score, 300 x 50 tokens, 16 heads, 2 layers", os.clock() - t0, 3, sys.clock() - w0)
end

json.write(opts.out .. "/timings.json", { machine = test.machine(), rows = rows })
print(over == 0 and "every run within its budget" or (over .. " over budget"))
os.exit(over == 0 and 0 or 1)
