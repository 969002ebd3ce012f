-- LEGO: attention mimicking as an initialisation, and the LEGO attention module (Zhang et al.
-- 2022). Model "random" is lego_assoc's (random init, reused from --assoc_out). Model "mimic" is
-- first trained, without labels, to make head 1 of every layer attend like an association head
-- (uniform over the other positions holding the same token) and head 2 like a local one (weights
-- 1,2,4,2,1 on positions i-2..i+2), loss = KL summed over layers; then it is trained on the task
-- with the same recipe for recipe.default.compare_steps steps. Model "module" has heads 1 and 2
-- replaced by those fixed patterns (config fixed_patterns) and is trained from scratch as long.
-- The claims: each leaves the loss plateau sooner (the first step of its training curve with
-- every supervised depth >= 0.9) and generalises further (depths never supervised) than random
-- init; each is judged only when both models learned the task (every supervised depth >= 0.97).
--   milua experiments/lego_mimic.lua [--out DIR] [--seed N] [--steps N] [--assoc_out DIR] [--quick]
-- Helpers: experiments/lego/ (recipe and training, mimicking, the module's cost, the figures).
local experiment = require "milua.experiment"   -- first: it puts experiments/ on package.path
local T = require "milua.tensor"
local analysis = require "milua.analysis"
local lego = require "milua.data.lego"
local recipe = require "lego.recipe"
local attention = require "lego.attention"
local mimic = require "lego.mimic"
local cost = require "lego.cost"
local figures = require "lego.figures"
local verdicts = require "lego.verdicts"

local E = experiment.start(arg, {
  name = "lego_mimic",
  about = "milua experiments/lego_mimic.lua -- attention mimicking and the LEGO attention module",
  flags = recipe.flags {
    { "mimic_steps", 0, "attention-mimicking pre-training steps (0: the recipe's " .. recipe.default.mimic_steps .. ")" },
    recipe.assoc_flag,
  },
})
local opts = E.opts
local r = recipe.options(E)
if opts.mimic_steps > 0 then r.mimic_steps = opts.mimic_steps end
local c = recipe.compare(E, r)
local test = recipe.test_sets(r, { shuffled = false }).shuffled
local sup = r.n_train_var
E:say("LEGO mimicking: %d variables, depths 0..%d supervised; lego_assoc's model (random init, %d steps) and two " ..
  "more of %d task steps; seed %d", r.n_var, sup - 1, r.steps, c.steps, r.seed)

-- the three models: lego_assoc's (random init), mimicking init, the LEGO attention module
local probe = test.tokens:narrow(1, 1, math.min(256, r.n_test))
local runs = {
  { name = "random" },
  { name = "mimic", variant = mimic.variant(c, probe, function(...) E:say(...) end) },
  { name = "module", variant = recipe.variants.module },
}
local results, models = {}, {}
for _, run in ipairs(runs) do
  local m, info
  if run.name == "random" then m, info = recipe.shared(E, r) else m, info = recipe.fit(E, c, run.name, run.variant) end
  models[run.name] = m
  local acc = recipe.acc_by_depth(m, test)
  local s, base = attention.assoc(m, test, { n = 256 })
  local res = verdicts.model(acc, sup, { steps = info.steps, supervised_mean = recipe.mean(acc, 0, sup - 1),
    unsupervised_mean = recipe.mean(acc, sup, r.n_var - 1), assoc_score = s:totable(), best_head = analysis.best_head(s),
    baseline = base, train_seconds = info.train_seconds, pretrain = info.pretrain, reused = info.reused,
    curriculum = info.curriculum, curve = info.curve, escape_step = recipe.escape_step(info.curve, sup, verdicts.ESCAPE_AT) })
  results[run.name] = res
  E:check("trained_" .. run.name, res.trained, "%s model (%s, %d steps, %s in %.0f s): accuracy by depth %s; " ..
    "supervised %.3f, unsupervised %.3f; escaped the plateau (every supervised depth >= %.1f) at step %s; best association " ..
    "L%dH%d %.2f; lowest supervised depth %.4f (required >= %.2f)", run.name, recipe.variants_about[run.name], info.steps,
    info.reused and "reused" or "trained", info.train_seconds, recipe.fmt(acc), res.supervised_mean, res.unsupervised_mean,
    verdicts.ESCAPE_AT, tostring(res.escape_step or "never"), res.best_head.layer, res.best_head.head, res.best_head.score,
    res.supervised_min, recipe.default.trained_at)
  if run.name == "random" then figures.scores(s, E:file("assoc_random.png"), "random init: association score") end
  if run.name == "mimic" then figures.scores(s, E:file("assoc_mimic.png"), "mimic init: association score") end
end

-- the verdicts: the plateau left sooner, and generalisation to the depths never supervised
local v = {}
local mi = verdicts.init(results, "mimic", "random", sup, r.n_var, "mimic-initialised")
local mo = verdicts.init(results, "module", "random", sup, r.n_var, "LEGO attention module")
v.mimic_escapes_sooner, v.mimic_generalises_further = mi.sooner, mi.further
v.module_escapes_sooner, v.module_generalises_further = mo.sooner, mo.further
for _, name in ipairs({ "mimic_escapes_sooner", "mimic_generalises_further", "module_escapes_sooner",
  "module_generalises_further" }) do
  verdicts.say(E, name, v[name])
end

-- FLOPs: counted from the config (the fixed heads compute no Q, K nor scores), and the forward
-- time of the two models measured on the same test batch
local cfg_module = recipe.model { n_var = r.n_var, n_layers = r.n_layers, n_heads = r.n_heads, d_model = r.d_model,
  d_mlp = r.d_mlp, fixed_patterns = { [1] = "assoc", [2] = "local" } }.cfg
local f = cost.flops(cfg_module, 5 * r.n_var + 2)
local batch = test.tokens:narrow(1, 1, math.min(512, test.tokens:shape()[1]))
local ms_plain, ms_module = cost.forward_ms(models.random, batch), cost.forward_ms(models.module, batch)
local v_flops = string.format("LEGO attention module: %d of %d heads fixed saves %.0f of %.0f forward FLOPs per sequence (%.1f%%); " ..
  "measured forward of %d sequences: %.1f ms against %.1f ms for plain attention (%.2fx)",
  2, r.n_heads, f.saved, f.total, 100 * f.saved_fraction, batch:shape()[1], ms_module, ms_plain, ms_module / ms_plain)
E:say("%s", v_flops)

figures.depth({ { label = "random init", acc = results.random.acc_by_depth },
  { label = "mimic init", acc = results.mimic.acc_by_depth },
  { label = "LEGO attention module", acc = results.module.acc_by_depth } }, E:file("acc_by_depth.png"),
  { supervised = sup })
figures.curves(results, { "random", "mimic", "module" }, sup, E:file("training_curves.png"))
figures.pattern(models.mimic, test.tokens:narrow(1, 1, 1), 0, 1,
  E:file("mimic_L0H1_pattern.png"), "mimic model after training: L0H1")
E:finish {
  models = results, n_var = r.n_var, n_train_var = sup, steps = { shared = r.steps, compared = c.steps },
  verdicts = v,
  flops = { total_per_sequence = f.total, saved_per_sequence = f.saved, saved_fraction = f.saved_fraction,
    forward_ms_module = ms_module, forward_ms_plain = ms_plain, forward_batch = batch:shape()[1], text = v_flops },
  example = lego.decode(test.tokens:select(1, 1)),
}
