-- milua.analysis.heads: attention-head scores over a batch, from cached hook_pattern tensors.
--
-- Every score is a mean over selected query positions (b, q) of the attention mass a head puts on
-- the keys k where a mask holds. The key mask [B, T, T] and the query mask [B, T] are built once per
-- batch; each layer then costs one (pattern * mask):sum(-1) — no per-element Lua loop over heads.
local T = require "milua.tensor"
local U = require "milua.analysis.util"

local M = {}

-- the per-layer patterns [B, H, T, T] of a cache, a single pattern, or a list of them
local function patterns_of(src, fn)
  if T.is_tensor(src) then
    if src:dim() ~= 4 then U.fail(fn, "a pattern must be [batch, head, query, key], got %s", U.shape_str(src)) end
    return { src }
  end
  if type(src) ~= "table" then U.fail(fn, "expected a cache, a pattern tensor or a list of patterns, got %s", type(src)) end
  local list = {}
  if T.is_tensor(src[1]) then
    for i, p in ipairs(src) do list[i] = p end
  else
    local l = 0
    while T.is_tensor(src["blocks." .. l .. ".attn.hook_pattern"]) do
      list[#list + 1] = src["blocks." .. l .. ".attn.hook_pattern"]
      l = l + 1
    end
    if #list == 0 then
      U.fail(fn, "the cache has no blocks.0.attn.hook_pattern (run_with_cache(tokens, \"hook_pattern\"))")
    end
  end
  for i, p in ipairs(list) do
    if p:dim() ~= 4 or p:shape()[3] ~= p:shape()[4] then
      U.fail(fn, "pattern %d must be [batch, head, query, key], got %s", i, U.shape_str(p))
    end
    if i > 1 and U.shape_str(p) ~= U.shape_str(list[1]) then
      U.fail(fn, "pattern %d is %s but pattern 1 is %s", i, U.shape_str(p), U.shape_str(list[1]))
    end
  end
  return list
end

-- a float mask of the given shape from a tensor (broadcastable), or from a predicate evaluated per element
local function mask_of(m, shape, fn, what, call)
  if T.is_tensor(m) then return m:float() end
  if type(m) ~= "function" then U.fail(fn, "%s must be a function or a tensor, got %s", what, type(m)) end
  return T.tensor(call(m))
end

--- analysis.attention_mass(cache_or_patterns, key_mask [B,T,T] (or [T,T]), query_mask [B,T] (or [T]))
--- -> scores [n_layers, n_heads], n_queries
-- the core of every score: mean over the selected queries of sum_k pattern[b,h,q,k] * key_mask[b,q,k]
function M.attention_mass(src, key_mask, query_mask, fn)
  fn = fn or "analysis.attention_mass"
  local pats = patterns_of(src, fn)
  local B, H, Tn = pats[1]:shape()[1], pats[1]:shape()[2], pats[1]:shape()[3]
  key_mask = key_mask:float()
  if key_mask:dim() == 2 then key_mask = key_mask:unsqueeze(1) end
  if key_mask:dim() ~= 3 or key_mask:shape()[2] ~= Tn or key_mask:shape()[3] ~= Tn
    or (key_mask:shape()[1] ~= B and key_mask:shape()[1] ~= 1) then
    U.fail(fn, "the key mask must be [%d, %d, %d] or [%d, %d], got %s", B, Tn, Tn, Tn, Tn, U.shape_str(key_mask))
  end
  local qm = query_mask and query_mask:float() or T.ones(B, Tn)
  if qm:dim() == 1 then qm = qm:unsqueeze(1):expand(B, Tn) end
  if qm:dim() ~= 2 or qm:shape()[1] ~= B or qm:shape()[2] ~= Tn then
    U.fail(fn, "the query mask must be [%d, %d] or [%d], got %s", B, Tn, Tn, U.shape_str(qm))
  end
  local count = qm:sum():item()
  if count == 0 then U.fail(fn, "no query position is selected") end
  return T.no_grad(function()
    local km = key_mask:unsqueeze(2)    -- [B|1, 1, T, T]
    local qw = qm:unsqueeze(2)          -- [B, 1, T]
    local rows = {}
    for l, p in ipairs(pats) do
      if p:shape()[2] ~= H then U.fail(fn, "pattern %d has %d heads, pattern 1 has %d", l, p:shape()[2], H) end
      rows[l] = ((p:detach() * km):sum(4) * qw):sum(3):sum(1) / count   -- [H]
    end
    return T.stack(rows, 1), count
  end)
end

local function tokens_table(tokens, fn)
  U.tokens(tokens, fn, "tokens")
  return tokens:totable()
end

--- analysis.head_score(cache_or_patterns, tokens, predicate, {query = fn}) -> scores [n_layers, n_heads], n_queries
-- predicate(b, q, k, toks) -> bool marks the keys counted for query q of row b (toks is the
-- token table, toks[b][q]); a [B,T,T] or [T,T] tensor works too. opts.query(b, q, toks) -> bool
-- (or a [B,T] / [T] tensor) selects the queries (default all). The score is the mean over
-- selected queries of the attention mass on the marked keys. Predicates run once per batch
-- (B*T*T calls), not per head or layer.
function M.head_score(src, tokens, predicate, opts)
  local fn = "analysis.head_score"
  opts = U.check_opts(fn, opts, { query = true })
  local pats = patterns_of(src, fn)
  local B, Tn = pats[1]:shape()[1], pats[1]:shape()[3]
  local toks = (type(predicate) == "function" or type(opts.query) == "function") and tokens_table(tokens, fn) or nil
  if toks and (#toks ~= B or #toks[1] ~= Tn) then
    U.fail(fn, "tokens are [%d, %d] but the patterns are for batch %d and %d positions", #toks, #toks[1], B, Tn)
  end
  local km = mask_of(predicate, nil, fn, "predicate", function(f)
    local m = {}
    for b = 1, B do
      local mb = {}
      for q = 1, Tn do
        local row = {}
        for k = 1, Tn do row[k] = f(b, q, k, toks) and 1 or 0 end
        mb[q] = row
      end
      m[b] = mb
    end
    return m
  end)
  local qm = opts.query and mask_of(opts.query, nil, fn, "query", function(f)
    local m = {}
    for b = 1, B do
      local row = {}
      for q = 1, Tn do row[q] = f(b, q, toks) and 1 or 0 end
      m[b] = row
    end
    return m
  end) or nil
  return M.attention_mass(pats, km, qm, fn)
end

-- [T,T] masks from positions: below[q][k] = k < q
local function position_masks(Tn)
  local ar = T.arange(1, Tn + 1)
  local q, k = ar:unsqueeze(2), ar:unsqueeze(1)
  return { before = q:gt(k), diag = q:eq(k), prev = q:eq(k + 1) }
end

-- causal unless the patterns put mass above the diagonal
local function infer_causal(pats, Tn)
  local above = position_masks(Tn).before:t()
  for _, p in ipairs(pats) do
    if (p:detach() * above):sum():item() > 0 then return false end
  end
  return true
end

--- analysis.same_token_score(cache_or_patterns, tokens, {query_tokens = ids | query = fn, causal}) -> scores, baseline, n_queries
-- The LEGO association score: over query positions (all, those holding one of query_tokens, or
-- where query(b, q, toks) holds), the attention mass on OTHER positions holding the identical
-- token — both sides of the query in an encoder, only earlier ones when causal. baseline is the
-- same mass under uniform attention over the allowed keys (all T keys for an encoder, keys 1..q
-- when causal), averaged over the same queries. causal defaults to whether the patterns have any
-- mass above the diagonal.
function M.same_token_score(src, tokens, opts)
  local fn = "analysis.same_token_score"
  opts = U.check_opts(fn, opts, { query_tokens = true, query = true, causal = true })
  local pats = patterns_of(src, fn)
  local B, Tn = pats[1]:shape()[1], pats[1]:shape()[3]
  U.tokens(tokens, fn, "tokens")
  if tokens:shape()[1] ~= B or tokens:shape()[2] ~= Tn then
    U.fail(fn, "tokens are %s but the patterns are for batch %d and %d positions", U.shape_str(tokens), B, Tn)
  end
  local causal = opts.causal
  if causal == nil then causal = infer_causal(pats, Tn) end
  local pm = position_masks(Tn)
  local same = tokens:unsqueeze(3):eq(tokens:unsqueeze(2))          -- [B,T,T]
  local key = same * (1 - pm.diag)
  if causal then key = key * pm.before end
  local qm
  if opts.query_tokens then
    qm = T.zeros(B, Tn)
    for _, id in ipairs(U.int_list(opts.query_tokens, fn, "query_tokens")) do qm = qm + tokens:eq(id) end
    qm = qm:clamp(0, 1)
  elseif type(opts.query) == "function" then
    local toks = tokens:totable()
    local m = {}
    for b = 1, B do
      local row = {}
      for q = 1, Tn do row[q] = opts.query(b, q, toks) and 1 or 0 end
      m[b] = row
    end
    qm = T.tensor(m)
  elseif T.is_tensor(opts.query) then
    qm = opts.query:float()
  end
  local scores, count = M.attention_mass(pats, key, qm, fn)
  -- uniform attention over the allowed keys: (number of marked keys) / (number of allowed keys)
  local allowed = causal and T.arange(1, Tn + 1):float() or T.full({ Tn }, Tn)
  local qsel = qm or T.ones(B, Tn)
  local baseline = ((key:sum(3) / allowed) * qsel):sum():item() / count
  return scores, baseline, count
end

--- analysis.prev_token_score(cache_or_patterns) -> [n_layers, n_heads]: mass on key q-1, over queries 2..T
function M.prev_token_score(src)
  local fn = "analysis.prev_token_score"
  local pats = patterns_of(src, fn)
  local Tn = pats[1]:shape()[3]
  if Tn < 2 then U.fail(fn, "needs at least 2 positions") end
  local qm = T.ones(Tn)
  qm[1] = 0
  return (M.attention_mass(pats, position_masks(Tn).prev, qm, fn))
end

--- analysis.first_token_score(cache_or_patterns) -> [n_layers, n_heads]: mass on key 1, over queries 2..T
function M.first_token_score(src)
  local fn = "analysis.first_token_score"
  local pats = patterns_of(src, fn)
  local Tn = pats[1]:shape()[3]
  if Tn < 2 then U.fail(fn, "needs at least 2 positions") end
  local km = T.zeros(Tn, Tn)
  km:select(2, 1):fill_(1)
  local qm = T.ones(Tn)
  qm[1] = 0
  return (M.attention_mass(pats, km, qm, fn))
end

-- a [n_layers, n_heads] score tensor or nested table, as rows of numbers
local function score_rows(scores, fn)
  local t = T.is_tensor(scores) and scores:totable() or scores
  if type(t) ~= "table" or type(t[1]) ~= "table" or type(t[1][1]) ~= "number" then
    U.fail(fn, "expected scores [n_layers, n_heads] (a tensor or nested table), got %s",
      T.is_tensor(scores) and U.shape_str(scores) or type(scores))
  end
  return t
end

--- analysis.best_head(scores [n_layers, n_heads]) -> {layer (0-based), head (1-based), score}
-- the highest score; the first (lowest layer, then head) among equals
function M.best_head(scores)
  local best
  for l, row in ipairs(score_rows(scores, "analysis.best_head")) do
    for h, v in ipairs(row) do
      if not best or v > best.score then best = { layer = l - 1, head = h, score = v } end
    end
  end
  return best
end

--- analysis.heads_over(scores [n_layers, n_heads], threshold) -> list of {layer (0-based), head, score}
-- every head scoring at least threshold, highest first
function M.heads_over(scores, threshold)
  local fn = "analysis.heads_over"
  local rows = score_rows(scores, fn)
  threshold = U.num(threshold, fn, "threshold")
  local out = {}
  for l, row in ipairs(rows) do
    for h, v in ipairs(row) do
      if v >= threshold then out[#out + 1] = { layer = l - 1, head = h, score = v } end
    end
  end
  table.sort(out, function(a, b) return a.score > b.score end)
  return out
end

return M
