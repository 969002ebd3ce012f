-- addition.training: the paper's one-layer model and its training, recording what the analysis
-- reads from training (the per-digit loss curves and the exact match per cascade class).
--
--   local training = require "addition.training"
--   training.model{n_digits, d_model, n_heads, d_mlp, init_range}   the paper's 1-layer ReLU model
--   training.train(model, o)            train.run on fresh enriched batches, recording the per-digit
--                                       training loss (and the loss buckets of one digit) per window
--   training.learned_steps(curves, thr) first window end at which each digit's loss is below thr
--   training.restore(t)                 a record read back from a checkpoint: JSON nulls -> NaN
--
-- Conventions (as milua.data.addition): positions are 1-based; for n digits the question is
-- x_(n-1)..x_0 "+" y_(n-1)..y_0 "=" at positions 1..2n+2 and position 2n+1+k (k = 1..n+1)
-- predicts the k-th answer token, A_(n+1-k). "Digit" i below is the paper's: A_i has place
-- value 10^i; answer digits are listed most significant first (A_n .. A_0), as emitted.
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local json = require "milua.json"
local addition = require "milua.data.addition"
local evaluate = require "addition.evaluate"

local M = {}

--- training.model{n_digits = 5, d_model = 120, n_heads = 3, d_mlp = 4 d_model, init_range}
function M.model(o)
  local n, d, h = o.n_digits or 5, o.d_model or 120, o.n_heads or 3
  if d % h ~= 0 then error("training.model: d_model " .. d .. " is not a multiple of n_heads " .. h, 2) end
  return nn.transformer {
    n_layers = 1, d_model = d, n_heads = h, d_head = d // h, d_mlp = o.d_mlp or 4 * d,
    d_vocab = addition.n_vocab, n_ctx = addition.seq_len(n), act_fn = "relu", normalization = "LN",
    causal = true, init_range = o.init_range,
  }
end

-- Per-digit training loss, averaged over windows of `every` steps, from the batches the model
-- trains on (no extra forward pass). For digit `bucket_digit` the loss is also split by the
-- column's situation: BA-only (no carry arrives), UC1 (a carry arrives, the pair is not 9),
-- US9 (a carry arrives at a pair summing to 9, which passes it on).
local function tracker(n, every, bucket_digit)
  local nd = n + 1
  local first = 2 * n + 2                       -- the position predicting A_n
  local col = bucket_digit + 1                  -- the generator's column index (units = 1)
  local bpos = n - bucket_digit + 1             -- index of A_bucket_digit among A_n..A_0
  local tr = { steps = {}, digit = {}, bucket = { BA = {}, UC1 = {}, US9 = {} },
    bucket_n = { BA = {}, UC1 = {}, US9 = {} }, bucket_digit = bucket_digit }
  for k = 1, nd do tr.digit[k] = {} end
  local sum, cnt, bsum, bcnt
  local function reset()
    sum, cnt = {}, 0
    for k = 1, nd do sum[k] = 0 end
    bsum, bcnt = { BA = 0, UC1 = 0, US9 = 0 }, { BA = 0, UC1 = 0, US9 = 0 }
  end
  reset()
  function tr.record(step, logits, targets, batch)
    local nll = T.no_grad(function()
      local lp = logits:narrow(2, first, nd):log_softmax(3)
      return -lp:gather(3, targets:narrow(2, first, nd):unsqueeze(3)):squeeze(3)
    end):totable()
    for b, row in ipairs(nll) do
      for k = 1, nd do sum[k] = sum[k] + row[k] end
      local l = batch.labels[b][col]
      local key = not l.UC1 and "BA" or (l.MS9 and "US9" or "UC1")
      bsum[key] = bsum[key] + row[bpos]
      bcnt[key] = bcnt[key] + 1
    end
    cnt = cnt + #nll
    if step % every == 0 then
      tr.steps[#tr.steps + 1] = step
      for k = 1, nd do tr.digit[k][#tr.steps] = sum[k] / cnt end
      for key, s in pairs(bsum) do
        tr.bucket[key][#tr.steps] = bcnt[key] > 0 and s / bcnt[key] or 0 / 0
        tr.bucket_n[key][#tr.steps] = bcnt[key]
      end
      reset()
    end
  end
  return tr
end

--- training.train(model, o) -> result of train.run plus result.curves (see tracker above) and, with
-- o.class_set, result.class_curve {steps, overall, S0..S5 = {acc per evaluation}, n = {S0..S5 counts}}
-- o: n_digits, steps, batch (64), lr, warmup, min_lr, weight_decay, clip, every (window of the
-- loss curves), bucket_digit (default the middle digit), eval_every, eval_set (uniform
-- questions for a progress line of exact-match accuracy), class_set (uniform questions whose
-- exact match per cascade class is recorded at every evaluation: when S3 falls behind S2 and
-- whether it catches up), eval (a function(model, step) -> table replacing both), quiet,
-- enrich (default true)
function M.train(model, o)
  local n = o.n_digits or 5
  local every = o.every or 50
  local tr = tracker(n, every, o.bucket_digit or n // 2)
  local current
  local function batch()
    current = addition.batch(o.batch or 64, n, { enrich = o.enrich ~= false })
    return current.tokens, current.targets, current.mask
  end
  local step = 0
  local function loss(m, tokens, targets, mask)
    local logits = m:forward(tokens)
    step = step + 1
    tr.record(step, logits, targets, current)
    return nn.cross_entropy(logits, targets, mask)
  end
  local eval = o.eval
  local cc
  if not eval and o.class_set then
    cc = { steps = {}, overall = {}, n = {} }
    for _, c in ipairs(evaluate.classes) do cc[c] = {} end
    eval = function(m, at)
      local e = evaluate.run(m, o.class_set, { generate = false })
      cc.steps[#cc.steps + 1], cc.overall[#cc.overall + 1] = at, e.acc
      for _, c in ipairs(evaluate.classes) do
        local b = e.by_class[c]
        cc[c][#cc[c] + 1], cc.n[c] = b.acc, b.n
      end
      local s2, s3 = e.by_class.S2.acc, e.by_class.S3.acc
      return { acc = e.acc, S2 = s2 or nil, S3 = s3 or nil }
    end
  elseif not eval and o.eval_set then
    eval = function(m) return { acc = evaluate.exact_match(m, o.eval_set) } end
  end
  local r = train.run {
    model = model, batch = batch, loss = loss, steps = o.steps, lr = o.lr or 5e-4,
    warmup = o.warmup or 100, decay = o.decay or "cosine", min_lr = o.min_lr or 0,
    weight_decay = o.weight_decay or 0.1, betas = { 0.9, 0.98 }, clip = o.clip or 1.0,
    eval = eval, eval_every = o.eval_every, quiet = o.quiet, log_every = o.log_every,
    label = "addition",
  }
  r.curves = tr
  r.class_curve = cc
  return r
end

--- training.learned_steps(curves, threshold) -> {step per digit (A_n..A_0) or false}
function M.learned_steps(curves, threshold)
  local out = {}
  for k, series in ipairs(curves.digit) do
    out[k] = false
    for i, v in ipairs(series) do
      if v < threshold then out[k] = curves.steps[i]; break end
    end
  end
  return out
end

--- training.restore(t) -> t with every JSON null (a NaN or a missing value when it was saved) made NaN
-- again, in place: the training record (curves, class curve) of a reused checkpoint
function M.restore(t)
  for k, v in pairs(t) do
    if v == json.null then t[k] = 0 / 0 elseif type(v) == "table" then M.restore(v) end
  end
  return t
end

return M
