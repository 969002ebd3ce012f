-- milua.analysis: direct logit attribution, the logit lens, attention-head scores and weight edits.
local T = require "milua.tensor"
local nn = require "milua.nn"
local analysis = require "milua.analysis"
local test = require "milua.test"

T.seed(11)
local cfg = { n_layers = 3, d_model = 24, n_heads = 3, d_head = 8, d_mlp = 48, d_vocab = 12, n_ctx = 10, init_range = 0.3 }
local model = nn.transformer(cfg)
T.no_grad(function()   -- non-trivial LayerNorm and bias parameters, so every term of the identity matters
  for _, n in ipairs(model.param_names) do
    if n:match("%.b_?[%a]*$") or n:match("ln.*%.w$") or n:match("ln_final") then
      model.params[n]:add_(T.randn(model.params[n]:shape()) * 0.2)
    end
  end
end)
local tokens = T.randint(1, 13, 5, 9):int()
local logits, cache = model:run_with_cache(tokens)

-- ---- direct logit attribution
local r = analysis.dla(model, cache, 4)
test.is(#r.labels, 2 + 3 * (3 + 2), "dla: embed, pos_embed, and per layer 3 heads, b_O and the MLP")
test.is(r.labels[3], "L0H1", "dla labels name heads L<layer>H<head>")
test.is(r.values:shape(), { #r.labels, 5 }, "dla values are [n_components, batch]")
test.close(r.values:sum(1) + r.bias, logits:select(2, 9):select(2, 4), 2e-4, "dla: components + bias sum to the logit")
test.close(r.total, logits:select(2, 9):select(2, 4), 2e-4, "dla: total is that sum")
local ids = T.tensor({ 1, 5, 7, 12, 2 }, "int32")
r = analysis.dla(model, cache, ids, 3)
test.close(r.total, logits:select(2, 3):gather(2, ids:view(-1, 1)):view(-1), 2e-4,
  "dla: per-example token ids at position 3")
r = analysis.dla(model, cache, { plus = 2, minus = 6 }, -1)
test.close(r.total, logits:select(2, 9):select(2, 2) - logits:select(2, 9):select(2, 6), 2e-4,
  "dla: a logit difference at the last position")
local u = model.params["unembed.W_U"]:select(2, 3)
r = analysis.dla(model, cache, u:detach())
test.close(r.total, logits:select(2, 9):select(2, 3) - model.params["unembed.b_U"][3]:item(), 2e-4,
  "dla: a raw direction (no b_U term)")

-- no LayerNorm, weight-tied layers, no positional embedding
T.seed(12)
local m2 = nn.transformer { n_layers = 2, d_model = 16, n_heads = 2, d_head = 8, d_mlp = 32, d_vocab = 7, n_ctx = 6,
  normalization = "none", tie_layers = true, positional = "none", init_range = 0.3 }
local t2 = T.randint(1, 8, 3, 6):int()
local lg2, c2 = m2:run_with_cache(t2)
local r2 = analysis.dla(m2, c2, 5)
test.is(r2.labels[2], "L0H1", "dla without positional embedding starts embed, L0H1")
test.close(r2.total, lg2:select(2, 6):select(2, 5), 2e-4, "dla identity without LayerNorm, with tied layers")

-- ---- logit lens
local lens, labels = analysis.logit_lens(model, cache)
test.is(lens:shape(), { 4, 5, 9, 12 }, "logit lens is [n_layers+1, batch, pos, vocab]")
test.is(labels, { "embed", "layer 0", "layer 1", "layer 2" }, "logit lens labels")
test.close(lens[4], logits, 1e-4, "logit lens: the last layer equals the model's logits")
local frozen = analysis.logit_lens(model, cache, { ln = "frozen" })
test.close(frozen[4], logits, 1e-4, "frozen-scale logit lens: the last layer equals the logits too")
test.ok((frozen[1] - lens[1]):abs():max():item() > 1e-3, "frozen and recomputed scales differ at the embedding")
local at = analysis.logit_lens(model, cache, { pos = -1 })
test.is(at:shape(), { 4, 5, 12 }, "logit lens at one position is [n_layers+1, batch, vocab]")
test.close(at[4], logits:select(2, 9), 1e-4, "logit lens at the last position")
-- the embedding row by hand: ln_final(W_E[t] + W_pos[p]) W_U + b_U
local x = cache["hook_embed"] + cache["hook_pos_embed"]
local xc = x - x:mean(-1, true)
local by_hand = (xc / ((xc * xc):mean(-1, true) + 1e-5):sqrt() * model.params["ln_final.w"] + model.params["ln_final.b"])
  :matmul(model.params["unembed.W_U"]) + model.params["unembed.b_U"]
test.close(lens[1], by_hand, 1e-4, "logit lens row 1 = the embedding through a recomputed ln_final")
local _, part = model:run_with_cache(tokens, function(n) return n:find("resid_pre") or n == "blocks.2.hook_resid_post" end)
test.lives(function() analysis.logit_lens(model, part) end, "logit lens works from resid_pre alone (next layer's pre = post)")
test.throws(function() analysis.logit_lens(model, select(2, model:run_with_cache(tokens, "hook_pattern"))) end,
  "the cache has no", "logit lens names the missing activation")

-- ---- head scores on hand-set patterns
-- encoder tokens: variables 1 and 2 repeat, 3 and 4 do not
local toks = T.tensor({ { 1, 2, 3, 1, 2, 4 }, { 2, 3, 2, 4, 1, 1 } }, "int32")
local B, Tn = 2, 6
local tl = toks:totable()
local function pattern(fnq)   -- [B, 1, T, T] from a weight function w(b, q, k)
  local p = {}
  for b = 1, B do
    local rows = {}
    for q = 1, Tn do
      local row, s = {}, 0
      for k = 1, Tn do row[k] = fnq(b, q, k); s = s + row[k] end
      for k = 1, Tn do row[k] = row[k] / s end
      rows[q] = row
    end
    p[b] = { rows }
  end
  return T.tensor(p)
end
local assoc = pattern(function(b, q, k)
  local dup = false
  for j = 1, Tn do if j ~= q and tl[b][j] == tl[b][q] then dup = true end end
  if not dup then return 1 end
  return (k ~= q and tl[b][k] == tl[b][q]) and 1 or 0
end)
local uniform = pattern(function() return 1 end)
local both = T.cat({ assoc, uniform }, 2)                     -- one layer, 2 heads
local pc = { ["blocks.0.attn.hook_pattern"] = both, ["blocks.1.attn.hook_pattern"] = both }
local s, base, n = analysis.same_token_score(pc, toks, { query_tokens = { 1, 2 } })
test.is(s:shape(), { 2, 2 }, "same-token score is [n_layers, n_heads]")
test.close(s[1][1]:item(), 1, 1e-6, "a head attending only to identical tokens scores 1")
test.close(s[1][2]:item(), base, 1e-6, "a uniform head scores the uniform baseline")
test.close(base, 1 / 6, 1e-6, "baseline: one identical other token among 6 keys")
test.is(n, 8, "8 query positions hold a repeated variable")
s = analysis.same_token_score(both, toks, { query = function(b, q, t) return t[b][q] <= 2 end })
test.close(s[1][1]:item(), 1, 1e-6, "a single pattern tensor and a query predicate work too")
-- causal: uniform over keys 1..q; queries with an earlier identical token
local causal_uniform = pattern(function(b, q, k) return k <= q and 1 or 0 end)
local causal_assoc = pattern(function(b, q, k)
  local earlier = false
  for j = 1, q - 1 do if tl[b][j] == tl[b][q] then earlier = true end end
  if not earlier then return k <= q and 1 or 0 end
  return (k < q and tl[b][k] == tl[b][q]) and 1 or 0
end)
local cp = T.cat({ causal_assoc, causal_uniform }, 2)
local function earlier_dup(b, q, t)
  for j = 1, q - 1 do if t[b][j] == t[b][q] then return true end end
  return false
end
local cs, cbase = analysis.same_token_score(cp, toks, { query = earlier_dup })
test.close(cs[1][1]:item(), 1, 1e-6, "causal: attending only to the earlier identical token scores 1")
test.close(cs[1][2]:item(), cbase, 1e-6, "causal: uniform attention over keys 1..q scores the baseline")
-- queries (b,q): (1,4) (1,5) (2,3) (2,6), each with one earlier identical token: mean of 1/q
test.close(cbase, (1 / 4 + 1 / 5 + 1 / 3 + 1 / 6) / 4, 1e-6, "causal baseline = mean over queries of 1/q")
-- previous-token and first-token heads
local prev = pattern(function(b, q, k) return (k == q - 1 or (q == 1 and k == 1)) and 1 or 0 end)
local first = pattern(function(b, q, k) return k == 1 and 1 or 0 end)
local pf = T.cat({ prev, first }, 2)
test.close(analysis.prev_token_score(pf), T.tensor({ { 1, 0.2 } }), 1e-6, "previous-token score: 1 for the shift head")
test.close(analysis.first_token_score(pf), T.tensor({ { 0.2, 1 } }), 1e-6, "first-token score: 1 for the BOS head")
local g = analysis.head_score(pf, toks, function(b, q, k) return k == q - 1 end, { query = function(b, q) return q > 1 end })
test.close(g, T.tensor({ { 1, 0.2 } }), 1e-6, "head_score with predicates reproduces the previous-token score")
-- picking heads from a [n_layers, n_heads] score: 0-based layer, 1-based head, best first
do
  local sc = T.tensor({ { 0.1, 0.7, 0.3 }, { 0.9, 0.2, 0.7 } })
  test.is(analysis.best_head(sc), { layer = 1, head = 1, score = sc[2][1]:item() }, "best_head: the highest score")
  test.is(analysis.best_head({ { 0.5, 0.5 }, { 0.5, 0.1 } }), { layer = 0, head = 1, score = 0.5 },
    "best_head: a nested table works; the first of equal scores wins")
  local over = analysis.heads_over(sc, sc[1][2]:item())   -- 0.7 as stored (float32): "at" counts
  test.is(#over, 3, "heads_over: the heads at or above the threshold (0.9, 0.7, 0.7)")
  test.is({ over[1].layer, over[1].head }, { 1, 1 }, "heads_over: the highest first")
  test.is(#analysis.heads_over(sc, 0.95), 0, "heads_over: none above every score")
  test.throws(function() analysis.best_head(T.tensor({ 1, 2 })) end, "analysis.best_head: expected scores [n_layers, n_heads]",
    "best_head: a 1-d tensor is refused")
  test.throws(function() analysis.heads_over(sc, "high") end, "analysis.heads_over: threshold must be a number",
    "heads_over: the threshold must be a number")
end
test.throws(function() analysis.same_token_score(pc, toks:narrow(2, 1, 5)) end, "tokens are", "token/pattern shape mismatch")
test.throws(function() analysis.head_score({}, toks, function() return true end) end, "hook_pattern",
  "a cache without patterns")

-- a list of layer patterns (its speed at 300 x 50 tokens, 16 heads, 2 layers: bench/experiments.lua)
T.seed(5)
local bigp = T.rand(30, 16, 50, 50):softmax(4)
local bigt = T.randint(1, 20, 30, 50):int()
local bs = analysis.same_token_score({ bigp, bigp }, bigt, { query_tokens = { 1, 2, 3, 4, 5 } })
test.is(bs:shape(), { 2, 16 }, "same-token score on a list of 2 layer patterns")

-- ---- weight edits
local function bytes(t) return t:contiguous():view(-1):totable() end
local name = "blocks.1.mlp.W_out"
local before = bytes(model.params[name])
local base_logits = model:forward(tokens)
local h = analysis.edit(model, name, { zero = true })
test.close(model.params[name], 0, 0, "edit zero: the weight is zero")
test.ok((model:forward(tokens) - base_logits):abs():max():item() > 1e-3, "the edit changes the model's output")
h:undo()
test.is(bytes(model.params[name]), before, "undo restores the exact bytes")
test.is(model:forward(tokens), base_logits, "undo restores the exact logits")
test.ok(model.params[name]:requires_grad(), "the parameter still requires grad after edit and undo")

local WO = "blocks.0.attn.W_O"
local wo_before = bytes(model.params[WO])
h = analysis.edit(model, WO, { zero = true, head = 2 })
test.close(model.params[WO][2], 0, 0, "edit head = 2 zeroes that head's W_O")
test.ok(model.params[WO][1]:abs():sum():item() > 0, "... and leaves head 1")
local ab = model:run_with_hooks(tokens, analysis.ablate_head(0, 2))
test.close(model:forward(tokens), ab, 1e-5, "zeroing W_O[2] equals zero-ablating L0H2 at hook_z")
h:undo()
test.is(bytes(model.params[WO]), wo_before, "undo of a sliced edit is exact")

-- a direction in the residual space: the output dim of W_out ("out")
local dir = T.randn(24)
local du = dir / dir:norm()
h = analysis.edit(model, name, { project_out = dir })
test.close(model.params[name]:matmul(du), 0, 1e-5, "project_out along out: W u = 0")
h:undo()
h = analysis.edit(model, name, { scale = 3, direction = dir, along = "out" })
local Wb = T.tensor(before):view(48, 24)
test.close(model.params[name]:matmul(du), Wb:matmul(du) * 3, 1e-4, "scale along a direction triples that component")
test.close(model.params[name] - (model.params[name]:matmul(du)):unsqueeze(2) * du,
  Wb - (Wb:matmul(du)):unsqueeze(2) * du, 1e-4, "... and keeps the orthogonal part")
h:undo()
test.is(bytes(model.params[name]), before, "undo after a direction scale is exact")
-- a PCA component as the direction, on the input side of W_U
local acts = cache["blocks.2.hook_resid_post"]:reshape(45, 24)
local p = analysis.pca(acts, 3)
local wu_before = bytes(model.params["unembed.W_U"])
h = analysis.edit(model, "unembed.W_U", { project_out = true, component = { pca = p, index = 2 } })
test.close(p.components[2]:matmul(model.params["unembed.W_U"]), 0, 1e-5, "project out PCA component 2 from W_U's input")
h:undo()
test.is(bytes(model.params["unembed.W_U"]), wu_before, "undo of the PCA edit is exact")
test.throws(function() analysis.edit(model, "blocks.9.mlp.W_out", { zero = true }) end, "unknown parameter",
  "edit: unknown parameter name")
test.throws(function() analysis.edit(model, name, { scale = 2, zero = true }) end, "exactly one", "edit: one action")
test.throws(function() analysis.edit(model, name, { project_out = T.ones(7) }) end, "direction has 7 entries",
  "edit: direction size must match a dim")
test.throws(function() analysis.edit(model, "blocks.0.attn.W_O", { zero = true, head = 4 }) end, "out of range",
  "edit: head out of range")
test.throws(function() analysis.edit(model, name, { project_out = true, component = { pca = p, index = 4 } }) end,
  "out of range", "edit: PCA component out of range")
test.throws(function() analysis.dla(model, cache, 13) end, "out of range", "dla: token id out of range")
test.throws(function() analysis.dla(model, cache, 1, 10) end, "out of range", "dla: position out of range")
test.throws(function() analysis.dla(model, {}, 1) end, "hook_embed", "dla: the cache must hold the activations")

-- ---- the reference fixtures: ablate_head against PyTorch's head ablation, DLA and lens identities
local dir = os.getenv("MILUA_FIXTURES") or ((arg[0]:match("^(.*)/lua/[^/]*$") or "tests") .. "/fixtures")
for _, f in ipairs({ "causal_ln_gelu", "encoder_ln_relu", "attn_only_noln" }) do
  local path = dir .. "/" .. f .. ".safetensors"
  local fh = io.open(path, "rb")
  if not fh then
    test.skip(f .. ": fixture checks", "no " .. path)
  else
    fh:close()
    local fm, fx = nn.load(path)
    local toks = fx["fixture.tokens"]
    local ref = fx["fixture.ablated_logits"]
    local lg, fc = fm:run_with_cache(toks)
    if ref then
      local tol = 2e-5 * math.max(1, ref:abs():max():item())
      test.close(fm:run_with_hooks(toks, analysis.ablate_head(0, 2)), ref, tol,
        f .. ": ablate_head(0, 2) reproduces the reference's ablated logits")
    end
    local V = lg:shape()[3]
    local r = analysis.dla(fm, fc, T.ones(toks:shape()[1], "int32") * V)
    test.close(r.total, lg:select(2, -1):select(2, V), 1e-4 * math.max(1, lg:abs():max():item()),
      f .. ": the DLA components sum to the logit")
    test.close(analysis.logit_lens(fm, fc)[fm.cfg.n_layers + 1], lg, 1e-5 * math.max(1, lg:abs():max():item()),
      f .. ": the last logit-lens row equals the logits")
  end
end

test.done()
