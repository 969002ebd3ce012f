-- The classifiers of the hierarchical-filtering experiments and their training loop.
--
-- The paper's model: a bidirectional encoder, one head per layer, ReLU MLPs, fixed sinusoidal
-- positions, post-LN blocks (LayerNorm after each residual add, no final LN). Root task: the
-- final states of all 2^l positions flattened into one linear layer (q classes). Masked leaf:
-- a per-position linear readout onto the q symbols (the mask token is input only).
--
--   local HM = require "hierarchical.model"
--   local clf = HM.new{ task = "root"|"mlm", q, depth, n_layers, d_model, d_mlp }
--   clf:logits(tokens)        root: [B, q]; mlm: [B, 2^l, q]
--   clf.model                 the milua transformer (hooks, caches)
--   clf.params                every trained tensor (the readout's included)
--   clf.arch                  "post-LN" or "pre-LN" (see below)
--   HM.attach(model, path)    a classifier around a model loaded from a checkpoint
--   HM.train(clf, o) -> {losses, evals, seconds, steps}: Adam over epochs of shuffled data
--   HM.probs(clf, tokens [, positions]) -> [n, q] softmax probabilities (no grad, in chunks)
--   HM.eval_steps(steps) -> the steps at which training curves are measured
--   HM.quick(opts, spec, values) -> the --quick settings for the flags left at their defaults
--
-- Post-LN and trained readouts come from nn.transformer's ln_position = "post" and
-- readout = "flatten". Where the library does not have them yet, the same classifier is built
-- on the pre-LN encoder (ln_final on the last states) with the flatten readout computed here
-- from the final residual stream; clf.arch says which one ran, and the scripts report it.
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local train = require "milua.train"

local M = {}

local function post_ln_available()
  local ok = pcall(nn.transformer, { n_layers = 1, d_model = 4, n_heads = 1, d_vocab = 2, n_ctx = 2,
    normalization = "LN", ln_position = "post", readout = "flatten", d_out = 2 })
  return ok
end
M.post_ln = post_ln_available()

local Clf = {}
Clf.__index = Clf

function Clf:logits(tokens)
  if self.task == "mlm" or self.native then return self.model:forward(tokens) end
  local B = tokens:shape()[1]
  local h = self.model:forward(tokens, { return_type = "resid" })
  return nn.linear(h:reshape(B, self.L * self.d_model), self.W, self.b)
end

-- saves the model with the Lua-side readout (if any) as extra tensors
function Clf:save(path, extra, meta)
  extra = extra or {}
  if self.W then extra["readout.W"], extra["readout.b"] = self.W, self.b end
  return self.model:save(path, extra, meta)
end

local function wrap(model, task, W, b)
  local c = model.cfg
  local self = setmetatable({ model = model, task = task, L = c.n_ctx, d_model = c.d_model, W = W, b = b,
    native = W == nil and task == "root", params = {} }, Clf)
  for k, v in pairs(model.params) do self.params[k] = v end
  if W then self.params["readout.W"], self.params["readout.b"] = W, b end
  self.arch = c.ln_position == "post" and "post-LN" or "pre-LN"
  return self
end

--- HM.new{task, q, depth, n_layers, d_model, d_mlp}
function M.new(o)
  local L = 1 << o.depth
  local cfg = { n_layers = o.n_layers, d_model = o.d_model, n_heads = 1, d_mlp = o.d_mlp, n_ctx = L,
    act_fn = "relu", normalization = "LN", causal = false, positional = "sinusoidal" }
  if o.task == "mlm" then
    cfg.d_vocab, cfg.d_vocab_out = o.q + 1, o.q
    if M.post_ln then cfg.ln_position = "post" end
    return wrap(nn.transformer(cfg), "mlm")
  end
  cfg.d_vocab = o.q
  if M.post_ln then
    cfg.ln_position, cfg.readout, cfg.d_out = "post", "flatten", o.q
    return wrap(nn.transformer(cfg), "root")
  end
  cfg.d_vocab_out = 1   -- the unembedding is unused: the readout reads the flattened states
  local W = (T.randn(L * o.d_model, o.q) * 0.02):requires_grad(true)
  local b = T.zeros(o.q):requires_grad(true)
  return wrap(nn.transformer(cfg), "root", W, b)
end

--- HM.attach(model, path, task): the classifier around a model nn.load gave back
function M.attach(model, path, task)
  if getmetatable(model) == Clf then return model end          -- trained in this run
  if task == "mlm" or model.cfg.readout == "flatten" then return wrap(model, task) end
  local tensors = T.load(path)
  if not tensors["readout.W"] then error("hierarchical.model: " .. path .. " has no readout.W", 2) end
  return wrap(model, task, tensors["readout.W"]:requires_grad(true), tensors["readout.b"]:requires_grad(true))
end

--- HM.probs(clf, tokens [, positions]): softmax probabilities [n, q], in chunks, no grad
function M.probs(clf, tokens, positions)
  local n = tokens:shape()[1]
  local chunk = 1000
  local parts = {}
  T.no_grad(function()
    for i = 1, n, chunk do
      local m = math.min(chunk, n - i + 1)
      local lg = clf:logits(tokens:narrow(1, i, m))
      if positions then
        local pos = positions:narrow(1, i, m):reshape(m, 1, 1):expand(m, 1, lg:shape()[3])
        lg = lg:gather(2, pos):reshape(m, lg:shape()[3])
      end
      parts[#parts + 1] = lg:softmax(2)
    end
  end)
  return T.cat(parts, 1)
end

--- HM.train(clf, o): o = {tokens [P, L], targets [P] (root) or nil (mlm: one leaf masked per
--- row, fresh in every batch), mask_id, epochs, batch, lr, eval_at = {steps}, eval = fn(step),
--- quiet, label}. Each epoch visits the P rows once in a fresh random order (the last partial
--- batch dropped, as the paper's DataLoader(drop_last=True)).
function M.train(clf, o)
  local P = o.tokens:shape()[1]
  local per_epoch = P // o.batch
  local steps = o.steps or per_epoch * o.epochs
  local order
  local eval_at = {}
  for _, s in ipairs(o.eval_at or {}) do eval_at[s] = true end
  local H = o.mlm and require "milua.data.hierarchy"
  local function batch(step)
    local i = (step - 1) % per_epoch
    if i == 0 then                 -- a fresh permutation: the order of P uniform draws
      local _, idx = T.rand(P):sort(1)
      order = idx:int()
    end
    local idx = order:narrow(1, i * o.batch + 1, o.batch)
    local tok = o.tokens:index_select(1, idx)
    if o.mlm then
      local masked, pos, tgt = H.mask_one(tok, o.mlm)
      local L = tok:shape()[2]
      local at = T.arange(1, L + 1):unsqueeze(1):eq(pos:unsqueeze(2))
      return masked, T.where(at:gt(0), tgt:unsqueeze(2):expand(o.batch, L), 1), at
    end
    return tok, o.targets:index_select(1, idx)
  end
  local result = train.run {
    model = clf,
    params = clf.params,
    optimizer = optim.adam(clf.params, { lr = o.lr }),
    steps = steps,
    lr = o.lr,
    batch = batch,
    loss = function(c, tok, tgt, mask)
      if mask then return nn.cross_entropy(c:logits(tok), tgt, mask) end
      return nn.cross_entropy(c:logits(tok), tgt)
    end,
    on_step = function(step)
      if eval_at[step] and o.eval then o.eval(step) end
    end,
    quiet = o.quiet,
    label = o.label,
    log_every = math.max(1, steps // 10),
  }
  return result
end

--- HM.quick(opts, spec, values): the --quick settings, for every flag left at its default
function M.quick(opts, spec, values)
  for _, e in ipairs(spec) do
    local v = values[e[1]]
    if v ~= nil and opts[e[1]] == e[2] then opts[e[1]] = v end
  end
end

--- the evaluation points: 1/80 and 1/40 of training, then every 1/20 (22 in all)
function M.eval_steps(steps)
  local out, seen = {}, {}
  for _, f in ipairs({ 1 / 80, 1 / 40 }) do
    local s = math.max(1, math.floor(steps * f + 0.5))
    if not seen[s] then out[#out + 1], seen[s] = s, true end
  end
  for t = 1, 20 do
    local s = math.max(1, math.floor(steps * t / 20 + 0.5))
    if not seen[s] then out[#out + 1], seen[s] = s, true end
  end
  table.sort(out)
  return out
end

return M
