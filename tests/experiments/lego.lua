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

-- ---- the scripts, end to end ----
local milua = arg[-1] or "build/milua"
local dir = os.tmpname()
os.remove(dir)
assert(sys.mkdir(dir))

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

do
  local res, out = run("lego_assoc")
  test.pinned(res, "lego_assoc", "experiments/lego_assoc.lua", "--quick" .. extra:gsub(" %-%-mimic_steps %d+", ""))
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

do
  local res, out = run("lego_shortcut")
  test.pinned(res, "lego_shortcut", "experiments/lego_shortcut.lua", "--quick" .. extra:gsub(" %-%-mimic_steps %d+", ""))
  local acc = res.acc_by_depth or {}
  for _, k in ipairs({ "ordered_on_ordered", "ordered_on_shuffled", "shuffled_on_ordered", "shuffled_on_shuffled", "tied_on_shuffled" }) do
    test.ok(all_in(acc[k], 0, 1), "lego_shortcut: acc_by_depth." .. k)
  end
  test.ok(type(res.shortcut) == "table" and type(res.shortcut.verdict) == "string"
    and type(res.shortcut.drop_ordered_model) == "number", "lego_shortcut: shortcut verdict and drop")
  test.ok(type(res.tying) == "table" and type(res.tying.verdict) == "string", "lego_shortcut: tying verdict")
  test.ok(type(res.heads) == "table" and type(res.heads.ordered) == "table" and type(res.heads_verdict) == "string",
    "lego_shortcut: head comparison")
  for _, p in ipairs({ "acc_by_depth", "assoc_ordered", "assoc_shuffled", "offset_ordered", "offset_shuffled" }) do
    test.png(out .. "/" .. p .. ".png", "lego_shortcut: " .. p .. ".png is a PNG", 16)
  end
end

do
  local res, out = run("lego_mimic")
  test.pinned(res, "lego_mimic", "experiments/lego_mimic.lua", "--quick" .. extra)
  local m = res.models or {}
  for _, k in ipairs({ "random", "mimic", "module" }) do
    test.ok(type(m[k]) == "table" and all_in(m[k].acc_by_depth, 0, 1), "lego_mimic: " .. k .. " accuracy by depth")
  end
  test.ok(m.mimic and m.mimic.pretrain and m.mimic.pretrain.kl_after < m.mimic.pretrain.kl_before,
    "lego_mimic: mimicking lowers the KL to the target patterns")
  test.ok(m.module and m.module.best_head and m.module.best_head.score > 0.99, "lego_mimic: the module's fixed head is an association head")
  test.ok(type(res.flops) == "table" and res.flops.saved_fraction > 0 and res.flops.saved_fraction < 1
    and res.flops.forward_ms_module > 0 and res.flops.forward_ms_plain > 0, "lego_mimic: FLOPs saved and forward times measured")
  test.ok(type(res.verdicts) == "table" and type(res.verdicts.mimic) == "string", "lego_mimic: verdicts")
  for _, p in ipairs({ "acc_by_depth", "assoc_random", "assoc_mimic", "mimic_L0H1_pattern" }) do
    test.png(out .. "/" .. p .. ".png", "lego_mimic: " .. p .. ".png is a PNG", 16)
  end
end

os.execute("rm -rf '" .. dir .. "'")
test.done()
