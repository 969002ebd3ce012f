-- The regression model of Matsumoto et al.: a bidirectional encoder whose [CLS] state goes
-- through BERT's pooler and a linear head, y = tanh(h_1 W_pool + b_pool) W + b, trained with
-- MSE on a standardised target (the paper min-max normalises; standardising keeps the same
-- shape of loss).
--
-- When the encoder offers readout = "cls_pooler" (parameters pooler.W, pooler.b, readout.W,
-- readout.b inside model.params) the readout is the model's own; otherwise it is computed here
-- from the final normalised residual stream (model:forward(..., {return_type = "resid"})) with
-- parameters of the same names kept beside the model and saved in the same checkpoint.
--
--   local R = require "intermediate_values.regressor"
--   local reg = R.new(cfg)                   -- cfg: nn.transformer config + ln_position
--   reg:predict(tokens [, hooks]) -> [B] standardised predictions (autograd tape)
--   R.fit(reg, set, {steps, batch, lr, log_every, eval_every, eval}) -> losses, standardisation {mean, std}
--   R.scale(set) -> {mean, std}
--   R.values(reg, tokens, scale [, hooks]) -> Lua list of predictions in answer units
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"

local M = {}

local Reg = {}
Reg.__index = Reg

local HEAD = { "pooler.W", "pooler.b", "readout.W", "readout.b" }

-- does this build of milua.nn take readout = "cls_pooler"?
local function native_pooler()
  local rng = T.get_rng_state()                     -- probing must not move the generator
  local ok, m = pcall(nn.transformer, { n_layers = 1, d_model = 4, n_heads = 1, d_head = 4, d_mlp = 0, d_vocab = 3,
    n_ctx = 2, readout = "cls_pooler", d_out = 1 })
  T.set_rng_state(rng)
  return ok and m.params["pooler.W"] ~= nil
end

local function init_head(d, scale)
  return { ["pooler.W"] = T.randn(d, d) * scale, ["pooler.b"] = T.zeros(d),
    ["readout.W"] = T.randn(d, 1) * scale, ["readout.b"] = T.zeros(1) }
end

--- R.new(cfg) -> regressor {model, head (nil with the native pooler), params, native}
function M.new(cfg)
  local c = {}
  for k, v in pairs(cfg) do c[k] = v end
  local native = native_pooler()
  if native then
    c.readout, c.d_out = "cls_pooler", 1
  elseif c.ln_position and c.ln_position ~= "pre" then
    error("regressor: this milua.nn has no ln_position option; the post-LN encoder is not available", 2)
  else
    c.ln_position = nil
  end
  local model = nn.transformer(c)
  local self = setmetatable({ model = model, native = native }, Reg)
  if not native then
    self.head = init_head(c.d_model, model.cfg.init_range or 0.02)
    for _, n in ipairs(HEAD) do self.head[n]:requires_grad(true) end
  end
  self:_collect()
  return self
end

function Reg:_collect()
  local p = {}
  for _, n in ipairs(self.model.param_names) do
    -- the unembedding is unused by a regression readout computed here
    if self.native or not n:match("^unembed%.") then p[n] = self.model.params[n] end
  end
  if self.head then for _, n in ipairs(HEAD) do p[n] = self.head[n] end end
  self.params = p
end

--- R.wrap(model, tensors): a regressor around a loaded model (tensors: the checkpoint's extras)
function M.wrap(model, tensors)
  local self = setmetatable({ model = model, native = model.params["pooler.W"] ~= nil }, Reg)
  if not self.native then
    self.head = {}
    for _, n in ipairs(HEAD) do
      if not tensors[n] then error("regressor: the checkpoint lacks '" .. n .. "'", 2) end
      self.head[n] = tensors[n]
    end
  end
  self:_collect()
  return self
end

--- reg:save(path, extra, meta): the model's checkpoint with the readout's tensors
function Reg:save(path, extra, meta)
  local t = {}
  for k, v in pairs(extra or {}) do t[k] = v end
  if self.head then for _, n in ipairs(HEAD) do t[n] = self.head[n]:detach() end end
  return self.model:save(path, t, meta)
end

--- reg:predict(tokens [, hooks]) -> [B]
function Reg:predict(tokens, hooks)
  local m = self.model
  if self.native then
    local out = hooks and m:run_with_hooks(tokens, hooks) or m:forward(tokens)
    return out:view(-1)
  end
  local resid = hooks and m:run_with_hooks(tokens, hooks, { return_type = "resid" })
    or m:forward(tokens, { return_type = "resid" })
  local h = resid:select(2, 1)                                        -- [B, D]: the [CLS] state
  local pooled = nn.linear(h, self.head["pooler.W"], self.head["pooler.b"]):tanh()
  return nn.linear(pooled, self.head["readout.W"], self.head["readout.b"]):view(-1)
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
  return result.losses, { mean = mean, std = std }
end

return M
