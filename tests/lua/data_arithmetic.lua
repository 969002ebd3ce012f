-- Tests of milua.data.arithmetic: every value recomputed by an evaluator of the decoded
-- string that knows nothing of the generator, the generator's distribution against
-- probabilities derived by hand, the fixed template layout, the disjointness of the analysis
-- set from the training mix, determinism and the error messages.
local test = require "milua.test"
local T = require "milua.tensor"
local arith = require "milua.data.arithmetic"

test.is(arith.n_vocab, 16, "16 token ids")
test.is({ arith.id["0"], arith.id["9"], arith.id["+"], arith.id["-"], arith.id["("], arith.id[")"],
  arith.id["[CLS]"], arith.id["[PAD]"] }, { 1, 10, 11, 12, 13, 14, 15, 16 }, "ids: digit+1, + - ( ) [CLS] [PAD]")

-- An independent recursive-descent evaluator of "((12-3)+4)": returns the value and the list
-- of every subexpression {text, value, first, last} in prefix order (positions in the string).
local function parse(s)
  local list, i = {}, 1
  local expr
  function expr()
    local first = i
    local entry = {}
    list[#list + 1] = entry
    local v
    if s:sub(i, i) == "(" then
      i = i + 1
      local l = expr()
      local op = s:sub(i, i)
      assert(op == "+" or op == "-", "operator expected at " .. i .. " in " .. s)
      i = i + 1
      local r = expr()
      assert(s:sub(i, i) == ")", "')' expected at " .. i .. " in " .. s)
      i = i + 1
      v = op == "+" and l + r or l - r
    else
      local d = s:match("^%d+", i)
      assert(d, "a number expected at " .. i .. " in " .. s)
      i = i + #d
      v = tonumber(d)
    end
    entry.value, entry.first, entry.last, entry.text = v, first, i - 1, s:sub(first, i - 1)
    return v
  end
  local v = expr()
  assert(i == #s + 1, "trailing characters in " .. s)
  return v, list
end

-- random trees: value, every node, spans and heights against the independent evaluator
do
  T.seed(3)
  local problem, n_leaf_root, n_full, n_plus, n_ops, n = nil, 0, 0, 0, 0, 4000
  for k = 1, n do
    local tree = arith.tree({ max_depth = 2, leaf_p = 0.2, lo = 100, hi = 1000 })
    local ex = arith.example(tree, 22)
    local s = arith.decode(ex.tokens)
    local v, nodes = parse(s)
    if s ~= ex.text then problem = problem or ("text " .. ex.text .. " decodes as " .. s) end
    if v ~= ex.value then problem = problem or (s .. " = " .. v .. ", generator says " .. ex.value) end
    if #nodes ~= #ex.nodes then problem = problem or (s .. ": node count") end
    for j, nd in ipairs(nodes) do
      local g = ex.nodes[j] or {}
      -- token positions are string positions + 1 ([CLS] first)
      if g.value ~= nd.value or g.text ~= nd.text or g.first ~= nd.first + 1 or g.last ~= nd.last + 1 then
        problem = problem or (s .. ": node " .. j .. " " .. nd.text .. " disagrees")
      end
      if g.leaf and (nd.value < 100 or nd.value > 999) then problem = problem or (s .. ": leaf out of range") end
    end
    -- heights: a leaf is 1; the root of a depth-2 limit is at most 3
    if ex.nodes[1].height > 3 then problem = problem or (s .. ": deeper than max_depth 2") end
    if #ex.tokens ~= 22 or ex.tokens[1] ~= arith.id["[CLS]"] then problem = problem or (s .. ": row layout") end
    for p = #s + 2, 22 do if ex.tokens[p] ~= arith.id["[PAD]"] then problem = problem or (s .. ": padding") end end
    if #nodes == 1 then n_leaf_root = n_leaf_root + 1 end
    if #nodes == 7 then n_full = n_full + 1 end
    for _, c in s:gmatch("()[%+%-]") do n_ops = n_ops + 1 end
    for _ in s:gmatch("%+") do n_plus = n_plus + 1 end
  end
  test.is(problem, nil, "4000 random trees: value and every intermediate value match an independent evaluator")
  -- by hand: P(bare leaf) = 0.2; P(full depth-2 tree) = 0.8 (root) * 0.8 * 0.8 (both children) = 0.512
  local function within(p_hat, p, count, desc)
    local sd = math.sqrt(p * (1 - p) / count)
    test.ok(math.abs(p_hat - p) < 4.5 * sd, string.format("%s: %.4f vs %.4f (4.5 sd = %.4f)", desc, p_hat, p, 4.5 * sd))
  end
  within(n_leaf_root / n, 0.2, n, "bare leaves at the root")
  within(n_full / n, 0.512, n, "full depth-2 trees")
  within(n_plus / n_ops, 0.5, n_ops, "'+' among operators")
end

-- max_depth 0 gives bare leaves; leaf_p 1 too; leaf_p 0 gives full trees
do
  T.seed(4)
  test.is(arith.tree({ max_depth = 0 }).op, nil, "max_depth 0: a leaf")
  test.is(arith.tree({ leaf_p = 1 }).op, nil, "leaf_p 1: a leaf")
  local ex = arith.example(arith.tree({ max_depth = 3, leaf_p = 0, lo = 10, hi = 100 }))
  test.is(#ex.nodes, 15, "leaf_p 0, max_depth 3: a full tree of 15 nodes")
  test.is(#ex.text, arith.max_length(3, 2), "a full tree has max_length characters")
  test.is(arith.max_length(2, 3), 21, "max_length(2, 3) = 21: ((aaa+bbb)-(ccc+ddd))")
end

-- hand-built trees
do
  local t = arith.node("-", arith.leaf(7), arith.node("+", arith.leaf(12), arith.leaf(30)))
  test.is(arith.text(t), "(7-(12+30))", "text")
  test.is(arith.evaluate(t), -35, "evaluate: 7 - 42")
  local ex = arith.template(512, 300, 999)
  test.is(ex.text, "(512-(300-999))", "template text")
  test.is(ex.values, { a = 512, b = 300, c = 999, ["b-c"] = -699, answer = 1211 }, "template values by hand")
  test.is(arith.decode(ex.tokens, { specials = true }), "[CLS](512-(300-999))", "decode with specials")
  test.is(ex.kind, "template", "kind")
end

-- the template: every role at the same position
do
  T.seed(5)
  local set = arith.template_set(300)
  local lay = arith.template_layout(3)
  test.is(lay, { a = { 3, 4, 5 }, b = { 8, 9, 10 }, c = { 12, 13, 14 }, length = 16 }, "layout for 3 digits")
  test.is(set.tokens:shape(), { 300, 16 }, "template rows are 16 tokens")
  test.is({ set.tokens:dtype(), set.target:dtype() }, { "int32", "float32" }, "dtypes")
  local rows, problem, seen = set.tokens:totable(), nil, {}
  local target = set.target:totable()
  for i, e in ipairs(set.examples) do
    local function digits(pos)
      local s = ""
      for _, p in ipairs(pos) do s = s .. arith.vocab[rows[i][p]] end
      return tonumber(s)
    end
    local a, b, c = digits(lay.a), digits(lay.b), digits(lay.c)
    local s = arith.decode(rows[i])
    local v, nodes = parse(s)
    local key = a .. "," .. b .. "," .. c
    if seen[key] then problem = problem or ("duplicate " .. key) end
    seen[key] = true
    if a ~= e.a or b ~= e.b or c ~= e.c then problem = problem or (s .. ": roles not at their positions") end
    if not s:match("^%(%d%d%d%-%(%d%d%d%-%d%d%d%)%)$") then problem = problem or (s .. ": not (a-(b-c))") end
    if a < 100 or b < 100 or c < 100 then problem = problem or (s .. ": a leaf below 100") end
    -- the traced values from the evaluator: nodes are root, a, (b-c), b, c
    local want = { a = nodes[2].value, b = nodes[4].value, c = nodes[5].value, ["b-c"] = nodes[3].value, answer = v }
    for _, name in ipairs(arith.value_names) do
      if set.values[name][i] ~= want[name] or e.values[name] ~= want[name] then
        problem = problem or (s .. ": value " .. name)
      end
    end
    if target[i] ~= v then problem = problem or (s .. ": target") end
  end
  test.is(problem, nil, "300 template instances: roles at fixed positions, distinct, values match the evaluator")
end

-- the training mix: exact template share, disjoint from the analysis set
do
  T.seed(6)
  local analysis = arith.template_set(1000)
  local mix = arith.training_mix(2000, { exclude = analysis })
  test.is(mix.tokens:shape(), { 2000, 22 }, "mix rows: 22 tokens (the longest depth-2 tree + [CLS])")
  local n_t, overlap, bad = 0, 0, nil
  local rows = mix.tokens:totable()
  for i, e in ipairs(mix.examples) do
    if e.kind == "template" then n_t = n_t + 1 end
    if analysis.texts[arith.decode(rows[i])] then overlap = overlap + 1 end
    local v = parse(arith.decode(rows[i]))
    if v ~= e.value then bad = bad or e.text end
  end
  test.is(n_t, 1000, "half the mix are template instances")
  test.is(overlap, 0, "no training expression is an analysis instance")
  test.is(bad, nil, "mix values match the evaluator")
  -- order is shuffled: the first 100 hold both kinds
  local first = {}
  for i = 1, 100 do first[mix.examples[i].kind] = true end
  test.ok(first.template and first.tree, "templates and trees are interleaved")
end

-- disjointness where collisions are forced: 1-digit leaves in [1, 4) have 27 triples
do
  T.seed(7)
  local analysis = arith.template_set(10, { lo = 1, hi = 4 })
  local mix = arith.training_mix(40, { lo = 1, hi = 4, template_fraction = 0.4, exclude = analysis })
  local overlap, n_t, form = 0, 0, 0
  for _, e in ipairs(mix.examples) do
    if analysis.texts[e.text] then overlap = overlap + 1 end
    if e.kind == "template" then n_t = n_t + 1 end
  end
  test.is(n_t, 16, "16 of 40 are templates (fraction 0.4)")
  -- random trees of the template's form are excluded too
  local trees = arith.training_mix(400, { lo = 1, hi = 4, template_fraction = 0, exclude = analysis })
  for _, e in ipairs(trees.examples) do
    if analysis.texts[e.text] then overlap = overlap + 1 end
    if e.text:match("^%(%d%-%(%d%-%d%)%)$") then form = form + 1 end
  end
  test.ok(form > 0, "random trees of the form (a-(b-c)) occur (" .. form .. ")")
  test.is(overlap, 0, "forced collisions: none of the 10 analysis instances (of 27 possible) is trained on")
  test.lives(function() arith.training_mix(17, { lo = 1, hi = 4, template_fraction = 1, exclude = analysis }) end,
    "all 17 remaining instances can be drawn")
  test.is(analysis.tokens:shape(), { 10, 10 }, "1-digit template rows: 7 + 3 + [CLS] = 10 tokens")
  test.throws(function() arith.training_mix(20, { lo = 1, hi = 4, template_fraction = 1, exclude = analysis }) end,
    "20 distinct instances is too many: leaves in [1, 4) leave 17 template instances outside exclude",
    "a request the leaf range cannot meet is refused")
end

-- determinism
do
  T.seed(11)
  local s1 = arith.training_mix(50)
  T.seed(11)
  local s2 = arith.training_mix(50)
  test.is(s1.tokens, s2.tokens, "same seed, same mix")
  T.seed(12)
  test.isnt(arith.training_mix(50).tokens, s1.tokens, "another seed, another mix")
end

-- errors a user can reach
test.throws(function() arith.tree({ leaf_p = 2 }) end, "arithmetic.tree: leaf_p must be a probability in [0, 1], got 2", "leaf_p > 1")
test.throws(function() arith.tree({ max_depth = -1 }) end, "max_depth must be an integer >= 0, got -1", "negative depth")
test.throws(function() arith.tree({ lo = 5, hi = 5 }) end, "leaves need integers 0 <= lo < hi, got lo = 5, hi = 5", "empty leaf range")
test.throws(function() arith.tree({ depth = 2 }) end, "unknown option 'depth'", "unknown option")
test.throws(function() arith.template_set(10, { lo = 10, hi = 1000 }) end, "[10, 1000) mixes 2 and 3 digits", "mixed widths in the template")
test.throws(function() arith.template(5, 10, 100) end, "same number of digits", "template digits differ")
test.throws(function() arith.template(-5, 1, 1) end, "a must be a non-negative integer, got -5", "negative leaf")
test.throws(function() arith.template_set(0) end, "n must be an integer >= 1, got 0", "n = 0")
test.throws(function() arith.example(arith.leaf(12345), 3) end, "seq_len must be an integer >= 6", "seq_len too short")
test.throws(function() arith.training_mix(10, { seq_len = 10 }) end, "seq_len must be an integer >= 22", "mix seq_len too short")
test.throws(function() arith.training_mix(10, { template_fraction = 1.5 }) end, "template_fraction must be in [0, 1]", "bad fraction")
test.throws(function() arith.decode({ 15, 17 }) end, "token 2 is 17, not an id in 1..16", "decode of a bad id")
test.throws(function() arith.node("*", arith.leaf(1), arith.leaf(2)) end, "op must be \"+\" or \"-\"", "bad operator")
test.throws(function() arith.evaluate({ op = "+" }) end, "expected a tree", "malformed tree")
test.throws(function() arith.training_mix(10, { exclude = 3 }) end, "exclude must be a set", "bad exclude")
-- 1 << 64 wraps to 0 in Lua: max_length(64, 2) once returned -3 instead of refusing
test.throws(function() arith.max_length(64, 2) end, "arithmetic.max_length: max_depth must be at most 20, got 64", "max_length depth 64")
test.throws(function() arith.max_length(21, 3) end, "arithmetic.max_length: max_depth must be at most 20, got 21", "max_length depth 21")
test.throws(function() arith.max_length(2, 1 << 62) end, "arithmetic.max_length: digits must be at most 15", "max_length huge digits")
test.is(arith.max_length(20, 15), (1 << 20) * 15 + 3 * ((1 << 20) - 1), "max_length at both bounds: 2^20 leaves of 15 digits and 2^20 - 1 nodes")
test.throws(function() arith.training_mix(10, { max_depth = 64 }) end, "arithmetic.training_mix: max_depth must be at most 20, got 64",
  "training_mix names itself for a depth past the bound")

test.done()
