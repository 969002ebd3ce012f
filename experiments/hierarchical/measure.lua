-- Measurements shared by the hierarchical-filtering scripts: the model against belief
-- propagation (accuracy, KL, agreement), curve summaries (peaks, minima), the attention mass
-- inside tree blocks, and ancestor probes.
--
--   local HX = require "hierarchical.measure"
--   HX.bp_root(g, sets, depth) -> post[kd][kb] (posteriors [n, q]), acc[kd][kb]; 0-based keys
--   HX.compare(probs, bp_probs, labels) -> {acc, kl, agree}: accuracy of probs; mean
--       KL(bp || probs); fraction of rows whose argmax equals BP's
--   HX.peak(list) -> value, index (the first maximum); HX.argmin(list) -> value, index
--   HX.block_attention(patterns, depth) -> [layer][level]: the mean attention mass a leaf puts
--       on the leaves of its own block of 2^level (levels 0..depth-1), averaged over queries
--   HX.probe_ancestors(resids, sample, depth, opts) -> [layer][level] held-out probe accuracy
--       for each leaf's ancestor at every level 0..depth-1, from each layer's residual stream
local T = require "milua.tensor"
local H = require "milua.data.hierarchy"
local analysis = require "milua.analysis"

local M = {}

function M.bp_root(g, sets, depth)
  local post, acc = {}, {}
  for kd = 0, depth do
    post[kd], acc[kd] = {}, {}
    for kb = 0, depth do
      post[kd][kb] = H.root_posterior(g, sets[kd].tokens, { k = kb })
      acc[kd][kb] = H.accuracy(post[kd][kb], sets[kd].root)
    end
  end
  return post, acc
end

function M.compare(probs, bp, labels)
  local n = probs:shape()[1]
  local r = { acc = labels and H.accuracy(probs, labels) or nil }
  if bp then
    r.kl = H.kl(bp, probs):mean():item()
    r.agree = probs:argmax(2):reshape(n):eq(bp:argmax(2):reshape(n)):sum():item() / n
  end
  return r
end

function M.peak(list)
  local best, at = -math.huge, 0
  for i, v in ipairs(list) do if v > best then best, at = v, i end end
  return best, at
end

function M.argmin(list)
  local best, at = math.huge, 0
  for i, v in ipairs(list) do if v < best then best, at = v, i end end
  return best, at
end

-- 0-based {0, 1, ...} as a Lua list indexed 1.. (for JSON)
function M.list0(t, from, to)
  local out = {}
  for k = from, to do out[#out + 1] = t[k] end
  return out
end

--- block_attention(patterns, depth): patterns[l + 1] = mean pattern [L, L] of layer l (one head)
function M.block_attention(patterns, depth)
  local L = 1 << depth
  local out = {}
  for li, P in ipairs(patterns) do
    local p = P:totable()
    out[li] = {}
    for level = 0, depth - 1 do
      local size = 1 << level
      local s = 0
      for i = 1, L do
        local b0 = ((i - 1) // size) * size
        for j = b0 + 1, b0 + size do s = s + p[i][j] end
      end
      out[li][level + 1] = s / L
    end
  end
  return out
end

--- probe_ancestors(resids, sample, depth, {n_rows, steps, seed})
-- resids[l + 1]: [n, L, d] residual stream after l layers (l = 0: the embeddings).
-- One softmax-regression probe per (layer, level), shared by all positions (the position is in
-- the residual stream), trained on 80% of the rows and scored on the rest.
function M.probe_ancestors(resids, sample, depth, o)
  o = o or {}
  local n = resids[1]:shape()[1]
  local L = 1 << depth
  local d = resids[1]:shape()[3]
  local acc, chance = {}, {}
  for level = 0, depth - 1 do
    local y = H.ancestors(sample, level):narrow(1, 1, n):reshape(n * L)
    for li, R in ipairs(resids) do
      acc[li] = acc[li] or {}
      chance[li] = chance[li] or {}
      local p = analysis.probe(R:reshape(n * L, d), y, { seed = o.seed or 1, steps = o.steps or 200 })
      acc[li][level + 1] = p.accuracy
      chance[li][level + 1] = p.chance
    end
  end
  return acc, chance
end

return M
