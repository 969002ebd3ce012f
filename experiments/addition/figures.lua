-- addition.figures: the addition plots.
--
--   local figures = require "addition.figures"
--   figures.digit_loss(curves, n, path, {max_step, title})   training loss per answer digit
--   figures.buckets(curves, path, {merge})                 one digit's loss by carry situation
--   figures.staircase(st, head, n, path)                   a head's mean attention from the answers
--   figures.ablation(acc, n, path, title)                  digit accuracy with one position ablated
--   figures.class_curve(cc, path, {min_n})                 exact match per class during training
--   figures.classes(ev, agree, path)                       exact match and algorithm agreement per class
local plot = require "milua.plot"
local evaluate = require "addition.evaluate"

local M = {}
local CLASSES = evaluate.classes

function M.digit_loss(curves, n, path, opts)
  opts = opts or {}
  local last = opts.max_step or math.huge
  local series = {}
  for k, name in ipairs(evaluate.digit_names(n)) do
    local x, y = {}, {}
    for i, s in ipairs(curves.steps) do
      if s <= last then x[#x + 1] = s; y[#y + 1] = curves.digit[k][i] end
    end
    series[k] = { x = x, y = y, label = name }
  end
  return plot.line(series, path, { title = opts.title or "Training loss per answer digit", xlabel = "training step",
    ylabel = "cross-entropy (mean over " .. curves.steps[1] .. "-step windows)", logy = true, width = 900, height = 560 })
end

-- opts.merge: windows averaged together (weighted by their counts), as US9 columns are rare
function M.buckets(curves, path, opts)
  opts = opts or {}
  local k = opts.merge or 1
  local function merged(key)
    local x, y = {}, {}
    for i = 1, #curves.steps, k do
      local s, c = 0, 0
      for j = i, math.min(#curves.steps, i + k - 1) do
        local cnt = curves.bucket_n[key][j]
        if cnt > 0 then s = s + curves.bucket[key][j] * cnt; c = c + cnt end
      end
      x[#x + 1] = curves.steps[math.min(#curves.steps, i + k - 1)]
      y[#y + 1] = c > 0 and s / c or 0 / 0
    end
    return x, y
  end
  local series = {}
  for i, e in ipairs({ { "BA", "BA only (no carry in)" }, { "UC1", "UC1 (carry in, pair not 9)" },
    { "US9", "US9 (carry in, pair sums to 9)" } }) do
    local x, y = merged(e[1])
    series[i] = { x = x, y = y, label = e[2] }
  end
  return plot.line(series, path, { title = "Training loss of digit A" .. curves.bucket_digit .. " by carry situation",
    xlabel = "training step", ylabel = "cross-entropy (mean over " .. k * curves.steps[1] .. "-step windows)",
    logy = true, width = 900, height = 560 })
end

function M.staircase(st, h, n, path)
  local labels = evaluate.token_labels(n)
  local xt = {}
  for k = 1, 3 * n + 2 do xt[k] = labels[k] end
  local yt = {}
  for q = 1, n + 1 do yt[q] = labels[st.query_positions[q]] .. " -> " .. st.predicts[q] end
  return plot.heatmap(st.pattern[h], path, { title = "Head " .. h .. ": mean attention from the answer positions",
    xlabel = "key position (token)", ylabel = "query position -> digit predicted", xticks = xt, yticks = yt,
    vmin = 0, vmax = 1, cmap = "viridis", clabel = "attention weight", width = 900, height = 420 })
end

function M.ablation(acc, n, path, title)
  local t = {}                      -- answer digits as rows, ablated positions as columns
  for k = 1, n + 1 do
    t[k] = {}
    for p = 1, #acc do t[k][p] = acc[p][k] end
  end
  return plot.heatmap(t, path, { title = title, xlabel = "mean-ablated position (token)", ylabel = "answer digit",
    xticks = evaluate.token_labels(n), yticks = evaluate.digit_names(n), vmin = 0, vmax = 1, cmap = "viridis",
    clabel = "digit accuracy", width = 900, height = 420 })
end

-- exact match per cascade class during training (classes with fewer than min_n questions are left out)
function M.class_curve(cc, path, opts)
  opts = opts or {}
  local series = { { x = cc.steps, y = cc.overall, label = "all questions" } }
  for _, c in ipairs(CLASSES) do
    if cc.n[c] >= (opts.min_n or 20) then
      local y = {}
      for i, v in ipairs(cc[c]) do y[i] = v or 0 / 0 end
      series[#series + 1] = { x = cc.steps, y = y, label = c .. " (n=" .. cc.n[c] .. ")" }
    end
  end
  return plot.line(series, path, { title = "Exact match by cascade class during training",
    xlabel = "training step", ylabel = "fraction of questions answered exactly", ylim = { 0, 1 }, width = 900,
    height = 560 })
end

function M.classes(ev, agree, path)
  local model, alg, labels = {}, {}, {}
  for i, c in ipairs(CLASSES) do
    local b = ev.by_class[c]
    labels[i] = c .. " (n=" .. b.n .. ")"
    model[i] = b.acc or 0
    alg[i] = agree[c].n > 0 and agree[c].model_alg or 0
  end
  return plot.bar({ model, alg }, path, { title = "Exact match by cascade class (non-enriched questions)",
    labels = labels, series = { "model = true sum", "model = equivalent algorithm" }, ylabel = "fraction of questions",
    xlabel = "cascade class", ylim = { 0, 1 }, width = 900, height = 520 })
end

return M
