-- experiments/addition.lua: Quirke & Barez, "Understanding Addition in Transformers" (ICLR 2024).
-- A 1-layer, 3-head transformer learns 5-digit addition (answer emitted most significant digit
-- first); then: per-digit loss curves, exact match by carry-cascade class, the attention
-- staircase, mean ablation of each position, and agreement with the paper's equivalent
-- algorithm. Writes results.json, report.txt and PNGs to --out; every number printed is measured
-- here. Helpers: experiments/addition/ (training, evaluate, algorithm, staircase, figures, results).
--
--   OPENBLAS_NUM_THREADS=1 milua experiments/addition.lua [--seed N] [--steps N] [--quick|--full] [--out DIR]
local experiment = require "milua.experiment"   -- first: it puts experiments/ on package.path
local T = require "milua.tensor"
local json = require "milua.json"
local addition = require "milua.data.addition"
local training = require "addition.training"
local evaluate = require "addition.evaluate"
local algorithm = require "addition.algorithm"
local staircase = require "addition.staircase"
local figures = require "addition.figures"
local results = require "addition.results"
local checks = require "addition.checks"

local E = experiment.start(arg, {
  name = "addition",
  about = "milua experiments/addition.lua -- 5-digit addition in a 1-layer transformer (Quirke & Barez)",
  flags = {
    { "seed", 1, "random seed (model, training batches and test questions)" },
    { "steps", nil, "training steps (default: the tier's)", "integer" },
    { "quick", false, "tiny run for make check (under a minute)" },
    { "full", false, "the paper's size: d_model 510 (3 heads x 170), d_mlp 2040" },
    { "lr", 5e-4, "peak learning rate (AdamW, warm-up then cosine)" },
  },
})
local o = E.opts

local N = 5
local tier = o.quick and { name = "quick", d_model = 120, steps = 300, n_test = 2000, n_probe = 500, every = 10 }
  or o.full and { name = "full", d_model = 510, steps = 4000, n_test = 20000, n_probe = 1000, every = 20 }
  or { name = "default", d_model = 120, steps = 4000, n_test = 20000, n_probe = 2000, every = 20 }
local steps = o.steps or tier.steps
local recipe = { steps = steps, lr = o.lr, warmup = 100, decay = "cosine", batch = 64, weight_decay = 0.1,
  betas = { 0.9, 0.98 }, clip = 1.0, init_range = 0.02, enrich = "p=0.2 per batch, 20% of pairs sum to 9" }
local load_start = results.loadavg()

-- ---------------------------------------------------------------- training
T.seed(o.seed)
local test = addition.batch(tier.n_test, N)                  -- fresh, non-enriched: drawn first, so the
                                                             -- same seed tests on the same questions
E:say("%s tier: d_model %d, %d steps, seed %d, load average %s", tier.name, tier.d_model, steps, o.seed, load_start)
-- trained once per recipe; the checkpoint keeps the training record (loss curves, class curve)
local key = { n_digits = N, d_model = tier.d_model, n_heads = 3, recipe = recipe, loss_window = tier.every,
  n_test = tier.n_test }
local model, run = E:model("model", key, function()
  local m = training.model { n_digits = N, d_model = tier.d_model, n_heads = 3, init_range = recipe.init_range }
  local r = training.train(m, { n_digits = N, steps = steps, lr = recipe.lr, warmup = recipe.warmup, every = tier.every,
    batch = recipe.batch, weight_decay = recipe.weight_decay, clip = recipe.clip, class_set = test,  -- S0..S5 over training
    eval_every = math.max(1, steps // 16), log_every = math.max(1, steps // 8) })
  local curves, tail = {}, {}
  for k, v in pairs(r.curves) do if type(v) ~= "function" then curves[k] = v end end
  for i = math.max(1, #r.losses - 99), #r.losses do tail[#tail + 1] = r.losses[i] end
  return m, { curves = curves, class_curve = r.class_curve, steps = r.steps, seconds = r.seconds, losses = tail }
end)
if run.reused then training.restore(run) end
E:say("%s: %s", tostring(model), run.reused and string.format("reused %s/model.safetensors", E.out) or "trained")

-- ---------------------------------------------------------------- measurements
local ev = evaluate.run(model, test)                          -- exact match per class, greedy answers
local agree = algorithm.agreement(ev, test)                   -- the equivalent algorithm vs the model
local probe = test.tokens:narrow(1, 1, tier.n_probe)
local without_answers = evaluate.without_answer_tokens(model, test, probe)  -- do carries come from written digits?
local stair = staircase.measure(model, probe, N)
local abl = { resid_post = {}, resid_pre = {} }
for _, where in ipairs({ "resid_post", "resid_pre" }) do
  abl[where].acc, abl[where].base = evaluate.ablate_positions(model, probe, test.targets:narrow(1, 1, tier.n_probe),
    "blocks.0.hook_" .. where, N)
end

-- ---------------------------------------------------------------- figures
local png = {}
local function fig(name) png[#png + 1] = E:file(name); return png[#png] end
figures.digit_loss(run.curves, N, fig("digit_loss.png"))
figures.digit_loss(run.curves, N, fig("digit_loss_early.png"),
  { max_step = math.max(10 * tier.every, steps // 5), title = "Training loss per answer digit: the first steps" })
figures.buckets(run.curves, fig("digit_buckets.png"), { merge = 5 })
for h = 1, stair.heads do figures.staircase(stair, h, N, fig("staircase_head" .. h .. ".png")) end
figures.ablation(abl.resid_post.acc, N, fig("ablation_resid_post.png"), "Mean-ablating resid_post (layer output) at one position")
figures.ablation(abl.resid_pre.acc, N, fig("ablation_resid_pre.png"), "Mean-ablating resid_pre (the input) at one position")
figures.classes(ev, agree, fig("accuracy_by_class.png"))
figures.class_curve(run.class_curve, fig("class_during_training.png"))

local res = results.table {
  n_digits = N, tier = tier.name, seed = o.seed, model = model, recipe = recipe, run = run, eval = ev,
  agree = agree, without_answers = without_answers, probe = algorithm.cascade_probe(ev, test), staircase = stair,
  ablation = abl, n_probe = tier.n_probe, pngs = png, load_start = load_start, load_end = results.loadavg(),
}

-- ---------------------------------------------------------------- the report and the checks
-- the checks are decided by addition.checks from the table alone; each is printed where its
-- numbers are
local verdict = {}
for _, v in ipairs(checks.evaluate(res)) do verdict[v.name] = v end
local function check(name) E:check(name, verdict[name].holds, "%s", verdict[name].text) end
local gap = checks.gap(res)
res.s2_s3_gap = { final = gap.final or json.null, widest = gap.widest or json.null, widest_step = gap.widest_step or json.null }
local CLASSES = evaluate.classes
local c = res.config
local names = res.staircase.predicts
local say = function(...) E:say(...) end
local function pct(v) return (v == json.null or v == false) and "   -  " or string.format("%5.1f%%", 100 * v) end

say("")
say("== training: %d steps in %.1f s (%.1f steps/s), final loss %.4f; load average %s at start, %s at end",
  c.recipe.steps, res.train_seconds, res.steps_per_second, res.final_train_loss, res.load_start, res.load_end)
local parts = {}
for _, name in ipairs(names) do
  local s = res.digit_learned_step[name]
  parts[#parts + 1] = name .. " " .. (s == json.null and "never" or tostring(s))
end
say("first step at which each digit's training loss (mean over %d-step windows) is below 0.5: %s",
  res.loss_curves.window, table.concat(parts, ", "))
say("order: %s (paper: A5, then A4, then A0, then A3/A2/A1 together; PyTorch calibration: A5, A4, A0, A3, A2, A1)",
  table.concat(res.learned_order, " "))
local first = res.digit_learned_step[res.learned_order[1]]
local last = res.digit_learned_step[res.learned_order[#res.learned_order]]
if first ~= json.null and last ~= json.null then say("the slowest digit crossed 0.5 %.1fx later than the fastest", last / first) end
local b = res.bucket_curves
local function crossing(series)
  for i, v in ipairs(series) do if v == v and v < 0.5 then return b.steps[i] end end
  return "never"
end
say("digit %s by carry situation, first window below 0.5: BA-only %s, UC1 %s, US9 %s (paper: UC1 lags BA)",
  b.digit, crossing(b.BA), crossing(b.UC1), crossing(b.US9))

say("")
say("== exact match on %d fresh non-enriched questions: %.4f (paper > 0.995; PyTorch calibration at 6k steps 0.92)",
  c.n_test, res.acc_overall)
check("acc_overall_ge_0_95")
local wa = res.acc_without_answer_tokens
say("  class      n   exact match   per digit (A5..A0)                    | answer tokens hidden")
for _, cl in ipairs(CLASSES) do
  local e, w = res.acc_by_class[cl], wa.acc_by_class[cl]
  local d = {}
  for k, name in ipairs(names) do d[k] = e.digit_acc[name] == json.null and "  -  " or string.format("%.3f", e.digit_acc[name]) end
  say("  %s  %6d    %s     %s | %s", cl, e.n, pct(e.acc), table.concat(d, " "), pct(w.acc))
end
-- the paper's signature: S2 (one sum-9 column above a carry) answered, S3 (two) the hardest class
local s2, s3 = res.acc_by_class.S2.acc, res.acc_by_class.S3.acc
local both = s2 ~= json.null and s3 ~= json.null
check("s2_ge_0_85")
check("s3_weakest")
if both then
  local w2, w3 = wa.acc_by_class.S2.acc, wa.acc_by_class.S3.acc
  if w2 ~= json.null and w3 ~= json.null then
    say("with the identities of the already-written answer digits hidden (their embeddings mean-ablated): " ..
      "overall %s, S2 %s, S3 %s", pct(wa.acc_overall), pct(w2), pct(w3))
  end
end
local cc = res.class_curve
if cc ~= json.null and #cc.steps > 0 then
  local widest, at = -math.huge, nil
  local stride = math.ceil(#cc.steps / 8)
  say("during training (exact match on the same test questions):")
  say("    step   overall     S2      S3    S2 - S3")
  for i, step in ipairs(cc.steps) do
    local a2, a3 = cc.S2[i], cc.S3[i]
    local known = a2 ~= json.null and a3 ~= json.null
    if known and a2 - a3 > widest then widest, at = a2 - a3, step end
    if i % stride == 0 or i == #cc.steps then
      say("  %6d   %s  %s  %s  %s", step, pct(cc.overall[i]), pct(a2), pct(a3),
        known and string.format("%5.1f", 100 * (a2 - a3)) or "   -")
    end
  end
  if at then
    say("the gap was widest at step %d (%.1f points) and is %.1f points at the end", at, 100 * widest,
      100 * (both and s2 - s3 or 0 / 0))
  end
end
check("s3_learned_after_s2")
local cp = res.cascade_probe
say("answer digits whose two lower pairs both sum to 9: the model adds a carry in %s of %d cases where one " ..
  "arrives and in %s of %d where none does (the carry is decided three or more columns down)",
  pct(cp.carry_arrives.said_carry), cp.carry_arrives.n, pct(cp.no_carry.said_carry), cp.no_carry.n)

say("")
local st = res.staircase
say("== attention staircase (mean over %d questions): per head, the top key (its weight) and the digit pair " ..
  "x_j,y_j with the most weight (- when below 0.5)", c.n_analysis)
for q, name in ipairs(names) do
  local cells = {}
  for h = 1, #st.top_key[q] do
    local j = st.top_column[q][h]
    cells[h] = string.format("H%d %-3s %.2f pair %s (%.2f)", h, st.top_key_label[q][h], st.key_mass[q][h],
      j == json.null and "-" or tostring(j), st.top_column_mass[q][h])
  end
  say("  %-2s -> %s: %s", st.query_labels[q], name, table.concat(cells, " | "))
end
local roles = {}
for h = 1, #st.moves do
  local off = st.offset["H" .. h]
  roles[h] = string.format("H%d reads pair i%s at %d/%d positions, moves down one column at %d/%d steps", h,
    off == json.null and "?" or off == 0 and "" or "-" .. off, st.offset_hits[h], st.offset_total[h], st.moves[h], st.move_total[h])
end
say("while A_i is predicted: %s", table.concat(roles, "; "))
say("answer positions where the heads read exactly the pairs i, i-1, i-2 (those that exist): %d/%d " ..
  "(paper: three staircases offset by one column); distinct head offsets: %d", st.exact, #names, st.distinct_head_offsets)

say("")
local function breaks(a, what)
  local base = {}
  for k, name in ipairs(a.digits) do base[k] = string.format("%s %.3f", name, a.base[name]) end
  say("== mean-ablating %s at one position (%d questions; digit accuracy without ablation: %s)", what,
    a.n_questions, table.concat(base, ", "))
  local quiet = {}
  for pos, row in ipairs(a.acc) do
    local hit = {}
    for k, v in ipairs(row) do
      if a.base[a.digits[k]] - v > 0.1 then hit[#hit + 1] = string.format("%s %.2f", a.digits[k], v) end
    end
    if #hit > 0 then say("  position %2d (%s): %s", pos, a.positions[pos], table.concat(hit, ", "))
    else quiet[#quiet + 1] = a.positions[pos] end
  end
  say("  no digit loses more than 10 points at: %s", #quiet > 0 and table.concat(quiet, " ") or "none")
end
breaks(res.ablation, "the layer's output (resid_post)")
say("  (in a 1-layer model resid_post at a position feeds only that position's prediction, so this map follows " ..
  "from the architecture)")
breaks(res.ablation_resid_pre, "the input (token + position embedding, resid_pre)")

say("")
say("== the paper's equivalent algorithm (looks at most two columns back) vs the model's greedy answers")
for _, cl in ipairs({ "overall", table.unpack(CLASSES) }) do
  local a = res.agree_algorithm[cl]
  if a and a.n > 0 then
    say("  %-7s n = %5d  model = truth %s  model = algorithm %s  algorithm = truth %s  model errors equal to " ..
      "the algorithm's answer: %d/%d", cl, a.n, pct(a.model_true), pct(a.model_alg), pct(a.alg_true), a.errors_alg,
      a.errors)
  end
end
check("s3_errors_are_algorithm")

E:finish(res)
