-- The readouts against values computed by hand, term by term: one head's direct logit
-- attribution in a model without LayerNorm is z_h . W_O[h] . W_U[:, t]; a logit-lens row with
-- the frozen scale is ((x - mean x) / ln_final.hook_scale * w + b) . W_U + b_U from the cached
-- stream. Models the readouts cannot read (post-LN, a classification readout) are refused.
local T = require "milua.tensor"
local nn = require "milua.nn"
local analysis = require "milua.analysis"
local test = require "milua.test"

T.seed(5)
local D, H, E, V = 8, 2, 4, 7
local model = nn.transformer { n_layers = 2, d_model = D, n_heads = H, d_head = E, d_mlp = 16, d_vocab = V,
  n_ctx = 6, normalization = "none" }
local toks = T.randint(1, V + 1, 2, 5)
local logits, cache = model:run_with_cache(toks)

-- one head's term, by hand with Lua loops over the cached z and the weights
local l, h, pos, tok = 1, 2, 4, 3
local z = cache["blocks." .. l .. ".attn.hook_z"]:totable()      -- [B][T][H][E]
local WO = model.params["blocks." .. l .. ".attn.W_O"]:totable() -- [H][E][D]
local WU = model.params["unembed.W_U"]:totable()                 -- [D][V]
local r = analysis.dla(model, cache, tok, pos)
local row
for i, lab in ipairs(r.labels) do if lab == string.format("L%dH%d", l, h) then row = i end end
test.ok(row ~= nil, "dla labels the head L1H2")
for b = 1, 2 do
  local want = 0
  for e = 1, E do
    for d = 1, D do want = want + z[b][pos][h][e] * WO[h][e][d] * WU[d][tok] end
  end
  test.close(r.values[row][b]:item(), want, 1e-5, string.format("dla of L1H2, batch row %d, by hand (%.6f)", b, want))
end
test.close(r.total, logits:select(2, pos):select(2, tok), 1e-4, "the terms and the bias add up to the logit")

-- a logit-lens row, by hand from the cached stream and ln_final.hook_scale
T.seed(6)
local m2 = nn.transformer { n_layers = 2, d_model = D, n_heads = H, d_mlp = 16, d_vocab = V, n_ctx = 6 }
local lg2, c2 = m2:run_with_cache(toks)
local lens = analysis.logit_lens(m2, c2, { ln = "frozen", pos = pos })     -- [3, B, V]
local x = c2["blocks.0.hook_resid_post"]:totable()                         -- the row "layer 0"
local sc = c2["ln_final.hook_scale"]:totable()
local w, bb = m2.params["ln_final.w"]:totable(), m2.params["ln_final.b"]:totable()
local WU2, bU = m2.params["unembed.W_U"]:totable(), m2.params["unembed.b_U"]:totable()
local worst = 0
for b = 1, 2 do
  local mean = 0
  for d = 1, D do mean = mean + x[b][pos][d] / D end
  for v = 1, V do
    local want = bU[v]
    for d = 1, D do want = want + ((x[b][pos][d] - mean) / sc[b][pos][1] * w[d] + bb[d]) * WU2[d][v] end
    worst = math.max(worst, math.abs(lens[2][b][v]:item() - want))
  end
end
test.ok(worst < 1e-5, string.format("logit lens row 'layer 0' with the frozen scale equals the hand computation (%.2g)", worst))
test.close(lens[3], lg2:select(2, pos), 1e-4, "the last lens row is the model's logits")

-- models these readouts cannot read are refused with a reason
local post = nn.transformer { n_layers = 1, d_model = D, n_heads = H, d_mlp = 16, d_vocab = V, n_ctx = 6,
  ln_position = "post", causal = false }
local _, cp = post:run_with_cache(toks)
test.throws(function() analysis.logit_lens(post, cp) end, "post-LN", "the lens refuses a post-LN model")
test.throws(function() analysis.dla(post, cp, 1) end, "post-LN", "dla refuses a post-LN model")
local cls = nn.transformer { n_layers = 1, d_model = D, n_heads = H, d_mlp = 16, d_vocab = V, n_ctx = 5,
  readout = "flatten", d_out = 3, causal = false }
local _, cc = cls:run_with_cache(toks)
test.throws(function() analysis.logit_lens(cls, cc) end, "readout is 'flatten'", "the lens refuses a flatten readout")
test.done()
