-- addition.algorithm: the paper's equivalent algorithm (it looks at most two columns back) and
-- the measurements that compare the model with it.
--
--   local algorithm = require "addition.algorithm"
--   algorithm.answer(x, y, n)        the algorithm's answer digits A_n..A_0
--   algorithm.agreement(ev, set)     per class: model = truth, model = algorithm, algorithm = truth
--   algorithm.cascade_probe(ev, set) does the model add a carry above two sum-9 pairs when one
--                                    arrives, and when none does?
--
-- Conventions (as milua.data.addition): positions are 1-based; for n digits the question is
-- x_(n-1)..x_0 "+" y_(n-1)..y_0 "=" at positions 1..2n+2 and position 2n+1+k (k = 1..n+1)
-- predicts the k-th answer token, A_(n+1-k). "Digit" i below is the paper's: A_i has place
-- value 10^i; answer digits are listed most significant first (A_n .. A_0), as emitted.
local addition = require "milua.data.addition"
local evaluate = require "addition.evaluate"

local M = {}
local CLASSES = evaluate.classes

--- algorithm.answer(x, y, n) -> {A_n, ..., A_0}: A_i = (x_i + y_i + MC1_(i-1)
---   + [not MC1_(i-1) and MS9_(i-1) and MC1_(i-2)]) mod 10, pair-only MC1/MS9 (x_j = y_j = 0 for j >= n)
function M.answer(x, y, n)
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

--- algorithm.agreement(ev, set) -> {overall = {...}, S0 = {n, model_true, model_alg, alg_true,
---   errors, errors_alg}, ...}: fractions of questions where the model's answer equals the true
--- sum, equals the algorithm's answer, where the algorithm is right; and among the model's
--- wrong answers, how many are exactly the algorithm's answer
function M.agreement(ev, set)
  local n = set.n
  local acc = {}
  local function slot(k)
    acc[k] = acc[k] or { n = 0, model_true = 0, model_alg = 0, alg_true = 0, errors = 0, errors_alg = 0 }
    return acc[k]
  end
  for b = 1, #ev.answers do
    local truth = addition.answer_digits(set.x[b], set.y[b], n)
    local alg = M.answer(set.x[b], set.y[b], n)
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

--- algorithm.cascade_probe(ev, set) -> {carry = {n, said_carry}, no_carry = {n, said_carry}}: over every
--- answer digit A_i whose two lower pairs both sum to 9 (MS9_(i-1) and MS9_(i-2)), the fraction
--- where the model's teacher-forced digit is (x_i + y_i + 1) mod 10, i.e. it adds a carry, split
--- by whether a carry really arrives (which is decided three or more columns down). A model that
--- sees at most two columns back cannot tell the two cases apart.
function M.cascade_probe(ev, set)
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

return M
