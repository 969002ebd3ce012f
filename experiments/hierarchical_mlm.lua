-- Hierarchical filtering, masked-leaf task (Garnier-Brun, Mezard, Moscato, Saglietti 2024): an
-- encoder predicts one masked leaf of a tree-grammar sequence. Compared with the exact marginal
-- of belief propagation (accuracy and KL), then opened up: attention maps averaged over the test
-- set (the paper: layer by layer, attention inside blocks of 2, 4, 8 leaves, the tree's
-- levels), and linear probes of each layer's residual stream for every leaf's ancestor at every
-- level (the paper: the ancestor m levels up becomes decodable from layer m on, as an upward BP
-- pass done one level per layer).
--   milua experiments/hierarchical_mlm.lua [--out DIR] [--seed N] [--grammar-seed N] [--quick]
local T = require "milua.tensor"
local plot = require "milua.plot"
local experiment = require "milua.experiment"
local H = require "milua.data.hierarchy"

local HM = require "hierarchical.model"
local spec = HM.flags {
  { "train_size", 32768, "training sequences P (one leaf masked afresh in every batch)" },
  { "n_test", 4000, "test sequences (one masked leaf each)" },
  { "n_probe", 1000, "test sequences used for the attention maps and the probes" },
  { "epochs", 20, "training epochs (the scaled recipe: 40, which does not fit 10 minutes)" },
}
local E = experiment.start(arg, {
  name = "hierarchical_mlm",
  about = "milua experiments/hierarchical_mlm.lua -- masked-leaf prediction vs belief propagation; attention blocks and ancestor probes (Garnier-Brun et al. 2024)",
  flags = spec,
})
local HX = require "hierarchical.measure"

local o = E.opts
if o.quick then      -- a small tree and model (flags given on the command line still win)
  HM.quick(o, spec, { q = 3, depth = 3, train_size = 4096, n_test = 800, n_probe = 300, epochs = 4, n_layers = 3,
    d_model = 32, d_mlp = 64, batch = 32, lr = 2e-3 })
end
local l, q, L = o.depth, o.q, 1 << o.depth

local g = H.grammar { q = q, depth = l, sigma = o.sigma, seed = o.grammar_seed }
E:say("masked leaf: q %d, depth %d (%d leaves), sigma %g, grammar seed %d, seed %d; post-LN encoder",
  q, l, L, o.sigma, o.grammar_seed, o.seed)

local train_set = H.sample(g, o.train_size, { k = 0 })
local test = H.sample(g, o.n_test, { k = 0 })
local masked, pos, target = H.mask_one(test.tokens, g)
T.save(E:file("data.safetensors"), { M = g.M, ["test.tokens"] = masked, ["test.positions"] = pos,
  ["test.targets"] = target }, { grammar_seed = tostring(o.grammar_seed), seed = tostring(o.seed) })

-- the exact marginal of the masked leaf, and BP assuming every filtering level
local bp, bp_acc = {}, {}
for kb = 0, l do
  bp[kb] = H.leaf_marginal(g, masked, pos, { k = kb })
  bp_acc[kb] = H.accuracy(bp[kb], target)
end
E:say("BP accuracy on the masked leaf, assuming k = 0..%d: %s", l, table.concat(HX.list0(bp_acc, 0, l), " "):gsub("(%d%.%d%d%d)%d*", "%1"))

local per_epoch = o.train_size // o.batch
local steps = o.steps or per_epoch * o.epochs
local recipe = { task = "mlm", grammar_seed = o.grammar_seed, sigma = o.sigma, q = q, depth = l, train_size = o.train_size,
  epochs = o.epochs, steps = steps, batch = o.batch, lr = o.lr, n_layers = o.n_layers, d_model = o.d_model,
  d_mlp = o.d_mlp, n_test = o.n_test }
local model, info = E:model("mlm", recipe, function()
  T.seed(o.seed * 1000 + 1)   -- weights and batches from their own seed, whatever ran before
  local clf = HM.new { task = "mlm", q = q, depth = l, n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp }
  local curve = { steps = {}, epochs = {}, acc = {}, kl = {} }
  local function eval(step)
    local p = HM.probs(clf, masked, pos)
    local c = HX.compare(p, bp[0], target)
    local t = #curve.steps + 1
    curve.steps[t], curve.epochs[t], curve.acc[t], curve.kl[t] = step, step / per_epoch, c.acc, c.kl
    E:say("  step %5d (epoch %5.2f): masked-leaf accuracy %.3f, KL(BP || model) %.3f", step, step / per_epoch, c.acc, c.kl)
  end
  HM.train(clf, { tokens = train_set.tokens, mlm = g, epochs = o.epochs, steps = steps, batch = o.batch, lr = o.lr,
    eval_at = HM.eval_steps(steps), eval = eval, quiet = o.quick, label = "mlm" })
  return clf, { curve = curve }
end)
local clf = HM.attach(model, "mlm")
E:say("model: %s in %.0f s (%d steps, %d epochs of %d sequences)", info.reused and "reused" or "trained",
  info.train_seconds, steps, o.epochs, o.train_size)

local p = HM.probs(clf, masked, pos)
local c = HX.compare(p, bp[0], target)
local acc, kl = c.acc, c.kl
local learned = E:check("mlm_vs_bp", acc >= bp_acc[0] - 0.05,
  "masked-leaf accuracy %.3f vs exact BP %.3f (needs >= %.3f); KL(BP || model) %.3f; agrees with BP's argmax on %.3f",
  acc, bp_acc[0], bp_acc[0] - 0.05, kl, c.agree)
local by_k = {}
for kb = 0, l do
  local ck = HX.compare(p, bp[kb], target)
  by_k[kb + 1] = { k = kb, bp_acc = bp_acc[kb], kl = ck.kl, agree = ck.agree }
  E:say("  BP assuming k = %d: accuracy %.3f, KL(BP_k || model) %.3f, argmax agreement %.3f", kb, bp_acc[kb], ck.kl, ck.agree)
end
local gate = learned and "" or " (the model is short of BP - 0.05: read as an unfinished model)"

-- attention averaged over the test set, and the mass inside each leaf's own block
local n_probe = math.min(o.n_probe, o.n_test)
local probe_tokens = masked:narrow(1, 1, n_probe)
local _, cache = T.no_grad(function() return clf.model:run_with_cache(probe_tokens, "hook_pattern$") end)
local patterns = {}
for layer = 0, o.n_layers - 1 do
  patterns[layer + 1] = cache["blocks." .. layer .. ".attn.hook_pattern"]:select(2, 1):mean(1)   -- [L, L]
end
cache = nil
local block = HX.block_attention(patterns, l)
local block_txt, focus = {}, {}
for layer = 0, o.n_layers - 1 do
  local row = {}
  -- the smallest block (level) holding at least half of the attention, as the paper reads its maps
  focus[layer + 1] = l
  for level = l - 1, 0, -1 do
    row[level + 1] = string.format("%d: %.3f", 1 << level, block[layer + 1][level + 1])
    if block[layer + 1][level + 1] >= 0.5 then focus[layer + 1] = level end
  end
  block_txt[#block_txt + 1] = string.format("layer %d: %s (half the mass within blocks of %d)", layer,
    table.concat(row, ", "), 1 << focus[layer + 1])
end
E:say("attention mass inside the query leaf's own block (block size: mass; uniform attention gives size/%d):", L)
for _, line in ipairs(block_txt) do E:say("  %s", line) end
local grows = true
for layer = 2, o.n_layers do if focus[layer] < focus[layer - 1] then grows = false end end
E:check("attention_blocks", grows, "the block holding half of each layer's attention grows (or stays) with depth: sizes %s%s",
  table.concat((function() local t = {} for i, f in ipairs(focus) do t[i] = tostring(1 << f) end return t end)(), ", "), gate)

-- probes: each leaf's ancestor at every level, from the residual stream after each layer
local names = HM.layer_outputs(clf.model)
local _, rc = T.no_grad(function() return clf.model:run_with_cache(probe_tokens, names) end)
local resids = {}
for i, nm in ipairs(names) do resids[i] = rc[nm] end
rc = nil
local probe_sample = { tokens = test.tokens:narrow(1, 1, n_probe), nodes = {}, k = 0, n = n_probe }
for m = 0, l do probe_sample.nodes[m] = test.nodes[m]:narrow(1, 1, n_probe) end
local probe_acc, probe_chance = HX.probe_ancestors(resids, probe_sample, l, { seed = o.seed })
E:say("probe accuracy for each leaf's ancestor (rows: after 0..%d layers; columns: ancestor 1..%d levels up):", o.n_layers, l)
local first = {}
for h = 1, l do first[h] = nil end
for li = 1, o.n_layers + 1 do
  local row = {}
  for h = 1, l do
    local level = l - h
    row[#row + 1] = string.format("%.3f", probe_acc[li][level + 1])
  end
  E:say("  layer %d: %s", li - 1, table.concat(row, " "))
end
-- the first layer at which each height is decodable: within 0.05 of its best layer
local first_txt, first_ok = {}, true
for h = 1, l do
  local best = 0
  for li = 1, o.n_layers + 1 do best = math.max(best, probe_acc[li][l - h + 1]) end
  for li = 1, o.n_layers + 1 do
    if first[h] == nil and probe_acc[li][l - h + 1] >= best - 0.05 then first[h] = li - 1 end
  end
  first_txt[#first_txt + 1] = string.format("%d up: layer %d (%.3f, chance %.3f)", h, first[h], best, probe_chance[1][l - h + 1])
  if h > 1 and first[h] < first[h - 1] then first_ok = false end
end
E:check("probe_order", first_ok, "ancestors become decodable (within 0.05 of their best layer) in order of height: %s%s",
  table.concat(first_txt, "; "), gate)

-- plots
for layer = 0, o.n_layers - 1 do
  plot.heatmap(patterns[layer + 1], E:file(string.format("attention_L%d.png", layer)), {
    title = string.format("Layer %d attention, mean over %d test sequences", layer, n_probe), xlabel = "key leaf",
    ylabel = "query leaf", vmin = 0, clabel = "attention", values = false })
end
do
  local xt, yt = {}, {}
  for level = 0, l - 1 do xt[#xt + 1] = string.format("block %d", 1 << level) end
  for layer = 0, o.n_layers - 1 do yt[#yt + 1] = "layer " .. layer end
  plot.heatmap(block, E:file("block_attention.png"), { title = "Attention mass inside the query's block",
    xticks = xt, yticks = yt, vmin = 0, vmax = 1, clabel = "mass" })
  local pt, py = {}, {}
  for li = 1, o.n_layers + 1 do
    local row = {}
    for h = 1, l do row[h] = probe_acc[li][l - h + 1] end
    pt[li], py[li] = row, "after " .. (li - 1)
  end
  local px = {}
  for h = 1, l do px[h] = h .. " up" end
  plot.heatmap(pt, E:file("probe_acc.png"), { title = "Probe accuracy: ancestor h levels above each leaf",
    xticks = px, yticks = py, vmin = 0, vmax = 1, clabel = "accuracy", xlabel = "ancestor", ylabel = "layers" })
  plot.line({ { x = info.curve.epochs, y = info.curve.acc, label = "model" } }, E:file("acc_curve.png"), {
    title = "Masked-leaf accuracy on the test set", xlabel = "epoch", ylabel = "accuracy", ylim = { 0, 1 },
    hlines = { { y = 1 / q, label = "chance" }, { y = bp_acc[0], label = "exact BP" } } })
end

E:finish {
  acc = acc,
  bp_exact_acc = bp_acc[0],
  kl_bp = kl,
  bp_acc_by_k = HX.list0(bp_acc, 0, l),
  final_vs_bp = by_k,
  block_attention = block,
  block_focus = focus,
  probe_acc = probe_acc,
  probe_chance = probe_chance,
  probe_first_layer = first,
  curve = info.curve,
  train_seconds = info.train_seconds,
  reused = info.reused,
  grammar_seed = o.grammar_seed,
  arch = clf.arch,
  config = { q = q, depth = l, sigma = o.sigma, train_size = o.train_size, n_test = o.n_test, n_probe = n_probe,
    epochs = o.epochs, steps = steps, batch = o.batch, lr = o.lr, n_layers = o.n_layers, d_model = o.d_model,
    d_mlp = o.d_mlp },
}
