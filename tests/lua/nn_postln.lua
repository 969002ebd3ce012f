-- Post-LN blocks and the readouts (flatten, [CLS] tanh pooler): finite-difference gradients
-- of every new parameter, the hook points and their order, the blocks written by hand from
-- the cache, save/load, training, and the errors a user can reach. The PyTorch comparison
-- is in nn_fixtures.lua (fixtures *postln*, *flatten*, *cls_pooler*).
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"

T.seed(5)
local function maxdiff(a, b) return (a - b):abs():max():item() end
local function small(extra)
  local c = { n_layers = 2, d_model = 8, n_heads = 2, d_head = 4, d_mlp = 12, d_vocab = 6, n_ctx = 5, causal = false,
    ln_position = "post", init_range = 0.3 }
  for k, v in pairs(extra or {}) do c[k] = v end
  return nn.transformer(c)
end
local toks = T.tensor({ { 1, 2, 3, 4, 5 }, { 6, 5, 4, 3, 2 }, { 2, 2, 6, 1, 3 } }, "int32")

-- finite differences for every parameter a post-LN block or a readout adds, through the model
local function gradcheck_params(model, names, desc)
  for _, name in ipairs(names) do
    local orig = model.params[name]
    local ok, report = T.gradcheck(function(p)
      model.params[name] = p
      return model:forward(toks)
    end, { orig:detach():clone():requires_grad(true) })
    model.params[name] = orig
    test.ok(ok, "gradcheck " .. desc .. ": " .. name)
    if not ok then test.diag(report) end
  end
end
local post = small()
gradcheck_params(post, { "blocks.0.ln1.w", "blocks.0.ln1.b", "blocks.0.ln2.w", "blocks.1.ln2.b", "blocks.0.attn.W_Q",
  "blocks.1.mlp.W_in", "embed.W_E" }, "post-LN")
local flat = small { readout = "flatten", d_out = 3, positional = "sinusoidal" }
gradcheck_params(flat, { "readout.W", "readout.b", "blocks.1.ln2.w", "blocks.0.attn.W_V" }, "flatten readout")
local pool = small { readout = "cls_pooler", d_out = 2 }
gradcheck_params(pool, { "pooler.W", "pooler.b", "readout.W", "readout.b", "blocks.1.ln2.w", "embed.W_E" }, "cls_pooler readout")
local pool_pre = small { readout = "cls_pooler", d_out = 2, ln_position = "pre" }
gradcheck_params(pool_pre, { "pooler.W", "ln_final.w", "readout.W" }, "cls_pooler on pre-LN")

-- parameters and hook points
test.ok(post.params["ln_final.w"] == nil and post.params["unembed.W_U"] ~= nil, "post-LN: no final LayerNorm")
test.is({ flat.params["readout.W"]:shape(), flat.params["readout.b"]:shape(), flat.params["unembed.W_U"] },
  { { 5 * 8, 3 }, { 3 } }, "flatten: readout.W [n_ctx*d_model, d_out], readout.b [d_out], no unembedding")
test.is({ pool.params["pooler.W"]:shape(), pool.params["pooler.b"]:shape(), pool.params["readout.W"]:shape() },
  { { 8, 8 }, { 8 }, { 8, 2 } }, "cls_pooler: pooler.W [d_model, d_model], pooler.b, readout.W [d_model, d_out]")
local block0 = {}
for _, n in ipairs(post.hook_names) do
  local h = n:match("^blocks%.0%.(.*)")
  if h then block0[#block0 + 1] = h end
end
test.is(block0, { "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
  "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "ln1.hook_scale", "ln1.hook_normalized",
  "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post", "ln2.hook_scale", "ln2.hook_normalized",
  "hook_normalized_resid_post" }, "post-LN hook points of a block, in firing order")
test.is(pool.hook_names[#pool.hook_names], "pooler.hook_out", "cls_pooler adds pooler.hook_out")
local order = {}
for _, n in ipairs(post.hook_names) do
  post:add_hook(n, function(_, name) order[#order + 1] = name end)
end
post:forward(toks)
post:reset_hooks()
test.is(order, post.hook_names, "hooks fire in the order model.hook_names lists them")

-- the post-LN block and the readouts written by hand from cached activations
do
  local out, c = pool:run_with_cache(toks)
  local function ln(x, w, b)
    local xc = x - x:mean(3, true)
    return xc / ((xc * xc):mean(3, true) + 1e-5):sqrt() * w + b
  end
  local P = pool.params
  local mid = c["blocks.1.hook_resid_pre"] + c["blocks.1.hook_attn_out"]
  test.close(c["blocks.1.hook_resid_mid"], mid, 1e-5, "post-LN: hook_resid_mid = resid_pre + attn_out")
  local n1 = ln(mid, P["blocks.1.ln1.w"], P["blocks.1.ln1.b"])
  test.close(c["blocks.1.hook_resid_post"], n1 + c["blocks.1.hook_mlp_out"], 1e-5,
    "post-LN: hook_resid_post = LN1(resid_mid) + mlp_out")
  local n2 = ln(c["blocks.1.hook_resid_post"], P["blocks.1.ln2.w"], P["blocks.1.ln2.b"])
  test.close(c["blocks.1.hook_normalized_resid_post"], n2, 1e-5, "post-LN: hook_normalized_resid_post = LN2(hook_resid_post)")
  test.close(c["blocks.1.hook_resid_pre"], c["blocks.0.hook_normalized_resid_post"], 0,
    "post-LN: a block reads the previous block's normalized output")
  local cls = n2:select(2, 1)
  local pooled = (cls:matmul(P["pooler.W"]) + P["pooler.b"]):tanh()
  test.close(c["pooler.hook_out"], pooled, 1e-5, "cls_pooler: pooler.hook_out = tanh(h_1 W_pool + b_pool)")
  test.close(out, pooled:matmul(P["readout.W"]) + P["readout.b"], 1e-5, "cls_pooler: output = pooled W + b")
  test.is(pool:forward(toks:narrow(2, 1, 3)):shape(), { 3, 2 }, "cls_pooler reads position 1 of a shorter sequence")
  local fo, fc = flat:run_with_cache(toks)
  local h = fc["blocks.1.hook_normalized_resid_post"]:contiguous():view(3, 40)
  test.close(fo, h:matmul(flat.params["readout.W"]) + flat.params["readout.b"], 1e-5,
    "flatten: output = [h_1 ... h_n_ctx] W + b")
  test.is(flat:forward(toks, { return_type = "resid" }):shape(), { 3, 5, 8 }, "return_type = resid: the final states")
  test.close(flat:forward(toks, { stop_at_layer = 1 }), fc["blocks.0.hook_normalized_resid_post"], 1e-5,
    "stop_at_layer = 1: the first block's normalized output")
  -- a hook on the pooler's output replaces it
  local zero = pool:run_with_hooks(toks, { ["pooler.hook_out"] = function(p) return p * 0 end })
  test.close(zero, P["readout.b"]:view(1, 2):expand(3, 2), 1e-6, "a zeroed pooler.hook_out leaves the readout bias")
end

-- save and load
do
  local path = os.tmpname()
  pool:save(path)
  local back = nn.load(path)
  os.remove(path)
  test.is(back.cfg, pool.cfg, "cls_pooler config survives a checkpoint")
  test.is({ pool.cfg.d_out, pool.cfg.d_vocab_out, post.cfg.d_out, post.cfg.d_vocab_out }, { 2, nil, nil, 6 },
    "d_out is read back with a readout, d_vocab_out with the unembedding")
  test.close(back:forward(toks), pool:forward(toks), 0, "and the loaded model computes the same outputs")
  test.like(tostring(pool), "ln_position=post", "tostring names the LayerNorm position")
  test.like(tostring(pool), "readout=cls_pooler, d_out=2", "tostring names the readout")
  test.like(tostring(flat), "readout=flatten, d_out=3", "tostring names the flatten readout")
end

-- the readout trains: a flatten classifier learns which position holds token 6
do
  T.seed(3)
  local m = nn.transformer { n_layers = 1, d_model = 16, n_heads = 1, d_mlp = 32, d_vocab = 6, n_ctx = 4, causal = false,
    ln_position = "post", positional = "sinusoidal", readout = "flatten", d_out = 4 }
  local opt = optim.adamw(m.params, { lr = 1e-2, weight_decay = 0 })
  local function batch()
    local t, y = {}, {}
    for b = 1, 32 do
      local row = {}
      for i = 1, 4 do row[i] = math.random(1, 5) end
      y[b] = math.random(1, 4)
      row[y[b]] = 6
      t[b] = row
    end
    return T.tensor(t, "int32"), T.tensor(y, "int32")
  end
  local first, last
  for step = 1, 150 do
    local x, y = batch()
    local loss = nn.cross_entropy(m:forward(x), y)
    opt:zero_grad(); loss:backward(); opt:step()
    if step == 1 then first = loss:item() end
    last = loss:item()
  end
  local x, y = batch()
  local acc = m:forward(x):argmax(2):eq(y):float():mean():item()
  test.ok(last < 0.3 * first and acc > 0.9, string.format("flatten readout trains (loss %.3f -> %.3f, accuracy %.2f)", first, last, acc))
end

-- errors a user can reach
local base = { n_layers = 1, d_model = 8, d_vocab = 5, n_ctx = 4 }
local function with(extra)
  local c = {}
  for k, v in pairs(base) do c[k] = v end
  for k, v in pairs(extra) do c[k] = v end
  return c
end
for _, e in ipairs {
  { { ln_position = "middle" }, [[config key 'ln_position' must be one of "pre", "post", got "middle"]], "an unknown ln_position" },
  { { ln_position = "post", normalization = "none" }, [[ln_position = "post" needs normalization = "LN"]], "post-LN without LayerNorm" },
  { { ln_position = "post", d_mlp = 0 }, [[ln_position = "post" needs an MLP (d_mlp > 0)]], "post-LN without an MLP" },
  { { readout = "flatten" }, [[readout = "flatten" needs a positive 'd_out']], "flatten without d_out" },
  { { readout = "cls_pooler" }, [[readout = "cls_pooler" needs a positive 'd_out']], "cls_pooler without d_out" },
  { { readout = "cls" }, [[config key 'readout' must be one of "unembed", "flatten", "cls_pooler", got "cls"]], "an unknown readout" },
  { { d_out = 2 }, [[config key 'd_out' = 2 needs readout = "flatten" or "cls_pooler"]], "d_out without a readout" },
  { { readout = "flatten", d_out = 2, d_vocab_out = 3 }, [[config key 'd_vocab_out' sizes the unembedding]], "d_vocab_out with a readout" },
  { { readout = "flatten", d_out = 0 }, [[needs a positive 'd_out']], "d_out = 0" },
} do
  test.throws(function() nn.transformer(with(e[1])) end, e[2], "error: " .. e[3])
end
test.throws(function() flat:forward(toks:narrow(2, 1, 4)) end,
  [[readout = "flatten" reads all n_ctx = 5 positions, got 4]], "error: flatten with fewer positions than n_ctx")
test.is(flat:forward(toks:narrow(2, 1, 4), { return_type = "resid" }):shape(), { 3, 4, 8 },
  "a shorter sequence still gives its final states")
do
  local path = os.tmpname()
  flat:save(path)
  local t = T.load(path)
  t["readout.W"] = T.zeros(7, 3)
  local meta = select(2, T.load(path))
  T.save(path, t, meta)
  test.throws(function() nn.load(path) end, "parameter 'readout.W' has shape [7,3] float32, the config needs [40,3]",
    "error: a checkpoint with a mis-shaped readout is named")
  os.remove(path)
end

test.done()
