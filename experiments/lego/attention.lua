-- lego.attention: the LEGO head scores, written in milua.analysis's vocabulary (every score is an
-- analysis.attention_mass: the mean over selected queries of the attention on marked keys).
--
--   local attention = require "lego.attention"
--   attention.patterns(model, tokens)            -> cache holding every layer's hook_pattern
--   attention.assoc_score(cache, tokens)         -> scores [L, H], uniform baseline
-- (cache: a model's cache with hook_pattern, or a list of [B, H, T, T] patterns, one per layer)
--   attention.assoc_by_role(cache, tokens, defining) -> {defining = [L, H], operand = [L, H], n = {...}}
--   attention.assoc(model, set, {n = 256})       -> scores, baseline, by_role on a set's first n rows
--   attention.offset_score(cache, tokens, offsets) -> [L, H]
local T = require "milua.tensor"
local analysis = require "milua.analysis"

local A = {}

-- the association score's masks: key[b,q,k] = 1 when k ~= q holds q's token; query[b,q] = 1 when
-- q holds a variable (ids 1..26, the letters) that occurs elsewhere too (every variable but the
-- chain's last one: a variable with no twin has nothing identical to attend to)
local function assoc_masks(tokens)
  local Tn = tokens:shape()[2]
  local ar = T.arange(1, Tn + 1)
  local key = tokens:unsqueeze(3):eq(tokens:unsqueeze(2)) * (1 - ar:unsqueeze(2):eq(ar:unsqueeze(1)))
  local query = tokens:le(26) * key:sum(3):gt(0)
  return key, query
end

--- attention.patterns(model, tokens) -> a cache with blocks.L.attn.hook_pattern for every layer
function A.patterns(model, tokens)
  local _, cache = T.no_grad(function() return model:run_with_cache(tokens, "hook_pattern") end)
  return cache
end

--- attention.assoc_score(cache, tokens) -> scores [L, H], baseline
-- The association score (analysis.same_token_score, encoder): over the query positions holding a
-- variable that occurs elsewhere, the attention mass on the OTHER positions holding the identical
-- token, averaged; the baseline is that mass under uniform attention over all T keys.
function A.assoc_score(cache, tokens)
  local _, q = assoc_masks(tokens)
  local s, base = analysis.same_token_score(cache, tokens, { query = q, causal = false })
  return s, base
end

--- attention.assoc_by_role(cache, tokens, defining) -> {defining = [L, H], operand = [L, H], n = {defining =, operand =}}
-- The association score split by the role of the query: `defining` [B, T] is 1 at the left-hand
-- (defining) occurrence of each variable (a LEGO batch's eval_mask); every other variable position
-- is its use as an operand. Every variable with a twin has one of each, so the score is the mean of
-- the two; a head that only fetches a variable's value from its defining clause (operand queries
-- to the defining occurrence) scores at most 0.5. A role with no query scores 0.
function A.assoc_by_role(cache, tokens, defining)
  local key, q = assoc_masks(tokens)
  local def = q * defining:float()
  local op = q - def
  local out = { n = { defining = def:sum():item(), operand = op:sum():item() } }
  for role, mask in pairs({ defining = def, operand = op }) do
    if out.n[role] > 0 then
      out[role] = analysis.attention_mass(cache, key, mask)
    else
      local L, first = 0, T.is_tensor(cache[1]) and cache[1] or cache["blocks.0.attn.hook_pattern"]
      if T.is_tensor(cache[1]) then L = #cache
      else while cache["blocks." .. L .. ".attn.hook_pattern"] do L = L + 1 end end
      out[role] = T.zeros(L, first:shape()[2])
    end
  end
  return out
end

--- attention.assoc(model, set, {n = 256}) -> scores [L, H], baseline, by_role, on the first n sequences
function A.assoc(model, set, o)
  local n = math.min((o and o.n) or 256, set.tokens:shape()[1])
  local tokens = set.tokens:narrow(1, 1, n)
  local cache = A.patterns(model, tokens)
  local scores, baseline = A.assoc_score(cache, tokens)
  return scores, baseline, A.assoc_by_role(cache, tokens, set.eval_mask:narrow(1, 1, n))
end

--- attention.offset_score(cache, tokens, offsets) -> [L, H]: the mass variable queries put on the
-- keys at the given relative offsets (q + o): a position-based head scores high here whatever the order
function A.offset_score(cache, tokens, offsets)
  local Tn = tokens:shape()[2]
  local ar = T.arange(1, Tn + 1)
  local key = T.zeros(Tn, Tn)
  for _, off in ipairs(offsets) do key = key + ar:unsqueeze(1):eq(ar:unsqueeze(2) + off) end
  return (analysis.attention_mass(cache, key, tokens:le(26) * tokens:ge(1)))
end

return A
