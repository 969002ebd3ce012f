-- make pin: run each experiment test's --quick run (tests/experiments/pinned/runs.lua) at one thread and
-- pin its results: tests/experiments/pinned/<name>.json holds the chosen fields' values, the
-- script and flags they came from, the machine (CPU and OpenBLAS, which decide the bits), each
-- field's tolerance for other machines and the chance levels. The tests compare their own runs
-- with these files (test.pinned). Run it after a deliberate change of a script's results, and
-- read the diff of the pinned files before committing it: every moved number is a changed result.
--
--   milua tests/experiments/pinned/pin.lua [--only NAME] [--out out/pin] [--from DIR]
--
-- --from DIR reads DIR/<name>/results.json of earlier runs instead of running the scripts (to pin
-- other fields of the same runs); they must come from the same scripts, flags and build.
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"
local test = require "milua.test"

local opts = cli.parse(arg, {
  { "only", "", "pin only this run (a name in tests/experiments/pinned/runs.lua)" },
  { "out", "out/pin", "where the runs write their outputs" },
  { "from", "", "read results.json of earlier runs from DIR/<name>/ instead of running" },
}, "milua tests/experiments/pinned/pin.lua: pin the --quick results the experiment tests compare with")

local runs = dofile("tests/experiments/pinned/runs.lua")
local machine = test.machine()
local known, done = {}, 0
for _, r in ipairs(runs) do
  known[r.name] = true
  if opts.only == "" or opts.only == r.name then
    local dir = (opts.from ~= "" and opts.from or opts.out) .. "/" .. r.name
    if opts.from == "" then
      assert(sys.mkdir(opts.out))
      os.execute("rm -rf '" .. dir .. "'")
      io.stdout:write(r.name, ": ", r.script, " ", r.flags, " ... ")
      io.stdout:flush()
      local t0 = sys.clock()
      local flags = r.flags .. (r.place and " " .. r.place:gsub("{out}", opts.out) or "")
      local ok = os.execute(test.script_command(r.script, flags, dir) .. " > '" .. dir .. ".log' 2>&1")
      if not ok then error("pin: " .. r.name .. ": the run failed; see " .. dir .. ".log", 0) end
      io.stdout:write(string.format("%.0f s\n", sys.clock() - t0))
    end
    local res = json.read(dir .. "/results.json")
    local values, tolerance = {}, {}
    for field, tol in pairs(r.fields) do
      local v = test.at_path(res, field)
      if v == nil then error("pin: " .. r.name .. ": results.json has no field " .. field, 0) end
      values[field], tolerance[field] = v, tol
    end
    for field, c in pairs(r.chance) do
      local v = test.at_path(res, field)
      if type(v) ~= "number" or not (v > c.above) then
        print(string.format("  warning: %s = %s is not above chance (%g): the test will fail", field, tostring(v), c.above))
      end
    end
    local file = test.pinned_dir .. "/" .. r.name .. ".json"
    json.write(file, { script = r.script, flags = r.flags, threads = 1, machine = machine, made_by = "make pin",
      values = values, tolerance = tolerance, chance = r.chance })
    print("  wrote " .. file)
    done = done + 1
  end
end
if opts.only ~= "" and not known[opts.only] then error("pin: no run named " .. opts.only .. " in tests/experiments/pinned/runs.lua", 0) end
print(string.format("%d run%s pinned on %s", done, done == 1 and "" or "s", machine))
