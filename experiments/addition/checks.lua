-- addition.checks: the acceptance checks of the addition experiment, decided from the results
-- table alone (so the tests can feed it hand-made tables). The cascade criterion asks for the
-- paper's mechanism rather than a fixed end-of-training gap: a converged one-layer model of this
-- size answers most S3 questions (experiments/README.md), so what is required is that S3 is the
-- hardest class, is learned later than S2, and that the model's S3 errors are mostly the answer of
-- the equivalent algorithm (which looks two columns back and drops the carry of a cascade).
--
--   local checks = require "addition.checks"
--   checks.gap(res)       -> {final, widest, widest_step}: S2 - S3 at the end and the widest along class_curve
--   checks.evaluate(res)  -> {{name, holds, text}, ...} in the order they are printed
local M = {}

local function known(v) return type(v) == "number" and v == v end
local function pct(v) return known(v) and string.format("%.1f%%", 100 * v) or "-" end

--- checks.gap(res) -> {final, widest, widest_step}: S2 - S3 exact match at the end of training,
-- and the widest S2 - S3 along res.class_curve (evaluations where either class is unknown are
-- skipped); a value that cannot be measured is nil
function M.gap(res)
  local by = res.acc_by_class or {}
  local s2, s3 = by.S2 and by.S2.acc, by.S3 and by.S3.acc
  local g = { final = (known(s2) and known(s3)) and s2 - s3 or nil }
  local cc = res.class_curve
  if type(cc) == "table" and type(cc.steps) == "table" then
    for i, step in ipairs(cc.steps) do
      local a2, a3 = cc.S2 and cc.S2[i], cc.S3 and cc.S3[i]
      if known(a2) and known(a3) and (g.widest == nil or a2 - a3 > g.widest) then
        g.widest, g.widest_step = a2 - a3, step
      end
    end
  end
  return g
end

--- checks.evaluate(res) -> list of {name, holds, text}
-- res: acc_overall, acc_by_class {S0..S3: {acc}}, class_curve {steps, S2, S3}, agree_algorithm
-- {S3: {errors, errors_alg}}; JSON null (or nil, NaN) marks a value not measured, and a check
-- that needs it does not hold.
function M.evaluate(res)
  local out = {}
  local function add(name, holds, text) out[#out + 1] = { name = name, holds = holds and true or false, text = text } end
  local by = res.acc_by_class or {}
  local function acc(c) local e = by[c]; return e and known(e.acc) and e.acc or nil end

  local overall = known(res.acc_overall) and res.acc_overall or nil
  add("acc_overall_ge_0_95", overall and overall >= 0.95,
    string.format("exact match %s, required >= 95%%", overall and string.format("%.4f", overall) or "-"))
  local s2, s3 = acc("S2"), acc("S3")
  add("s2_ge_0_85", s2 and s2 >= 0.85, string.format("S2 exact match %s, required >= 85%%", pct(s2)))

  -- S3 the weakest of S0..S3 at the end (classes without a question do not count)
  local weakest, others = s3 ~= nil, {}
  for _, c in ipairs({ "S0", "S1", "S2" }) do
    local a = acc(c)
    if a then
      others[#others + 1] = string.format("%s %s", c, pct(a))
      if s3 and s3 >= a then weakest = false end
    end
  end
  add("s3_weakest", weakest and #others > 0, s3 and string.format("S3 %s against %s (required: below each)", pct(s3),
    #others > 0 and table.concat(others, ", ") or "no other class measured") or "no S3 question in the test set")

  -- S3 learned later than S2: the widest gap along training
  local g = M.gap(res)
  add("s3_learned_after_s2", g.widest ~= nil and g.widest >= 0.2, g.widest
    and string.format("widest S2 - S3 during training %.1f points at step %d (required >= 20); %s at the end",
      100 * g.widest, g.widest_step, g.final and string.format("%.1f", 100 * g.final) or "-")
    or "no evaluation during training with both S2 and S3 measured")

  -- the mechanism: the model's S3 errors are the equivalent algorithm's answer
  local a3 = res.agree_algorithm and res.agree_algorithm.S3
  local errors = a3 and math.type(a3.errors) == "integer" and a3.errors or nil
  local alg = a3 and math.type(a3.errors_alg) == "integer" and a3.errors_alg or nil
  add("s3_errors_are_algorithm", errors and alg and errors > 0 and 2 * alg >= errors,
    (errors and alg) and (errors > 0
      and string.format("%d of the model's %d S3 errors equal the equivalent algorithm's answer (required: at least half)",
        alg, errors)
      or "the model makes no S3 error, so the mechanism of its failures cannot be judged")
    or "the S3 errors were not compared with the algorithm")
  return out
end

return M
