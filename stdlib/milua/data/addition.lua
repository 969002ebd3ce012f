-- milua.data.addition: n-digit addition (Quirke & Barez, "Understanding Addition in Transformers").
--
-- A question for n digits is  x_(n-1)..x_0 + y_(n-1)..y_0 = A_n..A_0 : operands zero-padded
-- to n digits, the answer always n+1 digits, most significant first; 3n + 3 tokens
-- (18 for n = 5). Token ids: digit d -> d + 1, "+" -> 11, "=" -> 12.
-- Operand digits are iid uniform, drawn from milua.tensor's global generator (T.seed
-- reproduces a batch bit for bit).
--
-- Enrichment (the authors' rule): with probability 1/5 per batch, 20% of all digit pairs of
-- the batch (floor(0.2 * B * n) distinct (question, column) pairs, chosen uniformly) are set
-- to sum to 9, by x = 9 - y or, with equal chance, y = 9 - x (one choice for the whole batch).
-- This raises the rate of carry cascades (US9), which are rare in uniform data.
--
-- Columns: column c = 1..n+1 holds place value 10^(c-1) (c = 1 is the units column, the
-- paper's "digit 0"); column n+1 has no operand digits (both 0) and produces A_n.
-- Per-column labels (booleans except BA):
--   BA  (x_c + y_c) mod 10            base add: the digit without any carry
--   MC1 x_c + y_c >= 10               the pair alone makes a carry
--   MS9 x_c + y_c == 9                the pair sums to 9
--   UC1 a carry arrives in column c   (the true carry, including one passed on by a
--                                      sum-9 column below)
--   US9 MS9 and UC1                   a sum-9 column receiving a carry, which passes it on
-- Cascade class of a question (pair-only definitions, as the authors' get_maths_question_
-- complexity): S0 no column makes a carry; otherwise let k be the longest run of sum-9
-- columns directly above a carry-making column: k = 0 -> S1, 1 -> S2 (simple US9),
-- 2 -> S3, 3 -> S4, >= 4 -> S5.  Examples: 12345+54321 S0, 00019+00001 S1,
-- 33357+82243 S2, 00555+00445 S3, 05555+04445 S4, 55555+44445 S5.
--
--   local addition = require "milua.data.addition"
--   addition.vocab, addition.id[str], addition.n_vocab (12)
--   addition.seq_len(n)                     3n + 3
--   addition.answer_positions(n)            {2n+2, ..., 3n+2}: positions whose NEXT token is
--                                           an answer digit (A_n .. A_0 in that order)
--   addition.question(n [, {enrich = bool}]) one question (enrichment as a batch of one):
--       {x, y, answer, tokens = {ids}, class = "S0".."S5", labels = {per column}}
--   addition.batch(B, n [, opts])   (B * (3n + 3) at most T.max_table_numbers(): rows are Lua tables)
--       opts.enrich       apply the enrichment rule (default false: uniform questions)
--       opts.enrich_prob  probability per batch (default 0.2)
--       opts.enrich_frac  fraction of digit pairs modified (default 0.2)
--     -> { tokens  int32 [B, 3n+3]  the whole question and answer (the model's input)
--          targets int32 [B, 3n+3]  tokens shifted left by one; the last entry is 1 (masked)
--          mask    float32 [B, 3n+3] 1 at the n+1 answer-predicting positions, else 0
--          class   {"S0".."S5"} per question
--          labels  per question, per column c = 1..n+1: {BA, MC1, MS9, UC1, US9}
--          x, y, answer  Lua integer lists
--          enriched      whether this batch was enriched }
--   addition.decode(row)                    "00555+00445=001000"
--   addition.classify(x, y, n)              -> class, labels
--   addition.answer_digits(x, y, n)         -> {A_n, ..., A_0}

local T = require "milua.tensor"

local M = {}

M.vocab = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "=" }
M.id = {}
for i, s in ipairs(M.vocab) do M.id[s] = i end
M.n_vocab = #M.vocab
local PLUS, EQUALS = M.id["+"], M.id["="]

local MAX_DIGITS = 18      -- x + y < 2 * 10^18 fits a Lua integer

local function check_n(n, fname, level)
  if math.type(n) ~= "integer" or n < 1 or n > MAX_DIGITS then
    error("addition." .. fname .. ": n must be an integer in 1.." .. MAX_DIGITS .. ", got " .. tostring(n), level + 1)
  end
end

local function check_operand(v, n, name, fname)
  if math.type(v) ~= "integer" or v < 0 or v >= 10 ^ n then
    error("addition." .. fname .. ": " .. name .. " must be an integer in 0.." ..
      string.format("%.0f", 10 ^ n - 1) .. " for n = " .. n .. ", got " .. tostring(v), 3)
  end
end

-- Digits of v, units first: d[1] = units.
local function digits_lsf(v, count)
  local d = {}
  for c = 1, count do d[c] = v % 10; v = v // 10 end
  return d
end

function M.seq_len(n)
  check_n(n, "seq_len", 2)
  return 3 * n + 3
end

function M.answer_positions(n)
  check_n(n, "answer_positions", 2)
  local p = {}
  for i = 0, n do p[#p + 1] = 2 * n + 2 + i end
  return p
end

function M.answer_digits(x, y, n)
  check_n(n, "answer_digits", 2)
  check_operand(x, n, "x", "answer_digits")
  check_operand(y, n, "y", "answer_digits")
  local d = digits_lsf(x + y, n + 1)
  local out = {}
  for i = 1, n + 1 do out[i] = d[n + 2 - i] end
  return out
end

local function classify(x, y, n)
  local xd, yd = digits_lsf(x, n + 1), digits_lsf(y, n + 1)
  local labels = {}
  local carry = 0
  for c = 1, n + 1 do
    local s = xd[c] + yd[c]
    local l = {
      BA = s % 10,
      MC1 = s >= 10,
      MS9 = s == 9,
      UC1 = carry == 1,
    }
    l.US9 = l.MS9 and l.UC1
    labels[c] = l
    carry = (s + carry) // 10
  end
  -- longest run of pair-sum-9 columns directly above a pair-carry column
  local any_mc, run = false, 0
  for c = 1, n do
    if labels[c].MC1 then
      any_mc = true
      local k = 0
      while c + k + 1 <= n and labels[c + k + 1].MS9 do k = k + 1 end
      if k > run then run = k end
    end
  end
  local class
  if not any_mc then class = "S0" else class = "S" .. (math.min(run, 4) + 1) end
  return class, labels
end

function M.classify(x, y, n)
  check_n(n, "classify", 2)
  check_operand(x, n, "x", "classify")
  check_operand(y, n, "y", "classify")
  return classify(x, y, n)
end

local function question_tokens(xd, yd, n)
  -- xd, yd: digits most significant first
  local tok = {}
  for i = 1, n do tok[i] = xd[i] + 1 end
  tok[n + 1] = PLUS
  for i = 1, n do tok[n + 1 + i] = yd[i] + 1 end
  tok[2 * n + 2] = EQUALS
  local x, y = 0, 0
  for i = 1, n do x = x * 10 + xd[i]; y = y * 10 + yd[i] end
  local ans = digits_lsf(x + y, n + 1)
  for i = 1, n + 1 do tok[2 * n + 2 + i] = ans[n + 2 - i] + 1 end
  return tok, x, y
end

-- Draws the digits of B questions (all x digits, then all y digits, most significant
-- first) and applies the enrichment rule. Returns lists of digit lists.
local function draw(B, n, opts)
  local xs, ys = {}, {}
  for b = 1, B do
    local d = {}
    for i = 1, n do d[i] = T.random(0, 9) end
    xs[b] = d
  end
  for b = 1, B do
    local d = {}
    for i = 1, n do d[i] = T.random(0, 9) end
    ys[b] = d
  end
  local enriched = false
  if opts.enrich then
    local prob = opts.enrich_prob or 0.2
    local frac = opts.enrich_frac or 0.2
    -- the coin is drawn as an integer (1 in 5 by default) so it uses the same generator
    local coin = T.random(1, 1000000) <= math.floor(prob * 1000000 + 0.5)
    if coin then
      enriched = true
      local total = B * n
      local k = math.floor(frac * total + 1e-9)
      -- k distinct pair indices, partial Fisher-Yates over 0..total-1
      local idx = {}
      for i = 1, total do idx[i] = i - 1 end
      for i = 1, k do
        local j = T.random(i, total)
        idx[i], idx[j] = idx[j], idx[i]
      end
      local set_x = T.random(1, 2) == 1
      for i = 1, k do
        local b, c = idx[i] // n + 1, idx[i] % n + 1
        if set_x then xs[b][c] = 9 - ys[b][c] else ys[b][c] = 9 - xs[b][c] end
      end
    end
  end
  return xs, ys, enriched
end

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("addition." .. fname .. ": options must be a table", 3) end
  for _, k in ipairs({ "enrich_prob", "enrich_frac" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v > 1) then
      error("addition." .. fname .. ": " .. k .. " must be a number in [0, 1], got " .. tostring(v), 3)
    end
  end
  return opts
end

function M.question(n, opts)
  check_n(n, "question", 2)
  opts = check_opts(opts, "question")
  local xs, ys = draw(1, n, opts)
  local tok, x, y = question_tokens(xs[1], ys[1], n)
  local class, labels = classify(x, y, n)
  return { x = x, y = y, answer = x + y, tokens = tok, class = class, labels = labels, n = n }
end

function M.batch(B, n, opts)
  if math.type(B) ~= "integer" or B < 1 then
    error("addition.batch: batch size must be a positive integer, got " .. tostring(B), 2)
  end
  check_n(n, "batch", 2)
  opts = check_opts(opts, "batch")
  local L = 3 * n + 3
  -- the rows are Lua tables grown a number at a time: a size they cannot reach is refused
  -- before the first draw, not after minutes and gigabytes
  if B > T.max_table_numbers() // L then
    error(string.format("addition.batch: a batch of %d examples of %d tokens is more numbers than Lua tables " ..
      "hold on this machine (T.max_table_numbers() = %d)", B, L, T.max_table_numbers()), 2)
  end
  local xs, ys, enriched = draw(B, n, opts)
  local tok, tgt, mask = {}, {}, {}
  local classes, labels, xv, yv, ans = {}, {}, {}, {}, {}
  for b = 1, B do
    local t, x, y = question_tokens(xs[b], ys[b], n)
    local g, m = {}, {}
    for p = 1, L do
      g[p] = p < L and t[p + 1] or 1
      m[p] = (p >= 2 * n + 2 and p <= 3 * n + 2) and 1 or 0
    end
    tok[b], tgt[b], mask[b] = t, g, m
    classes[b], labels[b] = classify(x, y, n)
    xv[b], yv[b], ans[b] = x, y, x + y
  end
  return {
    tokens = T.tensor(tok, "int32"),
    targets = T.tensor(tgt, "int32"),
    mask = T.tensor(mask, "float32"),
    class = classes, labels = labels, x = xv, y = yv, answer = ans,
    enriched = enriched, n = n,
  }
end

function M.decode(row)
  local ids = row
  if not (type(row) == "table" and getmetatable(row) == nil) then
    local ok, t = pcall(function() return row:totable() end)
    if not ok or type(t) ~= "table" or type(t[1]) == "table" then
      error("addition.decode: expected a list of token ids or a 1-D tensor", 2)
    end
    ids = t
  end
  local out = {}
  for p, id in ipairs(ids) do
    local s = M.vocab[id]
    if not s then
      error("addition.decode: token id " .. tostring(id) .. " at position " .. p ..
        " is not in the vocabulary (1.." .. #M.vocab .. ")", 2)
    end
    out[p] = s
  end
  return table.concat(out)
end

return M
