-- milua.addition_analysis: what experiments/addition.lua needs beyond the stdlib
-- (Quirke & Barez, "Understanding Addition in Transformers").
--
--   local AA = require "milua.addition_analysis"
--   AA.model{n_digits, d_model, n_heads, d_mlp, init_range}   the paper's 1-layer ReLU model
--   AA.train(model, o)            train.run on fresh enriched batches, recording the per-digit
--                                 training loss (and the loss buckets of one digit) per window
--   AA.learned_steps(curves, thr) first window end at which each digit's loss is below thr
--   AA.evaluate(model, set)       exact match overall and per cascade class; the model's own
--                                 answers (greedy, autoregressive) for the questions it misses
--   AA.algorithm(x, y, n)         the paper's equivalent algorithm: answer digits A_n..A_0
--   AA.agreement(ev, set)         per class: model = truth, model = algorithm, algorithm = truth
--   AA.staircase(model, tokens, n) mean attention of each head from the answer positions,
--                                 top key and top column per (answer position, head)
--   AA.ablate_positions(model, tokens, targets, hook, n)   mean-ablate each position of a
--                                 residual hook -> accuracy [position][answer digit]
--   AA.without_answer_tokens(model, set, ref_tokens)   exact match with the written answer
--                                 digits' identities hidden (mean-ablated embeddings)
--   AA.cascade_probe(ev, set)     does the model add a carry above two sum-9 pairs when one
--                                 arrives, and when none does?
--   AA.results(r), AA.report(res) the results.json table and the printed findings
--   AA.plot_*                     the figures
--
-- Conventions (as milua.data.addition): positions are 1-based; for n digits the question is
-- x_(n-1)..x_0 "+" y_(n-1)..y_0 "=" at positions 1..2n+2 and position 2n+1+k (k = 1..n+1)
-- predicts the k-th answer token, A_(n+1-k). "Digit" i below is the paper's: A_i has place
-- value 10^i; answer digits are listed most significant first (A_n .. A_0), as emitted.
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local analysis = require "milua.analysis"
local plot = require "milua.plot"
local addition = require "milua.data.addition"
local json = require "milua.json"

local AA = {}

-- ---------------------------------------------------------------- names

--- AA.token_labels(n) -> {"x4", ..., "x0", "+", "y4", ..., "y0", "=", "A5", ..., "A0"}
function AA.token_labels(n)
  local l = {}
  for i = n - 1, 0, -1 do l[#l + 1] = "x" .. i end
  l[#l + 1] = "+"
  for i = n - 1, 0, -1 do l[#l + 1] = "y" .. i end
  l[#l + 1] = "="
  for i = n, 0, -1 do l[#l + 1] = "A" .. i end
  return l
end

--- AA.digit_names(n) -> {"A5", ..., "A0"} (emission order)
function AA.digit_names(n)
  local l = {}
  for i = n, 0, -1 do l[#l + 1] = "A" .. i end
  return l
end

-- ---------------------------------------------------------------- model

--- AA.model{n_digits = 5, d_model = 120, n_heads = 3, d_mlp = 4 d_model, init_range}
function AA.model(o)
  local n, d, h = o.n_digits or 5, o.d_model or 120, o.n_heads or 3
  if d % h ~= 0 then error("AA.model: d_model " .. d .. " is not a multiple of n_heads " .. h, 2) end
  return nn.transformer {
    n_layers = 1, d_model = d, n_heads = h, d_head = d // h, d_mlp = o.d_mlp or 4 * d,
    d_vocab = addition.n_vocab, n_ctx = addition.seq_len(n), act_fn = "relu", normalization = "LN",
    causal = true, init_range = o.init_range,
  }
end

-- ---------------------------------------------------------------- training

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

--- AA.train(model, o) -> result of train.run plus result.curves (see tracker above) and, with
-- o.class_set, result.class_curve {steps, overall, S0..S5 = {acc per evaluation}, n = {S0..S5 counts}}
-- o: n_digits, steps, batch (64), lr, warmup, min_lr, weight_decay, clip, every (window of the
-- loss curves), bucket_digit (default the middle digit), eval_every, eval_set (uniform
-- questions for a progress line of exact-match accuracy), class_set (uniform questions whose
-- exact match per cascade class is recorded at every evaluation: when S3 falls behind S2 and
-- whether it catches up), eval (a function(model, step) -> table replacing both), quiet,
-- enrich (default true)
function AA.train(model, o)
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
    for _, c in ipairs(AA.classes) do cc[c] = {} end
    eval = function(m, at)
      local e = AA.evaluate(m, o.class_set, { generate = false })
      cc.steps[#cc.steps + 1], cc.overall[#cc.overall + 1] = at, e.acc
      for _, c in ipairs(AA.classes) do
        local b = e.by_class[c]
        cc[c][#cc[c] + 1], cc.n[c] = b.acc, b.n
      end
      local s2, s3 = e.by_class.S2.acc, e.by_class.S3.acc
      return { acc = e.acc, S2 = s2 or nil, S3 = s3 or nil }
    end
  elseif not eval and o.eval_set then
    eval = function(m) return { acc = AA.exact_match(m, o.eval_set) } end
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

--- AA.learned_steps(curves, threshold) -> {step per digit (A_n..A_0) or false}
function AA.learned_steps(curves, threshold)
  local out = {}
  for k, series in ipairs(curves.digit) do
    out[k] = false
    for i, v in ipairs(series) do
      if v < threshold then out[k] = curves.steps[i]; break end
    end
  end
  return out
end

-- ---------------------------------------------------------------- evaluation

-- teacher-forced predictions [B, n+1] (token ids) at the answer positions, in chunks
local function predict(model, tokens, n, chunk, hooks)
  chunk = chunk or 1000
  local B = tokens:shape()[1]
  local parts = {}
  T.no_grad(function()
    for s = 1, B, chunk do
      local len = math.min(chunk, B - s + 1)
      local part = tokens:narrow(1, s, len)
      local logits = hooks and model:run_with_hooks(part, hooks) or model:forward(part)
      parts[#parts + 1] = logits:narrow(2, 2 * n + 2, n + 1):argmax(3)
    end
  end)
  return T.cat(parts, 1)
end

--- AA.exact_match(model, set) -> fraction of questions whose whole answer is right
function AA.exact_match(model, set)
  local n = set.n
  local pred = predict(model, set.tokens, n)
  local want = set.targets:narrow(2, 2 * n + 2, n + 1)
  return pred:eq(want):min(2):mean():item()
end

-- greedy autoregressive answers for the rows of `tokens` (int32 [B, 3n+3]): each answer token
-- is the model's own prediction, fed back. Returns a list of digit lists (A_n..A_0).
local function generate(model, tokens, n)
  local rows = tokens:totable()
  local first = 2 * n + 2
  T.no_grad(function()
    for k = 0, n do
      local logits = model:forward(T.tensor(rows, "int32"))
      local next_ids = logits:select(2, first + k):argmax(2):totable()
      for b, row in ipairs(rows) do row[first + k + 1] = next_ids[b] end
    end
  end)
  local out = {}
  for b, row in ipairs(rows) do
    local d = {}
    for k = 0, n do d[k + 1] = row[first + k + 1] - 1 end
    out[b] = d
  end
  return out
end

local CLASSES = { "S0", "S1", "S2", "S3", "S4", "S5" }
AA.classes = CLASSES

--- AA.evaluate(model, set [, {hooks, generate = true}]) -> {acc, by_class = {S0 = {n, acc,
---   digit_acc}, ...}, correct = {bool per question}, answers = {digit list per question: the
---   model's greedy answer}, digit_acc = {per digit, A_n..A_0}}
-- Exact match under teacher forcing equals exact match of greedy generation (both are right
-- exactly when every digit is predicted from a right prefix), so generation is only run on
-- the questions the model misses, to get its actual answer there (generate = false skips it;
-- hooks, for an intervention, apply to the teacher-forced pass only).
function AA.evaluate(model, set, opts)
  opts = opts or {}
  local n = set.n
  local pred = predict(model, set.tokens, n, opts.chunk, opts.hooks)
  local want = set.targets:narrow(2, 2 * n + 2, n + 1)
  local hit = pred:eq(want)
  local correct = hit:min(2):totable()
  local digit_acc = hit:mean(1):totable()
  local hits = hit:totable()
  local by, ok_total = {}, 0
  for _, c in ipairs(CLASSES) do
    by[c] = { n = 0, correct = 0, digit_acc = {} }
    for k = 1, n + 1 do by[c].digit_acc[k] = 0 end
  end
  local wrong = {}
  for b, v in ipairs(correct) do
    local c = by[set.class[b]]
    c.n = c.n + 1
    for k = 1, n + 1 do c.digit_acc[k] = c.digit_acc[k] + hits[b][k] end
    if v == 1 then c.correct = c.correct + 1; ok_total = ok_total + 1 else wrong[#wrong + 1] = b end
  end
  for _, c in pairs(by) do
    c.acc = c.n > 0 and c.correct / c.n or false
    for k = 1, n + 1 do c.digit_acc[k] = c.n > 0 and c.digit_acc[k] / c.n or false end
  end
  if opts.generate == false then
    return { acc = ok_total / #correct, by_class = by, digit_acc = digit_acc, n = #correct }
  end
  local answers = {}
  local truth = set.tokens:narrow(2, 2 * n + 3, n + 1):totable()
  for b, v in ipairs(correct) do
    if v == 1 then
      local d = {}
      for k, id in ipairs(truth[b]) do d[k] = id - 1 end
      answers[b] = d
    end
  end
  if #wrong > 0 then
    local gen = generate(model, set.tokens:index_select(1, wrong), n)
    for i, b in ipairs(wrong) do answers[b] = gen[i] end
  end
  local ok = {}
  for b, v in ipairs(correct) do ok[b] = v == 1 end
  return { acc = ok_total / #correct, by_class = by, correct = ok, answers = answers, digit_acc = digit_acc,
    predicted = pred:totable(),
    n = #correct }
end

--- AA.algorithm(x, y, n) -> {A_n, ..., A_0}: A_i = (x_i + y_i + MC1_(i-1)
---   + [not MC1_(i-1) and MS9_(i-1) and MC1_(i-2)]) mod 10, pair-only MC1/MS9 (x_j = y_j = 0 for j >= n)
function AA.algorithm(x, y, n)
  local xd, yd = {}, {}
  for i = 0, n do xd[i] = x % 10; yd[i] = y % 10; x = x // 10; y = y // 10 end
  local function mc1(j) return j >= 0 and xd[j] + yd[j] >= 10 end
  local function ms9(j) return j >= 0 and xd[j] + yd[j] == 9 end
  local out = {}
  for i = n, 0, -1 do
    local carry = mc1(i - 1) and 1 or 0
    if not mc1(i - 1) and ms9(i - 1) and mc1(i - 2) then carry = carry + 1 end
    out[#out + 1] = (xd[i] + yd[i] + carry) % 10
  end
  return out
end

local function same(a, b)
  for k = 1, #a do if a[k] ~= b[k] then return false end end
  return true
end

--- AA.agreement(ev, set) -> {overall = {...}, S0 = {n, model_true, model_alg, alg_true,
---   errors, errors_alg}, ...}: fractions of questions where the model's answer equals the true
--- sum, equals the algorithm's answer, where the algorithm is right; and among the model's
--- wrong answers, how many are exactly the algorithm's answer
function AA.agreement(ev, set)
  local n = set.n
  local acc = {}
  local function slot(k)
    acc[k] = acc[k] or { n = 0, model_true = 0, model_alg = 0, alg_true = 0, errors = 0, errors_alg = 0 }
    return acc[k]
  end
  for b = 1, #ev.answers do
    local truth = addition.answer_digits(set.x[b], set.y[b], n)
    local alg = AA.algorithm(set.x[b], set.y[b], n)
    local ans = ev.answers[b]
    for _, k in ipairs({ "overall", set.class[b] }) do
      local s = slot(k)
      s.n = s.n + 1
      local mt, ma = same(ans, truth), same(ans, alg)
      if mt then s.model_true = s.model_true + 1 end
      if ma then s.model_alg = s.model_alg + 1 end
      if same(alg, truth) then s.alg_true = s.alg_true + 1 end
      if not mt then
        s.errors = s.errors + 1
        if ma then s.errors_alg = s.errors_alg + 1 end
      end
    end
  end
  for _, s in pairs(acc) do
    s.model_true, s.model_alg, s.alg_true = s.model_true / s.n, s.model_alg / s.n, s.alg_true / s.n
  end
  for _, c in ipairs(CLASSES) do slot(c) end
  return acc
end

--- AA.cascade_probe(ev, set) -> {carry = {n, said_carry}, no_carry = {n, said_carry}}: over every
--- answer digit A_i whose two lower pairs both sum to 9 (MS9_(i-1) and MS9_(i-2)), the fraction
--- where the model's teacher-forced digit is (x_i + y_i + 1) mod 10, i.e. it adds a carry, split
--- by whether a carry really arrives (which is decided three or more columns down). A model that
--- sees at most two columns back cannot tell the two cases apart.
function AA.cascade_probe(ev, set)
  local n = set.n
  local r = { carry = { n = 0, said_carry = 0 }, no_carry = { n = 0, said_carry = 0 } }
  for b = 1, #set.x do
    local x, y = set.x[b], set.y[b]
    local xd, yd = {}, {}
    for i = 0, n do xd[i] = x % 10; yd[i] = y % 10; x = x // 10; y = y // 10 end
    for i = 2, n do
      if xd[i - 1] + yd[i - 1] == 9 and xd[i - 2] + yd[i - 2] == 9 then
        local arrives = set.labels[b][i + 1].UC1
        local slot = arrives and r.carry or r.no_carry
        slot.n = slot.n + 1
        if ev.predicted[b][n + 1 - i] - 1 == (xd[i] + yd[i] + 1) % 10 then slot.said_carry = slot.said_carry + 1 end
      end
    end
  end
  for _, slot in pairs(r) do slot.frac = slot.n > 0 and slot.said_carry / slot.n or false end
  return r
end

-- ---------------------------------------------------------------- attention staircase

--- AA.staircase(model, tokens, n) -> {pattern = [H, n+1, 3n+2] mean attention from the answer
---   positions (rows: A_n..A_0 predicted) to keys 1..3n+2; per answer position q and head h:
---   top_key[q][h] (position), top_key_label, key_mass (its weight), top_column[q][h] (the digit
---   pair x_j, y_j with the most weight: j, or false when that weight is below 0.5, i.e. the head
---   reads no pair there), top_column_mass; offset[h] (the most common i - j for a head reading
---   pair j while A_i is predicted), offset_hits[h] / offset_total[h] (positions where it holds);
---   moves[h] / move_total[h] (steps q -> q+1, both reading a pair, where the pair drops by
---   exactly one column); exact (answer positions where the heads read exactly the pairs i, i-1,
---   i-2 that exist)}
function AA.staircase(model, tokens, n)
  local _, cache = T.no_grad(function() return model:run_with_cache(tokens, "hook_pattern") end)
  local pat = cache["blocks.0.attn.hook_pattern"]:mean(1)          -- [H, T, T]
  local first, L = 2 * n + 2, 3 * n + 2
  local sub = pat:narrow(2, first, n + 1):narrow(3, 1, L):contiguous()   -- [H, n+1, L]
  local P = sub:totable()
  local H = #P
  local labels = AA.token_labels(n)
  local r = { pattern = sub, top_key = {}, top_key_label = {}, top_column = {}, top_column_mass = {},
    key_mass = {}, query_positions = {}, predicts = AA.digit_names(n), heads = H }
  for q = 1, n + 1 do
    r.query_positions[q] = first + q - 1
    r.top_key[q], r.top_key_label[q], r.top_column[q], r.top_column_mass[q], r.key_mass[q] = {}, {}, {}, {}, {}
    for h = 1, H do
      local row = P[h][q]
      local best, bk = -1, 0
      for k = 1, first + q - 1 do if row[k] > best then best, bk = row[k], k end end
      local cbest, cj = -1, 0
      for j = 0, n - 1 do
        local m = row[n - j] + row[2 * n + 1 - j]
        if m > cbest then cbest, cj = m, j end
      end
      r.top_key[q][h], r.top_key_label[q][h], r.key_mass[q][h] = bk, labels[bk], best
      r.top_column[q][h], r.top_column_mass[q][h] = cbest >= 0.5 and cj, cbest
    end
  end
  r.offset, r.offset_hits, r.offset_total, r.moves, r.move_total = {}, {}, {}, {}, {}
  for h = 1, H do
    local count, total = {}, 0
    for q = 1, n + 1 do
      local j = r.top_column[q][h]
      if j then
        local d = (n + 1 - q) - j
        count[d] = (count[d] or 0) + 1
        total = total + 1
      end
    end
    local best, bd = 0, false
    for d, c in pairs(count) do if c > best or (c == best and bd and d < bd) then best, bd = c, d end end
    r.offset[h], r.offset_hits[h], r.offset_total[h] = bd, best, total
    local m, mt = 0, 0
    for q = 1, n do
      local a, b = r.top_column[q][h], r.top_column[q + 1][h]
      if a and b then
        mt = mt + 1
        if a - b == 1 then m = m + 1 end
      end
    end
    r.moves[h], r.move_total[h] = m, mt
  end
  r.exact = 0
  for q = 1, n + 1 do
    local i = n + 1 - q
    local want, got = {}, {}
    for j = math.max(0, i - 2), math.min(i, n - 1) do want[j] = true end
    for h = 1, H do if r.top_column[q][h] then got[r.top_column[q][h]] = true end end
    local same_set = true
    for j in pairs(want) do if not got[j] then same_set = false end end
    for j in pairs(got) do if not want[j] then same_set = false end end
    if same_set then r.exact = r.exact + 1 end
  end
  return r
end

-- ---------------------------------------------------------------- ablation

--- AA.ablate_positions(model, tokens, targets, hook, n) -> acc [3n+3][n+1]: teacher-forced
--- accuracy of each answer digit when `hook` is mean-ablated (its mean over these questions)
--- at one position, and base [n+1] without ablation
function AA.ablate_positions(model, tokens, targets, hook, n)
  local first = 2 * n + 2
  local want = targets:narrow(2, first, n + 1)
  local function digit_acc(logits)
    return logits:narrow(2, first, n + 1):argmax(3):eq(want):mean(1):totable()
  end
  return T.no_grad(function()
    local logits, cache = model:run_with_cache(tokens, { hook })
    local base = digit_acc(logits)
    local acc = {}
    for p = 1, tokens:shape()[2] do
      local hooks = analysis.ablate_position(hook, p, { mode = "mean", reference = cache })
      acc[p] = digit_acc(model:run_with_hooks(tokens, hooks))
    end
    return acc, base
  end)
end

--- AA.without_answer_tokens(model, set, ref_tokens) -> AA.evaluate result (no generation) with
--- the identities of the emitted answer tokens hidden: blocks.0.hook_resid_pre mean-ablated
--- (mean over ref_tokens) at positions 2n+3..3n+2, which keeps their position embeddings. Tells
--- whether the model reads carries back from the digits it has already written.
function AA.without_answer_tokens(model, set, ref_tokens)
  local n = set.n
  local hook = "blocks.0.hook_resid_pre"
  local _, cache = T.no_grad(function() return model:run_with_cache(ref_tokens, { hook }) end)
  local pos = {}
  for p = 2 * n + 3, 3 * n + 2 do pos[#pos + 1] = p end
  local hooks = analysis.ablate_position(hook, pos, { mode = "mean", reference = cache })
  return AA.evaluate(model, set, { hooks = hooks, generate = false })
end

-- ---------------------------------------------------------------- figures

function AA.plot_digit_loss(curves, n, path, opts)
  opts = opts or {}
  local last = opts.max_step or math.huge
  local series = {}
  for k, name in ipairs(AA.digit_names(n)) do
    local x, y = {}, {}
    for i, s in ipairs(curves.steps) do
      if s <= last then x[#x + 1] = s; y[#y + 1] = curves.digit[k][i] end
    end
    series[k] = { x = x, y = y, label = name }
  end
  return plot.line(series, path, { title = opts.title or "Training loss per answer digit", xlabel = "training step",
    ylabel = "cross-entropy (mean over " .. curves.steps[1] .. "-step windows)", logy = true, width = 900, height = 560 })
end

-- opts.merge: windows averaged together (weighted by their counts), as US9 columns are rare
function AA.plot_buckets(curves, path, opts)
  opts = opts or {}
  local k = opts.merge or 1
  local function merged(key)
    local x, y = {}, {}
    for i = 1, #curves.steps, k do
      local s, c = 0, 0
      for j = i, math.min(#curves.steps, i + k - 1) do
        local cnt = curves.bucket_n[key][j]
        if cnt > 0 then s = s + curves.bucket[key][j] * cnt; c = c + cnt end
      end
      x[#x + 1] = curves.steps[math.min(#curves.steps, i + k - 1)]
      y[#y + 1] = c > 0 and s / c or 0 / 0
    end
    return x, y
  end
  local series = {}
  for i, e in ipairs({ { "BA", "BA only (no carry in)" }, { "UC1", "UC1 (carry in, pair not 9)" },
    { "US9", "US9 (carry in, pair sums to 9)" } }) do
    local x, y = merged(e[1])
    series[i] = { x = x, y = y, label = e[2] }
  end
  return plot.line(series, path, { title = "Training loss of digit A" .. curves.bucket_digit .. " by carry situation",
    xlabel = "training step", ylabel = "cross-entropy (mean over " .. k * curves.steps[1] .. "-step windows)",
    logy = true, width = 900, height = 560 })
end

function AA.plot_staircase(st, h, n, path)
  local labels = AA.token_labels(n)
  local xt = {}
  for k = 1, 3 * n + 2 do xt[k] = labels[k] end
  local yt = {}
  for q = 1, n + 1 do yt[q] = labels[st.query_positions[q]] .. " -> " .. st.predicts[q] end
  return plot.heatmap(st.pattern[h], path, { title = "Head " .. h .. ": mean attention from the answer positions",
    xlabel = "key position (token)", ylabel = "query position -> digit predicted", xticks = xt, yticks = yt,
    vmin = 0, vmax = 1, cmap = "viridis", clabel = "attention weight", width = 900, height = 420 })
end

function AA.plot_ablation(acc, n, path, title)
  local t = {}                      -- answer digits as rows, ablated positions as columns
  for k = 1, n + 1 do
    t[k] = {}
    for p = 1, #acc do t[k][p] = acc[p][k] end
  end
  return plot.heatmap(t, path, { title = title, xlabel = "mean-ablated position (token)", ylabel = "answer digit",
    xticks = AA.token_labels(n), yticks = AA.digit_names(n), vmin = 0, vmax = 1, cmap = "viridis",
    clabel = "digit accuracy", width = 900, height = 420 })
end

-- exact match per cascade class during training (classes with fewer than min_n questions are left out)
function AA.plot_class_curve(cc, path, opts)
  opts = opts or {}
  local series = { { x = cc.steps, y = cc.overall, label = "all questions" } }
  for _, c in ipairs(CLASSES) do
    if cc.n[c] >= (opts.min_n or 20) then
      local y = {}
      for i, v in ipairs(cc[c]) do y[i] = v or 0 / 0 end
      series[#series + 1] = { x = cc.steps, y = y, label = c .. " (n=" .. cc.n[c] .. ")" }
    end
  end
  return plot.line(series, path, { title = "Exact match by cascade class during training",
    xlabel = "training step", ylabel = "fraction of questions answered exactly", width = 900, height = 560 })
end

function AA.plot_classes(ev, agree, path)
  local model, alg, labels = {}, {}, {}
  for i, c in ipairs(CLASSES) do
    local b = ev.by_class[c]
    labels[i] = c .. " (n=" .. b.n .. ")"
    model[i] = b.acc or 0
    alg[i] = agree[c].n > 0 and agree[c].model_alg or 0
  end
  return plot.bar({ model, alg }, path, { title = "Exact match by cascade class (non-enriched questions)",
    labels = labels, series = { "model = true sum", "model = equivalent algorithm" }, ylabel = "fraction of questions",
    xlabel = "cascade class", width = 900, height = 520 })
end

-- ---------------------------------------------------------------- results and report

--- AA.loadavg() -> the 1-, 5- and 15-minute load averages as a string ("?" where unknown)
function AA.loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return "?" end
  local s = f:read("l") or ""
  f:close()
  return s:match("^(%S+ %S+ %S+)") or "?"
end

-- JSON null for missing values (false, nil, NaN)
local function nullable(v)
  if v == false or v == nil or v ~= v then return json.null end
  return v
end

local function named(list, names)
  local t = {}
  for k, name in ipairs(names) do t[name] = nullable(list[k]) end
  return t
end

local function nullable_matrix(m)
  local out = {}
  for i, row in ipairs(m) do
    out[i] = {}
    for j = 1, #m[1] do out[i][j] = nullable(row[j]) end
  end
  return out
end

local function mean_tail(list, k)
  local s, c = 0, 0
  for i = math.max(1, #list - k + 1), #list do s = s + list[i]; c = c + 1 end
  return c > 0 and s / c or 0 / 0
end

local function class_table(by, names)
  local t = {}
  for _, c in ipairs(CLASSES) do
    t[c] = { n = by[c].n, acc = nullable(by[c].acc), digit_acc = named(by[c].digit_acc, names) }
  end
  return t
end

local function class_curve(cc)
  local out = { steps = cc.steps, overall = cc.overall, n = cc.n }
  for _, c in ipairs(CLASSES) do
    local list = {}
    for i, v in ipairs(cc[c]) do list[i] = nullable(v) end
    out[c] = list
  end
  return out
end

--- AA.results(r) -> the table written to results.json (fields listed in experiments/README.md)
function AA.results(r)
  local n, m, run, ev = r.n_digits, r.model, r.run, r.eval
  local names = AA.digit_names(n)
  local labels = AA.token_labels(n)
  local learned = AA.learned_steps(run.curves, 0.5)
  local order = {}
  for k, name in ipairs(names) do order[k] = { name = name, step = learned[k] or math.huge } end
  table.sort(order, function(a, b) if a.step ~= b.step then return a.step < b.step end return a.name > b.name end)
  local order_names = {}
  for k, e in ipairs(order) do order_names[k] = e.name end
  local agree = {}
  for k, s in pairs(r.agree) do
    agree[k] = { n = s.n, model_true = nullable(s.n > 0 and s.model_true), model_alg = nullable(s.n > 0 and s.model_alg),
      alg_true = nullable(s.n > 0 and s.alg_true), errors = s.errors, errors_alg = s.errors_alg }
  end
  local curves = { steps = run.curves.steps, window = run.curves.steps[1] }
  for k, name in ipairs(names) do curves[name] = run.curves.digit[k] end
  local bucket = { digit = "A" .. run.curves.bucket_digit, steps = run.curves.steps }
  for key, series in pairs(run.curves.bucket) do bucket[key] = series; bucket[key .. "_n"] = run.curves.bucket_n[key] end
  local st = r.staircase
  local qlabels = {}
  for i, p in ipairs(st.query_positions) do qlabels[i] = labels[p] end
  local function ablation(a, hook)
    return { hook = hook, positions = labels, digits = names, acc = a.acc, base = named(a.base, names),
      n_questions = r.n_probe }
  end
  local s2, s3 = ev.by_class.S2.acc, ev.by_class.S3.acc
  local offsets = {}
  for h = 1, st.heads do if st.offset[h] then offsets[st.offset[h]] = true end end
  local n_offsets = 0
  for _ in pairs(offsets) do n_offsets = n_offsets + 1 end
  return {
    paper = "Quirke & Barez, Understanding Addition in Transformers (arXiv 2310.13121)",
    config = { tier = r.tier, n_digits = n, seed = r.seed, n_layers = 1, d_model = m.cfg.d_model,
      n_heads = m.cfg.n_heads, d_head = m.cfg.d_head, d_mlp = m.cfg.d_mlp, act_fn = m.cfg.act_fn,
      n_params = m:num_params(), recipe = r.recipe, n_test = ev.n, n_analysis = r.n_probe },
    train_seconds = run.seconds, steps_per_second = run.steps / run.seconds,
    final_train_loss = mean_tail(run.losses, 100),
    acc_overall = ev.acc, acc_by_class = class_table(ev.by_class, names), digit_acc = named(ev.digit_acc, names),
    acc_without_answer_tokens = { acc_overall = r.without_answers.acc,
      acc_by_class = class_table(r.without_answers.by_class, names) },
    digit_learned_step = named(learned, names), learned_order = order_names, loss_curves = curves,
    class_curve = r.run.class_curve and class_curve(r.run.class_curve) or json.null,
    bucket_curves = bucket,
    staircase = { query_positions = st.query_positions, query_labels = qlabels, predicts = st.predicts,
      top_key = st.top_key, top_key_label = st.top_key_label, key_mass = st.key_mass,
      top_column = nullable_matrix(st.top_column), top_column_mass = st.top_column_mass,
      offset = named(st.offset, (function() local h = {}; for i = 1, st.heads do h[i] = "H" .. i end; return h end)()),
      offset_hits = st.offset_hits, offset_total = st.offset_total, moves = st.moves, move_total = st.move_total,
      exact = st.exact, mean_pattern = st.pattern },
    ablation = ablation(r.ablation.resid_post, "blocks.0.hook_resid_post"),
    ablation_resid_pre = ablation(r.ablation.resid_pre, "blocks.0.hook_resid_pre"),
    agree_algorithm = agree,
    cascade_probe = { carry_arrives = { n = r.probe.carry.n, said_carry = nullable(r.probe.carry.frac) },
      no_carry = { n = r.probe.no_carry.n, said_carry = nullable(r.probe.no_carry.frac) } },
    checks = {
      acc_overall_ge_0_95 = ev.acc >= 0.95,
      s2_ge_0_85 = s2 ~= false and s2 >= 0.85,
      s3_at_least_0_2_below_s2 = s2 ~= false and s3 ~= false and s3 <= s2 - 0.2,
      staircase_positions_reading_pairs_i_to_i_minus_2 = st.exact,
      staircase_distinct_head_offsets = n_offsets,
    },
    pngs = r.pngs, wall_seconds = r.wall_seconds, load_start = r.load_start, load_end = r.load_end,
  }
end

local function pct(v) return (v == json.null or v == false) and "   -  " or string.format("%5.1f%%", 100 * v) end

--- AA.report(res): the findings of one run, in words, from its measurements
function AA.report(res)
  local c = res.config
  local names = res.staircase.predicts
  local p = function(...) print(string.format(...)) end
  p("")
  p("== training: %d steps in %.1f s (%.1f steps/s), final loss %.4f; load average %s at start, %s at end",
    c.recipe.steps, res.train_seconds, res.steps_per_second, res.final_train_loss, res.load_start, res.load_end)
  local parts = {}
  for _, name in ipairs(names) do
    local s = res.digit_learned_step[name]
    parts[#parts + 1] = name .. " " .. (s == json.null and "never" or tostring(s))
  end
  p("first step at which each digit's training loss (mean over %d-step windows) is below 0.5: %s",
    res.loss_curves.window, table.concat(parts, ", "))
  p("order: %s (paper: A5, then A4, then A0, then A3/A2/A1 together; PyTorch calibration: A5, A4, A0, A3, A2, A1)",
    table.concat(res.learned_order, " "))
  local first = res.digit_learned_step[res.learned_order[1]]
  local last = res.digit_learned_step[res.learned_order[#res.learned_order]]
  if first ~= json.null and last ~= json.null then
    p("the slowest digit crossed 0.5 %.1fx later than the fastest", last / first)
  end
  local b = res.bucket_curves
  local function crossing(series)
    for i, v in ipairs(series) do if v == v and v < 0.5 then return b.steps[i] end end
    return "never"
  end
  p("digit %s by carry situation, first window below 0.5: BA-only %s, UC1 %s, US9 %s (paper: UC1 lags BA)",
    b.digit, crossing(b.BA), crossing(b.UC1), crossing(b.US9))
  p("")
  p("== exact match on %d fresh non-enriched questions: %.4f (paper > 0.995; PyTorch calibration at 6k steps 0.92)",
    c.n_test, res.acc_overall)
  local wa = res.acc_without_answer_tokens
  p("  class      n   exact match   per digit (A5..A0)                    | answer tokens hidden")
  for _, cl in ipairs(CLASSES) do
    local e, w = res.acc_by_class[cl], wa.acc_by_class[cl]
    local d = {}
    for k, name in ipairs(names) do d[k] = e.digit_acc[name] == json.null and "  -  " or string.format("%.3f", e.digit_acc[name]) end
    p("  %s  %6d    %s     %s | %s", cl, e.n, pct(e.acc), table.concat(d, " "), pct(w.acc))
  end
  local s2, s3 = res.acc_by_class.S2.acc, res.acc_by_class.S3.acc
  if s2 ~= json.null and s3 ~= json.null then
    p("S2 (one sum-9 column above a carry) %s; S3 (two) %s: %.1f points lower. The paper's model answers S2 " ..
      "and fails cascades; %s.", pct(s2), pct(s3), 100 * (s2 - s3),
      s2 - s3 >= 0.2 and "this signature (a gap of at least 20 points) is reproduced"
      or "here the gap is SMALLER than 20 points: the signature is NOT reproduced")
    local w2, w3 = wa.acc_by_class.S2.acc, wa.acc_by_class.S3.acc
    if w2 ~= json.null and w3 ~= json.null then
      p("with the identities of the already-written answer digits hidden (their embeddings mean-ablated): " ..
        "overall %s, S2 %s, S3 %s", pct(wa.acc_overall), pct(w2), pct(w3))
    end
  end
  local cc = res.class_curve
  if cc ~= json.null and #cc.steps > 0 then
    local widest, at = -math.huge, nil
    local stride = math.ceil(#cc.steps / 8)
    p("during training (exact match on the same test questions):")
    p("    step   overall     S2      S3    S2 - S3")
    for i, step in ipairs(cc.steps) do
      local a2, a3 = cc.S2[i], cc.S3[i]
      local both = a2 ~= json.null and a3 ~= json.null
      if both and a2 - a3 > widest then widest, at = a2 - a3, step end
      if i % stride == 0 or i == #cc.steps then
        p("  %6d   %s  %s  %s  %s", step, pct(cc.overall[i]), pct(a2), pct(a3),
          both and string.format("%5.1f", 100 * (a2 - a3)) or "   -")
      end
    end
    if at then
      p("the gap was widest at step %d (%.1f points) and is %.1f points at the end", at, 100 * widest,
        100 * (s2 ~= json.null and s3 ~= json.null and s2 - s3 or 0 / 0))
    end
  end
  local cp = res.cascade_probe
  p("answer digits whose two lower pairs both sum to 9: the model adds a carry in %s of %d cases where one " ..
    "arrives and in %s of %d where none does (the carry is decided three or more columns down)",
    pct(cp.carry_arrives.said_carry), cp.carry_arrives.n, pct(cp.no_carry.said_carry), cp.no_carry.n)
  p("")
  local st = res.staircase
  p("== attention staircase (mean over %d questions): per head, the top key (its weight) and the digit pair " ..
    "x_j,y_j with the most weight (- when below 0.5)", c.n_analysis)
  for q, name in ipairs(names) do
    local cells = {}
    for h = 1, #st.top_key[q] do
      local j = st.top_column[q][h]
      cells[h] = string.format("H%d %-3s %.2f pair %s (%.2f)", h, st.top_key_label[q][h], st.key_mass[q][h],
        j == json.null and "-" or tostring(j), st.top_column_mass[q][h])
    end
    p("  %-2s -> %s: %s", st.query_labels[q], name, table.concat(cells, " | "))
  end
  local roles = {}
  for h = 1, #st.moves do
    local off = st.offset["H" .. h]
    roles[h] = string.format("H%d reads pair i%s at %d/%d positions, moves down one column at %d/%d steps", h,
      off == json.null and "?" or off == 0 and "" or "-" .. off, st.offset_hits[h], st.offset_total[h], st.moves[h], st.move_total[h])
  end
  p("while A_i is predicted: %s", table.concat(roles, "; "))
  p("answer positions where the heads read exactly the pairs i, i-1, i-2 (those that exist): %d/%d " ..
    "(paper: three staircases offset by one column)", st.exact, #names)
  p("")
  local function breaks(a, what)
    local base = {}
    for k, name in ipairs(a.digits) do base[k] = string.format("%s %.3f", name, a.base[name]) end
    p("== mean-ablating %s at one position (%d questions; digit accuracy without ablation: %s)", what,
      a.n_questions, table.concat(base, ", "))
    local quiet = {}
    for pos, row in ipairs(a.acc) do
      local hit = {}
      for k, v in ipairs(row) do
        if a.base[a.digits[k]] - v > 0.1 then hit[#hit + 1] = string.format("%s %.2f", a.digits[k], v) end
      end
      if #hit > 0 then p("  position %2d (%s): %s", pos, a.positions[pos], table.concat(hit, ", "))
      else quiet[#quiet + 1] = a.positions[pos] end
    end
    p("  no digit loses more than 10 points at: %s", #quiet > 0 and table.concat(quiet, " ") or "none")
  end
  breaks(res.ablation, "the layer's output (resid_post)")
  p("  (in a 1-layer model resid_post at a position feeds only that position's prediction, so this map follows " ..
    "from the architecture)")
  breaks(res.ablation_resid_pre, "the input (token + position embedding, resid_pre)")
  p("")
  p("== the paper's equivalent algorithm (looks at most two columns back) vs the model's greedy answers")
  for _, cl in ipairs({ "overall", table.unpack(CLASSES) }) do
    local a = res.agree_algorithm[cl]
    if a and a.n > 0 then
      p("  %-7s n = %5d  model = truth %s  model = algorithm %s  algorithm = truth %s  model errors equal to " ..
        "the algorithm's answer: %d/%d", cl, a.n, pct(a.model_true), pct(a.model_alg), pct(a.alg_true), a.errors_alg,
        a.errors)
    end
  end
end

return AA
