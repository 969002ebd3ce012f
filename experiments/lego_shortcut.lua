-- LEGO shortcuts and weight tying (Zhang et al. 2022). Two encoders with the same recipe and
-- budget, one trained on chain-ordered clauses and one on shuffled clauses, are tested on both
-- orders, depth by depth: the ordered-data model's drop on shuffled input is the shortcut. Their
-- heads are compared on shuffled input: identity-based (association score) against position-based
-- (mass at the offsets where chain order puts the other occurrence, +-8). Then a weight-tied
-- encoder on shuffled data: accuracy on the depths never supervised, against the untied one.
--   milua experiments/lego_shortcut.lua [--out DIR] [--seed N] [--steps N] [--quick]
-- Helpers: experiments/lego/ (recipe and training, the attention scores, the figures).
local experiment = require "milua.experiment"   -- first: it puts experiments/ on package.path
local analysis = require "milua.analysis"
local recipe = require "lego.recipe"
local attention = require "lego.attention"
local figures = require "lego.figures"

local E = experiment.start(arg, {
  name = "lego_shortcut",
  about = "milua experiments/lego_shortcut.lua -- shortcut solutions and weight tying",
  flags = recipe.flags(),
})
local r = recipe.options(E)
if E.opts.n_train_var == 0 then r.n_train_var = math.max(1, r.n_var - 2) end   -- keep depths to generalise to
if not E.opts.steps and not E.opts.quick then r.steps = recipe.default.compare_steps end
local sets = recipe.test_sets(r, { ordered = true, shuffled = false })
local sup = r.n_train_var
E:say("LEGO shortcut: %d variables, depths 0..%d supervised, %d steps per model, seed %d",
  r.n_var, sup - 1, r.steps, r.seed)

-- three models, one recipe: chain-ordered data, shuffled data, shuffled data with tied layers
local models = {}
for _, v in ipairs({ { "ordered", { ordered = true } }, { "shuffled", {} }, { "tied", { tie_layers = true } } }) do
  local m, info = recipe.fit(E, r, v[1], v[2])
  models[v[1]] = { model = m, info = info }
  E:say("%-8s model: %s in %.0f s", v[1], info.reused and "reused" or "trained", info.train_seconds)
end
local acc = {}
for _, m in ipairs({ "ordered", "shuffled" }) do
  for _, s in ipairs({ "ordered", "shuffled" }) do acc[m .. "_on_" .. s] = recipe.acc_by_depth(models[m].model, sets[s]) end
end
acc.tied_on_shuffled = recipe.acc_by_depth(models.tied.model, sets.shuffled)
E:say("test accuracy by depth (model on test order; depths >= " .. sup .. " never supervised):")
for _, k in ipairs({ "ordered_on_ordered", "ordered_on_shuffled", "shuffled_on_ordered", "shuffled_on_shuffled", "tied_on_shuffled" }) do
  E:say("  %-22s %s", k, recipe.fmt(acc[k]))
end

-- the shortcut: mean accuracy over supervised depths, ordered test minus shuffled test
local mean = recipe.mean
local drop_o = mean(acc.ordered_on_ordered, 0, sup - 1) - mean(acc.ordered_on_shuffled, 0, sup - 1)
local drop_s = mean(acc.shuffled_on_ordered, 0, sup - 1) - mean(acc.shuffled_on_shuffled, 0, sup - 1)
local shortcut = drop_o >= 0.1 and drop_o > drop_s + 0.05
local v_short = string.format("%s: the ordered-data model loses %.3f on shuffled input (supervised depths), " ..
  "the shuffled-data model %.3f", shortcut and "shortcut found" or "no clear shortcut", drop_o, drop_s)
E:check("shortcut", shortcut, "%s", v_short)

-- heads on shuffled input: identity-based (association) vs position-based (chain-order offsets)
local heads = {}
for _, m in ipairs({ "ordered", "shuffled" }) do
  local tokens = sets.shuffled.tokens:narrow(1, 1, math.min(256, r.n_test))
  local cache = attention.patterns(models[m].model, tokens)
  local assoc, base = attention.assoc_score(cache, tokens)
  local offset = attention.offset_score(cache, tokens, { -8, 8 })
  heads[m] = { assoc = assoc:totable(), offset = offset:totable(), best_assoc = analysis.best_head(assoc),
    best_offset = analysis.best_head(offset), baseline = base }
  figures.scores(assoc, E:file("assoc_" .. m .. ".png"), m .. "-data model: association score")
  figures.scores(offset, E:file("offset_" .. m .. ".png"), m .. "-data model: mass at offsets +-8")
  E:say("  %-8s model on shuffled input: best association L%dH%d %.3f, best offset+-8 L%dH%d %.3f (uniform %.3f)",
    m, heads[m].best_assoc.layer, heads[m].best_assoc.head, heads[m].best_assoc.score,
    heads[m].best_offset.layer, heads[m].best_offset.head, heads[m].best_offset.score, base)
end
local function by_position(h) return h.best_offset.score > h.best_assoc.score end
local v_heads = string.format("attention: the ordered-data model's strongest head is %s (association %.2f vs offset %.2f); " ..
  "the shuffled-data model's is %s (association %.2f vs offset %.2f)",
  by_position(heads.ordered) and "position-based" or "identity-based",
  heads.ordered.best_assoc.score, heads.ordered.best_offset.score,
  by_position(heads.shuffled) and "position-based" or "identity-based",
  heads.shuffled.best_assoc.score, heads.shuffled.best_offset.score)
E:check("heads_by_position", by_position(heads.ordered) and not by_position(heads.shuffled), "%s", v_heads)

-- weight tying: accuracy on the depths never supervised
local un_u, un_t = mean(acc.shuffled_on_shuffled, sup, r.n_var - 1), mean(acc.tied_on_shuffled, sup, r.n_var - 1)
local v_tied = string.format("weight-tied %s on the unsupervised depths at this budget: %.3f vs untied %.3f",
  un_t > un_u + 0.02 and "generalised better" or (un_t < un_u - 0.02 and "generalised worse" or "did not differ"), un_t, un_u)
E:check("tying_helps", un_t > un_u + 0.02, "%s", v_tied)

figures.depth({ { label = "ordered model, ordered test", acc = acc.ordered_on_ordered },
  { label = "ordered model, shuffled test", acc = acc.ordered_on_shuffled },
  { label = "shuffled model, shuffled test", acc = acc.shuffled_on_shuffled },
  { label = "tied model, shuffled test", acc = acc.tied_on_shuffled } }, E:file("acc_by_depth.png"))
E:finish {
  acc_by_depth = acc, n_var = r.n_var, n_train_var = sup, steps = r.steps,
  shortcut = { drop_ordered_model = drop_o, drop_shuffled_model = drop_s, found = shortcut, verdict = v_short },
  heads = heads, heads_verdict = v_heads,
  tying = { unsupervised_tied = un_t, unsupervised_untied = un_u, verdict = v_tied },
  train_seconds = { ordered = models.ordered.info.train_seconds, shuffled = models.shuffled.info.train_seconds,
    tied = models.tied.info.train_seconds },
}
