-- Checkpoints, the training loop (exact resume, learning a small task), and
-- flat memory over long loops with hooks and caches.
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local optim = require "milua.optim"
local test = require "milua.test"
local sys = require "milua.sys"

local dir = os.tmpname()
os.remove(dir)
assert(sys.mkdir(dir))
local function cleanup() os.execute("rm -rf '" .. dir .. "'") end

-- save / load round trip, bit-exact
T.seed(11)
local cfg = { n_layers = 2, d_model = 16, n_heads = 2, d_mlp = 32, d_vocab = 9, n_ctx = 12, act_fn = "relu", causal = false,
  tie_layers = true, d_vocab_out = 3 }
local m = nn.transformer(cfg)
local path = dir .. "/m.safetensors"
m:save(path)
local m2, tensors, meta = nn.load(path)
local same = true
for _, n in ipairs(m.param_names) do
  if (m.params[n] - m2.params[n]):abs():max():item() ~= 0 then same = false end
end
test.ok(same, "save/load round trip is bit-exact")
test.is(m2.cfg, m.cfg, "the config comes back from the metadata")
test.is(meta.format, "pt", "checkpoints carry format = pt")
local toks = T.randint(1, 10, 2, 12)
test.is((m:forward(toks) - m2:forward(toks)):abs():max():item(), 0, "the loaded model computes the same logits")
test.ok(m2.params["embed.W_E"]:requires_grad(), "loaded parameters are trainable")

-- damaged checkpoints: missing and mis-shaped tensors are named
local t2 = {}
for k, v in pairs(tensors) do t2[k] = v end
t2["blocks.0.mlp.W_in"] = nil
T.save(dir .. "/missing.safetensors", t2, { config = meta.config })
test.throws(function() nn.load(dir .. "/missing.safetensors") end, "parameter 'blocks.0.mlp.W_in' is missing", "a missing parameter is named")
t2["blocks.0.mlp.W_in"] = T.zeros(3, 3)
T.save(dir .. "/shape.safetensors", t2, { config = meta.config })
test.throws(function() nn.load(dir .. "/shape.safetensors") end, "'blocks.0.mlp.W_in' has shape [3,3]", "a mis-shaped parameter is named")
T.save(dir .. "/noconfig.safetensors", { x = T.zeros(1) })
test.throws(function() nn.load(dir .. "/noconfig.safetensors") end, "no 'config' metadata", "a file without a config is an error")
test.throws(function() nn.load(dir .. "/nonexistent.safetensors") end, "nonexistent.safetensors", "a missing file is named")

-- the training loop: sequence reversal learned to full accuracy
local L, V = 5, 7
local function reversal_batch()
  local tk, tg, mk = {}, {}, {}
  for b = 1, 32 do
    local row, trow, mrow = {}, {}, {}
    for i = 1, L do row[i] = T.random(2, V + 1) end
    for i = 1, L do row[L + i] = row[L + 1 - i] end
    for i = 1, 2 * L do trow[i] = row[i + 1] or 1; mrow[i] = (i >= L and i < 2 * L) and 1 or 0 end
    tk[b], tg[b], mk[b] = row, trow, mrow
  end
  return T.tensor(tk, "int32"), T.tensor(tg, "int32"), T.tensor(mk)
end
local function new_model()
  T.seed(5)
  return nn.transformer { n_layers = 2, d_model = 32, n_heads = 4, d_mlp = 64, d_vocab = V + 1, n_ctx = 2 * L, act_fn = "relu" }
end
local model = new_model()
local r = train.run { model = model, batch = reversal_batch, steps = 300, lr = 3e-3, warmup = 20, decay = "cosine", clip = 1.0,
  quiet = true }
local tk, tg, mk = reversal_batch()
local pred = T.no_grad(function() return model:forward(tk):argmax(3) end)
local acc = ((pred:eq(tg) * mk):sum() / mk:sum()):item()
test.ok(acc == 1, "a 2-layer model learns sequence reversal to full accuracy (" .. acc .. ")")
test.ok(r.losses[300] < r.losses[1] / 20, string.format("the loss falls (%.3f -> %.4f)", r.losses[1], r.losses[300]))

-- resume: 30 steps straight equals 18 steps, a checkpoint, and 12 more
local function run(steps, ckpt, resume)
  return train.run { model = new_model(), batch = reversal_batch, steps = steps, lr = 2e-3, clip = 1.0, quiet = true,
    checkpoint = ckpt, checkpoint_every = 6, resume = resume }
end
T.seed(100)
local straight = run(30).losses
T.seed(100)
local ck = dir .. "/ckpt.safetensors"
run(18, ck, false)
local resumed = run(30, ck, true)
test.is(resumed.resumed_from, 18, "training resumes from the checkpoint's step")
test.is(resumed.losses, straight, "the resumed loss trajectory equals the uninterrupted one, bit for bit")
T.seed(100)
test.is(run(30).losses, straight, "same seed, same losses")

test.throws(function() train.run { model = model, batch = reversal_batch } end, "'steps' is required", "train.run checks its options")
test.throws(function() train.run { model = model, batch = reversal_batch, steps = 1, lr = 1, bogus = 1 } end,
  "unknown option 'bogus'", "train.run names unknown options")

-- a schedule function sets the rate and Adam's beta1 of every step: the same parameters as a
-- hand-written loop that sets them itself, and the caller's betas table is left as given
do
  local optim = require "milua.optim"
  local cfg = { n_layers = 1, d_model = 16, n_heads = 2, d_mlp = 32, d_vocab = 7, n_ctx = 6, act_fn = "gelu" }
  T.seed(9)
  local toks, tg = T.randint(1, 8, 8, 6), T.randint(1, 8, 8, 6)
  local oc = optim.one_cycle { lr = 1e-2, total = 12, pct_start = 0.25 }
  local betas = { 0.9, 0.99 }
  T.seed(4)
  local a = nn.transformer(cfg)
  train.run { model = a, batch = function() return toks, tg end, steps = 12, schedule = oc, betas = betas,
    weight_decay = 0.01, quiet = true }
  T.seed(4)
  local b = nn.transformer(cfg)
  local opt = optim.adamw(b.params, { lr = 1, betas = { 0.9, 0.99 }, weight_decay = 0.01 })
  for step = 1, 12 do
    local lr, b1 = oc(step)
    opt.lr, opt.betas = lr, { b1, 0.99 }
    opt:zero_grad()
    nn.cross_entropy(b:forward(toks), tg):backward()
    opt:step()
  end
  local same = true
  for _, n in ipairs(a.param_names) do
    if (a.params[n]:detach() - b.params[n]:detach()):abs():max():item() ~= 0 then same = false end
  end
  test.ok(same, "train.run{schedule = one_cycle}: the parameters equal a loop that sets lr and beta1 by hand")
  test.is(betas, { 0.9, 0.99 }, "train.run{schedule}: the caller's betas table is not changed")
  test.throws(function() train.run { model = a, batch = function() return toks, tg end, steps = 2, schedule = oc, warmup = 1 } end,
    "either 'schedule' or 'warmup'", "train.run refuses a schedule together with warmup/decay")
  test.throws(function() train.run { model = a, batch = function() return toks, tg end, steps = 2, schedule = 0.1 } end,
    "'schedule' must be a function", "train.run names a schedule that is not a function")
end

-- memory stays flat over a long loop with hooks, caches and backward
local mm = new_model()
local opt = require("milua.optim").adamw(mm.params, { lr = 1e-3 })
mm:add_hook("blocks.0.hook_resid_mid", function(x) return x * 1 end)
local function iteration()
  local tk2, tg2 = reversal_batch()
  local logits, cache = mm:run_with_cache(tk2, "hook_pattern")
  local loss = nn.cross_entropy(logits, tg2)
  opt:zero_grad(); loss:backward(); opt:step()
  return cache
end
for _ = 1, 50 do iteration() end
collectgarbage(); collectgarbage()
local before = T.live_bytes()
for _ = 1, 400 do iteration() end
collectgarbage(); collectgarbage()
local after = T.live_bytes()
test.ok(after <= before * 1.05 + 65536, string.format("memory is flat over 400 hooked, cached training steps (%d -> %d bytes)", before, after))

-- the work split depends on sizes only: one thread and two give the same bits
local script = dir .. "/threads.lua"
local f = assert(io.open(script, "w"))
f:write([[
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
T.seed(3)
local model = nn.transformer{ n_layers = 2, d_model = 64, n_heads = 4, d_mlp = 256, d_vocab = 36, n_ctx = 32, causal = false }
local toks, tg = T.randint(1, 37, 128, 32), T.randint(1, 37, 128, 32)
local r = train.run{ model = model, batch = function() return toks, tg end, steps = 3, lr = 1e-3, quiet = true }
print(string.format("%a %a %a", r.losses[1], r.losses[2], r.losses[3]))
]])
f:close()
local milua = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
local function losses_with(threads, engine)
  local p = assert(io.popen(string.format("MILUA_GEMM=%s OMP_NUM_THREADS=%d %s %s", engine, threads, milua, script)))
  local out = p:read("a")
  p:close()
  return out
end
-- each engine: the default table (oneDNN for this model's products: its linear layers split into
-- row blocks, its 32x32x16 per-head products), and each library forced for every product
for _, engine in ipairs { "auto", "onednn", "openblas" } do
  local one, two = losses_with(1, engine), losses_with(2, engine)
  test.ok(one:match("^0x") and one == two, "training losses are bit-identical with 1 and 2 threads (" .. engine .. "): " ..
    one:gsub("\n", ""))
  test.is(losses_with(2, engine), two, "and from one run to the next (" .. engine .. ")")
end

-- the same from Lua: T.set_num_threads changes the count, never the bits
do
  local function losses()
    T.seed(3)
    local model = nn.transformer { n_layers = 2, d_model = 64, n_heads = 4, d_mlp = 256, d_vocab = 36, n_ctx = 32, causal = false }
    local toks, tg = T.randint(1, 37, 128, 32), T.randint(1, 37, 128, 32)
    local r = train.run { model = model, batch = function() return toks, tg end, steps = 3, lr = 1e-3, quiet = true }
    return string.format("%a %a %a", r.losses[1], r.losses[2], r.losses[3])
  end
  local was = T.num_threads()
  T.set_num_threads(1)
  test.is(T.num_threads(), 1, "T.set_num_threads(1): T.num_threads() reports 1")
  local l1 = losses()
  T.set_num_threads(2)
  test.is(T.num_threads(), 2, "T.set_num_threads(2)")
  test.is(losses(), l1, "losses are bit-identical after T.set_num_threads(2)")
  test.throws(function() T.set_num_threads(0) end, "T.set_num_threads: the thread count must be an integer from 1 to 1024, got 0",
    "T.set_num_threads(0) is refused clearly, naming the Lua call")
  test.throws(function() T.set_num_threads("many") end, "an integer from 1 to 1024, got many", "T.set_num_threads needs a number")
  test.throws(function() T.set_num_threads(1.5) end, "got 1.5", "T.set_num_threads needs an integer")
  test.is(T.num_threads(), 2, "a refused T.set_num_threads leaves the count alone")
  T.set_num_threads(was)
end

-- peak memory of training: parameters, gradients, AdamW's two moments and the activations
-- saved for backward, plus what backward holds in flight; optimizer steps drop their gradient
-- references at once, so last step's gradients are not kept beside this step's
do
  T.seed(5)
  local model = nn.transformer { n_layers = 1, d_model = 256, n_heads = 2, d_mlp = 1024, d_vocab = 14, n_ctx = 18 }
  local opt = optim.adamw(model.params, { lr = 1e-3 })
  local x, y = T.randint(1, 15, 64, 18), T.randint(1, 15, 64, 18)
  collectgarbage(); collectgarbage()
  local base = T.live_bytes()
  local loss = nn.cross_entropy(model:forward(x), y)
  local act = T.live_bytes() - base
  loss:backward(); opt:step(); opt:zero_grad(); loss = nil
  collectgarbage(); collectgarbage()
  local pb = 0
  for _, n in ipairs(model.param_names) do pb = pb + 4 * model.params[n]:numel() end
  T.memory(true)   -- reports, then resets the peaks to what is live now
  local m0 = T.memory()
  test.ok(m0.live >= 3 * pb and m0.peak_live == m0.live, "T.memory(true) resets the peak; live bytes hold params and moments")
  for _ = 1, 10 do
    local l = nn.cross_entropy(model:forward(x), y)
    opt:zero_grad(); l:backward(); opt:step()
  end
  local m = T.memory()
  local need = 4 * pb + act
  test.ok(m.peak_live <= 1.3 * need, string.format("training peak live bytes %.1f MB within 1.3x of the %.1f MB needed",
    m.peak_live / 1e6, need / 1e6))
  test.ok(m.peak_held >= m.peak_live and m.total > m.live, "T.memory: held (live + reusable) >= live; total counts every allocation")
end

cleanup()
test.done()
