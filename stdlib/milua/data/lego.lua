-- milua.data.lego: the LEGO task (Zhang et al. 2022, "Unveiling Transformers with LEGO").
--
-- Group Z2 on values {0, 1}; operations `val` (identity) and `not` (negation). An example
-- with n variables draws values v_1..v_n as fair coins and n distinct letters x_1..x_n,
-- and writes the chain
--     x_1 = val v_1 ,      x_i = (val if v_i == v_(i-1) else not) x_(i-1) ,
-- with the clauses shuffled uniformly (or in chain order with ordered = true). Every clause
-- is 5 tokens; the sequence is [CLS] clause ... clause [SEP], 5n + 2 tokens.
-- The supervised positions are the left-hand variables, labelled with their values; the
-- variable x_i has chain depth i - 1 (0 for the clause with the literal).
-- All randomness comes from milua.tensor's global generator (T.seed reproduces a batch).
--
--   local lego = require "milua.data.lego"
--   lego.vocab            {"a", ..., "z", "=", "val", "not", "0", "1", ",", "[CLS]", "[SEP]", "[PAD]"}
--   lego.id[str]          1-based token id (letters 1..26, "=" 27, ..., "[SEP]" 34, "[PAD]" 35)
--   lego.n_vocab          35
--
--   lego.example(n_var [, {ordered = bool}]) -> a Lua table
--     tokens    {ids}, 5 n_var + 2 of them
--     n_var
--     values    {v_1..v_n}  chain order, 0/1
--     names     {x_1..x_n}  chain order, letters
--     order     order[k] = chain index of the k-th clause in the sequence
--     lhs_pos   lhs_pos[i] = token position of x_i's defining occurrence (1-based)
--     depth_at  {[pos] = depth} for the n supervised positions
--     value_at  {[pos] = value} for the same positions
--
--   lego.batch(B, n_var [, opts]) -> table of tensors [B, L]   (B * L at most T.max_table_numbers())
--     opts.ordered        keep chain order (default false: shuffled)
--     opts.n_var_choices  list of chain lengths; each example draws one uniformly
--                         (n_var may then be nil; a curriculum mixes lengths this way)
--     opts.n_train_var    supervise only depths < n_train_var (default: all)
--     opts.seq_len        pad every row to this length with [PAD]
--                         (default 5 * max n_var + 2; shorter is an error)
--     tokens     int32   token ids
--     targets    int32   1 for value 0, 2 for value 1 at supervised positions, 1 elsewhere
--     mask       float32 1 at supervised positions with depth < n_train_var, else 0
--     eval_mask  float32 1 at every supervised position
--     depth      int32   chain depth at supervised positions, -1 elsewhere
--     n_var      Lua list of each row's chain length
--     examples   Lua list of the lego.example tables behind each row
--
--   lego.decode(row [, {specials = true}]) -> "a = val 1 , b = not a ,"
--     row: a list of ids or a 1-D tensor; [CLS], [SEP] and [PAD] are left out unless
--     specials is set.
--   lego.resolve(row_or_text) -> {name = value}, {name = depth}
--     an evaluator that knows nothing of the generator: it parses the clause text and
--     follows each variable to its literal. Errors on malformed or cyclic chains.

local T = require "milua.tensor"

local M = {}

local letters = {}
for c = string.byte("a"), string.byte("z") do letters[#letters + 1] = string.char(c) end

M.vocab = {}
for i, l in ipairs(letters) do M.vocab[i] = l end
for _, s in ipairs({ "=", "val", "not", "0", "1", ",", "[CLS]", "[SEP]", "[PAD]" }) do
  M.vocab[#M.vocab + 1] = s
end
M.id = {}
for i, s in ipairs(M.vocab) do M.id[s] = i end
M.n_vocab = #M.vocab

local ID = M.id
local CLAUSE = 5

local function check_n(n_var, fname)
  if math.type(n_var) ~= "integer" or n_var < 1 or n_var > #letters then
    error("lego." .. fname .. ": n_var must be an integer in 1.." .. #letters .. ", got " .. tostring(n_var), 3)
  end
end

-- Uniform random permutation of 1..n (Fisher-Yates), first k entries only when k given.
local function permutation(n, k)
  local p = {}
  for i = 1, n do p[i] = i end
  for i = 1, (k or n) do
    local j = T.random(i, n)
    p[i], p[j] = p[j], p[i]
  end
  return p
end

local function make_example(n_var, ordered)
  local values = {}
  for i = 1, n_var do values[i] = T.random(0, 1) end
  local pick = permutation(#letters, n_var)
  local names = {}
  for i = 1, n_var do names[i] = letters[pick[i]] end
  local order
  if ordered then
    order = {}
    for i = 1, n_var do order[i] = i end
  else
    order = permutation(n_var)
  end

  local tokens = { ID["[CLS]"] }
  local lhs_pos, depth_at, value_at = {}, {}, {}
  for k = 1, n_var do
    local i = order[k]
    local pos = #tokens + 1
    lhs_pos[i] = pos
    depth_at[pos] = i - 1
    value_at[pos] = values[i]
    tokens[pos] = ID[names[i]]
    tokens[pos + 1] = ID["="]
    if i == 1 then
      tokens[pos + 2] = ID["val"]
      tokens[pos + 3] = ID[tostring(values[1])]
    else
      tokens[pos + 2] = values[i] == values[i - 1] and ID["val"] or ID["not"]
      tokens[pos + 3] = ID[names[i - 1]]
    end
    tokens[pos + 4] = ID[","]
  end
  tokens[#tokens + 1] = ID["[SEP]"]
  return {
    tokens = tokens, n_var = n_var, values = values, names = names, order = order,
    lhs_pos = lhs_pos, depth_at = depth_at, value_at = value_at,
  }
end

function M.example(n_var, opts)
  check_n(n_var, "example")
  opts = opts or {}
  return make_example(n_var, opts.ordered and true or false)
end

function M.batch(batch_size, n_var, opts)
  opts = opts or {}
  if math.type(batch_size) ~= "integer" or batch_size < 1 then
    error("lego.batch: batch_size must be a positive integer, got " .. tostring(batch_size), 2)
  end
  local choices = opts.n_var_choices
  if choices ~= nil then
    if type(choices) ~= "table" or #choices == 0 then
      error("lego.batch: n_var_choices must be a non-empty list of chain lengths", 2)
    end
    for _, c in ipairs(choices) do check_n(c, "batch") end
  else
    check_n(n_var, "batch")
    choices = { n_var }
  end
  local max_n = 0
  for _, c in ipairs(choices) do if c > max_n then max_n = c end end
  local seq_len = opts.seq_len or CLAUSE * max_n + 2
  if math.type(seq_len) ~= "integer" or seq_len < CLAUSE * max_n + 2 then
    error("lego.batch: seq_len " .. tostring(seq_len) .. " is shorter than the longest chain (" ..
      (CLAUSE * max_n + 2) .. " tokens for n_var = " .. max_n .. ")", 2)
  end
  local n_train = opts.n_train_var or max_n
  if math.type(n_train) ~= "integer" or n_train < 0 then
    error("lego.batch: n_train_var must be a non-negative integer, got " .. tostring(n_train), 2)
  end
  local ordered = opts.ordered and true or false
  -- the rows are Lua tables grown a number at a time: a size they cannot reach is refused
  -- before the first example, not after minutes and gigabytes
  if batch_size > T.max_table_numbers() // seq_len then
    error(string.format("lego.batch: a batch of %d examples of %d tokens is more numbers than Lua tables " ..
      "hold on this machine (T.max_table_numbers() = %d)", batch_size, seq_len, T.max_table_numbers()), 2)
  end

  local tok, tgt, mask, emask, depth = {}, {}, {}, {}, {}
  local examples, nvars = {}, {}
  local PAD = ID["[PAD]"]
  for b = 1, batch_size do
    local n = #choices == 1 and choices[1] or choices[T.random(1, #choices)]
    local ex = make_example(n, ordered)
    examples[b], nvars[b] = ex, n
    local trow, grow, mrow, erow, drow = {}, {}, {}, {}, {}
    for p = 1, seq_len do
      trow[p] = ex.tokens[p] or PAD
      local d = ex.depth_at[p]
      if d then
        grow[p] = ex.value_at[p] + 1
        mrow[p] = d < n_train and 1 or 0
        erow[p] = 1
        drow[p] = d
      else
        grow[p], mrow[p], erow[p], drow[p] = 1, 0, 0, -1
      end
    end
    tok[b], tgt[b], mask[b], emask[b], depth[b] = trow, grow, mrow, erow, drow
  end
  return {
    tokens = T.tensor(tok, "int32"),
    targets = T.tensor(tgt, "int32"),
    mask = T.tensor(mask, "float32"),
    eval_mask = T.tensor(emask, "float32"),
    depth = T.tensor(depth, "int32"),
    n_var = nvars,
    examples = examples,
  }
end

-- A row given as a tensor or as a Lua list, returned as a Lua list of ids.
local function row_list(row, fname)
  if type(row) == "table" and getmetatable(row) == nil then return row end
  local ok, t = pcall(function() return row:totable() end)
  if not ok or type(t) ~= "table" then
    error("lego." .. fname .. ": expected a list of token ids or a 1-D tensor", 3)
  end
  if type(t[1]) == "table" then
    error("lego." .. fname .. ": expected one row (1-D), got a tensor of more dimensions", 3)
  end
  return t
end

local specials = { ["[CLS]"] = true, ["[SEP]"] = true, ["[PAD]"] = true }

function M.decode(row, opts)
  local ids = row_list(row, "decode")
  local keep = opts and opts.specials
  local words = {}
  for p, id in ipairs(ids) do
    local s = M.vocab[id]
    if not s then
      error("lego.decode: token id " .. tostring(id) .. " at position " .. p ..
        " is not in the vocabulary (1.." .. #M.vocab .. ")", 2)
    end
    if keep or not specials[s] then words[#words + 1] = s end
  end
  return table.concat(words, " ")
end

-- Independent evaluator: text -> clauses -> values by following each chain to its literal.
function M.resolve(input)
  local text = type(input) == "string" and input or M.decode(row_list(input, "resolve"))
  local defs = {}
  for clause in text:gmatch("[^,]+") do
    local w = {}
    for word in clause:gmatch("%S+") do
      if not specials[word] then w[#w + 1] = word end
    end
    if #w > 0 then
      if #w ~= 4 or w[2] ~= "=" or (w[3] ~= "val" and w[3] ~= "not") or not w[1]:match("^%l$") then
        error("lego.resolve: malformed clause '" .. clause:gsub("^%s+", ""):gsub("%s+$", "") .. "'", 2)
      end
      if defs[w[1]] then error("lego.resolve: variable " .. w[1] .. " is defined twice", 2) end
      defs[w[1]] = { op = w[3], arg = w[4] }
    end
  end
  local value, depth = {}, {}
  for name in pairs(defs) do
    -- walk to a literal, remembering the path, then unwind it
    local path, seen = {}, {}
    local cur = name
    local v, d
    while true do
      if value[cur] ~= nil then v, d = value[cur], depth[cur]; break end
      if seen[cur] then error("lego.resolve: cycle through variable " .. cur, 2) end
      seen[cur] = true
      local def = defs[cur]
      if not def then error("lego.resolve: variable " .. cur .. " is used but never defined", 2) end
      path[#path + 1] = cur
      if def.arg == "0" or def.arg == "1" then
        local lit = tonumber(def.arg)
        v = def.op == "val" and lit or 1 - lit
        d = 0
        value[cur], depth[cur] = v, d
        path[#path] = nil
        break
      end
      cur = def.arg
    end
    for k = #path, 1, -1 do
      local nm = path[k]
      v = defs[nm].op == "val" and v or 1 - v
      d = d + 1
      value[nm], depth[nm] = v, d
    end
  end
  return value, depth
end

return M
