-- addition.results: the measurements of one run shaped into the table written to results.json
-- (the fields are listed in experiments/README.md); missing values become JSON null.
--
--   local results = require "addition.results"
--   results.table(r)     -> the results.json table
--   results.loadavg()    -> the 1-, 5- and 15-minute load averages as a string ("?" where unknown)
local json = require "milua.json"
local evaluate = require "addition.evaluate"
local training = require "addition.training"

local M = {}
local CLASSES = evaluate.classes

--- results.loadavg() -> the 1-, 5- and 15-minute load averages as a string ("?" where unknown)
function M.loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return "?" end
  local s = f:read("l") or ""
  f:close()
  return s:match("^(%S+ %S+ %S+)") or "?"
end

-- JSON null for missing values (false, nil, NaN)
local function nullable(v)
  if v == false or v == nil or v ~= v then return json.null end
  return v
end

local function named(list, names)
  local t = {}
  for k, name in ipairs(names) do t[name] = nullable(list[k]) end
  return t
end

local function nullable_matrix(m)
  local out = {}
  for i, row in ipairs(m) do
    out[i] = {}
    for j = 1, #m[1] do out[i][j] = nullable(row[j]) end
  end
  return out
end

local function mean_tail(list, k)
  local s, c = 0, 0
  for i = math.max(1, #list - k + 1), #list do s = s + list[i]; c = c + 1 end
  return c > 0 and s / c or 0 / 0
end

local function class_table(by, names)
  local t = {}
  for _, c in ipairs(CLASSES) do
    t[c] = { n = by[c].n, acc = nullable(by[c].acc), digit_acc = named(by[c].digit_acc, names) }
  end
  return t
end

local function class_curve(cc)
  local out = { steps = cc.steps, overall = cc.overall, n = cc.n }
  for _, c in ipairs(CLASSES) do
    local list = {}
    for i, v in ipairs(cc[c]) do list[i] = nullable(v) end
    out[c] = list
  end
  return out
end

--- results.table(r) -> the table written to results.json (fields listed in experiments/README.md)
function M.table(r)
  local n, m, run, ev = r.n_digits, r.model, r.run, r.eval
  local names = evaluate.digit_names(n)
  local labels = evaluate.token_labels(n)
  local learned = training.learned_steps(run.curves, 0.5)
  local order = {}
  for k, name in ipairs(names) do order[k] = { name = name, step = learned[k] or math.huge } end
  table.sort(order, function(a, b) if a.step ~= b.step then return a.step < b.step end return a.name > b.name end)
  local order_names = {}
  for k, e in ipairs(order) do order_names[k] = e.name end
  local agree = {}
  for k, s in pairs(r.agree) do
    agree[k] = { n = s.n, model_true = nullable(s.n > 0 and s.model_true), model_alg = nullable(s.n > 0 and s.model_alg),
      alg_true = nullable(s.n > 0 and s.alg_true), errors = s.errors, errors_alg = s.errors_alg }
  end
  local curves = { steps = run.curves.steps, window = run.curves.steps[1] }
  for k, name in ipairs(names) do curves[name] = run.curves.digit[k] end
  local bucket = { digit = "A" .. run.curves.bucket_digit, steps = run.curves.steps }
  for key, series in pairs(run.curves.bucket) do bucket[key] = series; bucket[key .. "_n"] = run.curves.bucket_n[key] end
  local st = r.staircase
  local qlabels = {}
  for i, p in ipairs(st.query_positions) do qlabels[i] = labels[p] end
  local function ablation(a, hook)
    return { hook = hook, positions = labels, digits = names, acc = a.acc, base = named(a.base, names),
      n_questions = r.n_probe }
  end
  local offsets = {}
  for h = 1, st.heads do if st.offset[h] then offsets[st.offset[h]] = true end end
  local n_offsets = 0
  for _ in pairs(offsets) do n_offsets = n_offsets + 1 end
  return {
    paper = "Quirke & Barez, Understanding Addition in Transformers (arXiv 2310.13121)",
    config = { tier = r.tier, n_digits = n, seed = r.seed, n_layers = 1, d_model = m.cfg.d_model,
      n_heads = m.cfg.n_heads, d_head = m.cfg.d_head, d_mlp = m.cfg.d_mlp, act_fn = m.cfg.act_fn,
      n_params = m:num_params(), recipe = r.recipe, n_test = ev.n, n_analysis = r.n_probe },
    train_seconds = run.seconds, steps_per_second = run.steps / run.seconds,
    final_train_loss = mean_tail(run.losses, 100),
    acc_overall = ev.acc, acc_by_class = class_table(ev.by_class, names), digit_acc = named(ev.digit_acc, names),
    acc_without_answer_tokens = { acc_overall = r.without_answers.acc,
      acc_by_class = class_table(r.without_answers.by_class, names) },
    digit_learned_step = named(learned, names), learned_order = order_names, loss_curves = curves,
    class_curve = r.run.class_curve and class_curve(r.run.class_curve) or json.null,
    bucket_curves = bucket,
    staircase = { query_positions = st.query_positions, query_labels = qlabels, predicts = st.predicts,
      top_key = st.top_key, top_key_label = st.top_key_label, key_mass = st.key_mass,
      top_column = nullable_matrix(st.top_column), top_column_mass = st.top_column_mass,
      offset = named(st.offset, (function() local h = {}; for i = 1, st.heads do h[i] = "H" .. i end; return h end)()),
      offset_hits = st.offset_hits, offset_total = st.offset_total, moves = st.moves, move_total = st.move_total,
      exact = st.exact, distinct_head_offsets = n_offsets, mean_pattern = st.pattern },
    ablation = ablation(r.ablation.resid_post, "blocks.0.hook_resid_post"),
    ablation_resid_pre = ablation(r.ablation.resid_pre, "blocks.0.hook_resid_pre"),
    agree_algorithm = agree,
    cascade_probe = { carry_arrives = { n = r.probe.carry.n, said_carry = nullable(r.probe.carry.frac) },
      no_carry = { n = r.probe.no_carry.n, said_carry = nullable(r.probe.no_carry.frac) } },
    pngs = r.pngs, wall_seconds = r.wall_seconds, load_start = r.load_start, load_end = r.load_end,
  }
end

return M
