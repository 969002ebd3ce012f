-- Hook semantics, caches, forward options and the model's error paths.
local T = require "milua.tensor"
local nn = require "milua.nn"
local test = require "milua.test"

T.seed(7)
local cfg = { n_layers = 2, d_model = 16, n_heads = 2, d_head = 8, d_mlp = 32, d_vocab = 10, n_ctx = 8, act_fn = "gelu" }
local model = nn.transformer(cfg)
local toks = T.randint(1, 11, 3, 6)
local base = T.no_grad(function() return model:forward(toks) end)
local function maxdiff(a, b) return (a - b):abs():max():item() end

test.is(base:shape(), { 3, 6, 10 }, "logits are [batch, pos, d_vocab]")

-- shapes of hook points, TransformerLens conventions
local _, cache = model:run_with_cache(toks)
local expect = {
  hook_embed = { 3, 6, 16 }, hook_pos_embed = { 3, 6, 16 }, ["blocks.0.hook_resid_pre"] = { 3, 6, 16 },
  ["blocks.0.ln1.hook_scale"] = { 3, 6, 1 }, ["blocks.0.attn.hook_q"] = { 3, 6, 2, 8 },
  ["blocks.1.attn.hook_attn_scores"] = { 3, 2, 6, 6 }, ["blocks.1.attn.hook_pattern"] = { 3, 2, 6, 6 },
  ["blocks.0.attn.hook_z"] = { 3, 6, 2, 8 }, ["blocks.0.mlp.hook_pre"] = { 3, 6, 32 }, ["ln_final.hook_normalized"] = { 3, 6, 16 },
}
for name, shape in pairs(expect) do test.is(cache[name] and cache[name]:shape(), shape, name .. " has the TransformerLens shape") end
test.close(cache["blocks.1.attn.hook_pattern"]:sum(-1), 1, 1e-5, "attention patterns sum to one over keys")
test.close(cache["blocks.1.attn.hook_pattern"][1][1][1][2]:item(), 0, 0, "causal: no attention to later positions")
test.ok(maxdiff(model:run_with_cache(toks), base) < 1e-6, "caching does not change the logits")
test.like(tostring(cache), "blocks%.0%.attn%.hook_z%s+%[3,6,2,8%]", "tostring(cache) lists names with shapes")

-- cache:save writes safetensors keyed by hook name, readable without milua
local cpath = os.tmpname()
cache:save(cpath)
local back = T.load(cpath)
test.ok(back["blocks.1.attn.hook_pattern"] and (back["blocks.1.attn.hook_pattern"] - cache["blocks.1.attn.hook_pattern"]):abs():max():item() == 0,
  "cache:save round-trips through T.load")
local py = io.popen("/usr/bin/python3 -c 'import json,struct,sys; b=open(sys.argv[1],\"rb\").read(); n=struct.unpack(\"<Q\",b[:8])[0]; h=json.loads(b[8:8+n]); print(h[\"blocks.0.attn.hook_z\"][\"shape\"], h[\"__metadata__\"][\"format\"])' " .. cpath)
local pyout = py:read("a"); py:close()
test.like(pyout, "%[3, 6, 2, 8%] pt", "Python reads the cache file's header: names, shapes, format")
os.remove(cpath)

-- filters: pattern, list, function
local _, c1 = model:run_with_cache(toks, "hook_pattern")
test.is(#c1:names(), 2, "a Lua pattern selects the hook points it matches")
local _, c2 = model:run_with_cache(toks, { "hook_embed", "blocks.1.hook_resid_post" })
test.is(c2:names(), { "blocks.1.hook_resid_post", "hook_embed" }, "a list selects exactly those names")
local _, c3 = model:run_with_cache(toks, function(n) return n:find("^blocks%.0%.") ~= nil end)
test.ok(#c3:names() > 10 and not c3["blocks.1.hook_resid_pre"], "a function filter selects by predicate")
test.throws(function() model:run_with_cache(toks, { "blocks.0.attn.hook_zz" }) end, "blocks.0.attn.hook_z",
  "an unknown name in a filter is an error listing close matches")
test.throws(function() model:run_with_cache(toks, "no_such_hook") end, "matches no hook point", "a pattern matching nothing is an error")

-- a hook gets (activation, name, ctx); returning nil keeps the activation
local seen = {}
local out = model:run_with_hooks(toks, { ["blocks.1.hook_resid_mid"] = function(x, name, ctx)
  seen.name, seen.layer, seen.shape, seen.tokens = name, ctx.layer, x:shape(), ctx.tokens
end })
test.is(seen.name, "blocks.1.hook_resid_mid", "the hook receives its name")
test.is(seen.layer, 1, "ctx.layer is the layer in the hook's name")
test.ok(seen.tokens == toks, "ctx.tokens are the input tokens")
test.ok(maxdiff(out, base) < 1e-6, "a hook returning nothing keeps the activation")

-- replacing an activation flows on, gradients included
local zeroed = model:run_with_hooks(toks, { ["blocks.0.hook_attn_out"] = function(x) return x * 0 end,
  ["blocks.1.hook_attn_out"] = function(x) return x * 0 end })
local manual = T.no_grad(function()
  -- with both attention outputs zero, the embeddings flow through the MLPs only
  local saved = {}
  for _, n in ipairs { "blocks.0.attn.W_O", "blocks.0.attn.b_O", "blocks.1.attn.W_O", "blocks.1.attn.b_O" } do
    saved[n] = model.params[n]:clone(); model.params[n]:zero_()
  end
  local r = model:forward(toks)
  for n, v in pairs(saved) do model.params[n]:copy_(v) end
  return r
end)
test.ok(maxdiff(zeroed, manual) < 1e-5, "a replacement flows on (zeroed attention = zeroed W_O)")
local w = model.params["blocks.0.mlp.W_in"]
w.grad = nil
local scale = T.tensor(3.0):requires_grad(true)
local l = model:run_with_hooks(toks, { ["blocks.0.hook_mlp_out"] = function(x) return x * scale end }):sum()
l:backward()
test.ok(scale.grad ~= nil and math.abs(scale.grad:item()) > 0, "gradients flow into tensors used by a hook")
test.ok(w.grad ~= nil and w.grad:abs():sum():item() > 0, "gradients flow through a replaced activation to the weights")

-- a replaced LayerNorm scale is the one divided by (freezing LN)
local frozen = model:run_with_hooks(toks, { ["ln_final.hook_scale"] = function(s) return s * 0 + 2 end })
local _, lc = model:run_with_cache(toks, { "blocks.1.hook_resid_post" })
local r = lc["blocks.1.hook_resid_post"]
local expect_logits = T.no_grad(function()
  local xc = r - r:mean(-1, true)
  return (xc / 2 * model.params["ln_final.w"] + model.params["ln_final.b"]):matmul(model.params["unembed.W_U"]) + model.params["unembed.b_U"]
end)
test.ok(maxdiff(frozen, expect_logits) < 1e-5, "a replaced ln_final.hook_scale is the divisor used")

-- persistent hooks and handles
local count = 0
local h = model:add_hook("blocks.0.hook_resid_pre", function() count = count + 1 end)
model:forward(toks); model:forward(toks)
test.is(count, 2, "a persistent hook fires on every forward")
h:remove(); model:forward(toks)
test.is(count, 2, "handle:remove() unregisters it")
model:add_hook("hook_embed", function() count = count + 10 end)
model:add_hook("hook_embed", function() count = count + 100 end)
model:forward(toks)
test.is(count, 112, "several hooks on one point all fire")
model:reset_hooks(); model:forward(toks)
test.is(count, 112, "reset_hooks removes them all")
test.throws(function() model:add_hook("blocks.9.hook_resid_pre", print) end, "unknown hook point", "add_hook checks the name")

-- errors inside hooks propagate with the hook's name and leave nothing behind
local ok, err = pcall(model.run_with_hooks, model, toks, { ["blocks.1.attn.hook_z"] = function() error("boom") end })
test.ok(not ok and err:find("hook blocks.1.attn.hook_z", 1, true) and err:find("boom", 1, true), "an error in a hook names the hook: " .. tostring(err))
test.ok(maxdiff(model:forward(toks), base) < 1e-6, "after a failing hook the model runs unhooked")
test.throws(function() model:run_with_hooks(toks, { ["blocks.0.attn.hook_z"] = function(z) return z:sum(1) end }) end,
  "the replacement has shape", "a replacement of the wrong shape is an error naming the hook")
test.throws(function() model:run_with_hooks(toks, { ["blocks.0.attn.hook_z"] = function() return 3 end }) end,
  "must return a tensor or nothing", "a non-tensor replacement is an error")
test.throws(function() model:run_with_hooks(toks, { ["blocks.0.attn.hook_zz"] = print }) end, "close matches",
  "run_with_hooks rejects unknown names")

-- forward options
local resid = model:forward(toks, { return_type = "resid" })
test.ok(maxdiff(resid, cache["ln_final.hook_normalized"] * model.params["ln_final.w"] + model.params["ln_final.b"]) < 1e-5,
  "return_type = resid gives the final normalized residual stream")
local after1 = model:forward(toks, { stop_at_layer = 1 })
test.ok(maxdiff(after1, cache["blocks.0.hook_resid_post"]) < 1e-6, "stop_at_layer = 1 gives the stream after one layer")
test.throws(function() model:forward(toks, { stop_at_layer = 5 }) end, "outside 0..2", "stop_at_layer is checked")
test.throws(function() model:forward(toks, { return_type = "probs" }) end, "return_type", "return_type is checked")

-- input errors
test.throws(function() model:forward(T.tensor({ { 1, 11 } }, "int32")) end, "token id 11", "an out-of-range token id is named")
test.throws(function() model:forward(T.tensor({ { 0, 1 } }, "int32")) end, "token id 0", "token ids are 1-based")
test.throws(function() model:forward(T.ones(1, 9):int()) end, "exceed n_ctx", "sequences longer than n_ctx are an error")
test.throws(function() model:forward(T.ones(2, 3)) end, "int32", "float tokens are an error")
test.throws(function() model:forward(T.ones(3):int()) end, "[batch, pos]", "1-d tokens are an error")

-- config errors name the key
test.throws(function() nn.transformer { n_layers = 1, d_model = 8, d_vocab = 5, n_ctx = 4, n_head = 2 } end,
  "unknown config key 'n_head' (did you mean 'n_heads'?)", "unknown keys are named with a suggestion")
test.throws(function() nn.transformer { n_layers = 0, d_model = 8, d_vocab = 5, n_ctx = 4 } end, "'n_layers'",
  "impossible values name the key")
test.throws(function() nn.transformer { n_layers = 1, d_model = 8, d_vocab = 5 } end, "'n_ctx' is required", "missing keys are named")
test.throws(function() nn.transformer { n_layers = 1, d_model = 8, d_vocab = 5, n_ctx = 4, act_fn = "tanh" } end,
  "must be one of", "act_fn is checked")

-- a parameter replaced by the user is used; a mis-shaped one is an error naming it
local m2 = nn.transformer(cfg)
m2.params["unembed.b_U"] = T.ones(10):requires_grad(true)
local _ = m2:forward(toks)
m2.params["unembed.b_U"] = T.ones(11)
test.throws(function() m2:forward(toks) end, "parameter 'unembed.b_U' has shape [11]", "a mis-shaped parameter is named")

-- config variants
local tied = nn.transformer { n_layers = 4, d_model = 16, n_heads = 2, d_vocab = 10, n_ctx = 8, tie_layers = true, causal = false }
test.ok(tied.params["blocks.0.attn.W_Q"] and not tied.params["blocks.1.attn.W_Q"], "tie_layers keeps one block of weights")
local _, tc = tied:run_with_cache(toks, "hook_resid_post")
test.is(#tc:names(), 4, "tied layers still fire hooks per layer")
local enc = nn.transformer { n_layers = 1, d_model = 16, n_heads = 2, d_vocab = 10, d_vocab_out = 2, n_ctx = 8, causal = false,
  positional = "sinusoidal", attn_only = true }
local _, ec = enc:run_with_cache(toks, "hook_pattern")
test.is(enc:forward(toks):shape(), { 3, 6, 2 }, "d_vocab_out sets the output classes")
test.ok(ec["blocks.0.attn.hook_pattern"][1][1][1][6]:item() > 0, "causal = false attends to later positions")
test.ok(enc.params["pos_embed.W_pos"] == nil and enc.params["blocks.0.mlp.W_in"] == nil, "sinusoidal positions and attn_only have no such parameters")
local fixed = nn.transformer { n_layers = 1, d_model = 16, n_heads = 2, d_vocab = 10, n_ctx = 8, causal = false,
  fixed_patterns = { [1] = "assoc", [2] = "local" } }
local ftok = T.tensor({ { 1, 2, 1, 3, 2, 4 } }, "int32")
local _, fc = fixed:run_with_cache(ftok, "hook_pattern")
local p = fc["blocks.0.attn.hook_pattern"]
test.close(p[1][1][1], T.tensor { 0, 0, 1, 0, 0, 0 }, 1e-6, "fixed association head: mass on the other identical token")
test.close(p[1][2][3], T.tensor { 1, 2, 4, 2, 1, 0 } / 10, 1e-6, "fixed local head: weights 1,2,4,2,1")
local _, fc2 = fixed:run_with_cache(ftok)
test.ok(fc2["blocks.0.attn.hook_q"] == nil and fc2["blocks.0.attn.hook_attn_scores"] == nil,
  "every head fixed: no Q, K or scores are computed, so those hooks do not fire")

-- a hook on the scores that returns them unchanged changes no bit of the logits; one that masks a
-- key with -inf gives it exactly zero weight
do
  local same = T.no_grad(function()
    return model:run_with_hooks(toks, { ["blocks.0.attn.hook_attn_scores"] = function(s) return s end })
  end)
  test.is((same - base):abs():max():item(), 0.0, "an identity hook on hook_attn_scores leaves the logits bit-identical")
  local pat
  T.no_grad(function()
    model:run_with_hooks(toks, {
      ["blocks.0.attn.hook_attn_scores"] = function(s)
        local m = T.zeros(6, 6)
        for q = 2, 6 do m[q][1] = 1 end   -- no query may attend to position 1 (except position 1 itself)
        return s:masked_fill(m, -math.huge)
      end,
      ["blocks.0.attn.hook_pattern"] = function(p) pat = p end })
  end)
  test.is(pat:select(4, 1):narrow(3, 2, 5):abs():max():item(), 0.0, "a key masked to -inf by a hook gets weight exactly 0")
  test.close(pat:sum(4), 1, 1e-5, "the masked pattern still sums to 1")
end

-- the hooked scores without gradients (scaled and masked in place) are the bits of the two steps
-- taken with gradients, and q k^T / sqrt(d_head) with -inf above the diagonal, causal or not
for _, causal in ipairs({ true, false }) do
  local c2 = {}
  for k, v in pairs(cfg) do c2[k] = v end
  c2.causal = causal
  T.seed(11)
  local m2 = nn.transformer(c2)
  local _, with_grad = m2:run_with_cache(toks, "hook_attn_scores")
  local _, without = T.no_grad(function() return m2:run_with_cache(toks, "attn") end)
  local what = causal and "causal" or "bidirectional"
  for l = 0, 1 do
    local name = "blocks." .. l .. ".attn.hook_attn_scores"
    local s0, s1 = with_grad[name]:detach(), without[name]
    test.is(s0:eq(s1):sum():item(), s0:numel(), what .. " " .. name .. ": the same bits with and without gradients (-inf included)")
    local q = without["blocks." .. l .. ".attn.hook_q"]:permute(1, 3, 2, 4)   -- [B, H, T, E]
    local k = without["blocks." .. l .. ".attn.hook_k"]:permute(1, 3, 4, 2)   -- [B, H, E, S]
    local ref = q:matmul(k) / math.sqrt(8)
    if causal then
      local above = T.zeros(6, 6)
      for i = 1, 6 do for j = i + 1, 6 do above[i][j] = 1 end end
      ref = ref:masked_fill(above, -math.huge)
      test.is(s1:eq(-math.huge):sum():item(), 3 * 2 * 15,
        what .. " " .. name .. ": -inf exactly at the 15 (query, later key) pairs of each batch row and head")
    else
      test.is(s1:eq(-math.huge):sum():item(), 0, what .. " " .. name .. ": no score is -inf")
    end
    test.ok(maxdiff(s1:masked_fill(s1:eq(-math.huge), 0), ref:masked_fill(ref:eq(-math.huge), 0)) < 1e-5,
      what .. " " .. name .. ": q k^T / sqrt(d_head)")
  end
  local unhooked = T.no_grad(function() return m2:forward(toks) end)
  test.is(maxdiff(T.no_grad(function() return m2:run_with_hooks(toks, { ["blocks.1.attn.hook_attn_scores"] = function() end })
  end), unhooked), 0.0, what .. ": an observing hook on the scores without gradients changes no bit of the logits")
end

-- editing hook_scale and hook_normalized acts the same with and without gradients
do
  local hooks = { ["blocks.0.ln1.hook_scale"] = function(sc) return sc * 2 end,
    ["blocks.1.ln2.hook_normalized"] = function(xn) return xn * 0.5 + 0.1 end }
  local with_grad = model:run_with_hooks(toks, hooks)
  local without = T.no_grad(function() return model:run_with_hooks(toks, hooks) end)
  test.is(maxdiff(with_grad, without), 0.0, "LayerNorm hook edits: the same logits, bit for bit, with and without gradients")
  test.ok(maxdiff(without, base) > 1e-3, "LayerNorm hook edits change the logits")
  -- without gradients the hooked LayerNorm computes its steps in one pass and recomputes what a
  -- hook replaced: identity hooks change no bit, each edit alone acts as with gradients
  local ident = { ["blocks.0.ln1.hook_scale"] = function(sc) return sc end,
    ["blocks.1.ln2.hook_normalized"] = function(xn) return xn end, ["ln_final.hook_scale"] = function() end }
  test.is(maxdiff(T.no_grad(function() return model:run_with_hooks(toks, ident) end), base), 0.0,
    "identity LayerNorm hooks without gradients: the logits bit-identical to the unhooked model")
  for name, fn in pairs(hooks) do
    local one = { [name] = fn }
    test.is(maxdiff(model:run_with_hooks(toks, one), T.no_grad(function() return model:run_with_hooks(toks, one) end)), 0.0,
      name .. " edited alone: the same bits with and without gradients")
  end
  -- a hook that makes its activation require a gradient in place: the gradient reaches it
  local leaf
  local out = model:run_with_hooks(toks, { ["blocks.0.ln1.hook_normalized"] = function(xn)
    leaf = xn:detach():requires_grad(true)
    return leaf
  end })
  out:sum():backward()
  test.ok(leaf.grad ~= nil and leaf.grad:abs():max():item() > 0, "a hook's replacement that requires grad receives a gradient")
end

-- one head fixed: Q, K and scores exist for the learned head only, and the model equals a plain
-- model whose pattern for that head is overwritten by a hook
do
  local cfg1 = { n_layers = 2, d_model = 16, n_heads = 3, d_head = 4, d_vocab = 10, n_ctx = 8, causal = false }
  local plain = nn.transformer(cfg1)
  cfg1.fixed_patterns = { [2] = "assoc" }
  local mod = nn.transformer(cfg1)
  for name, t in pairs(plain.params) do T.no_grad(function() mod.params[name]:copy_(t) end) end
  local tk = T.tensor({ { 1, 2, 1, 3, 2, 4, 5, 1 }, { 3, 3, 4, 5, 6, 4, 7, 8 } }, "int32")
  local _, mc = mod:run_with_cache(tk)
  test.is(mc["blocks.0.attn.hook_q"]:shape(), { 2, 8, 2, 4 }, "hook_q carries only the two learned heads")
  test.is(mc["blocks.1.attn.hook_attn_scores"]:shape(), { 2, 2, 8, 8 }, "hook_attn_scores: learned heads only")
  test.is(mc["blocks.1.attn.hook_pattern"]:shape(), { 2, 3, 8, 8 }, "hook_pattern has every head")
  local hooks = {}
  for l = 0, 1 do
    local want = mc["blocks." .. l .. ".attn.hook_pattern"]
    hooks["blocks." .. l .. ".attn.hook_pattern"] = function(z)
      local keep = T.ones(1, 3, 1, 1)
      keep[1][2][1][1] = 0
      return z * keep + want * (1 - keep)
    end
  end
  local ref = plain:run_with_hooks(tk, hooks)
  local got = mod:forward(tk)
  test.ok((got - ref):abs():max():item() < 1e-5, "a fixed head equals a plain head whose pattern is overwritten")
  local loss = mod:forward(tk):sum()
  loss:backward()
  local g = mod.params["blocks.0.attn.W_Q"].grad
  test.is(g:select(1, 2):abs():max():item(), 0.0, "the fixed head's W_Q gets no gradient")
  test.ok(g:select(1, 1):abs():max():item() > 0, "a learned head's W_Q does")
end

test.done()
