-- experiments/addition.lua end to end (--quick), and the helpers it relies on.
local test = require "milua.test"
local json = require "milua.json"
local addition = require "milua.data.addition"
-- the addition helpers live beside the script, in experiments/addition/ (tests run from the project root)
package.path = "experiments/?.lua;" .. package.path
local algorithm = require "addition.algorithm"
local evaluate = require "addition.evaluate"
local checks = require "addition.checks"

-- ---------------------------------------------------------------- the equivalent algorithm
local function digits(s) local t = {}; for ch in s:gmatch("%d") do t[#t + 1] = tonumber(ch) end; return t end
test.is(algorithm.answer(33357, 82243, 5), digits("115600"), "algorithm.answer: 33357+82243 (S2, one sum-9 column) is right")
test.is(algorithm.answer(555, 445, 5), digits("000000"), "algorithm.answer: 00555+00445 (S3) loses the carry two sum-9 columns up")
test.is(algorithm.answer(12345, 54321, 5), digits("066666"), "algorithm.answer: 12345+54321 (S0)")
test.is(algorithm.answer(99999, 1, 5), digits("099000"), "algorithm.answer: 99999+00001 (S5) carries two sum-9 columns up, then loses it")
-- the algorithm is exact below S3 and wrong on every S3+ question (it looks two columns back)
do
  local T = require "milua.tensor"
  T.seed(7)
  local b = addition.batch(3000, 5, { enrich = true, enrich_prob = 1 })
  local bad = { exact_below_s3 = 0, right_on_s3_plus = 0, s3_plus = 0 }
  for i = 1, #b.x do
    local ok = table.concat(algorithm.answer(b.x[i], b.y[i], 5)) == table.concat(addition.answer_digits(b.x[i], b.y[i], 5))
    if b.class[i] >= "S3" then
      bad.s3_plus = bad.s3_plus + 1
      if ok then bad.right_on_s3_plus = bad.right_on_s3_plus + 1 end
    elseif not ok then bad.exact_below_s3 = bad.exact_below_s3 + 1 end
  end
  test.is(bad.exact_below_s3, 0, "algorithm = true sum on every S0..S2 question (3000 enriched)")
  test.ok(bad.s3_plus > 0 and bad.right_on_s3_plus == 0, "algorithm wrong on every S3+ question (" .. bad.s3_plus .. ")")
end
test.is(evaluate.token_labels(5)[1], "x4", "token label of position 1")
test.is(evaluate.token_labels(5)[12], "=", "token label of position 12")
test.is(evaluate.token_labels(5)[18], "A0", "token label of position 18")

-- ---------------------------------------------------------------- the checks, on hand-made results
-- a results table with every check met: S3 the weakest class, 50 points behind S2 during training,
-- 6 of its 10 errors the algorithm's answer
local function made(o)
  o = o or {}
  local null = json.null
  local res = {
    acc_overall = o.overall or 0.99,
    acc_by_class = { S0 = { acc = o.S0 or 0.99 }, S1 = { acc = 0.995 }, S2 = { acc = o.S2 or 0.98 }, S3 = { acc = o.S3 or 0.80 },
      S4 = { acc = 0.3 }, S5 = { acc = null } },
    class_curve = { steps = { 250, 500, 750, 1000 }, S2 = o.curve2 or { null, 0.5, 0.9, 0.98 },
      S3 = o.curve3 or { null, 0.45, 0.4, 0.8 } },
    agree_algorithm = { S3 = { errors = o.errors or 10, errors_alg = o.errors_alg or 6 } },
  }
  return res
end
local function verdicts_of(res)
  local by = {}
  for _, v in ipairs(checks.evaluate(res)) do by[v.name] = v end
  return by
end
do
  local v = verdicts_of(made())
  local names = {}
  for _, c in ipairs(checks.evaluate(made())) do names[#names + 1] = c.name end
  test.is(names, { "acc_overall_ge_0_95", "s2_ge_0_85", "s3_weakest", "s3_learned_after_s2", "s3_errors_are_algorithm" },
    "checks.evaluate: the five checks, in the order printed")
  for name, c in pairs(v) do test.ok(c.holds == true, "checks: " .. name .. " holds on a table that meets it (" .. c.text .. ")") end
  local g = checks.gap(made())
  test.close(g.widest, 0.5, 1e-12, "checks.gap: the widest S2 - S3 along class_curve (0.9 - 0.4), nulls skipped")
  test.is(g.widest_step, 750, "checks.gap: and its step")
  test.close(g.final, 0.18, 1e-12, "checks.gap: S2 - S3 at the end")
  -- each check fails when its own number misses, and only then
  test.is(verdicts_of(made { overall = 0.949 }).acc_overall_ge_0_95.holds, false, "checks: exact match 0.949 < 0.95")
  test.is(verdicts_of(made { S2 = 0.84 }).s2_ge_0_85.holds, false, "checks: S2 0.84 < 0.85")
  test.is(verdicts_of(made { S0 = 0.79 }).s3_weakest.holds, false, "checks: S3 0.80 above S0 0.79 is not the weakest")
  test.is(verdicts_of(made { S0 = 0.80 }).s3_weakest.holds, false, "checks: S3 level with S0 is not the weakest either")
  test.is(verdicts_of(made { S3 = json.null }).s3_weakest.holds, false, "checks: no S3 question: not the weakest")
  test.is(verdicts_of(made { curve3 = { json.null, 0.45, 0.71, 0.8 } }).s3_learned_after_s2.holds, false,
    "checks: a widest gap of 0.19 (0.9 - 0.71) is below 0.20")
  test.is(verdicts_of(made { curve3 = { json.null, 0.3, 0.7, 0.8 } }).s3_learned_after_s2.holds, true,
    "checks: a widest gap of exactly 0.20 holds")
  test.is(verdicts_of(made { curve2 = { json.null, json.null, json.null, json.null } }).s3_learned_after_s2.holds, false,
    "checks: no evaluation with S2 measured: does not hold")
  test.is(verdicts_of(made { errors_alg = 4 }).s3_errors_are_algorithm.holds, false, "checks: 4 of 10 S3 errors is under half")
  test.is(verdicts_of(made { errors_alg = 5 }).s3_errors_are_algorithm.holds, true, "checks: 5 of 10 is half: holds")
  test.is(verdicts_of(made { errors = 0, errors_alg = 0 }).s3_errors_are_algorithm.holds, false,
    "checks: no S3 error: the mechanism cannot be judged, does not hold")
  local other = verdicts_of(made { errors_alg = 4 })
  test.ok(other.s3_weakest.holds and other.s3_learned_after_s2.holds and other.acc_overall_ge_0_95.holds,
    "checks: one check failing leaves the others as they were")
end

-- ---------------------------------------------------------------- the script, end to end
local out = test.tmpdir("addition")
local res = test.run_script("experiments/addition.lua", "--quick --seed 3", { out = out, name = "addition" })
test.pinned(res, "addition", "experiments/addition.lua", "--quick --seed 3")

local function isnum(v, lo, hi) return type(v) == "number" and v == v and v >= lo and v <= hi end
test.ok(isnum(res.acc_overall, 0, 1), "acc_overall is a fraction")
test.ok(isnum(res.train_seconds, 1e-3, 1e6), "train_seconds is positive")
local total, cls_ok = 0, true
for _, c in ipairs({ "S0", "S1", "S2", "S3", "S4", "S5" }) do
  local b = res.acc_by_class and res.acc_by_class[c]
  if type(b) ~= "table" or math.type(b.n) ~= "integer" or not (b.acc == json.null or isnum(b.acc, 0, 1)) then
    cls_ok = false
  else
    total = total + b.n
  end
end
test.ok(cls_ok, "acc_by_class has {n, acc} for S0..S5")
test.is(total, res.config and res.config.n_test, "class counts add up to the test questions")
local learned_ok = type(res.digit_learned_step) == "table"
for _, d in ipairs({ "A5", "A4", "A3", "A2", "A1", "A0" }) do
  local v = learned_ok and res.digit_learned_step[d]
  if not (v == json.null or math.type(v) == "integer") then learned_ok = false end
end
test.ok(learned_ok, "digit_learned_step: a step or null for A5..A0")
local st = res.staircase or {}
local stair_ok = type(st.top_key) == "table" and #st.top_key == 6
for q = 1, 6 do
  local row = stair_ok and st.top_key[q]
  if type(row) ~= "table" or #row ~= 3 then stair_ok = false; break end
  for _, k in ipairs(row) do
    if math.type(k) ~= "integer" or k < 1 or k > 11 + q then stair_ok = false end   -- causal: keys 1..query
  end
end
test.ok(stair_ok, "staircase.top_key: answer position x head -> a key at or before the query")
for _, key in ipairs({ "ablation", "ablation_resid_pre" }) do
  local a = res[key] or {}
  local fine = type(a.acc) == "table" and #a.acc == 18
  for p = 1, 18 do
    local row = fine and a.acc[p]
    if type(row) ~= "table" or #row ~= 6 then fine = false; break end
    for _, v in ipairs(row) do if not isnum(v, 0, 1) then fine = false end end
  end
  test.ok(fine, key .. ": position x digit accuracy, 18 x 6 fractions")
end
local ag = res.agree_algorithm or {}
test.ok(type(ag.overall) == "table" and isnum(ag.overall.model_alg, 0, 1) and isnum(ag.overall.model_true, 0, 1),
  "agree_algorithm.overall: model vs algorithm and vs truth")
test.ok(type(ag.S3) == "table" and (ag.S3.n == 0 or ag.S3.alg_true == 0), "agree_algorithm: the algorithm fails every S3 question")
test.ok(type(ag.S2) == "table" and (ag.S2.n == 0 or ag.S2.alg_true == 1), "agree_algorithm: the algorithm solves every S2 question")
test.ok(isnum(ag.overall and ag.overall.model_true or -1, 0, 1) and math.abs(ag.overall.model_true - res.acc_overall) < 1e-9,
  "greedy answers agree with the teacher-forced exact match")

-- the class curve: its last evaluation is at the last step, on the same test questions as the
-- final evaluation, so it must equal acc_overall and the final per-class numbers exactly
local cc = type(res.class_curve) == "table" and res.class_curve or {}
local steps_ok = type(cc.steps) == "table" and #cc.steps >= 2
for i = 2, steps_ok and #cc.steps or 0 do if not (cc.steps[i] > cc.steps[i - 1]) then steps_ok = false end end
test.ok(steps_ok, "class_curve.steps increase")
test.is(steps_ok and cc.steps[#cc.steps], res.config and res.config.recipe and res.config.recipe.steps, "the class curve ends at the last step")
test.is(steps_ok and cc.overall[#cc.overall], res.acc_overall, "class_curve.overall at the end = acc_overall")
for _, c in ipairs({ "S1", "S2", "S3" }) do
  test.is(steps_ok and cc[c] and cc[c][#cc[c]], res.acc_by_class and res.acc_by_class[c] and res.acc_by_class[c].acc,
    "class_curve." .. c .. " at the end = acc_by_class." .. c)
end

-- ---------------------------------------------------------------- the figures
local pngs = res.pngs or {}
test.ok(#pngs >= 10, "at least 10 PNGs listed (" .. #pngs .. ")")
for _, name in ipairs({ "digit_loss", "digit_loss_early", "digit_buckets", "staircase_head1", "staircase_head2", "staircase_head3",
  "ablation_resid_post", "ablation_resid_pre", "accuracy_by_class", "class_during_training" }) do
  test.png(out .. "/" .. name .. ".png", name .. ".png is a valid PNG")
end

-- ---------------------------------------------------------------- the checks and the report
local checks = res.checks or {}
for _, name in ipairs({ "acc_overall_ge_0_95", "s2_ge_0_85", "s3_weakest", "s3_learned_after_s2", "s3_errors_are_algorithm" }) do
  test.ok(type(checks[name]) == "table" and type(checks[name].holds) == "boolean" and type(checks[name].text) == "string",
    "checks." .. name .. ": {holds, text}")
end
test.is(checks.s3_at_least_0_2_below_s2, nil, "the old end-of-training gap check is gone")
test.is(checks.acc_overall_ge_0_95 and checks.acc_overall_ge_0_95.holds, (res.acc_overall or -1) >= 0.95,
  "checks.acc_overall_ge_0_95 holds exactly when acc_overall >= 0.95")
-- the cascade checks recomputed from the numbers in results.json
do
  local by = res.acc_by_class or {}
  local function a(c) return by[c] and by[c].acc ~= json.null and by[c].acc or nil end
  local weakest = a("S3") ~= nil
  for _, c in ipairs({ "S0", "S1", "S2" }) do if a(c) and weakest and a("S3") >= a(c) then weakest = false end end
  test.is(checks.s3_weakest and checks.s3_weakest.holds, weakest, "checks.s3_weakest agrees with acc_by_class")
  local widest = nil
  for i = 1, #(cc.steps or {}) do
    local x, y = cc.S2[i], cc.S3[i]
    if x ~= json.null and y ~= json.null and (widest == nil or x - y > widest) then widest = x - y end
  end
  test.is(checks.s3_learned_after_s2 and checks.s3_learned_after_s2.holds, widest ~= nil and widest >= 0.2,
    "checks.s3_learned_after_s2 agrees with class_curve")
  test.is(res.s2_s3_gap and res.s2_s3_gap.widest, widest == nil and json.null or widest, "s2_s3_gap.widest is that gap")
  local e = ag.S3 or {}
  test.is(checks.s3_errors_are_algorithm and checks.s3_errors_are_algorithm.holds,
    (e.errors or 0) > 0 and 2 * (e.errors_alg or 0) >= e.errors, "checks.s3_errors_are_algorithm agrees with agree_algorithm.S3")
end
do
  local f = io.open(out .. "/report.txt")
  local text = f and f:read("a") or ""
  if f then f:close() end
  test.ok(text:find("== attention staircase", 1, true) and text:find("check s2_ge_0_85: ", 1, true),
    "report.txt holds the printed report and the checks")
end

-- ---------------------------------------------------------------- a second run reuses the model
do
  local res2 = test.run_script("experiments/addition.lua", "--quick --seed 3", { out = out, name = "addition, a second run on the same --out" })
  test.is(res2.train_seconds, res.train_seconds, "it reuses the checkpoint (the training time is the first run's)")
  for _, key in ipairs({ "acc_by_class", "loss_curves", "bucket_curves", "class_curve", "staircase", "agree_algorithm",
    "digit_learned_step", "final_train_loss" }) do
    test.is(res2[key], res[key], "the reused model measures the same " .. key)
  end
end

-- clean up
for _, p in ipairs(pngs) do os.remove(p) end
os.execute("rm -rf '" .. out .. "'")
test.done()
