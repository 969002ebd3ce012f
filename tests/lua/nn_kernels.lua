-- The transformer's fused kernels called one by one: each forward against the
-- same computation written with generic tensor ops, each backward against
-- finite differences, and their error messages.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn"

T.seed(31)
local function P(...) return T.randn(...):requires_grad(true) end
local function maxdiff(a, b) return (a - b):abs():max():item() end
local function gc(desc, fn, inputs)
  local ok, report = T.gradcheck(fn, inputs)
  test.ok(ok, "gradcheck " .. desc)
  if not ok then test.diag(report) end
end

-- ---- layer_norm ----
do
  local x, w, b = P(3, 5, 8), P(8), P(8)
  local y = nn.layer_norm(x, w, b)
  local mean = x:mean(3, true)
  local var = x:var(3, true, false)
  local ref = (x - mean) / (var + 1e-5):sqrt() * w + b
  test.ok(maxdiff(y, ref) < 1e-5, "layer_norm equals (x - mean) / sqrt(var + eps) * w + b")
  local y2 = nn.layer_norm(x, w, b, 0.5)
  local ref2 = (x - mean) / (var + 0.5):sqrt() * w + b
  test.ok(maxdiff(y2, ref2) < 1e-5, "layer_norm honours eps")
  gc("layer_norm (x, w, b)", function(a, c, d) return nn.layer_norm(a, c, d) end, { P(2, 3, 6), P(6), P(6) })
  test.throws(function() nn.layer_norm(x, P(7), b) end, "layer_norm: weight", "layer_norm: wrong weight size is named")

  -- the same LayerNorm in the model's hooked steps: scale, normalize (by a scale that may be
  -- replaced), affine; the same bits as the fused kernel, and each step's own backward
  local sc = nn.ln_scale(x, 1e-5)
  test.is(sc:shape(), { 3, 5, 1 }, "ln_scale keeps the last dim as 1")
  test.ok(maxdiff(sc, (var + 1e-5):sqrt()) < 1e-6, "ln_scale = sqrt(var + eps)")
  local xn = nn.ln_normalize(x, sc)
  test.ok(maxdiff(xn, (x - mean) / (var + 1e-5):sqrt()) < 1e-5, "ln_normalize = (x - mean) / scale")
  test.is(maxdiff(nn.affine(xn, w, b), y), 0, "scale, normalize, affine give the fused kernel's bits")
  gc("ln_scale (x)", function(a) return nn.ln_scale(a, 0.1) end, { P(2, 3, 6) })
  gc("ln_normalize (x, scale)", function(a, s) return nn.ln_normalize(a, s) end,
    { P(2, 3, 6), (T.rand(2, 3, 1) + 0.5):requires_grad(true) })
  gc("affine (x, w, b)", function(a, c, d) return nn.affine(a, c, d) end, { P(2, 3, 6), P(6), P(6) })
  gc("the three steps composed (x, w, b)", function(a, c, d) return nn.affine(nn.ln_normalize(a, nn.ln_scale(a)), c, d) end,
    { P(2, 3, 6), P(6), P(6) })
  test.throws(function() nn.ln_normalize(x, T.ones(3, 4, 1)) end, "ln_normalize: needs float32 x [..., D] and scale [..., 1]",
    "ln_normalize: a scale of the wrong size is named")
  test.throws(function() nn.affine(x, P(7), b) end, "affine: needs float32 x [..., D], w [D] and b [D]",
    "affine: a weight of the wrong size is named")
  test.throws(function() nn.ln_scale(T.ones(3):int()) end, "ln_scale: needs a float32 tensor", "ln_scale: an int tensor is refused")

  -- the three steps in one pass (the hooked LayerNorm without gradients): the same bits as each
  -- step, for several widths and eps, also on a non-contiguous input
  T.no_grad(function()
    for _, D in ipairs({ 1, 7, 64, 130 }) do
      local xd, wd, bd = T.randn(4, 9, D) * 3 + 1, T.randn(D), T.randn(D)
      for _, eps in ipairs({ 1e-5, 0.3 }) do
        local s1, n1, y1 = nn.ln_parts(xd, wd, bd, eps)
        local s0 = nn.ln_scale(xd, eps)
        local n0 = nn.ln_normalize(xd, s0)
        test.is({ maxdiff(s1, s0), maxdiff(n1, n0), maxdiff(y1, nn.affine(n0, wd, bd)) }, { 0, 0, 0 },
          string.format("ln_parts (D %d, eps %g): scale, normalized and output bit-identical to the three steps", D, eps))
      end
    end
    local xt = T.randn(6, 5):t()   -- [5, 6], strided
    local s1, n1, y1 = nn.ln_parts(xt, T.ones(6), T.zeros(6))
    test.is(maxdiff(y1, nn.layer_norm(xt:contiguous(), T.ones(6), T.zeros(6))), 0.0,
      "ln_parts on a transposed input equals layer_norm on its contiguous copy")
    test.is(s1:shape(), { 5, 1 }, "ln_parts: the scale is [..., 1]")
  end)
  test.throws(function() nn.ln_parts(x, w, b) end, "ln_parts: computes no gradients",
    "ln_parts refuses inputs that need gradients (it builds no graph)")
  test.throws(function() T.no_grad(function() return nn.ln_parts(T.ones(2, 8), T.ones(7), T.ones(8)) end) end,
    "ln_parts: needs float32 x [..., D], w [D] and b [D]", "ln_parts: a weight of the wrong size is named")
end

-- ---- linear, plain and per-head ----
do
  local x, W, b = P(2, 3, 4), P(4, 5), P(5)
  test.ok(maxdiff(nn.linear(x, W, b), x:matmul(W) + b) < 1e-5, "linear equals x @ W + b")
  gc("linear [K, N]", function(a, c, d) return nn.linear(a, c, d) end, { P(2, 3, 4), P(4, 5), P(5) })
  local Wh, bh = P(3, 4, 2), P(3, 2)   -- [H, K, E]: three heads of width 2
  local y = nn.linear(x, Wh, bh)
  test.is(y:shape(), { 2, 3, 6 }, "per-head linear gives [..., H*E]")
  local worst = 0
  for h = 1, 3 do
    local ref = x:matmul(Wh:select(1, h)) + bh:select(1, h)
    worst = math.max(worst, maxdiff(y:narrow(3, 2 * h - 1, 2), ref))
  end
  test.ok(worst < 1e-5, "per-head linear: head h's columns equal x @ W[h] + b[h]")
  gc("linear [H, K, E]", function(a, c, d) return nn.linear(a, c, d) end, { P(2, 3, 4), P(3, 4, 2), P(3, 2) })
  test.throws(function() nn.linear(x, P(3, 5), b) end, "linear:", "linear: mismatched inner size is an error")
end

-- ---- attention scores, softmax and apply ----
do
  local q, k = P(2, 5, 3, 4), P(2, 6, 3, 4)   -- [B,T,H,E], [B,S,H,E]
  local s = nn.attn_scores(q, k)
  test.is(s:shape(), { 2, 3, 5, 6 }, "attn_scores is [B,H,T,S]")
  local ref = q:permute(1, 3, 2, 4):matmul(k:permute(1, 3, 4, 2))
  test.ok(maxdiff(s, ref) < 1e-5, "attn_scores equals q_h @ k_h^T per batch and head")
  gc("attn_scores", function(a, c) return nn.attn_scores(a, c) end, { P(2, 3, 2, 4), P(2, 4, 2, 4) })
  test.throws(function() nn.attn_scores(q, P(2, 6, 2, 4)) end, "attn_scores: q", "attn_scores: head mismatch is named")

  local sc = P(2, 3, 5, 5)
  local pat = nn.attn_softmax(sc, 0.5, true)
  local m = T.zeros(5, 5)
  for i = 1, 5 do for j = i + 1, 5 do m[i][j] = 1 end end
  local pref = (sc * 0.5):masked_fill(m, -math.huge):softmax(4)
  test.ok(maxdiff(pat, pref) < 1e-6, "causal attn_softmax equals softmax of scaled scores with the future masked")
  test.ok(maxdiff(nn.attn_softmax(sc, 2.0), (sc * 2.0):softmax(4)) < 1e-6, "bidirectional attn_softmax")
  test.is(pat[1][1][1][2]:item(), 0.0, "a masked position has weight 0")
  gc("attn_softmax causal", function(a) return nn.attn_softmax(a, 0.7, true) end, { P(2, 2, 4, 4) })
  gc("attn_softmax bidirectional", function(a) return nn.attn_softmax(a, 0.7) end, { P(2, 2, 3, 4) })
  test.throws(function() nn.attn_softmax(T.randn(4), 1) end, "attn_softmax:", "attn_softmax: 1-d scores are refused")

  local p, v = P(2, 3, 5, 6), P(2, 6, 3, 4)   -- [B,H,T,S], [B,S,H,E]
  local z = nn.attn_apply(p, v)
  test.is(z:shape(), { 2, 5, 3, 4 }, "attn_apply is [B,T,H,E]")
  local zref = p:matmul(v:permute(1, 3, 2, 4)):permute(1, 3, 2, 4)
  test.ok(maxdiff(z, zref) < 1e-5, "attn_apply equals pattern_h @ v_h per batch and head")
  gc("attn_apply", function(a, c) return nn.attn_apply(a, c) end, { P(2, 2, 3, 4), P(2, 4, 2, 3) })
  test.throws(function() nn.attn_apply(p, P(2, 5, 3, 4)) end, "attn_apply: pattern", "attn_apply: S mismatch is named")

  -- the three together, against the generic composition, gradients included
  local q2, k2, v2 = P(2, 4, 2, 3), P(2, 4, 2, 3), P(2, 4, 2, 3)
  local function fused(a, c, d) return nn.attn_apply(nn.attn_softmax(nn.attn_scores(a, c), 0.6, true), d) end
  gc("scores -> softmax -> apply", fused, { q2, k2, v2 })
end

-- the error leaves the process running with a usable state
test.lives(function() nn.layer_norm(T.randn(2, 3), T.randn(3), T.randn(3)) end, "kernels work after the errors")
test.done()
