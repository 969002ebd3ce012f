-- experiments/addition.lua: Quirke & Barez, "Understanding Addition in Transformers" (ICLR 2024).
-- A 1-layer, 3-head transformer learns 5-digit addition (answer emitted most significant digit
-- first); then: per-digit loss curves, exact match by carry-cascade class, the attention
-- staircase, mean ablation of each position, and agreement with the paper's equivalent
-- algorithm. Writes results.json and PNGs to --out; every number printed is measured here.
--
--   OPENBLAS_NUM_THREADS=1 milua experiments/addition.lua [--seed N] [--steps N] [--quick|--full] [--out DIR]
local T = require "milua.tensor"
local cli = require "milua.cli"
local json = require "milua.json"
local sys = require "milua.sys"
local addition = require "milua.data.addition"
local AA = require "milua.addition_analysis"

local o = cli.parse(arg, {
  { "seed", 1, "random seed (model, training batches and test questions)" },
  { "steps", 0, "training steps (0: the tier's default)" },
  { "quick", false, "tiny run for make check (under a minute)" },
  { "full", false, "the paper's size: d_model 510 (3 heads x 170), d_mlp 2040" },
  { "lr", 5e-4, "peak learning rate (AdamW, warm-up then cosine)" },
  { "out", "out/addition", "output directory" },
}, "milua experiments/addition.lua -- 5-digit addition in a 1-layer transformer (Quirke & Barez)")

local N = 5
local tier = o.quick and { name = "quick", d_model = 120, steps = 300, n_test = 2000, n_probe = 500, every = 10 }
  or o.full and { name = "full", d_model = 510, steps = 4000, n_test = 20000, n_probe = 1000, every = 20 }
  or { name = "default", d_model = 120, steps = 4000, n_test = 20000, n_probe = 2000, every = 20 }
local steps = o.steps > 0 and o.steps or tier.steps
local recipe = { steps = steps, lr = o.lr, warmup = 100, decay = "cosine", batch = 64, weight_decay = 0.1,
  betas = { 0.9, 0.98 }, clip = 1.0, init_range = 0.02, enrich = "p=0.2 per batch, 20% of pairs sum to 9" }
sys.mkdir(o.out)
local t_start, load_start = sys.clock(), AA.loadavg()

T.seed(o.seed)
local test = addition.batch(tier.n_test, N)                  -- fresh, non-enriched: drawn first, so the
                                                             -- same seed tests on the same questions
local model = AA.model { n_digits = N, d_model = tier.d_model, n_heads = 3, init_range = recipe.init_range }
print(string.format("%s tier: %s, %d steps, seed %d, load average %s", tier.name, tostring(model), steps, o.seed, load_start))
local run = AA.train(model, { n_digits = N, steps = steps, lr = recipe.lr, warmup = recipe.warmup, every = tier.every,
  batch = recipe.batch, weight_decay = recipe.weight_decay, clip = recipe.clip, class_set = test,  -- S0..S5 over training
  eval_every = math.max(1, steps // 16), log_every = math.max(1, steps // 8) })

-- evaluation
local ev = AA.evaluate(model, test)
local agree = AA.agreement(ev, test)
local probe = test.tokens:narrow(1, 1, tier.n_probe)
local without_answers = AA.without_answer_tokens(model, test, probe)  -- do carries come from written digits?
local stair = AA.staircase(model, probe, N)
local abl = { resid_post = {}, resid_pre = {} }
abl.resid_post.acc, abl.resid_post.base = AA.ablate_positions(model, probe, test.targets:narrow(1, 1, tier.n_probe),
  "blocks.0.hook_resid_post", N)
abl.resid_pre.acc, abl.resid_pre.base = AA.ablate_positions(model, probe, test.targets:narrow(1, 1, tier.n_probe),
  "blocks.0.hook_resid_pre", N)

-- figures
local png = {}
png[#png + 1] = AA.plot_digit_loss(run.curves, N, o.out .. "/digit_loss.png")
png[#png + 1] = AA.plot_digit_loss(run.curves, N, o.out .. "/digit_loss_early.png",
  { max_step = math.max(10 * tier.every, steps // 5), title = "Training loss per answer digit: the first steps" })
png[#png + 1] = AA.plot_buckets(run.curves, o.out .. "/digit_buckets.png", { merge = 5 })
for h = 1, stair.heads do png[#png + 1] = AA.plot_staircase(stair, h, N, o.out .. "/staircase_head" .. h .. ".png") end
png[#png + 1] = AA.plot_ablation(abl.resid_post.acc, N, o.out .. "/ablation_resid_post.png",
  "Mean-ablating resid_post (layer output) at one position")
png[#png + 1] = AA.plot_ablation(abl.resid_pre.acc, N, o.out .. "/ablation_resid_pre.png",
  "Mean-ablating resid_pre (the input) at one position")
png[#png + 1] = AA.plot_classes(ev, agree, o.out .. "/accuracy_by_class.png")
png[#png + 1] = AA.plot_class_curve(run.class_curve, o.out .. "/class_during_training.png")

local results = AA.results {
  n_digits = N, tier = tier.name, seed = o.seed, model = model, recipe = recipe, run = run, eval = ev,
  agree = agree, without_answers = without_answers, probe = AA.cascade_probe(ev, test), staircase = stair,
  ablation = abl, n_probe = tier.n_probe, pngs = png,
  load_start = load_start, load_end = AA.loadavg(), wall_seconds = sys.clock() - t_start,
}
json.write(o.out .. "/results.json", results)
AA.report(results)
print("wrote " .. o.out .. "/results.json and " .. #png .. " PNGs")
