-- The soak: a long training run of a small model with the things a researcher leaves running
-- overnight all in use (a persistent hook, full caches, per-call hooks, gradients through a
-- cache, checkpoints), the process's memory sampled along the way. After a warm-up, memory
-- must stay flat: no growth beyond noise.
--
--   milua bench/soak.lua [--steps 100000] [--every 1000] [--out out/soak]     (make soak)
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"

local opts = cli.parse(arg, {
  { "steps", 100000, "training steps" },
  { "every", 1000, "sample memory every N steps" },
  { "out", "out/soak", "output directory (soak.json, a checkpoint)" },
}, "milua bench/soak.lua -- a long training run with hooks and caches, memory sampled")
if opts.steps < 10 or opts.every < 1 then error("soak: --steps must be >= 10 and --every >= 1", 0) end
assert(sys.mkdir(opts.out))

-- resident and peak resident size of this process, in bytes (Linux)
local function rss()
  local f = io.open("/proc/self/status", "r")
  if not f then return 0, 0 end
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")) * 1024, tonumber(text:match("VmHWM:%s*(%d+)")) * 1024
end

T.seed(1)
local V, L = 12, 8
local model = nn.transformer { n_layers = 2, d_model = 32, n_heads = 4, d_mlp = 64, d_vocab = V, n_ctx = 2 * L,
  act_fn = "gelu" }
model:add_hook("blocks.0.hook_resid_mid", function(x) return x * 1 end)   -- a persistent hook
local opt = optim.adamw(model.params, { lr = 1e-3 })
local function batch()
  local x = T.randint(1, V + 1, 32, L)
  local tokens = T.cat({ x, x }, 2)
  return tokens, T.cat({ x:narrow(2, 2, L - 1), x, x:narrow(2, 1, 1) }, 2)
end

local samples, t0 = {}, sys.clock()
for step = 1, opts.steps do
  local tokens, targets = batch()
  local loss
  if step % 50 == 0 then        -- gradients of the loss at every hook point (no update)
    local _, cache = model:run_with_cache(tokens, nil, { grads = true, loss = function(l)
      return nn.cross_entropy(l, targets) end })
    assert(cache:grad("blocks.1.hook_resid_post"))
  end
  if step % 10 == 0 then        -- a full cache, trained through
    local logits, cache = model:run_with_cache(tokens)
    loss = nn.cross_entropy(logits, targets)
    assert(cache["blocks.1.attn.hook_pattern"])
  elseif step % 10 == 5 then    -- a per-call hook that ablates a head
    loss = nn.cross_entropy(model:run_with_hooks(tokens, { ["blocks.1.attn.hook_z"] = function(z)
      return z * T.tensor({ 1, 0, 1, 1 }):view(1, 1, 4, 1) end }), targets)
  else
    loss = nn.cross_entropy(model:forward(tokens), targets)
  end
  opt:zero_grad()
  loss:backward()
  opt:step()
  if step % (opts.every * 10) == 0 then model:save(opts.out .. "/soak.safetensors") end
  if step % opts.every == 0 or step == 1 then
    local now, peak = rss()
    local m = T.memory()
    samples[#samples + 1] = { step = step, rss = now, peak_rss = peak, live = m.live, cached = m.cached,
      heap_used = m.heap_used, heap_free = m.heap_free, lua_kb = collectgarbage("count"), loss = loss:item(), seconds = sys.clock() - t0 }
    io.stdout:write(sys.isatty(1) and "\r" or "", string.format("step %d/%d  rss %.1f MB  live %.2f MB  cached %.2f MB  " ..
      "malloc in use %.1f MB, free %.1f MB  lua %.0f kB  loss %.3f%s", step, opts.steps, now / 2 ^ 20, m.live / 2 ^ 20,
      m.cached / 2 ^ 20, m.heap_used / 2 ^ 20, m.heap_free / 2 ^ 20, collectgarbage("count"), loss:item(),
      sys.isatty(1) and "" or "\n"))
    io.stdout:flush()
  end
end
print()

-- flat after warm-up: the largest resident size of the last 90% against the first sample
-- after 10% of the steps
local warm
for _, s in ipairs(samples) do if not warm and s.step >= opts.steps // 10 then warm = s end end
local top, top_live = 0, 0
for _, s in ipairs(samples) do
  if s.step >= warm.step then top = math.max(top, s.rss); top_live = math.max(top_live, s.live) end
end
local growth = top - warm.rss
local flat = growth <= 0.02 * warm.rss + 2 ^ 20
print(string.format("after warm-up (step %d): rss %.1f MB, at most %.1f MB later (growth %.2f MB); " ..
  "tensor bytes live at most %.2f MB; %d steps in %.0f s", warm.step, warm.rss / 2 ^ 20, top / 2 ^ 20,
  growth / 2 ^ 20, top_live / 2 ^ 20, opts.steps, sys.clock() - t0))
print(flat and "memory is flat (growth within 2% + 1 MB of the warmed-up size)" or "MEMORY GREW")
json.write(opts.out .. "/soak.json", { steps = opts.steps, samples = samples, warm_step = warm.step,
  warm_rss = warm.rss, max_rss_after_warmup = top, growth_bytes = growth, flat = flat })
os.exit(flat and 0 or 1)
