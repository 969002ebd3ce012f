-- The regression model of Matsumoto et al.: a bidirectional encoder whose [CLS] state goes
-- through BERT's pooler and a linear head, y = tanh(h_1 W_pool + b_pool) W + b (milua.nn's
-- readout = "cls_pooler"), trained with MSE on a standardised target (the paper min-max
-- normalises; standardising keeps the same shape of loss).
--
--   local R = require "intermediate_values.regressor"
--   local reg = R.new(cfg)                   -- cfg: nn.transformer config (ln_position pre or post)
--   R.wrap(model) -> the same around a loaded cls_pooler model
--   reg:predict(tokens [, hooks]) -> [B] standardised predictions (autograd tape)
--   R.fit(reg, set, {steps, batch, lr, log_every, eval_every, eval}) -> losses, standardisation {mean, std}, evals
--   R.scale(set) -> {mean, std}
--   R.values(reg, tokens, scale [, hooks]) -> Lua list of predictions in answer units
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"

local M = {}

local Reg = {}
Reg.__index = Reg

--- R.new(cfg) -> regressor {model, params}: cfg is an nn.transformer config; the readout is
--- the model's own [CLS] pooler (readout = "cls_pooler", d_out = 1)
function M.new(cfg)
  local c = {}
  for k, v in pairs(cfg) do c[k] = v end
  c.readout, c.d_out = "cls_pooler", 1
  return M.wrap(nn.transformer(c))
end

--- R.wrap(model) -> regressor around a model with the cls_pooler readout (a loaded checkpoint)
function M.wrap(model)
  if model.cfg.readout ~= "cls_pooler" or model.cfg.d_out ~= 1 then
    error(string.format("regressor: expected a model with readout = \"cls_pooler\" and d_out = 1, got readout %s, d_out %s",
      tostring(model.cfg.readout), tostring(model.cfg.d_out)), 2)
  end
  return setmetatable({ model = model, params = model.params }, Reg)
end

--- reg:predict(tokens [, hooks]) -> [B] standardised predictions
function Reg:predict(tokens, hooks)
  local m = self.model
  local out = hooks and m:run_with_hooks(tokens, hooks) or m:forward(tokens)
  return out:view(-1)
end

--- R.values(reg, tokens, scale [, hooks]) -> Lua list in answer units (scale = {mean, std})
function M.values(reg, tokens, scale, hooks)
  return T.no_grad(function()
    local out = {}
    local n = tokens:shape()[1]
    for i = 1, n, 1000 do
      local rows = tokens:narrow(1, i, math.min(1000, n - i + 1))
      local h = hooks and hooks(i, rows:shape()[1]) or nil
      for _, v in ipairs(reg:predict(rows, h):totable()) do out[#out + 1] = v * scale.std + scale.mean end
    end
    return out
  end)
end

--- R.fit(reg, set, {steps, batch, lr, warmup, decay, min_lr, log_every, quiet, eval_every, eval = fn(step, scale) -> {name = number}}) -> losses, scale {mean, std}
-- Epochs over the set in a fresh random order each time (the global generator); Adam with
-- no weight decay (the paper's BertAdam); o.warmup, o.decay, o.min_lr as milua.train (the
-- paper keeps the rate constant; a cosine decay reaches a precise regression in fewer steps).
--- R.scale(set) -> {mean, std} of the set's exact values (the standardisation of the target)
function M.scale(set)
  local mean, sq = 0, 0
  local v = set.target:totable()
  for i = 1, #v do mean = mean + v[i] end
  mean = mean / #v
  for i = 1, #v do sq = sq + (v[i] - mean) ^ 2 end
  return { mean = mean, std = math.sqrt(sq / #v) }
end

function M.fit(reg, set, o)
  local n = set.n
  local sc = M.scale(set)
  local mean, std = sc.mean, sc.std
  local z = (set.target - mean) / std
  local order, at = {}, n + 1
  local function next_batch()
    local idx = {}
    for k = 1, o.batch do
      if at > n then                                   -- a new epoch: Fisher-Yates
        for i = 1, n do order[i] = i end
        for i = n, 2, -1 do local j = T.random(1, i); order[i], order[j] = order[j], order[i] end
        at = 1
      end
      idx[k] = order[at]
      at = at + 1
    end
    return set.tokens:index_select(1, idx), z:index_select(1, idx)
  end
  local result = train.run {
    model = reg.model, params = reg.params, steps = o.steps, lr = o.lr, weight_decay = 0,
    warmup = o.warmup, decay = o.decay, min_lr = o.min_lr,
    batch = function() return next_batch() end,
    loss = function(_, tokens, targets) return nn.mse(reg:predict(tokens), targets) end,
    log_every = o.log_every, quiet = o.quiet, label = o.label,
    eval_every = o.eval_every, eval = o.eval and function(_, step) return o.eval(step, { mean = mean, std = std }) end,
  }
  return result.losses, { mean = mean, std = std }, result.evals
end

return M
