-- Tests of milua.plot: every kind from tables and tensors writes a PNG of the expected
-- size; reruns give the same bytes; tensors of any layout or dtype plot as their values;
-- bad input raises errors that name the function and the problem.
local test = require "milua.test"
local T = require "milua.tensor"
local plot = require "milua.plot"
local sys = require "milua.sys"

local dir = string.format("/tmp/milua_plot_lua_%d_%d", sys.getpid(), os.time())
assert(sys.mkdir(dir))
local made = {}
local function P(name)
  local p = dir .. "/" .. name
  made[#made + 1] = p
  return p
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function wrote(path, desc) return test.png(path, desc) end

T.seed(1)

-- heatmap: an attention pattern with token labels
local toks = {}
for i = 1, 12 do toks[i] = ({ "a", "=", "+1", ";", "b", "=", "-a", ";" })[(i - 1) % 8 + 1] end
local scores = T.randn(12, 12)
local pattern = scores:softmax(2)
test.is(plot.heatmap(pattern, P("pattern.png"), { title = "L0H1", xlabel = "key", ylabel = "query",
  xticks = toks, yticks = toks }), dir .. "/pattern.png", "heatmap returns its path")
local w, h = wrote(dir .. "/pattern.png", "heatmap from a tensor with token labels")
test.ok(w and w >= 300 and w <= 1200 and h >= 300 and h <= 1200, "heatmap: size in 300..1200")
plot.heatmap(pattern, P("pattern2.png"), { title = "L0H1", xlabel = "key", ylabel = "query",
  xticks = toks, yticks = toks })
test.ok(slurp(dir .. "/pattern.png") == slurp(dir .. "/pattern2.png"), "heatmap: same input, same bytes")

-- a table of rows, a transposed (strided) view and an int32 tensor draw their values
local m = { { 1, 2, 3 }, { 4, 5, 6 } }
plot.heatmap(m, P("m_table.png"))
plot.heatmap(T.tensor(m), P("m_tensor.png"))
plot.heatmap(T.tensor(m, "int32"), P("m_int.png"))
test.ok(slurp(dir .. "/m_table.png") == slurp(dir .. "/m_tensor.png"), "heatmap: table and tensor give the same image")
test.ok(slurp(dir .. "/m_int.png") == slurp(dir .. "/m_tensor.png"), "heatmap: int32 tensor plots its values")
local mt = T.tensor({ { 1, 4 }, { 2, 5 }, { 3, 6 } })
plot.heatmap(mt:transpose(1, 2), P("m_view.png"))
test.ok(slurp(dir .. "/m_view.png") == slurp(dir .. "/m_tensor.png"), "heatmap: a transposed view plots as its values")
-- short token labels on cells too narrow to hold them flat with a gap stand upright, all
-- of them (the tree-paths role map: 8 key roles of up to 4 characters over 24 rows)
do
  local rows = {}
  for i = 1, 24 do rows[i] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8 } end
  local _, drew = plot.heatmap(rows, P("roles.png"), { xticks = { "A", ">B", ",", "|", "goal", ":", "root", "path" } })
  test.is(drew.xlabel_stride, 1, "heatmap: every column label is drawn")
  test.ok(drew.xlabels_upright, "heatmap: labels that do not fit flat stand upright")
  local _, wide = plot.heatmap({ { 1, 2, 3 } }, P("wide.png"), { xticks = { "a", "b", "c" } })
  test.ok(wide.xlabel_stride == 1 and not wide.xlabels_upright, "heatmap: labels that fit lie flat")
end
plot.heatmap({ 1, 2, 3 }, P("m_row.png"))
wrote(dir .. "/m_row.png", "heatmap: a flat table is one row")
plot.heatmap(T.tensor({ { -1, 0.5 }, { 0, 2 } }), P("m_div.png"), { cmap = "diverging", vmin = -2, vmax = 2, clabel = "logit diff" })
wrote(dir .. "/m_div.png", "heatmap: diverging map with vmin/vmax")

-- line: the accepted forms
local losses = {}
for i = 1, 100 do losses[i] = 3 * math.exp(-i / 20) + 0.1 end
plot.line(losses, P("l_table.png"), { title = "loss", xlabel = "step", ylabel = "loss" })
w, h = wrote(dir .. "/l_table.png", "line from a table of numbers")
-- float32 rounding moves pixels, so compare the tensor with its own values as a table
local lt = T.tensor(losses)
plot.line(lt, P("l_tensor.png"), { title = "loss" })
plot.line(lt:totable(), P("l_totable.png"), { title = "loss" })
test.ok(slurp(dir .. "/l_totable.png") == slurp(dir .. "/l_tensor.png"), "line: tensor and table give the same image")
local steps = {}
for i = 1, 100 do steps[i] = i * 10 end
plot.line({ { x = steps, y = losses, label = "train" }, { x = T.tensor(steps), y = T.tensor(losses) * 1.2, label = "test" } },
  P("l_series.png"), { logy = true, title = "log loss", width = 640, height = 480 })
w, h = wrote(dir .. "/l_series.png", "line: list of {x, y, label}, logy")
test.is({ w, h }, { 640, 480 }, "line: width and height honoured")
plot.line(T.randn(3, 40), P("l_rows.png"), { labels = { "head 0", "head 1", "head 2" } })
wrote(dir .. "/l_rows.png", "line: a 2-d tensor is one series per row")
plot.line({ losses, T.tensor(losses) * 0.5 }, P("l_list.png"), { labels = { "a", "b" }, markers = false })
wrote(dir .. "/l_list.png", "line: a list of y tables/tensors")
plot.line({ y = { 1, 2, 0 / 0, 4 }, label = "gap" }, P("l_one.png"))
wrote(dir .. "/l_one.png", "line: a single {y=} series with a NaN")

-- scatter
local xs, ys, cs, cats = {}, {}, {}, {}
for i = 1, 200 do
  xs[i], ys[i] = math.cos(i / 10) * i, math.sin(i / 10) * i
  cs[i] = i
  cats[i] = i % 2 == 0 and "even" or "odd"
end
plot.scatter(xs, ys, P("s_c.png"), { c = cs, clabel = "index", title = "spiral", xlabel = "PC1", ylabel = "PC2" })
wrote(dir .. "/s_c.png", "scatter with colour values")
plot.scatter(T.tensor(xs), T.tensor(ys), P("s_cat.png"), { labels = cats })
wrote(dir .. "/s_cat.png", "scatter with categories from tensors")
local pcs = T.randn(50, 3)
plot.scatter(pcs, P("s_mat.png"), { title = "PCA" })
wrote(dir .. "/s_mat.png", "scatter of an [n, 3] matrix uses its first two columns")
plot.scatter({ 1, 2, 3 }, { 3, 1, 2 }, P("s_ann.png"), { labels = { 7, 8, 9 }, annotate = true })
wrote(dir .. "/s_ann.png", "scatter: numeric labels, annotated")

-- bar
plot.bar({ 0.5, -0.25, 1 }, P("b.png"), { labels = { "d0", "d1", "d2" }, title = "per digit" })
wrote(dir .. "/b.png", "bar from a table with labels")
plot.bar(T.tensor({ { 1, 2, 3 }, { -1, 0.5, 2 } }), P("b_group.png"),
  { labels = { "d0", "d1", "d2" }, series = { "clean", "ablated" }, ylabel = "loss" })
wrote(dir .. "/b_group.png", "bar: grouped from a 2-d tensor")
plot.bar({ { 1, 2 }, { 3, 4 } }, P("b_group2.png"), { series = { "a", "b" } })
wrote(dir .. "/b_group2.png", "bar: grouped from a table of rows")

-- errors
local bad = dir .. "/never.png"
test.throws(function() plot.heatmap(T.zeros(2, 3, 4), bad) end, "plot.heatmap: expected a 2-d tensor, got [2,3,4]",
  "heatmap: 3-d tensor")
test.throws(function() plot.heatmap({}, bad) end, "plot.heatmap: empty data", "heatmap: no data")
test.throws(function() plot.heatmap(T.zeros(0, 3), bad) end, "plot.heatmap: empty data", "heatmap: 0 rows")
test.throws(function() plot.heatmap({ { 1, 2 }, { 3 } }, bad) end, "row 2 has 1 values, row 1 has 2", "heatmap: ragged rows")
test.throws(function() plot.heatmap({ { 1, "x" } }, bad) end, "values[1][2] is a string", "heatmap: a string in the data")
test.throws(function() plot.heatmap(m, bad, { xticks = { "a", "b" } }) end, "2 xticks for 3 columns", "heatmap: label count")
test.throws(function() plot.heatmap(m, bad, { cmap = "jet" }) end, "unknown cmap 'jet'", "heatmap: bad cmap")
test.throws(function() plot.heatmap(m, bad, { titel = "x" }) end, "unknown option 'titel'", "heatmap: misspelt option")
test.throws(function() plot.heatmap(m, bad, { vmin = 2, vmax = 1 }) end, "vmin (2) must be below vmax (1)", "heatmap: vmin >= vmax")
test.throws(function() plot.heatmap(m, bad, { title = {} }) end, "opts.title is a table, expected a string", "heatmap: title type")
test.throws(function() plot.heatmap(m, "/nonexistent-dir/p.png") end, "plot.heatmap: cannot write", "heatmap: unwritable path")
test.throws(function() plot.heatmap(m) end, "plot.heatmap: expected an output path", "heatmap: no path")
test.throws(function() plot.heatmap(m, bad, 5) end, "options must be a table", "heatmap: opts type")
test.throws(function() plot.line({ { x = { 1, 2 }, y = { 1 } } }, bad) end, "series 1 has 2 x values and 1 y values",
  "line: mismatched x and y")
test.throws(function() plot.line({}, bad) end, "plot.line: no series", "line: nothing to plot")
test.throws(function() plot.line({ { y = {} } }, bad) end, "series 1 is empty", "line: empty series")
test.throws(function() plot.line(T.zeros(2, 2, 2), bad) end, "expected a 1-d or 2-d tensor, got [2,2,2]", "line: 3-d tensor")
test.throws(function() plot.line({ -1, 0 }, bad, { logy = true }) end, "no positive finite values", "line: log of non-positive")
test.throws(function() plot.line({ 1, 2 }, bad, { logy = "yes" }) end, "opts.logy is a string, expected a boolean", "line: logy type")
test.throws(function() plot.scatter({ 1, 2 }, { 1 }, bad) end, "plot.scatter: x has 2 values and y has 1", "scatter: lengths")
test.throws(function() plot.scatter({}, {}, bad) end, "plot.scatter: empty data", "scatter: no points")
test.throws(function() plot.scatter({ 1, 2 }, { 1, 2 }, bad, { c = { 1 } }) end, "opts.c has 1 values for 2 points", "scatter: c length")
test.throws(function() plot.scatter(T.zeros(4, 2, 1), bad) end, "[n, 2] (or wider) matrix", "scatter: bad matrix")
test.throws(function() plot.scatter(T.zeros(4, 4), T.zeros(4), bad) end, "plot.scatter: x: expected a 1-d tensor, got [4,4]",
  "scatter: 2-d x")
test.throws(function() plot.bar({ 1, 2 }, bad, { labels = { "a" } }) end, "opts.labels has 1 entries for 2 bars", "bar: labels count")
test.throws(function() plot.bar({}, bad) end, "plot.bar: empty data", "bar: no data")
test.throws(function() plot.bar({ { 1, 2 } }, bad, { series = { "a", "b" } }) end, "opts.series has 2 names for 1 series",
  "bar: series count")
test.throws(function() plot.bar(T.zeros(2, 2, 2), bad) end, "expected a 1-d or 2-d tensor", "bar: 3-d tensor")
test.ok(io.open(bad, "rb") == nil, "failed calls leave no file")

-- axes a reader can trust: the ranges and ticks the plot functions choose
do
  local acc = { x = { 0, 1, 2, 3, 4 }, y = { 1, 1, 1, 0.9995, 1 } }
  local _, free = plot.line({ acc }, P("acc_free.png"))
  test.ok(free.ylim[1] > 0.99, "without limits the y axis hugs the data (" .. free.ylim[1] .. ")")
  local halves = false
  for _, t in ipairs(free.xticks) do if t ~= math.floor(t) then halves = true end end
  test.ok(halves, "without xinteger, x from 0 to 4 gets ticks between the integers")
  local path, ax = plot.line({ acc }, P("acc.png"), { ylim = { 0, 1 }, xinteger = true,
    hlines = { { y = 0.5, label = "chance" } }, xlabel = "chain depth", ylabel = "accuracy" })
  test.is(path, dir .. "/acc.png", "line with limits returns its path first")
  test.ok(ax.ylim[1] <= 0 and ax.ylim[1] >= -0.03 and ax.ylim[2] >= 1 and ax.ylim[2] <= 1.03,
    string.format("ylim {0, 1}: the axis spans 0..1 with a small margin (%.3f..%.3f)", ax.ylim[1], ax.ylim[2]))
  test.is(ax.yticks[1], 0, "ylim {0, 1}: the first tick is 0")
  test.is(ax.yticks[#ax.yticks], 1, "ylim {0, 1}: the last tick is 1")
  test.is(ax.xticks, { 0, 1, 2, 3, 4 }, "xinteger: ticks at the whole depths only")
  local _, wide = plot.line({ { x = { 1, 2 }, y = { 5, 7 } } }, P("ints.png"), { xinteger = true, yinteger = true })
  test.is(wide.xticks, { 1, 2 }, "xinteger on a short span: no tick at 1.5")
  for _, t in ipairs(wide.yticks) do
    if t ~= math.floor(t) then test.ok(false, "yinteger: tick " .. t .. " is not whole") end
  end
  local _, ref = plot.line({ { y = { 0.8, 0.9 } } }, P("ref.png"), { hlines = { 0.25 } })
  test.ok(ref.ylim[1] <= 0.25, "a reference line counts in the automatic y range")
  local _, sc = plot.scatter({ 1, 2, 3 }, { 0.4, 0.5, 0.6 }, P("sc_lim.png"), { ylim = { 0, 1 }, xlim = { 0, 10 } })
  test.ok(sc.xlim[1] <= 0 and sc.xlim[2] >= 10 and sc.ylim[1] <= 0 and sc.ylim[2] >= 1, "scatter: xlim and ylim")
  local _, bar = plot.bar({ 0.97, 0.99 }, P("bar_lim.png"), { ylim = { 0, 1 } })
  test.ok(bar.ylim[1] <= 0 and bar.ylim[2] >= 1 and bar.yticks[#bar.yticks] == 1, "bar: ylim {0, 1}")
  -- small heatmaps print each cell's value; large ones cannot; values = false turns it off
  local m = { { 0.1, 0.67, 0.2 }, { 0.9, 0.01, 0.33 } }
  local _, hm = plot.heatmap(m, P("hm_values.png"))
  test.ok(hm.values, "a 2x3 heatmap prints its cell values")
  local _, hm_off = plot.heatmap(m, P("hm_novalues.png"), { values = false })
  test.ok(not hm_off.values, "values = false: no cell values")
  test.isnt(slurp(dir .. "/hm_values.png"), slurp(dir .. "/hm_novalues.png"), "the printed values change the image")
  local _, big = plot.heatmap(T.rand(40, 40), P("hm_big.png"))
  test.ok(not big.values, "a 40x40 heatmap has no room for values")
  -- bad limits and reference lines are errors that name the option
  test.throws(function() plot.line({ 1, 2 }, bad, { ylim = { 1, 0 } }) end, "the y limits must rise", "ylim falling")
  test.throws(function() plot.line({ 1, 2 }, bad, { ylim = { 0 } }) end, "opts.ylim must be {low, high}", "ylim short")
  test.throws(function() plot.line({ 1, 2 }, bad, { ylim = { 0, 0 / 0 } }) end, "must be finite", "ylim NaN")
  test.throws(function() plot.line({ 1, 2 }, bad, { logy = true, ylim = { 0, 1 } }) end, "must be positive", "log ylim at 0")
  test.throws(function() plot.line({ 1, 2 }, bad, { hlines = { "a" } }) end, "opts.hlines[1] must be a number",
    "hlines: a string")
  test.throws(function() plot.line({ 1, 2 }, bad, { hlines = { 1 / 0 } }) end, "reference line 1 is not a finite number",
    "hlines: infinite")
  test.throws(function() plot.heatmap(m, bad, { values = 1 }) end, "opts.values is a number, expected a boolean",
    "heatmap values: a number")
  test.throws(function() plot.bar({ 1 }, bad, { xlim = { 0, 1 } }) end, "unknown option 'xlim'", "bar has no xlim")
end

-- errors point at the caller's line, not into milua/plot.lua
local ok, msg = pcall(function() plot.heatmap(T.zeros(2, 3, 4), bad) end)
test.like(msg, "^[^:]*tests/lua/plot%.lua:%d+: plot%.heatmap", "errors carry the caller's location")

-- leave nothing behind
for _, p in ipairs(made) do os.remove(p) end
local leftover = io.popen("ls -A '" .. dir .. "' 2>/dev/null")
local rest = leftover and leftover:read("a") or ""
if leftover then leftover:close() end
test.is(rest, "", "no stray files (temporaries) in the output directory")
os.remove(dir)

test.done()
