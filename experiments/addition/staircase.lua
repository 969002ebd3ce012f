-- addition.staircase: the attention staircase (Quirke & Barez, fig. 3): which digit pair each
-- head reads while each answer digit is predicted.
--
--   local staircase = require "addition.staircase"
--   staircase.measure(model, tokens, n)   (fields below)
--
-- Conventions (as milua.data.addition): positions are 1-based; for n digits the question is
-- x_(n-1)..x_0 "+" y_(n-1)..y_0 "=" at positions 1..2n+2 and position 2n+1+k (k = 1..n+1)
-- predicts the k-th answer token, A_(n+1-k). "Digit" i below is the paper's: A_i has place
-- value 10^i; answer digits are listed most significant first (A_n .. A_0), as emitted.
local T = require "milua.tensor"
local evaluate = require "addition.evaluate"

local M = {}

--- staircase.measure(model, tokens, n) -> {pattern = [H, n+1, 3n+2] mean attention from the answer
---   positions (rows: A_n..A_0 predicted) to keys 1..3n+2; per answer position q and head h:
---   top_key[q][h] (position), top_key_label, key_mass (its weight), top_column[q][h] (the digit
---   pair x_j, y_j with the most weight: j, or false when that weight is below 0.5, i.e. the head
---   reads no pair there), top_column_mass; offset[h] (the most common i - j for a head reading
---   pair j while A_i is predicted), offset_hits[h] / offset_total[h] (positions where it holds);
---   moves[h] / move_total[h] (steps q -> q+1, both reading a pair, where the pair drops by
---   exactly one column); exact (answer positions where the heads read exactly the pairs i, i-1,
---   i-2 that exist)}
function M.measure(model, tokens, n)
  local _, cache = T.no_grad(function() return model:run_with_cache(tokens, "hook_pattern") end)
  local pat = cache["blocks.0.attn.hook_pattern"]:mean(1)          -- [H, T, T]
  local first, L = 2 * n + 2, 3 * n + 2
  local sub = pat:narrow(2, first, n + 1):narrow(3, 1, L):contiguous()   -- [H, n+1, L]
  local P = sub:totable()
  local H = #P
  local labels = evaluate.token_labels(n)
  local r = { pattern = sub, top_key = {}, top_key_label = {}, top_column = {}, top_column_mass = {},
    key_mass = {}, query_positions = {}, predicts = evaluate.digit_names(n), heads = H }
  for q = 1, n + 1 do
    r.query_positions[q] = first + q - 1
    r.top_key[q], r.top_key_label[q], r.top_column[q], r.top_column_mass[q], r.key_mass[q] = {}, {}, {}, {}, {}
    for h = 1, H do
      local row = P[h][q]
      local best, bk = -1, 0
      for k = 1, first + q - 1 do if row[k] > best then best, bk = row[k], k end end
      local cbest, cj = -1, 0
      for j = 0, n - 1 do
        local m = row[n - j] + row[2 * n + 1 - j]
        if m > cbest then cbest, cj = m, j end
      end
      r.top_key[q][h], r.top_key_label[q][h], r.key_mass[q][h] = bk, labels[bk], best
      r.top_column[q][h], r.top_column_mass[q][h] = cbest >= 0.5 and cj, cbest
    end
  end
  r.offset, r.offset_hits, r.offset_total, r.moves, r.move_total = {}, {}, {}, {}, {}
  for h = 1, H do
    local count, total = {}, 0
    for q = 1, n + 1 do
      local j = r.top_column[q][h]
      if j then
        local d = (n + 1 - q) - j
        count[d] = (count[d] or 0) + 1
        total = total + 1
      end
    end
    local best, bd = 0, false
    for d, c in pairs(count) do if c > best or (c == best and bd and d < bd) then best, bd = c, d end end
    r.offset[h], r.offset_hits[h], r.offset_total[h] = bd, best, total
    local m, mt = 0, 0
    for q = 1, n do
      local a, b = r.top_column[q][h], r.top_column[q + 1][h]
      if a and b then
        mt = mt + 1
        if a - b == 1 then m = m + 1 end
      end
    end
    r.moves[h], r.move_total[h] = m, mt
  end
  r.exact = 0
  for q = 1, n + 1 do
    local i = n + 1 - q
    local want, got = {}, {}
    for j = math.max(0, i - 2), math.min(i, n - 1) do want[j] = true end
    for h = 1, H do if r.top_column[q][h] then got[r.top_column[q][h]] = true end end
    local same_set = true
    for j in pairs(want) do if not got[j] then same_set = false end end
    for j in pairs(got) do if not want[j] then same_set = false end end
    if same_set then r.exact = r.exact + 1 end
  end
  return r
end

return M
