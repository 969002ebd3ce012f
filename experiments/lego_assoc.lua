-- LEGO (Zhang et al. 2022): train a bidirectional encoder from random init to resolve shuffled
-- chains `a = val 1 , b = not a , ...`, report test accuracy by chain depth, and find the
-- association heads: the heads whose variable-token queries attend to the other occurrence of the
-- same variable. Every head is scored; the report names those over the threshold.
--   milua experiments/lego_assoc.lua [--out DIR] [--seed N] [--steps N] [--quick]
local T = require "milua.tensor"
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"
local lego = require "milua.data.lego"
local LA = require "milua.lego_analysis"

local opts = cli.parse(arg, LA.flags {
  { "threshold", 0.4, "association score a head must reach (and 5x the uniform baseline)" },
}, "milua experiments/lego_assoc.lua -- LEGO: accuracy by chain depth and association heads")
local r = LA.options(opts, "out/lego_assoc")
local t_start = sys.clock()

local test = LA.test_sets(r, { shuffled = false }).shuffled
print(string.format("LEGO: chains of %d variables, shuffled clauses; %d-layer encoder, %d heads, d_model %d; seed %d",
  r.n_var, r.n_layers, r.n_heads, r.d_model, r.seed))
local model, info = LA.fit(r, "model")
print(info.reused and string.format("reused %s/model.safetensors (trained in %.0f s)", r.out, info.train_seconds)
  or string.format("trained %d steps in %.0f s", r.steps, info.train_seconds))

-- accuracy by chain depth on fresh shuffled chains
local acc = LA.acc_by_depth(model, test)
local supervised = r.n_train_var or r.n_var
print("test accuracy by depth (" .. r.n_test .. " sequences):")
for d, a in ipairs(acc) do
  print(string.format("  depth %d  %.4f%s", d - 1, a, d - 1 < supervised and "" or "  (never supervised)"))
end

-- association score of every (layer, head)
local scores, baseline, by_role = LA.assoc(model, test, { n = 512 })
local best = LA.best_head(scores)
local cut = math.max(opts.threshold, 5 * baseline)
local heads = LA.heads_over(scores, cut)
print(string.format("association score (mass on the other occurrence of the query's variable; uniform baseline %.3f):", baseline))
for l, row in ipairs(scores:totable()) do print(string.format("  layer %d  %s", l - 1, LA.fmt(row))) end
if #heads == 0 then
  print(string.format("no head reaches %.2f (best L%dH%d %.3f)", cut, best.layer, best.head, best.score))
else
  local names = {}
  for i, h in ipairs(heads) do names[i] = string.format("L%dH%d (%.2f)", h.layer, h.head, h.score) end
  print(string.format("association heads (score >= %.2f): %s", cut, table.concat(names, ", ")))
end
-- which way the attention goes: a variable used as an operand reading the clause that defines it,
-- or the defining occurrence reading the use; the score is the mean of the two
print("split by the query's role (mass on the twin, from the operand occurrence / from the defining one):")
for i, h in ipairs(#heads > 0 and heads or { best }) do
  local l, k = h.layer + 1, h.head
  print(string.format("  L%dH%d  operand -> defining %.3f   defining -> operand %.3f", h.layer, h.head,
    by_role.operand[l][k]:item(), by_role.defining[l][k]:item()))
  if i == 4 then break end
end

-- figures
local ex = test.tokens:narrow(1, 1, 1)
LA.plot_scores(scores, r.out .. "/assoc_scores.png", "association score by layer and head")
LA.plot_pattern(model, ex, best.layer, best.head, r.out .. "/top_head_pattern.png",
  string.format("L%dH%d attention (assoc %.2f)", best.layer, best.head, best.score))
LA.plot_depth({ { label = "test", acc = acc } }, r.out .. "/acc_by_depth.png")

json.write(r.out .. "/results.json", {
  acc_by_depth = acc, assoc_score = scores:totable(), baseline = baseline, best_head = best,
  assoc_by_role = { operand = by_role.operand:totable(), defining = by_role.defining:totable() },
  association_heads = heads, threshold = cut, train_seconds = info.train_seconds, reused_checkpoint = info.reused,
  curriculum = info.curriculum, n_var = r.n_var, n_train_var = supervised, steps = r.steps, seed = r.seed,
  example = lego.decode(ex:select(1, 1)), wall_seconds = sys.clock() - t_start,
})
print(string.format("wrote %s/results.json and 3 PNGs (%.0f s in all)", r.out, sys.clock() - t_start))
