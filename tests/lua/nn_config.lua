-- The transformer's config schema (nn/model/config.c): every key read back, defaults that
-- depend on other keys, one error message per kind of mistake, "did you mean", ln_eps, and
-- the config's round trip through a checkpoint.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn"

local base = { n_layers = 1, d_model = 8, d_vocab = 5, n_ctx = 4 }
local function cfg(extra)
  local c = {}
  for k, v in pairs(base) do c[k] = v end
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

-- defaults, derived defaults and the keys a model reads back
local m = nn.transformer(cfg())
test.is(m.cfg, { n_layers = 1, d_model = 8, n_heads = 1, d_head = 8, d_mlp = 32, d_vocab = 5, d_vocab_out = 5, n_ctx = 4,
  act_fn = "gelu", normalization = "LN", ln_position = "pre", ln_eps = 1e-5, causal = true, init_range = 0.02,
  tie_layers = false, positional = "learned", readout = "unembed" }, "every key resolved to its default")
local m2 = nn.transformer(cfg { n_heads = 2, attn_only = true, d_vocab_out = 3, fixed_patterns = { [2] = "local" } })
test.is({ m2.cfg.d_head, m2.cfg.d_mlp, m2.cfg.d_vocab_out, m2.cfg.fixed_patterns }, { 4, 0, 3, { [2] = "local" } },
  "d_head = d_model / n_heads, attn_only gives d_mlp = 0, fixed patterns read back")
test.is(m2.cfg.attn_only, nil, "attn_only is an input only (read back as d_mlp = 0)")
local wide = nn.transformer(cfg { n_heads = 80, d_head = 2, fixed_patterns = { [80] = "assoc" } })
test.is(wide.cfg.fixed_patterns, { [80] = "assoc" }, "a fixed pattern on head 80: no limit of 64 heads")
test.is(wide:forward(T.tensor({ { 1, 2, 1, 3 } }, "int32")):shape(), { 1, 4, 5 }, "and the model runs")

-- each kind of mistake, with the key and the value named
local cases = {
  { { n_head = 2 }, "unknown config key 'n_head' (did you mean 'n_heads'?)", "an unknown key with a close match" },
  { { ln_postion = "post" }, "(did you mean 'ln_position'?)", "a misspelt new key" },
  { { n_layers = 1.5 }, "'n_layers' must be an integer, got number", "a fractional integer" },
  { { n_layers = -3 }, "'n_layers' = -3 is out of range", "a negative integer" },
  { { causal = "yes" }, "'causal' must be true or false, got string", "a bool given as a string" },
  { { ln_eps = "small" }, "'ln_eps' must be a number, got string", "a number given as a string" },
  { { ln_eps = 0 }, "'ln_eps' must be a positive number, got 0", "ln_eps = 0" },
  { { init_range = -1 }, "'init_range' must be a positive number", "a negative init_range" },
  { { act_fn = "tanh" }, [[must be one of "relu", "gelu", got "tanh"]], "an unknown choice lists the choices" },
  { { positional = 3 }, "'positional' must be a string, got number", "a choice given as a number" },
  { { fixed_patterns = "assoc" }, "must be a table", "fixed_patterns not a table" },
  { { fixed_patterns = { [2] = "assoc" } }, "head 2 is not in 1..1", "a fixed head past n_heads" },
  { { fixed_patterns = { [1] = "global" } }, [[fixed_patterns[1] must be "assoc" or "local", got "global"]], "an unknown pattern" },
  { { attn_only = true, d_mlp = 8 }, "attn_only = true conflicts with d_mlp = 8", "attn_only with an MLP" },
  { { n_ctx = false }, "'n_ctx' must be an integer", "a required key of the wrong type" },
  { { positional = "sinusoidal", d_model = 7 }, "'d_model' must be even for sinusoidal positions, got 7", "odd d_model with sinusoids" },
  { { [1] = 2 }, "config keys must be strings", "a non-string key" },
}
for _, c in ipairs(cases) do
  test.throws(function() nn.transformer(cfg(c[1])) end, c[2], "config: " .. c[3])
end
do
  local ok, err = pcall(nn.transformer, cfg { qqqqq = 1 })
  test.ok(not ok and err:find("unknown config key 'qqqqq'", 1, true) and not err:find("did you mean"),
    "config: no suggestion when nothing is close")
end
test.throws(function() nn.transformer { d_model = 8, d_vocab = 5, n_ctx = 4 } end, "'n_layers' is required", "a missing key is named")

-- a model past any machine's memory is refused at once, with its size named
test.throws(function() nn.transformer(cfg { n_layers = 1 << 24, d_model = 4096 }) end,
  "the parameters alone take 1.35e+07 GB (3.379e+15 numbers), more than this machine's",
  "2^24 layers of d_model 4096 are refused before any allocation")
test.throws(function() nn.transformer(cfg { d_model = 1 << 24, d_mlp = 1 << 24 }) end, "more than this machine's",
  "one layer too wide for memory is refused")
-- a deep, narrow model is built, its parameters in order: embed, each block, the tail
do
  local deep = nn.transformer(cfg { n_layers = 3000, d_model = 4, d_mlp = 4 })
  local names = deep.param_names
  test.is(#names, 2 + 3000 * 16 + 4, "3000 layers: 16 parameters each, embed and tail")
  test.is({ names[1], names[2], names[3], names[18], names[19], names[2 + 2999 * 16 + 1], names[#names - 4], names[#names] },
    { "embed.W_E", "pos_embed.W_pos", "blocks.0.ln1.w", "blocks.0.mlp.b_out", "blocks.1.ln1.w", "blocks.2999.ln1.w",
      "blocks.2999.mlp.b_out", "unembed.b_U" }, "names in the model's order across the blocks")
  test.is(deep:num_params(), 5 * 4 + 4 * 4 + 3000 * (2 * 4 + 3 * (16 + 4) + 16 + 4 + 2 * 4 + 16 + 4 + 16 + 4) + 2 * 4 + 4 * 5 + 5,
    "and their sizes")
  local tied = nn.transformer(cfg { n_layers = 3000, d_model = 4, d_mlp = 4, tie_layers = true })
  test.is(#tied.param_names, 2 + 16 + 4, "tied layers: one block of parameters")
end
test.throws(function() nn.transformer "LN" end, "expected a config table", "a config that is not a table")

-- nn.suggest, the same algorithm for hook and parameter names
test.is(nn.suggest("blocks.0.attn.hook_zz", m.hook_names):match("^[^,]+"), "blocks.0.attn.hook_z", "suggest: a typo in a hook name")
test.is(nn.suggest("hook_patern", m.hook_names):match("^[^,]+"), "blocks.0.attn.hook_pattern", "suggest: a part of a hook name")
test.is(nn.suggest("x", {}), "", "suggest: no names, no suggestion")

-- ln_eps is the epsilon of every LayerNorm
do
  local big = nn.transformer(cfg { ln_eps = 0.5 })
  for k, v in pairs(m.params) do big.params[k] = v end
  local toks = T.tensor({ { 1, 2, 3, 4 } }, "int32")
  local out, cache = big:run_with_cache(toks)
  local x = cache["blocks.0.hook_resid_pre"]
  local xc = x - x:mean(3, true)
  local by_hand = xc / ((xc * xc):mean(3, true) + 0.5):sqrt()
  test.close(cache["blocks.0.ln1.hook_normalized"], by_hand, 1e-5, "ln_eps = 0.5 is the epsilon of ln1")
  test.ok((out - m:forward(toks)):abs():max():item() > 1e-3, "and changes the logits")
  local p = os.tmpname()
  big:save(p)
  local back = nn.load(p)
  os.remove(p)
  test.is(back.cfg, big.cfg, "the resolved config survives a checkpoint")
  test.close(back:forward(toks), out, 0, "the loaded model computes the same logits")
end

test.done()
