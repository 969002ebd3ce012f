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
--   HM.attach(model)          the classifier around a model a checkpoint gave back
--   HM.train(clf, o) -> {losses, evals, seconds, steps}: Adam over epochs of shuffled data
--   HM.probs(clf, tokens [, positions]) -> [n, q] softmax probabilities (no grad, in chunks)
--   HM.eval_steps(steps) -> the steps at which training curves are measured
--   HM.flags(task) -> the flag specs of a script: the grammar's, then `task`'s own, then the model's
--   HM.quick(opts, spec, values) -> the --quick settings for the flags left at their defaults
--   HM.layer_outputs(model) -> hook names of the states after 0..n_layers layers
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local train = require "milua.train"

local M = {}

local Clf = {}
Clf.__index = Clf

function Clf:logits(tokens) return self.model:forward(tokens) end
function Clf:save(path, extra, meta) return self.model:save(path, extra, meta) end

local function wrap(model, task)
  return setmetatable({ model = model, task = task, params = model.params, arch = "post-LN" }, Clf)
end

--- HM.new{task, q, depth, n_layers, d_model, d_mlp}
function M.new(o)
  local cfg = { n_layers = o.n_layers, d_model = o.d_model, n_heads = 1, d_mlp = o.d_mlp, n_ctx = 1 << o.depth,
    act_fn = "relu", normalization = "LN", ln_position = "post", causal = false, positional = "sinusoidal" }
  if o.task == "mlm" then
    cfg.d_vocab, cfg.d_vocab_out = o.q + 1, o.q        -- the mask token is input only
  else
    cfg.d_vocab, cfg.readout, cfg.d_out = o.q, "flatten", o.q
  end
  return wrap(nn.transformer(cfg), o.task)
end

--- HM.attach(model): E:model gives back the classifier it trained, or a model it loaded
function M.attach(model, task)
  if getmetatable(model) == Clf then return model end
  return wrap(model, task)
end

--- HM.layer_outputs(model): the state after 0..n_layers layers (post-LN: each block's output
--- is hook_normalized_resid_post)
function M.layer_outputs(model)
  local names = { "blocks.0.hook_resid_pre" }
  for layer = 0, model.cfg.n_layers - 1 do names[#names + 1] = "blocks." .. layer .. ".hook_normalized_resid_post" end
  return names
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
--- HM.flags(task): both scripts draw the same grammar and train the same encoder; only the data
--- sizes and epochs are their own (`task`, milua.cli specs, kept in its order between the two)
function M.flags(task)
  local spec = {
    { "grammar_seed", 1, "seed of the grammar (independent of --seed, which draws data and weights)" },
    { "q", 4, "symbols" },
    { "depth", 4, "tree depth l (2^l leaves)" },
    { "sigma", 1.0, "grammar noise: softmax(sigma N(0,1)) weights" },
  }
  for _, e in ipairs(task) do spec[#spec + 1] = e end
  for _, e in ipairs({
    { "batch", 64, "batch size" },
    { "lr", 5e-4, "Adam learning rate" },
    { "n_layers", 4, "encoder layers" },
    { "d_model", 64, "model width" },
    { "d_mlp", 256, "MLP width" },
  }) do spec[#spec + 1] = e end
  return spec
end

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
