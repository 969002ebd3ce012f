-- lego.figures: the LEGO plots.
--
--   local figures = require "lego.figures"
--   figures.scores(scores [L, H], path, title, {vmax, clabel})   a layer x head heatmap
--   figures.pattern(model, row [1, T], layer, head, path, title)  one head's attention on one sequence
--   figures.depth({{label =, acc =}, ...}, path, {title, supervised})   accuracy by chain depth
--   figures.curves(models, names, supervised, path)              lowest supervised-depth accuracy during training
local plot = require "milua.plot"
local lego = require "milua.data.lego"
local attention = require "lego.attention"

local F = {}

--- figures.scores(scores, path, title): a layer x head heatmap (rows "L0".., columns "H1"..)
function F.scores(scores, path, title, o)
  local L, H = scores:shape()[1], scores:shape()[2]
  local rows, cols = {}, {}
  for l = 1, L do rows[l] = "L" .. (l - 1) end
  for h = 1, H do cols[h] = "H" .. h end
  return plot.heatmap(scores, path, { title = title, xticks = cols, yticks = rows, xlabel = "head",
    ylabel = "layer", cmap = "viridis", vmin = 0, vmax = (o and o.vmax) or 1, clabel = o and o.clabel })
end

--- figures.pattern(model, tokens_row [1,T], layer (0-based), head (1-based), path, title)
-- the head's attention on one sequence, token labels on both axes
function F.pattern(model, row, layer, head, path, title)
  local cache = attention.patterns(model, row)
  local p = cache["blocks." .. layer .. ".attn.hook_pattern"]:select(1, 1):select(1, head)
  local labels = {}
  for i, id in ipairs(row:select(1, 1):totable()) do labels[i] = lego.vocab[id] end
  return plot.heatmap(p, path, { title = title, xticks = labels, yticks = labels, xlabel = "key",
    ylabel = "query", cmap = "viridis", vmin = 0, vmax = 1 })
end

local CHANCE = { y = 0.5, label = "chance (0.5)" }
local function depths(n) return n == 1 and "depth 0" or string.format("depths 0-%d", n - 1) end

--- figures.depth(series, path, o): accuracy by chain depth, one line per {label =, acc =}; the axis
-- runs from 0 to 1 with chance drawn, depths get integer ticks; o.supervised (the number of
-- supervised depths) goes into the title
function F.depth(series, path, o)
  o = o or {}
  local list = {}
  for i, s in ipairs(series) do
    local x = {}
    for d = 1, #s.acc do x[d] = d - 1 end
    list[i] = { x = x, y = s.acc, label = s.label }
  end
  local title = o.title or "test accuracy by chain depth"
  if o.supervised then title = title .. " (" .. depths(o.supervised) .. " supervised)" end
  return plot.line(list, path, { title = title, xlabel = "chain depth", ylabel = "accuracy", markers = true,
    ylim = { 0, 1 }, xinteger = true, hlines = { CHANCE } })
end

--- figures.curves(models, names, supervised, path): per model (models[name].curve = {steps, acc}),
-- the lowest accuracy over the supervised depths on held-out chains during training
function F.curves(models, names, supervised, path)
  local list = {}
  for _, name in ipairs(names) do
    local c = models[name] and models[name].curve
    if c and #c.steps > 0 then
      local y = {}
      for i, acc in ipairs(c.acc) do
        local low = math.huge
        for d = 1, supervised do low = math.min(low, acc[d]) end
        y[i] = low
      end
      list[#list + 1] = { x = c.steps, y = y, label = name }
    end
  end
  return plot.line(list, path, { title = "lowest accuracy over " .. depths(supervised) .. " during training",
    xlabel = "task training step", ylabel = "accuracy (held-out chains)", ylim = { 0, 1 }, markers = false,
    hlines = { CHANCE, { y = 0.9, label = "escape (0.9)" } } })
end

return F
