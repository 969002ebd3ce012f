-- The --quick runs of the experiment scripts that the tests make, in one list: the tests run
-- them (test.run_script), tests/experiments/pinned/pin.lua pins their results, bench/experiments.lua
-- times them against the one-minute budget. Each: the name of its pin file, the script, the
-- flags (without --out), optionally `place` (flags that say only where things are, such as a
-- reused model's directory, with {out} for pin.lua's output directory), the fields to pin (dotted paths into results.json, list indices
-- 1-based), the tolerance of each field where the pins were made on another machine (CPU and
-- OpenBLAS decide the bits; training runs then drift apart), and the accuracies that must beat
-- chance, with the reason for each chance level.
local frac = 0.15      -- a fraction (accuracy, R^2, a score in [0, 1]) on another machine
local loss = 0.25      -- a loss, in nats

return {
  {
    name = "addition", script = "experiments/addition.lua", flags = "--quick --seed 3",
    fields = { acc_overall = frac, final_train_loss = loss, ["digit_acc.A4"] = frac, ["digit_acc.A5"] = frac,
      ["acc_by_class.S0.digit_acc.A4"] = frac, ["staircase.key_mass.1.1"] = frac, ["ablation.acc.1.2"] = frac,
      ["cascade_probe.no_carry.said_carry"] = frac },
    chance = { ["digit_acc.A4"] = { above = 0.1, why = "a uniform guess of one of 10 digits" } },
  },
  {
    name = "hierarchical_filtering", script = "experiments/hierarchical_filtering.lua", flags = "--quick",
    fields = { acc = frac, ["kl_bp.last"] = loss, ["bp_acc_by_k.2"] = frac, ["filtered.1.acc"] = frac,
      ["final_vs_bp.2.agree"] = frac },
    chance = { acc = { above = 1 / 3, why = "a uniform guess of one of q = 3 root symbols" } },
  },
  {
    name = "hierarchical_mlm", script = "experiments/hierarchical_mlm.lua", flags = "--quick",
    fields = { acc = frac, bp_exact_acc = frac, kl_bp = loss, ["probe_acc.2.2"] = frac, ["block_attention.1.3"] = frac,
      ["final_vs_bp.3.agree"] = frac },
    chance = { acc = { above = 1 / 3, why = "a uniform guess of one of q = 3 symbols" } },
  },
  {
    name = "intermediate_values", script = "experiments/intermediate_values.lua", flags = "--quick --seed 3 --trace_every 300",
    fields = { r2_template = frac, r2_random = frac, final_loss = loss, ["best.answer.abs_r"] = frac,
      ["control.max_abs_r"] = frac, ["weight_edit.activation_full.mean_abs_change"] = frac },
    chance = { r2_template = { above = 0, why = "a constant prediction has R^2 = 0" },
      r2_random = { above = 0, why = "a constant prediction has R^2 = 0" } },
  },
  {
    name = "tree_paths", script = "experiments/tree_paths.lua", flags = "--quick --nodes 4",
    fields = { acc = frac, ["acc_by_path_length.1"] = frac, ["acc_by_path_length.3"] = frac, ["answer_lens.4"] = frac,
      ["patching.recovered.1.1"] = frac, ["probes.goal.2"] = frac },
    chance = { acc = { above = 0.5, why = "at best 1/2: one of the root's two children, then the stop, on the shortest paths" } },
  },
  {
    name = "lego_assoc", script = "experiments/lego_assoc.lua", flags = "--quick",
    fields = { ["acc_by_depth.1"] = frac, ["acc_by_depth.2"] = frac, ["acc_by_depth.3"] = frac, ["best_head.score"] = frac,
      ["assoc_score.1.1"] = frac, baseline = 0 },
    chance = { ["acc_by_depth.1"] = { above = 0.5, why = "a variable's value is one of two" } },
  },
  {
    name = "lego_shortcut", script = "experiments/lego_shortcut.lua", flags = "--quick",
    -- where lego_assoc's model is reused from: a location, not a result ({out}: pin.lua's --out)
    place = "--assoc_out {out}/lego_assoc",
    fields = { ["models.ordered.acc_on.ordered.1"] = frac, ["models.ordered.acc_on.shuffled.2"] = frac,
      ["models.shuffled.acc_by_depth.3"] = frac, ["models.tied.acc_by_depth.2"] = frac,
      ["models.ordered.supervised_min"] = frac },
    chance = { ["models.ordered.acc_on.ordered.1"] = { above = 0.5, why = "a variable's value is one of two" } },
  },
  {
    name = "lego_mimic", script = "experiments/lego_mimic.lua", flags = "--quick",
    place = "--assoc_out {out}/lego_assoc",
    fields = { ["models.random.acc_by_depth.1"] = frac, ["models.mimic.acc_by_depth.2"] = frac,
      ["models.module.unsupervised_mean"] = frac, ["models.mimic.pretrain.kl_after"] = 1, ["flops.saved_fraction"] = 0 },
    chance = { ["models.random.acc_by_depth.1"] = { above = 0.5, why = "a variable's value is one of two" } },
  },
}
