-- milua.lego_analysis: what the LEGO experiments share (experiments/lego_*.lua).
--
--   local LA = require "milua.lego_analysis"
--   LA.model(o)                        a bidirectional encoder with a binary output per position
--   LA.batcher(o)                      -> batch(step), stats: the training data with a chain-length
--                                         curriculum and operand supervision (see below)
--   LA.train(model, o)                 -> result (train.run plus the curriculum and the recipe)
--   LA.test_set(n, n_var, {ordered})   a fixed test set (drawn from the global generator)
--   LA.acc_by_depth(model, set)        -> {acc at depth 0, 1, ...} (Lua list, index depth + 1)
--   LA.assoc(model, set)               -> scores [n_layers, n_heads], uniform baseline, the scores
--                                         split by query role (defining / operand occurrence)
--   LA.mimic(model, o)                 attention-pattern pre-training (Zhang et al. 2022, sec. 4)
--   LA.flops(cfg, seq_len)             analytic forward FLOPs per sequence, by part
--   LA.forward_ms(model, tokens)       measured forward time
--   LA.plot_*                          the figures
local T = require "milua.tensor"
local nn = require "milua.nn"
local train = require "milua.train"
local lego = require "milua.data.lego"
local sys = require "milua.sys"
local json = require "milua.json"

local LA = {}

local CLAUSE = 5
local ID = lego.id

--- LA.model{n_var, n_layers, n_heads, d_model, d_mlp, tie_layers, fixed_patterns}
function LA.model(o)
  local d = o.d_model or 64
  return nn.transformer {
    n_layers = o.n_layers or 4, d_model = d, n_heads = o.n_heads or 4, d_head = d // (o.n_heads or 4),
    d_mlp = o.d_mlp or 4 * d, d_vocab = lego.n_vocab, d_vocab_out = 2, n_ctx = CLAUSE * o.n_var + 2,
    act_fn = "gelu", normalization = "LN", causal = false, tie_layers = o.tie_layers or false,
    fixed_patterns = o.fixed_patterns, init_range = o.init_range,
  }
end

-- Operand supervision: the operand x_(i-1) of clause i is labelled with its value too (depth i - 2),
-- weighted w. It asks every variable token for its value, which is what an association head
-- (a variable token looking up its identical twin) delivers.
local function add_operands(b, w, n_train)
  local tok, dep = b.tokens:totable(), b.depth:totable()
  local tgt, mask = b.targets:totable(), b.mask:totable()
  for r, ex in ipairs(b.examples) do
    for i = 2, ex.n_var do
      local p = ex.lhs_pos[i] + 3
      local d = dep[r][ex.lhs_pos[i - 1]]
      if tok[r][p] <= 26 and d < n_train then   -- a variable operand (not a literal)
        tgt[r][p] = ex.values[i - 1] + 1
        mask[r][p] = w
      end
    end
  end
  b.targets, b.mask = T.tensor(tgt, "int32"), T.tensor(mask, "float32")
end

-- Curriculum by segments: the chain of a batch's sequences is cut into independent chains of
-- len - 1 or len variables; the first clause of each piece gets its value as a literal, so the
-- values (the labels) stay the same and the depth restarts at 0. With several literals in a
-- sequence, the one-literal shortcut (xor every op with the only literal) no longer works: a
-- variable's value has to be fetched from its own chain.
local function segment(b, len, n_train)
  local tok, dep, mask = b.tokens:totable(), b.depth:totable(), b.mask:totable()
  for r, ex in ipairs(b.examples) do
    local start = 1
    while start <= ex.n_var do
      local l = len > 1 and T.random(len - 1, len) or 1
      for i = start, math.min(ex.n_var, start + l - 1) do
        local p = ex.lhs_pos[i]
        if i == start and i > 1 then
          tok[r][p + 2] = ID.val
          tok[r][p + 3] = ID[tostring(ex.values[i])]
        end
        dep[r][p] = i - start
        mask[r][p] = i - start < n_train and 1 or 0
      end
      start = start + l
    end
  end
  b.tokens, b.depth, b.mask = T.tensor(tok, "int32"), T.tensor(dep, "int32"), T.tensor(mask, "float32")
  b.segmented = true
end

--- LA.batcher{n_var, n_train_var, batch, tokens, ordered, curriculum = {start, extra, grow_at, max_stage}, operands, operands_final}
-- -> batch(step) for train.run, and a state table st. Without a curriculum every batch holds
-- `batch` single chains of n_var variables. With one, st.cur (the longest chain) starts at
-- curriculum.start and grows by one whenever the running training accuracy at every depth below
-- it reaches grow_at (0.95), or after max_stage steps (if set) at the same length; sequences then hold min(n_var, cur + extra) clauses cut into chains
-- of cur - 1 or cur variables (see segment), so they are also short at first. With `tokens`, the
-- batch size follows the sequence length (tokens // length rows). st.grown[n] is the step at
-- which chains of n were reached; st.observe(logits) is called by LA.train after every forward.
function LA.batcher(o)
  local n_var, n_train = o.n_var, o.n_train_var or o.n_var
  local cur_o = o.curriculum
  local st = { cur = cur_o and math.min(n_var, cur_o.start or 2) or n_var, ema = {}, step = 0 }
  st.grown = { [st.cur] = 0 }
  function st.clauses() return cur_o and math.min(n_var, st.cur + (cur_o.extra or 1)) or n_var end
  local function batch(step)
    st.step = step
    local nc = st.clauses()
    local rows = o.tokens and math.max(1, o.tokens // (CLAUSE * nc + 2)) or o.batch
    local b = lego.batch(rows, nc, { n_train_var = n_train, ordered = o.ordered })
    if st.cur < nc then segment(b, st.cur, n_train) end
    local w = o.operands or 0
    if st.cur >= n_var and o.operands_final then w = o.operands_final end
    if w > 0 then add_operands(b, w, n_train) end
    st.last = b
    return b.tokens, b.targets, b.mask
  end
  -- per-depth accuracy of the last batch's supervised variables (eval_mask, depth < n_train)
  function st.observe(logits)
    local b = st.last
    local ok = logits:argmax(3):eq(b.targets) * b.eval_mask
    local top = math.min(st.cur, n_train)
    local all = true
    for d = 0, top - 1 do
      local m = b.depth:eq(d)
      local n = m:sum():item()
      if n > 0 then
        local a = (ok * m):sum():item() / n
        st.ema[d] = st.ema[d] and 0.9 * st.ema[d] + 0.1 * a or a
      end
      if (st.ema[d] or 0) < (cur_o and cur_o.grow_at or 0.95) then all = false end
    end
    -- grow on accuracy, or after max_stage steps at one length: a run stuck at chains of four
    -- for 1500 steps (seed 6) reached full length too late to learn it
    local stuck = cur_o and cur_o.max_stage and st.step - (st.grown[st.cur] or 0) >= cur_o.max_stage
    if cur_o and (all or stuck) and st.cur < n_var then
      st.cur = st.cur + 1
      st.grown[st.cur] = st.step
      st.ema = {}
      if st.on_grow then st.on_grow(st.cur, st.step) end
    end
  end
  return batch, st
end

--- LA.test_set(n, n_var, {ordered, n_train_var}) -> a lego.batch of n sequences
function LA.test_set(n, n_var, o)
  o = o or {}
  return lego.batch(n, n_var, { ordered = o.ordered })
end

-- forward in chunks without gradients
local function forward_chunks(model, tokens, chunk, fn)
  local B = tokens:shape()[1]
  T.no_grad(function()
    for s = 1, B, chunk do
      local n = math.min(chunk, B - s + 1)
      fn(s, n, model:forward(tokens:narrow(1, s, n)))
    end
  end)
end

--- LA.acc_by_depth(model, set) -> list: acc[d + 1] = accuracy of the variables at chain depth d
function LA.acc_by_depth(model, set)
  local maxd = set.depth:max():item()
  local hit, cnt = {}, {}
  for d = 0, maxd do hit[d], cnt[d] = 0, 0 end
  forward_chunks(model, set.tokens, 256, function(s, n, logits)
    local tg, dp = set.targets:narrow(1, s, n), set.depth:narrow(1, s, n)
    local ok = logits:argmax(3):eq(tg)
    for d = 0, maxd do
      local m = dp:eq(d)
      hit[d] = hit[d] + (ok * m):sum():item()
      cnt[d] = cnt[d] + m:sum():item()
    end
  end)
  local acc = {}
  for d = 0, maxd do acc[d + 1] = cnt[d] > 0 and hit[d] / cnt[d] or 0 / 0 end
  return acc
end

--- LA.lens(model, resid) -> logits: the final LayerNorm and unembedding applied to any residual
-- stream [B, T, D] (the logit lens), differentiable
function LA.lens(m, resid)
  local P = m.params
  local x = resid - resid:mean(3, true)
  x = x / ((x * x):mean(3, true) + 1e-5):sqrt()
  return (x * P["ln_final.w"] + P["ln_final.b"]):matmul(P["unembed.W_U"]) + P["unembed.b_U"]
end

--- LA.train(model, o): train.run with the LEGO recipe.
-- o: n_var, n_train_var, steps, batch, lr, warmup, decay, min_lr, weight_decay, clip, curriculum,
--    operands, operands_final, ordered, eval_every, test (a test set), checkpoint, quiet
function LA.train(model, o)
  local batch, st = LA.batcher(o)
  st.on_grow = function(n, step)
    if not o.quiet then
      if sys.isatty(1) then io.stdout:write("\r\27[K") end
      print(string.format("  curriculum: chains of up to %d variables from step %d", n, step))
    end
  end
  local names = {}
  for l = 0, model.cfg.n_layers - 2 do names[#names + 1] = "blocks." .. l .. ".hook_resid_post" end
  local function loss(m, tokens, targets, mask)
    local deep = o.deep and o.deep > 0 and #names > 0 and (not o.deep_until or st.step <= o.deep_until)
    local logits, cache
    if deep then logits, cache = m:run_with_cache(tokens, names) else logits = m:forward(tokens) end
    T.no_grad(function() st.observe(logits) end)
    local l = nn.cross_entropy(logits, targets, mask)
    if deep then
      local aux
      for _, n in ipairs(names) do
        local a = nn.cross_entropy(LA.lens(m, cache[n]), targets, mask)
        aux = aux and aux + a or a
      end
      l = l + aux * (o.deep / #names)
    end
    return l
  end
  local eval = o.test and function(m)
    local acc = LA.acc_by_depth(m, o.test)
    local r = { cur = st.cur }
    for d, a in ipairs(acc) do r["d" .. (d - 1)] = a end
    if o.show_train then for d, a in pairs(st.ema) do r["tr" .. d] = a end end
    if o.track_assoc then r.assoc = LA.best_head((LA.assoc(m, o.test, { n = 64 }))).score end
    return r
  end or nil
  local res = train.run {
    model = model, batch = batch, loss = loss, steps = o.steps, lr = o.lr, warmup = o.warmup,
    decay = o.decay or "cosine", min_lr = o.min_lr, weight_decay = o.weight_decay, clip = o.clip,
    eval = eval, eval_every = o.eval_every, checkpoint = o.checkpoint, checkpoint_every = o.checkpoint_every,
    resume = o.resume, quiet = o.quiet, log_every = o.log_every, label = o.label,
  }
  res.curriculum = st.grown
  return res
end

-- ---- the recipe and the plumbing the scripts share ----

--- LA.recipe: the default training recipe (experiments/README.md says how it was chosen)
LA.recipe = {
  n_var = 5, n_layers = 4, n_heads = 4, d_model = 64, d_mlp = 256, init_range = 0.1,
  steps = 4000, tokens = 4096, lr = 1e-3, warmup = 100, decay = "cosine", weight_decay = 0.01, clip = 1.0,
  curriculum = { start = 2, extra = 1, grow_at = 0.95, max_stage = 500 }, operands = 3.0, operands_final = 1.0,
  compare_steps = 700,   -- per model in the scripts that train three (shortcut, mimic)
  mimic_steps = 150,     -- attention-mimicking pre-training steps
}
--- LA.quick: what --quick changes (a smoke run of well under a minute; it does not escape the plateau)
LA.quick = { n_var = 3, steps = 60, tokens = 1024, n_test = 200 }

--- LA.flags(extra) -> a milua.cli spec: the common flags, then the script's own
function LA.flags(extra)
  local spec = {
    { "out", "", "output directory (results.json, PNGs, checkpoints)" },
    { "seed", 1, "random seed (model init, data, test sets)" },
    { "steps", 0, "training steps per model (0: the recipe's " .. LA.recipe.steps .. ")" },
    { "quick", false, "a small smoke run (under a minute)" },
    { "n_var", 0, "variables per chain (0: the recipe's " .. LA.recipe.n_var .. ")" },
    { "n_train_var", 0, "supervise depths below this (0: all)" },
    { "layers", 0, "layers (0: the recipe's " .. LA.recipe.n_layers .. ")" },
    { "lr", 0.0, "peak learning rate (0: the recipe's " .. LA.recipe.lr .. ")" },
    { "n_test", 2000, "test sequences" },
    { "retrain", false, "train even when a finished checkpoint for this recipe is in --out" },
  }
  for _, e in ipairs(extra or {}) do spec[#spec + 1] = e end
  return spec
end

--- LA.options(opts, out_default) -> the recipe for these flags (a copy of LA.recipe, with
-- --quick and explicit flags applied); also makes the output directory
function LA.options(opts, out_default)
  local r = {}
  for k, v in pairs(LA.recipe) do r[k] = v end
  r.n_test = opts.n_test
  if opts.quick then for k, v in pairs(LA.quick) do r[k] = v end end
  if opts.steps > 0 then r.steps = opts.steps end
  if opts.n_var > 0 then r.n_var = opts.n_var end
  if opts.layers > 0 then r.n_layers = opts.layers end
  if opts.lr > 0 then r.lr = opts.lr end
  if opts.n_train_var > 0 then r.n_train_var = math.min(opts.n_train_var, r.n_var) end
  r.seed, r.retrain = opts.seed, opts.retrain
  r.out = opts.out ~= "" and opts.out or out_default
  sys.mkdir(r.out)
  return r
end

--- LA.test_sets(r, {ordered = bool, ...}) -> sets drawn from their own seed, so a reused checkpoint
-- sees the same test data as a fresh run
function LA.test_sets(r, kinds)
  T.seed(r.seed * 7919 + 17)
  local out = {}
  for name, ordered in pairs(kinds) do out[name] = LA.test_set(r.n_test, r.n_var, { ordered = ordered }) end
  return out
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- LA.fit(r, name, variant) -> model, info {train_seconds, reused, curriculum, steps, final_loss}
-- Trains one model of the recipe r (with variant: tie_layers, fixed_patterns, ordered, init(model)
-- a function run before training, label) from T.seed(r.seed), or reuses <out>/<name>.safetensors
-- when it holds a finished run of the same recipe.
function LA.fit(r, name, variant)
  variant = variant or {}
  local path = r.out .. "/" .. name .. ".safetensors"
  local rk = {}
  for k, v in pairs(r) do if k ~= "out" and k ~= "retrain" and k ~= "n_test" then rk[k] = v end end
  local key = json.encode({ recipe = rk, tie = variant.tie_layers or false, fixed = variant.fixed_patterns or false,
    ordered = variant.ordered or false, init = variant.init_name or false })
  if not r.retrain and file_exists(path) then
    local ok, m, _, meta = pcall(nn.load, path)
    if ok and meta.lego_recipe == key then
      local info = json.decode(meta.lego_info)
      info.reused = true
      return m, info
    end
  end
  T.seed(r.seed)
  local model = LA.model { n_var = r.n_var, n_layers = r.n_layers, n_heads = r.n_heads, d_model = r.d_model,
    d_mlp = r.d_mlp, init_range = r.init_range, tie_layers = variant.tie_layers,
    fixed_patterns = variant.fixed_patterns }
  local t0 = sys.clock()
  local pre = variant.init and variant.init(model) or nil
  local res = LA.train(model, {
    n_var = r.n_var, n_train_var = r.n_train_var, steps = r.steps, tokens = r.tokens, lr = r.lr, warmup = r.warmup,
    decay = r.decay, weight_decay = r.weight_decay, clip = r.clip, curriculum = r.curriculum, operands = r.operands,
    operands_final = r.operands_final,
    ordered = variant.ordered, label = variant.label or name, log_every = math.max(1, r.steps // 10),
  })
  local grown = {}
  for n, step in pairs(res.curriculum) do grown[#grown + 1] = { chain = n, step = step } end
  table.sort(grown, function(a, b) return a.chain < b.chain end)
  local info = { train_seconds = sys.clock() - t0, reused = false, curriculum = grown, steps = r.steps,
    final_loss = res.losses[#res.losses], pretrain = pre }
  model:save(path, nil, { lego_recipe = key, lego_info = json.encode(info) })
  return model, info
end

-- ---- attention: the association score and friends ----

local ok_analysis, analysis = pcall(require, "milua.analysis")
if not (ok_analysis and type(analysis) == "table" and analysis.same_token_score) then analysis = nil end

-- the letters a..z: the variable tokens whose attention the association score looks at
local VARS = {}
for i = 1, 26 do VARS[i] = i end
LA.var_ids = VARS

-- masks for the association score: key[b,q,k] = 1 when k ~= q holds q's token; query[b,q] = 1
-- when q holds a variable that occurs elsewhere too (every variable but the chain's last one:
-- a variable with no twin has nothing identical to attend to)
local function assoc_masks(tokens)
  local Tn = tokens:shape()[2]
  local ar = T.arange(1, Tn + 1)
  local key = tokens:unsqueeze(3):eq(tokens:unsqueeze(2)) * (1 - ar:unsqueeze(2):eq(ar:unsqueeze(1)))
  local query = tokens:le(26) * key:sum(3):gt(0)
  return key, query
end

--- LA.assoc_score_own(patterns, tokens) -> scores [L, H], baseline
-- patterns: a list of [B, H, T, T] (one per layer); tokens [B, T]. Over the query positions
-- holding a variable that occurs elsewhere, the attention mass on the OTHER positions holding the
-- identical token (either side: the model is an encoder), averaged; the baseline is that mass
-- under uniform attention over all T keys. Tensor ops only: one masked sum per layer.
function LA.assoc_score_own(patterns, tokens)
  local key, q = assoc_masks(tokens)
  local n = q:sum():item()
  local rows = {}
  for l, p in ipairs(patterns) do
    rows[l] = ((p:detach() * key:unsqueeze(2)):sum(4) * q:unsqueeze(2)):sum(3):sum(1) / n
  end
  local baseline = ((key:sum(3) / tokens:shape()[2]) * q):sum():item() / n
  return T.stack(rows, 1), baseline
end

--- LA.assoc_score(patterns, tokens) -> scores [L, H], baseline: milua.analysis.same_token_score
-- when that module is present (same definition), else LA.assoc_score_own
function LA.assoc_score(patterns, tokens)
  if analysis then
    local _, q = assoc_masks(tokens)
    local s, base = analysis.same_token_score(patterns, tokens, { query = q, causal = false })
    return s, base
  end
  return LA.assoc_score_own(patterns, tokens)
end

--- LA.assoc_by_role(patterns, tokens, defining) -> {defining = [L, H], operand = [L, H], n = {defining =, operand =}}
-- The association score split by the role of the query: `defining` [B, T] is 1 at the left-hand
-- (defining) occurrence of each variable (a LEGO batch's eval_mask); every other variable position
-- is its use as an operand. Every variable with a twin has one of each, so the score is the mean of
-- the two; a head that only fetches a variable's value from its defining clause (operand queries
-- to the defining occurrence) scores at most 0.5.
function LA.assoc_by_role(patterns, tokens, defining)
  local key, q = assoc_masks(tokens)
  local def = q * defining:float()
  local op = q - def
  local out = { n = { defining = def:sum():item(), operand = op:sum():item() } }
  for role, mask in pairs({ defining = def, operand = op }) do
    local rows = {}
    for l, p in ipairs(patterns) do
      rows[l] = ((p:detach() * key:unsqueeze(2)):sum(4) * mask:unsqueeze(2)):sum(3):sum(1) / math.max(1, out.n[role])
    end
    out[role] = T.stack(rows, 1)
  end
  return out
end

-- the per-layer patterns of a model on tokens, as a list
function LA.patterns(model, tokens)
  local _, cache = T.no_grad(function() return model:run_with_cache(tokens, "hook_pattern") end)
  local list = {}
  for l = 0, model.cfg.n_layers - 1 do list[l + 1] = cache["blocks." .. l .. ".attn.hook_pattern"] end
  return list
end

--- LA.assoc(model, set, {n = 256}) -> scores [L, H], baseline, by_role (LA.assoc_by_role), on
-- the first n sequences of a set
function LA.assoc(model, set, o)
  local n = math.min((o and o.n) or 256, set.tokens:shape()[1])
  local tokens = set.tokens:narrow(1, 1, n)
  local pats = LA.patterns(model, tokens)
  local scores, baseline = LA.assoc_score(pats, tokens)
  return scores, baseline, LA.assoc_by_role(pats, tokens, set.eval_mask:narrow(1, 1, n))
end

--- LA.offset_score(patterns, tokens, offsets) -> [L, H]: the mass variable queries put on the keys
-- at the given relative offsets (q + o): a position-based head scores high here whatever the order.
function LA.offset_score(patterns, tokens, offsets)
  local Tn = tokens:shape()[2]
  local ar = T.arange(1, Tn + 1)
  local key = T.zeros(Tn, Tn)
  for _, off in ipairs(offsets) do key = key + ar:unsqueeze(1):eq(ar:unsqueeze(2) + off) end
  local q = tokens:le(26) * tokens:ge(1)
  local n = q:sum():item()
  local rows = {}
  for l, p in ipairs(patterns) do
    rows[l] = ((p:detach() * key:unsqueeze(1):unsqueeze(1)):sum(4) * q:unsqueeze(2)):sum(3):sum(1) / n
  end
  return T.stack(rows, 1)
end

--- LA.heads_over(scores, threshold) -> list of {layer (0-based), head (1-based), score}, best first
function LA.heads_over(scores, threshold)
  local t = scores:totable()
  local out = {}
  for l, row in ipairs(t) do
    for h, v in ipairs(row) do
      if v >= threshold then out[#out + 1] = { layer = l - 1, head = h, score = v } end
    end
  end
  table.sort(out, function(a, b) return a.score > b.score end)
  return out
end

--- LA.best_head(scores) -> {layer (0-based), head (1-based), score}
function LA.best_head(scores)
  local best
  for l, row in ipairs(scores:totable()) do
    for h, v in ipairs(row) do
      if not best or v > best.score then best = { layer = l - 1, head = h, score = v } end
    end
  end
  return best
end

-- ---- attention mimicking (Zhang et al. 2022): pre-train the patterns, no labels ----

-- target patterns for a batch: assoc [B,T,T] (uniform over the other positions with the same
-- token) and local [T,T] (weights 1,2,4,2,1 on keys i-2..i+2), each +1e-3 and row-normalised
function LA.mimic_targets(tokens)
  local Tn = tokens:shape()[2]
  local ar = T.arange(1, Tn + 1)
  local diff = ar:unsqueeze(1) - ar:unsqueeze(2)                 -- [q,k] = k - q
  local same = tokens:unsqueeze(3):eq(tokens:unsqueeze(2)) * (1 - diff:eq(0))
  local assoc = same + 1e-3
  assoc = assoc / assoc:sum(3):unsqueeze(3)
  local loc = diff:eq(0) * 4 + (diff:eq(1) + diff:eq(-1)) * 2 + diff:eq(2) + diff:eq(-2) + 1e-3
  loc = loc / loc:sum(2):unsqueeze(2)
  return assoc, loc
end

-- KL(target || pattern) summed over keys, averaged over batch and queries
local function kl(target, p)
  local n = p:shape()[1] * p:shape()[2]
  return (target * (target:log() - p:clamp(1e-12, 1):log())):sum() / n
end

--- LA.mimic_loss(model, tokens, {assoc = head, ["local"] = head}) -> loss summed over layers
function LA.mimic_loss(model, tokens, heads)
  local assoc, loc = LA.mimic_targets(tokens)
  local _, cache = model:run_with_cache(tokens, "hook_pattern")
  local total
  for l = 0, model.cfg.n_layers - 1 do
    local p = cache["blocks." .. l .. ".attn.hook_pattern"]
    local term = kl(assoc, p:select(2, heads.assoc)) + kl(loc:unsqueeze(1), p:select(2, heads["local"]))
    total = total and total + term or term
  end
  return total
end

--- LA.mimic(model, {n_var, steps, batch, lr, warmup, heads}) -> train.run result (losses = KL)
function LA.mimic(model, o)
  local heads = o.heads or { assoc = 1, ["local"] = 2 }
  return train.run {
    model = model, steps = o.steps, lr = o.lr or 1e-3, warmup = o.warmup or 0, decay = "cosine", clip = 1.0,
    batch = function() return lego.batch(o.batch or 64, o.n_var).tokens end,
    loss = function(m, tokens) return LA.mimic_loss(m, tokens, heads) end,
    quiet = o.quiet, label = "mimic",
  }
end

--- LA.flops(cfg, seq_len) -> {total, per_layer, saved, saved_fraction}: analytic forward FLOPs of one
-- sequence (a multiply-add counts 2). A head with a fixed pattern needs no Q, K nor scores:
-- `saved` counts that work (2*T*D*E for each of Q and K, and 2*T*T*E for the scores, per fixed
-- head and layer).
function LA.flops(cfg, Tn)
  local D, H, E, M = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
  local qkv = 3 * 2 * Tn * D * H * E
  local scores = 2 * H * Tn * Tn * E
  local apply = 2 * H * Tn * Tn * E
  local out = 2 * Tn * H * E * D
  local mlp = 2 * 2 * Tn * D * M
  local layer = qkv + scores + apply + out + mlp
  local nfixed = 0
  for _ in pairs(cfg.fixed_patterns or {}) do nfixed = nfixed + 1 end
  local saved_layer = nfixed * (2 * 2 * Tn * D * E + 2 * Tn * Tn * E)
  local total = cfg.n_layers * layer + 2 * Tn * D * (cfg.d_vocab_out or cfg.d_vocab)
  return { total = total, per_layer = layer, saved = cfg.n_layers * saved_layer,
    saved_fraction = cfg.n_layers * saved_layer / total }
end

--- LA.forward_ms(model, tokens) -> the best of five no-grad forward passes, in milliseconds
function LA.forward_ms(model, tokens)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = sys.clock()
    T.no_grad(function() return model:forward(tokens) end)
    best = math.min(best, (sys.clock() - t0) * 1e3)
  end
  return best
end

-- ---- figures ----
local plot = require "milua.plot"

--- LA.plot_scores(scores, path, title): a layer x head heatmap (rows "L0".., columns "H1"..)
function LA.plot_scores(scores, path, title, o)
  local L, H = scores:shape()[1], scores:shape()[2]
  local rows, cols = {}, {}
  for l = 1, L do rows[l] = "L" .. (l - 1) end
  for h = 1, H do cols[h] = "H" .. h end
  return plot.heatmap(scores, path, { title = title, xticks = cols, yticks = rows, xlabel = "head",
    ylabel = "layer", cmap = "viridis", vmin = 0, vmax = (o and o.vmax) or 1, clabel = o and o.clabel })
end

--- LA.plot_pattern(model, tokens_row [1,T], layer (0-based), head (1-based), path, title)
-- the head's attention on one sequence, token labels on both axes
function LA.plot_pattern(model, row, layer, head, path, title)
  local pats = LA.patterns(model, row)
  local p = pats[layer + 1]:select(1, 1):select(1, head)
  local labels = {}
  for i, id in ipairs(row:select(1, 1):totable()) do labels[i] = lego.vocab[id] end
  return plot.heatmap(p, path, { title = title, xticks = labels, yticks = labels, xlabel = "key",
    ylabel = "query", cmap = "viridis", vmin = 0, vmax = 1 })
end

--- LA.plot_depth(series, path, o): accuracy by chain depth, one line per {label =, acc =}
function LA.plot_depth(series, path, o)
  local list = {}
  for i, s in ipairs(series) do
    local x = {}
    for d = 1, #s.acc do x[d] = d - 1 end
    list[i] = { x = x, y = s.acc, label = s.label }
  end
  return plot.line(list, path, { title = o and o.title or "test accuracy by chain depth", xlabel = "chain depth",
    ylabel = "accuracy", markers = true })
end

--- LA.fmt(list, digits) -> "0.99 0.98 ..." for printing accuracy lists
function LA.fmt(list, digits)
  local f = "%." .. (digits or 3) .. "f"
  local out = {}
  for i, v in ipairs(list) do out[i] = string.format(f, v) end
  return table.concat(out, " ")
end

return LA
