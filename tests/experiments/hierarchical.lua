-- The hierarchical-filtering experiments end to end (--quick): results.json keys and ranges,
-- the BP accuracies recomputed here by enumerating every tree of the run's own grammar on its
-- own test sets, invariants of the measurements, PNGs, reproducibility at a fixed seed and
-- thread count, and the flag errors.
local T = require "milua.tensor"
local test = require "milua.test"
local json = require "milua.json"

local milua = test.milua()
local dir = test.tmpdir()

-- under the sanitizers everything is ~10x slower: a shorter run still covers every line
local sanitized = os.getenv("MILUA_SANITIZED")
local extras = { hierarchical_filtering = " --steps 12 --filtered-epochs 1 --train-size 512 --n-test 200 --n-filtered-test 100",
  hierarchical_mlm = " --steps 12 --train-size 512 --n-test 200 --n-probe 100" }

local function run(script, out, flags)
  return test.run_script("experiments/" .. script .. ".lua", "--quick" .. (sanitized and extras[script] or "") .. (flags or ""),
    { out = out, name = script })
end

local function all_in(list, lo, hi, n)
  if type(list) ~= "table" or #list == 0 or (n and #list ~= n) then return false end
  for _, v in ipairs(list) do if type(v) ~= "number" or v ~= v or v < lo or v > hi then return false end end
  return true
end

-- ---- exact inference by enumeration, from the definition (independent of milua.data.hierarchy) ----
-- every tree of depth l under filtering k: joint[leaf string][root] = P(root, leaves)
local function enumerate(M, q, l, k)
  local function expand(cur, levels, p, fn)
    if p == 0 then return end
    if levels == 0 then fn(cur, p); return end
    local nxt = {}
    local function rec(j, pj)
      if pj == 0 then return end
      if j > #cur then expand({ table.unpack(nxt) }, levels - 1, pj, fn); return end
      for b = 1, q do for c = 1, q do
        local w = M[cur[j]][b][c]
        if w > 0 then nxt[2 * j - 1], nxt[2 * j] = b, c; rec(j + 1, pj * w) end
      end end
    end
    rec(1, p)
  end
  local nk = 1 << k
  local P = {}          -- P[i][a][b]: node i of level k given the root, in the full hierarchy
  for i = 1, nk do P[i] = {} for a = 1, q do P[i][a] = {} for b = 1, q do P[i][a][b] = 0 end end end
  for a = 1, q do
    expand({ a }, k, 1, function(lv, p) for i = 1, nk do P[i][a][lv[i]] = P[i][a][lv[i]] + p end end)
  end
  local joint = {}
  for a = 1, q do
    local lk = {}
    local function rec(i, p)
      if p == 0 then return end
      if i > nk then
        expand({ table.unpack(lk) }, l - k, p, function(leaves, pl)
          local key = table.concat(leaves, ",")
          joint[key] = joint[key] or {}
          joint[key][a] = (joint[key][a] or 0) + pl
        end)
        return
      end
      for b = 1, q do lk[i] = b; rec(i + 1, p * P[i][a][b]) end
    end
    rec(1, 1 / q)
  end
  return joint
end

local function argmax(t, q)
  local best, at = -1, 0
  for a = 1, q do if (t[a] or 0) > best then best, at = t[a] or 0, a end end
  return at
end

-- ---- hierarchical_filtering ----
do
  local out = dir .. "/hf"
  local res = run("hierarchical_filtering", out)
  test.pinned(res, "hierarchical_filtering", "experiments/hierarchical_filtering.lua",
    "--quick" .. (sanitized and extras.hierarchical_filtering or ""))
  local cfg = res.config or {}
  local l, q = cfg.depth, cfg.q
  test.is({ l, q }, { 3, 3 }, "filtering --quick: a depth-3 tree over 3 symbols")
  l, q = l or 3, q or 3
  test.ok(all_in({ res.acc, res.bp_exact_acc }, 0, 1), "filtering: acc and bp_exact_acc in [0, 1]")
  test.is(res.bp_exact_acc, 1, "filtering: exact BP on k = 0 data of a non-ambiguous grammar is always right")
  test.ok(all_in(res.bp_acc_by_k, 0, 1, l + 1), "filtering: bp_acc_by_k, one per k_BP = 0..l")
  test.ok(type(res.kl_bp) == "table" and all_in({ res.kl_bp.first, res.kl_bp.last }, 0, 100), "filtering: kl_bp {first, last}")
  local c = res.curve or {}
  local nT = type(c.steps) == "table" and #c.steps or 0
  test.ok(nT >= math.min(20, cfg.steps or 0) and nT > 0 and all_in(c.acc, 0, 1, nT), string.format("filtering: curve of %d evaluations, acc in [0, 1]", nT))
  local inc = nT > 0
  for t = 2, nT do inc = inc and c.steps[t] > c.steps[t - 1] end
  test.ok(inc and c.steps[nT] == cfg.steps, "filtering: curve.steps increase to the last step")
  local shape_ok = type(c.kl_by_k) == "table" and #c.kl_by_k == l + 1 and type(c.acc_on_filtered) == "table"
    and #c.acc_on_filtered == l + 1
  for k = 1, shape_ok and l + 1 or 0 do
    shape_ok = shape_ok and all_in(c.kl_by_k[k], 0, 100, nT) and all_in(c.acc_on_filtered[k], 0, 1, nT)
  end
  test.ok(shape_ok, "filtering: curve.kl_by_k and curve.acc_on_filtered are [k][t], k = 0..l")
  test.is(c.acc_on_filtered and c.acc_on_filtered[1], c.acc, "filtering: acc_on_filtered[k = 0] is the test accuracy")
  test.is(c.kl_by_k and c.kl_by_k[1] and { c.kl_by_k[1][1], c.kl_by_k[1][nT] } or nil, { res.kl_bp.first, res.kl_bp.last },
    "filtering: kl_bp first/last are the ends of the KL-to-exact-BP curve")
  test.close(c.acc and c.acc[nT] or -1, res.acc, 1e-9, "filtering: the last curve point is the final accuracy")
  test.ok(type(res.filtered) == "table" and #res.filtered == 2, "filtering: two filtered-training models (k = l and mid k)")
  for _, f in ipairs(res.filtered or {}) do
    test.ok(math.type(f.k) == "integer" and f.k >= 1 and f.k <= l and all_in({ f.acc, f.bp_exact_acc }, 0, 1),
      "filtering: filtered entry {k, acc, bp_exact_acc} for k = " .. tostring(f.k))
    test.close(f.bp_exact_acc, res.bp_table[f.k + 1][f.k + 1], 1e-12, "filtering: its BP optimum is the BP table's diagonal")
  end
  test.ok(all_in({ res.train_seconds }, 0, 1e6) and res.seed == 1 and res.grammar_seed == 1, "filtering: train_seconds, seed, grammar_seed")
  for _, name in ipairs({ "root_vs_bp1", "root_vs_bp2", "kl_falls", "filtered_peak", "peak_order", "kl_min_order", "filtered_kl",
    "filtered_mid" }) do
    local ch = res.checks and res.checks[name]
    test.ok(type(ch) == "table" and type(ch.holds) == "boolean" and #ch.text > 0, "filtering: verdict " .. name)
  end
  -- the verdicts follow from the numbers
  local bp = res.bp_acc_by_k or {}
  test.is(res.checks.root_vs_bp1.holds, res.acc >= bp[2] - 0.03, "filtering: root_vs_bp1 is acc >= BP_k=1 - 0.03")
  test.is(res.checks.kl_falls.holds, res.kl_bp.last * 2 <= res.kl_bp.first, "filtering: kl_falls is a 2x fall")

  -- BP accuracies recomputed by enumeration on the run's own grammar and test sets
  local data = T.load(out .. "/data.safetensors")
  local M = data.M:totable()
  local worst = 0
  for kb = 0, l do
    local joint = enumerate(M, q, l, kb)
    for kd = 0, l do
      local toks, roots = data["test_k" .. kd .. ".tokens"]:totable(), data["test_k" .. kd .. ".root"]:totable()
      local right = 0
      for r = 1, #toks do
        if argmax(joint[table.concat(toks[r], ",")], q) == roots[r] then right = right + 1 end
      end
      worst = math.max(worst, math.abs(right / #toks - res.bp_table[kd + 1][kb + 1]))
      if kd == 0 then worst = math.max(worst, math.abs(right / #toks - bp[kb + 1])) end
    end
  end
  test.ok(worst < 1e-9, string.format("filtering: every BP accuracy (k_data x k_BP) equals enumeration's (max diff %.3g)", worst))

  for _, p in ipairs({ "acc_curve", "kl_curve", "filtered_curve", "bp_table" }) do
    test.png(out .. "/" .. p .. ".png", "filtering: " .. p .. ".png is a PNG", 16)
  end

  -- reproducible: the same seed and thread count retrain to the same numbers
  local res2 = run("hierarchical_filtering", dir .. "/hf2")
  test.is({ res2.acc, res2.curve and res2.curve.acc, res2.filtered and res2.filtered[1].acc },
    { res.acc, c.acc, res.filtered[1].acc }, "filtering: a second run at the same seed reproduces the curves exactly")
  -- a reused checkpoint gives the same numbers; another training seed keeps the grammar
  local res3 = run("hierarchical_filtering", out)
  test.ok(res3.reused == true and res3.acc == res.acc, "filtering: a rerun in the same --out reuses the models and measures the same")
  local res4 = run("hierarchical_filtering", dir .. "/hf_s2", " --seed 2")
  local d4 = T.load(dir .. "/hf_s2/data.safetensors")
  test.is(d4.M, data.M, "filtering: --seed changes the data and weights, not the grammar")
  test.isnt(d4["test_k0.tokens"], data["test_k0.tokens"], "filtering: --seed draws other test data")
  local res5 = run("hierarchical_filtering", dir .. "/hf_g2", " --grammar-seed 2")
  test.isnt(T.load(dir .. "/hf_g2/data.safetensors").M, data.M, "filtering: --grammar-seed draws another grammar")
  test.is(res5.grammar_seed, 2, "filtering: grammar_seed recorded")
end

-- ---- hierarchical_mlm ----
do
  local out = dir .. "/mlm"
  local res = run("hierarchical_mlm", out)
  test.pinned(res, "hierarchical_mlm", "experiments/hierarchical_mlm.lua", "--quick" .. (sanitized and extras.hierarchical_mlm or ""))
  local cfg = res.config or {}
  local l, q, nl = cfg.depth or 3, cfg.q or 3, cfg.n_layers or 3
  test.ok(all_in({ res.acc, res.bp_exact_acc }, 0, 1) and all_in({ res.kl_bp }, 0, 100), "mlm: acc, bp_exact_acc, kl_bp")
  local ba = res.block_attention
  local ok = type(ba) == "table" and #ba == nl
  for layer = 1, ok and nl or 0 do
    ok = ok and all_in(ba[layer], 0, 1 + 1e-6, l)
    -- a bigger block holds at least the mass of the smaller one inside it
    for level = 2, ok and l or 0 do ok = ok and ba[layer][level] >= ba[layer][level - 1] - 1e-6 end
  end
  test.ok(ok, "mlm: block_attention [layer][level], in [0, 1], growing with the block")
  local pa = res.probe_acc
  ok = type(pa) == "table" and #pa == nl + 1
  for layer = 1, ok and nl + 1 or 0 do ok = ok and all_in(pa[layer], 0, 1, l) end
  test.ok(ok, "mlm: probe_acc [layer 0..n_layers][level 0..l-1] in [0, 1]")
  test.ok(all_in({ res.train_seconds }, 0, 1e6) and res.seed == 1 and res.grammar_seed == 1, "mlm: train_seconds, seed, grammar_seed")
  for _, name in ipairs({ "mlm_vs_bp", "attention_blocks", "probe_order" }) do
    local ch = res.checks and res.checks[name]
    test.ok(type(ch) == "table" and type(ch.holds) == "boolean", "mlm: verdict " .. name)
  end
  -- the exact marginal's accuracy recomputed by enumeration on the run's masked test set
  local data = T.load(out .. "/data.safetensors")
  local joint = enumerate(data.M:totable(), q, l, 0)
  local toks, pos, tgt = data["test.tokens"]:totable(), data["test.positions"]:totable(), data["test.targets"]:totable()
  local right = 0
  for r = 1, #toks do
    local w = {}
    for v = 1, q do
      local t = { table.unpack(toks[r]) }
      t[pos[r]] = v
      local jr = joint[table.concat(t, ",")] or {}
      w[v] = 0
      for a = 1, q do w[v] = w[v] + (jr[a] or 0) end
    end
    if argmax(w, q) == tgt[r] then right = right + 1 end
  end
  test.close(res.bp_exact_acc, right / #toks, 1e-9, string.format("mlm: exact BP accuracy %.3f equals enumeration's", right / #toks))
  for _, p in ipairs({ "attention_L0", "block_attention", "probe_acc", "acc_curve" }) do
    test.png(out .. "/" .. p .. ".png", "mlm: " .. p .. ".png is a PNG", 16)
  end
  local res2 = run("hierarchical_mlm", dir .. "/mlm2")
  test.is({ res2.acc, res2.block_attention, res2.probe_acc }, { res.acc, res.block_attention, res.probe_acc },
    "mlm: a second run at the same seed reproduces accuracy, attention and probes exactly")
end

-- ---- flag errors: one line, non-zero exit, nothing written ----
do
  for _, case in ipairs({ { "hierarchical_filtering", "--mid-k 9", "mid%-k" }, { "hierarchical_filtering", "--grammar-seed abc", "grammar" },
    { "hierarchical_mlm", "--depht 3", "depht" } }) do
    local out = dir .. "/bad"
    local cmd = string.format("%s experiments/%s.lua --quick --out %s %s > %s/bad.log 2>&1", milua, case[1], out, case[2], dir)
    local ok = os.execute(cmd)
    local f = io.open(dir .. "/bad.log")
    local text = f and f:read("a") or ""
    if f then f:close() end
    test.ok(not ok and text:find(case[3]) ~= nil and not text:find("traceback"),
      string.format("%s %s: a clear error and a non-zero exit (%s)", case[1], case[2], text:gsub("\n.*", "")))
    test.ok(io.open(out .. "/results.json") == nil, case[1] .. " " .. case[2] .. ": nothing written")
  end
end

os.execute("rm -rf '" .. dir .. "'")
test.done()
