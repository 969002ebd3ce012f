-- lego.recipe: the LEGO model, its training recipe, the flags that change it, the test sets, and
-- training one model once per recipe (checkpoint reuse through milua.experiment).
--
--   local recipe = require "lego.recipe"
--   recipe.default, recipe.quick          the recipe and what --quick changes
--   recipe.variants, variants_about       the models the scripts compare (recipe.fit variants), described
--   recipe.flags(extra), recipe.assoc_flag   the LEGO flags (a milua.cli spec), then the script's own
--   local r = recipe.options(E)           the recipe for these flags
--   recipe.compare(E, r)                  the recipe of the models trained beside lego_assoc's
--   recipe.shared(E, r)                   lego_assoc's model, reused from (or trained into) --assoc_out
--   recipe.model(o)                       a bidirectional encoder with a binary output per position
--   recipe.test_sets(r, {name = ordered}) fixed test sets, drawn from their own seed
--   local model, info = recipe.fit(E, r, name, variant, {dir})   train (or reuse) one model
--   recipe.acc_by_depth(model, set)       accuracy by chain depth
--   recipe.trained(acc, supervised, at)   every supervised depth >= at (0.97): the model learned the task
--   recipe.escape_step(curve, supervised, at)   first step of a training curve where it did
--   recipe.mean(list, from, to), recipe.fmt(list, digits)
local T = require "milua.tensor"
local nn = require "milua.nn"
local lego = require "milua.data.lego"
local curriculum = require "lego.curriculum"

local R = {}

--- recipe.default: the training recipe (experiments/README.md says how it was chosen)
R.default = {
  n_var = 5, n_layers = 4, n_heads = 4, d_model = 64, d_mlp = 256, init_range = 0.1,
  steps = 4000, tokens = 4096, lr = 1e-3, warmup = 100, decay = "cosine", weight_decay = 0.01, clip = 1.0,
  curriculum = { start = 2, extra = 1, grow_at = 0.95, max_stage = 500 }, operands = 3.0, operands_final = 1.0,
  unsupervised = 2,      -- the last two depths are never supervised (the paper's length generalisation)
  compare_steps = 2000,  -- per model that lego_shortcut and lego_mimic train beside the reused one
  mimic_steps = 150,     -- attention-mimicking pre-training steps
  trained_at = 0.97,     -- a model "trained" when every supervised depth reaches this on the test set
  curve_every = 50, curve_n = 500,   -- accuracy by depth on a fixed held-out set during training
}
--- recipe.quick: what --quick changes (a smoke run of well under a minute; it does not escape the
-- plateau: depth 1 is supervised and stays at chance, so no model counts as trained)
R.quick = { n_var = 3, unsupervised = 1, steps = 60, tokens = 1024, n_test = 200, mimic_steps = 20, curve_every = 10,
  curve_n = 100 }

--- recipe.variants: the models the scripts compare, all of one recipe (recipe.fit's variant)
R.variants = {
  shuffled = {},                                                -- lego_assoc's model
  ordered = { ordered = true },                                 -- clauses in chain order
  tied = { tie_layers = true },                                 -- one block applied n_layers times
  module = { fixed_patterns = { [1] = "assoc", [2] = "local" } },   -- the LEGO attention module
}
R.variants_about = { shuffled = "shuffled clauses, untied", ordered = "clauses in chain order", tied = "tied layers",
  module = "heads 1, 2 fixed: association, local", mimic = "mimicking init", random = "random init, shuffled clauses" }

--- recipe.flags(extra) -> the LEGO flags after milua.experiment's common ones, then extra
function R.flags(extra)
  local spec = {
    { "seed", 1, "random seed (model init, data, test sets)" },
    { "steps", nil, "training steps per model (default: the recipe's " .. R.default.steps .. ")", "integer" },
    { "n_var", 0, "variables per chain (0: the recipe's " .. R.default.n_var .. ")" },
    { "n_train_var", 0, "supervise depths below this (0: all but the last " .. R.default.unsupervised .. ")" },
    { "layers", 0, "layers (0: the recipe's " .. R.default.n_layers .. ")" },
    { "lr", 0.0, "peak learning rate (0: the recipe's " .. R.default.lr .. ")" },
    { "n_test", 2000, "test sequences" },
  }
  for _, e in ipairs(extra or {}) do spec[#spec + 1] = e end
  return spec
end

--- recipe.options(E) -> the recipe for E.opts: a copy of recipe.default with --quick and the
-- explicit flags applied, plus seed and n_test
function R.options(E)
  local opts = E.opts
  local r = {}
  for k, v in pairs(R.default) do r[k] = v end
  r.n_test = opts.n_test
  if opts.quick then for k, v in pairs(R.quick) do r[k] = v end end
  if opts.steps then r.steps = opts.steps end
  if opts.n_var > 0 then r.n_var = opts.n_var end
  if opts.layers > 0 then r.n_layers = opts.layers end
  if opts.lr > 0 then r.lr = opts.lr end
  r.n_train_var = opts.n_train_var > 0 and math.min(opts.n_train_var, r.n_var) or math.max(1, r.n_var - r.unsupervised)
  r.seed = opts.seed
  return r
end

local CLAUSE = 5   -- tokens per clause: "a = val 1 ,"

--- recipe.model{n_var, n_layers, n_heads, d_model, d_mlp, tie_layers, fixed_patterns, init_range}
function R.model(o)
  local d = o.d_model or 64
  return nn.transformer {
    n_layers = o.n_layers or 4, d_model = d, n_heads = o.n_heads or 4, d_head = d // (o.n_heads or 4),
    d_mlp = o.d_mlp or 4 * d, d_vocab = lego.n_vocab, d_vocab_out = 2, n_ctx = CLAUSE * o.n_var + 2,
    act_fn = "gelu", normalization = "LN", causal = false, tie_layers = o.tie_layers or false,
    fixed_patterns = o.fixed_patterns, init_range = o.init_range,
  }
end

--- recipe.assoc_flag: the flag (for recipe.flags) naming where lego_assoc keeps its model
R.assoc_flag = { "assoc_out", "out/lego_assoc", "where lego_assoc keeps its model (shuffled data, untied): reused from there, or trained into it" }

--- recipe.compare(E, r) -> the recipe of the models lego_shortcut and lego_mimic train beside the
-- reused one: r with recipe.default.compare_steps steps, unless --steps or --quick set them
function R.compare(E, r)
  local c = {}
  for k, v in pairs(r) do c[k] = v end
  if not E.opts.steps and not E.opts.quick then c.steps = r.compare_steps end
  return c
end

--- recipe.shared(E, r) -> model, info: lego_assoc's model (shuffled data, untied), reused from
-- (or trained into) the directory of --assoc_out (recipe.assoc_flag), so that the three scripts train it once
function R.shared(E, r)
  return R.fit(E, r, "model", R.variants.shuffled, { dir = E.opts.assoc_out })
end

--- recipe.test_sets(r, {name = ordered (bool), ...}) -> {name = lego.batch}: drawn from their own
-- seed, so a reused checkpoint sees the same test data as a fresh run
function R.test_sets(r, kinds)
  T.seed(r.seed * 7919 + 17)
  local names = {}
  for name in pairs(kinds) do names[#names + 1] = name end
  table.sort(names)   -- drawn in a fixed order: pairs() order changes from run to run
  local out = {}
  for _, name in ipairs(names) do out[name] = lego.batch(r.n_test, r.n_var, { ordered = kinds[name] }) end
  return out
end

-- what does not decide the weights stays out of a checkpoint's key: the test-set size, the
-- settings of the other scripts' models and of the held-out curve
local NOT_IN_KEY = { n_test = true, compare_steps = true, mimic_steps = true, trained_at = true, curve_every = true,
  curve_n = true }

--- recipe.fit(E, r, name, variant, {dir}) -> model, info {train_seconds, reused, curriculum, steps, final_loss, pretrain, curve}
-- One model of the recipe r, trained from T.seed(r.seed) with the variant (tie_layers,
-- fixed_patterns, ordered, init(model) run before training and named init_name, label), or
-- reused from <dir>/<name>.safetensors (dir: E.out unless given) when that file holds a run of
-- the same recipe and variant. info.curve is the accuracy by depth on a fixed held-out set of
-- r.curve_n chains (in the training order: shuffled, or chain-ordered for variant.ordered) every
-- r.curve_every steps: {steps = {...}, acc = {{depth 0, ...}, ...}}.
function R.fit(E, r, name, variant, o)
  variant = variant or {}
  local key = {}
  for k, v in pairs(r) do if not NOT_IN_KEY[k] then key[k] = v end end
  local full = { recipe = key, tie = variant.tie_layers or false, fixed = variant.fixed_patterns or false,
    ordered = variant.ordered or false, init = variant.init_name or false }
  return E:model(name, full, function()
    T.seed(r.seed * 7919 + 29)
    local held_out = lego.batch(r.curve_n or 500, r.n_var, { ordered = variant.ordered })
    T.seed(r.seed)
    local model = R.model { n_var = r.n_var, n_layers = r.n_layers, n_heads = r.n_heads, d_model = r.d_model,
      d_mlp = r.d_mlp, init_range = r.init_range, tie_layers = variant.tie_layers,
      fixed_patterns = variant.fixed_patterns }
    local pre = variant.init and variant.init(model) or nil
    local res = curriculum.train(model, {
      n_var = r.n_var, n_train_var = r.n_train_var, steps = r.steps, tokens = r.tokens, lr = r.lr, warmup = r.warmup,
      decay = r.decay, weight_decay = r.weight_decay, clip = r.clip, curriculum = r.curriculum, operands = r.operands,
      operands_final = r.operands_final, test = held_out, eval_every = r.curve_every or 50,
      ordered = variant.ordered, label = variant.label or name, log_every = math.max(1, r.steps // 10),
    })
    local grown = {}
    for n, step in pairs(res.curriculum) do grown[#grown + 1] = { chain = n, step = step } end
    table.sort(grown, function(a, b) return a.chain < b.chain end)
    local curve = { steps = {}, acc = {} }
    for i, ev in ipairs(res.evals) do
      local acc = {}
      for d = 0, r.n_var - 1 do acc[d + 1] = ev["d" .. d] end
      curve.steps[i], curve.acc[i] = ev.step, acc
    end
    return model, { curriculum = grown, steps = r.steps, final_loss = res.losses[#res.losses], pretrain = pre,
      curve = curve }
  end, { dir = o and o.dir })
end

--- recipe.trained(acc, supervised, at) -> true when every supervised depth (0 .. supervised - 1)
-- reached `at` (recipe.default.trained_at unless given), and the lowest of them
function R.trained(acc, supervised, at)
  at = at or R.default.trained_at
  local low = math.huge
  for d = 0, supervised - 1 do
    local a = acc[d + 1]
    if a == nil or a ~= a then return false, 0 / 0 end   -- a depth not measured is not learned
    low = math.min(low, a)
  end
  if supervised < 1 then return false, 0 / 0 end
  return low >= at, low
end

--- recipe.escape_step(curve, supervised, at) -> the first step of curve at which every
-- supervised depth reached `at` (the end of the plateau), or nil when it never did
function R.escape_step(curve, supervised, at)
  for i, step in ipairs(curve and curve.steps or {}) do
    if R.trained(curve.acc[i], supervised, at) then return step end
  end
  return nil
end

--- recipe.acc_by_depth(model, set) -> list: acc[d + 1] = accuracy of the variables at chain depth d
function R.acc_by_depth(model, set)
  local maxd = set.depth:max():item()
  local hit, cnt = {}, {}
  for d = 0, maxd do hit[d], cnt[d] = 0, 0 end
  local B = set.tokens:shape()[1]
  T.no_grad(function()
    for s = 1, B, 256 do
      local n = math.min(256, B - s + 1)
      local logits = model:forward(set.tokens:narrow(1, s, n))
      local tg, dp = set.targets:narrow(1, s, n), set.depth:narrow(1, s, n)
      local ok = logits:argmax(3):eq(tg)
      for d = 0, maxd do
        local m = dp:eq(d)
        hit[d] = hit[d] + (ok * m):sum():item()
        cnt[d] = cnt[d] + m:sum():item()
      end
    end
  end)
  local acc = {}
  for d = 0, maxd do acc[d + 1] = cnt[d] > 0 and hit[d] / cnt[d] or 0 / 0 end
  return acc
end

--- recipe.mean(acc, from, to) -> the mean of acc over depths from..to (NaN when empty)
function R.mean(list, from, to)
  local s, n = 0, 0
  for d = from, to do s, n = s + list[d + 1], n + 1 end
  return n > 0 and s / n or 0 / 0
end

--- recipe.fmt(list, digits) -> "0.99 0.98 ..." for printing accuracy lists
function R.fmt(list, digits)
  local f = "%." .. (digits or 3) .. "f"
  local out = {}
  for i, v in ipairs(list) do out[i] = string.format(f, v) end
  return table.concat(out, " ")
end

return R
