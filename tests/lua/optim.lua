-- Optimizers against NumPy re-implementations of PyTorch's update rules,
-- gradient clipping, schedules and exact state save/restore.
local T = require "milua.tensor"
local optim = require "milua.optim"
local json = require "milua.json"
local test = require "milua.test"

local function numpy(script)
  local f = assert(io.popen("/usr/bin/python3 -c '" .. script .. "'"))
  local out = f:read("a")
  f:close()
  return json.decode(out)
end

-- loss = sum(c * p^2) so the gradient is 2 c p; both sides run 6 steps
local p0 = { 0.5, -1.25, 2.0, 0.001, -0.3 }
local c = { 1.0, 0.5, 2.0, 3.0, -0.7 }
local function run(make, steps)
  local p = T.tensor(p0):requires_grad(true)
  local opt = make({ w = p })
  local cc = T.tensor(c)
  for _ = 1, steps do
    opt:zero_grad()
    ;(cc * p * p):sum():backward()
    opt:step()
  end
  return p:detach():totable(), opt
end

local np_adamw = numpy([[
import numpy as np, json
p = np.array(]] .. json.encode(p0) .. [[, dtype=np.float32); c = np.array(]] .. json.encode(c) .. [[, dtype=np.float32)
m = np.zeros_like(p); v = np.zeros_like(p)
lr, b1, b2, eps, wd = np.float32(0.01), np.float32(0.9), np.float32(0.98), np.float32(1e-8), np.float32(0.1)
for t in range(1, 7):
    g = (2 * c * p).astype(np.float32)
    p = p * np.float32(1 - 0.01 * 0.1)
    m = m + (g - m) * np.float32(1 - 0.9)
    v = v * b2 + np.float32(1 - 0.98) * g * g
    bc1 = 1 - 0.9 ** t; bc2 = 1 - 0.98 ** t
    denom = np.sqrt(v) / np.float32(np.sqrt(bc2)) + eps
    p = p - np.float32(0.01 / bc1) * (m / denom)
print(json.dumps([float(x) for x in p]))
]])
local got = run(function(ps) return optim.adamw(ps, { lr = 0.01, betas = { 0.9, 0.98 }, eps = 1e-8, weight_decay = 0.1 }) end, 6)
test.close(got, np_adamw, 1e-6, "AdamW matches PyTorch's update rule over 6 steps (NumPy)")

-- against AdamW in float64 (Lua numbers), lr 0.1 and the default betas, one parameter near
-- zero: float32 arithmetic stays within a few float32 ulps of the exact update only when the
-- constants 1 - beta are formed in double (in float, 1 - 0.999 is 0.00099998713)
do
  local q0, cq = { 0.5, -1.25, 1e-4, -3e-5, 0.02 }, { 1.0, 0.5, 2.0, 3.0, -0.7 }
  local p64, m64, v64 = {}, {}, {}
  for i = 1, #q0 do p64[i], m64[i], v64[i] = q0[i], 0, 0 end
  local lr, b1, b2, eps, wd = 0.1, 0.9, 0.999, 1e-8, 0.01
  for t = 1, 5 do
    for i = 1, #q0 do
      local g = 2 * cq[i] * p64[i]
      p64[i] = p64[i] * (1 - lr * wd)
      m64[i] = b1 * m64[i] + (1 - b1) * g
      v64[i] = b2 * v64[i] + (1 - b2) * g * g
      local mh, vh = m64[i] / (1 - b1 ^ t), v64[i] / (1 - b2 ^ t)
      p64[i] = p64[i] - lr * mh / (math.sqrt(vh) + eps)
    end
  end
  local q = T.tensor(q0):requires_grad(true)
  local opt = optim.adamw({ w = q }, { lr = lr, betas = { b1, b2 }, eps = eps, weight_decay = wd })
  local cc = T.tensor(cq)
  for _ = 1, 5 do
    opt:zero_grad()
    ;(cc * q * q):sum():backward()
    opt:step()
  end
  local worst = 0
  for i, v in ipairs(q:detach():totable()) do worst = math.max(worst, math.abs(v - p64[i])) end
  test.ok(worst < 5e-7, string.format("AdamW after 5 steps at lr 0.1 is within 5e-7 of float64 (worst %.3g)", worst))
end

local np_sgd = numpy([[
import numpy as np, json
p = np.array(]] .. json.encode(p0) .. [[, dtype=np.float32); c = np.array(]] .. json.encode(c) .. [[, dtype=np.float32)
buf = None
for t in range(6):
    g = (2 * c * p).astype(np.float32) + np.float32(0.01) * p
    buf = g.copy() if buf is None else np.float32(0.9) * buf + g
    p = p - np.float32(0.05) * buf
print(json.dumps([float(x) for x in p]))
]])
got = run(function(ps) return optim.sgd(ps, { lr = 0.05, momentum = 0.9, weight_decay = 0.01 }) end, 6)
test.close(got, np_sgd, 1e-6, "SGD with momentum and weight decay matches (NumPy)")
got = run(function(ps) return optim.sgd(ps, { lr = 0.1 }) end, 1)
local by_hand = {}
for i = 1, #p0 do by_hand[i] = p0[i] - 0.1 * 2 * c[i] * p0[i] end
test.close(got, by_hand, 1e-6, "plain SGD: p - lr * grad, by hand")

-- parameters without gradients are left alone
local a, b = T.ones(3):requires_grad(true), T.ones(2):requires_grad(true)
local opt = optim.adamw({ a = a, b = b }, { lr = 0.1 })
opt:zero_grad(); (a * 2):sum():backward(); opt:step()
test.is(b:totable(), { 1, 1 }, "a parameter with no gradient is not updated (not even decayed)")
test.ok(a[1]:item() < 1, "a parameter with a gradient is updated")

-- clipping by global norm (PyTorch's rule: scale by max / (norm + 1e-6) when above)
local x, y = T.zeros(2):requires_grad(true), T.zeros(1):requires_grad(true)
x.grad = T.tensor { 3, 0 }; y.grad = T.tensor { 4 }
local norm = optim.clip_grad_norm({ x = x, y = y }, 1.0)
test.close(norm, 5, 1e-6, "clip_grad_norm returns the total norm before clipping")
test.close(x.grad, T.tensor { 0.6, 0 }, 1e-5, "gradients are scaled to the max norm")
test.close(y.grad, T.tensor { 0.8 }, 1e-5, "every parameter shares one scale")
norm = optim.clip_grad_norm({ x = x, y = y }, 10)
test.close(x.grad, T.tensor { 0.6, 0 }, 1e-5, "gradients under the max norm are untouched")

-- schedules
local s = optim.schedule { lr = 1.0, warmup = 10, total = 110, decay = "cosine", min_lr = 0.1 }
test.close(s(5), 0.5, 1e-12, "linear warm-up")
test.close(s(10), 1.0, 1e-12, "peak at the end of warm-up")
test.close(s(60), 0.1 + 0.9 * 0.5, 1e-12, "cosine midpoint")
test.close(s(110), 0.1, 1e-12, "cosine ends at min_lr")
local lin = optim.schedule { lr = 2.0, total = 100, decay = "linear" }
test.close(lin(50), 1.0, 1e-12, "linear decay midpoint")
test.throws(function() optim.schedule { lr = 1, decay = "exp", total = 5 } end, "decay must be", "unknown decay is an error")

-- one-cycle against PyTorch's OneCycleLR: the rate and Adam's beta1 at every step, for four
-- shapes of the cycle (the default pct_start, a short 5% rise that ends between steps, and a
-- rise shorter than one step, where OneCycleLR starts partway down)
for _, case in ipairs({ { total = 40, pct = 0.3, lr = 0.01 }, { total = 337, pct = 0.05, lr = 1e-3 },
  { total = 5, pct = 0.05, lr = 1e-3 } }) do
  local want = numpy(string.format([[
import torch, json
p = torch.nn.Parameter(torch.zeros(1))
o = torch.optim.AdamW([p], lr=%g, betas=(0.9, 0.99))
s = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=%g, total_steps=%d, pct_start=%g)
lr, b1 = [], []
for i in range(%d):
    lr.append(o.param_groups[0]["lr"]); b1.append(o.param_groups[0]["betas"][0])
    o.step(); s.step()
print(json.dumps({"lr": lr, "b1": b1}))
]], case.lr, case.lr, case.total, case.pct, case.total))
  local oc = optim.one_cycle { lr = case.lr, total = case.total, pct_start = case.pct }
  local lr, b1 = {}, {}
  for step = 1, case.total do lr[step], b1[step] = oc(step) end
  test.close(lr, want.lr, 1e-9 * case.lr, string.format("one_cycle: the rate at each of %d steps is OneCycleLR's", case.total))
  test.close(b1, want.b1, 1e-9, string.format("one_cycle: beta1 at each of %d steps is OneCycleLR's", case.total))
end
-- a rise that ends exactly at the first step (OneCycleLR divides by zero there): the peak at
-- step 1, then the cosine down to lr/25e4 at the last step, by hand
do
  local oc = optim.one_cycle { lr = 1e-3, total = 10, pct_start = 0.1 }
  local lr1, b1 = oc(1)
  test.close({ lr1, b1 }, { 1e-3, 0.85 }, 1e-15, "one_cycle: a rise ending at step 1 starts at the peak")
  local lr5 = oc(5)   -- 4/9 of the way down
  test.close(lr5, 4e-9 + (1e-3 - 4e-9) / 2 * (math.cos(math.pi * 4 / 9) + 1), 1e-15, "one_cycle: the cosine fall, by hand")
  test.close(oc(10), 4e-9, 1e-18, "one_cycle: the last step is lr/25/1e4")
end
test.throws(function() optim.one_cycle { lr = 1e-3, total = 10, pct_start = 1.5 } end, "pct_start must be a fraction",
  "one_cycle: pct_start outside (0, 1) is an error")
test.throws(function() optim.one_cycle { lr = 1e-3 } end, "total must be an integer", "one_cycle: total is required")
test.throws(function() optim.one_cycle { lr = 1e-3, total = 100, warmup = 5 } end, "unknown option 'warmup'",
  "one_cycle: an unknown option is named")

-- state save/restore resumes exactly
local function trajectory(split)
  T.seed(3)
  local w = T.randn(4, 3):requires_grad(true)
  local target = T.randn(4, 3)
  local o = optim.adamw({ w = w }, { lr = 0.05 })
  local losses = {}
  for i = 1, 8 do
    if split and i == 5 then
      local path = os.tmpname()
      o:save(path)
      local wv = w:detach():clone()
      w = wv:requires_grad(true)
      o = optim.adamw({ w = w }, { lr = 0.05 })
      o:load(path)
      os.remove(path)
    end
    o:zero_grad()
    local l = ((w - target) * (w - target)):sum()
    l:backward(); o:step()
    losses[i] = l:item()
  end
  return losses
end
test.is(trajectory(true), trajectory(false), "a save and restore of the optimizer resumes bit-exactly")

-- errors
test.throws(function() optim.adamw({ w = 3 }) end, "'w' is not a tensor", "non-tensor parameters are named")
test.throws(function() optim.adamw({ w = T.ones(2) }, { lr = 1, beta = 0.9 }) end, "unknown option 'beta'", "unknown options are named")
test.throws(function() optim.sgd({}) end, "no parameters", "an empty parameter table is an error")
test.throws(function() optim.adamw({ w = T.ones(2):int() }) end, "int32", "integer parameters are an error")

test.done()
