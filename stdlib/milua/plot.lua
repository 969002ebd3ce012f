-- milua.plot: PNG figures for interpretability work (attention patterns, loss curves,
-- PCA scatters, per-digit bar charts), drawn natively with no Python or gnuplot.
--
--   local plot = require "milua.plot"
--   plot.heatmap(pattern, "pattern.png", { title = "L0H1", xticks = toks, yticks = toks })
--   plot.line({ {y = train, label = "train"}, {x = steps, y = test, label = "test"} },
--             "loss.png", { logy = true, xlabel = "step" })
--   plot.scatter(pcs, "pca.png", { c = values, clabel = "intermediate value" })
--   plot.bar(losses, "digits.png", { labels = {"d0", "d1", "d2"} })
--
-- Every function writes one PNG (atomically: a temporary file renamed into place),
-- returns the path, and raises an error naming itself on bad input. Data may be Lua
-- tables or tensors (float32 or int32, any layout). The same input always gives the
-- same bytes.
--
-- Options shared by all kinds: title, xlabel, ylabel, width, height (pixels, a hint).
--
--   plot.heatmap(m, path, opts)   m: 2-d tensor or table of rows (a 1-d one is one row).
--       Row 1 is drawn at the top. opts.xticks / opts.yticks: a label per column / row
--       (tokens); default 1-based indices. opts.cmap: "viridis", "diverging" (blue-white-red)
--       or "auto" (the default: diverging when the data span 0, else viridis).
--       opts.vmin / opts.vmax fix the colour scale; opts.clabel names the colour bar.
--       NaN cells are grey.
--   plot.line(series, path, opts)  series: a 1-d tensor or table of y values; a 2-d tensor
--       (one series per row); a list of y tensors/tables; or a list of {x=, y=, label=}.
--       x defaults to 1..n. opts.labels names the series when they come without labels.
--       opts.logy = true for a log y axis (non-positive values are skipped);
--       opts.markers = true/false forces dots on or off (default: on for short series).
--       Non-finite values break the line.
--   plot.scatter(x, y, path, opts)  x, y: 1-d tensors or tables; or plot.scatter(m, path,
--       opts) with m an [n, k>=2] matrix whose first two columns are x and y.
--       opts.c: a value per point, coloured through the colour map with a colour bar
--       (cmap, vmin, vmax, clabel as for heatmaps); opts.labels: a category string per
--       point (one colour each, with a legend); opts.annotate = true writes each point's
--       label next to it.
--   plot.bar(values, path, opts)  values: 1-d (one bar each) or 2-d [series][group] for
--       grouped bars. opts.labels names the groups, opts.series the series (legend).
--       Negative values hang below the zero line.
--
-- Axes a reader can trust (line, scatter; bar has ylim and yinteger):
--   opts.ylim = {lo, hi} / opts.xlim: the axis spans exactly that range (plus a 2% margin)
--       whatever the data: accuracy is drawn on {0, 1}, so 0.9995 does not look like a fall.
--   opts.xinteger / opts.yinteger = true: ticks on whole numbers only (depth, layer, length).
--   opts.hlines (line): reference lines, a list of numbers or {y =, label =}, dashed, named
--       in the legend (chance, an exact-inference optimum).
--   Heatmaps print each cell's value when every cell has room for it (opts.values = false:
--       never; true: wherever it fits).
-- Each function returns the path and a table of what it drew: {xlim, ylim, xticks, yticks}
-- ({values = bool, xlabel_stride = k, ylabel_stride = k, xlabels_upright = bool} for a heatmap:
-- every k-th label is drawn when the cells are too small for all), which tests and callers can check.

local core = require "milua.plot_core"
local T = require "milua.tensor"

local M = {}

local is_tensor = T.is_tensor

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ",") .. "]"
end

local function check_path(fn, path)
  if type(path) ~= "string" or path == "" then
    error(fn .. ": expected an output path (a string), got " .. (path == "" and "an empty string" or type(path)), 3)
  end
end

-- run a core function; its errors are raised again at the caller of the plot.* function,
-- without the location inside this file, so messages point at the user's line
local function call(f, ...)
  local ok, res, info = pcall(f, ...)
  if ok then return res, info end
  if type(res) == "string" then res = res:gsub("^[^\n]-plot%.lua:%d+: ", "") end
  error(res, 2)   -- level 2: plot.* tail-calls call(), so 2 is its caller
end

local function check_opts(fn, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(fn .. ": options must be a table, got " .. type(opts), 3)
  end
end

function M.heatmap(m, path, opts)
  check_path("plot.heatmap", path)
  check_opts("plot.heatmap", opts)
  return call(core.heatmap, m, path, opts)
end

-- the forms plot.line accepts, brought to a list of {x=, y=, label=}
local function series_list(data, opts)
  local labels = opts and opts.labels
  if labels ~= nil and type(labels) ~= "table" then
    error("plot.line: opts.labels must be a table of strings, got " .. type(labels), 3)
  end
  local function named(list)
    for i, s in ipairs(list) do
      if s.label == nil and labels then s.label = labels[i] end
    end
    return list
  end
  if is_tensor(data) then
    local d = data:dim()
    if d == 1 then return named({ { y = data } }) end
    if d == 2 then
      local list = {}
      for i = 1, data:shape()[1] do list[i] = { y = data[i] } end
      return named(list)
    end
    error("plot.line: expected a 1-d or 2-d tensor, got " .. shape_str(data), 3)
  end
  if type(data) ~= "table" then
    error("plot.line: expected a tensor, a table of numbers or a list of series, got " .. type(data), 3)
  end
  if data.y ~= nil then return named({ data }) end
  local first = data[1]
  if first == nil then return {} end
  if type(first) == "number" then return named({ { y = data } }) end
  local list = {}
  for i, s in ipairs(data) do
    if is_tensor(s) or (type(s) == "table" and s.y == nil and s.x == nil) then
      list[i] = { y = s }
    elseif type(s) == "table" then
      list[i] = { x = s.x, y = s.y, label = s.label }
    else
      error("plot.line: series " .. i .. " is a " .. type(s) .. ", expected a table or a tensor", 3)
    end
  end
  return named(list)
end

function M.line(series, path, opts)
  check_path("plot.line", path)
  check_opts("plot.line", opts)
  return call(core.line, series_list(series, opts), path, opts)
end

-- the first two columns of an [n, k] matrix
local function columns(m)
  if is_tensor(m) then
    if m:dim() ~= 2 or m:shape()[2] < 2 then
      error("plot.scatter: a single data argument must be an [n, 2] (or wider) matrix, got " .. shape_str(m), 3)
    end
    m = m:totable()
  end
  if type(m) ~= "table" then
    error("plot.scatter: expected x and y, or one [n, 2] matrix, got " .. type(m), 3)
  end
  local x, y = {}, {}
  for i, row in ipairs(m) do
    if type(row) ~= "table" or #row < 2 then
      error("plot.scatter: row " .. i .. " of the matrix needs at least two numbers", 3)
    end
    x[i], y[i] = row[1], row[2]
  end
  return x, y
end

function M.scatter(x, y, path, opts)
  if type(y) == "string" and (path == nil or type(path) == "table") then
    opts, path = path, y
    x, y = columns(x)
  end
  check_path("plot.scatter", path)
  check_opts("plot.scatter", opts)
  return call(core.scatter, x, y, path, opts)
end

function M.bar(values, path, opts)
  check_path("plot.bar", path)
  check_opts("plot.bar", opts)
  if is_tensor(values) and values:dim() > 2 then
    error("plot.bar: expected a 1-d or 2-d tensor, got " .. shape_str(values), 2)
  end
  return call(core.bar, values, path, opts)
end

return M
