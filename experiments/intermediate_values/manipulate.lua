-- Manipulation (Matsumoto et al.): the coefficient of one principal component of a layer's
-- output is set inside the forward pass, and the prediction read out.
--
-- The coefficient of instance i is its PCA score s_i = (h_i - mean) . u (u the unit component,
-- h_i the layer's states at all positions, concatenated). Scaling it by m is
--     h <- h + (m - 1) s u ,
-- the paper's h + (m - 1)(h . u) u taken about the dataset mean: the paper scales the
-- uncentred projection but plots and bounds the centred score, which differ by mean . u; here
-- the number that is set is the number the tracing correlated. As in the paper, m runs over
-- linspace(1.2 m_lo, 1.2 m_hi, 20) where m_lo s_i, m_hi s_i are the smallest and largest score on
-- the dataset; the coefficients set are then the same for every instance,
--     t_g = 1.2 (s_min + (g - 1)/19 (s_max - s_min)),   m_ig = t_g / s_i .
--
-- Causal test: from a manipulated prediction y the implied value of the target follows by
-- solving the expression (b = a + c - y; b - c = a - y); the "predicted function" f_p is a
-- degree-4 polynomial from the implied value to the coefficient set, the "actual function" f_a
-- the coefficient the unedited model produces when the input b is really changed (a, c fixed).
-- If the component carries the value, f_p and f_a agree.
--
--   local MP = require "intermediate_values.manipulate"
--   MP.set_hook(hook_name, pca, k, fn(s) -> new coefficients [B]) -> hooks
--   MP.grid(s_min, s_max, count) -> {t_1..t_count}
--   MP.sweep(reg, scale, tokens, layer, pca, k, grid) -> pred[i][g] (answer units)
--   MP.summary(pred, grid, answer_range) -> {mean [g], spearman, swing, swing_fraction}
--   MP.targets[name] = {implied = fn(ex, y), value = fn(a, b, c)}   ("b", "b-c")
--   MP.actual(model, examples, layer, pca, k, b_grid, seq_len) -> coef[i][j] at b = b_grid[j]
--   MP.locality(examples, pred, grid, actual, b_grid, scores, target) -> {median_err_at_origin,
--       by_distance = {distance = {...}, median = {...}, count = {...}}, fitted, skipped}
local T = require "milua.tensor"
local analysis = require "milua.analysis"
local arith = require "milua.data.arithmetic"
local R = require "intermediate_values.regressor"
local trace = require "intermediate_values.trace"

local M = {}

function M.set_hook(name, pca, k, fn)
  local u = pca.components[k]:contiguous()
  local mu = (pca.mean * u):sum():item()
  local ucol, urow = u:view(-1, 1), u:view(1, -1)
  return { [name] = function(act)
    local shape = act:shape()
    local flat = act:reshape(shape[1], -1)
    local s = flat:matmul(ucol):view(-1) - mu
    local delta = fn(s) - s
    return (flat + delta:view(-1, 1) * urow):view(shape)
  end }
end

function M.grid(s_min, s_max, count)
  local g = {}
  for i = 1, count do g[i] = 1.2 * (s_min + (i - 1) / (count - 1) * (s_max - s_min)) end
  return g
end

function M.sweep(reg, scale, tokens, layer, pca, k, grid)
  local n = tokens:shape()[1]
  local pred = {}
  for i = 1, n do pred[i] = {} end
  for g, t in ipairs(grid) do
    local hooks = M.set_hook(trace.output_hook(reg.model, layer), pca, k, function(s) return T.full({ s:numel() }, t) end)
    local y = R.values(reg, tokens, scale, function() return hooks end)
    for i = 1, n do pred[i][g] = y[i] end
  end
  return pred
end

function M.summary(pred, grid, answer_range)
  local mean = {}
  for g = 1, #grid do
    local s = 0
    for i = 1, #pred do s = s + pred[i][g] end
    mean[g] = s / #pred
  end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(mean) do lo, hi = math.min(lo, v), math.max(hi, v) end
  local rho = analysis.corr(grid, mean, { method = "spearman" })
  if rho ~= rho then rho = 0 end                       -- a flat response has no rank order
  return { mean = mean, spearman = rho, swing = hi - lo, swing_fraction = (hi - lo) / answer_range }
end

M.targets = {
  b = { implied = function(ex, y) return ex.a + ex.c - y end, value = function(_, b, _) return b end },
  ["b-c"] = { implied = function(ex, y) return ex.a - y end, value = function(_, b, c) return b - c end },
}

-- the coefficient of every instance with b replaced by each value of b_grid (a, c fixed)
function M.actual(model, examples, layer, pca, k, b_grid, seq_len)
  local out, per = {}, math.max(1, 2000 // #b_grid)
  for first = 1, #examples, per do
    local last = math.min(#examples, first + per - 1)
    local rows = {}
    for i = first, last do
      for _, b in ipairs(b_grid) do rows[#rows + 1] = arith.template(examples[i].a, b, examples[i].c, seq_len).tokens end
    end
    local states = trace.states(model, T.tensor(rows, "int32"), { layer })[layer]
    local s = pca:project(states):select(2, k):totable()
    local at = 0
    for i = first, last do
      out[i] = {}
      for j = 1, #b_grid do at = at + 1; out[i][j] = s[at] end
    end
  end
  return out
end

local function median(list)
  if #list == 0 then return 0 / 0 end
  local c = {}
  for i, v in ipairs(list) do c[i] = v end
  table.sort(c)
  local m = #c // 2
  return #c % 2 == 1 and c[m + 1] or (c[m] + c[m + 1]) / 2
end
M.median = median

-- f_p per instance (degree 4, implied value -> coefficient) against f_a on the b grid and at
-- the instance's own b (where f_a is its score on the dataset)
function M.locality(examples, pred, grid, actual, b_grid, scores, target, bin)
  bin = bin or 100
  local spec = M.targets[target]
  local at_origin, by_bin, skipped, fits = {}, {}, 0, {}
  for i, ex in ipairs(examples) do
    local implied = {}
    for g = 1, #grid do implied[g] = spec.implied(ex, pred[i][g]) end
    local ok, coef = pcall(analysis.polyfit, implied, grid, 4)
    if not ok then
      skipped = skipped + 1
    else
      fits[i] = coef
      local v0 = spec.value(ex.a, ex.b, ex.c)
      at_origin[#at_origin + 1] = math.abs(analysis.polyval(coef, v0) - scores[i])
      for j, b in ipairs(b_grid) do
        local v = spec.value(ex.a, b, ex.c)
        local d = math.floor((v - v0) / bin + 0.5) * bin
        by_bin[d] = by_bin[d] or {}
        local l = by_bin[d]
        l[#l + 1] = math.abs(analysis.polyval(coef, v) - actual[i][j])
      end
    end
  end
  local ds = {}
  for d in pairs(by_bin) do ds[#ds + 1] = d end
  table.sort(ds)
  local med, cnt = {}, {}
  for j, d in ipairs(ds) do med[j], cnt[j] = median(by_bin[d]), #by_bin[d] end
  return { median_err_at_origin = median(at_origin), by_distance = { distance = ds, median = med, count = cnt },
    fits = fits, skipped = skipped }
end

return M
