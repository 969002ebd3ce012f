-- Tests of milua.data.tree_paths: every example's path is the unique root-to-goal path (found by
-- a search written here, on the decoded text), the goal is a leaf, the tree is binary, the
-- positions are where the layout says, the edge order follows the example seed's parity, the
-- tokenizer and decoder round-trip the authors' worked example, and the draws have the
-- generator's distribution.
local test = require "milua.test"
local T = require "milua.tensor"
local tp = require "milua.data.tree_paths"

-- ---- vocabulary: the authors' scheme for N = 16 (their ids + 1) and a small N ----
do
  local v = tp.vocab(16)
  test.is(#v, 35, "vocab(16): 35 tokens, as the paper")
  test.is({ v[1], v[2], v[3], v[4], v[9], v[10], v[19], v[20], v[26], v[35] },
    { ",", ":", "|", ">10", ">15", ">0", ">9", "10", "0", "9" }, "vocab(16): ',' ':' '|', >10..>15, >0..>9, 10..15, 0..9")
  test.is(tp.n_vocab(6), 15, "n_vocab(6) = 3 + 2*6")
  test.is(tp.vocab(6), { ",", ":", "|", ">0", ">1", ">2", ">3", ">4", ">5", "0", "1", "2", "3", "4", "5" }, "vocab(6)")
  test.is({ tp.source_id(6, 0), tp.target_id(6, 0), tp.source_id(16, 10), tp.target_id(16, 9) }, { 10, 4, 20, 19 },
    "source_id / target_id")
  test.is({ tp.node_of(6, 4) }, { 0, "target" }, "node_of: a target token")
  test.is({ tp.node_of(6, 15) }, { 5, "source" }, "node_of: a source token")
  test.is(tp.node_of(6, 2), nil, "node_of: ':' is no node")
  local ids = tp.ids(16)
  local inverse = true
  for i, s in ipairs(v) do inverse = inverse and ids[s] == i end
  test.ok(inverse, "ids inverts vocab")
end

-- ---- the authors' worked example (seed 1234 of their notebook) ----
do
  local text = "10>3,10>14,3>7,3>1,7>6,6>13,7>5,1>15,15>9,14>4,14>8,4>0,0>2,0>11,8>12|9:10>3>1>15>9"
  local ids = tp.tokenize(text, 16)
  test.is(#ids, 15 * 3 - 1 + 4 + 4, "tokenize: 15 edges of 3 tokens minus a comma, | G : R, four path tokens")
  local v = tp.vocab(16)
  test.is({ v[ids[1]], v[ids[2]], v[ids[3]], v[ids[44]], v[ids[45]], v[ids[46]], v[ids[47]], v[ids[48]], v[ids[52]] },
    { "10", ">3", ",", ">12", "|", "9", ":", "10", ">9" }, "tokenize: greedy tokens at the paper's positions (0-based 44..47 = |, goal, :, root)")
  test.is(tp.decode(ids, 16), text, "decode inverts tokenize")
  local padded = { table.unpack(ids) }
  for _ = 1, 6 do padded[#padded + 1] = 1 end
  test.is(tp.decode(T.tensor(padded, "int32"), 16), text, "decode: a tensor row, padding commas removed")
  local L = tp.layout(16)
  test.is({ L.pipe, L.goal, L.colon, L.root, L.seq_len, L.n_ctx }, { 45, 46, 47, 48, 66, 65 },
    "layout(16): the paper's positions 44..47 (1-based 45..48), 66 tokens, n_ctx 65")
  local parsed = tp.parse(text)
  test.is({ #parsed.edges, parsed.goal, parsed.root, parsed.path }, { 15, 9, 10, { 10, 3, 1, 15, 9 } }, "parse")
end

-- ---- an independent reading of a row: parse the decoded text and search the tree ----
local function check_row(text, n)
  local graph, goal, path = text:match("^(.-)|(%d+):(.*)$")
  if not graph then return "no '|G:' in " .. text end
  goal = tonumber(goal)
  local edges, kids, parent_count = {}, {}, {}
  for a, b in graph:gmatch("(%d+)>(%d+)") do
    a, b = tonumber(a), tonumber(b)
    edges[#edges + 1] = { a, b }
    kids[a] = kids[a] or {}
    table.insert(kids[a], b)
    parent_count[b] = (parent_count[b] or 0) + 1
  end
  local given = {}
  for x in path:gmatch("%d+") do given[#given + 1] = tonumber(x) end
  if #edges ~= n - 1 then return #edges .. " edges" end
  local root = given[1]
  -- a tree on 0..n-1: every node but the root has exactly one parent, the root none
  for v = 0, n - 1 do
    local want = 1
    if v == root then want = nil end
    if parent_count[v] ~= want then return "node " .. v .. " has " .. tostring(parent_count[v]) .. " parents" end
    if kids[v] and #kids[v] > 2 then return "node " .. v .. " has " .. #kids[v] .. " children" end
  end
  if kids[goal] then return "the goal " .. goal .. " has children" end
  -- depth-first search from the root: every root-to-goal path (a tree has one)
  local found = {}
  local function dfs(v, trail)
    trail[#trail + 1] = v
    if v == goal then
      local copy = {}
      for i, x in ipairs(trail) do copy[i] = x end
      found[#found + 1] = copy
    end
    for _, c in ipairs(kids[v] or {}) do dfs(c, trail) end
    trail[#trail] = nil
  end
  dfs(root, {})
  if #found ~= 1 then return #found .. " paths from the root to the goal" end
  if #found[1] ~= #given then return "path of " .. #given .. " nodes, search found " .. #found[1] end
  for i, x in ipairs(found[1]) do
    if given[i] ~= x then return "path differs from the search at node " .. i end
  end
  return nil, edges, kids, root, goal, given
end

-- breadth-first edge order from the root, children by label, computed here from the edge set
local function bfs_edges(kids, root)
  local out, queue, head = {}, { root }, 1
  while head <= #queue do
    local u = queue[head]
    head = head + 1
    local c = {}
    for i, x in ipairs(kids[u] or {}) do c[i] = x end
    table.sort(c)
    for _, x in ipairs(c) do out[#out + 1] = { u, x }; queue[#queue + 1] = x end
  end
  return out
end

for _, n in ipairs({ 2, 3, 6, 8, 12, 16 }) do
  T.seed(100 + n)
  local count = n <= 3 and 60 or 400
  local d = tp.dataset(count, n)
  local L = tp.layout(n)
  local bad, bad_pos, bad_order, bad_mask, unordered_random = nil, nil, nil, nil, 0
  local tok, tgt, mask, emask = d.tokens:totable(), d.targets:totable(), d.mask:totable(), d.eval_mask:totable()
  local root_branches = true
  for r = 1, count do
    local ex = d.examples[r]
    local full = {}
    for i = 1, L.n_ctx do full[i] = tok[r][i] end
    full[L.n_ctx + 1] = tgt[r][L.n_ctx]
    local text = tp.decode(full, n)
    local err, edges, kids, root, goal, path = check_row(text, n)
    if err then bad = bad or ("row " .. r .. ": " .. err .. " (" .. text .. ")") end
    if not err then
      -- fixed positions and the token kinds
      local v = tp.vocab(n)
      local function at(i) return v[full[i]] end
      for k, e in ipairs(edges) do
        if at(L.edge_source(k)) ~= tostring(e[1]) or at(L.edge_target(k)) ~= ">" .. e[2]
          or (k < #edges and at(3 * k) ~= ",") then bad_pos = bad_pos or ("row " .. r .. " edge " .. k) end
      end
      if at(L.pipe) ~= "|" or at(L.goal) ~= tostring(goal) or at(L.colon) ~= ":" or at(L.root) ~= tostring(root) then
        bad_pos = bad_pos or ("row " .. r .. ": | G : R not at " .. L.pipe .. ".." .. L.root)
      end
      for i = 2, #path do
        if at(L.path(i - 1)) ~= ">" .. path[i] then bad_pos = bad_pos or ("row " .. r .. ": path node " .. (i - 1)) end
      end
      for i = L.path(#path - 1) + 1, L.n_ctx + 1 do
        if at(i) ~= "," then bad_pos = bad_pos or ("row " .. r .. ": padding at " .. i) end
      end
      -- masks: the loss from the root on, the evaluation on root .. goal position
      for i = 1, L.n_ctx do
        local want_m = i >= L.root and 1 or 0
        local want_e = (i >= L.root and i <= L.root + #path - 1) and 1 or 0
        if mask[r][i] ~= want_m or emask[r][i] ~= want_e or tgt[r][i] ~= full[i + 1] then
          bad_mask = bad_mask or ("row " .. r .. " position " .. i)
        end
      end
      -- the order: even example seeds reversed breadth-first, odd ones a permutation of it
      local ref = bfs_edges(kids, root)
      local same_rev, same_fwd = true, true
      for k = 1, #edges do
        local rv = ref[#ref + 1 - k]
        if rv[1] ~= edges[k][1] or rv[2] ~= edges[k][2] then same_rev = false end
        if ref[k][1] ~= edges[k][1] or ref[k][2] ~= edges[k][2] then same_fwd = false end
      end
      if (r - 1) % 2 == 0 and not same_rev then bad_order = bad_order or ("even row " .. r .. " is not reversed topological") end
      if (r - 1) % 2 == 1 and not same_rev and not same_fwd then unordered_random = unordered_random + 1 end
      if #path - 1 < n - 1 and #(kids[root] or {}) ~= 2 then root_branches = false end
      if ex.path_length ~= #path - 1 or ex.goal ~= goal or ex.root ~= root or d.path_length[r] ~= #path - 1 then
        bad = bad or ("row " .. r .. ": the example table disagrees with its text")
      end
      for j = 0, #path - 1 do
        if ex.ancestors[j + 1] ~= path[#path - j] then bad = bad or ("row " .. r .. ": ancestors") end
      end
    end
  end
  test.ok(bad == nil, string.format("N=%d: %d rows are trees whose path is the unique root-to-goal path, goal a leaf%s",
    n, count, bad and (": " .. bad) or ""))
  test.ok(bad_pos == nil, string.format("N=%d: edges, |, goal, :, root, path and padding at the fixed positions%s", n,
    bad_pos and (": " .. bad_pos) or ""))
  test.ok(bad_mask == nil, string.format("N=%d: targets, loss mask and evaluation mask%s", n, bad_mask and (": " .. bad_mask) or ""))
  test.ok(bad_order == nil, string.format("N=%d: even example seeds list the edges in reversed topological order%s", n,
    bad_order and (": " .. bad_order) or ""))
  if n >= 6 then
    test.ok(unordered_random > count / 2 * 0.8, string.format("N=%d: odd example seeds are shuffled (%d of %d in neither order)",
      n, unordered_random, count // 2))
  end
  test.ok(root_branches, string.format("N=%d: the root has two children whenever the path is shorter than N-1", n))
end

-- ---- the distribution of the draws ----
do
  -- path length uniform in 1..N-1; second branch uniform in 1..N-1-p given p
  T.seed(7)
  local n, count = 6, 6000
  local hist, second = {}, {}
  for p = 1, n - 1 do hist[p] = 0; second[p] = {} end
  for i = 1, count do
    local ex = tp.example(n, { index = i })
    hist[ex.path_length] = hist[ex.path_length] + 1
    local s = second[ex.path_length]
    s[ex.second_length] = (s[ex.second_length] or 0) + 1
  end
  local worst = 0
  for p = 1, n - 1 do worst = math.max(worst, math.abs(hist[p] / count - 1 / (n - 1))) end
  -- sd of a frequency near 0.2 over 6000 draws is 0.005: 4 sd
  test.ok(worst < 0.02, string.format("path length uniform on 1..5 (largest deviation %.4f)", worst))
  local sworst, sok = 0, true
  for p = 1, n - 2 do
    local m = n - 1 - p
    for s = 1, m do
      sworst = math.max(sworst, math.abs((second[p][s] or 0) / hist[p] - 1 / m))
    end
    for s in pairs(second[p]) do if s < 1 or s > m then sok = false end end
  end
  test.ok(sok and sworst < 0.06 and second[n - 1][0] == hist[n - 1],
    string.format("second branch uniform on 1..N-1-p, none when p = N-1 (largest deviation %.4f)", sworst))
end

do
  -- N = 4 exactly, from the rules by hand (p uniform on 1..3; labels drawn in order):
  --   p = 3: a chain r>a>b>g, one of 24 label orders: 1/3 * 1/24 each;
  --   p = 2: s = 1; r>a>g and r>x, the 24 orders of (r, a, g), x forced: 1/3 * 1/24 each;
  --   p = 1: s = 2 gives r>g, r>x>y (24 orders of r, g, x, y): 1/3 * 1/2 * 1/24 each; s = 1 gives
  --          r>g, r>x, and y must join x (r is full, the goal excluded): the same 24 trees again
  --          with 1/3 * 1/2 * 1/24 each.
  -- So 72 distinct (tree, goal) outcomes, each of probability 1/72.
  T.seed(11)
  local count = 14400
  local seen = {}
  for i = 1, count do
    local ex = tp.example(4, { index = 0 })
    local key = ex.text
    seen[key] = (seen[key] or 0) + 1
  end
  local k, worst = 0, 0
  for _, c in pairs(seen) do
    k = k + 1
    worst = math.max(worst, math.abs(c / count - 1 / 72))
  end
  -- sd of a 1/72 frequency over 14400 draws: 0.00097; 5 sd
  test.is(k, 72, "N=4: 72 distinct (tree, goal) outcomes, as counted by hand")
  test.ok(worst < 0.005, string.format("N=4: each has probability 1/72 (largest deviation %.5f)", worst))
end

-- ---- options and determinism ----
do
  T.seed(5)
  local a = tp.dataset(50, 8, { first_index = 3 })
  T.seed(5)
  local b = tp.dataset(50, 8, { first_index = 3 })
  test.is(a.tokens, b.tokens, "the same seed gives the same dataset")
  test.is(a.examples[1].order, "random", "first_index 3: the first example has an odd seed (shuffled)")
  T.seed(6)
  local c = tp.dataset(40, 8, { order = "backward", path_length = 3, second_length = 2 })
  local ok = true
  for _, ex in ipairs(c.examples) do
    ok = ok and ex.path_length == 3 and ex.second_length == 2 and ex.order == "backward"
  end
  test.ok(ok, "order, path_length and second_length apply to every row")
  local f = tp.example(8, { order = "forward", path_length = 7 })
  test.is(f.second_length, 0, "no room for a second branch when p = N-1")
  local g = tp.example(8, { path_length = 6, second_length = 2 })
  test.is(g.second_length, 0, "a second branch longer than the free nodes is left out (as the authors')")
  local h = tp.example(8, { path_length = 2, second_length = 0 })
  local kids = h.children[h.root]
  test.ok(h.second_length == 0 and h.path_length == 2, "second_length 0: the generator without a second branch")
  test.ok(#kids >= 1, "and the root keeps its path child")
end

-- ---- errors ----
test.throws(function() tp.dataset(10, 1) end, "2..100", "a tree needs at least 2 nodes")
test.throws(function() tp.dataset(0, 6) end, "count must be a positive integer", "count checked")
test.throws(function() tp.example(6, { path_length = 6 }) end, "path_length must be an integer in 1..5", "path_length checked")
test.throws(function() tp.example(6, { order = "sideways" }) end, "order must be", "order checked")
test.throws(function() tp.example(6, { second = 2 }) end, "unknown option 'second'", "unknown options named")
test.throws(function() tp.example(6, { index = -1 }) end, "index must be a non-negative integer", "index checked")
test.throws(function() tp.tokenize("1>7|", 6) end, "at character 2 ('>7|')", "tokenize: a label beyond N")
test.throws(function() tp.decode({ 1, 99 }, 6) end, "token id 99 at position 2", "decode: an id beyond the vocabulary")
test.throws(function() tp.parse("1>2,2>3") end, "expected", "parse: text without a goal")
test.throws(function() tp.source_id(6, 6) end, "0..5", "source_id: a label beyond N")

test.done()
