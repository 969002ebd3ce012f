-- LEGO shortcuts and weight tying (Zhang et al. 2022). Two encoders with the same recipe and
-- budget, one trained on chain-ordered clauses and one on shuffled clauses, are tested on both
-- orders, depth by depth: the ordered-data model's drop on shuffled input is the shortcut. Their
-- heads are compared on shuffled input: identity-based (association score) against position-based
-- (mass at the offsets where chain order puts the other occurrence, +-8). Then a weight-tied
-- encoder on shuffled data: accuracy on the depths never supervised, against the untied one.
--   milua experiments/lego_shortcut.lua [--out DIR] [--seed N] [--steps N] [--quick]
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"
local LA = require "milua.lego_analysis"

local opts = cli.parse(arg, LA.flags(), "milua experiments/lego_shortcut.lua -- shortcut solutions and weight tying")
local r = LA.options(opts, "out/lego_shortcut")
if opts.n_train_var == 0 then r.n_train_var = math.max(1, r.n_var - 2) end   -- keep depths to generalise to
if opts.steps == 0 and not opts.quick then r.steps = LA.recipe.compare_steps end
local t_start = sys.clock()
local sets = LA.test_sets(r, { ordered = true, shuffled = false })
print(string.format("LEGO shortcut: %d variables, depths 0..%d supervised, %d steps per model, seed %d",
  r.n_var, r.n_train_var - 1, r.steps, r.seed))

local models, rows = {}, {}
for _, v in ipairs({ { "ordered", { ordered = true } }, { "shuffled", {} }, { "tied", { tie_layers = true } } }) do
  local m, info = LA.fit(r, v[1], v[2])
  models[v[1]] = { model = m, info = info }
  print(string.format("%-8s model: %s in %.0f s", v[1], info.reused and "reused" or "trained", info.train_seconds))
end
local acc = {}
for _, m in ipairs({ "ordered", "shuffled" }) do
  for _, s in ipairs({ "ordered", "shuffled" }) do acc[m .. "_on_" .. s] = LA.acc_by_depth(models[m].model, sets[s]) end
end
acc.tied_on_shuffled = LA.acc_by_depth(models.tied.model, sets.shuffled)
local sup = r.n_train_var
print("test accuracy by depth (model on test order; depths >= " .. sup .. " never supervised):")
for _, k in ipairs({ "ordered_on_ordered", "ordered_on_shuffled", "shuffled_on_ordered", "shuffled_on_shuffled", "tied_on_shuffled" }) do
  print(string.format("  %-22s %s", k, LA.fmt(acc[k])))
end

-- the shortcut: mean accuracy over supervised depths, ordered test minus shuffled test
local function mean(list, from, to)
  local s, n = 0, 0
  for d = from, to do s, n = s + list[d + 1], n + 1 end
  return n > 0 and s / n or 0 / 0
end
local drop_o = mean(acc.ordered_on_ordered, 0, sup - 1) - mean(acc.ordered_on_shuffled, 0, sup - 1)
local drop_s = mean(acc.shuffled_on_ordered, 0, sup - 1) - mean(acc.shuffled_on_shuffled, 0, sup - 1)
local shortcut = drop_o >= 0.1 and drop_o > drop_s + 0.05
local v_short = string.format("%s: the ordered-data model loses %.3f on shuffled input (supervised depths), " ..
  "the shuffled-data model %.3f", shortcut and "shortcut found" or "no clear shortcut", drop_o, drop_s)
print(v_short)

-- heads on shuffled input: identity-based (association) vs position-based (chain-order offsets)
local heads = {}
for _, m in ipairs({ "ordered", "shuffled" }) do
  local tokens = sets.shuffled.tokens:narrow(1, 1, math.min(256, r.n_test))
  local pats = LA.patterns(models[m].model, tokens)
  local assoc, base = LA.assoc_score(pats, tokens)
  local offset = LA.offset_score(pats, tokens, { -8, 8 })
  heads[m] = { assoc = assoc:totable(), offset = offset:totable(), best_assoc = LA.best_head(assoc),
    best_offset = LA.best_head(offset), baseline = base }
  LA.plot_scores(assoc, r.out .. "/assoc_" .. m .. ".png", m .. "-data model: association score")
  LA.plot_scores(offset, r.out .. "/offset_" .. m .. ".png", m .. "-data model: mass at offsets +-8")
  print(string.format("  %-8s model on shuffled input: best association L%dH%d %.3f, best offset+-8 L%dH%d %.3f (uniform %.3f)",
    m, heads[m].best_assoc.layer, heads[m].best_assoc.head, heads[m].best_assoc.score,
    heads[m].best_offset.layer, heads[m].best_offset.head, heads[m].best_offset.score, base))
end
local v_heads = string.format("attention: the ordered-data model's strongest head is %s (association %.2f vs offset %.2f); " ..
  "the shuffled-data model's is %s (association %.2f vs offset %.2f)",
  heads.ordered.best_offset.score > heads.ordered.best_assoc.score and "position-based" or "identity-based",
  heads.ordered.best_assoc.score, heads.ordered.best_offset.score,
  heads.shuffled.best_offset.score > heads.shuffled.best_assoc.score and "position-based" or "identity-based",
  heads.shuffled.best_assoc.score, heads.shuffled.best_offset.score)
print(v_heads)

-- weight tying: accuracy on the depths never supervised
local un_u, un_t = mean(acc.shuffled_on_shuffled, sup, r.n_var - 1), mean(acc.tied_on_shuffled, sup, r.n_var - 1)
local v_tied = string.format("weight-tied %s on the unsupervised depths at this budget: %.3f vs untied %.3f",
  un_t > un_u + 0.02 and "generalised better" or (un_t < un_u - 0.02 and "generalised worse" or "did not differ"), un_t, un_u)
print(v_tied)

LA.plot_depth({ { label = "ordered model, ordered test", acc = acc.ordered_on_ordered },
  { label = "ordered model, shuffled test", acc = acc.ordered_on_shuffled },
  { label = "shuffled model, shuffled test", acc = acc.shuffled_on_shuffled },
  { label = "tied model, shuffled test", acc = acc.tied_on_shuffled } }, r.out .. "/acc_by_depth.png")
json.write(r.out .. "/results.json", {
  acc_by_depth = acc, n_var = r.n_var, n_train_var = sup, steps = r.steps, seed = r.seed,
  shortcut = { drop_ordered_model = drop_o, drop_shuffled_model = drop_s, found = shortcut, verdict = v_short },
  heads = heads, heads_verdict = v_heads,
  tying = { unsupervised_tied = un_t, unsupervised_untied = un_u, verdict = v_tied },
  train_seconds = { ordered = models.ordered.info.train_seconds, shuffled = models.shuffled.info.train_seconds,
    tied = models.tied.info.train_seconds },
  wall_seconds = sys.clock() - t_start,
})
print(string.format("wrote %s/results.json and 6 PNGs (%.0f s in all)", r.out, sys.clock() - t_start))
