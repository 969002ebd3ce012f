-- The tree-paths figures. Per-layer and per-length axes are categories with integer labels;
-- fractions are drawn on a 0..1 colour scale or as bars from 0.
--
--   local PL = require "tree_paths.plots"
--   PL.accuracy(by_length, path)               bars: full-path accuracy per path length
--   PL.layer0(ec, ga, path)                    bars per layer: edge concatenation, goal movement
--   PL.roles(ra, path)                         heatmap (layer, query role) x key role, 0..1
--   PL.ancestors(matrix, path, title)          heatmap layer x ancestor a_j, 0..1
--   PL.lens(all, answer, path)                 heatmap layer x (a_j ..., answer), 0..1
--   PL.patching(h1, path)                      heatmap layer x path length, diverging at 0
--   PL.dla(dla, path)                          bars per layer: attribution of attended edges A>B
--   PL.probes(pr, path)                        bars per stream: probe accuracy (source, goal)
local plot = require "milua.plot"

local M = {}

local function layer_labels(n)
  local out = {}
  for l = 0, n - 1 do out[l + 1] = "L" .. l end
  return out
end

local function ancestor_labels(n)
  local out = {}
  for j = 0, n - 1 do out[j + 1] = j == 0 and "a0=goal" or ("a" .. j) end
  return out
end

-- NaN (no rows) stays NaN: drawn grey
function M.accuracy(by_length, path, title)
  local labels, v = {}, {}
  for p = 1, #by_length do labels[p], v[p] = tostring(p), by_length[p] end
  return plot.bar(v, path, { title = title or "Full-path test accuracy by path length", xlabel = "path length",
    ylabel = "accuracy", labels = labels })
end

function M.layer0(ec, ga, path)
  return plot.bar({ ec, ga.answer, ga.root }, path, { title = "Edge concatenation and goal movement per layer",
    xlabel = "layer", ylabel = "fraction / attention mass", labels = layer_labels(#ec),
    series = { "'>B' argmax on its source", "path positions on the goal", "root on the goal" } })
end

function M.roles(ra, path)
  local m, yt = {}, {}
  for l, per_query in ipairs(ra.mass) do
    for qi, q in ipairs(ra.queries) do
      m[#m + 1] = per_query[qi]
      yt[#yt + 1] = string.format("L%d %s", l - 1, q)
    end
  end
  return plot.heatmap(m, path, { title = "Attention by token role (query rows, key columns)", xlabel = "key role",
    ylabel = "layer, query role", xticks = ra.keys, yticks = yt, vmin = 0, vmax = 1, cmap = "viridis",
    clabel = "mean attention mass" })
end

function M.ancestors(matrix, path, title)
  return plot.heatmap(matrix, path, { title = title or "Attention at the root to the edge token '>a_j'",
    xlabel = "ancestor a_j of the goal", ylabel = "layer", xticks = ancestor_labels(#matrix[1]),
    yticks = layer_labels(#matrix), vmin = 0, vmax = 1, cmap = "viridis", clabel = "mean attention mass" })
end

function M.lens(all, answer, path)
  local m = {}
  for l, row in ipairs(all) do
    local r = {}
    for j, v in ipairs(row) do r[j] = v end
    r[#r + 1] = answer[l]
    m[l] = r
  end
  local xt = ancestor_labels(#all[1])
  xt[#xt + 1] = "answer"
  return plot.heatmap(m, path, { title = "Logit lens at the root: fraction decoding a_j", xlabel = "ancestor a_j of the goal",
    ylabel = "after layer", xticks = xt, yticks = layer_labels(#all), vmin = 0, vmax = 1, cmap = "viridis",
    clabel = "fraction of examples" })
end

function M.patching(h1, path)
  local xt = {}
  for i, p in ipairs(h1.path_lengths) do xt[i] = tostring(p) end
  local yt = {}
  for i, l in ipairs(h1.layers) do yt[i] = "L" .. l end
  local lim = 1
  for _, row in ipairs(h1.recovered) do
    for _, v in ipairs(row) do if v == v and math.abs(v) > lim then lim = math.abs(v) end end
  end
  return plot.heatmap(h1.recovered, path, { title = string.format("H1 patching at the root: loss recovered (layer l reads a_(l-%d))", h1.shift),
    xlabel = "path length", ylabel = "patched layer", xticks = xt, yticks = yt, vmin = -lim, vmax = lim,
    cmap = "diverging", clabel = "fraction of loss recovered" })
end

function M.dla(dla, path)
  local src, tgt = {}, {}
  for l, d in ipairs(dla) do src[l], tgt[l] = d.n > 0 and d.to_source or 0, d.n > 0 and d.to_target or 0 end
  return plot.bar({ src, tgt }, path, { title = "Edges A>B attended at the root: DLA",
    xlabel = "layer", ylabel = "logit (centred over node tokens)", labels = layer_labels(#dla),
    series = { "to '>A' (source)", "to '>B' (target)" } })
end

function M.probes(pr, path)
  return plot.bar({ pr.source, pr.goal }, path, { title = "Linear probes: held-out accuracy",
    xlabel = "residual stream", ylabel = "accuracy", labels = pr.labels,
    series = { string.format("source A at '>B' (chance %.2f)", pr.chance_source),
      string.format("goal at path positions (chance %.2f)", pr.chance_goal) } })
end

return M
