-- Tests of milua.data.hierarchy: the grammar's construction, the generator's frequencies
-- against exact probabilities, and belief propagation against brute-force enumeration of every
-- tree (q = 3, depth 2 and 3, every filtering level, matched and mismatched), exactly up to
-- float32 rounding.
local test = require "milua.test"
local T = require "milua.tensor"
local H = require "milua.data.hierarchy"

-- ---------------------------------------------------------------------------------------------
-- Brute force, written from the definition of the generative process and nothing else.

-- Every way to give children to the nodes of `cur` (one level), with its probability:
-- calls fn(next_level, prob).
local function children_of(M, q, cur, prob, fn)
  local nxt = {}
  local function rec(j, p)
    if p == 0 then return end
    if j > #cur then fn({ table.unpack(nxt) }, p); return end
    for b = 1, q do
      for c = 1, q do
        local w = M[cur[j]][b][c]
        if w > 0 then
          nxt[2 * j - 1], nxt[2 * j] = b, c
          rec(j + 1, p * w)
        end
      end
    end
    nxt[2 * j - 1], nxt[2 * j] = nil, nil
  end
  rec(1, prob)
end

-- Expands a level down to the leaves with the standard rule: fn(leaves, prob).
local function expand(M, q, cur, levels_left, prob, fn)
  if levels_left == 0 then fn(cur, prob); return end
  children_of(M, q, cur, prob, function(nxt, p) expand(M, q, nxt, levels_left - 1, p, fn) end)
end

-- P_i(a, b) = P(node i of level k = b | root a) in the FULL hierarchy, by enumeration.
local function path_marginals(M, q, k)
  local P = {}
  for i = 1, 2 ^ k do
    P[i] = {}
    for a = 1, q do P[i][a] = {}; for b = 1, q do P[i][a][b] = 0 end end
  end
  for a = 1, q do
    expand(M, q, { a }, k, 1, function(level_k, p)
      for i = 1, #level_k do P[i][a][level_k[i]] = P[i][a][level_k[i]] + p end
    end)
  end
  return P
end

-- joint[key][root] = P(root, leaves) under filtering k; keys are the leaf digits concatenated.
local function enumerate(M, q, l, k)
  local P = path_marginals(M, q, k)
  local joint = {}
  local nk = 2 ^ k
  for a = 1, q do
    local lk = {}
    local function rec(i, p)      -- the level-k nodes, independent given the root
      if p == 0 then return end
      if i > nk then
        expand(M, q, { table.unpack(lk) }, l - k, p, function(leaves, pl)
          local key = table.concat(leaves)
          joint[key] = joint[key] or {}
          for r = 1, q do joint[key][r] = joint[key][r] or 0 end
          joint[key][a] = joint[key][a] + pl
        end)
        return
      end
      for b = 1, q do
        lk[i] = b
        rec(i + 1, p * P[i][a][b])
      end
      lk[i] = nil
    end
    rec(1, 1 / q)
  end
  return joint, P
end

local function key_to_list(key)
  local t = {}
  for i = 1, #key do t[i] = tonumber(key:sub(i, i)) end
  return t
end

-- all q^L leaf strings, in a fixed order
local function all_strings(q, L)
  local out, cur = {}, {}
  local function rec(i)
    if i > L then out[#out + 1] = { table.unpack(cur) }; return end
    for v = 1, q do cur[i] = v; rec(i + 1) end
  end
  rec(1)
  return out
end

-- ---------------------------------------------------------------------------------------------
-- The grammar

do
  local g = H.grammar { q = 4, depth = 4, sigma = 1, seed = 7 }
  local M = g.M:totable()
  local owners, ok_rows, ok_count = {}, true, true
  for a = 1, 4 do
    local s, n = 0, 0
    for b = 1, 4 do
      for c = 1, 4 do
        s = s + M[a][b][c]
        if M[a][b][c] > 0 then n = n + 1; owners[b * 10 + c] = (owners[b * 10 + c] or 0) + 1 end
      end
    end
    ok_rows = ok_rows and math.abs(s - 1) < 1e-6
    ok_count = ok_count and n == 4
  end
  local partition = true
  for b = 1, 4 do for c = 1, 4 do partition = partition and owners[b * 10 + c] == 1 end end
  test.ok(ok_rows, "grammar: every M[a] sums to 1")
  test.ok(ok_count, "grammar: every parent owns exactly q = 4 child pairs")
  test.ok(partition, "grammar: the q^2 child pairs are partitioned among the parents (non-ambiguous)")
  test.close(g.M_L, g.M:sum(3), 1e-7, "grammar: M_L sums out the right child")
  test.close(g.M_R, g.M:sum(2), 1e-7, "grammar: M_R sums out the left child")
  test.is(#g.rules[1], 4, "grammar: rules list the allowed pairs")
  test.is({ g.n_leaves, g.mask, g.q, g.depth }, { 16, 5, 4, 4 }, "grammar: n_leaves, mask id, q, depth")
  test.like(tostring(g), "q=4, depth=4", "grammar: tostring")

  -- seeded on its own: same seed, same grammar; the global generator is left where it was
  T.seed(99)
  local before = T.rand(5)
  T.seed(99)
  local g2 = H.grammar { q = 4, depth = 4, sigma = 1, seed = 7 }
  test.is(T.rand(5), before, "grammar: drawing a grammar leaves the global generator untouched")
  test.is(g2.M, g.M, "grammar: the same seed gives the same grammar")
  test.isnt(H.grammar { q = 4, depth = 4, sigma = 1, seed = 8 }.M, g.M, "grammar: another seed, another grammar")
  -- sigma = 0: uniform over the q allowed pairs
  local g0 = H.grammar { q = 3, depth = 2, sigma = 0, seed = 1 }
  local vals = g0.M:reshape(27):totable()
  local good = true
  for _, v in ipairs(vals) do good = good and (v == 0 or math.abs(v - 1 / 3) < 1e-7) end
  test.ok(good, "grammar: sigma = 0 gives each allowed pair probability 1/q")
  -- larger sigma: more peaked rows on average (the entropy falls)
  local function mean_entropy(gr)
    local h, Mt = 0, gr.M:totable()
    for a = 1, gr.q do for b = 1, gr.q do for c = 1, gr.q do
      local p = Mt[a][b][c]
      if p > 0 then h = h - p * math.log(p) end
    end end end
    return h / gr.q
  end
  local h1, h5 = 0, 0
  for s = 1, 10 do
    h1 = h1 + mean_entropy(H.grammar { q = 4, sigma = 0.5, seed = s })
    h5 = h5 + mean_entropy(H.grammar { q = 4, sigma = 3, seed = s })
  end
  test.ok(h5 < h1, string.format("grammar: larger sigma, lower entropy (%.3f < %.3f)", h5 / 10, h1 / 10))
end

-- path matrices: products of M_L / M_R along the path, checked against enumeration
do
  local g = H.grammar { q = 3, depth = 3, sigma = 1, seed = 3 }
  local M = g.M:totable()
  for k = 0, 3 do
    local P = path_marginals(M, 3, k)
    test.close(g:path_matrices(k), P, 1e-6, "path_matrices(" .. k .. "): the level-" .. k ..
      " marginals of the full hierarchy given the root")
  end
end

-- ---------------------------------------------------------------------------------------------
-- Belief propagation against enumeration, q = 3, depth 2 and 3, every k assumed by BP

for _, depth in ipairs({ 2, 3 }) do
  local q = 3
  local g = H.grammar { q = q, depth = depth, sigma = 1.2, seed = 10 + depth }
  local M = g.M:totable()
  local L = 2 ^ depth
  local strings = all_strings(q, L)
  local tokens = T.tensor(strings, "int32")
  for k = 0, depth do
    local joint = enumerate(M, q, depth, k)
    local probs, loglik = H.root_posterior(g, tokens, { k = k })
    probs, loglik = probs:totable(), loglik:totable()
    local worst, worst_ll, n_zero, zero_ok = 0, 0, 0, true
    for r, s in ipairs(strings) do
      local jr = joint[table.concat(s)]
      local z = 0
      if jr then for a = 1, q do z = z + jr[a] end end
      if z > 0 then
        for a = 1, q do worst = math.max(worst, math.abs(probs[r][a] - jr[a] / z)) end
        worst_ll = math.max(worst_ll, math.abs(loglik[r] - math.log(z)) / math.max(1, math.abs(math.log(z))))
      else
        n_zero = n_zero + 1
        zero_ok = zero_ok and loglik[r] == -math.huge
      end
    end
    test.ok(worst < 2e-6, string.format("BP depth %d, k %d: root posterior of all %d leaf strings equals enumeration (max diff %.2g)",
      depth, k, #strings, worst))
    test.ok(worst_ll < 2e-5, string.format("BP depth %d, k %d: log-likelihood equals enumeration (max rel diff %.2g)", depth, k, worst_ll))
    test.ok(zero_ok, string.format("BP depth %d, k %d: %d impossible strings get log-likelihood -inf", depth, k, n_zero))

    -- leaf marginals: every position of every string for depth 2, one per string for depth 3
    local rows, pos = {}, {}
    for r, s in ipairs(strings) do
      if depth == 2 then
        for j = 1, L do rows[#rows + 1] = s; pos[#pos + 1] = j end
      else
        rows[#rows + 1] = s; pos[#pos + 1] = (r * 7) % L + 1
      end
    end
    local lm = H.leaf_marginal(g, T.tensor(rows, "int32"), T.tensor(pos, "int32"), { k = k }):totable()
    local worst_m, checked = 0, 0
    for r, s in ipairs(rows) do
      local w, tot = {}, 0
      for v = 1, q do
        local t = { table.unpack(s) }
        t[pos[r]] = v
        local jr = joint[table.concat(t)]
        w[v] = 0
        if jr then for a = 1, q do w[v] = w[v] + jr[a] end end
        tot = tot + w[v]
      end
      if tot > 0 then
        checked = checked + 1
        for v = 1, q do worst_m = math.max(worst_m, math.abs(lm[r][v] - w[v] / tot)) end
      end
    end
    test.ok(worst_m < 2e-6 and checked == #rows, string.format(
      "BP depth %d, k %d: masked-leaf marginal of %d (string, position) pairs equals enumeration (max diff %.2g)",
      depth, k, checked, worst_m))
  end

  -- a masked leaf inside the root posterior is an unobserved leaf: sum over its values
  local joint = enumerate(M, q, depth, 0)
  local rows, expect = {}, {}
  for r = 1, 50 do
    local s = { table.unpack(strings[(r * 37) % #strings + 1]) }
    local j = r % L + 1
    local w = { 0, 0, 0 }
    for v = 1, q do
      local t = { table.unpack(s) }
      t[j] = v
      local jr = joint[table.concat(t)]
      if jr then for a = 1, q do w[a] = w[a] + jr[a] end end
    end
    local z = w[1] + w[2] + w[3]
    s[j] = g.mask
    rows[r], expect[r] = s, { w[1] / z, w[2] / z, w[3] / z }
  end
  test.close(H.root_posterior(g, T.tensor(rows, "int32")), expect, 2e-6,
    "BP depth " .. depth .. ": a mask token is an unobserved leaf (root posterior summed over its values)")
end

-- mismatched BP on generated data: BP assuming k_BP on data drawn with k_data, every pair
do
  local q, depth = 3, 3
  local g = H.grammar { q = q, depth = depth, sigma = 1, seed = 21 }
  local M = g.M:totable()
  local joints = {}
  for k = 0, depth do joints[k] = enumerate(M, q, depth, k) end
  T.seed(5)
  local all_ok, acc_ok = true, true
  for kd = 0, depth do
    local s = H.sample(g, 300, { k = kd })
    local toks = s.tokens:totable()
    local roots = s.root:totable()
    for kb = 0, depth do
      local probs = H.root_posterior(g, s.tokens, { k = kb }):totable()
      local correct = 0
      for r = 1, #toks do
        local jr = joints[kb][table.concat(toks[r])]
        local z, best, bestv = 0, 1, -1
        for a = 1, q do
          z = z + jr[a]
          if jr[a] > bestv then best, bestv = a, jr[a] end
        end
        for a = 1, q do all_ok = all_ok and math.abs(probs[r][a] - jr[a] / z) < 2e-6 end
        if best == roots[r] then correct = correct + 1 end
      end
      local acc = H.accuracy(H.root_posterior(g, s.tokens, { k = kb }), s.root)
      -- ties in the posterior could flip an argmax; the grammar here has none that large
      acc_ok = acc_ok and math.abs(acc - correct / #toks) < 0.01
    end
  end
  test.ok(all_ok, "mismatched BP: on data of every k_data, BP assuming every k_BP equals enumeration under k_BP")
  test.ok(acc_ok, "accuracy: the argmax of the BP posterior against the root, as the enumeration's argmax")
end

-- an ambiguous, dense grammar given as a tensor (not a partition): BP stays exact
do
  local q, depth = 3, 2
  T.seed(31)
  local raw = T.rand(q, q * q):pow(3)
  raw = raw / raw:sum(2, true)
  local g = H.grammar { M = raw:reshape(q, q, q), depth = depth }
  local M = g.M:totable()
  local strings = all_strings(q, 4)
  for k = 0, depth do
    local joint = enumerate(M, q, depth, k)
    local probs = H.root_posterior(g, T.tensor(strings, "int32"), { k = k }):totable()
    local worst = 0
    for r, s in ipairs(strings) do
      local jr = joint[table.concat(s)]
      local z = jr[1] + jr[2] + jr[3]
      for a = 1, q do worst = math.max(worst, math.abs(probs[r][a] - jr[a] / z)) end
    end
    test.ok(worst < 2e-6, string.format("BP on a dense ambiguous grammar, k %d: equals enumeration (max diff %.2g)", k, worst))
  end
end

-- a grammar whose support leaves some strings impossible: uniform posterior, -inf likelihood
do
  local M = {}
  for a = 1, 2 do M[a] = { { 0, 0 }, { 0, 0 } } end
  M[1][1][1] = 1            -- symbol 1 only makes (1, 1)
  M[2][2][2] = 1            -- symbol 2 only makes (2, 2)
  local g = H.grammar { M = M, depth = 1 }
  local p, ll = H.root_posterior(g, T.tensor({ { 1, 2 }, { 2, 2 } }, "int32"))
  test.close(p, { { 0.5, 0.5 }, { 0, 1 } }, 1e-7, "impossible leaves: a uniform posterior; possible ones exact")
  test.is(ll:totable()[1], -math.huge, "impossible leaves: log-likelihood -inf")
  test.close(ll:totable()[2], math.log(0.5), 1e-6, "possible leaves: log P = log(1/2)")
  test.close(H.leaf_marginal(g, T.tensor({ { 1, 3 } }, "int32"), 2), { { 1, 0 } }, 1e-7,
    "leaf marginal: the sibling of a 1 must be 1")
end

-- ---------------------------------------------------------------------------------------------
-- The generator against exact probabilities

-- z-scores of empirical frequencies against exact probabilities over a set of cells, and a
-- chi-square over the cells expected at least 5 times. With a few hundred cells and N draws, a
-- correct sampler keeps every |z| below 5 (a chance of ~1e-4 per test for the worst cell) and
-- the chi-square below df + 6 sqrt(2 df).
local function freq_check(counts, probs, N, what)
  local maxz, chi, df = 0, 0, -1
  local unexpected = 0
  for key, p in pairs(probs) do
    local c = counts[key] or 0
    local sd = math.sqrt(p * (1 - p) / N)
    if sd > 0 then maxz = math.max(maxz, math.abs(c / N - p) / sd) end
    if p * N >= 5 then chi, df = chi + (c - p * N) ^ 2 / (p * N), df + 1 end
  end
  for key in pairs(counts) do if not probs[key] or probs[key] == 0 then unexpected = unexpected + 1 end end
  local limit = df + 6 * math.sqrt(2 * df)
  test.ok(unexpected == 0, what .. ": no outcome of probability 0 is ever drawn")
  test.ok(maxz < 5, string.format("%s: every cell's |z| < 5 (max %.2f)", what, maxz))
  test.ok(chi < limit, string.format("%s: chi-square %.1f < %.1f (df %d)", what, chi, limit, df))
end

do
  local q, depth, N = 3, 2, 60000
  local g = H.grammar { q = q, depth = depth, sigma = 1, seed = 4 }
  local M = g.M:totable()
  for k = 0, depth do
    local joint = enumerate(M, q, depth, k)
    local probs = {}
    for key, jr in pairs(joint) do for a = 1, q do probs[a .. ":" .. key] = jr[a] end end
    T.seed(100 + k)
    local s = H.sample(g, N, { k = k })
    local toks, roots = s.tokens:totable(), s.root:totable()
    local counts = {}
    for r = 1, N do
      local key = roots[r] .. ":" .. table.concat(toks[r])
      counts[key] = (counts[key] or 0) + 1
    end
    freq_check(counts, probs, N, string.format("sample q 3, depth 2, k %d: P(root, leaves), %d cells", k, #all_strings(q, 4) * q))
  end
end

-- depth 3: the joint of the root with leaves (1, 2), with leaves (4, 5) (different subtrees below
-- the root's children) and with leaves (1, 8), for every k
do
  local q, depth, N = 3, 3, 40000
  local g = H.grammar { q = q, depth = depth, sigma = 1, seed = 9 }
  local M = g.M:totable()
  for k = 0, depth do
    local joint = enumerate(M, q, depth, k)
    T.seed(200 + k)
    local s = H.sample(g, N, { k = k })
    local toks, roots = s.tokens:totable(), s.root:totable()
    for _, pr in ipairs({ { 1, 2 }, { 4, 5 }, { 1, 8 } }) do
      local probs, counts = {}, {}
      for key, jr in pairs(joint) do
        local l = key_to_list(key)
        for a = 1, q do
          local cell = a .. ":" .. l[pr[1]] .. l[pr[2]]
          probs[cell] = (probs[cell] or 0) + jr[a]
        end
      end
      for r = 1, N do
        local cell = roots[r] .. ":" .. toks[r][pr[1]] .. toks[r][pr[2]]
        counts[cell] = (counts[cell] or 0) + 1
      end
      freq_check(counts, probs, N, string.format("sample q 3, depth 3, k %d: P(root, leaf %d, leaf %d)", k, pr[1], pr[2]))
    end
  end
end

-- the nodes of a sample form a tree of the grammar below level k, and ancestors follow them
do
  local g = H.grammar { q = 4, depth = 4, seed = 2 }
  T.seed(3)
  for _, k in ipairs({ 0, 2, 4 }) do
    local s = H.sample(g, 500, { k = k })
    test.is(s.nodes[4], s.tokens, "sample k " .. k .. ": nodes[depth] are the leaves")
    test.is(s.nodes[0]:reshape(500), s.root, "sample k " .. k .. ": nodes[0] is the root")
    local M = g.M:totable()
    local ok = true
    for m = k, 3 do
      local par, ch = s.nodes[m]:totable(), s.nodes[m + 1]:totable()
      for r = 1, 500 do
        for i = 1, #par[r] do ok = ok and M[par[r][i]][ch[r][2 * i - 1]][ch[r][2 * i]] > 0 end
      end
    end
    test.ok(ok, "sample k " .. k .. ": every parent below level k has children its rules allow")
    test.is(s.nodes[1] ~= nil, k <= 1, "sample k " .. k .. ": level 1 exists only when k <= 1")
    for _, m in ipairs({ 0, math.max(k, 2), 4 }) do
      local anc = H.ancestors(s, m):totable()
      local nm = s.nodes[m]:totable()
      local per = 16 // (1 << m)
      local aok = true
      for r = 1, 500 do for j = 1, 16 do aok = aok and anc[r][j] == nm[r][(j - 1) // per + 1] end end
      test.ok(aok, string.format("sample k %d, ancestors(level %d): leaf j's ancestor is node ceil(j / %d) of level %d", k, m, per, m))
    end
  end
  -- k = 0 data and a non-ambiguous grammar: exact BP recovers the root every time
  local s = H.sample(g, 1000)
  test.is(H.accuracy(H.root_posterior(g, s.tokens), s.root), 1.0, "exact BP on k = 0 data of a non-ambiguous grammar: accuracy 1")
  -- reproducibility
  T.seed(42); local a = H.sample(g, 100, { k = 1 })
  T.seed(42); local b = H.sample(g, 100, { k = 1 })
  test.is({ a.tokens, a.root }, { b.tokens, b.root }, "sample: the same seed gives the same data")
end

-- mask_one: one position per row, the mask id there, targets are the original leaves
do
  local g = H.grammar { q = 4, depth = 3, seed = 1 }
  T.seed(8)
  local s = H.sample(g, 4000)
  local masked, pos, tgt = H.mask_one(s.tokens, g)
  local m, t, p, o = masked:totable(), tgt:totable(), pos:totable(), s.tokens:totable()
  local ok, hist = true, {}
  for r = 1, 4000 do
    for j = 1, 8 do
      if j == p[r] then ok = ok and m[r][j] == g.mask and t[r] == o[r][j]
      else ok = ok and m[r][j] == o[r][j] end
    end
    hist[p[r]] = (hist[p[r]] or 0) + 1
  end
  test.ok(ok, "mask_one: exactly the drawn position holds the mask, targets hold the leaf")
  local spread = true
  for j = 1, 8 do spread = spread and math.abs(hist[j] - 500) < 5 * math.sqrt(500 * 7 / 8) end
  test.ok(spread, "mask_one: positions uniform over the leaves (each count within 5 sd of 500)")
end

-- accuracy and KL on hand-made rows
do
  local p = T.tensor({ { 0.7, 0.2, 0.1 }, { 0.1, 0.1, 0.8 }, { 0.5, 0.4, 0.1 } })
  test.close(H.accuracy(p, T.tensor({ 1, 3, 2 }, "int32")), 2 / 3, 1e-12, "accuracy: argmax against labels")
  local qp = T.tensor({ { 0.5, 0.25, 0.25 }, { 0.1, 0.1, 0.8 }, { 1, 0, 0 } })
  local pp = T.tensor({ { 1, 0, 0 }, { 0.1, 0.1, 0.8 }, { 0.5, 0.5, 0 } })
  local kl = H.kl(pp, qp):totable()
  test.close(kl[1], math.log(2), 1e-6, "kl: one-hot p against q = -log q(true)")
  test.close(kl[2], 0, 1e-6, "kl: KL(p || p) = 0")
  test.ok(kl[3] > 30, "kl: mass where q is 0 costs about -log 1e-30")
end

-- ---------------------------------------------------------------------------------------------
-- Errors: clear messages, the process survives

do
  local g = H.grammar { q = 3, depth = 2, seed = 1 }
  test.throws(function() H.grammar { q = 1 } end, "q must be an integer in 2..64", "grammar: q = 1 is refused")
  test.throws(function() H.grammar { q = 4, sigma = -1 } end, "sigma must be a finite number >= 0", "grammar: negative sigma")
  test.throws(function() H.grammar { q = 4, depht = 3 } end, "unknown option 'depht'", "grammar: a misspelt option is named")
  test.throws(function() H.grammar { M = { { { 0.5, 0.1 }, { 0, 0 } }, { { 1, 0 }, { 0, 0 } } } } end, "M[1] sums to 0.6",
    "grammar: a row of M that is not a distribution")
  test.throws(function() H.grammar { M = { { { 1, 0 } } } } end, "M must be [q, q, q]", "grammar: a mis-shaped M")
  test.throws(function() H.sample(g, 10, { k = 3 }) end, "k (the filtering level) must be an integer in 0..2",
    "sample: k beyond the depth")
  test.throws(function() H.sample(g, 0) end, "n must be an integer", "sample: n = 0")
  test.throws(function() H.sample({}, 10) end, "expected a grammar", "sample: not a grammar")
  test.throws(function() H.root_posterior(g, T.tensor({ { 1, 2, 3 } }, "int32")) end, "rows have 3 leaves, the grammar's tree has 4",
    "root_posterior: wrong number of leaves")
  test.throws(function() H.root_posterior(g, T.tensor({ { 1, 2, 3, 5 } }, "int32")) end, "token ids must be in 1..4",
    "root_posterior: an id beyond the mask")
  test.throws(function() H.root_posterior(g, T.tensor({ { 1, 2, 3, 3 } })) end, "int32 tensor",
    "root_posterior: float tokens")
  test.throws(function() H.leaf_marginal(g, T.tensor({ { 1, 2, 3, 3 } }, "int32"), 5) end, "positions must be in 1..4",
    "leaf_marginal: a position beyond the leaves")
  test.throws(function() H.leaf_marginal(g, T.tensor({ { 1, 2, 3, 3 } }, "int32"), T.tensor({ 1, 2 }, "int32")) end,
    "one per row", "leaf_marginal: one position per row")
  test.throws(function() H.ancestors(H.sample(g, 4, { k = 2 }), 1) end, "level 1 was not drawn", "ancestors: a level filtering skipped")
  test.throws(function() g:path_matrices(5) end, "k must be an integer in 0..2", "path_matrices: k beyond the depth")
  test.throws(function() H.kl(T.ones(2, 3), T.ones(3, 2)) end, "same shape", "kl: shapes must match")
  test.lives(function() H.root_posterior(g, T.tensor({ { 1, 2, 3, 3 } }, "int32")) end, "the process survives every error above")
end

test.done()
