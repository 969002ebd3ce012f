-- The LEGO experiments end to end (--quick), their results.json and PNGs, and the association
-- score on hand-made attention patterns.
local T = require "milua.tensor"
local test = require "milua.test"
local json = require "milua.json"
local sys = require "milua.sys"
local lego = require "milua.data.lego"
local analysis = require "milua.analysis"
-- the LEGO helpers live beside the scripts, in experiments/lego/ (the tests run from the project root)
package.path = "experiments/?.lua;" .. package.path
local recipe = require "lego.recipe"
local curriculum = require "lego.curriculum"
local attention = require "lego.attention"
local cost = require "lego.cost"
local verdicts = require "lego.verdicts"

-- ---- the association score on hand-made patterns ----
T.seed(3)
local B, n_var = 6, 6
local b = lego.batch(B, n_var)
local tok = b.tokens
local Tn = tok:shape()[2]
local ar = T.arange(1, Tn + 1)
local eye = ar:unsqueeze(2):eq(ar:unsqueeze(1))
local other = tok:unsqueeze(3):eq(tok:unsqueeze(2)) * (1 - eye)          -- same token elsewhere
local cnt = other:sum(3):unsqueeze(3)
local ident = T.where(cnt:gt(0), other / cnt:clamp(1, 1e9), eye:unsqueeze(1):expand(B, Tn, Tn))
local uniform = T.full({ B, Tn, Tn }, 1 / Tn)
local selfonly = eye:unsqueeze(1):expand(B, Tn, Tn):float()
local pats = { T.stack({ ident, uniform }, 2), T.stack({ selfonly, uniform * 0.5 + ident * 0.5 }, 2) }

-- every chain variable but the last occurs twice: one twin, so the uniform mass is 1/T
local expect_base = 1 / Tn
do
  local f = "attention.assoc_score"
  local s, base = attention.assoc_score(pats, tok)
  test.is(s:shape(), { 2, 2 }, f .. ": one score per layer and head")
  test.close(s[1][1]:item(), 1, 1e-5, f .. ": attending only to identical tokens scores 1")
  test.close(s[1][2]:item(), base, 1e-5, f .. ": uniform attention scores the baseline")
  test.close(base, expect_base, 1e-6, f .. ": baseline = one twin among T keys = 1/T")
  test.close(s[2][1]:item(), 0, 1e-6, f .. ": attending to oneself is not association")
  test.close(s[2][2]:item(), 0.5 + 0.5 * base, 1e-5, f .. ": scores are linear in the pattern")
end
do
  local best = analysis.best_head(attention.assoc_score(pats, tok))
  test.is({ best.layer, best.head }, { 0, 1 }, "best_head: 0-based layer, 1-based head")
  test.is(#analysis.heads_over(attention.assoc_score(pats, tok), 0.4), 2, "heads_over: the heads at or above a threshold")
end

-- split by role: a head whose operand occurrences read their defining twin and whose defining
-- occurrences attend to themselves scores 1 / 0 by role and 0.5 overall (one twin each way)
do
  local def = b.eval_mask:unsqueeze(3)                                       -- [B, T, 1]
  local oneway = T.where(def:gt(0), eye:unsqueeze(1):expand(B, Tn, Tn):float(), ident)
  local r = attention.assoc_by_role({ T.stack({ ident, oneway, uniform }, 2) }, tok, b.eval_mask)
  test.is(r.n.defining, B * (n_var - 1), "assoc_by_role: every variable but the last has a defining query with a twin")
  test.is(r.n.operand, B * (n_var - 1), "assoc_by_role: and an operand query")
  test.close(r.operand[1][1]:item(), 1, 1e-5, "assoc_by_role: identity attention reads the twin from the operand side")
  test.close(r.defining[1][1]:item(), 1, 1e-5, "assoc_by_role: and from the defining side")
  test.close(r.operand[1][2]:item(), 1, 1e-5, "assoc_by_role: a one-way head reads the definition from the operand")
  test.close(r.defining[1][2]:item(), 0, 1e-6, "assoc_by_role: and nothing from the defining side")
  test.close(attention.assoc_score({ T.stack({ ident, oneway, uniform }, 2) }, tok)[1][2]:item(), 0.5, 1e-5,
    "a one-way head's association score is the mean of the two roles: 0.5")
  test.close(r.operand[1][3]:item(), 1 / Tn, 1e-5, "assoc_by_role: uniform attention gives 1/T on each side")
end

-- a role with no query at all (no defining occurrence marked) scores 0, with the right shape
do
  local r = attention.assoc_by_role({ T.stack({ ident, uniform }, 2), T.stack({ uniform, ident }, 2) }, tok, T.zeros(B, Tn))
  test.is(r.n.defining, 0, "assoc_by_role: no defining query")
  test.is({ r.defining:shape(), r.defining:abs():sum():item() }, { { 2, 2 }, 0 }, "assoc_by_role: an empty role scores 0 per layer and head")
  test.close(r.operand[1][1]:item(), 1, 1e-5, "assoc_by_role: every variable query is then an operand query")
end

-- a model's own patterns go through the same path: scores lie in [0, 1]
do
  T.seed(1)
  local m = recipe.model { n_var = n_var, n_layers = 2, d_model = 16, n_heads = 2, d_mlp = 32,
    fixed_patterns = { [1] = "assoc" } }
  local s = attention.assoc(m, b)
  test.close(s:select(2, 1), 1, 1e-5, "a fixed association head (LEGO attention module) scores 1 in every layer")
  test.ok(s:select(2, 2):max():item() < 0.5, "a random head does not")
end

-- the FLOPs a fixed head saves, counted by hand: D 8, E 4, T 5, two layers, one fixed head saves
-- Q and K (2 x 2*T*D*E = 640) and the scores (2*T*T*E = 200) per layer
do
  local cfg = { n_layers = 2, d_model = 8, n_heads = 2, d_head = 4, d_mlp = 16, d_vocab = 36, d_vocab_out = 2,
    fixed_patterns = { [1] = "assoc" } }
  local f = cost.flops(cfg, 5)
  test.is(f.saved, 2 * 840, "cost.flops: a fixed head saves its Q, K and scores in every layer")
  -- per layer: Q, K, V 1920; scores 400; apply 400; output 640; MLP 2560. Unembed 2*5*8*2 = 160
  test.is(f.total, 2 * (1920 + 400 + 400 + 640 + 2560) + 160, "cost.flops: the total counts every product once")
end

-- ---- the test sets: drawn from their own seed, in the sorted order of their names (pairs() order
-- changes from one process to the next, and with it which set got which sequences)
do
  local r = { seed = 4, n_test = 20, n_var = 4 }
  local sets = recipe.test_sets(r, { shuffled = false, ordered = true, b_extra = false })
  T.seed(4 * 7919 + 17)
  local want = {}
  for _, k in ipairs({ { "b_extra", false }, { "ordered", true }, { "shuffled", false } }) do
    want[k[1]] = lego.batch(20, 4, { ordered = k[2] }).tokens
  end
  test.is({ sets.b_extra.tokens, sets.ordered.tokens, sets.shuffled.tokens }, { want.b_extra, want.ordered, want.shuffled },
    "test_sets: drawn from seed * 7919 + 17 in the sorted order of the names")
end

-- ---- the training batcher: segments, operand labels, the curriculum's growth ----
do
  T.seed(11)
  local batch, st = curriculum.batcher { n_var = 5, tokens = 1024, curriculum = { start = 2, extra = 1, grow_at = 0.95 }, operands = 3.0 }
  local tok, tgt, mask = batch(1)
  test.is(st.cur, 2, "batcher: the curriculum starts at chains of 2")
  test.is(tok:shape(), { 1024 // (5 * 3 + 2), 17 }, "batcher: cur + extra = 3 clauses per sequence, tokens // length rows")
  -- every label, left-hand or operand, agrees with an independent evaluation of the rewritten text
  local bad, n_lhs, n_op, max_depth = 0, 0, 0, 0
  local tt, mm, dd = tgt:totable(), mask:totable(), st.last.depth:totable()
  for r = 1, tok:shape()[1] do
    local row = tok:select(1, r)
    local values, depths = lego.resolve(row)
    local ids = row:totable()
    for p = 1, #ids do
      local w = mm[r][p]
      if w > 0 then
        local name = lego.vocab[ids[p]]
        if values[name] == nil or tt[r][p] ~= values[name] + 1 then bad = bad + 1 end
        if w == 1 then
          n_lhs = n_lhs + 1
          if dd[r][p] ~= depths[name] then bad = bad + 1 end
          max_depth = math.max(max_depth, depths[name])
        else n_op = n_op + 1 end
      end
    end
  end
  test.is(bad, 0, string.format("batcher: %d left-hand and %d operand labels match lego.resolve", n_lhs, n_op))
  test.ok(n_op > 0 and max_depth <= 1, "batcher: operands are labelled; segments of at most 2 keep depths below 2")
  -- perfect predictions grow the chain at once; wrong ones never, unless max_stage steps pass
  local function perfect() return T.one_hot(st.last.targets, 2) * 10 end
  st.observe(perfect())
  test.is(st.cur, 3, "batcher: accuracy >= grow_at at every depth grows the chains by one")
  local b2, st2 = curriculum.batcher { n_var = 4, tokens = 512, curriculum = { start = 2, grow_at = 0.95 } }
  local b3, st3 = curriculum.batcher { n_var = 4, tokens = 512, curriculum = { start = 2, grow_at = 0.95, max_stage = 3 } }
  for step = 1, 7 do
    for _, pair in ipairs({ { b2, st2 }, { b3, st3 } }) do
      pair[1](step)
      pair[2].observe(T.one_hot(3 - pair[2].last.targets, 2) * 10)   -- every prediction wrong
    end
  end
  test.is(st2.cur, 2, "batcher: wrong predictions never grow the chains")
  test.is(st3.cur, 4, "batcher: max_stage = 3 grows them every 3 steps regardless (2 -> 3 at step 3, -> 4 at step 6)")
  test.is(st3.grown, { [2] = 0, [3] = 3, [4] = 6 }, "batcher: st.grown records the step of each growth")
end

-- ---- "trained" and the verdicts, on hand-made accuracies ----
do
  local ok, low = recipe.trained({ 1, 0.99, 0.96, 0.5, 0.5 }, 3)
  test.is({ ok, low }, { false, 0.96 }, "recipe.trained: one supervised depth at 0.96 < 0.97: not trained")
  ok, low = recipe.trained({ 0.97, 0.98, 1, 0.5, 0.4 }, 3)
  test.is({ ok, low }, { true, 0.97 }, "recipe.trained: every supervised depth >= 0.97 (unsupervised ones do not count)")
  test.is(recipe.trained({ 1, 0 / 0, 1 }, 3), false, "recipe.trained: a depth not measured (NaN) is not learned")
  local curve = { steps = { 50, 100, 150, 200 }, acc = { { 0.9, 0.5, 0.5 }, { 0.95, 0.89, 0.5 }, { 0.95, 0.9, 0.5 }, { 1, 1, 0.98 } } }
  test.is(recipe.escape_step(curve, 2, 0.9), 150, "recipe.escape_step: the first step with every supervised depth >= 0.9")
  test.is(recipe.escape_step(curve, 3, 0.9), 200, "recipe.escape_step: more supervised depths, a later step")
  test.is(recipe.escape_step(curve, 3, 0.99), nil, "recipe.escape_step: nil when never reached")
  test.is(recipe.escape_step(nil, 2, 0.9), nil, "recipe.escape_step: nil without a curve (an old checkpoint)")
end
do
  local good = { 1, 1, 1, 0.8, 0.6 }
  local function model(acc, extra) return verdicts.model(acc, 3, extra) end
  test.is(model(good).trained, true, "verdicts.model: trained from the supervised depths")
  test.is(model({ 1, 0.9, 0.6, 0.5, 0.5 }).supervised_min, 0.6, "verdicts.model: supervised_min")
  -- judge: decide runs only when every model it needs trained
  local called = false
  local v = verdicts.judge({ a = model(good), b = model({ 1, 0.6, 0.5, 0.5, 0.5 }) }, { "a", "b" },
    function() called = true; return true, "decided" end)
  test.ok(v.holds == nil and not called, "verdicts.judge: no holds, and no decision, when a needed model did not train")
  test.ok(v.text:find("b (lowest supervised depth 0.500", 1, true) ~= nil, "verdicts.judge: the text names that model: " .. v.text)
  v = verdicts.judge({ a = model(good) }, { "a", "c" }, function() called = true; return true, "x" end)
  test.ok(v.holds == nil and not called and v.text:find("c (not trained here)", 1, true),
    "verdicts.judge: a model missing altogether counts as not trained")
  v = verdicts.judge({ a = model(good), b = model(good) }, { "a", "b" }, function() return false, "decided" end)
  test.is({ v.holds, v.text }, { false, "decided" }, "verdicts.judge: both trained: the decision stands")

  -- the shortcut: the ordered-data model loses 0.3 on shuffled clauses, the shuffled-data one 0.02
  local models = {
    ordered = model({ 1, 1, 1, 0.5, 0.5 }, { acc_on = { ordered = { 1, 1, 1, 0.5, 0.5 }, shuffled = { 0.9, 0.6, 0.6, 0.5, 0.5 } } }),
    shuffled = model(good, { acc_on = { ordered = { 1, 0.98, 0.96, 0.7, 0.6 }, shuffled = good } }),
  }
  v = verdicts.shortcut(models, 3)
  test.is(v.holds, true, "verdicts.shortcut: a drop of 0.30 against 0.02 is a shortcut")
  test.ok(v.text:find("loses 0.300", 1, true) ~= nil, "verdicts.shortcut: the text gives the drop: " .. v.text)
  models.shuffled.acc_on.ordered = { 0.7, 0.7, 0.7, 0.5, 0.5 }
  test.is(verdicts.shortcut(models, 3).holds, false, "verdicts.shortcut: not when the shuffled-data model drops as much")
  models.ordered.trained = false
  test.is(verdicts.shortcut(models, 3).holds, nil, "verdicts.shortcut: not judged when the ordered-data model did not train")
  models.ordered.trained = true
  -- heads: position-based (offset mass above association) for the ordered-data model only
  local function h(a, o) return { best_assoc = { layer = 1, head = 2, score = a }, best_offset = { layer = 0, head = 3, score = o } } end
  test.is(verdicts.heads_by_position(models, { ordered = h(0.1, 0.5), shuffled = h(0.6, 0.2) }).holds, true,
    "verdicts.heads_by_position: ordered by position, shuffled by identity")
  test.is(verdicts.heads_by_position(models, { ordered = h(0.6, 0.5), shuffled = h(0.6, 0.2) }).holds, false,
    "verdicts.heads_by_position: not when both attend by identity")
  -- tying: the mean over the unsupervised depths 3-4
  local tm = { shuffled = model(good, { steps = 4000 }), tied = model({ 1, 1, 1, 0.9, 0.7 }, { steps = 2000 }) }
  test.is(verdicts.tying(tm, 3, 5).holds, true, "verdicts.tying: 0.80 against 0.70 on the unsupervised depths")
  tm.tied = model({ 1, 1, 1, 0.81, 0.6 }, { steps = 2000 })
  test.is(verdicts.tying(tm, 3, 5).holds, false, "verdicts.tying: 0.705 against 0.70 is within 0.02: does not hold")
  tm.tied = model({ 1, 0.9, 0.6, 0.9, 0.9 }, { steps = 2000 })
  test.is(verdicts.tying(tm, 3, 5).holds, nil, "verdicts.tying: an untrained tied model is not judged, whatever its depth 3-4")
  -- mimicking: sooner (escape step) and further (unsupervised mean), each judged on its own
  local im = { random = model(good, { escape_step = 900, steps = 4000 }),
    mimic = model({ 1, 1, 1, 0.95, 0.9 }, { escape_step = 300, steps = 2000 }) }
  local r = verdicts.init(im, "mimic", "random", 3, 5, "mimic")
  test.is({ r.sooner.holds, r.further.holds }, { true, true }, "verdicts.init: escaped at 300 < 900 and 0.925 > 0.70")
  im.mimic.escape_step = 900
  test.is(verdicts.init(im, "mimic", "random", 3, 5, "mimic").sooner.holds, false, "verdicts.init: the same step is not sooner")
  im.random = model({ 1, 0.5, 0.5, 0.5, 0.5 }, { escape_step = nil, steps = 4000 })
  r = verdicts.init(im, "mimic", "random", 3, 5, "mimic")
  test.ok(r.sooner.holds == nil and r.further.holds == nil, "verdicts.init: a random-init model that did not train: neither judged")
end

-- ---- the scripts, end to end ----
local milua = test.milua()
local dir = test.tmpdir()

-- under the sanitizers everything is ~10x slower: a shorter run still covers every line
local extra = os.getenv("MILUA_SANITIZED") and " --steps 4 --n_test 40 --mimic_steps 2" or ""

local function run(script, flags)
  local ext = script == "lego_mimic" and extra or extra:gsub(" %-%-mimic_steps %d+", "")
  local res, out = test.run_script("experiments/" .. script .. ".lua", "--quick" .. (flags or "") .. ext,
    { out = dir .. "/" .. script, name = script })
  return res, out
end

local function all_in(list, lo, hi)
  if type(list) ~= "table" or #list == 0 then return false end
  for _, v in ipairs(list) do if type(v) ~= "number" or v < lo or v > hi then return false end end
  return true
end

-- a bad flag: one line, non-zero status, nothing written
do
  local out = dir .. "/bad"
  local ok = os.execute(string.format("%s experiments/lego_assoc.lua --steps 0 --out %s > %s/bad.log 2>&1", milua, out, dir))
  local f = io.open(dir .. "/bad.log")
  local text = f and f:read("a") or ""
  if f then f:close() end
  test.ok(not ok and text == "experiments/lego_assoc.lua: flag --steps: expected a positive number of steps, got 0\n",
    "lego_assoc --steps 0: refused in one line")
  test.ok(not sys.is_dir(out), "lego_assoc --steps 0: no output directory made")
end

local assoc_seconds
do
  local res, out = run("lego_assoc")
  test.pinned(res, "lego_assoc", "experiments/lego_assoc.lua", "--quick" .. extra:gsub(" %-%-mimic_steps %d+", ""))
  assoc_seconds = res.train_seconds
  test.ok(type(res.assoc_operand) == "table" and #res.assoc_operand == 4 and all_in(res.assoc_operand[1], 0, 1),
    "lego_assoc: assoc_operand, layer x head")
  test.is(res.assoc_operand, res.assoc_by_role and res.assoc_by_role.operand, "lego_assoc: assoc_operand is the operand role's score")
  local best = -1
  for _, row in ipairs(res.assoc_operand or {}) do for _, x in ipairs(row) do best = math.max(best, x) end end
  test.close(res.best_head_operand and res.best_head_operand.score or -1, best, 1e-6, "lego_assoc: best_head_operand is its maximum")
  test.ok(type(res.trained) == "boolean" and res.trained == (res.supervised_min >= 0.97), "lego_assoc: trained from supervised_min")
  test.png(out .. "/assoc_operand_scores.png", "lego_assoc: assoc_operand_scores.png is a PNG", 16)
  test.ok(all_in(res.acc_by_depth, 0, 1) and #res.acc_by_depth == res.n_var, "lego_assoc: acc_by_depth, one per depth")
  test.ok(type(res.assoc_score) == "table" and #res.assoc_score == 4 and all_in(res.assoc_score[1], 0, 1),
    "lego_assoc: assoc_score is layer x head")
  test.ok(type(res.best_head) == "table" and math.type(res.best_head.layer) == "integer"
    and math.type(res.best_head.head) == "integer" and all_in({ res.best_head.score }, 0, 1), "lego_assoc: best_head {layer, head, score}")
  test.ok(all_in({ res.baseline }, 0, 1) and res.baseline > 0, "lego_assoc: baseline")
  test.ok(all_in({ res.train_seconds }, 0, 1e6), "lego_assoc: train_seconds")
  test.ok(type(res.association_heads) == "table", "lego_assoc: association_heads listed")
  local br = res.assoc_by_role or {}
  local role_ok = type(br.operand) == "table" and type(br.defining) == "table" and #br.operand == 4
  for l = 1, role_ok and 4 or 0 do
    if not (all_in(br.operand[l], 0, 1) and all_in(br.defining[l], 0, 1)) then role_ok = false end
    for h = 1, role_ok and #br.operand[l] or 0 do   -- the score is the mean of the two roles
      if math.abs((br.operand[l][h] + br.defining[l][h]) / 2 - res.assoc_score[l][h]) > 1e-4 then role_ok = false end
    end
  end
  test.ok(role_ok, "lego_assoc: assoc_by_role, layer x head per role, averaging to assoc_score")
  for _, p in ipairs({ "assoc_scores", "top_head_pattern", "acc_by_depth" }) do
    test.png(out .. "/" .. p .. ".png", "lego_assoc: " .. p .. ".png is a PNG", 16)
  end
  -- a second run reuses the checkpoint and reports the same numbers
  local res2 = run("lego_assoc")
  test.ok(res2.reused_checkpoint == true, "lego_assoc: a second run reuses the finished checkpoint")
  test.is(res2.acc_by_depth, res.acc_by_depth, "lego_assoc: and measures the same accuracies")
end

-- models {name: {acc_by_depth, supervised_min, trained}} and verdicts {claim: {holds?, text}}, and
-- a verdict has holds exactly when every model it needs trained (at --quick none does)
local function models_and_verdicts(script, res, names, needs)
  local m = res.models or {}
  for _, k in ipairs(names) do
    local e = m[k]
    test.ok(type(e) == "table" and all_in(e.acc_by_depth, 0, 1) and #e.acc_by_depth == res.n_var
      and all_in({ e.supervised_min }, 0, 1) and type(e.trained) == "boolean", script .. ": models." .. k ..
      " {acc_by_depth, supervised_min, trained}")
    if type(e) == "table" and type(e.acc_by_depth) == "table" then
      local low = math.huge
      for d = 1, res.n_train_var do low = math.min(low, e.acc_by_depth[d]) end
      test.ok(e.supervised_min == low and e.trained == (low >= 0.97),
        script .. ": models." .. k .. ": supervised_min is the lowest supervised depth, trained = it is >= 0.97")
      test.is(e.trained, false, script .. ": models." .. k .. " did not train at --quick (the plateau)")
    end
  end
  local v = res.verdicts or {}
  for claim, need in pairs(needs) do
    local all = true
    for _, k in ipairs(need) do if not (m[k] and m[k].trained) then all = false end end
    test.ok(type(v[claim]) == "table" and type(v[claim].text) == "string" and v[claim].text ~= "",
      script .. ": verdicts." .. claim .. " has a text")
    test.is(v[claim] and type(v[claim].holds), all and "boolean" or "nil",
      script .. ": verdicts." .. claim .. ".holds is " .. (all and "decided" or "absent: a model it needs did not train"))
  end
end


do
  local res, out = run("lego_shortcut", " --assoc_out " .. dir .. "/lego_assoc")
  test.pinned(res, "lego_shortcut", "experiments/lego_shortcut.lua", "--quick" .. extra:gsub(" %-%-mimic_steps %d+", ""))
  models_and_verdicts("lego_shortcut", res, { "shuffled", "ordered", "tied" },
    { shortcut = { "ordered", "shuffled" }, heads_by_position = { "ordered", "shuffled" }, tying_helps = { "tied", "shuffled" } })
  local m = res.models or {}
  test.ok(m.shuffled and m.shuffled.reused == true and m.shuffled.train_seconds == assoc_seconds,
    "lego_shortcut: the shuffled-data model is lego_assoc's checkpoint, reused (its training time is lego_assoc's)")
  for _, k in ipairs({ "ordered", "shuffled" }) do
    for _, o in ipairs({ "ordered", "shuffled" }) do
      test.ok(m[k] and m[k].acc_on and all_in(m[k].acc_on[o], 0, 1), "lego_shortcut: models." .. k .. ".acc_on." .. o)
    end
  end
  test.is(m.ordered and m.ordered.acc_by_depth, m.ordered and m.ordered.acc_on.ordered,
    "lego_shortcut: the ordered-data model is judged trained on ordered clauses")
  test.ok(type(res.heads) == "table" and type(res.heads.ordered) == "table", "lego_shortcut: head comparison")
  for _, p in ipairs({ "acc_by_depth", "training_curves", "assoc_ordered", "assoc_shuffled", "offset_ordered", "offset_shuffled" }) do
    test.png(out .. "/" .. p .. ".png", "lego_shortcut: " .. p .. ".png is a PNG", 16)
  end
end

do
  local res, out = run("lego_mimic", " --assoc_out " .. dir .. "/lego_assoc")
  test.pinned(res, "lego_mimic", "experiments/lego_mimic.lua", "--quick" .. extra)
  models_and_verdicts("lego_mimic", res, { "random", "mimic", "module" },
    { mimic_escapes_sooner = { "mimic", "random" }, mimic_generalises_further = { "mimic", "random" },
      module_escapes_sooner = { "module", "random" }, module_generalises_further = { "module", "random" } })
  local m = res.models or {}
  test.ok(m.random and m.random.reused == true and m.random.train_seconds == assoc_seconds,
    "lego_mimic: the random-init model is lego_assoc's checkpoint, reused")
  test.ok(m.mimic and m.mimic.pretrain and m.mimic.pretrain.kl_after < m.mimic.pretrain.kl_before,
    "lego_mimic: mimicking lowers the KL to the target patterns")
  test.ok(m.module and m.module.best_head and m.module.best_head.score > 0.99, "lego_mimic: the module's fixed head is an association head")
  test.ok(type(res.flops) == "table" and res.flops.saved_fraction > 0 and res.flops.saved_fraction < 1
    and res.flops.forward_ms_module > 0 and res.flops.forward_ms_plain > 0, "lego_mimic: FLOPs saved and forward times measured")
  for _, p in ipairs({ "acc_by_depth", "training_curves", "assoc_random", "assoc_mimic", "mimic_L0H1_pattern" }) do
    test.png(out .. "/" .. p .. ".png", "lego_mimic: " .. p .. ".png is a PNG", 16)
  end
end

os.execute("rm -rf '" .. dir .. "'")
test.done()
