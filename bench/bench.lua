-- make bench: training step, forward and full-cache forward of the papers' model sizes, for
-- milua and for the project's PyTorch reference (tests/reference/transformer.py) in the same
-- run, and the GEMM throughput this machine reaches on each size's own products.
--   milua bench/bench.lua [--steps=N] [--out=FILE] [--quick] [--instructions]
--
-- Per size it prints milua's step time (its faster of 1 and 2 threads), PyTorch's at its best
-- setting (1 or 2 intra-op threads, each with its BLAS free to use every core and pinned to
-- the same count; the fastest of the four counts, and the table names it), their ratio, the
-- step's GFLOP/s, and that rate as a fraction of the best GEMM throughput: every matrix
-- product of the step (forward and both backward products) timed alone by bench-gemm
-- (bench/gemm.c) with each engine (OpenBLAS, oneDNN) at 1 and 2 threads, the fastest of each
-- counting. A fraction near 1 means the step runs at the speed of its products alone.
local cli = require "milua.cli"
local json = require "milua.json"

local opts = cli.parse(arg, {
  { "steps", 20, "timed steps per measurement" },
  { "out", "out/bench.json", "where to write the results as JSON" },
  { "quick", false, "two steps, to check that the benchmark runs" },
  { "reference", "tests/reference/transformer.py", "the PyTorch reference script" },
  { "gemm", "build/bench-gemm", "the GEMM microbenchmark (make bench builds it)" },
  { "instructions", false, "also count forward instructions with and without hooks under callgrind (slow: ~1 min per size)" },
}, "milua bench/bench.lua: speed against the PyTorch reference on this machine")
local steps = opts.quick and 2 or opts.steps

-- the papers' models as their experiment scripts define them (experiments/*.lua and their folders)
local sizes = {
  { name = "addition 1L d510", n_layers = 1, d_model = 510, n_heads = 3, d_head = 170, d_mlp = 2040, d_vocab = 14,
    n_ctx = 18, act_fn = "relu", normalization = "LN", causal = true, batch = 64, seq = 18 },
  { name = "deep 6L d128 1H", n_layers = 6, d_model = 128, n_heads = 1, d_head = 128, d_mlp = 512, d_vocab = 35,
    n_ctx = 48, act_fn = "gelu", normalization = "LN", causal = true, batch = 64, seq = 48 },
  { name = "encoder 2L d128", n_layers = 2, d_model = 128, n_heads = 4, d_head = 32, d_mlp = 512, d_vocab = 36,
    n_ctx = 64, act_fn = "gelu", normalization = "LN", causal = false, batch = 64, seq = 64 },
  -- experiments/lego: encoder, 4 heads
  { name = "lego 4L d64 4H", n_layers = 4, d_model = 64, n_heads = 4, d_head = 16, d_mlp = 256, d_vocab = 36,
    n_ctx = 27, act_fn = "gelu", normalization = "LN", causal = false, batch = 128, seq = 27 },
  -- experiments/tree_paths/train.lua at 8 nodes: n_ctx 4n+1 = 33, vocabulary 3+2n = 19
  { name = "tree paths 4L d64", n_layers = 4, d_model = 64, n_heads = 1, d_head = 64, d_mlp = 256, d_vocab = 19,
    n_ctx = 33, act_fn = "gelu", normalization = "LN", causal = true, batch = 64, seq = 33 },
  -- experiments/hierarchical/model.lua, the root classifier: post-LN, sinusoidal positions,
  -- every position flattened into one linear readout over q = 4 symbols, depth 4 (16 leaves)
  { name = "hierarchical 4L d64", n_layers = 4, d_model = 64, n_heads = 1, d_head = 64, d_mlp = 256, d_vocab = 4,
    n_ctx = 16, act_fn = "relu", normalization = "LN", ln_position = "post", causal = false, positional = "sinusoidal",
    readout = "flatten", d_out = 4, batch = 64, seq = 16 },
  -- experiments/intermediate_values.lua at its default (pre-LN; --ln post is the paper's BERT):
  -- [CLS] tanh pooler, one regression output trained by MSE; n_ctx 22 = [CLS] + the longest
  -- depth-2 tree of three-digit leaves
  { name = "interm. values 4L d64", n_layers = 4, d_model = 64, n_heads = 4, d_head = 16, d_mlp = 256, d_vocab = 16,
    n_ctx = 22, act_fn = "gelu", normalization = "LN", causal = false, readout = "cls_pooler",
    d_out = 1, batch = 64, seq = 22 },
}

local function run(cmd)
  local f = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = f:read("a")
  f:close()
  local line = out:match("({.*})%s*$")
  return line and json.decode(line) or nil
end

local function threads_env(t) return string.format("OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d ", t, t) end
local function cfg_json(s)
  local c = {}
  for k, v in pairs(s) do if k ~= "name" then c[k] = v end end
  return json.encode(c)
end
local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- every matrix product of one training step: {ta, tb, M, N, K, count, times}. count > 0 marks
-- attention's independent per-(batch, head) products; times is how often the step runs it.
-- A linear layer x [R,K] @ W [K,N] runs y = x W, dx = g W^T and dW = x^T g.
local function products(s)
  local D, H, E, F, L, B, T = s.d_model, s.n_heads, s.d_head, s.d_mlp, s.n_layers, s.batch, s.seq
  local R, HE, list, index = B * T, H * E, {}, {}
  local function add(ta, tb, M, N, K, count, times)
    local key = string.format("%d,%d,%d,%d,%d", ta, tb, M, N, K) .. (count > 0 and ",x" .. count or "")
    if index[key] then index[key].times = index[key].times + times; return end
    index[key] = { key = key, ta = ta, tb = tb, M = M, N = N, K = K, count = count, times = times }
    list[#list + 1] = index[key]
  end
  local function linear(rows, K, N, times)
    add(0, 0, rows, N, K, 0, times); add(0, 1, rows, K, N, 0, times); add(1, 0, K, N, rows, 0, times)
  end
  linear(R, D, HE, 3 * L)                     -- q, k, v
  linear(R, HE, D, L)                         -- attention output
  if F > 0 then linear(R, D, F, L); linear(R, F, D, L) end
  local ro = s.readout or "unembed"
  if ro == "unembed" then linear(R, D, s.d_vocab_out or s.d_vocab, 1)
  elseif ro == "flatten" then linear(B, T * D, s.d_out, 1)
  else linear(B, D, D, 1); linear(B, D, s.d_out, 1) end   -- cls_pooler
  -- per (batch, head): scores q k^T and its dP = dz v^T; z = P v and dq = dS k; dk = dS^T q and dv = P^T dz
  add(0, 1, T, T, E, B * H, 2 * L); add(0, 0, T, E, T, B * H, 2 * L); add(1, 0, T, E, T, B * H, 2 * L)
  return list
end

local function flops_of(p) return 2.0 * p.M * p.N * p.K * math.max(p.count, 1) * p.times end

-- each product alone, each engine, 1 and 2 threads: the fastest GFLOP/s per product
local gemm_bin = opts.gemm
local function gemm_rates(list)
  local best, detail = {}, {}
  for _, t in ipairs { 1, 2 } do
    local args = {}
    for _, p in ipairs(list) do args[#args + 1] = p.key end
    local f = assert(io.popen(string.format("OMP_NUM_THREADS=%d %s --ms %d --rounds %d %s 2>&1", t, gemm_bin,
      opts.quick and 2 or 10, opts.quick and 1 or 5, table.concat(args, " "))))
    for line in f:lines() do
      local r = line:match("^{") and json.decode(line)
      if r then
        detail[#detail + 1] = r
        local b = math.max(r.openblas, r.onednn)
        if not best[r.shape] or b > best[r.shape] then best[r.shape] = b end
      end
    end
    f:close()
  end
  return best, detail
end

local milua = arg[-1] or "./milua"
local nohooks = os.getenv("MILUA_NOHOOKS") or "build-nohooks/milua"
local has_valgrind = os.execute("command -v valgrind >/dev/null 2>&1") == true
local results, ratios = { sizes = {} }, {}
-- PyTorch's settings: intra-op threads, and its BLAS either free (no thread variables, so it
-- uses every core) or pinned to the same count
local torch_settings = {
  { threads = 1, blas = "free" }, { threads = 1, blas = "pinned" }, { threads = 2, blas = "free" }, { threads = 2, blas = "pinned" },
}
local function torch_env(st)
  if st.blas == "free" then return "env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS -u MKL_NUM_THREADS " end
  return threads_env(st.threads)
end
local header = string.format("%-22s %8s %8s %-10s %6s %8s %6s %7s %7s %8s %7s %6s", "size", "milua ms", "torch ms",
  "torch set", "ratio", "GFLOP/s", "ofGEMM", "fwd ms", "nohook", "instr", "cache/f", "mem")
print("\n" .. header)
for _, s in ipairs(sizes) do
  local c = cfg_json(s)
  local best, best_t
  -- the machine (a VM) moves step times by 10-20% from one process to the next: each side
  -- gets two processes per thread count, and its fastest counts
  local reps = opts.quick and 1 or 2
  for _, t in ipairs { 1, 2 } do
    for _ = 1, reps do
      local r = run(threads_env(t) .. milua .. " bench/worker.lua " .. quote(c) .. " " .. steps)
      if r and (not best or r.train_ms < best.train_ms) then best, best_t = r, t end
    end
  end
  local cfgfile = os.tmpname()
  local f = assert(io.open(cfgfile, "w")); f:write(c); f:close()
  local torch, torch_set, torch_all = nil, nil, {}
  for _, st in ipairs(torch_settings) do
    local fastest
    for _ = 1, reps do
      local r = run(torch_env(st) .. string.format("/usr/bin/python3 %s bench %s --steps %d --threads %d", opts.reference,
        cfgfile, steps, st.threads))
      if r and (not fastest or r.ms_per_step < fastest) then fastest = r.ms_per_step end
      if r and (not torch or r.ms_per_step < torch.ms_per_step) then torch, torch_set = r, st end
    end
    torch_all[#torch_all + 1] = { threads = st.threads, blas = st.blas, train_ms = fastest }
  end
  os.remove(cfgfile)
  -- hooks vs hooks compiled out: a difference of 2% is below the run-to-run noise of one
  -- process each, so the two builds alternate three times on one thread and the fastest counts
  local fwd_hooks, fwd_nohooks = math.huge, math.huge
  for _ = 1, opts.quick and 1 or 3 do
    local a = run(threads_env(1) .. milua .. " bench/worker.lua " .. quote(c) .. " " .. steps .. " forward")
    local b = run(threads_env(1) .. nohooks .. " bench/worker.lua " .. quote(c) .. " " .. steps .. " forward")
    if a then fwd_hooks = math.min(fwd_hooks, a.forward_ms) end
    if b then fwd_nohooks = math.min(fwd_nohooks, b.forward_ms) end
  end
  -- the step's products alone at their best engine and thread count: the time they need
  local list = products(s)
  local rates, gemm_detail = gemm_rates(list)
  local fl, gemm_s = 0, 0
  for _, p in ipairs(list) do
    fl = fl + flops_of(p)
    gemm_s = gemm_s + (rates[p.key] and flops_of(p) / (rates[p.key] * 1e9) or 0 / 0)
  end
  local entry = { name = s.name, config = json.decode(c), step_gflop = fl / 1e9, gemm_ms = gemm_s * 1e3,
    gemm_gflops = fl / gemm_s / 1e9, gemm_products = gemm_detail }
  if best then
    entry.milua = { threads = best_t, train_ms = best.train_ms, forward_ms = best.forward_ms, cache_ms = best.cache_ms,
      tokens_per_s = s.batch * s.seq / (best.train_ms / 1e3), gflops = fl / (best.train_ms / 1e3) / 1e9,
      peak_rss_bytes = best.peak_rss_bytes, base_rss_bytes = best.base_rss_bytes, needed_bytes = best.needed_bytes }
    entry.milua.fraction_of_gemm = gemm_s * 1e3 / best.train_ms
    entry.cache_over_forward = best.cache_ms / best.forward_ms
    -- what training added to the process (its peak resident size less the size before the model existed)
    entry.memory_ratio = (best.peak_rss_bytes - (best.base_rss_bytes or 0)) / best.needed_bytes
  end
  if torch then
    entry.torch = { threads = torch_set.threads, blas = torch_set.blas, train_ms = torch.ms_per_step, engine = torch.engine,
      settings = torch_all }
  end
  -- with --instructions, the same comparison in instructions (callgrind): deterministic,
  -- where the times above move by several percent from one process to the next
  if opts.instructions and has_valgrind then
    local small = json.decode(c)
    small.batch = 4   -- the hook checks cost the same per forward at any batch: a small one is the harder test
    local cs = json.encode(small)
    local function ir(bin, n)
      local f = assert(io.popen(threads_env(1) .. "valgrind --tool=callgrind --callgrind-out-file=/dev/null " .. bin ..
        " bench/worker.lua " .. quote(cs) .. " " .. n .. " forwards 2>&1"))
      local out = f:read("a")
      f:close()
      return tonumber((out:match("Collected : (%d+)")))
    end
    local h1, h3, n1, n3 = ir(milua, 1), ir(milua, 3), ir(nohooks, 1), ir(nohooks, 3)
    if h1 and h3 and n1 and n3 then entry.forward_instructions_vs_nohooks = (h3 - h1) / (n3 - n1) end
  end
  if fwd_nohooks < math.huge and fwd_hooks < math.huge then
    entry.forward_vs_nohooks = fwd_hooks / fwd_nohooks
    entry.forward_1thread_ms = { hooks = fwd_hooks, nohooks = fwd_nohooks }
  end
  if best and torch then
    entry.ratio = best.train_ms / torch.ms_per_step
    ratios[#ratios + 1] = entry.ratio
  end
  results.sizes[#results.sizes + 1] = entry
  local m = entry.milua or {}
  print(string.format("%-22s %8.1f %8.1f %-10s %6.2f %8.1f %5.0f%% %7.1f %7.3f %8s %7.2f %6.2f", s.name, m.train_ms or 0 / 0,
    torch and torch.ms_per_step or 0 / 0, torch_set and string.format("%dt %s", torch_set.threads, torch_set.blas) or "-",
    entry.ratio or 0 / 0, m.gflops or 0 / 0, 100 * (m.fraction_of_gemm or 0 / 0), m.forward_ms or 0 / 0,
    entry.forward_vs_nohooks or 0 / 0,
    entry.forward_instructions_vs_nohooks and string.format("%.5f", entry.forward_instructions_vs_nohooks) or "-",
    entry.cache_over_forward or 0 / 0, entry.memory_ratio or 0 / 0))
end
local logsum = 0
for _, r in ipairs(ratios) do logsum = logsum + math.log(r) end
results.geomean_ratio = #ratios > 0 and math.exp(logsum / #ratios) or nil
print(string.format("\nmilua/PyTorch training-step time, geometric mean over sizes: %.2f (goal <= 0.45; each size <= 0.5"
  .. " or ofGEMM >= 90%%)", results.geomean_ratio or 0 / 0))
print([[columns: milua ms = a training step (forward, backward, AdamW) at milua's faster of 1 or 2 threads;
  torch ms / torch set = PyTorch's fastest setting: intra-op threads (1t, 2t) and its BLAS free (every core) or pinned;
  ratio = milua / PyTorch; GFLOP/s = the step's matrix-product flops / milua's step time;
  ofGEMM = the time those products need alone (bench-gemm, best engine and thread count per product) / milua's step;
  nohook = forward time / a build with hooks compiled out (one thread, fastest of three alternations);
  instr = the same in instructions (callgrind, with --instructions); cache/f = run_with_cache of every hook / plain
  forward; mem = (peak RSS - RSS before the model) / (params + grads + 2 AdamW moments + activations saved for backward)]])
local dir = opts.out:match("^(.*)/[^/]*$")
if dir then require("milua.sys").mkdir(dir) end
json.write(opts.out, results)
print("written " .. opts.out)
