-- milua-sweep through Slurm for real (make test-slurm; tests/slurm/run brings up the single-node
-- Slurm and sets SLURM_CONF): the same small sweep as the GNU parallel test, written as a job array,
-- submitted, followed to the end, collected; submitted again it has nothing to do.
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"

local launcher = (os.getenv("MILUA_BUILD") or "build") .. "/milua-sweep"
if not io.open(launcher) then test.bail("no " .. launcher .. ": build it with make " .. launcher) end
if not os.getenv("SLURM_CONF") then test.bail("SLURM_CONF is not set: run this through make test-slurm") end
local function sh(cmd)
  local h = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = h:read("a")
  h:close()
  return out:gsub("rc=%d+\n$", ""), tonumber(out:match("rc=(%d+)\n$"))
end

local tmp = os.getenv("MILUA_SLURM_TMP") .. "/sweeps"
assert(sys.mkdir(tmp))
local dir = tmp .. "/slurm"
local base = "run tests/sweep/toy.lua --seed 1..2 --quick --lr 0.25 --out " .. dir .. " --runner slurm"

-- written, not submitted
local out, rc = sh(launcher .. " " .. base)
test.is(rc, 0, "writing the job array script exits 0")
test.like(out, "wrote [^\n]*/slurm%.sh; submit it with: sbatch ", "it says how to submit it")
local script = io.open(dir .. "/slurm.sh"):read("a")
test.like(script, "\n#SBATCH %-%-array=1,2\n", "one array task per job, numbered as the jobs")
test.like(script, "\n#SBATCH %-%-cpus%-per%-task=1\n", "one CPU per task by default")
test.like(script, "\nexec [^\n]*milua%-sweep job [^\n]*/slurm \"%$SLURM_ARRAY_TASK_ID\"", "each task runs its job")

-- submitted and followed
out, rc = sh(launcher .. " " .. base .. " --submit --jobs 2 --slurm-time 10")
test.is(rc, 0, "the submitted sweep exits 0")
test.like(out, "submitted Slurm job array %d+ %(2 tasks%)", "sbatch took the array")
test.like(out, "2/2 done, 0 running, 0 failed, 0 to start | %d+s in all, finished", "followed to the end")
script = io.open(dir .. "/slurm.sh"):read("a")
test.like(script, "\n#SBATCH %-%-array=1,2%%2\n", "--jobs 2 caps the tasks running at once")
test.like(script, "\n#SBATCH %-%-time=10\n", "--slurm-time passed")
for seed = 1, 2 do
  local r = json.read(dir .. "/seed=" .. seed .. "/results.json")
  test.is({ r.seed, r.score, r.quick, r.threads }, { seed, seed + 25.0, true, 1 },
    "seed " .. seed .. ": its own result, --quick passed, the task's one CPU as its thread count")
end
out, rc = sh(launcher .. " collect " .. dir .. " --fields score,best.score --csv " .. tmp .. "/slurm.csv")
test.is(rc, 0, "collect exits 0")
test.is(io.open(tmp .. "/slurm.csv"):read("a"),
  'job,seed,score,best.score\nseed=1,1,26.0,0.1\nseed=2,2,27.0,0.2\n', "the collected table (the same as through parallel)")
out, rc = sh(launcher .. " " .. base .. " --submit")
test.is(rc, 0, "submitting again exits 0")
test.like(out, "2 already complete, 0 to run", "nothing left to submit")
test.like(out, "nothing to submit", "and nothing is submitted")

test.done()
