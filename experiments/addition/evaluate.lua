-- addition.evaluate: how the addition model answers, and what it answers with one part hidden.
--
--   local evaluate = require "addition.evaluate"
--   evaluate.token_labels(n), evaluate.digit_names(n), evaluate.classes (S0..S5)
--   evaluate.exact_match(model, set)   fraction of questions answered exactly
--   evaluate.run(model, set, {hooks, generate}) exact match overall and per cascade class; the
--                                      model's own (greedy, autoregressive) answers where it errs
--   evaluate.ablate_positions(model, tokens, targets, hook, n)   mean-ablate each position of a
--                                      residual hook -> accuracy [position][answer digit]
--   evaluate.without_answer_tokens(model, set, ref_tokens)   exact match with the written answer
--                                      digits' identities hidden (mean-ablated embeddings)
--
-- Conventions (as milua.data.addition): positions are 1-based; for n digits the question is
-- x_(n-1)..x_0 "+" y_(n-1)..y_0 "=" at positions 1..2n+2 and position 2n+1+k (k = 1..n+1)
-- predicts the k-th answer token, A_(n+1-k). "Digit" i below is the paper's: A_i has place
-- value 10^i; answer digits are listed most significant first (A_n .. A_0), as emitted.
local T = require "milua.tensor"
local analysis = require "milua.analysis"

local M = {}

--- M.token_labels(n) -> {"x4", ..., "x0", "+", "y4", ..., "y0", "=", "A5", ..., "A0"}
function M.token_labels(n)
  local l = {}
  for i = n - 1, 0, -1 do l[#l + 1] = "x" .. i end
  l[#l + 1] = "+"
  for i = n - 1, 0, -1 do l[#l + 1] = "y" .. i end
  l[#l + 1] = "="
  for i = n, 0, -1 do l[#l + 1] = "A" .. i end
  return l
end

--- M.digit_names(n) -> {"A5", ..., "A0"} (emission order)
function M.digit_names(n)
  local l = {}
  for i = n, 0, -1 do l[#l + 1] = "A" .. i end
  return l
end

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

--- M.exact_match(model, set) -> fraction of questions whose whole answer is right
function M.exact_match(model, set)
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
M.classes = CLASSES

--- evaluate.run(model, set [, {hooks, generate = true}]) -> {acc, by_class = {S0 = {n, acc,
---   digit_acc}, ...}, correct = {bool per question}, answers = {digit list per question: the
---   model's greedy answer}, digit_acc = {per digit, A_n..A_0}}
-- Exact match under teacher forcing equals exact match of greedy generation (both are right
-- exactly when every digit is predicted from a right prefix), so generation is only run on
-- the questions the model misses, to get its actual answer there (generate = false skips it;
-- hooks, for an intervention, apply to the teacher-forced pass only).
function M.run(model, set, opts)
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

--- M.ablate_positions(model, tokens, targets, hook, n) -> acc [3n+3][n+1]: teacher-forced
--- accuracy of each answer digit when `hook` is mean-ablated (its mean over these questions)
--- at one position, and base [n+1] without ablation
function M.ablate_positions(model, tokens, targets, hook, n)
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

--- M.without_answer_tokens(model, set, ref_tokens) -> M.run result (no generation) with
--- the identities of the emitted answer tokens hidden: blocks.0.hook_resid_pre mean-ablated
--- (mean over ref_tokens) at positions 2n+3..3n+2, which keeps their position embeddings. Tells
--- whether the model reads carries back from the digits it has already written.
function M.without_answer_tokens(model, set, ref_tokens)
  local n = set.n
  local hook = "blocks.0.hook_resid_pre"
  local _, cache = T.no_grad(function() return model:run_with_cache(ref_tokens, { hook }) end)
  local pos = {}
  for p = 2 * n + 3, 3 * n + 2 do pos[#pos + 1] = p end
  local hooks = analysis.ablate_position(hook, pos, { mode = "mean", reference = cache })
  return M.run(model, set, { hooks = hooks, generate = false })
end

return M
