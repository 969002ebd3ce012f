-- Tracing and manipulating intermediate values (Matsumoto et al. 2023). An encoder regresses
-- the value of fully parenthesised +/- expressions from its [CLS] state; on 1000 instances of
-- (a-(b-c)) the hidden states of each layer (all positions concatenated) are reduced by PCA and
-- every component is correlated with a, b, c, b-c and the answer. Then the coefficient of the
-- component that carries b is set inside the forward pass across its range: if the component
-- carries b, the prediction moves as if the model had read another b, and the b implied by the
-- prediction maps back onto the coefficient the model really produces for that b. The same for
-- b-c, a control component that carries nothing, and the edit made in the weights instead.
--   milua experiments/intermediate_values.lua [--out DIR] [--seed N] [--steps N] [--quick] [--ln pre|post]
local T = require "milua.tensor"
local experiment = require "milua.experiment"
local analysis = require "milua.analysis"
local plot = require "milua.plot"
local arith = require "milua.data.arithmetic"

local E = experiment.start(arg, {
  name = "intermediate_values",
  about = "milua experiments/intermediate_values.lua -- tracing and manipulating intermediate values (Matsumoto et al. 2023)",
  flags = {
    { "layers", 4, "encoder layers" },
    { "d_model", 64, "model width" },
    { "heads", 4, "attention heads" },
    { "d_mlp", 256, "MLP width" },
    { "ln", "pre", "LayerNorm placement: pre, or post (BERT's; needs ln_position in milua.nn)" },
    { "train_size", 40000, "training expressions: half random depth <= 2 trees, half (a-(b-c)) instances" },
    { "batch", 64, "batch size" },
    { "lr", 1e-3, "Adam learning rate" },
    { "n_analysis", 1000, "(a-(b-c)) instances traced and manipulated (held out from training)" },
    { "components", 10, "principal components per layer" },
    { "trace_every", 0, "also trace the analysis set every N training steps and keep that model as model_stepN.safetensors (0: no)" },
    { "load", "", "analyse this saved model (one of the model_stepN files) instead of training" },
  },
})
local R = require "intermediate_values.regressor"
local trace = require "intermediate_values.trace"
local MP = require "intermediate_values.manipulate"

local o = E.opts
local DEFAULT_STEPS = 12000     -- the issue's calibration; measured on seeds 1 and 2 (experiments/README.md)
if o.quick then      -- a small model; the sizes given on the command line can only shrink it
  o.layers, o.d_model, o.d_mlp = math.min(o.layers, 2), math.min(o.d_model, 32), math.min(o.d_mlp, 128)
  o.train_size, o.n_analysis = math.min(o.train_size, 4000), math.min(o.n_analysis, 200)
end
local steps = o.steps or (o.quick and 600 or DEFAULT_STEPS)
if o.ln ~= "pre" and o.ln ~= "post" then
  io.stderr:write(E.script, ": flag --ln: expected pre or post, got ", tostring(o.ln), "\n")
  os.exit(2)
end
if o.d_model % o.heads ~= 0 then
  io.stderr:write(E.script, ": --d_model ", o.d_model, " is not a multiple of --heads ", o.heads, "\n")
  os.exit(2)
end
local SEQ = 1 + arith.max_length(2, 3)          -- [CLS] + the longest depth-2 tree of 3-digit leaves
local cfg = { n_layers = o.layers, d_model = o.d_model, n_heads = o.heads, d_head = o.d_model // o.heads,
  d_mlp = o.d_mlp, d_vocab = arith.n_vocab, n_ctx = SEQ, act_fn = "gelu", normalization = "LN", causal = false,
  ln_position = o.ln }

-- data: the analysis set first, the training mix disjoint from it, held-out random trees
local analysis_set = arith.template_set(o.n_analysis, { seq_len = SEQ })
local mix = arith.training_mix(o.train_size, { exclude = analysis_set, seq_len = SEQ })
local random_set = arith.training_mix(o.quick and 300 or 1000, { template_fraction = 0, exclude = mix, seq_len = SEQ })
local scale = R.scale(mix)
E:say("Intermediate values: %d-layer %s-LN encoder, d_model %d, %d heads, d_mlp %d, [CLS] tanh pooler -> linear, MSE",
  o.layers, o.ln, o.d_model, o.heads, o.d_mlp)
E:say("data: %d training expressions (%d template instances), %d analysis instances of (a-(b-c)), seed %d",
  mix.n, math.floor(mix.n / 2 + 0.5), analysis_set.n, o.seed)

-- ------------------------------------------------------------------ 1. train
local WARMUP = math.min(200, steps // 10)
local recipe = { cfg = cfg, train_size = o.train_size, n_analysis = o.n_analysis, steps = steps, batch = o.batch,
  lr = o.lr, schedule = { warmup = WARMUP, decay = "cosine", min_lr = o.lr / 10 }, data = "training_mix(template_fraction 0.5, depth 2, leaf_p 0.2, leaves [100,1000))" }
local reg
local function build()
  T.seed(o.seed * 7919 + 1)
  reg = R.new(cfg)
  -- tracing during training (no random draws, so the weights are those of a run without it)
  local eval
  if o.trace_every > 0 then
    local ls = {}
    for l = 0, o.layers - 1 do ls[#ls + 1] = l end
    eval = function(step, sc)
      local t = trace.run(trace.states(reg.model, analysis_set.tokens, ls), ls, analysis_set.values, arith.value_names,
        o.components)
      local row = { r2 = analysis.r2(R.values(reg, analysis_set.tokens, sc), analysis_set.values.answer), best = {},
        explained_ratio = t.explained_ratio }
      for j, name in ipairs(arith.value_names) do
        row.best[name] = {}
        for li = 1, #ls do local _, r = trace.best_in_layer(t, j, li); row.best[name][li] = r end
      end
      -- the numbers the tracing checks read, printed with the eval line
      row.b01 = math.max(row.best.b[1], row.best.b[math.min(2, #ls)])
      row.bc0, row.bc_top, row.ans0, row.ans_last = row.best["b-c"][1], -1, row.best.answer[1], row.best.answer[#ls]
      for li = 2, #ls do row.bc_top = math.max(row.bc_top, row.best["b-c"][li]) end
      reg.model:save(E.out .. string.format("/model_step%d.safetensors", step))
      return row
    end
  end
  local losses, _, evals = R.fit(reg, mix, { steps = steps, batch = o.batch, lr = o.lr, warmup = WARMUP, decay = "cosine",
    min_lr = o.lr / 10, log_every = math.max(1, steps // 10), quiet = o.quick,
    eval_every = o.trace_every > 0 and o.trace_every or nil, eval = eval })
  local curve = {}
  for s = 1, #losses, math.max(1, #losses // 200) do curve[#curve + 1] = { s, losses[s] } end
  return reg.model, { loss_curve = curve, final_loss = losses[#losses], trace_curve = evals }
end
local model, info
if o.load ~= "" then
  local ok, m = pcall(require("milua.nn").load, o.load)
  if not ok then
    io.stderr:write(E.script, ": --load ", o.load, ": ", tostring(m), "\n")
    os.exit(2)
  end
  for _, k in ipairs({ "n_layers", "d_model", "n_heads", "d_mlp", "n_ctx", "ln_position" }) do
    if m.cfg[k] ~= cfg[k] then
      io.stderr:write(E.script, ": --load ", o.load, ": its ", k, " is ", tostring(m.cfg[k]), ", the flags ask for ",
        tostring(cfg[k]), "\n")
      os.exit(2)
    end
  end
  model, info = m, { reused = true, train_seconds = 0, loaded = o.load }
else
  model, info = E:model("model", recipe, build)
end
if info.reused then reg = R.wrap(model) end
model = reg.model
if info.loaded then E:say("model loaded from %s", info.loaded)
else E:say("model %s in %.0f s (%d steps of batch %d)", info.reused and "reused" or "trained", info.train_seconds, steps, o.batch) end

local answers = analysis_set.values.answer
local pred = R.values(reg, analysis_set.tokens, scale)
local r2_template = analysis.r2(pred, answers)
local r2_random = analysis.r2(R.values(reg, random_set.tokens, scale), random_set.target:totable())
local lo_ans, hi_ans = math.huge, -math.huge
for _, v in ipairs(answers) do lo_ans, hi_ans = math.min(lo_ans, v), math.max(hi_ans, v) end
local answer_range = hi_ans - lo_ans
local learned = r2_template >= 0.99
E:check("r2_template", learned, "R^2 %.4f on %d held-out (a-(b-c)) instances (needs >= 0.99); %.4f on %d held-out random trees",
  r2_template, analysis_set.n, r2_random, random_set.n)
local function gate(holds) return learned and holds end
local gate_note = learned and "" or " [the model did not learn the task: no mechanism claim]"

-- ------------------------------------------------------------------ 2. tracing
local layers = {}
for l = 0, o.layers - 1 do layers[#layers + 1] = l end
local names = arith.value_names
local states = trace.states(model, analysis_set.tokens, layers)
local tr = trace.run(states, layers, analysis_set.values, names, o.components)
-- the same tracing on the two halves of SPLITS random splits of the analysis set: how far each
-- number moves with the instances alone
local SPLITS = 5
local halves = trace.halves(states, layers, analysis_set.values, names, o.components, SPLITS)
states = nil
collectgarbage()
local best = trace.best(tr)
local subspace = trace.subspace_r(tr)
local function best_table(t)
  local out = {}
  for j, name in ipairs(names) do
    out[name] = {}
    for li = 1, #layers do
      local c, r = trace.best_in_layer(t, j, li)
      out[name][li] = { component = c, abs_r = r }
    end
  end
  return out
end
local best_by_layer = best_table(tr)
local half_best = {}
for h, t in ipairs(halves) do half_best[h] = best_table(t) end
-- range over the halves of the best |r| per layer and value
local spread = {}
for _, name in ipairs(names) do
  spread[name] = {}
  for li = 1, #layers do
    local lo, hi = math.huge, -math.huge
    for h = 1, #halves do local r = half_best[h][name][li].abs_r; lo, hi = math.min(lo, r), math.max(hi, r) end
    best_by_layer[name][li].halves = { min = lo, max = hi }
    spread[name][li] = hi - lo
  end
end
E:say("tracing: best |r| per layer [range over %d halves of the analysis set] (component); |r| with the span of all %d components; PC1 explained ratio",
  #halves, o.components)
for li, l in ipairs(layers) do
  local parts = {}
  for j, name in ipairs(names) do
    local b = best_by_layer[name][li]
    parts[#parts + 1] = string.format("%s %.2f [%.2f-%.2f] (PC%d, span %.2f)", name, b.abs_r, b.halves.min, b.halves.max,
      b.component, subspace[li][j])
  end
  E:say("  layer %d: %s; PC1 %.2f", l, table.concat(parts, ", "), tr.explained_ratio[li][1])
end
for _, name in ipairs(names) do
  E:say("  %-6s is carried best by layer %d PC%d (|r| %.2f)", name, best[name].layer, best[name].component, best[name].abs_r)
end

-- Each tracing check is a statistic of one trace; it holds when it holds on the whole analysis
-- set and on every half, so a difference between layers counts only when it is larger than
-- what a change of analysis set alone moves it by. The range over the halves is reported.
local function over_halves(stat)
  local lo, hi, ok = math.huge, -math.huge, 0
  for h = 1, #halves do
    local v, holds = stat(half_best[h])
    lo, hi = math.min(lo, v), math.max(hi, v)
    if holds then ok = ok + 1 end
  end
  local v, holds = stat(best_by_layer)
  return { value = v, holds = holds, halves_min = lo, halves_max = hi, halves_held = ok, halves = #halves,
    all = holds and ok == #halves }
end

local early = {}
for l = 0, math.min(1, o.layers - 1) do early[#early + 1] = l end
local b_early = trace.best(tr, early).b
local tb = over_halves(function(bl)
  local r = -1
  for li = 1, #early do r = math.max(r, bl.b[li].abs_r) end
  return r, r >= 0.85
end)
E:check("trace_b", gate(tb.all), "best |r| with b in layers 0-1: %.2f (layer %d PC%d; %.2f-%.2f over the halves, %d of %d >= 0.85; needs >= 0.85 on all)%s",
  b_early.abs_r, b_early.layer, b_early.component, tb.halves_min, tb.halves_max, tb.halves_held, tb.halves, gate_note)
local bc0, bc_best, bc_layer = best_by_layer["b-c"][1].abs_r, -1, 0
for li = 2, #layers do
  if best_by_layer["b-c"][li].abs_r > bc_best then bc_best, bc_layer = best_by_layer["b-c"][li].abs_r, layers[li] end
end
local tbc = over_halves(function(bl)
  local top = -1
  for li = 2, #layers do top = math.max(top, bl["b-c"][li].abs_r) end
  local rise = top - bl["b-c"][1].abs_r
  return rise, #layers > 1 and rise >= 0.1
end)
E:check("trace_bc", gate(tbc.all),
  "best |r| with b-c: %.2f in layer 0, rising to %.2f in layer %d: a rise of %.2f (%.2f to %.2f over the halves, %d of %d >= 0.1; needs >= 0.1 on all)%s",
  bc0, bc_best, bc_layer, tbc.value, tbc.halves_min, tbc.halves_max, tbc.halves_held, tbc.halves, gate_note)
local ans0, ansL = best_by_layer.answer[1].abs_r, best_by_layer.answer[#layers].abs_r
local tans = over_halves(function(bl)
  local top, first = bl.answer[#layers].abs_r, bl.answer[1].abs_r
  return top - first, top >= 0.8 and top > first
end)
E:check("trace_answer", gate(tans.all),
  "best |r| with the answer: %.2f in the last layer vs %.2f in layer 0 (difference %.2f to %.2f over the halves; needs >= 0.8 and above layer 0 on the whole set and all %d halves, held on %d)%s",
  ansL, ans0, tans.halves_min, tans.halves_max, tans.halves, tans.halves_held, gate_note)
local trace_checks = { b = tb, ["b-c"] = tbc, answer = tans }

-- the heatmap of layer x (value, component), laid out as (value, layer) x component so that
-- every cell has room for its value: a block of one row per layer for each value, then the
-- explained-variance ratios per layer
do
  local rows, xt, yt = {}, {}, {}
  for c = 1, o.components do xt[c] = "PC" .. c end
  for j, name in ipairs(names) do
    for li, l in ipairs(layers) do
      local row = {}
      for c = 1, o.components do row[c] = tr.abs_r[li][j][c] end
      rows[#rows + 1], yt[#rows + 1] = row, name .. ", layer " .. l
    end
  end
  for li, l in ipairs(layers) do
    local row = {}
    for c = 1, o.components do row[c] = tr.explained_ratio[li][c] end
    rows[#rows + 1], yt[#rows + 1] = row, "var ratio, layer " .. l
  end
  plot.heatmap(rows, E:file("trace_heatmap.png"), { title = string.format(
    "|r| of each PC with each value (n = %d); last rows: variance ratio", analysis_set.n),
    xticks = xt, yticks = yt, vmin = 0, vmax = 1, cmap = "viridis", clabel = "|r| (explained-variance ratio)", values = true,
    xlabel = "principal component of the layer's concatenated states", ylabel = "value, block output (0-based layer)",
    width = 1000, height = 200 + 34 * #rows })
end

-- the summary: best |r| over the components per layer and value, its range over the halves,
-- and the |r| with the span of all components (small: cells print values)
do
  local function grid(f)
    local rows, yt = {}, {}
    for li, l in ipairs(layers) do
      rows[li], yt[li] = {}, "layer " .. l
      for j, name in ipairs(names) do rows[li][j] = f(li, j, name) end
    end
    return rows, yt
  end
  local rows, yt = grid(function(li, _, name) return best_by_layer[name][li].abs_r end)
  plot.heatmap(rows, E:file("best_r.png"), { title = "best |r| of any of the " .. o.components .. " components (all instances)",
    xticks = names, yticks = yt, vmin = 0, vmax = 1, cmap = "viridis", clabel = "|r|", xlabel = "value", values = true })
  rows = grid(function(li, _, name) return spread[name][li] end)
  plot.heatmap(rows, E:file("best_r_spread.png"), { title = string.format(
    "range (max - min) of the best |r| over %d halves of the analysis set", #halves),
    xticks = names, yticks = yt, vmin = 0, vmax = 1, cmap = "viridis", clabel = "range of |r|", xlabel = "value", values = true })
  rows = grid(function(li, j) return subspace[li][j] end)
  plot.heatmap(rows, E:file("span_r.png"), { title = string.format("|r| of each value with the span of the top %d components", o.components),
    xticks = names, yticks = yt, vmin = 0, vmax = 1, cmap = "viridis", clabel = "multiple r", xlabel = "value", values = true })
end

-- ------------------------------------------------------------------ 3. manipulation
local examples = analysis_set.examples
local b_grid = {}
for b = 100, 999, o.quick and 100 or 50 do b_grid[#b_grid + 1] = b end
if b_grid[#b_grid] ~= 999 then b_grid[#b_grid + 1] = 999 end

local function manipulate(layer, k, target)
  local li = layer + 1
  local s = tr.scores[layer]:select(2, k):totable()
  local s_min, s_max = math.huge, -math.huge
  for _, v in ipairs(s) do s_min, s_max = math.min(s_min, v), math.max(s_max, v) end
  local grid = MP.grid(s_min, s_max, 20)
  local p = MP.sweep(reg, scale, analysis_set.tokens, layer, tr.pca[layer], k, grid)
  local sum = MP.summary(p, grid, answer_range)
  local m = {}
  for i = 1, #s do
    m[i] = {}
    for g = 1, #grid do m[i][g] = grid[g] / s[i] end
  end
  local res = { layer = layer, component = k, target = target, m = m, prediction = p, coefficients = grid,
    mean_prediction = sum.mean, spearman = sum.spearman, swing_fraction = sum.swing_fraction,
    range = { min = s_min, max = s_max }, scores = s,
    max_abs_r = (function() local x = 0 for j = 1, #names do x = math.max(x, tr.abs_r[li][j][k]) end return x end)() }
  if target then
    local act = MP.actual(model, examples, layer, tr.pca[layer], k, b_grid, SEQ)
    local loc = MP.locality(examples, p, grid, act, b_grid, s, target)
    res.median_err_at_origin = loc.median_err_at_origin
    res.median_err_fraction = loc.median_err_at_origin / (s_max - s_min)
    res.median_err_by_distance = loc.by_distance
    res.unfitted = loc.skipped
    res.fits, res.actual = loc.fits, act
  end
  return res
end

local mb = manipulate(b_early.layer, b_early.component, "b")
E:say("manipulation of layer %d PC%d (b, |r| %.2f): coefficient set from %.2f to %.2f (dataset range %.2f..%.2f)",
  mb.layer, mb.component, b_early.abs_r, mb.coefficients[1], mb.coefficients[#mb.coefficients], mb.range.min, mb.range.max)
E:say("  mean prediction %.1f .. %.1f: Spearman %.3f with the coefficient, swing %.0f%% of the answer range (%.0f)",
  math.min(table.unpack(mb.mean_prediction)), math.max(table.unpack(mb.mean_prediction)), mb.spearman,
  100 * mb.swing_fraction, answer_range)
E:say("  implied b vs the real coefficient: median |f_p - f_a| at the original b %.3f (%.1f%% of the component's range %.2f); %d instances unfitted",
  mb.median_err_at_origin, 100 * mb.median_err_fraction, mb.range.max - mb.range.min, mb.unfitted)
do
  local parts = {}
  local d = mb.median_err_by_distance
  for j = 1, #d.distance do
    if d.distance[j] % 200 == 0 then parts[#parts + 1] = string.format("%+d: %.2f", d.distance[j], d.median[j]) end
  end
  E:say("  median |f_p - f_a| by distance from the original b: %s", table.concat(parts, ", "))
end
E:check("manip_b", gate(math.abs(mb.spearman) >= 0.9 and mb.swing_fraction >= 0.2),
  "prediction monotone in the b component's coefficient (|Spearman| %.3f, needs >= 0.9) with a swing of %.0f%% of the answer range (needs >= 20%%)%s",
  math.abs(mb.spearman), 100 * mb.swing_fraction, gate_note)
E:check("locality_b", gate(mb.median_err_fraction <= 0.1),
  "median |f_p - f_a| at the original b is %.1f%% of the component's range (aim <= 10%%; the paper's ~1.2 of ~36 is 3%%)%s",
  100 * mb.median_err_fraction, gate_note)

-- b - c in the layer where it is carried best (after layer 0 when there is a later layer)
local bc_l = #layers > 1 and bc_layer or 0
local bc_k = best_by_layer["b-c"][bc_l + 1].component
local mbc = manipulate(bc_l, bc_k, "b-c")
E:say("manipulation of layer %d PC%d (b-c, |r| %.2f): Spearman %.3f, swing %.0f%% of the answer range; median |f_p - f_a| at the original b-c %.3f (%.1f%% of its range)",
  bc_l, bc_k, best_by_layer["b-c"][bc_l + 1].abs_r, mbc.spearman, 100 * mbc.swing_fraction, mbc.median_err_at_origin,
  100 * mbc.median_err_fraction)
E:check("manip_bc", gate(math.abs(mbc.spearman) >= 0.9 and mbc.swing_fraction >= 0.2),
  "b-c component: |Spearman| %.3f, swing %.0f%% of the answer range (same bar as for b)%s",
  math.abs(mbc.spearman), 100 * mbc.swing_fraction, gate_note)

-- control: the component of b's layer that correlates least with every value
local ck, cr = trace.quietest(tr, mb.layer + 1)
local mc = manipulate(mb.layer, ck)
E:say("control: layer %d PC%d (largest |r| with any value %.2f) moves the mean prediction by %.1f%% of the answer range",
  mb.layer, ck, cr, 100 * mc.swing_fraction)
E:check("control", gate(mc.swing_fraction < 0.1 * mb.swing_fraction),
  "the control component's swing is %.1f%% of the b component's (needs < 10%%)%s",
  mb.swing_fraction > 0 and 100 * mc.swing_fraction / mb.swing_fraction or 0 / 0, gate_note)

-- ------------------------------------------------------------------ 4. the edit in the weights
-- A weight acts on every position alike, so it can only remove a direction v of d_model, not a
-- direction u over the concatenated positions. v is u's best per-position approximation (the
-- top right-singular vector of u as [positions, d_model]); the layer's output projections
-- (attention W_O, b_O and MLP W_out, b_out) lose their component along v.
local weight_edit
do
  local l = mb.layer
  local u = tr.pca[l].components[mb.component]:contiguous()
  local _, sv, vh = T.svd(u:view(SEQ, o.d_model))
  local v = vh[1]:contiguous()
  local share = sv[1]:item() ^ 2
  local hook = trace.output_hook(model, l)
  local base = pred
  local function deltas(p)
    local d, mean_abs, mean = {}, 0, 0
    for i = 1, #p do d[i] = p[i] - base[i]; mean_abs = mean_abs + math.abs(d[i]); mean = mean + d[i] end
    return d, mean_abs / #p / answer_range, mean / #p / answer_range
  end
  local acts = analysis.ablate_direction(hook, u)
  local d_u, a_u, m_u = deltas(R.values(reg, analysis_set.tokens, scale, function() return acts end))
  local actv = analysis.ablate_direction(hook, v)
  local d_v, a_v, m_v = deltas(R.values(reg, analysis_set.tokens, scale, function() return actv end))
  local handles = {}
  for _, name in ipairs({ "blocks." .. l .. ".attn.W_O", "blocks." .. l .. ".attn.b_O", "blocks." .. l .. ".mlp.W_out",
    "blocks." .. l .. ".mlp.b_out" }) do
    if model.params[name] then
      handles[#handles + 1] = analysis.edit(model, name, { project_out = v, along = "out" })
    end
  end
  local d_w, a_w, m_w = deltas(R.values(reg, analysis_set.tokens, scale))
  for k = #handles, 1, -1 do handles[k]:undo() end
  local restored = R.values(reg, analysis_set.tokens, scale)
  local max_diff = 0
  for i = 1, #restored do max_diff = math.max(max_diff, math.abs(restored[i] - base[i])) end
  local r_wv = analysis.corr(d_w, d_v)
  local r_vu = analysis.corr(d_v, d_u)
  weight_edit = { layer = l, component = mb.component, per_position_share = share, edited = #handles,
    activation_full = { mean_abs_change = a_u, mean_change = m_u },
    activation_per_position = { mean_abs_change = a_v, mean_change = m_v },
    weights = { mean_abs_change = a_w, mean_change = m_w },
    corr_weights_vs_per_position = r_wv, corr_per_position_vs_full = r_vu, undo_max_diff = max_diff }
  E:say("weight edit at layer %d: the b component is %.0f%% a single per-position direction v (its top singular value squared)",
    l, 100 * share)
  E:say("  mean |change of prediction| / answer range: remove u from the activations %.3f; remove v at every position %.3f; " ..
    "remove v from the layer's output weights %.3f", a_u, a_v, a_w)
  E:say("  the weight edit's changes correlate %.2f with the per-position activation edit's, which correlate %.2f with the full edit's; " ..
    "undo restored the predictions to within %.1g", r_wv, r_vu, max_diff)
  E:check("weight_undo", max_diff == 0, "predictions after undo equal the original ones (largest difference %g)", max_diff)
end

-- ------------------------------------------------------------------ plots
do
  -- the paper's figure: one instance's prediction as its b component's coefficient is set
  local idx = 1
  local ex = examples[idx]
  local ys, implied, lo, hi = mb.prediction[idx], {}, math.huge, -math.huge
  for g, v in ipairs(ys) do
    implied[g] = MP.targets.b.implied(ex, v)
    lo, hi = math.min(lo, v, implied[g]), math.max(hi, v, implied[g])
  end
  lo, hi = lo - 50, hi + 50
  plot.line({
    { x = mb.coefficients, y = ys, label = "prediction" },
    { x = mb.coefficients, y = implied, label = "implied b = a + c - prediction" },
    { x = { mb.scores[idx] }, y = { pred[idx] }, label = "unedited prediction" },
    { x = { mb.scores[idx] }, y = { ex.b }, label = "true b" },
    { x = { mb.range.min, mb.range.min, 0 / 0, mb.range.max, mb.range.max }, y = { lo, hi, 0 / 0, lo, hi },
      label = "dataset range of the coefficient" },
  }, E:file("manipulation.png"), { title = string.format("%s = %d: layer %d PC%d set across its range", ex.text, ex.value, mb.layer, mb.component),
    xlabel = string.format("coefficient of layer %d PC%d", mb.layer, mb.component), ylabel = "value", markers = true })
  -- predicted vs actual function for the same instance
  local fp = mb.fits[idx] and analysis.polyval(mb.fits[idx], b_grid) or {}
  plot.line({
    { x = b_grid, y = mb.actual[idx], label = "f_a: input b changed" },
    { x = b_grid, y = fp, label = "f_p: fit on implied b" },
    { x = { ex.b }, y = { mb.scores[idx] }, label = "original b" },
  }, E:file("locality.png"), { title = string.format("%s: f_p and f_a of layer %d PC%d", ex.text, mb.layer, mb.component),
    xlabel = "b", ylabel = "coefficient", markers = true })
  plot.line({
    { x = mb.median_err_by_distance.distance, y = mb.median_err_by_distance.median, label = "b (layer " .. mb.layer .. " PC" .. mb.component .. ")" },
    { x = mbc.median_err_by_distance.distance, y = mbc.median_err_by_distance.median, label = "b-c (layer " .. mbc.layer .. " PC" .. mbc.component .. ")" },
  }, E:file("locality_median.png"), { title = string.format("median |f_p - f_a| over %d instances", #examples),
    xlabel = "distance from the original value", ylabel = "median |f_p - f_a| (coefficient units)", markers = true })
  local frac = {}
  for g = 1, 20 do frac[g] = (g - 1) / 19 end
  plot.line({
    { x = frac, y = mb.mean_prediction, label = string.format("b: layer %d PC%d", mb.layer, mb.component) },
    { x = frac, y = mbc.mean_prediction, label = string.format("b-c: layer %d PC%d", mbc.layer, mbc.component) },
    { x = frac, y = mc.mean_prediction, label = string.format("control: layer %d PC%d", mc.layer, mc.component) },
  }, E:file("control.png"), { title = "mean prediction over the analysis set as one coefficient is set",
    xlabel = "coefficient set, as 1.2 x (min + f (max - min)) of its dataset range: f", ylabel = "mean prediction", markers = true })
end

-- ------------------------------------------------------------------ results
local function strip(m)
  return { layer = m.layer, component = m.component, target = m.target, m = m.m, prediction = m.prediction,
    coefficients = m.coefficients, mean_prediction = m.mean_prediction, spearman = m.spearman,
    swing_fraction = m.swing_fraction, median_err_at_origin = m.median_err_at_origin,
    median_err_fraction = m.median_err_fraction, median_err_by_distance = m.median_err_by_distance,
    range = m.range, max_abs_r = m.max_abs_r, unfitted = m.unfitted }
end
local mbc_out = strip(mbc)
mbc_out.m, mbc_out.prediction = nil, nil
E:finish({
  r2_template = r2_template, r2_random = r2_random, answer_range = answer_range, predictions = pred,
  trace = { values = names, layers = layers, hook = trace.output_hook(model, 0):gsub("^blocks%.0%.", ""), abs_r = tr.abs_r,
    explained_ratio = tr.explained_ratio, span_r = subspace, halves = #halves,
    halves_abs_r = (function() local h = {} for i, t in ipairs(halves) do h[i] = t.abs_r end return h end)(),
    halves_explained_ratio = (function() local h = {} for i, t in ipairs(halves) do h[i] = t.explained_ratio end return h end)(),
    checks = trace_checks },
  best = best, best_by_layer = best_by_layer,
  manipulation = strip(mb), manipulation_bc = mbc_out,
  control = { layer = mc.layer, component = mc.component, swing_fraction = mc.swing_fraction, spearman = mc.spearman,
    max_abs_r = mc.max_abs_r, mean_prediction = mc.mean_prediction },
  weight_edit = weight_edit,
  train_seconds = info.train_seconds, steps = steps, config = cfg, train_size = o.train_size,
  loss_curve = info.loss_curve, final_loss = info.final_loss, trace_curve = info.trace_curve,
})
