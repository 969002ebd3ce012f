-- milua.data.tree_paths: path finding in binary trees (Brinkmann et al. 2024, "A Mechanistic
-- Analysis of a Transformer Trained on a Symbolic Multi-Step Reasoning Task").
--
-- A tree has N nodes labelled 0..N-1 (the paper: N = 16), every node at most two children. The
-- prompt lists its N - 1 edges, names a goal leaf and the root; the answer is the unique path
-- from the root to the goal:
--     "A>B,A>B,...,A>B|G:R>P1>P2>...>G"
-- The generator is the authors' (generate_example_secondary_path) with N a parameter:
--   1. path length p uniform in 1..N-1;
--   2. if p < N-1, the length s of a second branch uniform in 1..N-1-p;
--   3. p+1 distinct nodes drawn uniformly without replacement form the main path root -> goal;
--   4. a chain of s fresh nodes hangs from the root (so the root branches whenever p < N-1);
--   5. every remaining node, in increasing label order, is attached to a uniformly chosen node
--      of the tree that has fewer than two children, the goal excluded: the goal stays a leaf
--      and the path keeps length p;
--   6. the edges in topological order (networkx's topological_sort on a tree: breadth first from
--      the root, the children of a node by increasing label; each node's edges in that order),
--      then reversed ("backward") for even example seeds and shuffled uniformly ("random") for
--      odd ones.
-- The authors seed one NumPy generator per example; here every draw comes from milua.tensor's
-- global generator (T.seed reproduces a dataset bit for bit) and the example's index within
-- its dataset (0-based, like the authors' seeds) decides the edge order.
--
-- Tokens (the authors' scheme, ids 1-based): ",", ":", "|", then the target tokens ">v", then
-- the source tokens "v", each group with two-digit labels first (as the authors' stable sort by
-- length): vocabulary 3 + 2N (35 for N = 16). A node has two tokens: "7" where it is the source
-- of an edge or the root, ">7" where it is a target or on the path. The text is tokenized by
-- greedy first match over that list. Every edge is 3 tokens ("A", ">B", ","; the last has no
-- comma), so with E = 3(N-1) the positions are fixed (1-based):
--     edge k (1..N-1): source 3k-2, target 3k-1, comma 3k;  "|" E;  goal E+1;  ":" E+2;
--     root E+3;  the path node P_i at E+3+i;  "," after the goal (the stop).
-- Rows are right-padded with "," to 4N+2 tokens; the model reads the first 4N+1 (n_ctx) and
-- predicts the next token at each, with the loss on every position from the root on (the path,
-- the stop and the padding after it), as the authors' mask.
--
--   local tp = require "milua.data.tree_paths"
--   tp.vocab(n)  -> {token strings}, tp.ids(n) -> {[string] = id}, tp.n_vocab(n) = 3 + 2n
--   tp.source_id(n, v), tp.target_id(n, v)       token ids of node v (0-based label)
--   tp.node_of(n, id) -> v, "source"|"target"    (nil for ",", ":", "|")
--   tp.layout(n) -> {n_edges, edge_source(k), edge_target(k), pipe, goal, colon, root,
--                    path(i), seq_len = 4n+2, n_ctx = 4n+1, max_path = n-1}
--
--   tp.example(n [, opts]) -> a Lua table
--     opts.index          the example seed: even -> "backward", odd -> "random" (default 0)
--     opts.order          "backward" | "random" | "forward" (topological), overriding the index
--     opts.path_length    p instead of the uniform draw (1..n-1)
--     opts.second_length  s instead of the draw; applied only when n-1-p nodes remain for it
--                         (as the authors'); 0 gives no second branch (their generate_example)
--     fields: n_nodes, root, goal, path {root, ..., goal} (labels), path_length, second_length,
--             edges {{A, B}, ...} in listed order, parent {[v] = parent}, children {[v] = {..}},
--             ancestors {a_0 = goal, a_1 = parent(goal), ..., a_p = root} (Lua index j+1),
--             edge_of {[B] = k}: the edge whose target is B, order, text, tokens {ids} (unpadded)
--
--   tp.dataset(count, n [, opts]) -> table of tensors and lists   (count * seq_len at most
--       T.max_table_numbers(): the rows are Lua tables)
--     opts.first_index    index of the first example (default 0); example i has index first+i-1
--     opts.order, opts.path_length, opts.second_length   as for example (applied to every row)
--     tokens     int32 [count, 4n+1]  the model's input
--     targets    int32 [count, 4n+1]  the next token at each position
--     mask       float32 [count, 4n+1] 1 from the root position on (the training loss)
--     eval_mask  float32 [count, 4n+1] 1 at the positions that predict the path and the stop
--                (root .. root+p): a row is solved when all of them are right
--     path_length {p per row}, examples {tp.example tables}
--
--   tp.tokenize(text, n) -> {ids}      the authors' greedy tokenizer (no padding)
--   tp.decode(row, n) -> text          ids (a list or a 1-D tensor) to text, trailing "," removed
--   tp.parse(text) -> {edges, goal, root, path}   the text's parts, as numbers

local T = require "milua.tensor"

local M = {}

local MAX_N = 100   -- labels have at most two digits, which the greedy tokenizer relies on

local function check_n(n, fname)
  if math.type(n) ~= "integer" or n < 2 or n > MAX_N then
    error("tree_paths." .. fname .. ": the number of nodes must be an integer in 2.." .. MAX_N .. ", got " ..
      tostring(n), 3)
  end
end

-- ---- the vocabulary ----

local vocab_cache = {}

local function tokenizer(n)
  local tk = vocab_cache[n]
  if tk then return tk end
  -- labels as strings, the longer first, each group in increasing order (a stable sort by length)
  local labels = {}
  for width = #tostring(n - 1), 1, -1 do
    for v = 0, n - 1 do
      if #tostring(v) == width then labels[#labels + 1] = v end
    end
  end
  local vocab = { ",", ":", "|" }
  local target, source, node_of = {}, {}, {}
  for _, v in ipairs(labels) do
    vocab[#vocab + 1] = ">" .. v
    target[v] = #vocab
    node_of[#vocab] = { v, "target" }
  end
  for _, v in ipairs(labels) do
    vocab[#vocab + 1] = tostring(v)
    source[v] = #vocab
    node_of[#vocab] = { v, "source" }
  end
  local ids = {}
  for i, s in ipairs(vocab) do ids[s] = i end
  tk = { vocab = vocab, ids = ids, target = target, source = source, node_of = node_of }
  vocab_cache[n] = tk
  return tk
end

function M.vocab(n)
  check_n(n, "vocab")
  local out = {}
  for i, s in ipairs(tokenizer(n).vocab) do out[i] = s end
  return out
end

function M.ids(n)
  check_n(n, "ids")
  local out = {}
  for s, i in pairs(tokenizer(n).ids) do out[s] = i end
  return out
end

function M.n_vocab(n)
  check_n(n, "n_vocab")
  return 3 + 2 * n
end

local function check_node(n, v, fname)
  if math.type(v) ~= "integer" or v < 0 or v >= n then
    error("tree_paths." .. fname .. ": node must be an integer label in 0.." .. (n - 1) .. ", got " .. tostring(v), 3)
  end
end

function M.source_id(n, v)
  check_n(n, "source_id")
  check_node(n, v, "source_id")
  return tokenizer(n).source[v]
end

function M.target_id(n, v)
  check_n(n, "target_id")
  check_node(n, v, "target_id")
  return tokenizer(n).target[v]
end

function M.node_of(n, id)
  check_n(n, "node_of")
  if math.type(id) ~= "integer" or id < 1 or id > 3 + 2 * n then
    error("tree_paths.node_of: token id must be an integer in 1.." .. (3 + 2 * n) .. ", got " .. tostring(id), 2)
  end
  local e = tokenizer(n).node_of[id]
  if e then return e[1], e[2] end
  return nil
end

function M.layout(n)
  check_n(n, "layout")
  local E = 3 * (n - 1)
  return {
    n_edges = n - 1,
    edge_source = function(k) return 3 * k - 2 end,
    edge_target = function(k) return 3 * k - 1 end,
    pipe = E, goal = E + 1, colon = E + 2, root = E + 3,
    path = function(i) return E + 3 + i end,
    seq_len = 4 * n + 2, n_ctx = 4 * n + 1, max_path = n - 1,
  }
end

-- ---- the generator ----

-- draw one element of a list uniformly, remove it and return it
local function take(list)
  return table.remove(list, T.random(1, #list))
end

local function make_example(n, index, opts)
  local p = opts.path_length or T.random(1, n - 1)
  local s = opts.second_length
  if s == nil and p ~= n - 1 then s = T.random(1, n - 1 - p) end
  local order = opts.order or (index % 2 == 0 and "backward" or "random")

  local free = {}                         -- nodes not yet in the tree, increasing
  for v = 0, n - 1 do free[v + 1] = v end
  local in_tree = {}                      -- candidate parents, in the order they joined
  local parent, children = {}, {}
  for v = 0, n - 1 do children[v] = {} end
  local function attach(a, b)
    parent[b] = a
    local c = children[a]
    c[#c + 1] = b
  end

  local path = {}
  for i = 1, p + 1 do
    local v = take(free)
    path[i] = v
    if i > 1 then attach(path[i - 1], v) end
    if i <= p then in_tree[#in_tree + 1] = v end     -- the goal never becomes a parent
  end
  local root, goal = path[1], path[p + 1]

  local second = 0
  if s and s > 0 and #free >= s then
    local prev = root
    for _ = 1, s do
      local v = take(free)
      attach(prev, v)
      in_tree[#in_tree + 1] = v
      prev = v
    end
    second = s
  end

  local rest = free
  for _, v in ipairs(rest) do
    local valid = {}
    for _, u in ipairs(in_tree) do
      if #children[u] < 2 then valid[#valid + 1] = u end
    end
    attach(valid[T.random(1, #valid)], v)
    in_tree[#in_tree + 1] = v
  end

  -- topological order: breadth first from the root, children by increasing label
  for v = 0, n - 1 do table.sort(children[v]) end
  local edges = {}
  local queue, head = { root }, 1
  while head <= #queue do
    local u = queue[head]
    head = head + 1
    for _, c in ipairs(children[u]) do
      edges[#edges + 1] = { u, c }
      queue[#queue + 1] = c
    end
  end
  if order == "backward" then
    local m = #edges
    for i = 1, m // 2 do edges[i], edges[m + 1 - i] = edges[m + 1 - i], edges[i] end
  elseif order == "random" then
    for i = #edges, 2, -1 do
      local j = T.random(1, i)
      edges[i], edges[j] = edges[j], edges[i]
    end
  end

  local parts = {}
  for i, e in ipairs(edges) do parts[i] = e[1] .. ">" .. e[2] end
  local text = table.concat(parts, ",") .. "|" .. goal .. ":" .. table.concat(path, ">")

  local tk = tokenizer(n)
  local tokens = {}
  for _, e in ipairs(edges) do
    tokens[#tokens + 1] = tk.source[e[1]]
    tokens[#tokens + 1] = tk.target[e[2]]
    tokens[#tokens + 1] = tk.ids[","]
  end
  tokens[#tokens] = tk.ids["|"]
  tokens[#tokens + 1] = tk.source[goal]
  tokens[#tokens + 1] = tk.ids[":"]
  tokens[#tokens + 1] = tk.source[root]
  for i = 2, #path do tokens[#tokens + 1] = tk.target[path[i]] end

  local ancestors = {}
  for j = 0, p do ancestors[j + 1] = path[p + 1 - j] end
  local edge_of = {}
  for k, e in ipairs(edges) do edge_of[e[2]] = k end
  return {
    n_nodes = n, root = root, goal = goal, path = path, path_length = p, second_length = second,
    edges = edges, parent = parent, children = children, ancestors = ancestors, edge_of = edge_of,
    order = order, index = index, text = text, tokens = tokens,
  }
end

local orders = { backward = true, random = true, forward = true }

local function check_opts(n, opts, fname, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("tree_paths." .. fname .. ": options must be a table, got " .. type(opts), 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local list = {}
      for a in pairs(allowed) do list[#list + 1] = a end
      table.sort(list)
      error("tree_paths." .. fname .. ": unknown option '" .. tostring(k) .. "' (known: " .. table.concat(list, ", ") .. ")", 3)
    end
  end
  if opts.order ~= nil and not orders[opts.order] then
    error("tree_paths." .. fname .. ": order must be \"backward\", \"random\" or \"forward\", got " .. tostring(opts.order), 3)
  end
  local p = opts.path_length
  if p ~= nil and (math.type(p) ~= "integer" or p < 1 or p > n - 1) then
    error("tree_paths." .. fname .. ": path_length must be an integer in 1.." .. (n - 1) .. " for " .. n ..
      " nodes, got " .. tostring(p), 3)
  end
  local s = opts.second_length
  if s ~= nil and (math.type(s) ~= "integer" or s < 0 or s > n - 2) then
    error("tree_paths." .. fname .. ": second_length must be an integer in 0.." .. (n - 2) .. ", got " .. tostring(s), 3)
  end
  for _, k in ipairs({ "index", "first_index" }) do
    local i = opts[k]
    if i ~= nil and (math.type(i) ~= "integer" or i < 0) then
      error("tree_paths." .. fname .. ": " .. k .. " must be a non-negative integer, got " .. tostring(i), 3)
    end
  end
  return opts
end

function M.example(n, opts)
  check_n(n, "example")
  opts = check_opts(n, opts, "example", { index = true, order = true, path_length = true, second_length = true })
  return make_example(n, opts.index or 0, opts)
end

function M.dataset(count, n, opts)
  if math.type(count) ~= "integer" or count < 1 then
    error("tree_paths.dataset: count must be a positive integer, got " .. tostring(count), 2)
  end
  check_n(n, "dataset")
  opts = check_opts(n, opts, "dataset", { first_index = true, order = true, path_length = true, second_length = true })
  local L = M.layout(n)
  -- the rows are Lua tables grown a number at a time: a size they cannot reach is refused
  -- before the first example, not after minutes and gigabytes
  if count > T.max_table_numbers() // L.seq_len then
    error(string.format("tree_paths.dataset: %d examples of %d tokens are more numbers than Lua tables " ..
      "hold on this machine (T.max_table_numbers() = %d)", count, L.seq_len, T.max_table_numbers()), 2)
  end
  local comma = tokenizer(n).ids[","]
  local first = opts.first_index or 0
  local tok, tgt, mask, emask, plen, examples = {}, {}, {}, {}, {}, {}
  for r = 1, count do
    local ex = make_example(n, first + r - 1, opts)
    examples[r], plen[r] = ex, ex.path_length
    local full = {}
    for i = 1, L.seq_len do full[i] = ex.tokens[i] or comma end
    local trow, grow, mrow, erow = {}, {}, {}, {}
    local last = L.root + ex.path_length          -- the goal's position: it predicts the stop
    for i = 1, L.n_ctx do
      trow[i], grow[i] = full[i], full[i + 1]
      mrow[i] = i >= L.root and 1 or 0
      erow[i] = (i >= L.root and i <= last) and 1 or 0
    end
    tok[r], tgt[r], mask[r], emask[r] = trow, grow, mrow, erow
  end
  return {
    tokens = T.tensor(tok, "int32"), targets = T.tensor(tgt, "int32"),
    mask = T.tensor(mask, "float32"), eval_mask = T.tensor(emask, "float32"),
    path_length = plen, examples = examples, n_nodes = n,
  }
end

-- ---- text ----

function M.tokenize(text, n)
  check_n(n, "tokenize")
  if type(text) ~= "string" then error("tree_paths.tokenize: expected a string, got " .. type(text), 2) end
  local vocab = tokenizer(n).vocab
  local ids, i = {}, 1
  while i <= #text do
    local found
    for id, w in ipairs(vocab) do
      if text:sub(i, i + #w - 1) == w then found = id; break end
    end
    if not found then
      error(string.format("tree_paths.tokenize: \"%s\" has no token at character %d ('%s') for nodes 0..%d",
        text, i, text:sub(i, i + 2), n - 1), 2)
    end
    ids[#ids + 1] = found
    i = i + #vocab[found]
  end
  return ids
end

function M.decode(row, n)
  check_n(n, "decode")
  local ids = row
  if type(row) ~= "table" or getmetatable(row) ~= nil then
    local ok, t = pcall(function() return row:totable() end)
    if not ok or type(t) ~= "table" or type(t[1]) == "table" then
      error("tree_paths.decode: expected a list of token ids or a 1-D tensor", 2)
    end
    ids = t
  end
  local vocab = tokenizer(n).vocab
  local parts = {}
  for p, id in ipairs(ids) do
    local s = vocab[id]
    if not s then
      error("tree_paths.decode: token id " .. tostring(id) .. " at position " .. p .. " is not in the vocabulary (1.." ..
        #vocab .. ")", 2)
    end
    parts[p] = s
  end
  return (table.concat(parts):gsub(",+$", ""))
end

function M.parse(text)
  if type(text) ~= "string" then error("tree_paths.parse: expected a string, got " .. type(text), 2) end
  local graph, goal, path = text:match("^([%d>,]*)|(%d+):([%d>]+),*$")
  if not graph then
    error("tree_paths.parse: expected \"A>B,...|G:R>...>G\", got \"" .. text .. "\"", 2)
  end
  local edges = {}
  for a, b in graph:gmatch("(%d+)>(%d+)") do edges[#edges + 1] = { tonumber(a), tonumber(b) } end
  local nodes = {}
  for v in path:gmatch("%d+") do nodes[#nodes + 1] = tonumber(v) end
  return { edges = edges, goal = tonumber(goal), root = nodes[1], path = nodes }
end

return M
