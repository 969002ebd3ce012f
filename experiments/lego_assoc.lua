-- LEGO (Zhang et al. 2022): train a bidirectional encoder from random init to resolve shuffled
-- chains `a = val 1 , b = not a , ...`, report test accuracy by chain depth, and find the
-- association heads: the heads whose variable-token queries attend to the other occurrence of the
-- same variable. Every head is scored; the report names those over the threshold, and gives beside
-- it the score from operand queries alone (the direction the chain needs). The last
-- recipe.default.unsupervised depths are never supervised. The model is kept in --out, where
-- lego_shortcut and lego_mimic reuse it (their --assoc_out).
--   milua experiments/lego_assoc.lua [--out DIR] [--seed N] [--steps N] [--quick]
-- Helpers: experiments/lego/ (recipe and training, the attention scores, the figures).
local experiment = require "milua.experiment"   -- first: it puts experiments/ on package.path
local analysis = require "milua.analysis"
local lego = require "milua.data.lego"
local recipe = require "lego.recipe"
local attention = require "lego.attention"
local figures = require "lego.figures"

local E = experiment.start(arg, {
  name = "lego_assoc",
  about = "milua experiments/lego_assoc.lua -- LEGO: accuracy by chain depth and association heads",
  flags = recipe.flags { { "threshold", 0.4, "association score a head must reach (and 5x the uniform baseline)" } },
})
local r = recipe.options(E)

-- the task and the model: trained once per recipe (out/lego_assoc/model.safetensors is reused)
local test = recipe.test_sets(r, { shuffled = false }).shuffled
E:say("LEGO: chains of %d variables, shuffled clauses; %d-layer encoder, %d heads, d_model %d; seed %d",
  r.n_var, r.n_layers, r.n_heads, r.d_model, r.seed)
local model, info = recipe.fit(E, r, "model", recipe.variants.shuffled)
E:say(info.reused and string.format("reused %s/model.safetensors (trained in %.0f s)", E.out, info.train_seconds)
  or string.format("trained %d steps in %.0f s", r.steps, info.train_seconds))

-- accuracy by chain depth on fresh shuffled chains
local acc = recipe.acc_by_depth(model, test)
local supervised = r.n_train_var
E:say("test accuracy by depth (" .. r.n_test .. " sequences):")
for d, a in ipairs(acc) do
  E:say("  depth %d  %.4f%s", d - 1, a, d - 1 < supervised and "" or "  (never supervised)")
end
local trained, low = recipe.trained(acc, supervised)
E:check("trained", trained, "lowest accuracy over the supervised depths 0-%d: %.4f (required >= %.2f)", supervised - 1,
  low, recipe.default.trained_at)

-- association score of every (layer, head)
local scores, baseline, by_role = attention.assoc(model, test, { n = 512 })
local best = analysis.best_head(scores)
local cut = math.max(E.opts.threshold, 5 * baseline)
local heads = analysis.heads_over(scores, cut)
E:say("association score (mass on the other occurrence of the query's variable; uniform baseline %.3f):", baseline)
for l, row in ipairs(scores:totable()) do E:say("  layer %d  %s", l - 1, recipe.fmt(row)) end
local names = {}
for i, h in ipairs(heads) do names[i] = string.format("L%dH%d (%.2f)", h.layer, h.head, h.score) end
E:check("association_heads", #heads > 0, #heads > 0
  and string.format("association heads (score >= %.2f): %s", cut, table.concat(names, ", "))
  or string.format("no head reaches %.2f (best L%dH%d %.3f)", cut, best.layer, best.head, best.score))
-- the score restricted to operand queries: the direction the chain needs (a variable used as an
-- operand reads the clause that defines it); the threshold above stays on the symmetric score
local best_op = analysis.best_head(by_role.operand)
E:say("association score from operand queries only (the direction the chain needs; best L%dH%d %.3f):",
  best_op.layer, best_op.head, best_op.score)
for l, row in ipairs(by_role.operand:totable()) do E:say("  layer %d  %s", l - 1, recipe.fmt(row)) end
-- which way the attention goes: a variable used as an operand reading the clause that defines it,
-- or the defining occurrence reading the use; the score is the mean of the two
E:say("split by the query's role (mass on the twin, from the operand occurrence / from the defining one):")
for i, h in ipairs(#heads > 0 and heads or { best }) do
  local l, k = h.layer + 1, h.head
  E:say("  L%dH%d  operand -> defining %.3f   defining -> operand %.3f", h.layer, h.head,
    by_role.operand[l][k]:item(), by_role.defining[l][k]:item())
  if i == 4 then break end
end

-- figures
local ex = test.tokens:narrow(1, 1, 1)
figures.scores(scores, E:file("assoc_scores.png"), "association score by layer and head")
figures.scores(by_role.operand, E:file("assoc_operand_scores.png"), "association score from operand queries")
figures.pattern(model, ex, best.layer, best.head, E:file("top_head_pattern.png"),
  string.format("L%dH%d attention (assoc %.2f)", best.layer, best.head, best.score))
figures.depth({ { label = "test", acc = acc } }, E:file("acc_by_depth.png"), { supervised = supervised })

E:finish {
  acc_by_depth = acc, assoc_score = scores:totable(), baseline = baseline, best_head = best,
  assoc_by_role = { operand = by_role.operand:totable(), defining = by_role.defining:totable() },
  assoc_operand = by_role.operand:totable(), best_head_operand = best_op, trained = trained, supervised_min = low,
  curve = info.curve,
  association_heads = heads, threshold = cut, train_seconds = info.train_seconds, reused_checkpoint = info.reused,
  curriculum = info.curriculum, n_var = r.n_var, n_train_var = supervised, steps = r.steps,
  example = lego.decode(ex:select(1, 1)),
}
