-- Hierarchical filtering (Garnier-Brun, Mezard, Moscato, Saglietti 2024): an encoder learns to
-- infer the root of a random tree grammar from its 2^l leaves, and is compared during training
-- with exact belief propagation and with BP that assumes filtering k_BP (correlations only
-- inside blocks of 2^(l - k_BP) leaves). The paper's claim, "climbing the hierarchy in time":
-- the model first agrees with BP assuming strong filtering, then weaker, finally exact BP; its
-- accuracy on test data generated with strong filtering rises, then falls. Then two models
-- trained on filtered data (k = l and an intermediate k) against the BP optimum for their k.
-- BP always runs on the same grammar and the same test sets as the model.
--   milua experiments/hierarchical_filtering.lua [--out DIR] [--seed N] [--grammar-seed N] [--quick]
local T = require "milua.tensor"
local plot = require "milua.plot"
local experiment = require "milua.experiment"
local H = require "milua.data.hierarchy"

local HM = require "hierarchical.model"
local spec = HM.flags {
  { "train_size", 16384, "training sequences P" },
  { "n_test", 4000, "test sequences (k = 0)" },
  { "n_filtered_test", 2000, "test sequences per filtered level k = 1..l" },
  { "epochs", 36, "epochs of the k = 0 model (the scaled recipe says about 45; 36 fits 10 minutes)" },
  { "filtered_epochs", 4, "epochs of each model trained on filtered data" },
  { "mid_k", 2, "the intermediate filtering level trained on (besides k = l); -1: none" },
}
local E = experiment.start(arg, {
  name = "hierarchical_filtering",
  about = "milua experiments/hierarchical_filtering.lua -- root inference vs belief propagation, filtering (Garnier-Brun et al. 2024)",
  flags = spec,
})
local HX = require "hierarchical.measure"

local o = E.opts
if o.quick then      -- a small tree and model (flags given on the command line still win)
  HM.quick(o, spec, { q = 3, depth = 3, train_size = 2048, n_test = 600, n_filtered_test = 400, epochs = 6,
    filtered_epochs = 2, n_layers = 2, d_model = 32, d_mlp = 64, batch = 32, lr = 2e-3 })
end
local l, q = o.depth, o.q
if o.mid_k ~= -1 and (o.mid_k < 1 or o.mid_k >= l) then
  io.stderr:write(string.format("%s: flag --mid-k: expected 1..%d (or -1), got %d\n", E.script, l - 1, o.mid_k))
  os.exit(2)
end

local g = H.grammar { q = q, depth = l, sigma = o.sigma, seed = o.grammar_seed }
E:say("hierarchical filtering: q %d, depth %d (%d leaves), sigma %g, grammar seed %d, seed %d; post-LN encoder",
  q, l, 1 << l, o.sigma, o.grammar_seed, o.seed)

-- data: training (k = 0), the test set, one test set per filtering level, filtered training sets
local train0 = H.sample(g, o.train_size, { k = 0 })
local sets = { [0] = H.sample(g, o.n_test, { k = 0 }) }
for k = 1, l do sets[k] = H.sample(g, o.n_filtered_test, { k = k }) end
local filtered_ks = { l }
if o.mid_k ~= -1 then filtered_ks[2] = o.mid_k end
local train_f = {}
for _, k in ipairs(filtered_ks) do train_f[k] = H.sample(g, o.train_size, { k = k }) end
do   -- the grammar and test sets, for anyone who wants to recompute BP independently
  local t = { M = g.M }
  for k = 0, l do t["test_k" .. k .. ".tokens"], t["test_k" .. k .. ".root"] = sets[k].tokens, sets[k].root end
  T.save(E:file("data.safetensors"), t, { grammar_seed = tostring(o.grammar_seed), seed = tostring(o.seed) })
end

-- exact inference: BP assuming k_BP on test data generated with k_data, every pair
local bp_post, bp_acc = HX.bp_root(g, sets, l)
E:say("BP accuracy (rows: test data k_data, columns: BP assuming k_BP = 0..%d; diagonal = exact):", l)
for kd = 0, l do
  local row = {}
  for kb = 0, l do row[#row + 1] = string.format(kb == kd and "[%.3f]" or " %.3f ", bp_acc[kd][kb]) end
  E:say("  k_data %d: %s", kd, table.concat(row, " "))
end

-- the k = 0 model, evaluated on every test set at 22 points of training
local per_epoch = o.train_size // o.batch
local steps = o.steps or per_epoch * o.epochs
local eval_steps = HM.eval_steps(steps)
local cfg = { q = q, depth = l, n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp }
local function recipe(k, epochs)
  return { task = "root", train_k = k, grammar_seed = o.grammar_seed, sigma = o.sigma, q = q, depth = l,
    train_size = o.train_size, epochs = epochs, steps = k == 0 and steps or nil, batch = o.batch, lr = o.lr,
    n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp,
    n_test = o.n_test, n_filtered_test = o.n_filtered_test }
end

-- each model's initial weights and batch order come from its own seed, so a model trained in
-- this run equals the one a run that reused the others would train
local function model_seed(k) return o.seed * 1000 + 17 * (k + 1) end
local model0, info0 = E:model("root_k0", recipe(0, o.epochs), function()
  T.seed(model_seed(0))
  local clf = HM.new { task = "root", q = q, depth = l, n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp }
  local curve = { steps = {}, epochs = {}, acc = {}, kl_by_k = {}, agree_by_k = {}, acc_on_filtered = {} }
  for k = 0, l do curve.kl_by_k[k + 1], curve.agree_by_k[k + 1], curve.acc_on_filtered[k + 1] = {}, {}, {} end
  local function eval(step)
    local t = #curve.steps + 1
    curve.steps[t], curve.epochs[t] = step, step / per_epoch
    local p0 = HM.probs(clf, sets[0].tokens)
    for kb = 0, l do
      local c = HX.compare(p0, bp_post[0][kb], sets[0].root)
      curve.kl_by_k[kb + 1][t], curve.agree_by_k[kb + 1][t] = c.kl, c.agree
      curve.acc[t] = c.acc
    end
    curve.acc_on_filtered[1][t] = curve.acc[t]
    for kd = 1, l do curve.acc_on_filtered[kd + 1][t] = H.accuracy(HM.probs(clf, sets[kd].tokens), sets[kd].root) end
    local f = {}
    for kd = 1, l do f[#f + 1] = string.format("%.3f", curve.acc_on_filtered[kd + 1][t]) end
    E:say("  step %5d (epoch %5.2f): acc %.3f, KL(BP_exact || model) %.3f, acc on k = 1..%d data %s", step,
      step / per_epoch, curve.acc[t], curve.kl_by_k[1][t], l, table.concat(f, " "))
  end
  HM.train(clf, { tokens = train0.tokens, targets = train0.root, epochs = o.epochs, steps = steps, batch = o.batch,
    lr = o.lr, eval_at = eval_steps, eval = eval, quiet = o.quick, label = "k=0" })
  return clf, { curve = curve }
end)
local clf0 = HM.attach(model0, "root")
local curve = info0.curve
E:say("k = 0 model: %s in %.0f s (%d steps, %d epochs of %d sequences)", info0.reused and "reused" or "trained",
  info0.train_seconds, steps, o.epochs, o.train_size)

-- the final model against the BP table
local final = {}
for kd = 0, l do final[kd] = H.accuracy(HM.probs(clf0, sets[kd].tokens), sets[kd].root) end
local p_final = HM.probs(clf0, sets[0].tokens)
local acc = final[0]
local bp_acc_by_k = HX.list0(bp_acc[0], 0, l)
local T_n = #curve.steps
local kl_first, kl_last = curve.kl_by_k[1][1], curve.kl_by_k[1][T_n]
local by_k = {}
for kb = 0, l do
  local c = HX.compare(p_final, bp_post[0][kb], sets[0].root)
  by_k[kb + 1] = { k = kb, bp_acc = bp_acc[0][kb], kl = c.kl, agree = c.agree }
  E:say("  BP assuming k = %d: accuracy %.3f; the final model agrees with it on %.3f of the rows, KL(BP_k || model) %.3f",
    kb, bp_acc[0][kb], c.agree, c.kl)
end

-- acceptance: the model has integrated every correlation but the top level's
local learned = E:check("root_vs_bp1", acc >= bp_acc[0][1] - 0.03,
  "test accuracy %.3f vs BP assuming k = 1: %.3f (needs >= %.3f); exact BP %.3f", acc, bp_acc[0][1], bp_acc[0][1] - 0.03, bp_acc[0][0])
local beyond2 = E:check("root_vs_bp2", acc >= bp_acc[0][math.min(2, l)] + 0.10,
  "test accuracy %.3f vs BP assuming k = 2: %.3f (needs >= %.3f): correlations beyond blocks of %d leaves are used",
  acc, bp_acc[0][math.min(2, l)], bp_acc[0][math.min(2, l)] + 0.10, 1 << (l - math.min(2, l)))
E:check("kl_falls", kl_last * 2 <= kl_first, "KL(BP_exact || model) %.3f at the first evaluation (epoch %.2f), %.3f at the last (%.1fx)",
  kl_first, curve.epochs[1], kl_last, kl_first / kl_last)

-- sequential inclusion: accuracy on strongly filtered test data rises, then falls, in order
local peaks = {}
for kd = 0, l do
  local v, at = HX.peak(curve.acc_on_filtered[kd + 1])
  peaks[kd + 1] = { k = kd, acc = v, step = curve.steps[at], epoch = curve.epochs[at], index = at,
    final = curve.acc_on_filtered[kd + 1][T_n] }
  E:say("  accuracy on k = %d filtered test data: peak %.3f at epoch %.2f, final %.3f (BP exact on it %.3f)", kd, v,
    curve.epochs[at], peaks[kd + 1].final, bp_acc[kd][kd])
end
local pk = peaks[l + 1]
local note = learned and "" or " (the model did not reach BP_k=1 - 0.03, so the dynamics are those of an unfinished model)"
E:check("filtered_peak", pk.index < T_n and pk.final <= pk.acc - 0.02,
  "on k = %d data the accuracy peaks at %.3f (epoch %.2f) and ends at %.3f (%.3f below)%s", l, pk.acc, pk.epoch, pk.final,
  pk.acc - pk.final, note)
local order_ok, order_txt = true, {}
for kd = l, math.max(1, l - 2), -1 do
  order_txt[#order_txt + 1] = string.format("k = %d at epoch %.2f", kd, peaks[kd + 1].epoch)
  if kd < l and peaks[kd + 1].step < peaks[kd + 2].step then order_ok = false end
end
E:check("peak_order", order_ok, "peaks on filtered test data: %s (later for smaller k, ties allowed)%s",
  table.concat(order_txt, ", "), note)
local kl_min = {}
local kl_order_ok = true
local kl_txt = {}
for kb = l, 0, -1 do
  local v, at = HX.argmin(curve.kl_by_k[kb + 1])
  kl_min[kb + 1] = { k = kb, kl = v, step = curve.steps[at], epoch = curve.epochs[at] }
  kl_txt[#kl_txt + 1] = string.format("k = %d at epoch %.2f (%.3f)", kb, curve.epochs[at], v)
  if kb < l and curve.steps[at] < kl_min[kb + 2].step then kl_order_ok = false end
end
E:check("kl_min_order", kl_order_ok, "KL(BP_k || model) reaches its minimum: %s%s", table.concat(kl_txt, ", "),
  kl_order_ok and " (strong filtering first)" or " (not in order of decreasing k)")

-- filtered training: the model reaches the BP optimum for its k
local filtered, train_seconds_by = {}, { k0 = info0.train_seconds }
local total_train = info0.train_seconds
for _, k in ipairs(filtered_ks) do
  local fsteps = per_epoch * o.filtered_epochs
  local m, info = E:model("root_k" .. k, recipe(k, o.filtered_epochs), function()
    T.seed(model_seed(k))
    local clf = HM.new { task = "root", q = q, depth = l, n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp }
    HM.train(clf, { tokens = train_f[k].tokens, targets = train_f[k].root, epochs = o.filtered_epochs, steps = fsteps,
      batch = o.batch, lr = o.lr, quiet = o.quick, label = "k=" .. k })
    return clf
  end)
  local clf = HM.attach(m, "root")
  local a = H.accuracy(HM.probs(clf, sets[k].tokens), sets[k].root)
  filtered[#filtered + 1] = { k = k, acc = a, bp_exact_acc = bp_acc[k][k], epochs = o.filtered_epochs,
    train_seconds = info.train_seconds, on_k0 = H.accuracy(HM.probs(clf, sets[0].tokens), sets[0].root) }
  train_seconds_by["k" .. k] = info.train_seconds
  total_train = total_train + info.train_seconds
  E:check(k == l and "filtered_kl" or "filtered_mid", a >= bp_acc[k][k] - 0.03,
    "trained on k = %d data (%d epochs): accuracy %.3f on k = %d test data, exact BP for k = %d %.3f (needs >= %.3f)",
    k, o.filtered_epochs, a, k, k, bp_acc[k][k], bp_acc[k][k] - 0.03)
end

-- plots
local function series(list, label, x) return { x = x or curve.epochs, y = list, label = label } end
do
  local hl = { { y = 1 / q, label = "chance" } }
  for kb = 0, l do hl[#hl + 1] = { y = bp_acc[0][kb], label = string.format("BP k=%d", kb) } end
  plot.line({ series(curve.acc, "model") }, E:file("acc_curve.png"), { title = "Root accuracy on k=0 test data",
    xlabel = "epoch", ylabel = "accuracy", ylim = { 0, 1 }, hlines = hl })
  local s = {}
  for kb = 0, l do s[#s + 1] = series(curve.kl_by_k[kb + 1], string.format("BP k=%d", kb)) end
  plot.line(s, E:file("kl_curve.png"), { title = "KL(BP_k || model) on k=0 test data", xlabel = "epoch",
    ylabel = "mean KL (nats)", logy = true })
  s = {}
  for kd = 0, l do s[#s + 1] = series(curve.acc_on_filtered[kd + 1], string.format("k=%d data", kd)) end
  plot.line(s, E:file("filtered_curve.png"), { title = "Accuracy on test data generated with filtering k",
    xlabel = "epoch", ylabel = "accuracy", ylim = { 0, 1 }, hlines = { { y = 1 / q, label = "chance" } } })
  local rows, yt, xt = {}, {}, {}
  for kb = 0, l do xt[#xt + 1] = "BP " .. kb end
  xt[#xt + 1] = "model"
  for kd = 0, l do
    local r = {}
    for kb = 0, l do r[#r + 1] = bp_acc[kd][kb] end
    r[#r + 1] = final[kd]
    rows[#rows + 1], yt[#yt + 1] = r, "data k=" .. kd
  end
  plot.heatmap(rows, E:file("bp_table.png"), { title = "Root accuracy: BP assuming k vs the final model",
    xticks = xt, yticks = yt, vmin = 0, vmax = 1, clabel = "accuracy" })
end

local bp_table = {}
for kd = 0, l do bp_table[kd + 1] = HX.list0(bp_acc[kd], 0, l) end
E:finish {
  acc = acc,
  bp_exact_acc = bp_acc[0][0],
  bp_acc_by_k = bp_acc_by_k,
  bp_table = bp_table,
  final_by_data_k = HX.list0(final, 0, l),
  final_vs_bp = by_k,
  kl_bp = { first = kl_first, last = kl_last },
  curve = curve,
  peaks = peaks,
  kl_min = kl_min,
  filtered = filtered,
  train_seconds = total_train,
  train_seconds_by_model = train_seconds_by,
  reused = info0.reused,
  grammar_seed = o.grammar_seed,
  arch = clf0.arch,
  config = { q = q, depth = l, sigma = o.sigma, train_size = o.train_size, n_test = o.n_test,
    n_filtered_test = o.n_filtered_test, epochs = o.epochs, steps = steps, filtered_epochs = o.filtered_epochs,
    batch = o.batch, lr = o.lr, n_layers = o.n_layers, d_model = o.d_model, d_mlp = o.d_mlp },
}
