-- The tree-paths experiment: its measurements on hand-made attention patterns and residual
-- streams whose answers are known, the direct logit attribution against analysis.dla, the
-- matching trees of the patching test, and the script end to end (--quick): keys, ranges,
-- above-chance accuracy, PNGs, and the same numbers from a second run at the same seed.
package.path = "experiments/?.lua;" .. package.path
local T = require "milua.tensor"
local nn = require "milua.nn"
local test = require "milua.test"
local json = require "milua.json"
local analysis = require "milua.analysis"
local tp = require "milua.data.tree_paths"
local MX = require "tree_paths.mechanism"

-- ---- hand-made patterns: two layers, one head ----
T.seed(21)
local N = 6
local set = tp.dataset(40, N)
local L = tp.layout(N)
local B, Tn = 40, L.n_ctx
do
  local p0, p1 = {}, {}
  for b = 1, B do
    local ex = set.examples[b]
    local r0, r1 = {}, {}
    for q = 1, Tn do
      local a0, a1 = {}, {}
      for k = 1, Tn do a0[k], a1[k] = 0, 0 end
      -- layer 0: ">B" reads its source, the path positions read the goal, the rest themselves
      if q < L.pipe and q % 3 == 2 then a0[q - 1] = 1
      elseif q >= L.root then a0[L.goal] = 1
      else a0[q] = 1 end
      -- layer 1: the root reads the edge token of a_1 (a_0 when the path has one edge), the rest themselves
      -- and each comma after an edge reads that edge's two tokens, half each (a register)
      if q == L.root then
        local j = ex.path_length >= 2 and 1 or 0
        a1[L.edge_target(ex.edge_of[ex.ancestors[j + 1]])] = 1
      elseif q < L.pipe and q % 3 == 0 then a1[q - 1], a1[q - 2] = 0.5, 0.5
      else a1[q] = 1 end
      r0[q], r1[q] = a0, a1
    end
    p0[b], p1[b] = { r0 }, { r1 }
  end
  local c = { cache = { ["blocks.0.attn.hook_pattern"] = T.tensor(p0), ["blocks.1.attn.hook_pattern"] = T.tensor(p1) },
    examples = set.examples, n = B, N = N, L = 2, layout = L }
  test.is(MX.edge_concat(c), { 1, 0 }, "edge_concat: '>B' reading its source counts 1, reading itself 0")
  local ga = MX.goal_attention(c)
  test.is({ ga.answer, ga.root }, { { 1, 0 }, { 1, 0 } }, "goal_attention: path positions and root on the goal")
  local aa, counts = MX.ancestor_attention(c)
  local n_p1, want_counts = 0, {}
  for j = 1, N - 1 do want_counts[j] = 0 end
  for _, ex in ipairs(set.examples) do
    if ex.path_length == 1 then n_p1 = n_p1 + 1 end
    for j = 1, ex.path_length do want_counts[j] = want_counts[j] + 1 end
  end
  test.is(counts, want_counts, "ancestor_attention: rows with a_j are the rows with p > j")
  test.is(aa[1], { 0, 0, 0, 0, 0 }, "ancestor_attention: a root reading the goal token reads no edge")
  test.close(aa[2], { n_p1 / B, 1, 0, 0, 0 }, 1e-6, "ancestor_attention: a_1's edge read fully, a_0's only where it is a_1's stand-in")
  -- by role: queries >B , | goal : root; keys A >B , | goal : root path
  local ra = MX.role_attention(c)
  test.is({ ra.queries, ra.keys }, { { ">B", ",", "|", "goal", ":", "root" }, { "A", ">B", ",", "|", "goal", ":", "root", "path" } },
    "role_attention: the query and key roles")
  test.close(ra.mass[1], { { 1, 0, 0, 0, 0, 0, 0, 0 }, { 0, 0, 1, 0, 0, 0, 0, 0 }, { 0, 0, 0, 1, 0, 0, 0, 0 },
    { 0, 0, 0, 0, 1, 0, 0, 0 }, { 0, 0, 0, 0, 0, 1, 0, 0 }, { 0, 0, 0, 0, 1, 0, 0, 0 } }, 1e-6,
    "role_attention, layer 0: '>B' on sources, the root on the goal, the rest on themselves")
  test.close(ra.mass[2][2], { 0.5, 0.5, 0, 0, 0, 0, 0, 0 }, 1e-6, "role_attention, layer 1: commas on their edge's A and '>B'")
  test.close(ra.mass[2][6], { 0, 1, 0, 0, 0, 0, 0, 0 }, 1e-6, "role_attention, layer 1: the root on an edge target")
  test.close({ ra.own_edge[1][1], ra.own_edge[1][2], ra.own_edge[2][1], ra.own_edge[2][2] }, { 1, 0, 0, 1 }, 1e-6,
    "role_attention: own-edge mass of '>B' (its source) and ',' (both tokens of its edge)")
  test.is({ ra.best[">B"].layer, ra.best[","].layer }, { 0, 1 }, "role_attention: the layer that joins edges, per role")
end

-- ---- the logit lens on hand-made residual streams (no LayerNorm, identity unembedding) ----
do
  local V = tp.n_vocab(N)
  local m = nn.transformer { n_layers = 2, d_model = V, n_heads = 1, d_head = 4, d_mlp = 8, d_vocab = V,
    n_ctx = Tn, normalization = "none" }
  T.no_grad(function()
    m.params["unembed.W_U"]:copy_(analysis.eye(V))
    m.params["unembed.b_U"]:zero_()
  end)
  -- after layer 0 the root holds the goal's parent (the goal itself for p = 1), after layer 1 the answer
  local r0, r1 = {}, {}
  for b, ex in ipairs(set.examples) do
    local a, z = {}, {}
    for q = 1, Tn do
      local ra, rz = {}, {}
      for v = 1, V do ra[v], rz[v] = 0, 0 end
      a[q], z[q] = ra, rz
    end
    a[L.root][tp.target_id(N, ex.ancestors[math.min(2, ex.path_length) ])] = 1
    z[L.root][tp.target_id(N, ex.ancestors[ex.path_length])] = 1
    r0[b], r1[b] = a, z
  end
  local c = { model = m, cache = { ["blocks.0.hook_resid_pre"] = T.zeros(B, Tn, V), ["blocks.0.hook_resid_post"] = T.tensor(r0),
    ["blocks.1.hook_resid_post"] = T.tensor(r1) }, examples = set.examples, n = B, N = N, L = 2, layout = L }
  local lens = MX.lens(c)
  -- expected by counting: layer 0 decodes a_1 (a_0 when p = 1); layer 1 decodes the answer a_(p-1)
  local n_all, n_p1, n_p2, n_inner1 = 0, 0, 0, 0
  for _, ex in ipairs(set.examples) do
    n_all = n_all + 1
    if ex.path_length == 1 then n_p1 = n_p1 + 1 end
    if ex.path_length == 2 then n_p2 = n_p2 + 1 end
    if ex.path_length > 2 then n_inner1 = n_inner1 + 1 end
  end
  test.close(lens.all[1][1], n_p1 / B, 1e-9, "lens: layer 0 decodes a_0 only where a_1 does not exist")
  test.close(lens.all[1][2], 1, 1e-9, "lens: layer 0 decodes a_1 in every row that has it")
  test.close(lens.answer, { (n_p1 + n_p2) / B, 1 }, 1e-9, "lens: the answer after each layer")
  test.close(lens.inner[1][2], 1, 1e-9, "lens.inner: a_1 where it is not the answer")
  test.is(lens.counts_inner[2], n_inner1, "lens.inner counts rows with p > 2 for a_1")
end

-- ---- the climb ----
do
  local cl = MX.climb({ { 0.9, 0.1, 0.0 }, { 0.2, 0.8, 0.1 }, { 0.1, 0.3, 0.7 } }, { 50, 40, 30 }, 20)
  test.is({ cl.peak, cl.monotone }, { { 0, 1, 2 }, true }, "climb: a_0 peaks in layer 0, a_1 in 1, a_2 in 2")
  cl = MX.climb({ { 0.9, 0.9, 0.0 }, { 0.2, 0.1, 0.1 } }, { 50, 40, 30 }, 20)
  test.is({ cl.peak, cl.monotone }, { { 0, 0, 1 }, true }, "climb: ties go to the first layer")
  cl = MX.climb({ { 0.1, 0.9 }, { 0.9, 0.1 } }, { 50, 40 }, 20)
  test.is(cl.monotone, false, "climb: a later ancestor peaking earlier is not a climb")
  cl = MX.climb({ { 0.9, 0.1, 0.9 }, { 0.1, 0.9, 0.1 } }, { 50, 40, 3 }, 20)
  test.is(cl.js, { 0, 1 }, "climb: ancestors with too few rows are left out")
end

-- ---- matching trees for the patching test ----
do
  T.seed(4)
  local ok = true
  for _, case in ipairs({ { 3, 0 }, { 0, 1 }, { 5, 2 }, { 2, 4 } }) do
    for _ = 1, 5 do
      local ex = MX.matching_tree(N, case[1], case[2])
      if ex.ancestors[case[2] + 1] ~= case[1] or ex.order ~= "backward" or ex.second_length ~= 0 then ok = false end
    end
  end
  test.ok(ok, "matching_tree: the node sits at the asked distance from the goal, backward order, no second branch")
end

-- ---- key_dla summed over all keys equals the head's attribution in analysis.dla ----
do
  T.seed(9)
  local m = nn.transformer { n_layers = 2, d_model = 16, n_heads = 1, d_head = 16, d_mlp = 32, d_vocab = tp.n_vocab(N),
    n_ctx = Tn, act_fn = "gelu", normalization = "LN", causal = true, init_range = 0.3 }
  local small = tp.dataset(8, N)
  local c = MX.cache(m, small)
  local _, full = m:run_with_cache(small.tokens)
  local all = {}
  for k = 1, Tn do all[k] = k end
  local U = MX.node_directions(m, N)
  local worst = 0
  for l = 0, 1 do
    local kd = MX.key_dla(m, c, l, all):sum(2)                     -- [B, N]
    for v = 1, N do
      local d = analysis.dla(m, full, U:select(2, v):contiguous(), L.root)
      local row
      for i, lab in ipairs(d.labels) do if lab == "L" .. l .. "H1" then row = d.values:select(1, i) end end
      worst = math.max(worst, (row - kd:select(2, v)):abs():max():item())
    end
  end
  test.ok(worst < 1e-4, string.format("key_dla over every key = analysis.dla of the head (largest difference %.2g)", worst))
  -- patching a layer whose output is zero changes nothing: everything is recovered
  T.no_grad(function() m.params["blocks.1.attn.W_O"]:zero_(); m.params["blocks.1.attn.b_O"]:zero_() end)
  local h1 = MX.patch_h1(m, N, { samples = 4, layers = { 1 } })
  test.close(h1.recovered[1], 1, 1e-5, "patch_h1: a layer that writes nothing recovers the whole loss at every path length")
end

-- ---- the script end to end ----
local milua = test.milua()
local dir = test.tmpdir()
local sanitized = os.getenv("MILUA_SANITIZED")
local extra = sanitized and " --examples 400 --epochs 1 --analysis 60 --patch_samples 4" or ""

local function run(name, flags)
  return test.run_script("experiments/tree_paths.lua", "--quick --nodes 4" .. extra .. (flags or ""),
    { out = dir .. "/" .. name, name = name })
end

local function all_in(list, lo, hi, allow_null)
  if type(list) ~= "table" or #list == 0 then return false end
  for _, v in ipairs(list) do
    if not (allow_null and v == json.null) and (type(v) ~= "number" or v < lo or v > hi) then return false end
  end
  return true
end

-- trees of 4 nodes (paths 1..3) let the quick model learn in a few hundred steps
local res, out = run("a")
test.pinned(res, "tree_paths", "experiments/tree_paths.lua", "--quick --nodes 4" .. extra)
local nl, nj = 4, 3
test.is(res.n_nodes, 4, "n_nodes")
test.ok(all_in({ res.acc }, 0, 1), "acc in [0, 1]")
test.ok(all_in(res.acc_by_path_length, 0, 1, true) and #res.acc_by_path_length == nj, "acc_by_path_length: one per length 1..3")
-- chance: a uniform guess over the 11 tokens gets even a path of length 1 (node and stop) right 1/121 of
-- the time; guessing one of the root's two children and then the stop, 1/2 of the time
if not sanitized then
  test.ok(res.acc > 0.25 and res.acc_by_path_length[1] > 0.3,
    string.format("--quick learns above chance (acc %.3f, path length 1: %.3f)", res.acc or -1, res.acc_by_path_length[1] or -1))
end
test.ok(all_in(res.edge_concat, 0, 1) and #res.edge_concat == nl, "edge_concat: a fraction per layer")
test.ok(all_in(res.goal_attention, 0, 1) and #res.goal_attention == nl, "goal_attention: a mass per layer")
test.ok(all_in(res.answer_lens, 0, 1) and #res.answer_lens == nl, "answer_lens: a fraction per layer")
local shapes_ok = type(res.ancestor_attention) == "table" and #res.ancestor_attention == nl
  and type(res.logit_lens) == "table" and #res.logit_lens == nl
for l = 1, shapes_ok and nl or 0 do
  if not (all_in(res.ancestor_attention[l], 0, 1, true) and #res.ancestor_attention[l] == nj
    and all_in(res.logit_lens[l], 0, 1, true) and #res.logit_lens[l] == nj) then shapes_ok = false end
end
test.ok(shapes_ok, "ancestor_attention and logit_lens: layer x ancestor a_0..a_2, fractions")
local pt = res.patching or {}
local patch_ok = type(pt.recovered) == "table" and #pt.recovered == nl and all_in(pt.layers, 0, nl - 1)
  and all_in(pt.path_lengths, 1, nj)
for l = 1, patch_ok and nl or 0 do
  if not (type(pt.recovered[l]) == "table" and #pt.recovered[l] == nj and all_in(pt.recovered[l], -1e6, 1e6)) then patch_ok = false end
end
test.ok(patch_ok, "patching: layers, path_lengths, recovered [layer][length]")
test.ok(all_in({ res.train_seconds }, 0, 1e6) and res.seed == 1, "train_seconds and seed")
test.ok(type(res.checks) == "table" and type(res.checks.accuracy) == "table" and type(res.checks.patching) == "table",
  "checks: accuracy and the mechanism verdicts")
local gated = true
if res.acc < 0.99 then
  for name, ch in pairs(res.checks) do
    if name ~= "accuracy" and (ch.holds ~= false or not ch.text:find("not evaluated", 1, true)) then gated = false end
  end
end
test.ok(gated, "an unlearned model's mechanism checks are all 'not evaluated'")
-- role attention: a mass per (layer, query role, key role); a query's masses over the key roles sum to 1
do
  local ra, ok = res.role_attention, true
  ok = type(ra) == "table" and #ra.mass == nl and #ra.queries == 6 and #ra.keys == 8
  for l = 1, ok and nl or 0 do
    for qi = 1, 6 do
      local sum = 0
      for ki = 1, 8 do sum = sum + ra.mass[l][qi][ki] end
      ok = ok and math.abs(sum - 1) < 1e-4
    end
  end
  test.ok(ok, "role_attention: each layer's query roles spread their whole mass over the key roles")
end
for _, p in ipairs({ "accuracy_by_path_length", "edge_concat_goal", "role_attention", "ancestor_attention", "logit_lens", "patching",
  "edge_dla", "probes" }) do
  test.png(out .. "/" .. p .. ".png", p .. ".png is a PNG", 16)
end

-- the same seed and thread count again, in a fresh directory: the same numbers
local res2 = run("b")
for _, k in ipairs({ "acc", "acc_by_path_length", "edge_concat", "goal_attention", "role_attention", "ancestor_attention",
  "logit_lens", "answer_lens", "patching", "edge_dla", "probes" }) do
  test.is(res2[k], res[k], "a second run at seed 1 reproduces " .. k)
end
-- the default schedule is the calibration's one-cycle; the run left its per-epoch checkpoint in
-- --out, and a run whose trained model is gone resumes from it at the last step: the same numbers
test.is(res.recipe and res.recipe.schedule, "onecycle", "the recipe's schedule is onecycle by default")
do
  local ckpts = {}
  local p = io.popen("ls '" .. dir .. "/b'")
  for name in p:read("a"):gmatch("[^\n]+") do
    if name:match("^train_%x+%.safetensors$") then ckpts[#ckpts + 1] = name end
  end
  p:close()
  test.is(#ckpts, 1, "one resumable training checkpoint, named by the recipe, is left in --out")
  os.remove(dir .. "/b/model.safetensors")
  local res4 = run("b")
  for _, k in ipairs({ "acc", "edge_concat", "logit_lens", "patching" }) do
    test.is(res4[k], res[k], "a run resumed from the checkpoint at its last step reproduces " .. k)
  end
end
-- another seed trains another model
local res3 = run("c", " --seed 2")
test.isnt(res3.edge_concat, res.edge_concat, "seed 2 gives other measurements")

-- a bad flag: one line, exit status 2, nothing written
do
  local ok, _, code = os.execute(string.format("%s experiments/tree_paths.lua --nodes 40 --out %s/bad > %s/bad.log 2>&1",
    milua, dir, dir))
  local f = io.open(dir .. "/bad.log")
  local msg = f and f:read("a") or ""
  if f then f:close() end
  test.ok(not ok and code == 2 and msg:find("--nodes", 1, true) ~= nil, "--nodes 40 is refused with a message naming the flag")
  test.ok(io.open(dir .. "/bad/results.json") == nil, "and no results.json is written")
end

do
  local ok, _, code = os.execute(string.format("%s experiments/tree_paths.lua --schedule step --out %s/bad2 > %s/bad2.log 2>&1",
    milua, dir, dir))
  local f = io.open(dir .. "/bad2.log")
  local msg = f and f:read("a") or ""
  if f then f:close() end
  test.ok(not ok and code == 2 and msg:find("--schedule: expected onecycle or cosine, got step", 1, true) ~= nil,
    "--schedule step is refused with a message naming the flag and the choices")
end

os.execute("rm -rf '" .. dir .. "'")
test.done()
