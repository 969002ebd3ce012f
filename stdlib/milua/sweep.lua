-- milua.sweep: a grid of runs of one experiment script (seeds x configs), run on this machine,
-- through GNU parallel (here or on other hosts sharing the file system) or as a Slurm job array;
-- resumed after a kill, watched while it runs, and collected into one table. The code behind the
-- milua-sweep command (man milua-sweep); the functions below are what its tests check by hand.
--
--   milua-sweep run experiments/lego_assoc.lua --seed 1..4 --quick --out sweeps/lego --jobs 2
--   milua-sweep status sweeps/lego
--   milua-sweep collect sweeps/lego --fields best_head.score,acc_by_depth --csv lego.csv
--
-- The grid reads like the script's own flags: a flag whose value holds a comma or a range is
-- swept (`--lr 3e-4,1e-3`, `--seed 1..4`, `--seed 1..3,7`), any other is fixed (`--steps 200`,
-- a bare `--quick`). Every point of the grid is a job, run as
--   milua SCRIPT --lr=3e-4 --seed=1 --steps=200 --quick --out=DIR/lr=3e-4,seed=1
-- in its own directory named from the swept flags (first flag outermost, as in the name).
--
-- The sweep directory holds sweep.json (script, working directory, fixed flags, every job ever
-- added) and one directory per job with the script's outputs, sweep.log (its stdout and stderr)
-- and sweep.state (queued / running with host and pid / done / failed with the exit status and
-- the last line of the log). A job is complete when its results.json holds a JSON object; a
-- complete job is never run again, so starting the same sweep again (after a kill, a failure, or
-- with more seeds) runs only what is missing. A job that exits with an error has produced no
-- results: what it wrote as results.json is kept as results.failed.json.
--
-- Functions (all errors are raised as "milua-sweep ...: what, the values, what was expected"):
--   M.parse_values(flag, text)        -> list of value strings ("1..3,7" -> {"1","2","3","7"})
--   M.parse_run(words)                -> {script | dir, grid = {{name, values}}, fixed = {{name, value}},
--                                         opts = {out, jobs, threads, runner, ...}}
--   M.expand(grid, fixed)             -> jobs {name, flags = {{name, value}}, args}  (args without
--                                         script and --out)
--   M.get(tbl, "best_head.score")     -> the value at a dotted path (list items by number: acc.3)
--   M.flatten(v, prefix)              -> {{path, leaf}} of every number, boolean and string below v
--   M.stats(list)                     -> {n, mean, min, max} of the numbers in list (booleans 1/0)
--   M.collect(dir, {fields, over})    -> {columns, rows, groups, missing}; M.csv(c), M.markdown(c),
--                                        M.json_table(c) its files, M.print(c) the terminal table,
--                                        M.plot(c, field, x, path) the PNG
--   M.eta(durations, pending, running_elapsed, slots) -> seconds left (nil before the first job)
--   M.main(argv)                      -> exit status of the milua-sweep command

local json = require "milua.json"
local sys = require "milua.sys"

local M = {}

local PROG = "milua-sweep"

local function fail(cmd, fmt, ...)
  error(PROG .. (cmd and (" " .. cmd) or "") .. ": " .. string.format(fmt, ...), 0)
end

------------------------------------------------------------------------------ small OS helpers

local function quote(s)
  s = tostring(s)
  if s:match("^[%w%./_%-=+,:@]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function shell(cmd)            -- stdout of a command, and whether it succeeded
  local h = io.popen(cmd, "r")
  local out = h:read("a")
  local ok = h:close()
  return out, ok
end

local function cwd()
  return (shell("pwd"):gsub("\n$", ""))
end

local function absolute(path, base)
  if path:sub(1, 1) == "/" then return path end
  path = path:gsub("^%./", "")
  return (base or cwd()) .. "/" .. path
end

-- the processors this process may use (nproc alone would honour an OMP_NUM_THREADS=1 in the
-- environment, as the test suite sets it)
local function cores()
  local n = tonumber((shell("env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null")))
  return n and math.max(1, math.floor(n)) or 1
end

local function hostname()
  local h = read_file("/proc/sys/kernel/hostname") or shell("hostname")
  return (h:gsub("%s+$", ""))
end

-- a process that has not exited (a zombie has: it only waits for its parent to reap it)
local function proc_running(pid)
  local stat = read_file("/proc/" .. math.tointeger(pid) .. "/stat")
  local state = stat and stat:match(".*%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- a job process of a sweep on this host: running, and its command line holds the word "job"
-- (a recycled pid belongs to some other program)
local function alive(pid)
  if math.tointeger(pid) == nil then return false end
  local cmdline = read_file("/proc/" .. math.tointeger(pid) .. "/cmdline")
  return cmdline ~= nil and cmdline:find("\0job\0", 1, true) ~= nil and proc_running(pid)
end

local function sleep(s) os.execute("sleep " .. s) end

local function duration(s)
  if s == nil then return "?" end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%dh%02dm", s // 3600, s % 3600 // 60)
end
M.duration = duration

-- the milua that runs this code (lowest negative arg index), and the command that re-enters it
local function interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local exe = arg and arg[i] or "milua"
  if exe:find("/") then exe = absolute(exe) end
  return exe
end
local function self_command()
  local launcher = os.getenv("MILUA_SWEEP_SELF")
  if launcher and launcher ~= "" then return quote(launcher) end
  return quote(interpreter()) .. " -e " .. quote('os.exit(require("milua.sweep").main(arg), true)') .. " /dev/null"
end

------------------------------------------------------------------------------ the grid

local function norm(name) return (name:gsub("-", "_")) end

-- the most values of one flag, and the most jobs of one grid: each job is a directory and a
-- process, and a grid past this is a typo (1..10000 twice) rather than a plan
M.MAX_JOBS = 100000

-- "1..4" -> 1,2,3,4; "3e-4,1e-3" -> as written; "1..3,7" -> 1,2,3,7
function M.parse_values(flag, text)
  local shown = "--" .. flag .. " " .. text
  if text == "" then fail("run", "%s: empty value", shown) end
  local values, seen = {}, {}
  for item in (text .. ","):gmatch("(.-),") do
    if item == "" then fail("run", "%s: empty item in the list (two commas, or one at an end)", shown) end
    local a, b = item:match("^(%-?%d+)%.%.(%-?%d+)$")
    local list
    if a then
      local ai, bi = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
      if not ai or not bi then
        fail("run", "%s: range %s..%s has an end beyond the 64-bit integers", shown, a, b)
      end
      a, b = ai, bi
      if b < a then fail("run", "%s: empty range %d..%d (a range counts up: write %d..%d)", shown, a, b, b, a) end
      -- b - a wraps past math.maxinteger; read as unsigned it is the true difference
      if math.ult(M.MAX_JOBS - 1, b - a) then
        fail("run", "%s: range of %.0f values; at most %d", shown, (b + 0.0) - a + 1, M.MAX_JOBS)
      end
      list = {}
      for v = a, b do list[#list + 1] = tostring(v) end
    elseif item:find("..", 1, true) then
      fail("run", "%s: '%s' is not a range of integers (expected A..B, as 1..8)", shown, item)
    else
      list = { item }
    end
    for _, v in ipairs(list) do
      if seen[v] then fail("run", "%s: value %s is listed twice", shown, v) end
      seen[v] = true
      values[#values + 1] = v
    end
  end
  return values
end

-- milua-sweep's own flags of `run`: name -> kind ("value", "bool", "list")
local RUN_FLAGS = {
  out = "value", jobs = "value", threads = "value", runner = "value", sshloginfile = "value",
  submit = "bool", only = "list", dry_run = "bool", no_check = "bool", slurm_time = "value",
  slurm_mem = "value", slurm_partition = "value",
}

-- words after `run`: SCRIPT|DIR, then flags. Before "--" a word naming one of RUN_FLAGS is the
-- sweep's; after "--" every flag is the script's.
function M.parse_run(words)
  local r = { grid = {}, fixed = {}, opts = { only = {} } }
  local target = words[1]
  if target == nil or target:sub(1, 2) == "--" then
    fail("run", "expected a script (or a sweep directory to resume) first, as in: %s run experiments/x.lua --seed 1..4 --out sweeps/x", PROG)
  end
  r.target = target
  local seen = {}
  local i, script_only = 2, false
  while i <= #words do
    local w = words[i]
    if w == "--" and not script_only then
      script_only = true
    elseif w:sub(1, 2) ~= "--" or #w == 2 then
      fail("run", "unexpected word '%s' (flags look like --name value or --name=value)", w)
    else
      local name, value = w:sub(3):match("^([^=]+)=(.*)$")
      if not name then
        name = w:sub(3)
        local nxt = words[i + 1]
        if nxt ~= nil and (nxt:sub(1, 2) ~= "--" or nxt == "--") and nxt ~= "--" then
          value = nxt
          i = i + 1
        end
      end
      local key = norm(name)
      local kind = not script_only and RUN_FLAGS[key]
      if kind then
        if kind == "bool" then
          if value ~= nil then fail("run", "--%s takes no value, got '%s'", name, value) end
          r.opts[key] = true
        elseif value == nil then
          fail("run", "--%s needs a value", name)
        elseif kind == "list" then
          table.insert(r.opts[key], value)
        else
          if r.opts[key] ~= nil then fail("run", "--%s is given twice", name) end
          r.opts[key] = value
        end
      else
        if seen[key] then fail("run", "the script flag --%s is given twice", name) end
        seen[key] = true
        if value ~= nil and (value:find(",", 1, true) or value:find("..", 1, true)) then
          r.grid[#r.grid + 1] = { name = name, values = M.parse_values(name, value) }
        else
          r.fixed[#r.fixed + 1] = { name = name, value = value == nil and true or value }
        end
      end
    end
    i = i + 1
  end
  return r
end

local function safe(v) return (v:gsub("[^%w%.%-%+_]", "_")) end

-- the cartesian product, first flag outermost; each job's name is its swept flags
function M.expand(grid, fixed)
  local count, sizes = 1, {}
  for _, g in ipairs(grid) do
    count = count * #g.values   -- each factor is at most MAX_JOBS: checked before it can wrap
    sizes[#sizes + 1] = ("--%s %d"):format(g.name, #g.values)
    if count > M.MAX_JOBS then
      fail("run", "the grid has more than %d jobs (values per flag: %s%s): sweep fewer values at a time", M.MAX_JOBS,
        table.concat(sizes, " x "), #sizes < #grid and " x ..." or "")
    end
  end
  local jobs, names = {}, {}
  local function rec(k, flags)
    if k > #grid then
      local parts, args = {}, {}
      for _, f in ipairs(flags) do
        parts[#parts + 1] = f.name .. "=" .. safe(f.value)
        args[#args + 1] = "--" .. f.name .. "=" .. f.value
      end
      for _, f in ipairs(fixed) do
        args[#args + 1] = f.value == true and ("--" .. f.name) or ("--" .. f.name .. "=" .. f.value)
      end
      local name = #parts > 0 and table.concat(parts, ",") or "run"
      if names[name] then
        fail("run", "two grid points share the directory name '%s' (values that differ only in characters outside letters, digits and . - + _)", name)
      end
      names[name] = true
      local copy = {}
      for i, f in ipairs(flags) do copy[i] = { f.name, f.value } end
      jobs[#jobs + 1] = { name = name, flags = copy, args = args }
      return
    end
    for _, v in ipairs(grid[k].values) do
      flags[k] = { name = grid[k].name, value = v }
      rec(k + 1, flags)
    end
    flags[k] = nil
  end
  rec(1, {})
  return jobs
end

------------------------------------------------------------------------------ job state

local function sweep_file(dir) return dir .. "/sweep.json" end
local function job_dir(dir, job) return dir .. "/" .. job.name end
local function state_file(dir, job) return job_dir(dir, job) .. "/sweep.state" end

local function load_sweep(dir, cmd)
  if not sys.is_dir(dir) then fail(cmd, "no sweep directory '%s'", dir) end
  if not exists(sweep_file(dir)) then fail(cmd, "'%s' holds no sweep.json: not a sweep directory", dir) end
  local ok, s = pcall(json.read, sweep_file(dir))
  if not ok then fail(cmd, "cannot read %s: %s", sweep_file(dir), s) end
  s.dir = dir
  return s
end

local function save_sweep(s)
  local dir = s.dir
  s.dir = nil
  json.write(sweep_file(dir), s)
  s.dir = dir
end

-- results.json holding a JSON object, or nil
local function results(dir, job)
  local text = read_file(job_dir(dir, job) .. "/results.json")
  if not text then return nil end
  local ok, v = pcall(json.decode, text)
  if not ok or type(v) ~= "table" or v == json.null then return nil end
  if next(v) == nil then return getmetatable(v) ~= nil and v or nil end     -- {} yes, [] no
  return v[1] == nil and v or nil
end
M.results = results

local function read_state(dir, job)
  local text = read_file(state_file(dir, job))
  if not text then return nil end
  local ok, v = pcall(json.decode, text)
  return ok and type(v) == "table" and v or nil
end

local function write_state(dir, job, st)
  sys.mkdir(job_dir(dir, job))
  json.write(state_file(dir, job), st, { indent = false })
end

-- done | running | failed | interrupted | queued | pending, and the state record
local function job_status(s, job, host)
  if results(s.dir, job) then return "done", read_state(s.dir, job) end
  local st = read_state(s.dir, job)
  if not st then return "pending" end
  if st.state == "running" then
    if st.host ~= host or alive(st.pid) then return "running", st end
    return "interrupted", st
  end
  if st.state == "failed" then return "failed", st end
  if st.state == "queued" then return "queued", st end
  return "pending", st
end

local function find_job(s, key, cmd)
  local n = math.tointeger(tonumber(key))
  if n then
    if n < 1 or n > #s.jobs then fail(cmd, "job %d: the sweep has jobs 1 to %d", n, #s.jobs) end
    return s.jobs[n], n
  end
  for i, job in ipairs(s.jobs) do
    if job.name == key then return job, i end
  end
  fail(cmd, "no job '%s' in %s (run `%s status %s` for the list)", key, s.dir, PROG, s.dir)
end

------------------------------------------------------------------------------ one job

-- the error in a job's log: the line before milua's "stack traceback:", else the last line
local function log_error(path)
  local text = read_file(path) or ""
  local last, before_trace
  for line in text:gmatch("[^\n]+") do
    if line == "stack traceback:" then before_trace = last end
    if line:match("%S") then last = line end
  end
  return before_trace or last
end

-- runs job `key` of the sweep in dir: what every runner calls, and how a job is re-run alone
local function run_job(dir, key, threads)
  local s = load_sweep(dir, "job")
  local job, n = find_job(s, key, "job")
  local host = hostname()
  local status, st = job_status(s, job, host)
  if status == "done" then
    print(string.format("job %d %s: already complete", n, job.name))
    return 0
  end
  if status == "running" and st.pid ~= sys.getpid() then
    print(string.format("job %d %s: already running on %s (pid %d)", n, job.name, st.host, st.pid))
    return 0
  end
  local jd = job_dir(dir, job)
  sys.mkdir(jd)
  local res = jd .. "/results.json"
  if exists(res) then os.rename(res, jd .. "/results.failed.json") end    -- not an object: no result
  local log = jd .. "/sweep.log"
  local started, t0 = os.time(), sys.clock()
  write_state(dir, job, { state = "running", host = host, pid = sys.getpid(), started = started, threads = threads })
  local cmd = { "cd", quote(s.cwd), "&&", "exec env", "OMP_NUM_THREADS=" .. threads, "OPENBLAS_NUM_THREADS=1",
                quote(s.interpreter), quote(s.script) }
  for _, a in ipairs(job.args) do cmd[#cmd + 1] = quote(a) end
  cmd[#cmd + 1] = quote("--out=" .. jd)
  cmd[#cmd + 1] = ">" .. quote(log) .. " 2>&1 </dev/null"
  local ok, how, code = os.execute(table.concat(cmd, " "))
  local seconds = sys.clock() - t0
  local record = { host = host, started = started, finished = os.time(), seconds = seconds, threads = threads }
  local err
  if ok and not results(dir, job) then
    err = "exited 0 but wrote no results.json holding a JSON object"
  elseif not ok then
    err = (how == "signal" and ("killed by signal " .. code) or ("exit status " .. code)) ..
      ": " .. (log_error(log) or "(empty log)")
    if exists(res) then os.rename(res, jd .. "/results.failed.json") end
  end
  if err then
    record.state, record.error, record.exit = "failed", err, how == "exit" and code or nil
    write_state(dir, job, record)
    print(string.format("FAILED job %d %s after %s: %s (log %s)", n, job.name, duration(seconds), err, log))
    return 1
  end
  record.state = "done"
  write_state(dir, job, record)
  print(string.format("done job %d %s in %s", n, job.name, duration(seconds)))
  return 0
end

------------------------------------------------------------------------------ progress

-- seconds left: the mean duration of the finished jobs for each job still to start, what the
-- running ones have left of that mean, spread over the slots
function M.eta(durations, pending, running_elapsed, slots)
  if #durations == 0 then return nil end
  local sum = 0
  for _, d in ipairs(durations) do sum = sum + d end
  local mean = sum / #durations
  local work = pending * mean
  for _, e in ipairs(running_elapsed) do work = work + math.max(0, mean - e) end
  return work / math.max(1, slots)
end

-- counts over the jobs selected, and the progress line; time runs from the sweep's last start,
-- and the mean of every timed job (this start's and earlier ones') predicts the rest
local function survey(s, selected, slots)
  local host, now = hostname(), os.time()
  local last = s.runs[#s.runs]
  local started = last and last.started or now
  local c = { done = 0, running = 0, failed = 0, pending = 0, total = #selected }
  local durations, elapsed, finished = {}, {}, nil
  for _, job in ipairs(selected) do
    local status, st = job_status(s, job, host)
    if status == "done" or status == "failed" then
      c[status] = c[status] + 1
      if st and st.seconds then durations[#durations + 1] = st.seconds end
      if st and st.finished and st.finished >= started then finished = math.max(finished or 0, st.finished) end
    elseif status == "running" then
      c.running = c.running + 1
      elapsed[#elapsed + 1] = now - (st.started or now)
    else
      c.pending = c.pending + 1
    end
  end
  local eta = M.eta(durations, c.pending, elapsed, slots)
  local over = c.pending + c.running == 0
  c.seconds = over and finished and (finished - started) or (now - started)
  c.line = string.format("%d/%d done, %d running, %d failed, %d to start | %s %s, %s", c.done, c.total,
    c.running, c.failed, c.pending, duration(c.seconds), over and "in all" or "so far",
    over and "finished" or eta and ("about " .. duration(eta) .. " left") or "time left known after the first job")
  return c
end

-- On a terminal the line is rewritten in place every tick. Into a file or pipe (a log) a line
-- goes when the counts change, at the end, or once a minute, so that a long sweep's log stays
-- readable.
local function progress_printer()
  local tty = sys.isatty(1)
  local last_counts, last_time
  return function(line, final)
    if tty then
      io.stdout:write("\r\27[K", line, final and "\n" or "")
    else
      local counts, now = line:match("^[^|]*"), os.time()
      if final or counts ~= last_counts or now - last_time >= 60 then
        io.stdout:write(line, "\n")
        last_counts, last_time = counts, now
      end
    end
    io.stdout:flush()
  end
end

------------------------------------------------------------------------------ run

local function last_line_of(text)
  local last = "(no output)"
  for line in text:gmatch("[^\n]+") do if line:match("%S") then last = line end end
  return last
end

-- the script's flags from its --help (milua.cli's usage: "  --name=N", "  --[no-]name"); nil
-- when the output lists none
local function script_flags(s)
  local out, ok = shell("cd " .. quote(s.cwd) .. " && " .. quote(s.interpreter) .. " " .. quote(s.script) ..
    " --help 2>&1 </dev/null")
  if not ok then
    fail("run", "`%s --help` failed, so every job would: %s", s.script_given, last_line_of(out))
  end
  local flags, any = {}, false
  for line in out:gmatch("[^\n]+") do
    local name = line:match("^%s+%-%-%[no%-%]([%w_%-]+)") or line:match("^%s+%-%-([%w_%-]+)")
    if name then flags[norm(name)] = true; any = true end
  end
  return any and flags or nil
end

local function check_flags(s, parsed)
  local flags = script_flags(s)
  if not flags then
    fail("run", "`%s --help` lists no flags; the sweep needs a script that takes --out (pass --no-check to run it anyway)", s.script_given)
  end
  if not flags.out then fail("run", "%s has no --out flag, so its jobs would overwrite each other", s.script_given) end
  local function check(name)
    if not flags[norm(name)] and not (norm(name):sub(1, 3) == "no_" and flags[norm(name):sub(4)]) then
      local list = {}
      for k in pairs(flags) do list[#list + 1] = "--" .. k end
      table.sort(list)
      fail("run", "%s has no flag --%s (its flags: %s)", s.script_given, name, table.concat(list, " "))
    end
  end
  for _, g in ipairs(parsed.grid) do check(g.name) end
  for _, f in ipairs(parsed.fixed) do check(f.name) end
end

local function same_fixed(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i][1] ~= b[i][1] or a[i][2] ~= b[i][2] then return false end
  end
  return true
end

local function fixed_text(list)
  local t = {}
  for _, f in ipairs(list) do t[#t + 1] = f[2] == true and ("--" .. f[1]) or ("--" .. f[1] .. "=" .. f[2]) end
  return #t > 0 and table.concat(t, " ") or "(none)"
end

-- creates or extends the sweep in opts.out; returns it and the jobs of this grid
local function prepare(parsed)
  local out = parsed.opts.out
  if not out then fail("run", "--out DIR is required: the sweep's directory (each job gets DIR/<its flags>)") end
  local here = cwd()
  local script = parsed.target
  if sys.is_dir(script) then fail("run", "'%s' is a directory without sweep.json, not a script", script) end
  if not exists(script) then fail("run", "no script '%s' (looked from %s)", script, here) end
  local s = {
    version = 1, script = absolute(script, here), script_given = script, cwd = here,
    interpreter = interpreter(), swept = {}, fixed = {}, jobs = {}, runs = {},
  }
  for _, g in ipairs(parsed.grid) do s.swept[#s.swept + 1] = g.name end
  for _, fx in ipairs(parsed.fixed) do s.fixed[#s.fixed + 1] = { fx.name, fx.value } end
  local dir = absolute(out, here)
  s.dir = dir
  local new_jobs = M.expand(parsed.grid, parsed.fixed)
  if not parsed.opts.no_check then check_flags(s, parsed) end
  if exists(sweep_file(dir)) then
    local old = load_sweep(dir, "run")
    if old.script ~= s.script then
      fail("run", "%s is a sweep of %s, not of %s: use another --out", out, old.script, s.script)
    end
    if not same_fixed(old.fixed, s.fixed) then
      fail("run", "%s was run with the fixed flags %s, this run has %s: use another --out", out,
        fixed_text(old.fixed), fixed_text(s.fixed))
    end
    if table.concat(old.swept, " ") ~= table.concat(s.swept, " ") then
      fail("run", "%s sweeps --%s, this run sweeps --%s (in this order): use another --out", out,
        table.concat(old.swept, " --"), table.concat(s.swept, " --"))
    end
    local known = {}
    for _, job in ipairs(old.jobs) do known[job.name] = true end
    for _, job in ipairs(new_jobs) do
      if not known[job.name] then old.jobs[#old.jobs + 1] = job end
    end
    old.interpreter = s.interpreter
    s = old
  else
    local ok, err = sys.mkdir(dir)
    if not ok then fail("run", "%s", err) end
    s.jobs = new_jobs
  end
  save_sweep(s)
  local selected = {}
  local by_name = {}
  for _, job in ipairs(s.jobs) do by_name[job.name] = job end
  for _, job in ipairs(new_jobs) do selected[#selected + 1] = by_name[job.name] end
  return s, selected
end

local function positive(cmd, name, v)
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then fail(cmd, "--%s must be a positive integer, got '%s'", name, tostring(v)) end
  return n
end

local function index_of(s, job)
  for i, j in ipairs(s.jobs) do if j == job then return i end end
end

-- N wrappers at a time, each a `milua-sweep job` child whose pid we read first, so that a job
-- has ended when its process has (whatever it managed to write)
local function run_local(s, todo, selected, jobs, threads)
  local show = progress_printer()
  local host = hostname()
  local active, queue = {}, {}
  for i, job in ipairs(todo) do queue[i] = job end
  while true do
    for i = #active, 1, -1 do
      if not proc_running(active[i].pid) then
        if active[i].handle then active[i].handle:close() end
        table.remove(active, i)
      end
    end
    while #active < jobs and #queue > 0 do
      local job = table.remove(queue, 1)
      local status, st = job_status(s, job, host)
      if status == "running" and st.host == host then
        -- still running from an earlier start that was killed: it keeps a slot until it ends
        print(string.format("job %s is still running from an earlier start (pid %d); waiting for it", job.name, st.pid))
        active[#active + 1] = { job = job, pid = st.pid }
      elseif status == "running" then
        print(string.format("job %s is running on %s (pid %d); not started here", job.name, st.host, st.pid))
      elseif status ~= "done" then
        os.remove(state_file(s.dir, job))
        local h = io.popen("echo $$; exec " .. self_command() .. " job " .. quote(s.dir) .. " " .. index_of(s, job) ..
          " --threads " .. threads .. " 2>&1", "r")
        local pid = math.tointeger(tonumber(h:read("l")))
        if not pid then
          h:close()
          fail("run", "could not start `%s job` for %s", PROG, job.name)
        end
        active[#active + 1] = { job = job, pid = pid, handle = h }
      end
    end
    local c = survey(s, selected, jobs)
    if #active == 0 and #queue == 0 then
      show(c.line, true)
      return c
    end
    show(c.line)
    sleep(0.5)
  end
end

local function parallel_version()
  local out, ok = shell("parallel --version 2>/dev/null </dev/null")
  if not ok or not out:find("GNU parallel", 1, true) then return nil end
  return out:match("GNU parallel (%d+)")
end

local function run_parallel(s, todo, selected, jobs, threads, opts)
  if not parallel_version() then
    fail("run", "--runner parallel needs GNU parallel (Debian package 'parallel'), and `parallel --version` does not name it")
  end
  if opts.sshloginfile and not exists(opts.sshloginfile) then
    fail("run", "--sshloginfile '%s': no such file", opts.sshloginfile)
  end
  local list = s.dir .. "/parallel.jobs"
  local f = assert(io.open(list, "w"))
  for _, job in ipairs(todo) do f:write(index_of(s, job), "\n") end
  f:close()
  local cmd = { "parallel", "--jobs", jobs, "--line-buffer", "--joblog", quote(s.dir .. "/parallel.joblog") }
  if opts.sshloginfile then
    cmd[#cmd + 1] = "--sshloginfile " .. quote(absolute(opts.sshloginfile))
  end
  -- one word: parallel joins its command words unquoted and hands them to a shell
  cmd[#cmd + 1] = quote(self_command() .. " job " .. quote(s.dir) .. " {} --threads " .. threads)
  cmd[#cmd + 1] = ":::: " .. quote(list)
  local command = table.concat(cmd, " ")
  print("running: " .. command)
  -- parallel writes a line only when a job ends; a "tick" every second beside it keeps the
  -- progress line current. Both write into our pipe, so if this process dies, parallel dies at
  -- its next line as it did before (its running jobs finish; a restart waits for them).
  local ticking = "{ " .. command .. " 2>&1 </dev/null & p=$!; " ..
    "while kill -0 $p 2>/dev/null; do echo tick; sleep 1; done; wait $p; } </dev/null"
  local show = progress_printer()
  local h = io.popen(ticking, "r")
  for _ in h:lines() do
    -- a job's own report (done / FAILED / already complete) or a tick
    local c = survey(s, selected, jobs)
    show(c.line)
  end
  h:close()
  local c = survey(s, selected, jobs)
  show(c.line, true)
  return c
end

local function slurm_script(s, todo, opts, threads)
  local ids = {}
  for _, job in ipairs(todo) do ids[#ids + 1] = index_of(s, job) end
  local array = table.concat(ids, ",") .. (opts.jobs and ("%" .. opts.jobs) or "")
  local base = s.dir:match("([^/]+)$")
  local lines = {
    "#!/bin/sh",
    "# written by milua-sweep: one task of this job array per incomplete job of " .. s.dir,
    "#SBATCH --job-name=" .. safe("sweep-" .. base),
    "#SBATCH --array=" .. array,
    "#SBATCH --ntasks=1",
    "#SBATCH --cpus-per-task=" .. threads,
    "#SBATCH --output=" .. s.dir .. "/slurm/%A_%a.out",
  }
  if opts.slurm_time then lines[#lines + 1] = "#SBATCH --time=" .. opts.slurm_time end
  if opts.slurm_mem then lines[#lines + 1] = "#SBATCH --mem=" .. opts.slurm_mem end
  if opts.slurm_partition then lines[#lines + 1] = "#SBATCH --partition=" .. opts.slurm_partition end
  lines[#lines + 1] = "exec " .. self_command() .. " job " .. quote(s.dir) ..
    ' "$SLURM_ARRAY_TASK_ID" --threads "${SLURM_CPUS_PER_TASK:-' .. threads .. '}"'
  return table.concat(lines, "\n") .. "\n"
end

local function run_slurm(s, todo, selected, opts, threads)
  local path = s.dir .. "/slurm.sh"
  sys.mkdir(s.dir .. "/slurm")
  local f = assert(io.open(path, "w"))
  f:write(slurm_script(s, todo, opts, threads))
  f:close()
  if not opts.submit then
    print("wrote " .. path .. "; submit it with: sbatch " .. quote(path) .. "  (or run again with --submit)")
    return nil
  end
  local out, ok = shell("sbatch --parsable " .. quote(path) .. " 2>&1 </dev/null")
  local id = ok and out:match("^(%d+)")
  if not id then fail("run", "sbatch %s failed: %s", path, last_line_of(out)) end
  print(string.format("submitted Slurm job array %s (%d tasks); following it (Ctrl-C stops following, not the jobs)", id, #todo))
  local show = progress_printer()
  while true do
    local q = shell("squeue -h -j " .. id .. " -o %i 2>/dev/null </dev/null")
    local c = survey(s, selected, math.max(1, tonumber(opts.jobs) or #todo))
    if not q:match("%d") then
      show(c.line, true)
      return c
    end
    show(c.line)
    sleep(2)
  end
end

local function cmd_run(words)
  local parsed = M.parse_run(words)
  local opts = parsed.opts
  local runner = opts.runner or "local"
  if runner ~= "local" and runner ~= "parallel" and runner ~= "slurm" then
    fail("run", "unknown runner '%s' (expected local, parallel or slurm)", runner)
  end
  if opts.sshloginfile and runner ~= "parallel" then fail("run", "--sshloginfile goes with --runner parallel") end
  if opts.submit and runner ~= "slurm" then fail("run", "--submit goes with --runner slurm") end
  local jobs = opts.jobs and positive("run", "jobs", opts.jobs)
  local threads = opts.threads and positive("run", "threads", opts.threads)
  local s, selected
  if sys.is_dir(parsed.target) and exists(sweep_file(parsed.target)) then
    if #parsed.grid > 0 or #parsed.fixed > 0 then
      fail("run", "%s is a sweep directory: resuming it takes no script flags (give the script to change the grid)", parsed.target)
    end
    if opts.out then fail("run", "%s is a sweep directory: resuming it takes no --out", parsed.target) end
    s = load_sweep(absolute(parsed.target), "run")
    s.interpreter = interpreter()
    save_sweep(s)
    selected = s.jobs
  else
    s, selected = prepare(parsed)
  end
  if #opts.only > 0 then
    selected = {}
    for _, key in ipairs(opts.only) do selected[#selected + 1] = (find_job(s, key, "run")) end
  end
  -- one thread per job and a job per core unless told: on 2 cores two one-thread runs of the
  -- small models finish sooner than the same runs one after the other on two threads each
  local n = cores()
  if not jobs and not threads then jobs, threads = n, 1
  elseif not threads then threads = math.max(1, n // jobs)
  elseif not jobs then jobs = math.max(1, n // threads) end
  local todo, done = {}, 0
  local host = hostname()
  for _, job in ipairs(selected) do
    if job_status(s, job, host) == "done" then done = done + 1 else todo[#todo + 1] = job end
  end
  print(string.format("sweep %s: %d jobs of %s, %d already complete, %d to run (%s runner, %d at a time, %d thread%s each)",
    s.dir, #selected, s.script_given, done, #todo, runner, jobs, threads, threads == 1 and "" or "s"))
  if opts.dry_run then
    for _, job in ipairs(todo) do
      print(string.format("  %s job %s %d --threads %d    # %s", PROG, quote(s.dir), index_of(s, job), threads, job.name))
    end
    return 0
  end
  if #todo == 0 and runner ~= "slurm" then return 0 end
  local started = os.time()
  s.runs[#s.runs + 1] = { started = started, runner = runner, jobs = jobs, threads = threads, host = host,
                         pid = sys.getpid() }
  save_sweep(s)
  local c
  if runner == "local" then c = run_local(s, todo, selected, jobs, threads)
  elseif runner == "parallel" then c = run_parallel(s, todo, selected, jobs, threads, opts)
  else
    if #todo == 0 then print("nothing to submit") return 0 end
    c = run_slurm(s, todo, selected, opts, threads)
    if not c then return 0 end
  end
  return M.report_failures(s, selected) and 1 or 0
end

-- lists the failed jobs of the selection with their error and how to re-run each alone
function M.report_failures(s, selected)
  local host, any = hostname(), false
  for _, job in ipairs(selected) do
    local status, st = job_status(s, job, host)
    if status == "failed" or status == "interrupted" then
      any = true
      print(string.format("%s %s: %s", status == "failed" and "failed" or "interrupted", job.name,
        status == "failed" and st.error or "killed while running"))
      print(string.format("  log: %s/sweep.log; re-run alone: %s job %s %d", job_dir(s.dir, job), PROG,
        quote(s.dir), index_of(s, job)))
    end
  end
  return any
end

------------------------------------------------------------------------------ status

local function cmd_status(words)
  if #words ~= 1 then fail("status", "expected one sweep directory, as in: %s status sweeps/lego", PROG) end
  local s = load_sweep(absolute(words[1]), "status")
  local host = hostname()
  local last = s.runs[#s.runs]
  local width = 4
  for _, job in ipairs(s.jobs) do width = math.max(width, #job.name) end
  print(string.format("%4s  %-" .. width .. "s  %-11s  %8s  %s", "#", "job", "state", "time", "where / error"))
  for i, job in ipairs(s.jobs) do
    local status, st = job_status(s, job, host)
    local t, where = "", ""
    if st and st.seconds then t = duration(st.seconds)
    elseif st and st.started and status == "running" then t = duration(os.time() - st.started) end
    if status == "running" then where = string.format("%s pid %d", st.host, st.pid)
    elseif status == "failed" then where = st.error
    elseif status == "interrupted" then where = string.format("killed while running on %s (pid %d)", st.host, st.pid)
    elseif status == "done" and st then where = st.host or "" end
    print(string.format("%4d  %-" .. width .. "s  %-11s  %8s  %s", i, job.name, status, t, where))
  end
  local c = survey(s, s.jobs, last and last.jobs or 1)
  print(c.line)
  if c.pending > 0 and last and last.runner ~= "slurm" and last.host == host and not proc_running(last.pid) then
    print(string.format("the sweep is not running (its last start, pid %d, has ended); resume it with: %s run %s",
      last.pid, PROG, quote(s.dir)))
  end
  local failed = M.report_failures(s, s.jobs)
  if failed then return 1 end
  return c.done == c.total and 0 or 2
end

------------------------------------------------------------------------------ collect

-- value at a dotted path; a number picks a list item (1-based)
function M.get(t, path)
  local v = t
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    local i = math.tointeger(tonumber(part))
    if i and v[i] ~= nil then v = v[i] else v = v[part] end
  end
  return v
end

-- every leaf (number, boolean, string) below v, with its path; lists give path.1, path.2, ...
function M.flatten(v, prefix, out)
  out = out or {}
  if type(v) == "table" and v ~= json.null then
    local keys = {}
    if #v > 0 then
      for i = 1, #v do keys[i] = i end
    else
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    end
    for _, k in ipairs(keys) do M.flatten(v[k], prefix and (prefix .. "." .. k) or tostring(k), out) end
  elseif type(v) == "number" or type(v) == "boolean" or type(v) == "string" then
    out[#out + 1] = { prefix or "value", v }
  end
  return out
end

-- n, mean, min, max of the numbers (booleans as 1 and 0) in a list that may have holes
function M.stats(list, n)
  local count, sum, lo, hi = 0, 0, nil, nil
  for i = 1, n or #list do
    local x = list[i]
    if type(x) == "boolean" then x = x and 1 or 0 end
    if type(x) == "number" and x == x then
      count, sum = count + 1, sum + x
      lo = (lo == nil or x < lo) and x or lo
      hi = (hi == nil or x > hi) and x or hi
    end
  end
  if count == 0 then return { n = 0 } end
  return { n = count, mean = sum / count, min = lo, max = hi }
end

local function value_number(v) return tonumber(v) end

-- rows of the grid with the chosen fields; groups = rows that differ only in the `over` flag
function M.collect(dir, opts)
  opts = opts or {}
  local s = load_sweep(dir, "collect")
  local over = opts.over or "seed"
  local swept_over = false
  for _, name in ipairs(s.swept) do if name == over then swept_over = true end end
  local columns, seen_col = {}, {}
  local function add_col(c) if not seen_col[c] then seen_col[c] = true; columns[#columns + 1] = c end end
  local rows, missing = {}, {}
  for _, job in ipairs(s.jobs) do
    local r = results(s.dir, job)
    if not r then
      missing[#missing + 1] = job.name
    else
      local row = { job = job.name, flags = {}, values = {} }
      for _, f in ipairs(job.flags) do row.flags[f[1]] = f[2] end
      local fields = opts.fields
      if not fields then           -- every top-level number
        fields = {}
        local keys = {}
        for k, v in pairs(r) do if type(v) == "number" then keys[#keys + 1] = k end end
        table.sort(keys)
        fields = keys
      end
      for _, field in ipairs(fields) do
        local v = M.get(r, field)
        if v == nil then
          row.values[field] = nil
          add_col(field)
        else
          for _, leaf in ipairs(M.flatten(v, field)) do
            add_col(leaf[1])
            row.values[leaf[1]] = leaf[2]
          end
        end
      end
      rows[#rows + 1] = row
    end
  end
  -- groups: the other swept flags' values, in the order the grid has them
  local groups, by_key = {}, {}
  for _, row in ipairs(rows) do
    local parts = {}
    for _, name in ipairs(s.swept) do
      if name ~= over or not swept_over then
        if name ~= over then parts[#parts + 1] = name .. "=" .. row.flags[name] end
      end
    end
    local key = #parts > 0 and table.concat(parts, ",") or "all"
    if not swept_over then key = row.job end
    local g = by_key[key]
    if not g then
      g = { key = key, rows = {}, stats = {} }
      by_key[key] = g
      groups[#groups + 1] = g
    end
    g.rows[#g.rows + 1] = row
  end
  for _, g in ipairs(groups) do
    for _, c in ipairs(columns) do
      local list = {}
      for i, row in ipairs(g.rows) do list[i] = row.values[c] end
      g.stats[c] = M.stats(list, #g.rows)
    end
  end
  return { sweep = s, columns = columns, rows = rows, groups = groups, missing = missing, over = over,
           swept_over = swept_over }
end

local function fmt_value(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.4g", v)
  end
  return tostring(v)
end

local function exact(v)
  if v == nil then return "" end
  if type(v) == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return json.encode(v)
  end
  return tostring(v)
end

local function csv_field(text)
  if text:find('[,"\n]') then return '"' .. text:gsub('"', '""') .. '"' end
  return text
end

function M.csv(c)
  local header = { "job" }
  for _, name in ipairs(c.sweep.swept) do header[#header + 1] = name end
  for _, col in ipairs(c.columns) do header[#header + 1] = col end
  local lines = {}
  for i, h in ipairs(header) do header[i] = csv_field(h) end
  lines[1] = table.concat(header, ",")
  for _, row in ipairs(c.rows) do
    local f = { csv_field(row.job) }
    for _, name in ipairs(c.sweep.swept) do f[#f + 1] = csv_field(row.flags[name]) end
    for _, col in ipairs(c.columns) do f[#f + 1] = csv_field(exact(row.values[col])) end
    lines[#lines + 1] = table.concat(f, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

function M.json_table(c)
  local rows, groups = {}, {}
  for i, row in ipairs(c.rows) do
    rows[i] = { job = row.job, flags = json.object(row.flags), values = json.object(row.values) }
  end
  for i, g in ipairs(c.groups) do
    local st = json.object()
    for _, col in ipairs(c.columns) do
      local x = g.stats[col]
      if x.n > 0 then st[col] = { n = x.n, mean = x.mean, min = x.min, max = x.max } end
    end
    groups[i] = { group = g.key, jobs = #g.rows, stats = st }
  end
  return { script = c.sweep.script_given, swept = c.sweep.swept, over = c.over, columns = c.columns,
           rows = rows, groups = groups, missing = c.missing }
end

-- the same table in Markdown, for experiments/README.md: a row per job, then each group's
-- mean, min and max
function M.markdown(c)
  local function row(cells) return "| " .. table.concat(cells, " | ") .. " |" end
  local header, rule = { "job" }, { "---" }
  for _, col in ipairs(c.columns) do header[#header + 1] = col; rule[#rule + 1] = "---" end
  local lines = { row(header), row(rule) }
  for _, r in ipairs(c.rows) do
    local cells = { r.job }
    for _, col in ipairs(c.columns) do cells[#cells + 1] = fmt_value(r.values[col]) end
    lines[#lines + 1] = row(cells)
  end
  if c.swept_over then
    for _, g in ipairs(c.groups) do
      for _, what in ipairs({ "mean", "min", "max" }) do
        local cells = { string.format("%s %s (%d)", g.key, what, #g.rows) }
        for _, col in ipairs(c.columns) do
          local x = g.stats[col]
          cells[#cells + 1] = x.n > 0 and fmt_value(x[what]) or "-"
        end
        lines[#lines + 1] = row(cells)
      end
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

local function print_table(header, rows)
  local width = {}
  for i, h in ipairs(header) do width[i] = #h end
  for _, r in ipairs(rows) do for i, v in ipairs(r) do width[i] = math.max(width[i], #v) end end
  local function line(r)
    local t = {}
    for i, v in ipairs(r) do t[i] = (i == 1 and "%-" or "%") .. width[i] .. "s" end
    print((string.format(table.concat(t, "  "), table.unpack(r)):gsub("%s+$", "")))
  end
  line(header)
  for _, r in ipairs(rows) do line(r) end
end

function M.print(c)
  local header = { "job" }
  for _, col in ipairs(c.columns) do header[#header + 1] = col end
  local rows = {}
  for _, row in ipairs(c.rows) do
    local r = { row.job }
    for _, col in ipairs(c.columns) do r[#r + 1] = fmt_value(row.values[col]) end
    rows[#rows + 1] = r
  end
  print_table(header, rows)
  if c.swept_over then
    print("")
    print(string.format("per group (over --%s): mean, min, max (n)", c.over))
    local srows = {}
    for _, g in ipairs(c.groups) do
      for _, what in ipairs({ "mean", "min", "max" }) do
        local r = { what == "mean" and (g.key .. " mean") or (what == "min" and "  min" or "  max") }
        for _, col in ipairs(c.columns) do
          local x = g.stats[col]
          r[#r + 1] = x.n > 0 and fmt_value(x[what]) .. (what == "mean" and x.n < #g.rows and ("(" .. x.n .. ")") or "") or "-"
        end
        srows[#srows + 1] = r
      end
    end
    print_table(header, srows)
  end
  if #c.missing > 0 then
    print(string.format("not complete (%d): %s", #c.missing, table.concat(c.missing, " ")))
  end
end

-- a metric against the swept flag `x`, one bar per seed (per value of `over`) and their mean
function M.plot(c, metric, x, path)
  local plot = require "milua.plot"
  local s = c.sweep
  local has = false
  for _, col in ipairs(c.columns) do if col == metric then has = true end end
  if not has then
    fail("collect", "--plot %s: not a collected column (columns: %s)", metric, table.concat(c.columns, " "))
  end
  if x == nil then
    for _, name in ipairs(s.swept) do if name ~= c.over then x = name break end end
    x = x or c.over
  end
  local xs, xindex = {}, {}
  local known = false
  for _, name in ipairs(s.swept) do if name == x then known = true end end
  if not known then fail("collect", "--x %s: not a swept flag (swept: %s)", x, table.concat(s.swept, " ")) end
  for _, row in ipairs(c.rows) do
    local v = row.flags[x]
    if not xindex[v] then xs[#xs + 1] = v; xindex[v] = true end
  end
  local numeric = true
  for _, v in ipairs(xs) do if not value_number(v) then numeric = false end end
  table.sort(xs, function(a, b)
    if numeric then return value_number(a) < value_number(b) end
    return a < b
  end)
  for i, v in ipairs(xs) do xindex[v] = i end
  -- a series per combination of the other flags (the seed among them), and each group's mean
  local series, names, by = {}, {}, {}
  local means, mean_names, mean_by = {}, {}, {}
  for _, row in ipairs(c.rows) do
    local parts, gparts = {}, {}
    for _, name in ipairs(s.swept) do
      if name ~= x then
        parts[#parts + 1] = name .. " " .. row.flags[name]
        if name ~= c.over then gparts[#gparts + 1] = name .. " " .. row.flags[name] end
      end
    end
    local key = #parts > 0 and table.concat(parts, ", ") or metric
    if not by[key] then
      by[key] = {}
      for i = 1, #xs do by[key][i] = 0 / 0 end
      series[#series + 1] = by[key]
      names[#names + 1] = key
    end
    local v = row.values[metric]
    if type(v) == "boolean" then v = v and 1 or 0 end
    if type(v) == "number" then by[key][xindex[row.flags[x]]] = v end
    if x ~= c.over and c.swept_over then
      local gkey = "mean" .. (#gparts > 0 and (" " .. table.concat(gparts, ", ")) or "")
      if not mean_by[gkey] then
        mean_by[gkey] = {}
        for i = 1, #xs do mean_by[gkey][i] = {} end
        means[#means + 1] = mean_by[gkey]
        mean_names[#mean_names + 1] = gkey
      end
      local cell = mean_by[gkey][xindex[row.flags[x]]]
      cell[#cell + 1] = v
    end
  end
  for i, m in ipairs(means) do
    local bars = {}
    for k = 1, #xs do
      local st = M.stats(m[k], #m[k])
      bars[k] = st.n > 0 and st.mean or 0 / 0
    end
    series[#series + 1] = bars
    names[#names + 1] = mean_names[i]
  end
  plot.bar(series, path, { labels = xs, series = names, xlabel = "--" .. x, ylabel = metric,
    title = metric .. " by --" .. x .. " (" .. (s.script_given:match("([^/]+)$") or s.script_given) .. ")",
    width = math.max(640, math.min(1600, 60 * #xs * #series + 240)), height = 480 })
  return path
end

local COLLECT_FLAGS = { fields = true, csv = true, json = true, markdown = true, over = true, plot = true, x = true,
                        png = true }

local function cmd_collect(words)
  local dir
  local o = {}
  local i = 1
  while i <= #words do
    local w = words[i]
    if w:sub(1, 2) == "--" then
      local name, value = w:sub(3):match("^([^=]+)=(.*)$")
      if not name then name = w:sub(3); value = words[i + 1]; i = i + 1 end
      if not COLLECT_FLAGS[name] then
        fail("collect", "unknown flag --%s (flags: --fields --csv --json --markdown --over --plot --x --png)", name)
      end
      if value == nil then fail("collect", "--%s needs a value", name) end
      o[name] = value
    elseif dir then
      fail("collect", "unexpected word '%s' (one sweep directory, then flags)", w)
    else
      dir = w
    end
    i = i + 1
  end
  if not dir then fail("collect", "expected a sweep directory, as in: %s collect sweeps/lego --fields best_head.score", PROG) end
  local fields
  if o.fields then
    fields = {}
    for f in (o.fields .. ","):gmatch("(.-),") do
      if f == "" then fail("collect", "--fields %s: empty field name", o.fields) end
      fields[#fields + 1] = f
    end
  end
  local c = M.collect(absolute(dir), { fields = fields, over = o.over })
  if #c.rows == 0 then fail("collect", "%s has no complete job yet (see `%s status %s`)", dir, PROG, dir) end
  M.print(c)
  if o.csv then
    local f = assert(io.open(o.csv, "w"))
    f:write(M.csv(c))
    f:close()
    print("wrote " .. o.csv)
  end
  if o.json then
    json.write(o.json, M.json_table(c))
    print("wrote " .. o.json)
  end
  if o.markdown then
    local f = assert(io.open(o.markdown, "w"))
    f:write(M.markdown(c))
    f:close()
    print("wrote " .. o.markdown)
  end
  if o.plot then
    local path = o.png or (absolute(dir) .. "/" .. safe(o.plot) .. ".png")
    M.plot(c, o.plot, o.x, path)
    print("wrote " .. path)
  end
  return 0
end

------------------------------------------------------------------------------ main

local USAGE = [==[
usage: milua-sweep run SCRIPT [grid and fixed flags] --out DIR [--runner local|parallel|slurm]
                   [--jobs N] [--threads N] [--only JOB]... [--sshloginfile FILE]
                   [--submit] [--slurm-time T] [--slurm-mem M] [--slurm-partition P]
                   [--dry-run] [--no-check] [-- script flags]
       milua-sweep run DIR [--runner ...] [--jobs N] [--only JOB]...   (resume a sweep)
       milua-sweep status DIR
       milua-sweep collect DIR [--fields a,b.c] [--over FLAG] [--csv FILE] [--json FILE] [--markdown FILE]
                   [--plot FIELD [--x FLAG] [--png FILE]]
       milua-sweep job DIR JOB [--threads N]   (run one job in the foreground)
grid: --seed 1..4 (a range), --lr 3e-4,1e-3 (a list), --seed 1..3,7; any other flag is fixed.
See man milua-sweep.]==]

local function cmd_job(words)
  local dir, key = words[1], words[2]
  if not dir or not key then fail("job", "expected a sweep directory and a job number or name") end
  local threads
  local i = 3
  while i <= #words do
    local w = words[i]
    local v = w:match("^%-%-threads=(.*)$")
    if w == "--threads" then v = words[i + 1]; i = i + 1 end
    if not v then fail("job", "unexpected word '%s' (the only flag is --threads N)", w) end
    threads = positive("job", "threads", v)
    i = i + 1
  end
  threads = threads or math.tointeger(tonumber(os.getenv("SLURM_CPUS_PER_TASK") or "")) or cores()
  return run_job(absolute(dir), key, threads)
end

function M.main(argv)
  local words = {}
  for i = 1, #argv do words[i] = argv[i] end
  local cmd = table.remove(words, 1)
  local handlers = { run = cmd_run, status = cmd_status, collect = cmd_collect, job = cmd_job }
  if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
    print(USAGE)
    return cmd == nil and 2 or 0
  end
  local h = handlers[cmd]
  if not h then
    io.stderr:write(PROG .. ": unknown command '" .. cmd .. "' (expected run, status, collect or job)\n")
    return 2
  end
  local ok, res = pcall(h, words)
  if not ok then
    io.stderr:write(tostring(res), "\n")
    return 2
  end
  return res
end

return M
