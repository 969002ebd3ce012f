-- LEGO: attention mimicking as an initialisation, and the LEGO attention module (Zhang et al.
-- 2022). Model "mimic" is first trained, without labels, to make head 1 of every layer attend
-- like an association head (uniform over the other positions holding the same token) and head 2
-- like a local one (weights 1,2,4,2,1 on positions i-2..i+2), loss = KL summed over layers; then
-- it is trained on the task like model "random" (random init, same task budget). Model "module"
-- has heads 1 and 2 replaced by those fixed patterns (config fixed_patterns) and is trained from
-- scratch. All are compared on the depths never supervised.
--   milua experiments/lego_mimic.lua [--out DIR] [--seed N] [--steps N] [--quick]
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

local E = experiment.start(arg, {
  name = "lego_mimic",
  about = "milua experiments/lego_mimic.lua -- attention mimicking and the LEGO attention module",
  flags = recipe.flags {
    { "mimic_steps", 0, "attention-mimicking pre-training steps (0: the recipe's " .. recipe.default.mimic_steps .. ")" },
  },
})
local opts = E.opts
local r = recipe.options(E)
if opts.n_train_var == 0 then r.n_train_var = math.max(1, r.n_var - 2) end
if not opts.steps and not opts.quick then r.steps = recipe.default.compare_steps end
r.mimic_steps = opts.mimic_steps > 0 and opts.mimic_steps or (opts.quick and 20 or recipe.default.mimic_steps)
local test = recipe.test_sets(r, { shuffled = false }).shuffled
local sup = r.n_train_var
E:say("LEGO mimicking: %d variables, depths 0..%d supervised, %d task steps per model, seed %d",
  r.n_var, sup - 1, r.steps, r.seed)

-- the mimicking pre-training, run before the task by model "mimic"
local heads = { assoc = 1, ["local"] = 2 }
local probe = test.tokens:narrow(1, 1, math.min(256, r.n_test))
local function mimic_kl(m) return T.no_grad(function() return mimic.loss(m, probe, heads):item() end) end
local function pretrain(m)
  local before = mimic_kl(m)
  local res = mimic.pretrain(m, { n_var = r.n_var, steps = r.mimic_steps, batch = 64, lr = 1e-3, warmup = 10 })
  local after = mimic_kl(m)
  local s = attention.assoc(m, test, { n = 256 })
  E:say("mimic pre-training: KL (summed over %d layers) %.2f -> %.2f in %d steps, %.0f s; head 1 association %s",
    m.cfg.n_layers, before, after, r.mimic_steps, res.seconds, recipe.fmt(s:select(2, 1):totable(), 2))
  return { kl_before = before, kl_after = after, steps = r.mimic_steps, seconds = res.seconds }
end

local runs = {
  { name = "random", variant = {} },
  { name = "mimic", variant = { init = pretrain, init_name = "mimic" .. r.mimic_steps } },
  { name = "module", variant = { fixed_patterns = { [1] = "assoc", [2] = "local" } } },
}
local results, models = {}, {}
for _, run in ipairs(runs) do
  local m, info = recipe.fit(E, r, run.name, run.variant)
  models[run.name] = m
  local acc = recipe.acc_by_depth(m, test)
  local s, base = attention.assoc(m, test, { n = 256 })
  local res = { acc_by_depth = acc, supervised_mean = recipe.mean(acc, 0, sup - 1),
    unsupervised_mean = recipe.mean(acc, sup, r.n_var - 1), assoc_score = s:totable(), best_head = analysis.best_head(s),
    baseline = base, train_seconds = info.train_seconds, pretrain = info.pretrain, reused = info.reused }
  results[run.name] = res
  E:say("%-7s %s in %4.0f s: acc by depth %s | supervised %.3f, unsupervised %.3f | best assoc L%dH%d %.2f",
    run.name, info.reused and "reused " or "trained", info.train_seconds, recipe.fmt(acc), res.supervised_mean,
    res.unsupervised_mean, res.best_head.layer, res.best_head.head, res.best_head.score)
  if run.name == "random" then figures.scores(s, E:file("assoc_random.png"), "random init: association score") end
  if run.name == "mimic" then figures.scores(s, E:file("assoc_mimic.png"), "mimic init: association score") end
end

-- the verdicts: generalisation to the depths never supervised, at the same task budget
local function compare(name, a, b, what)
  local x, y = results[a].unsupervised_mean, results[b].unsupervised_mean
  local text = string.format("%s %s on the unsupervised depths at this budget: %.3f vs %.3f", what,
    x > y + 0.02 and "generalised better" or (x < y - 0.02 and "generalised worse" or "did not differ"), x, y)
  E:check(name, x > y + 0.02, "%s", text)
  return text
end
local v_mimic = compare("mimic_helps", "mimic", "random", "mimic-initialised vs random init:")
local v_module = compare("module_helps", "module", "random", "LEGO attention module vs plain attention:")

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
  { label = "LEGO attention module", acc = results.module.acc_by_depth } }, E:file("acc_by_depth.png"))
figures.pattern(models.mimic, test.tokens:narrow(1, 1, 1), 0, 1,
  E:file("mimic_L0H1_pattern.png"), "mimic model after training: L0H1")
E:finish {
  models = results, n_var = r.n_var, n_train_var = sup, steps = r.steps,
  verdicts = { mimic = v_mimic, module = v_module, flops = v_flops },
  flops = { total_per_sequence = f.total, saved_per_sequence = f.saved, saved_fraction = f.saved_fraction,
    forward_ms_module = ms_module, forward_ms_plain = ms_plain, forward_batch = batch:shape()[1] },
  example = lego.decode(test.tokens:select(1, 1)),
}
