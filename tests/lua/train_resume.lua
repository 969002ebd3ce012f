-- Resuming training after it was stopped for real: an error raised inside the loop, and a
-- process killed with SIGKILL at random moments (some of them while a checkpoint is being
-- written). Either way the resumed run must equal an uninterrupted one bit for bit: losses,
-- parameters and the random generator's state.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local sys = require "milua.sys"

local BIN = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
local dir = os.tmpname()
os.remove(dir)
assert(sys.mkdir(dir))

-- the recipe, shared with the child processes below as source text
local recipe = [[
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local V, L = 6, 5
local function batch()
  local x = T.randint(1, V + 1, 16, L)
  local tokens = T.cat({ x, x }, 2)   -- predict each token's repeat: the second half is copying
  return tokens, T.cat({ x:narrow(2, 2, L - 1), x, x:narrow(2, 1, 1) }, 2), nil
end
local function model()
  T.seed(5)
  return nn.transformer { n_layers = 1, d_model = 16, n_heads = 2, d_mlp = 32, d_vocab = V, n_ctx = 2 * L,
    act_fn = "gelu" }
end
local function run(o)
  local m = model()
  T.seed(100)
  local r = train.run { model = m, batch = o.batch or batch, steps = 30, lr = 3e-3, warmup = 5, decay = "cosine",
    clip = 0.5, quiet = true, checkpoint = o.checkpoint, checkpoint_every = 6, resume = o.resume, on_step = o.on_step }
  return m, r
end
]]
local R = load(recipe .. "\nreturn { run = run, batch = batch }")()

local function same(a, b) return a:ne(b):sum():item() == 0 end
local function params_equal(a, b)
  for name, p in pairs(a.params) do
    if not same(p, b.params[name]) then return false, name end
  end
  return true
end

-- the uninterrupted run
local straight_model, straight = R.run {}
local straight_rng = T.get_rng_state()

-- 1. an error raised at step 20 of 30 (warm-up, cosine decay and clipping in use; checkpoints every 6)
do
  local ck = dir .. "/crash.safetensors"
  local ok, err = pcall(R.run, { checkpoint = ck, batch = function(step)
    if step == 20 then error("simulated failure at step 20", 0) end
    return R.batch()
  end })
  test.ok(not ok and tostring(err):find("step 20"), "the first run stops with its error at step 20")
  T.seed(999)   -- whatever state the crash left is replaced by the checkpoint's
  local m, r = R.run { checkpoint = ck, resume = true }
  test.is(r.resumed_from, 18, "the resumed run starts from the last checkpoint (step 18)")
  test.is(r.losses, straight.losses, "losses equal the uninterrupted run's, bit for bit")
  local equal, which = params_equal(m, straight_model)
  test.ok(equal, "parameters equal the uninterrupted run's" .. (which and (" (differs: " .. which .. ")") or ""))
  test.ok(same(T.get_rng_state(), straight_rng), "the random generator ends in the same state")
end

-- 2. a child process killed with SIGKILL at random steps, restarted each time with resume
do
  local ck = dir .. "/killed.safetensors"
  local child = dir .. "/child.lua"
  local f = assert(io.open(child, "w"))
  f:write(recipe, [[
local m, r = run { checkpoint = arg[1], resume = true, on_step = function(step)
  io.stdout:write("step ", step, "\n"); io.stdout:flush()
  -- a pause between steps (wall time, not CPU): on a loaded machine the parent still reads
  -- a step line and kills before the run can finish
  os.execute("sleep 0.05")
end }
local out = {}
for i, v in ipairs(r.losses) do out[i] = string.format("%a", v) end
io.stdout:write("losses ", table.concat(out, " "), "\n")
m:save(arg[2])
]])
  f:close()
  T.seed(31)
  local kills, resumes = 0, {}
  for _ = 1, 6 do
    local stop_at = T.random(3, 28)
    local p = assert(io.popen("sh -c 'echo $$; exec " .. BIN .. " " .. child .. " " .. ck .. " " .. dir ..
      "/final.safetensors' 2>&1"))
    local pid = p:read("l")
    local first
    for line in p:lines() do
      local s = tonumber(line:match("^step (%d+)"))
      if s and not first then first = s end
      if s and s >= stop_at then
        if os.execute("kill -9 " .. pid .. " 2>/dev/null") then kills = kills + 1 end
        break
      end
      if line:match("^losses") then break end
    end
    p:close()
    resumes[#resumes + 1] = first
    -- whatever moment the kill hit, the checkpoint on disk loads whole
    local f2 = io.open(ck, "rb")
    if f2 then
      f2:close()
      local ok, e = pcall(T.load, ck)
      test.ok(ok, "after a kill at step >= " .. stop_at .. " the checkpoint loads" .. (ok and "" or (": " .. tostring(e))))
    end
  end
  test.ok(kills >= 3, "the child was killed mid-run several times (" .. kills .. ")")
  local resumed_later = false
  for i = 2, #resumes do if resumes[i] and resumes[i] > 1 then resumed_later = true end end
  test.ok(resumed_later, "a restarted child continued from a checkpoint, not from step 1")
  -- the last start runs to the end
  local p = assert(io.popen(BIN .. " " .. child .. " " .. ck .. " " .. dir .. "/final.safetensors 2>&1"))
  local text = p:read("a")
  p:close()
  local line = text:match("losses ([^\n]*)")
  test.ok(line ~= nil, "the final restart finishes" .. (line and "" or (": " .. text)))
  local losses = {}
  for w in (line or ""):gmatch("%S+") do losses[#losses + 1] = tonumber(w) end
  test.is(losses, straight.losses, "losses over the killed and restarted runs equal the uninterrupted run's, bit for bit")
  local final = nn.load(dir .. "/final.safetensors")
  local equal, which = params_equal(final, straight_model)
  test.ok(equal, "final parameters equal the uninterrupted run's" .. (which and (" (differs: " .. which .. ")") or ""))
end

os.execute("rm -rf " .. dir)
test.done()
