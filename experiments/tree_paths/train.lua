-- The tree-paths model and its training (Brinkmann et al. 2024, CPU-sized).
--
--   local TR = require "tree_paths.train"
--   TR.recipe(opts) -> recipe        a plain table of everything that decides the weights
--   TR.key(recipe, seed) -> hex      names the run's resumable checkpoint
--   TR.data(recipe) -> {train = set, test = set}   drawn from the global generator
--   TR.model(recipe) -> model        a fresh causal decoder (global generator)
--   TR.fit(model, data, recipe, o) -> log {epochs = {{step, acc, loss}...}, steps}
--   TR.accuracy(model, set) -> acc, acc_by_path_length {[p] = acc}, solved {bool per row}
--
-- A set is a milua.data.tree_paths dataset (tokens, targets, mask, eval_mask, examples).
-- Accuracy is the authors' is_model_correct: teacher-forced argmax at every position from the
-- root to the goal (the path nodes and the stop) must equal the target.
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local optim = require "milua.optim"
local tp = require "milua.data.tree_paths"

local M = {}

--- TR.recipe(opts): the model and schedule for opts.nodes, opts.epochs, opts.examples, opts.lr,
--- opts.steps (overrides epochs), opts.schedule ("onecycle" or "cosine"), opts.quick (a small model and data set)
function M.recipe(opts)
  local n = opts.nodes
  local L = tp.layout(n)
  local r = {
    nodes = n,
    model = { n_layers = 4, d_model = 64, n_heads = 1, d_head = 64, d_mlp = 256, d_vocab = tp.n_vocab(n),
      n_ctx = L.n_ctx, act_fn = "gelu", normalization = "LN", causal = true },
    examples = opts.examples, test_fraction = 0.1, batch = 64, epochs = opts.epochs,
    lr = opts.lr, betas = { 0.9, 0.99 }, weight_decay = 0.01, warmup_fraction = 0.05,
    schedule = opts.schedule or "onecycle",
  }
  if r.schedule ~= "onecycle" and r.schedule ~= "cosine" then
    error(string.format("tree_paths: schedule must be \"onecycle\" or \"cosine\", got %q", tostring(r.schedule)), 2)
  end
  if opts.quick then
    r.model.d_model, r.model.d_head, r.model.d_mlp = 32, 32, 128
    r.examples, r.epochs = math.min(r.examples, 4000), math.min(r.epochs, 8)
  end
  local n_train = r.examples - math.floor(r.examples * r.test_fraction + 0.5)
  r.steps = opts.steps or (n_train // r.batch) * r.epochs
  return r
end

--- TR.key(recipe, seed) -> a short hex name for the pair (FNV-1a of its JSON), for file names
function M.key(r, seed)
  local s = require("milua.json").encode { recipe = r, seed = seed }
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return string.format("%08x", h)
end

function M.data(r)
  local all = tp.dataset(r.examples, r.nodes)
  local n_test = math.floor(r.examples * r.test_fraction + 0.5)
  local n_train = r.examples - n_test
  local function part(from, count)
    local idx = T.arange(from, from + count):int()
    local ex, pl = {}, {}
    for i = 1, count do ex[i], pl[i] = all.examples[from + i - 1], all.path_length[from + i - 1] end
    return { tokens = all.tokens:index_select(1, idx), targets = all.targets:index_select(1, idx),
      mask = all.mask:index_select(1, idx), eval_mask = all.eval_mask:index_select(1, idx),
      examples = ex, path_length = pl, n_nodes = r.nodes }
  end
  return { train = part(1, n_train), test = part(n_train + 1, n_test) }
end

function M.model(r)
  return nn.transformer(r.model)
end

-- rows of a set, in chunks, through fn(model, tokens) -> tensor [rows, ...]; concatenated
local function chunked(set, size, fn)
  local n = set.tokens:shape()[1]
  local out = {}
  for from = 1, n, size do
    local k = math.min(size, n - from + 1)
    out[#out + 1] = fn(set.tokens:narrow(1, from, k), from, k)
  end
  return T.cat(out, 1)
end

function M.accuracy(model, set)
  local wrong = T.no_grad(function()
    return chunked(set, 512, function(tok, from, k)
      local pred = model:forward(tok):argmax(3)
      return (pred:ne(set.targets:narrow(1, from, k)):float() * set.eval_mask:narrow(1, from, k)):sum(2)
    end)
  end):totable()
  local solved, hit, cnt = {}, {}, {}
  local total = 0
  for i, w in ipairs(wrong) do
    local p = set.path_length[i]
    solved[i] = w == 0
    cnt[p] = (cnt[p] or 0) + 1
    hit[p] = (hit[p] or 0) + (solved[i] and 1 or 0)
    if solved[i] then total = total + 1 end
  end
  local by = {}
  for p = 1, set.n_nodes - 1 do by[p] = cnt[p] and hit[p] / cnt[p] or 0 / 0 end
  return total / #wrong, by, solved
end

--- TR.fit: AdamW on shuffled epochs of the training set, batch r.batch; the schedule is
--- PyTorch's OneCycleLR with the rise over r.warmup_fraction of the steps (the calibration's:
--- the rate from lr/25 up to lr and down to lr/25e4, beta1 from 0.95 to 0.85 and back), or
--- (r.schedule "cosine") a linear warm-up over that fraction then cosine decay to 0; test
--- accuracy after every epoch. o.checkpoint: a file to save the run to every epoch and resume from
function M.fit(model, data, r, o)
  o = o or {}
  local set = data.train
  local n = set.tokens:shape()[1]
  local per_epoch = n // r.batch
  local order
  local log = { epochs = {} }
  local sched
  if r.schedule == "onecycle" then
    sched = optim.one_cycle { lr = r.lr, total = r.steps, pct_start = r.warmup_fraction }
  else
    sched = optim.schedule { lr = r.lr, warmup = math.floor(r.warmup_fraction * r.steps + 0.5), total = r.steps,
      decay = "cosine", min_lr = 0 }
  end
  local res = train.run {
    model = model, steps = r.steps, schedule = sched, betas = r.betas, weight_decay = r.weight_decay,
    quiet = o.quiet, log_every = per_epoch, label = o.label,
    checkpoint = o.checkpoint, checkpoint_every = o.checkpoint and per_epoch, resume = o.checkpoint and true,
    batch = function(step)
      local e = (step - 1) % per_epoch
      if e == 0 then
        order = {}
        for i = 1, n do order[i] = i end
        for i = n, 2, -1 do
          local j = T.random(1, i)
          order[i], order[j] = order[j], order[i]
        end
      end
      local idx = {}
      for i = 1, r.batch do idx[i] = order[e * r.batch + i] end
      local it = T.tensor(idx, "int32")
      return set.tokens:index_select(1, it), set.targets:index_select(1, it), set.mask:index_select(1, it)
    end,
    eval_every = per_epoch,
    eval = function(m, step)
      local acc = M.accuracy(m, data.test)
      log.epochs[#log.epochs + 1] = { step = step, acc = acc }
      return { acc = acc }
    end,
  }
  log.steps = r.steps
  log.final_loss = res.losses[#res.losses]
  return log
end

return M
