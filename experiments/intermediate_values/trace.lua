-- Tracing (Matsumoto et al.): each layer's hidden states at all positions, concatenated into
-- one vector per instance, reduced by PCA; |Pearson r| of every component's score with every
-- traced value. Layers are 0-based block indices; a layer's state is its block's output, the
-- state the next block reads: blocks.L.hook_resid_post in a pre-LN model,
-- blocks.L.hook_normalized_resid_post in a post-LN one (BERT's hidden states).
--
--   local trace = require "intermediate_values.trace"
--   trace.output_hook(model, layer) -> the hook name of that block's output
--   trace.states(model, tokens, layers) -> {[layer] = [N, T*D]}
--   trace.run(states, layers, values, names, k) -> {layers, names, pca = {[layer] = p},
--       scores = {[layer] = [N, k]}, abs_r [layer][value][component] (1-based lists),
--       explained_ratio [layer][component]}
--   trace.best(t [, layers]) -> {[value] = {layer, component, abs_r}} over the given layers
--   trace.best_in_layer(t, value_index, li) -> component, abs_r
--   trace.quietest(t, li) -> component whose largest |r| with any value is smallest, that |r|
--   trace.subspace_r(t) -> [layer][value]: sqrt(sum over the k components of r^2). The scores
--       are uncorrelated on the set PCA was fitted to, so this is the multiple correlation of a
--       least-squares fit of the value on all k scores: whether the value lies in the span of
--       the top k components, whatever directions PCA picks inside that span.
--   trace.halves(states, layers, values, names, k, splits) -> list of 2 * splits traces, each
--       fitted to one half of a random split of the instances (t.index: its instances). The splits are fixed
--       permutations (their own generator, not the global one), so a statistic's range over
--       the halves shows how much it moves with the analysis set alone.
--
-- Why halves: where two components explain nearly the same variance, PCA's choice of axes
-- inside their span is decided by noise, and a component's |r| with one value can trade places
-- with another value's (b and b-c, or a, b, c and the answer, which are linear in each other)
-- between two analysis sets of the same distribution.
local T = require "milua.tensor"
local analysis = require "milua.analysis"

local M = {}

local CHUNK = 250

function M.output_hook(model, layer)
  if model.cfg.ln_position == "post" then return "blocks." .. layer .. ".hook_normalized_resid_post" end
  return "blocks." .. layer .. ".hook_resid_post"
end

function M.states(model, tokens, layers)
  local names = {}
  for _, l in ipairs(layers) do names[#names + 1] = M.output_hook(model, l) end
  local n = tokens:shape()[1]
  local parts = {}
  for _, l in ipairs(layers) do parts[l] = {} end
  T.no_grad(function()
    for i = 1, n, CHUNK do
      local rows = tokens:narrow(1, i, math.min(CHUNK, n - i + 1))
      local _, cache = model:run_with_cache(rows, names)
      for j, l in ipairs(layers) do
        local h = cache[names[j]]
        parts[l][#parts[l] + 1] = h:reshape(h:shape()[1], -1)
      end
    end
  end)
  local out = {}
  for _, l in ipairs(layers) do out[l] = T.cat(parts[l], 1) end
  return out
end

function M.run(states, layers, values, names, k)
  local t = { layers = layers, names = names, pca = {}, scores = {}, abs_r = {}, explained_ratio = {} }
  local ys = {}
  for j, name in ipairs(names) do ys[j] = T.tensor(values[name]) end
  for li, l in ipairs(layers) do
    local p = analysis.pca(states[l], k)
    local z = p:project(states[l])
    t.pca[l], t.scores[l] = p, z
    t.explained_ratio[li] = p.explained_ratio:totable()
    local rows = {}
    for j = 1, #names do
      local r = analysis.corr(z, ys[j]):abs():totable()
      for c = 1, #r do if r[c] ~= r[c] then r[c] = 0 end end     -- a constant score correlates with nothing
      rows[j] = r
    end
    t.abs_r[li] = rows
  end
  return t
end

function M.best_in_layer(t, j, li)
  local best, at = -1, nil
  for c, r in ipairs(t.abs_r[li][j]) do if r > best then best, at = r, c end end
  return at, best
end

function M.best(t, layers)
  local out = {}
  for j, name in ipairs(t.names) do
    local b = { abs_r = -1 }
    for li, l in ipairs(t.layers) do
      local allowed = layers == nil
      for _, x in ipairs(layers or {}) do if x == l then allowed = true end end
      if allowed then
        local c, r = M.best_in_layer(t, j, li)
        if r > b.abs_r then b = { layer = l, component = c, abs_r = r } end
      end
    end
    out[name] = b
  end
  return out
end

function M.quietest(t, li)
  local best, at = math.huge, nil
  for c = 1, #t.explained_ratio[li] do
    local m = 0
    for j = 1, #t.names do m = math.max(m, t.abs_r[li][j][c]) end
    if m < best then best, at = m, c end
  end
  return at, best
end

function M.subspace_r(t)
  local out = {}
  for li = 1, #t.layers do
    out[li] = {}
    for j = 1, #t.names do
      local sq = 0
      for _, r in ipairs(t.abs_r[li][j]) do sq = sq + r * r end
      out[li][j] = math.min(1, math.sqrt(sq))
    end
  end
  return out
end

-- a permutation of 1..n from a 48-bit linear congruential generator (drand48's constants)
local function permutation(n, seed)
  local x, p = (seed * 2654435761 + 12345) % 281474976710656, {}
  for i = 1, n do p[i] = i end
  for i = n, 2, -1 do
    x = (x * 25214903917 + 11) % 281474976710656
    local j = 1 + (x >> 16) % i
    p[i], p[j] = p[j], p[i]
  end
  return p
end

function M.halves(states, layers, values, names, k, splits)
  local n = states[layers[1]]:shape()[1]
  local out = {}
  for s = 1, splits do
    local p = permutation(n, s)
    for h = 0, 1 do
      local idx = {}
      for i = 1 + h * (n // 2), (h + 1) * (n // 2) do idx[#idx + 1] = p[i] end
      local st, vals = {}, {}
      for _, l in ipairs(layers) do st[l] = states[l]:index_select(1, idx) end
      for _, name in ipairs(names) do
        local v, src = {}, values[name]
        for q, i in ipairs(idx) do v[q] = src[i] end
        vals[name] = v
      end
      local t = M.run(st, layers, vals, names, k)
      t.pca, t.scores, t.index = nil, nil, idx
      out[#out + 1] = t
    end
  end
  return out
end

return M
