-- A stand-in experiment for the sweep tests: takes the common flags (--out --seed --quick --steps)
-- and --lr, and writes a results.json whose values the tests can compute by hand:
--   score = seed + 100 * lr, best = {score = seed / 10, layer = seed % 2}, by_depth = {seed, 2 * seed},
--   ok = (seed is odd), threads = the OpenMP threads the sweep gave it, steps, quick.
-- --sleep S waits S seconds first (for the kill test); --fail-seed N exits with an error on seed N
-- (while the file --fail-while names exists, when given);
-- every start appends "<seed> <lr>" to --count FILE when given, so a test sees which jobs ran.
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"

local opts = cli.parse(arg, {
  { "out", "out/toy", "output directory" },
  { "seed", 1, "seed" },
  { "quick", false, "accepted, recorded" },
  { "steps", 10, "recorded" },
  { "lr", 0.5, "enters the score" },
  { "sleep", 0.0, "seconds to wait before writing results" },
  { "fail_seed", 0, "this seed raises an error (0: none)" },
  { "fail_while", "", "fail only while this file exists" },
  { "count", "", "file to append a line to at every start" },
}, "milua tests/sweep/toy.lua -- a stand-in experiment for the sweep tests")

if opts.count ~= "" then
  local f = assert(io.open(opts.count, "a"))
  f:write(opts.seed, " ", opts.lr, "\n")
  f:close()
end
print(string.format("toy: seed %d, lr %g, %d thread(s)", opts.seed, opts.lr, sys.num_threads()))
if opts.sleep > 0 then os.execute("sleep " .. opts.sleep) end
if opts.seed == opts.fail_seed and (opts.fail_while == "" or io.open(opts.fail_while)) then error("toy: seed " .. opts.seed .. " fails on purpose") end
assert(sys.mkdir(opts.out))
json.write(opts.out .. "/results.json", {
  seed = opts.seed, lr = opts.lr, score = opts.seed + 100 * opts.lr,
  best = { score = opts.seed / 10, layer = opts.seed % 2 }, by_depth = { opts.seed, 2 * opts.seed },
  ok = opts.seed % 2 == 1, threads = sys.num_threads(), steps = opts.steps, quick = opts.quick,
})
