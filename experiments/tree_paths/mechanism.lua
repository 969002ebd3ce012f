-- The measurements of Brinkmann et al. (2024) on a tree-paths model: edge concatenation, goal
-- movement, deduction heads (attention to the goal's ancestors and the logit lens at the root
-- position), the H1 patching test, the direct logit attribution of attended edges, and linear
-- probes. Positions are milua.data.tree_paths' (1-based); layers are 0-based in names and
-- labels, and row l + 1 of every per-layer list is layer l.
--
--   local MX = require "tree_paths.mechanism"
--   local c = MX.cache(model, set, n)          -- the first n rows of a set, run once with the hooks below
--   MX.edge_concat(c)        -> {[layer] = fraction of ">B" tokens whose attention argmax is the source A}
--   MX.goal_attention(c)     -> answer {[layer] = mean mass from the positions predicting path nodes
--                               (root .. root+p-1) on the goal token}, root {[layer] = the same at the root}
--   MX.role_attention(c)     -> where each layer attends, by token role: queries {role names},
--                               keys {role names}, mass [layer][query][key] (mean attention mass
--                               of a query role's positions on all keys of a key role), own_edge
--                               [layer][query] (">B": mass on its source A; ",": on its edge's A
--                               and ">B"), and best {query, layer, own_edge} for the edge roles.
--                               The paper joins an edge at ">B"; a model may use the comma after
--                               it (a register) and do the search at ":" instead of the root.
--   MX.ancestor_attention(c) -> {[layer] = {[j+1] = mean mass at the root on the edge token ">a_j"}},
--                               counts {[j+1] = rows with a_j}; a_0 = goal, a_1 = its parent, ...,
--                               a_(p-1) = the answer (the root's child); a row counts for j < p
--   MX.lens(c)               -> {all = [layer][j+1], inner = [layer][j+1], answer = [layer], ...}
--                               fraction of rows whose logit lens at the root (after layer l) has
--                               its argmax at ">a_j"; `all` over rows with j < p, `inner` over rows
--                               with j < p - 1 (a_j not the answer); answer: the lens decodes a_(p-1)
--   MX.climb(matrix, counts, min_rows) -> {peak = {[j+1] = layer}, monotone = bool, js = {...}}
--   MX.patch_h1(model, n_nodes, o) -> {layers, path_lengths, recovered [layer][length], shift, ...}
--   MX.key_dla(model, c, l, positions) -> [B, K, N] attribution of layer l's head, by key position
--   MX.edge_dla(model, c)    -> per layer: the direct logit attribution, at the root position, of
--                               each attended edge token ">B" (of edge A>B) to ">A" and to ">B"
--   MX.matching_tree(n, node, dist) -> a tree whose ancestor a_dist is node
--   MX.probes(c, o)          -> source {[stream] = held-out accuracy of A at ">B" positions},
--                               goal {[stream] = accuracy of the goal at the answer positions}, chance
local T = require "milua.tensor"
local analysis = require "milua.analysis"
local tp = require "milua.data.tree_paths"

local M = {}

local function hook_names(L)
  local names = { "blocks.0.hook_resid_pre", "ln_final.hook_scale" }
  for l = 0, L - 1 do
    names[#names + 1] = "blocks." .. l .. ".attn.hook_pattern"
    names[#names + 1] = "blocks." .. l .. ".attn.hook_v"
    names[#names + 1] = "blocks." .. l .. ".hook_resid_post"
  end
  return names
end

--- MX.cache(model, set, n): the first n rows (all when n is nil) of a tree_paths set
function M.cache(model, set, n)
  local rows = set.tokens:shape()[1]
  n = math.min(n or rows, rows)
  local tok = set.tokens:narrow(1, 1, n)
  local L = model.cfg.n_layers
  local logits, cache = T.no_grad(function() return model:run_with_cache(tok, hook_names(L)) end)
  local ex = {}
  for i = 1, n do ex[i] = set.examples[i] end
  return { model = model, cache = cache, logits = logits, tokens = tok, examples = ex, n = n,
    N = set.n_nodes, L = L, layout = tp.layout(set.n_nodes) }
end

-- the single head's pattern of layer l: [B, T(query), T(key)]
local function pattern(c, l)
  return c.cache["blocks." .. l .. ".attn.hook_pattern"]:select(2, 1)
end

local function edge_target_positions(c)
  local pos = {}
  for k = 1, c.N - 1 do pos[k] = c.layout.edge_target(k) end
  return pos
end

function M.edge_concat(c)
  local qpos = T.tensor(edge_target_positions(c), "int32")
  local want = (qpos - 1):unsqueeze(1)                               -- the source token just before
  local out = {}
  for l = 0, c.L - 1 do
    local am = pattern(c, l):index_select(2, qpos):argmax(3)         -- [B, N-1], 1-based key positions
    out[l + 1] = am:eq(want):float():mean():item()
  end
  return out
end

-- token roles by position (fixed for a given N): edge k's source, target and comma, then
-- "|", the goal, ":", the root and the path
local ROLE_KEYS = { "A", ">B", ",", "|", "goal", ":", "root", "path" }
local ROLE_QUERIES = { ">B", ",", "|", "goal", ":", "root" }
local function role_positions(c)
  local L, pos = c.layout, {}
  for _, r in ipairs(ROLE_KEYS) do pos[r] = {} end
  for k = 1, c.N - 1 do
    table.insert(pos["A"], L.edge_source(k))
    table.insert(pos[">B"], L.edge_target(k))
    if k < c.N - 1 then table.insert(pos[","], 3 * k) end       -- the last edge is followed by "|"
  end
  pos["|"], pos.goal, pos[":"], pos.root = { L.pipe }, { L.goal }, { L.colon }, { L.root }
  for i = 1, L.n_ctx - L.root do pos.path[i] = L.root + i end
  return pos
end

function M.role_attention(c)
  local pos = role_positions(c)
  local mass, own = {}, {}
  for l = 0, c.L - 1 do
    local p = pattern(c, l)                                          -- [B, T, T]
    mass[l + 1], own[l + 1] = {}, {}
    for qi, q in ipairs(ROLE_QUERIES) do
      local rows = p:index_select(2, T.tensor(pos[q], "int32"))        -- [B, |q|, T]
      local row = {}
      for ki, k in ipairs(ROLE_KEYS) do
        row[ki] = rows:index_select(3, T.tensor(pos[k], "int32")):sum(3):mean():item()
      end
      mass[l + 1][qi] = row
      -- the query's own edge: ">B" at 3k-1 reads its source at 3k-2; "," at 3k reads both
      if q == ">B" or q == "," then
        local total = 0
        for i, qp in ipairs(pos[q]) do
          local back = q == ">B" and 1 or 2
          total = total + rows:select(2, i):narrow(2, qp - back, back):sum(2):mean():item()
        end
        own[l + 1][qi] = total / #pos[q]
      end
    end
  end
  local best = {}
  for qi, q in ipairs(ROLE_QUERIES) do
    if q == ">B" or q == "," then
      local b = { query = q, layer = 0, own_edge = -1 }
      for l = 1, c.L do if own[l][qi] > b.own_edge then b.layer, b.own_edge = l - 1, own[l][qi] end end
      best[q] = b
    end
  end
  return { queries = ROLE_QUERIES, keys = ROLE_KEYS, mass = mass, own_edge = own, best = best }
end

-- [B, T] float: 1 at the positions that predict a path node (root .. root + p - 1)
local function answer_mask(c)
  local rows = {}
  local root = c.layout.root
  for b, ex in ipairs(c.examples) do
    local r = {}
    for i = 1, c.layout.n_ctx do r[i] = (i >= root and i < root + ex.path_length) and 1 or 0 end
    rows[b] = r
  end
  return T.tensor(rows)
end

function M.goal_attention(c)
  local mask = answer_mask(c)
  local total = mask:sum():item()
  local answer, root = {}, {}
  for l = 0, c.L - 1 do
    local g = pattern(c, l):select(3, c.layout.goal)                -- [B, T]: each query's mass on the goal
    answer[l + 1] = (g * mask):sum():item() / total
    root[l + 1] = g:select(2, c.layout.root):mean():item()
  end
  return { answer = answer, root = root }
end

function M.ancestor_attention(c)
  local root = c.layout.root
  local out, counts = {}, {}
  for j = 1, c.N - 1 do counts[j] = 0 end
  for _, ex in ipairs(c.examples) do
    for j = 0, ex.path_length - 1 do counts[j + 1] = counts[j + 1] + 1 end
  end
  for l = 0, c.L - 1 do
    local rows = pattern(c, l):select(2, root):totable()            -- [B][key]
    local sum = {}
    for j = 1, c.N - 1 do sum[j] = 0 end
    for b, ex in ipairs(c.examples) do
      for j = 0, ex.path_length - 1 do
        local k = ex.edge_of[ex.ancestors[j + 1]]
        sum[j + 1] = sum[j + 1] + rows[b][c.layout.edge_target(k)]
      end
    end
    local row = {}
    for j = 1, c.N - 1 do row[j] = counts[j] > 0 and sum[j] / counts[j] or 0 / 0 end
    out[l + 1] = row
  end
  return out, counts
end

function M.lens(c)
  local lens = analysis.logit_lens(c.model, c.cache, { pos = c.layout.root })   -- [L+1, B, V]
  local top = lens:argmax(3):totable()                                          -- row 1: embed
  local all, inner, answer = {}, {}, {}
  local n_all, n_inner = {}, {}
  for j = 1, c.N - 1 do n_all[j], n_inner[j] = 0, 0 end
  for _, ex in ipairs(c.examples) do
    for j = 0, ex.path_length - 1 do
      n_all[j + 1] = n_all[j + 1] + 1
      if j < ex.path_length - 1 then n_inner[j + 1] = n_inner[j + 1] + 1 end
    end
  end
  for l = 0, c.L - 1 do
    local pred = top[l + 2]
    local h_all, h_inner, h_ans = {}, {}, 0
    for j = 1, c.N - 1 do h_all[j], h_inner[j] = 0, 0 end
    for b, ex in ipairs(c.examples) do
      local p = ex.path_length
      for j = 0, p - 1 do
        if pred[b] == tp.target_id(c.N, ex.ancestors[j + 1]) then
          h_all[j + 1] = h_all[j + 1] + 1
          if j < p - 1 then h_inner[j + 1] = h_inner[j + 1] + 1 end
        end
      end
      if pred[b] == tp.target_id(c.N, ex.ancestors[p]) then h_ans = h_ans + 1 end
    end
    local ra, ri = {}, {}
    for j = 1, c.N - 1 do
      ra[j] = n_all[j] > 0 and h_all[j] / n_all[j] or 0 / 0
      ri[j] = n_inner[j] > 0 and h_inner[j] / n_inner[j] or 0 / 0
    end
    all[l + 1], inner[l + 1], answer[l + 1] = ra, ri, h_ans / c.n
  end
  return { all = all, inner = inner, answer = answer, counts_all = n_all, counts_inner = n_inner }
end

--- MX.climb(matrix [layer][j], counts [j], min_rows): for each j with at least min_rows rows, the
--- layer (0-based) where the column peaks (the first on ties); monotone when that layer never
--- decreases as j grows (backward chaining: the goal first, then its parent, ...)
function M.climb(matrix, counts, min_rows)
  local peak, js = {}, {}
  local monotone, last = true, -1
  for j = 1, #counts do
    if counts[j] >= (min_rows or 1) then
      local best, at = -1, nil
      for l = 1, #matrix do
        local v = matrix[l][j]
        if v == v and v > best then best, at = v, l - 1 end
      end
      peak[#peak + 1] = at
      js[#js + 1] = j - 1
      if at < last then monotone = false end
      last = at
    end
  end
  return { peak = peak, js = js, monotone = monotone and #peak >= 2 }
end

-- a tree whose ancestor a_dist (a_0 = goal) is `node`, drawn by rejection as the authors'
-- get_matching_graph: backward edge order, no second branch, path length uniform on
-- dist+1 .. N-2 (the authors' randint(dist, 15) for N = 16); N-1 when that range is empty
function M.matching_tree(n, node, dist)
  local lo = math.min(dist + 1, n - 1)
  local hi = math.max(lo, n - 2)
  for _ = 1, 100000 do
    local ex = tp.example(n, { order = "backward", second_length = 0, path_length = T.random(lo, hi) })
    if ex.ancestors[dist + 1] == node then return ex end
  end
  error("tree_paths.mechanism: no tree with node " .. node .. " at distance " .. dist .. " from the goal in 100000 draws")
end

--- MX.patch_h1(model, n, {samples, shift, layers}): the authors' hypothesis H1 test. For layer l
--- and path length p, `samples` clean trees (backward order, a second branch of 2 where it fits,
--- as the authors'); each is paired with a tree in which the same node sits at distance
--- j = min(max(l - shift, 0), p - 1) from the goal (a_j; the authors' shift is 0: layer l reads
--- a_l; clamping at p - 1 is their padding of the inverse path with the answer). The matching
--- tree's attention output of layer l at the root position replaces the clean one; the metric is
--- the loss of the clean run's top token at the root, L = -log p(top), and per tree
--- (L_patched - L_uniform) / (L_clean - L_uniform) with L_uniform = log V, averaged (the
--- authors' % loss recovered, as a fraction). analysis.patch does the patching.
function M.patch_h1(model, n, o)
  o = o or {}
  local samples, shift = o.samples or 100, o.shift or 0
  local L = model.cfg.n_layers
  local layout = tp.layout(n)
  local root = layout.root
  local log_v = math.log(tp.n_vocab(n))
  local comma = tp.ids(n)[","]
  local layers, lengths, recovered = {}, {}, {}
  for l = 0, L - 1 do layers[l + 1] = l end
  for p = 1, n - 1 do lengths[p] = p end
  for li, l in ipairs(o.layers or layers) do
    local row = {}
    for _, p in ipairs(lengths) do
      local clean = tp.dataset(samples, n, { order = "backward", path_length = p, second_length = 2 })
      local j = math.min(math.max(l - shift, 0), p - 1)
      local match_rows = {}
      for b, ex in ipairs(clean.examples) do
        local m = M.matching_tree(n, ex.ancestors[j + 1], j)
        local r = {}
        for i = 1, layout.n_ctx do r[i] = m.tokens[i] or comma end
        match_rows[b] = r
      end
      local matched = T.tensor(match_rows, "int32")
      local base = T.no_grad(function() return model:forward(clean.tokens):select(2, root):log_softmax(2) end)
      local top = base:argmax(2)                                         -- [B] the clean prediction
      local l_clean = -base:gather(2, top:unsqueeze(2)):squeeze(2)       -- [B]
      local metric = function(logits)
        local lp = logits:select(2, root):log_softmax(2)
        local l_patched = -lp:gather(2, top:unsqueeze(2)):squeeze(2)
        return ((l_patched - log_v) / (l_clean - log_v)):mean()
      end
      -- the matching tree's activation goes into the clean run: it is analysis.patch's "clean"
      local res = analysis.patch(model, matched, clean.tokens, metric, { what = "attn_out", layers = { l },
        positions = { root } })
      row[p] = res:view(-1)[1]:item()
    end
    recovered[li] = row
  end
  return { layers = o.layers or layers, path_lengths = lengths, recovered = recovered, shift = shift,
    samples = samples }
end

-- the unembedding of the N node tokens ">v", centred over them: [D, N]
local function node_directions(model, n)
  local targets = {}
  for v = 0, n - 1 do targets[v + 1] = tp.target_id(n, v) end
  local WU = model.params["unembed.W_U"]:detach():index_select(2, T.tensor(targets, "int32"))
  return WU - WU:mean(2, true)
end

--- MX.key_dla(model, c, l, positions) -> [B, #positions, N]: the direct logit attribution, at the
--- root position, of layer l's head output split by key position (pattern[root, k] * v_k W_O),
--- through the final LayerNorm with its cached scale, onto the node tokens ">v" (column v + 1)
--- centred over those N tokens. Summed over every key position it is the head's whole attribution.
function M.key_dla(model, c, l, positions)
  local root = c.layout.root
  local P = model.params
  return T.no_grad(function()
    local U = node_directions(model, c.N)
    local pos = T.tensor(positions, "int32")
    local scale = c.cache["ln_final.hook_scale"]:select(2, root)         -- [B, 1]
    local v = c.cache["blocks." .. l .. ".attn.hook_v"]:select(3, 1)    -- [B, T, E]
    local WO = P["blocks." .. l .. ".attn.W_O"]:detach():select(1, 1)    -- [E, D]
    local w = pattern(c, l):select(2, root):index_select(2, pos)         -- [B, K]
    local x = v:index_select(2, pos):matmul(WO) * w:unsqueeze(3)         -- [B, K, D]
    x = (x - x:mean(3, true)) / scale:unsqueeze(2) * P["ln_final.w"]:detach()
    return x:matmul(U)
  end)
end
M.node_directions = node_directions

--- MX.edge_dla(model, c, {min_attention}): for every edge A>B whose token ">B" gets at least
--- min_attention (default 0.1) of the root's attention in layer l, key_dla of that token to ">A"
--- and to ">B". Per layer: n (attended edges), to_source, to_target (means), sign (fraction with
--- to_source > 0 > to_target), and root_n, root_to_source, root_to_target for edges leaving the root.
function M.edge_dla(model, c, o)
  o = o or {}
  local thr = o.min_attention or 0.1
  local root = c.layout.root
  local epos = edge_target_positions(c)
  local out = {}
  for l = 0, c.L - 1 do
    local d = M.key_dla(model, c, l, epos):totable()                     -- [B][k][node + 1]
    local wt = pattern(c, l):select(2, root):index_select(2, T.tensor(epos, "int32")):totable()
    local s = { n = 0, to_source = 0, to_target = 0, sign = 0, root_n = 0, root_to_source = 0, root_to_target = 0 }
    for b, ex in ipairs(c.examples) do
      for k, e in ipairs(ex.edges) do
        if wt[b][k] >= thr then
          local a, t = d[b][k][e[1] + 1], d[b][k][e[2] + 1]
          s.n, s.to_source, s.to_target = s.n + 1, s.to_source + a, s.to_target + t
          if a > 0 and t < 0 then s.sign = s.sign + 1 end
          if e[1] == ex.root then
            s.root_n, s.root_to_source, s.root_to_target = s.root_n + 1, s.root_to_source + a, s.root_to_target + t
          end
        end
      end
    end
    local function mean(x, k) return k > 0 and x / k or 0 / 0 end
    out[l + 1] = { n = s.n, to_source = mean(s.to_source, s.n), to_target = mean(s.to_target, s.n),
      sign = mean(s.sign, s.n), root_n = s.root_n, root_to_source = mean(s.root_to_source, s.root_n),
      root_to_target = mean(s.root_to_target, s.root_n) }
  end
  return out
end

--- MX.probes(c, {steps, seed}): linear probes (analysis.probe, held-out 20%) on the residual
--- stream entering layer 0 ("embed") and after each layer: the source A at every ">B" position,
--- and the goal at every position that predicts a path node
function M.probes(c, o)
  o = o or {}
  local streams = { c.cache["blocks.0.hook_resid_pre"] }
  local labels = { "embed" }
  for l = 0, c.L - 1 do
    streams[#streams + 1] = c.cache["blocks." .. l .. ".hook_resid_post"]
    labels[#labels + 1] = "layer " .. l
  end
  local epos = T.tensor(edge_target_positions(c), "int32")
  local src_y, goal_rows, goal_y = {}, {}, {}
  local E = c.N - 1
  for b, ex in ipairs(c.examples) do
    for k, e in ipairs(ex.edges) do src_y[(b - 1) * E + k] = e[1] + 1 end
    for i = 1, ex.path_length do
      goal_rows[#goal_rows + 1] = (b - 1) * E + i      -- position root + i - 1 among the E from the root
      goal_y[#goal_y + 1] = ex.goal + 1
    end
  end
  local gidx = T.tensor(goal_rows, "int32")
  local popts = { seed = o.seed or 1, steps = o.steps or 300, n_classes = c.N }
  local source, goal = {}, {}
  local chance_s, chance_g
  for i, s in ipairs(streams) do
    local D = s:shape()[3]
    local Xs = s:index_select(2, epos):reshape(c.n * E, D)
    local ps = analysis.probe(Xs, T.tensor(src_y, "int32"), popts)
    local Xg = s:narrow(2, c.layout.root, E):reshape(c.n * E, D):index_select(1, gidx)
    local pg = analysis.probe(Xg, T.tensor(goal_y, "int32"), popts)
    source[i], goal[i] = ps.accuracy, pg.accuracy
    chance_s, chance_g = ps.chance, pg.chance
  end
  return { labels = labels, source = source, goal = goal, chance_source = chance_s, chance_goal = chance_g }
end

return M
