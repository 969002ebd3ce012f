-- milua.experiment: the plumbing every experiment script shares, so that the script itself reads
-- as the paper's analysis (what is trained, measured, printed and decided).
--
--   local experiment = require "milua.experiment"
--   local E = experiment.start(arg, {
--     name  = "tree_paths",     -- default --out is out/<name>
--     about = "milua experiments/tree_paths.lua -- path finding in trees (Brinkmann et al. 2024)",
--     flags = { { "nodes", 6, "nodes per tree" } },   -- milua.cli specs, after the common ones
--   })
--   E.opts            every parsed flag (common and the script's own)
--   E.out             the output directory (created, known to be writable)
--   E.name, E.script  the experiment's name and the script's path (arg[0])
--   local model, info = E:model("model", recipe, function() ...; return model [, extra] end [, {dir = DIR}])
--   E:say(fmt, ...)                  printf to stdout, also kept for report.txt
--   E:check(name, holds, fmt, ...)   a verdict, printed and kept in results.checks[name]
--   E:finish(results)                writes results.json and report.txt
--   E:file("acc.png")                <out>/acc.png, and E:finish lists it among the files written
--   E:elapsed()                      seconds since experiment.start
--
-- Common flags, always present: --out DIR (default out/<name>), --seed N (default 1),
-- --quick (a run of under a minute, for the tests), --steps N (default none: E.opts.steps is nil
-- and the script uses its own default; when given it must be >= 1), --retrain (train even when a
-- checkpoint of the same recipe is in --out). A script may list one of these names in its own
-- flags to change its default or help text (its entry replaces the common one; the type must
-- stay the same).
-- T.seed(E.opts.seed) has been called when start returns.
--
-- Paper helpers: the script's directory (experiments/) is put first on package.path when this
-- module is loaded (from the global arg[0]) and again by start, so `require "lego.recipe"` loads
-- experiments/lego/recipe.lua from any working directory, before or after start. Each
-- paper keeps its helpers in a folder named after the paper beside its entry scripts
-- (experiments/<paper>/<part>.lua, required as "<paper>.<part>").
--
-- Checkpoints: E:model(name, recipe, build) keeps the model in <out>/<name>.safetensors together
-- with the recipe (a plain table of everything that decides the weights: config, data, steps,
-- lr ...; the seed is added to it by E:model). A later run whose recipe encodes to the same JSON
-- (keys sorted) loads the file instead of calling build; any difference, a missing or unreadable
-- file, or --retrain trains anew. build is called with no arguments and returns the trained
-- model and optionally `extra`, a plain table (e.g. the curriculum's steps) saved with the model
-- and merged into info on reuse. info = {reused = bool, train_seconds = number, ...extra}; on
-- reuse train_seconds is the time of the run that trained it. build seeds its own generator if it
-- needs to (the global one is wherever the script left it). With {dir = DIR} the checkpoint is
-- looked for and kept in DIR (created if missing) instead of --out: how one script reuses a model
-- another script trains (their --out differ, the recipe decides whether the file fits).
--
-- Errors a user can cause (an unknown flag, a bad value, --steps 0, an --out that cannot be
-- created or written) print one line "<script>: <message>" to stderr and exit with status 2
-- before anything is written. results.json is written to a temporary file and renamed into
-- place, so it is either the previous file or the complete new one, never half of one.
local T = require "milua.tensor"
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"

local M = {}

local E = {}
E.__index = E

-- prints one line to stderr and exits: a user's mistake, not a crash
local function die(script, msg)
  msg = tostring(msg):gsub("\n", "; ")
  io.stderr:write(script, ": ", msg, "\n")
  io.stderr:flush()
  os.exit(2, true)
end

local function script_dir(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD")
    if pwd and pwd ~= "" and sys.is_dir(pwd .. "/" .. dir) then dir = pwd .. "/" .. dir end
  end
  return dir
end

-- puts the script's own folder first on package.path: experiments/<paper>/<part>.lua is "<paper>.<part>"
local function add_script_dir(script)
  local dir = script_dir(script)
  local entry = dir .. "/?.lua;"
  if not package.path:find(entry, 1, true) then package.path = entry .. package.path end
  return dir
end

-- makes dir and proves it writable by creating and removing a file in it
local function writable_dir(dir)
  local ok, err = sys.mkdir(dir)
  if not ok then return false, err or ("cannot create '" .. dir .. "'") end
  if not sys.is_dir(dir) then return false, "'" .. dir .. "' is not a directory" end
  local probe = string.format("%s/.milua_write_test_%d", dir, sys.getpid())
  local f, ferr = io.open(probe, "wb")
  if not f then return false, "cannot write in '" .. dir .. "': " .. tostring(ferr):gsub("^[^:]*: ", "") end
  f:close()
  os.remove(probe)
  return true
end

--- experiment.start(arg, {name, about, flags}) -> E
function M.start(argv, o)
  if type(o) ~= "table" or type(o.name) ~= "string" or o.name == "" then
    error("experiment.start: expected {name = \"...\", about = \"...\", flags = {...}}", 2)
  end
  argv = argv or {}
  local script = argv[0] or o.name
  local common = {
    { "out", "out/" .. o.name, "output directory (results.json, report.txt, PNGs, checkpoints)" },
    { "seed", 1, "random seed" },
    { "quick", false, "a small run of under a minute (used by the tests)" },
    { "steps", nil, "training steps (default: the script's own)", "integer" },
    { "retrain", false, "train even when a checkpoint of the same recipe is in --out" },
  }
  local kind = { out = "string", seed = "integer", quick = "boolean", steps = "integer", retrain = "boolean" }
  local spec, at = {}, {}
  for i, e in ipairs(common) do spec[i], at[e[1]] = e, i end
  for i, e in ipairs(o.flags or {}) do
    if type(e) ~= "table" or type(e[1]) ~= "string" then
      error("experiment.start: flags entry " .. i .. " must be {name, default, help}", 2)
    end
    local key = e[1]:gsub("-", "_")
    if at[key] then
      -- a common flag given a new default or help: same type, and --steps stays "none or >= 1"
      local t = e[4] or (math.type(e[2]) == "integer" and "integer") or (e[2] ~= nil and type(e[2])) or nil
      if t ~= kind[key] or (key == "steps" and e[2] ~= nil and e[2] < 1) then
        error(string.format("experiment.start: '%s' is a common flag (%s%s); a script's entry may change its " ..
          "default and help only, got default %s", key, kind[key], key == "steps" and ", default none or >= 1" or "",
          tostring(e[2])), 2)
      end
      spec[at[key]] = e
    else
      spec[#spec + 1] = e
    end
  end

  local ok, opts = pcall(cli.parse, argv, spec, o.about)
  if not ok then
    if tostring(opts):find("cli.parse: ", 1, true) then error(opts, 0) end   -- the script's spec is wrong
    die(script, opts)
  end
  if opts.steps ~= nil and opts.steps < 1 then
    die(script, "flag --steps: expected a positive number of steps, got " .. opts.steps)
  end
  if type(opts.out) ~= "string" or opts.out == "" then die(script, "flag --out: expected a directory name") end
  local wok, werr = writable_dir(opts.out)
  if not wok then die(script, "flag --out: " .. werr) end

  local dir = add_script_dir(script)

  T.seed(opts.seed)
  return setmetatable({ name = o.name, script = script, opts = opts, out = opts.out, dir = dir,
    t0 = sys.clock(), lines = {}, checks = {}, check_order = {}, files = {} }, E)
end

--- E:elapsed() -> seconds since start
function E:elapsed() return sys.clock() - self.t0 end

local function format(fn, fmt, ...)
  if type(fmt) ~= "string" then error(fn .. ": the format must be a string, got " .. type(fmt), 3) end
  if select("#", ...) == 0 then return fmt end
  return string.format(fmt, ...)
end

--- E:say(fmt, ...): one line (or several) to stdout and to report.txt
function E:say(fmt, ...)
  local text = format("E:say", fmt, ...)
  if sys.isatty(1) then io.stdout:write("\r\27[K") end   -- clear a progress line left by training
  io.stdout:write(text, "\n")
  io.stdout:flush()
  self.lines[#self.lines + 1] = text
  return text
end

--- E:check(name, holds, fmt, ...) -> holds: a verdict, decided where it is computed
function E:check(name, holds, fmt, ...)
  if type(name) ~= "string" or name == "" then error("E:check: the name must be a non-empty string", 2) end
  if type(holds) ~= "boolean" then
    error("E:check: '" .. name .. "': holds must be true or false, got " .. tostring(holds), 2)
  end
  local text = fmt and format("E:check", fmt, ...) or ""
  if not self.checks[name] then self.check_order[#self.check_order + 1] = name end
  self.checks[name] = { holds = holds, text = text }
  self:say("check %s: %s%s", name, holds and "held" or "did not hold", text ~= "" and " -- " .. text or "")
  return holds
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- E:model(name, recipe, build, {dir}) -> model, info {reused, train_seconds, ...}
function E:model(name, recipe, build, o)
  if type(name) ~= "string" or not name:match("^[%w_%-%.]+$") then
    error("E:model: the name must be a plain file name (letters, digits, _ - .), got " .. tostring(name), 2)
  end
  if type(recipe) ~= "table" then error("E:model: '" .. name .. "': the recipe must be a table", 2) end
  if type(build) ~= "function" then error("E:model: '" .. name .. "': build must be a function", 2) end
  local kok, key = pcall(json.encode, { recipe = recipe, seed = self.opts.seed })
  if not kok then error("E:model: '" .. name .. "': the recipe is not plain data: " .. tostring(key), 2) end
  local dir = self.out
  if o ~= nil and (type(o) ~= "table" or (o.dir ~= nil and (type(o.dir) ~= "string" or o.dir == ""))) then
    error("E:model: '" .. name .. "': options must be {dir = \"a directory\"}, got " ..
      (type(o) == "table" and "dir = " .. tostring(o.dir) or type(o)), 2)
  end
  if o and o.dir then
    local ok, err = writable_dir(o.dir)
    if not ok then error("E:model: '" .. name .. "': " .. err, 2) end
    dir = o.dir
  end
  local nn = require "milua.nn"
  local path = dir .. "/" .. name .. ".safetensors"
  if not self.opts.retrain and file_exists(path) then
    local ok, m, _, meta = pcall(nn.load, path)
    if ok and meta.experiment_recipe == key then
      local iok, info = pcall(json.decode, meta.experiment_info or "")
      if iok and type(info) == "table" then
        info.reused = true
        return m, info
      end
    end
  end
  local t0 = sys.clock()
  local model, extra = build()
  if type(model) ~= "table" or type(model.save) ~= "function" then
    error("E:model: '" .. name .. "': build must return a model, got " .. type(model), 2)
  end
  local info = {}
  for k, v in pairs(extra or {}) do info[k] = v end
  info.train_seconds, info.reused = sys.clock() - t0, false
  local tmp = dir .. "/." .. name .. ".partial.safetensors"
  model:save(tmp, nil, { experiment_recipe = key, experiment_info = json.encode(info) })
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error("E:model: cannot move the checkpoint to " .. path .. ": " .. tostring(rerr), 2)
  end
  return model, info
end

--- E:file(name) -> <out>/<name>: the path of an output file (a figure), listed by E:finish
function E:file(name)
  if type(name) ~= "string" or name == "" or name:find("/", 1, true) then
    error("E:file: expected a file name without a directory, got " .. tostring(name), 2)
  end
  local seen = false
  for _, n in ipairs(self.files) do if n == name then seen = true end end
  if not seen then self.files[#self.files + 1] = name end
  return self.out .. "/" .. name
end

--- E:finish(results) -> path of results.json
-- Adds seed, quick, wall_seconds and checks to results (a table), writes results.json
-- atomically and report.txt (every E:say line, then the checks), and prints what was written.
function E:finish(results)
  if type(results) ~= "table" then error("E:finish: results must be a table", 2) end
  results.seed, results.quick = self.opts.seed, self.opts.quick
  results.checks = json.object(self.checks)
  results.wall_seconds = self:elapsed()
  local path = self.out .. "/results.json"
  json.write(path, results)
  local report = {}
  for i, line in ipairs(self.lines) do report[i] = line end
  if #self.check_order > 0 then
    report[#report + 1] = ""
    report[#report + 1] = "checks:"
    for _, name in ipairs(self.check_order) do
      local c = self.checks[name]
      report[#report + 1] = string.format("  %-14s %s%s", name, c.holds and "held" or "did not hold",
        c.text ~= "" and " -- " .. c.text or "")
    end
  end
  local f = assert(io.open(self.out .. "/report.txt.tmp", "wb"))
  assert(f:write(table.concat(report, "\n"), "\n"))
  assert(f:close())
  assert(os.rename(self.out .. "/report.txt.tmp", self.out .. "/report.txt"))
  local files = { "results.json", "report.txt" }
  for _, name in ipairs(self.files) do files[#files + 1] = name end
  print(string.format("wrote %s in %s (%.0f s in all)", table.concat(files, ", "), self.out, results.wall_seconds))
  return path
end

-- the running script's folder goes on package.path as soon as this module is loaded, so a script
-- can require its helpers (for its flag list, say) before calling experiment.start
if type(arg) == "table" and type(arg[0]) == "string" and arg[0]:match("%.lua$") then add_script_dir(arg[0]) end

return M
