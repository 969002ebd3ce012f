-- The intermediate-values experiment (Matsumoto et al.): its helpers on cases with known
-- answers, then the script end to end (--quick): results.json's keys and ranges, quantities
-- recomputed from the data by hand, reproducibility at a fixed seed and thread count, and the
-- errors of its own flags.
local T = require "milua.tensor"
local test = require "milua.test"
local json = require "milua.json"
local nn = require "milua.nn"
local analysis = require "milua.analysis"
local arith = require "milua.data.arithmetic"

package.path = "experiments/?.lua;" .. package.path
local trace = require "intermediate_values.trace"
local MP = require "intermediate_values.manipulate"

-- ---- the coefficient hook sets the centred PCA score exactly ----
do
  T.seed(2)
  local m = nn.transformer { n_layers = 2, d_model = 8, n_heads = 2, d_head = 4, d_mlp = 16, d_vocab = arith.n_vocab,
    n_ctx = 16, act_fn = "gelu", normalization = "LN", causal = false }
  local set = arith.template_set(40)
  local st = trace.states(m, set.tokens, { 0, 1 })
  test.is(st[1]:shape(), { 40, 16 * 8 }, "states: one vector of all positions per instance")
  local p = analysis.pca(st[0], 5)
  local hooks = MP.set_hook("blocks.0.hook_resid_post", p, 2, function(s) return T.full({ s:numel() }, 2.5) end)
  local _, cache = m:run_with_cache(set.tokens, { "blocks.0.hook_resid_post" }, { hooks = hooks })
  local z = p:project(cache["blocks.0.hook_resid_post"]:reshape(40, -1))
  test.close(z:select(2, 2), 2.5, 1e-4, "set_hook: every instance's PC2 score becomes 2.5")
  test.close(z:select(2, 1), p:project(st[0]):select(2, 1), 1e-4, "set_hook: the other scores are untouched")
  local same = MP.set_hook("blocks.0.hook_resid_post", p, 2, function(s) return s end)
  local _, c2 = m:run_with_cache(set.tokens, { "blocks.0.hook_resid_post" }, { hooks = same })
  test.close(c2["blocks.0.hook_resid_post"]:reshape(40, -1), st[0], 1e-5, "set_hook with m = 1 changes nothing")
  -- tracing a value that is a PC score exactly: |r| = 1 for that component
  local t = trace.run(st, { 0, 1 }, { a = p:project(st[0]):select(2, 3):totable(), b = set.values.b }, { "a", "b" }, 5)
  test.close(t.abs_r[1][1][3], 1, 1e-4, "trace.run: a value equal to PC3's score has |r| = 1 with PC3")
  test.is(trace.best(t).a.component, 3, "trace.best finds it")
  local r = analysis.corr(analysis.pca(st[1], 5):project(st[1]):select(2, 1), T.tensor(set.values.b))
  test.close(t.abs_r[2][2][1], math.abs(r), 1e-6, "trace.run: |r| of layer 1 PC1 with b as analysis.corr")

  -- span r: the multiple correlation of a least-squares fit of the value on all k scores
  local span = trace.subspace_r(t)
  local z = t.scores[0]                                    -- layer 0 (span row 1)
  local fit = analysis.ridge(z, T.tensor(set.values.b), { l2 = 0 })
  local yhat = fit.predict(z)
  test.close(span[1][2], math.abs(analysis.corr(yhat, T.tensor(set.values.b))), 1e-4,
    "subspace_r: the r of a least-squares fit of b on the 5 scores")
  test.close(span[1][1], 1, 1e-4, "subspace_r: a value equal to a score lies in the span (r = 1)")

  -- halves: disjoint halves covering the set, each traced on its own instances
  local hs = trace.halves(st, { 0, 1 }, set.values, { "b", "c" }, 3, 2)
  test.is(#hs, 4, "halves: two halves per split")
  local ok_cover = true
  for s = 1, 2 do
    local seen = {}
    for h = 2 * s - 1, 2 * s do
      if #hs[h].index ~= 20 then ok_cover = false end
      for _, i in ipairs(hs[h].index) do if seen[i] then ok_cover = false end seen[i] = true end
    end
    for i = 1, 40 do if not seen[i] then ok_cover = false end end
  end
  test.ok(ok_cover, "halves: the two halves of a split are disjoint and cover the 40 instances")
  test.ok(table.concat(hs[1].index, ",") ~= table.concat(hs[3].index, ","), "halves: the splits differ")
  local idx = hs[3].index
  local sub = st[1]:index_select(1, idx)
  local cv = {}
  for q, i in ipairs(idx) do cv[q] = set.values.c[i] end
  local rc = analysis.corr(analysis.pca(sub, 3):project(sub), T.tensor(cv)):abs():totable()
  test.close(hs[3].abs_r[2][2], rc, 1e-5, "halves: a half's |r| is that of PCA and corr on its own rows and values")
  local again = trace.halves(st, { 0, 1 }, set.values, { "b", "c" }, 3, 2)
  test.is(again[4].index, hs[4].index, "halves: the same splits every time")
end

-- ---- the regressor is the model's own cls_pooler readout ----
do
  local R = require "intermediate_values.regressor"
  local plain = nn.transformer { n_layers = 1, d_model = 8, n_heads = 2, d_head = 4, d_mlp = 16, d_vocab = arith.n_vocab,
    n_ctx = 16, act_fn = "gelu", normalization = "LN", causal = false }
  local ok, err = pcall(R.wrap, plain)
  test.ok(not ok and tostring(err):find("expected a model with readout = \"cls_pooler\" and d_out = 1", 1, true) ~= nil,
    "R.wrap refuses a model without the pooler readout (" .. tostring(err) .. ")")
  local reg = R.new { n_layers = 1, d_model = 8, n_heads = 2, d_head = 4, d_mlp = 16, d_vocab = arith.n_vocab,
    n_ctx = 16, act_fn = "gelu", normalization = "LN", causal = false }
  local set = arith.template_set(5)
  -- by hand: tanh(h_[CLS] W_pool + b_pool) W + b from the final normalised stream
  local resid = reg.model:forward(set.tokens, { return_type = "resid" })
  local P = reg.model.params
  local h = resid:select(2, 1)
  local want = (h:matmul(P["pooler.W"]) + P["pooler.b"]):tanh():matmul(P["readout.W"]) + P["readout.b"]
  test.close(reg:predict(set.tokens), want:view(-1), 1e-5, "reg:predict = tanh(h_CLS W_pool + b_pool) W + b")
end

-- ---- the grid and the causal test on synthetic data with a known answer ----
do
  local g = MP.grid(-2, 3, 20)
  test.close({ g[1], g[20] }, { -2.4, 3.6 }, 1e-12, "grid: 1.2 x the dataset range at both ends")
  -- a component that carries b linearly: coefficient = alpha (b - 550). The manipulated model
  -- predicts as if b were 550 + t / alpha; the actual coefficient follows the same line.
  local alpha, examples, pred, scores = -0.03, {}, {}, {}
  local b_grid = { 100, 300, 500, 700, 900, 999 }
  local actual, off = {}, {}
  for i = 1, 7 do
    local ex = arith.template(100 + 37 * i, 150 + 101 * i, 999 - 53 * i)
    examples[i] = ex
    pred[i] = {}
    for k, t in ipairs(g) do pred[i][k] = ex.a + ex.c - (550 + t / alpha) end
    scores[i] = alpha * (ex.b - 550)
    actual[i], off[i] = {}, {}
    for j, b in ipairs(b_grid) do actual[i][j] = alpha * (b - 550); off[i][j] = actual[i][j] + 1 end
  end
  local loc = MP.locality(examples, pred, g, actual, b_grid, scores, "b")
  test.close(loc.median_err_at_origin, 0, 1e-9, "locality: a component that carries b exactly has no error at the origin")
  test.close(loc.by_distance.median, 0, 1e-9, "locality: nor at any distance")
  local loc2 = MP.locality(examples, pred, g, off, b_grid, scores, "b")
  test.close(loc2.by_distance.median, 1, 1e-9, "locality: an actual function shifted by 1 gives errors of 1")
  test.is(loc.skipped, 0, "every instance was fitted")
  local sum = MP.summary(pred, g, 1000)
  test.close(sum.spearman, 1, 1e-12, "summary: prediction rising with the coefficient (alpha < 0) has Spearman 1")
  test.close(sum.swing_fraction, (g[20] - g[1]) / -alpha / 1000, 1e-9, "summary: swing = grid span / |alpha| over the range")
  test.is(MP.median({ 3, 1, 2, 10 }), 2.5, "median of an even count")
end

-- ---- the script end to end ----
local milua = test.milua()
local dir = test.tmpdir()
local sanitized = os.getenv("MILUA_SANITIZED")
local extra = sanitized and " --steps 4 --n_analysis 40 --train_size 400" or ""

local function run(name, flags)
  return test.run_script("experiments/intermediate_values.lua", "--quick" .. flags .. extra,
    { out = dir .. "/" .. name, name = name })
end

local every = sanitized and 2 or 300             -- the sanitizer run trains 4 steps
local res, out = run("a", " --seed 3 --trace_every " .. every)
test.pinned(res, "intermediate_values", "experiments/intermediate_values.lua", "--quick --seed 3 --trace_every " .. every .. extra)

-- the keys the issue lists
for _, k in ipairs({ "r2_template", "r2_random", "train_seconds", "seed" }) do
  test.is(type(res[k]), "number", "results." .. k .. " is a number")
end
test.is(res.seed, 3, "the seed is recorded")
test.is(res.trace and res.trace.values, { "a", "b", "c", "b-c", "answer" }, "trace.values")
test.is(res.trace and res.trace.layers, { 0, 1 }, "trace.layers: blocks 0 and 1 of the quick model")
local ok_r, ok_ev = true, true
for li = 1, 2 do
  local ev, sum = res.trace.explained_ratio[li], 0
  if #ev ~= 10 then ok_ev = false end
  for c = 1, #ev do
    sum = sum + ev[c]
    if ev[c] < 0 or (c > 1 and ev[c] > ev[c - 1] + 1e-7) then ok_ev = false end
  end
  if sum > 1 + 1e-5 then ok_ev = false end
  for j = 1, 5 do
    if #res.trace.abs_r[li][j] ~= 10 then ok_r = false end
    for _, r in ipairs(res.trace.abs_r[li][j]) do if not (r >= 0 and r <= 1 + 1e-6) then ok_r = false end end
  end
end
test.ok(ok_r, "abs_r [layer][value][component]: 2 x 5 x 10 values in [0, 1]")
test.ok(ok_ev, "explained_ratio: 10 non-negative, non-increasing ratios per layer summing to at most 1")
-- best is the argmax of abs_r
do
  local good = true
  for j, name in ipairs(res.trace.values) do
    local b, want = res.best[name], -1
    for li = 1, 2 do for c = 1, 10 do want = math.max(want, res.trace.abs_r[li][j][c]) end end
    if not b or b.abs_r ~= want or res.trace.abs_r[b.layer + 1][j][b.component] ~= want then good = false end
  end
  test.ok(good, "best[value] = {layer, component, abs_r} is the largest |r| of abs_r")
end

-- the hand check: regenerate the analysis set from the seed; R^2 and the answer range from it
local n = #res.predictions
do
  T.seed(3)
  local set = arith.template_set(n, { seq_len = 1 + arith.max_length(2, 3) })
  local y, mean = set.values.answer, 0
  for i = 1, n do mean = mean + y[i] end
  mean = mean / n
  local ss, st, lo, hi = 0, 0, math.huge, -math.huge
  for i = 1, n do
    ss, st = ss + (y[i] - res.predictions[i]) ^ 2, st + (y[i] - mean) ^ 2
    lo, hi = math.min(lo, y[i]), math.max(hi, y[i])
  end
  test.close(res.r2_template, 1 - ss / st, 1e-9, "r2_template recomputed from the regenerated answers")
  test.is(res.answer_range, hi - lo, "answer range recomputed")
  test.ok(res.r2_random <= 1, "r2_random is at most 1")
end
local mp = res.manipulation or {}
for _, k in ipairs({ "layer", "component", "spearman", "swing_fraction", "median_err_at_origin" }) do
  test.is(type(mp[k]), "number", "manipulation." .. k .. " is a number")
end
test.is(mp.target, "b", "manipulation.target")
test.ok(mp.spearman >= -1 and mp.spearman <= 1 and mp.swing_fraction >= 0, "spearman in [-1, 1], swing >= 0")
test.is({ #mp.prediction, #mp.prediction[1], #mp.m, #mp.m[20] }, { n, 20, n, 20 }, "prediction and m are [instance][20]")
do
  -- m times the instance's own coefficient is the coefficient set, the same for every instance,
  -- running from 1.2 min to 1.2 max of the dataset range
  local c = mp.coefficients
  test.close({ c[1], c[20] }, { 1.2 * mp.range.min, 1.2 * mp.range.max }, 1e-9, "coefficients span 1.2 x the range")
  local worst = 0
  for i = 1, n, 7 do
    local s = c[5] / mp.m[i][5]
    for g = 1, 20 do worst = math.max(worst, math.abs(mp.m[i][g] * s - c[g])) end
  end
  test.ok(worst < 1e-9, "m[i][g] x s_i = coefficient g for every instance")
  -- swing: the range of the mean prediction over the answer range
  local mean = {}
  for g = 1, 20 do
    local s = 0
    for i = 1, n do s = s + mp.prediction[i][g] end
    mean[g] = s / n
  end
  local lo, hi = math.min(table.unpack(mean)), math.max(table.unpack(mean))
  test.close(mp.swing_fraction, (hi - lo) / res.answer_range, 1e-9, "swing_fraction recomputed from prediction")
  test.close(mp.spearman, analysis.corr(c, mean, { method = "spearman" }), 1e-9, "spearman recomputed")
end
test.ok(type(res.control) == "table" and res.control.layer == mp.layer and res.control.component ~= mp.component
  and res.control.swing_fraction >= 0, "control: another component of the same layer, with a swing")
test.is(res.weight_edit and res.weight_edit.undo_max_diff, 0, "the weight edit is undone exactly")
-- the tracing checks: each statistic recomputed from the halves' abs_r, and the verdict from it
do
  local tc, hb = res.trace.checks or {}, res.trace.halves_abs_r or {}
  test.is(#hb, 10, "ten halves (five random splits) traced")
  local function best(abs_r, li, j) local m = -1 for _, r in ipairs(abs_r[li][j]) do m = math.max(m, r) end return m end
  local stats = { b = function(a) return math.max(best(a, 1, 2), best(a, 2, 2)) end,
    ["b-c"] = function(a) return best(a, 2, 4) - best(a, 1, 4) end,
    answer = function(a) return best(a, 2, 5) - best(a, 1, 5) end }
  local need = { b = function(v) return v >= 0.85 end, ["b-c"] = function(v) return v >= 0.1 end,
    answer = function(v, a) return best(a, 2, 5) >= 0.8 and v > 0 end }
  for _, name in ipairs({ "b", "b-c", "answer" }) do
    local c = tc[name] or {}
    local lo, hi, held = math.huge, -math.huge, 0
    for _, a in ipairs(hb) do
      local v = stats[name](a)
      lo, hi = math.min(lo, v), math.max(hi, v)
      if need[name](v, a) then held = held + 1 end
    end
    test.close({ c.value, c.halves_min, c.halves_max }, { stats[name](res.trace.abs_r), lo, hi }, 1e-12,
      "trace check " .. name .. ": the statistic on the whole set and its range over the halves, recomputed")
    local whole = need[name](stats[name](res.trace.abs_r), res.trace.abs_r)
    test.is({ c.halves_held, c.all }, { held, whole and held == #hb }, "trace check " .. name .. ": held on the whole set and all halves")
  end
  -- span r is at least every single component's |r| and at most 1
  local good = true
  for li = 1, 2 do for j = 1, 5 do
    local s = res.trace.span_r[li][j]
    if not (s <= 1 + 1e-9 and s >= best(res.trace.abs_r, li, j) - 1e-9) then good = false end
  end end
  test.ok(good, "span_r: between the best single component's |r| and 1")
end

-- tracing during training: a record per `every` steps and the model of that step, which --load analyses
do
  local tcur = res.trace_curve or {}
  test.is({ #tcur, tcur[1] and tcur[1].step, tcur[2] and tcur[2].step }, { 2, every, 2 * every }, "trace_curve: two records")
  test.close(tcur[2] and tcur[2].b01, math.max(res.best_by_layer.b[1].abs_r, res.best_by_layer.b[2].abs_r), 1e-9,
    "trace_curve at the last step is the final model's tracing")
  local loaded = run("load", " --seed 3 --load " .. out .. "/model_step" .. every .. ".safetensors")
  test.close(loaded.r2_template, tcur[1] and tcur[1].r2, 1e-9, "--load model_stepN: the R^2 recorded at step N")
  test.ok(loaded.r2_template ~= res.r2_template, "--load analyses that model, not the final one")
end

for _, p in ipairs({ "trace_heatmap", "best_r", "best_r_spread", "span_r", "manipulation", "locality", "locality_median", "control" }) do
  test.png(out .. "/" .. p .. ".png", p .. ".png is a PNG", 100)
end
test.ok(type(res.checks) == "table" and res.checks.r2_template and type(res.checks.r2_template.holds) == "boolean",
  "the verdicts are in results.checks")

-- reproducibility: the same seed and thread count, trained again, gives the same numbers
do
  local res2 = run("b", " --seed 3")
  test.is(res2.predictions, res.predictions, "same seed: the same predictions, bit for bit (and tracing during training changed nothing)")
  test.is(res2.trace and res2.trace.abs_r, res.trace.abs_r, "same seed: the same abs_r")
  test.is(res2.manipulation and res2.manipulation.prediction, mp.prediction, "same seed: the same manipulated predictions")
  local res3 = run("a", " --seed 3")                                 -- reuses the checkpoint in its --out
  test.is(res3.predictions, res.predictions, "a rerun that reuses the checkpoint gives the same predictions")
end

-- the post-LN encoder (BERT's): the hidden states traced are the blocks' normalised outputs
do
  local post = run("post", " --seed 3 --ln post")
  test.is(post.trace and post.trace.hook, "hook_normalized_resid_post", "post-LN: the block output traced is hook_normalized_resid_post")
  test.is(res.trace.hook, "hook_resid_post", "pre-LN: hook_resid_post")
  test.ok(post.manipulation and #post.manipulation.prediction == n and post.config.ln_position == "post",
    "post-LN: the whole analysis runs on a post-LN model")
end

-- errors of the script's own flags: one line, non-zero exit, nothing written
do
  local function fails(flags, text, desc)
    local log = dir .. "/err.log"
    local ok = os.execute(string.format("%s experiments/intermediate_values.lua --quick --out %s/err %s > %s 2>&1",
      milua, dir, flags, log))
    local f = io.open(log)
    local msg = f and f:read("a") or ""
    if f then f:close() end
    test.ok(not ok and msg:find(text, 1, true) ~= nil, desc .. " (" .. msg:gsub("\n", " ") .. ")")
  end
  fails("--ln sideways", "flag --ln: expected pre or post, got sideways", "a bad --ln is refused")
  fails("--d_model 30 --heads 4", "--d_model 30 is not a multiple of --heads 4", "d_model must split into heads")
  fails("--load " .. dir .. "/nothing.safetensors", "--load " .. dir .. "/nothing.safetensors: ", "a missing --load file is refused")
  fails("--ln post --load " .. out .. "/model_step" .. every .. ".safetensors", "its ln_position is pre, the flags ask for post",
    "--load refuses a model of another configuration")
  local f = io.open(dir .. "/err/results.json")
  test.ok(f == nil, "nothing was written")
  if f then f:close() end
end

os.execute("rm -rf '" .. dir .. "'")
test.done()
