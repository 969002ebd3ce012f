-- make bench: training step, forward and full-cache forward of the experiments'
-- model sizes, for milua and for the project's PyTorch reference (tests/reference/transformer.py)
-- in the same run.
--   milua bench/bench.lua [--steps=N] [--out=FILE] [--quick] [--instructions]
local cli = require "milua.cli"
local json = require "milua.json"

local opts = cli.parse(arg, {
  { "steps", 20, "timed steps per measurement" },
  { "out", "out/bench.json", "where to write the results as JSON" },
  { "quick", false, "two steps, to check that the benchmark runs" },
  { "reference", "tests/reference/transformer.py", "the PyTorch reference script" },
  { "instructions", false, "also count forward instructions with and without hooks under callgrind (slow: ~1 min per size)" },
}, "milua bench/bench.lua: speed against the PyTorch reference on this machine")
local steps = opts.quick and 2 or opts.steps

local sizes = {
  { name = "addition 1L d510", n_layers = 1, d_model = 510, n_heads = 3, d_head = 170, d_mlp = 2040, d_vocab = 14,
    n_ctx = 18, act_fn = "relu", normalization = "LN", causal = true, batch = 64, seq = 18 },
  { name = "encoder 2L d128", n_layers = 2, d_model = 128, n_heads = 4, d_head = 32, d_mlp = 512, d_vocab = 36,
    n_ctx = 64, act_fn = "gelu", normalization = "LN", causal = false, batch = 64, seq = 64 },
  { name = "deep 6L d128 1H", n_layers = 6, d_model = 128, n_heads = 1, d_head = 128, d_mlp = 512, d_vocab = 35,
    n_ctx = 48, act_fn = "gelu", normalization = "LN", causal = true, batch = 64, seq = 48 },
  { name = "lego 4L d64", n_layers = 4, d_model = 64, n_heads = 4, d_head = 16, d_mlp = 256, d_vocab = 36,
    n_ctx = 32, act_fn = "gelu", normalization = "LN", causal = false, batch = 128, seq = 32 },
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

-- forward FLOPs of one batch: every weight product plus the two attention products
local function flops(s)
  local D, H, E, M, V, L, B, T = s.d_model, s.n_heads, s.d_head, s.d_mlp, s.d_vocab, s.n_layers, s.batch, s.seq
  local per_token = L * (2 * D * 3 * H * E + 2 * H * E * D + 2 * 2 * D * M) + 2 * D * V
  local attn = L * 2 * 2 * T * T * H * E
  return B * T * per_token + B * attn
end

local milua = arg[-1] or "./milua"
local sgemm = run(threads_env(1) .. milua .. " bench/worker.lua " .. quote(json.encode { sgemm = 1024 }) .. " " .. (opts.quick and 1 or 5))
local sgemm2 = run(threads_env(2) .. milua .. " bench/worker.lua " .. quote(json.encode { sgemm = 1024 }) .. " " .. (opts.quick and 1 or 5))
local peak = math.max(sgemm and sgemm.gflops or 0, sgemm2 and sgemm2.gflops or 0)
print(string.format("machine sgemm 1024^3: %.1f GFLOP/s (1 thread), %.1f (2 threads)", sgemm and sgemm.gflops or 0,
  sgemm2 and sgemm2.gflops or 0))

local nohooks = os.getenv("MILUA_NOHOOKS") or "build-nohooks/milua"
local has_valgrind = os.execute("command -v valgrind >/dev/null 2>&1") == true
local results, ratios = { sgemm_gflops = peak, sizes = {} }, {}
print(string.format("\n%-18s %8s %8s %8s %8s %8s %8s %7s %7s %8s %7s %6s", "size", "milua ms", "torch ms", "ratio",
  "tok/s", "GFLOP/s", "of peak", "fwd ms", "nohook", "instr", "cache/f", "mem"))
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
  local torch, torch_t
  for _, t in ipairs { 1, 2 } do
    for _ = 1, reps do
      local r = run(string.format("/usr/bin/python3 %s bench %s --steps %d --threads %d", opts.reference, cfgfile, steps, t))
      if r and (not torch or r.ms_per_step < torch.ms_per_step) then torch, torch_t = r, t end
    end
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
  local entry = { name = s.name, config = json.decode(c) }
  if best then
    local fl = 3 * flops(s)
    entry.milua = { threads = best_t, train_ms = best.train_ms, forward_ms = best.forward_ms, cache_ms = best.cache_ms,
      tokens_per_s = s.batch * s.seq / (best.train_ms / 1e3), gflops = fl / (best.train_ms / 1e3) / 1e9,
      peak_rss_bytes = best.peak_rss_bytes, base_rss_bytes = best.base_rss_bytes, needed_bytes = best.needed_bytes }
    entry.milua.fraction_of_sgemm = peak > 0 and entry.milua.gflops / peak or nil
    entry.cache_over_forward = best.cache_ms / best.forward_ms
    -- what training added to the process (its peak resident size less the size before the model existed)
    entry.memory_ratio = (best.peak_rss_bytes - (best.base_rss_bytes or 0)) / best.needed_bytes
  end
  if torch then entry.torch = { threads = torch_t, train_ms = torch.ms_per_step, engine = torch.engine } end
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
  print(string.format("%-18s %8.1f %8.1f %8.2f %8.0f %8.1f %7.0f%% %7.1f %7.3f %8s %7.2f %6.2f", s.name, m.train_ms or 0 / 0,
    torch and torch.ms_per_step or 0 / 0, entry.ratio or 0 / 0, m.tokens_per_s or 0 / 0, m.gflops or 0 / 0,
    100 * (m.fraction_of_sgemm or 0 / 0), m.forward_ms or 0 / 0, entry.forward_vs_nohooks or 0 / 0,
    entry.forward_instructions_vs_nohooks and string.format("%.5f", entry.forward_instructions_vs_nohooks) or "-",
    entry.cache_over_forward or 0 / 0, entry.memory_ratio or 0 / 0))
end
local logsum = 0
for _, r in ipairs(ratios) do logsum = logsum + math.log(r) end
results.geomean_ratio = #ratios > 0 and math.exp(logsum / #ratios) or nil
print(string.format("\nmilua/PyTorch training-step time, geometric mean over sizes: %.2f (goal <= 0.6; each <= 0.8)",
  results.geomean_ratio or 0 / 0))
print("columns: ratio = milua/PyTorch (each at its faster of 1 or 2 threads); nohook = forward time / a build with")
print("hooks compiled out (one thread, fastest of three alternations); instr = the same in instructions (callgrind); cache/f = run_with_cache of every hook / plain forward; mem = (peak RSS - RSS before the model)")
print("      / (params + grads + 2 AdamW moments + activations saved for backward)")
local dir = opts.out:match("^(.*)/[^/]*$")
if dir then require("milua.sys").mkdir(dir) end
json.write(opts.out, results)
print("written " .. opts.out)
