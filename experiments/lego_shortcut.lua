-- LEGO shortcuts and weight tying (Zhang et al. 2022). Three encoders of one recipe: lego_assoc's
-- model (shuffled clauses, reused from --assoc_out), one trained on chain-ordered clauses and one
-- with tied layers on shuffled clauses (recipe.default.compare_steps steps each). The ordered-data
-- model's drop on shuffled input is the shortcut; the heads of the ordered- and shuffled-data
-- models are compared on shuffled input, identity-based (association score) against
-- position-based (mass at the offsets where chain order puts the other occurrence, +-8); the tied
-- model is compared with the untied one on the depths never supervised. A claim is judged only
-- when the models it needs learned the task (every supervised depth >= 0.97); otherwise it is
-- reported as not judged.
--   milua experiments/lego_shortcut.lua [--out DIR] [--seed N] [--steps N] [--assoc_out DIR] [--quick]
-- Helpers: experiments/lego/ (recipe and training, the attention scores, the verdicts, the figures).
local experiment = require "milua.experiment"   -- first: it puts experiments/ on package.path
local analysis = require "milua.analysis"
local recipe = require "lego.recipe"
local attention = require "lego.attention"
local verdicts = require "lego.verdicts"
local figures = require "lego.figures"

local E = experiment.start(arg, {
  name = "lego_shortcut",
  about = "milua experiments/lego_shortcut.lua -- shortcut solutions and weight tying",
  flags = recipe.flags { recipe.assoc_flag },
})
local r = recipe.options(E)
local c = recipe.compare(E, r)
local sets = recipe.test_sets(r, { ordered = true, shuffled = false })
local sup = r.n_train_var
E:say("LEGO shortcut: %d variables, depths 0..%d supervised; lego_assoc's model (%d steps) and two more of %d steps; seed %d",
  r.n_var, sup - 1, r.steps, c.steps, r.seed)

-- the three models: lego_assoc's (shuffled data, untied), chain-ordered data, tied layers
local trained, models = {}, {}
for _, name in ipairs({ "shuffled", "ordered", "tied" }) do
  local m, info
  if name == "shuffled" then m, info = recipe.shared(E, r) else m, info = recipe.fit(E, c, name, recipe.variants[name]) end
  local own = name == "ordered" and "ordered" or "shuffled"   -- the clause order it was trained on
  local acc_on = { ordered = recipe.acc_by_depth(m, sets.ordered), shuffled = recipe.acc_by_depth(m, sets.shuffled) }
  models[name] = verdicts.model(acc_on[own], sup, { acc_on = acc_on, test_order = own, steps = info.steps,
    train_seconds = info.train_seconds, reused = info.reused, curriculum = info.curriculum,
    escape_step = recipe.escape_step(info.curve, sup, verdicts.ESCAPE_AT), curve = info.curve })
  trained[name] = m
  E:check("trained_" .. name, models[name].trained, "%s model (%s, %d steps, %s in %.0f s): accuracy by depth on %s " ..
    "clauses %s; lowest supervised depth %.4f (required >= %.2f)", name, recipe.variants_about[name], info.steps,
    info.reused and "reused" or "trained", info.train_seconds, own, recipe.fmt(acc_on[own]), models[name].supervised_min,
    recipe.default.trained_at)
end
E:say("test accuracy by depth (model on test order; depths >= %d never supervised):", sup)
for _, name in ipairs({ "ordered", "shuffled" }) do
  for _, order in ipairs({ "ordered", "shuffled" }) do
    E:say("  %-8s model, %-8s test  %s", name, order, recipe.fmt(models[name].acc_on[order]))
  end
end
E:say("  %-8s model, %-8s test  %s", "tied", "shuffled", recipe.fmt(models.tied.acc_on.shuffled))

-- the shortcut: mean accuracy over supervised depths, ordered test minus shuffled test
local v = {}
v.shortcut = verdicts.shortcut(models, sup)
verdicts.say(E, "shortcut", v.shortcut)

-- heads on shuffled input: identity-based (association) vs position-based (chain-order offsets)
local heads = {}
for _, name in ipairs({ "ordered", "shuffled" }) do
  local tokens = sets.shuffled.tokens:narrow(1, 1, math.min(256, r.n_test))
  local cache = attention.patterns(trained[name], tokens)
  local assoc, base = attention.assoc_score(cache, tokens)
  local offset = attention.offset_score(cache, tokens, { -8, 8 })
  heads[name] = { assoc = assoc:totable(), offset = offset:totable(), best_assoc = analysis.best_head(assoc),
    best_offset = analysis.best_head(offset), baseline = base }
  figures.scores(assoc, E:file("assoc_" .. name .. ".png"), name .. "-data model: association score")
  figures.scores(offset, E:file("offset_" .. name .. ".png"), name .. "-data model: mass at offsets +-8")
  E:say("  %-8s model on shuffled input: best association L%dH%d %.3f, best offset+-8 L%dH%d %.3f (uniform %.3f)",
    name, heads[name].best_assoc.layer, heads[name].best_assoc.head, heads[name].best_assoc.score,
    heads[name].best_offset.layer, heads[name].best_offset.head, heads[name].best_offset.score, base)
end
v.heads_by_position = verdicts.heads_by_position(models, heads)
verdicts.say(E, "heads_by_position", v.heads_by_position)

-- weight tying: accuracy on the depths never supervised
v.tying_helps = verdicts.tying(models, sup, r.n_var)
verdicts.say(E, "tying_helps", v.tying_helps)

figures.depth({ { label = "ordered model, ordered test", acc = models.ordered.acc_on.ordered },
  { label = "ordered model, shuffled test", acc = models.ordered.acc_on.shuffled },
  { label = "shuffled model, shuffled test", acc = models.shuffled.acc_on.shuffled },
  { label = "tied model, shuffled test", acc = models.tied.acc_on.shuffled } }, E:file("acc_by_depth.png"),
  { supervised = sup })
figures.curves(models, { "shuffled", "ordered", "tied" }, sup, E:file("training_curves.png"))
E:finish {
  models = models, verdicts = v, n_var = r.n_var, n_train_var = sup, steps = { shared = r.steps, compared = c.steps },
  heads = heads,
}
