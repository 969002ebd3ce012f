-- milua.data.arithmetic: fully parenthesised +/- expressions with every intermediate value
-- (Matsumoto et al. 2023, "Tracing and Manipulating Intermediate Values in Neural Math
-- Problem Solvers").
--
-- Tokens are characters: digits, "+", "-", "(", ")", plus [CLS] and [PAD]; no spaces. A row is
-- [CLS] followed by the expression, padded with [PAD] to a fixed length. Token ids: digit d ->
-- d + 1, "+" 11, "-" 12, "(" 13, ")" 14, "[CLS]" 15, "[PAD]" 16.
--
-- Random trees follow the paper's generator: every call (the root included) returns a leaf
-- with probability leaf_p (0.2), and always at depth max_depth (the root has depth 0, so
-- max_depth = 2 allows two levels of operators); otherwise a node with two recursively drawn
-- children (left first) and "+" or "-" with equal chance. Leaves are integers uniform in
-- [lo, hi). Printed fully parenthesised: "((123-45)+678)"; a bare leaf prints as its digits.
--
-- The analysis template is (a-(b-c)) with a, b, c uniform in [lo, hi) of one fixed width w
-- (3 digits for [100, 1000)), so every instance puts the same role at the same position:
-- with [CLS] at position 1, a is at 3..2+w, b at 5+w..4+2w, c at 6+2w..5+3w.
-- Its traced values are a, b, c, b-c and the answer a-(b-c).
--
-- All randomness comes from milua.tensor's global generator (T.seed reproduces a set).
--
--   local arith = require "milua.data.arithmetic"
--   arith.vocab, arith.id[str], arith.n_vocab (16)
--   arith.tree({max_depth = 2, leaf_p = 0.2, lo = 100, hi = 1000}) -> a random tree:
--       leaf {value = n} or node {op = "+"|"-", left = tree, right = tree}
--   arith.leaf(n), arith.node(op, left, right)      build a tree by hand
--   arith.text(tree) -> "((123-45)+678)";  arith.evaluate(tree) -> its exact value
--   arith.max_length(max_depth, digits)  characters of the longest expression: a full tree of
--       depth max_depth (at most 20) with digits-wide leaves (at most 15) (21 for 2 and 3),
--       [CLS] not counted
--   arith.example(tree [, seq_len]) -> {
--       tree, text, value,
--       tokens  {ids}: [CLS] expression [PAD]... (seq_len of them; default 1 + #text)
--       nodes   every subtree in prefix order (root first, left before right):
--               {text, value, first, last (its token positions), leaf = bool,
--                height (1 for a leaf, 1 + the taller child's height otherwise)} }
--   arith.template(a, b, c [, seq_len]) -> the example of "(a-(b-c))" plus kind = "template",
--       a, b, c, values = {a =, b =, c =, ["b-c"] =, answer =}
--   arith.value_names                       {"a", "b", "c", "b-c", "answer"}
--   arith.template_layout(digits) -> {a = {positions}, b = {...}, c = {...}, length}
--       (positions include [CLS] at 1; length = 7 + 3 digits, [CLS] included)
--   arith.template_set(n, {lo = 100, hi = 1000, seq_len, exclude}) -> a set of n template
--       instances with distinct (a, b, c) whose texts are not in exclude (a set or a
--       {[text] = true} table)
--   arith.training_mix(n, {template_fraction = 0.5, max_depth = 2, leaf_p = 0.2, lo = 100,
--       hi = 1000, seq_len, exclude}) -> a set of n examples: round(n * template_fraction)
--       template instances and the rest random trees, in random order; no text in exclude
--       (so an analysis set passed as exclude is disjoint from the training mix, random trees
--       that happen to have the template's form included); each example's kind is "template"
--       or "tree"
--   A set is {examples = {...}, n, seq_len, tokens int32 [n, seq_len], target float32 [n]
--       (the exact values), texts = {[text] = true}}; a template set also has
--       values = {a = {...}, b = ..., c = ..., ["b-c"] = ..., answer = ...} (Lua lists).
--   arith.set(examples [, seq_len]) -> a set of the given examples
--   arith.decode(row [, {specials = true}]) -> the expression text ([CLS] and [PAD] left out
--       unless specials is set); row is a list of ids or a 1-D tensor

local T = require "milua.tensor"

local M = {}

M.vocab = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "-", "(", ")", "[CLS]", "[PAD]" }
M.id = {}
for i, s in ipairs(M.vocab) do M.id[s] = i end
M.n_vocab = #M.vocab
M.value_names = { "a", "b", "c", "b-c", "answer" }

local CLS, PAD = M.id["[CLS]"], M.id["[PAD]"]

local function fail(fname, fmt, ...)
  error("arithmetic." .. fname .. ": " .. string.format(fmt, ...), 3)
end

local MAX_DEPTH = 20     -- 2^20 leaves: deeper full trees are longer than any sequence
local MAX_DIGITS = 15    -- leaves are below hi <= 10^15

local function check_int(v, fname, what, min)
  if math.type(v) ~= "integer" or v < min then
    fail(fname, "%s must be an integer >= %d, got %s", what, min, tostring(v))
  end
end

local function check_opts(fname, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail(fname, "options must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not known[k] then fail(fname, "unknown option '%s'", tostring(k)) end
  end
  return opts
end

-- leaf range [lo, hi): non-negative integers, hi > lo; the digit count of hi - 1 bounds the width
local function leaf_range(fname, opts)
  local lo, hi = opts.lo or 100, opts.hi or 1000
  if math.type(lo) ~= "integer" or math.type(hi) ~= "integer" or lo < 0 or hi <= lo then
    fail(fname, "leaves need integers 0 <= lo < hi, got lo = %s, hi = %s", tostring(lo), tostring(hi))
  end
  if hi > 10 ^ 15 then fail(fname, "hi must be at most 10^15, got %s", tostring(hi)) end
  return lo, hi
end

function M.leaf(n)
  if math.type(n) ~= "integer" or n < 0 then fail("leaf", "a leaf is a non-negative integer, got %s", tostring(n)) end
  return { value = n }
end

function M.node(op, left, right)
  if op ~= "+" and op ~= "-" then fail("node", "op must be \"+\" or \"-\", got %s", tostring(op)) end
  if type(left) ~= "table" or type(right) ~= "table" then fail("node", "left and right must be trees") end
  return { op = op, left = left, right = right }
end

local function draw(depth, max_depth, leaf_p, lo, hi)
  if T.random() < leaf_p or depth >= max_depth then return { value = T.random(lo, hi - 1) } end
  local left = draw(depth + 1, max_depth, leaf_p, lo, hi)
  local right = draw(depth + 1, max_depth, leaf_p, lo, hi)
  return { op = T.random(2) == 1 and "+" or "-", left = left, right = right }
end

function M.tree(opts)
  opts = check_opts("tree", opts, { max_depth = true, leaf_p = true, lo = true, hi = true })
  local max_depth, leaf_p = opts.max_depth or 2, opts.leaf_p or 0.2
  check_int(max_depth, "tree", "max_depth", 0)
  if max_depth > MAX_DEPTH then fail("tree", "max_depth must be at most %d, got %d", MAX_DEPTH, max_depth) end
  if type(leaf_p) ~= "number" or not (leaf_p >= 0 and leaf_p <= 1) then
    fail("tree", "leaf_p must be a probability in [0, 1], got %s", tostring(leaf_p))
  end
  local lo, hi = leaf_range("tree", opts)
  return draw(0, max_depth, leaf_p, lo, hi)
end

local function is_tree(t)
  if type(t) ~= "table" then return false end
  if t.op == nil then return math.type(t.value) == "integer" end
  return (t.op == "+" or t.op == "-") and is_tree(t.left) and is_tree(t.right)
end

local function text_of(t)
  if t.op == nil then return tostring(t.value) end
  return "(" .. text_of(t.left) .. t.op .. text_of(t.right) .. ")"
end

local function value_of(t)
  if t.op == nil then return t.value end
  local l, r = value_of(t.left), value_of(t.right)
  return t.op == "+" and l + r or l - r
end

function M.text(tree)
  if not is_tree(tree) then fail("text", "expected a tree from arithmetic.tree, leaf or node") end
  return text_of(tree)
end

function M.evaluate(tree)
  if not is_tree(tree) then fail("evaluate", "expected a tree from arithmetic.tree, leaf or node") end
  return value_of(tree)
end

function M.max_length(max_depth, digits)
  check_int(max_depth, "max_length", "max_depth", 0)
  check_int(digits, "max_length", "digits", 1)
  -- bounded as tree() and the leaf range are, so that 1 << max_depth cannot wrap
  if max_depth > MAX_DEPTH then fail("max_length", "max_depth must be at most %d, got %d", MAX_DEPTH, max_depth) end
  if digits > MAX_DIGITS then fail("max_length", "digits must be at most %d, got %d", MAX_DIGITS, digits) end
  local leaves = 1 << max_depth
  return leaves * digits + 3 * (leaves - 1)      -- each internal node adds "(", op, ")"
end

-- every subtree in prefix order with its token span; pos is the token position of t's first
-- character ([CLS] occupies position 1)
local function collect_nodes(t, pos, out)
  local entry = { value = value_of(t), first = pos, leaf = t.op == nil }
  out[#out + 1] = entry
  local text
  if t.op == nil then
    text = tostring(t.value)
    entry.height = 1
  else
    local lt, lh = collect_nodes(t.left, pos + 1, out)
    local rt, rh = collect_nodes(t.right, pos + 2 + #lt, out)
    text = "(" .. lt .. t.op .. rt .. ")"
    entry.height = 1 + math.max(lh, rh)
  end
  entry.text, entry.last = text, pos + #text - 1
  return text, entry.height
end

local function make_example(tree, seq_len, fname)
  local nodes = {}
  local text = collect_nodes(tree, 2, nodes)
  seq_len = seq_len or #text + 1
  if math.type(seq_len) ~= "integer" or seq_len < #text + 1 then
    fail(fname, "seq_len must be an integer >= %d for \"%s\" ([CLS] + %d characters), got %s",
      #text + 1, text, #text, tostring(seq_len))
  end
  local tokens = { CLS }
  for i = 1, #text do tokens[i + 1] = M.id[text:sub(i, i)] end
  for i = #text + 2, seq_len do tokens[i] = PAD end
  return { tree = tree, text = text, value = nodes[1].value, tokens = tokens, nodes = nodes }
end

function M.example(tree, seq_len)
  if not is_tree(tree) then fail("example", "expected a tree from arithmetic.tree, leaf or node") end
  return make_example(tree, seq_len, "example")
end

local function template_example(a, b, c, seq_len, fname)
  local ex = make_example({ op = "-", left = { value = a }, right = { op = "-", left = { value = b }, right = { value = c } } },
    seq_len, fname)
  ex.a, ex.b, ex.c, ex.kind = a, b, c, "template"
  ex.values = { a = a, b = b, c = c, ["b-c"] = b - c, answer = a - (b - c) }
  return ex
end

function M.template(a, b, c, seq_len)
  for _, v in ipairs({ { a, "a" }, { b, "b" }, { c, "c" } }) do
    if math.type(v[1]) ~= "integer" or v[1] < 0 then
      fail("template", "%s must be a non-negative integer, got %s", v[2], tostring(v[1]))
    end
  end
  local w = #tostring(a)
  if #tostring(b) ~= w or #tostring(c) ~= w then
    fail("template", "a, b, c must have the same number of digits (positions stay fixed), got %d, %d, %d",
      a, b, c)
  end
  return template_example(a, b, c, seq_len, "template")
end

function M.template_layout(digits)
  check_int(digits, "template_layout", "digits", 1)
  local w = digits
  local function span(first) local p = {} for i = 0, w - 1 do p[#p + 1] = first + i end return p end
  return { a = span(3), b = span(5 + w), c = span(6 + 2 * w), length = 7 + 3 * w }
end

local function exclusion(exclude, fname)
  if exclude == nil then return {} end
  if type(exclude) ~= "table" then fail(fname, "exclude must be a set or a {[text] = true} table, got %s", type(exclude)) end
  return exclude.texts or exclude
end

function M.set(examples, seq_len)
  if type(examples) ~= "table" or #examples == 0 then fail("set", "expected a non-empty list of examples") end
  local L = seq_len or 0
  if seq_len == nil then for _, e in ipairs(examples) do L = math.max(L, #e.tokens) end end
  local rows, target, texts = {}, {}, {}
  for i, e in ipairs(examples) do
    if type(e) ~= "table" or type(e.tokens) ~= "table" then fail("set", "entry %d is not an example", i) end
    if #e.tokens > L then fail("set", "example %d has %d tokens, more than seq_len %d", i, #e.tokens, L) end
    local r = {}
    for p = 1, L do r[p] = e.tokens[p] or PAD end
    rows[i], target[i], texts[e.text] = r, e.value, true
  end
  return { examples = examples, n = #examples, seq_len = L, tokens = T.tensor(rows, "int32"),
    target = T.tensor(target), texts = texts }
end

-- width-w template leaves: [lo, hi) must not mix widths
local function template_range(fname, opts)
  local lo, hi = leaf_range(fname, opts)
  local w = #tostring(lo)
  if #tostring(hi - 1) ~= w then
    fail(fname, "template leaves must share one width: [%d, %d) mixes %d and %d digits", lo, hi, w, #tostring(hi - 1))
  end
  return lo, hi, w
end

-- n distinct template triples not in `excluded`; refuses a request the range cannot meet
-- (rejection sampling then terminates: at least n triples remain)
local function template_list(n, lo, hi, seq_len, excluded, fname)
  local span = hi - lo
  local available = span * span * span
  for text in pairs(excluded) do
    local a, b, c = tostring(text):match("^%((%d+)%-%((%d+)%-(%d+)%)%)$")
    a, b, c = tonumber(a), tonumber(b), tonumber(c)
    if a and a >= lo and a < hi and b >= lo and b < hi and c >= lo and c < hi then available = available - 1 end
  end
  if n > available then
    fail(fname, "%d distinct instances is too many: leaves in [%d, %d) leave %d template instances outside exclude",
      n, lo, hi, available)
  end
  local out, seen = {}, {}
  while #out < n do
    local a, b, c = T.random(lo, hi - 1), T.random(lo, hi - 1), T.random(lo, hi - 1)
    local key = a .. "-(" .. b .. "-" .. c .. ")"
    if not seen[key] then
      seen[key] = true
      local ex = template_example(a, b, c, seq_len, fname)
      if not excluded[ex.text] then out[#out + 1] = ex end
    end
  end
  return out
end

function M.template_set(n, opts)
  opts = check_opts("template_set", opts, { lo = true, hi = true, seq_len = true, exclude = true })
  check_int(n, "template_set", "n", 1)
  local lo, hi, w = template_range("template_set", opts)
  local seq_len = opts.seq_len or M.template_layout(w).length
  local set = M.set(template_list(n, lo, hi, seq_len, exclusion(opts.exclude, "template_set"), "template_set"), seq_len)
  set.values = {}
  for _, name in ipairs(M.value_names) do
    local v = {}
    for i, e in ipairs(set.examples) do v[i] = e.values[name] end
    set.values[name] = v
  end
  return set
end

function M.training_mix(n, opts)
  opts = check_opts("training_mix", opts, { template_fraction = true, max_depth = true, leaf_p = true, lo = true,
    hi = true, seq_len = true, exclude = true })
  check_int(n, "training_mix", "n", 1)
  local frac = opts.template_fraction or 0.5
  if type(frac) ~= "number" or not (frac >= 0 and frac <= 1) then
    fail("training_mix", "template_fraction must be in [0, 1], got %s", tostring(frac))
  end
  local max_depth = opts.max_depth or 2
  check_int(max_depth, "training_mix", "max_depth", 0)
  if max_depth > MAX_DEPTH then fail("training_mix", "max_depth must be at most %d, got %d", MAX_DEPTH, max_depth) end
  local lo, hi = leaf_range("training_mix", opts)
  local digits = #tostring(hi - 1)
  local seq_len = opts.seq_len or 1 + M.max_length(math.max(max_depth, 2), digits)
  if math.type(seq_len) ~= "integer" or seq_len < 1 + M.max_length(max_depth, digits) then
    fail("training_mix", "seq_len must be an integer >= %d (the longest depth-%d expression with %d-digit leaves, " ..
      "plus [CLS]), got %s", 1 + M.max_length(max_depth, digits), max_depth, digits, tostring(seq_len))
  end
  local excluded = exclusion(opts.exclude, "training_mix")
  local n_template = math.floor(n * frac + 0.5)
  local list = {}
  if n_template > 0 then
    local tlo, thi = template_range("training_mix", opts)
    list = template_list(n_template, tlo, thi, seq_len, excluded, "training_mix")
  end
  while #list < n do
    local ex = make_example(M.tree({ max_depth = max_depth, leaf_p = opts.leaf_p, lo = lo, hi = hi }), seq_len, "training_mix")
    ex.kind = "tree"
    if not excluded[ex.text] then list[#list + 1] = ex end
  end
  for i = n, 2, -1 do                       -- Fisher-Yates: templates and trees interleaved
    local j = T.random(1, i)
    list[i], list[j] = list[j], list[i]
  end
  return M.set(list, seq_len)
end

function M.decode(row, opts)
  opts = check_opts("decode", opts, { specials = true })
  if T.is_tensor(row) then
    if row:dim() ~= 1 then fail("decode", "expected a 1-D row, got a %d-D tensor", row:dim()) end
    row = row:totable()
  end
  if type(row) ~= "table" then fail("decode", "expected a list of token ids or a 1-D tensor") end
  local parts = {}
  for i, t in ipairs(row) do
    local s = M.vocab[math.tointeger(t) or -1]
    if s == nil then fail("decode", "token %d is %s, not an id in 1..%d", i, tostring(t), M.n_vocab) end
    if opts.specials or (t ~= CLS and t ~= PAD) then parts[#parts + 1] = s end
  end
  return table.concat(parts)
end

return M
