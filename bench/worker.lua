-- One benchmark measurement in a fresh process (the thread count is fixed by
-- OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in its environment), printed as JSON.
--   milua bench/worker.lua CONFIG_JSON STEPS [forward | forwards]
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local json = require "milua.json"
local sys = require "milua.sys"

local function status_kb(field)   -- VmHWM (peak resident) or VmRSS (resident now), in KiB
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s+(%d+)"))
end

local c = json.decode(arg[1])
local steps = tonumber(arg[2]) or 20
-- the process before any model exists: interpreter, libraries, OpenBLAS's buffers (warmed by a product)
T.no_grad(function() return T.randn(64, 64):matmul(T.randn(64, 64)) end)
collectgarbage(); collectgarbage()
local base_rss = (status_kb("VmRSS") or 0) * 1024

local B, S = c.batch, c.seq
local cfg = {}
for k, v in pairs(c) do if k ~= "batch" and k ~= "seq" then cfg[k] = v end end
T.seed(0)
local m = nn.transformer(cfg)
local opt = optim.adamw(m.params, { lr = 1e-3, weight_decay = 0.01 })
-- targets and loss by readout, as the reference's bench draws them: a token per position
-- (unembed), a class per sequence (flatten), or regression values (cls_pooler, MSE)
local readout = cfg.readout or "unembed"
local function targets()
  if readout == "unembed" then return T.randint(1, (cfg.d_vocab_out or cfg.d_vocab) + 1, B, S) end
  if readout == "flatten" then return T.randint(1, cfg.d_out + 1, B) end
  return T.randn(B, cfg.d_out)
end
local loss_of = readout == "cls_pooler" and nn.mse or nn.cross_entropy
local data = {}
for i = 1, 8 do data[i] = { T.randint(1, cfg.d_vocab + 1, B, S), targets() } end

-- the median of `steps` timed calls after three warm-up calls: robust to a stray
-- interruption, which matters when two builds are compared to within 2%
local function time_it(fn, n)
  n = n or steps
  for i = 1, 3 do fn(i) end
  local t = {}
  for i = 1, n do
    local t0 = sys.clock()
    fn(i)
    t[i] = sys.clock() - t0
  end
  table.sort(t)
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

if arg[3] == "forwards" then   -- exactly STEPS forwards, for an instruction count under callgrind
  for i = 1, steps do T.no_grad(function() return m:forward(data[(i - 1) % 8 + 1][1]) end) end
  print(json.encode { forwards = steps })
  return
end
if arg[3] == "forward" then   -- forward time only: the hooks-compiled-out comparison
  print(json.encode { forward_ms = 1e3 * time_it(function(i)
    T.no_grad(function() return m:forward(data[(i - 1) % 8 + 1][1]) end)
  end, 3 * steps) })
  return
end

-- memory the backward pass needs: parameters, gradients, two AdamW moments, saved activations
collectgarbage(); collectgarbage()
local base = T.live_bytes()
local d = data[1]
local loss = loss_of(m:forward(d[1]), d[2])
local activations = T.live_bytes() - base
loss:backward(); opt:step(); opt:zero_grad()
loss = nil
collectgarbage(); collectgarbage()
local param_bytes = 0
for _, n in ipairs(m.param_names) do param_bytes = param_bytes + 4 * m.params[n]:numel() end

local train_s = time_it(function(i)
  local dd = data[(i - 1) % 8 + 1]
  local l = loss_of(m:forward(dd[1]), dd[2])
  opt:zero_grad(); l:backward(); opt:step()
  return l:item()
end)
local train_peak = (status_kb("VmHWM") or 0) * 1024   -- before the cache runs, which keep every activation
local fwd_s = time_it(function(i)
  T.no_grad(function() return m:forward(data[(i - 1) % 8 + 1][1]) end)
end, 3 * steps)
local cache_s = time_it(function(i)
  T.no_grad(function() return m:run_with_cache(data[(i - 1) % 8 + 1][1]) end)
end, 3 * steps)
print(json.encode {
  train_ms = train_s * 1e3, forward_ms = fwd_s * 1e3, cache_ms = cache_s * 1e3,
  peak_rss_bytes = train_peak, base_rss_bytes = base_rss,
  needed_bytes = 4 * param_bytes + activations,   -- params + grads + 2 moments + saved activations
  param_bytes = param_bytes, activation_bytes = activations,
})
