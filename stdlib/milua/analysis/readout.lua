-- milua.analysis.readout: the logit lens and direct logit attribution.
local T = require "milua.tensor"
local U = require "milua.analysis.util"
local nn = require "milua.nn"

local M = {}

local EPS = 1e-5   -- the model's LayerNorm epsilon (DESIGN.md)

-- DLA and the lens split the stream as the pre-LN transformer of DESIGN.md does
local function check_norm(model, fn)
  local nrm = model.cfg.normalization
  if nrm ~= "LN" and nrm ~= "none" then
    U.fail(fn, "normalization '%s' is not supported (only the pre-LN \"LN\" and \"none\")", tostring(nrm))
  end
  -- a post-LN block normalises the whole stream after each sum, so the stream is not a sum of
  -- components read through one final LayerNorm; a readout replaces the unembedding
  if model.cfg.ln_position == "post" then
    U.fail(fn, "a post-LN model has no final LayerNorm to read the stream through (only pre-LN models)")
  end
  if (model.cfg.readout or "unembed") ~= "unembed" then
    U.fail(fn, "the model's readout is '%s'; the lens and DLA read through the unembedding", tostring(model.cfg.readout))
  end
end

-- the final LayerNorm applied to x [..., D]: recomputed by the model's own kernel (nn.layer_norm),
-- or with a given (frozen) scale [..., 1]: centre, divide by the scale, weight and bias
local function ln_final(model, x, scale)
  if model.cfg.normalization == "none" then return x end
  local w, b = model.params["ln_final.w"], model.params["ln_final.b"]
  if not scale then return nn.layer_norm(x, w, b, model.cfg.ln_eps or EPS) end
  return (x - x:mean(-1, true)) / scale * w + b
end

-- the residual stream entering layer 0: hook_resid_pre of layer 0, or embed + pos_embed
local function embed_stream(model, cache, fn)
  local pre = cache["blocks.0.hook_resid_pre"]
  if T.is_tensor(pre) then return pre end
  local e = U.cached(cache, "hook_embed", fn, "cache blocks.0.hook_resid_pre, or hook_embed and hook_pos_embed")
  local p = cache["hook_pos_embed"]
  if model.cfg.positional ~= "none" then
    if not T.is_tensor(p) then U.fail(fn, "the cache has hook_embed but not hook_pos_embed") end
    return e + p
  end
  return e
end

-- the residual stream after layer l (resid_post, or resid_pre of the next layer)
local function post_stream(model, cache, l, fn)
  local t = cache["blocks." .. l .. ".hook_resid_post"]
  if T.is_tensor(t) then return t end
  if l + 1 < model.cfg.n_layers then
    t = cache["blocks." .. (l + 1) .. ".hook_resid_pre"]
    if T.is_tensor(t) then return t end
  end
  U.fail(fn, "the cache has no 'blocks.%d.hook_resid_post' (run_with_cache(tokens, \"resid\") caches the residual stream)", l)
end

-- a 1-based position or nil (all), validated against T
local function pos_arg(pos, n, fn)
  if pos == nil then return nil end
  return U.position(pos, n, fn)
end

--- analysis.logit_lens(model, cache, {pos, ln = "recompute"|"frozen"}) -> logits, labels
-- Row 1 is the embedding (the residual stream entering layer 0), row l+2 the stream after layer
-- l (0-based), each through ln_final and W_U + b_U: logits [n_layers+1, batch, pos, vocab_out]
-- ([n_layers+1, batch, vocab_out] when opts.pos picks one 1-based position). With ln =
-- "recompute" (default, as TransformerLens' accumulated_resid(apply_ln=True)) each layer's
-- stream is normalised with its own scale; "frozen" divides every layer by the final
-- LayerNorm's cached scale (ln_final.hook_scale). Either way the last row equals the model's
-- logits. labels = {"embed", "layer 0", ...}.
function M.logit_lens(model, cache, opts)
  local fn = "analysis.logit_lens"
  U.check_model(model, fn)
  check_norm(model, fn)
  opts = U.check_opts(fn, opts, { pos = true, ln = true })
  if type(cache) ~= "table" then U.fail(fn, "expected a cache from model:run_with_cache, got %s", type(cache)) end
  local mode = opts.ln or "recompute"
  if mode ~= "recompute" and mode ~= "frozen" then
    U.fail(fn, "ln must be \"recompute\" or \"frozen\", got %s", tostring(mode))
  end
  local L = model.cfg.n_layers
  local streams, labels = { embed_stream(model, cache, fn) }, { "embed" }
  for l = 0, L - 1 do
    streams[#streams + 1] = post_stream(model, cache, l, fn)
    labels[#labels + 1] = "layer " .. l
  end
  local Tn = streams[1]:shape()[2]
  local pos = pos_arg(opts.pos, Tn, fn)
  local scale
  if mode == "frozen" and model.cfg.normalization ~= "none" then
    scale = U.cached(cache, "ln_final.hook_scale", fn, "ln = \"frozen\" needs the final LayerNorm's scale")
    if pos then scale = scale:select(2, pos) end
  end
  return T.no_grad(function()
    local out = {}
    for i, x in ipairs(streams) do
      x = x:detach()
      if pos then x = x:select(2, pos) end
      out[i] = ln_final(model, x, scale):matmul(model.params["unembed.W_U"]) + model.params["unembed.b_U"]
    end
    return T.stack(out, 1), labels
  end)
end

-- the unembedding direction(s) for a target: u [D] or [B, D], and the b_U term (number or [B])
local function target_direction(model, target, B, fn)
  local WU, bU = model.params["unembed.W_U"]:detach(), model.params["unembed.b_U"]:detach()
  local V = WU:shape()[2]
  local function one(t)
    if math.type(t) == "integer" then
      if t < 1 or t > V then U.fail(fn, "token id %d is out of range 1..%d", t, V) end
      return WU:select(2, t), bU[t]:item()
    end
    if T.is_tensor(t) and t:dtype() == "int32" then
      if t:dim() ~= 1 or t:numel() ~= B then
        U.fail(fn, "per-example token ids must be an int32 tensor [%d] (one per batch row), got %s", B, U.shape_str(t))
      end
      local lo, hi = t:min():item(), t:max():item()
      if lo < 1 or hi > V then U.fail(fn, "token ids must be in 1..%d, got %d..%d", V, lo, hi) end
      return WU:index_select(2, t):t(), bU:index_select(1, t)
    end
    if T.is_tensor(t) then
      local D = WU:shape()[1]
      if not ((t:dim() == 1 and t:numel() == D) or (t:dim() == 2 and t:shape()[1] == B and t:shape()[2] == D)) then
        U.fail(fn, "a direction must be [%d] or [%d, %d], got %s", D, B, D, U.shape_str(t))
      end
      return t:detach(), 0
    end
    U.fail(fn, "the target must be a token id, an int32 tensor of ids [batch], a direction tensor, or {plus = ..., minus = ...}")
  end
  if type(target) == "table" and not T.is_tensor(target) then
    if target.plus == nil or target.minus == nil then
      U.fail(fn, "a logit difference target is {plus = id(s), minus = id(s)}")
    end
    local u1, b1 = one(target.plus)
    local u2, b2 = one(target.minus)
    return u1 - u2, b1 - b2
  end
  return one(target)
end

--- analysis.dla(model, cache, target, pos) -> {labels, values [n_components, batch], bias [batch],
---   total [batch], mean [n_components]}
-- Direct logit attribution at 1-based position pos (default: the last; negative from the end).
-- The final residual stream is split into embed, pos_embed, each head (z_h W_O[h], labels
-- "L0H1"...), each attention bias ("L0.b_O") and each MLP ("L0.mlp"); each goes through the
-- final LayerNorm with its cached scale frozen (centre, divide by ln_final.hook_scale, times
-- ln_final.w) and is projected on the target direction. bias holds ln_final.b . u plus the b_U
-- term, so values:sum(1) + bias == total == the model's logit (difference).
-- target: a token id; an int32 tensor [batch] (each row's own token); {plus = , minus = } for a
-- logit difference; or a float direction [D] / [batch, D] in the final residual space.
-- The cache needs hook_embed, hook_pos_embed, every attn.hook_z and hook_mlp_out, and
-- ln_final.hook_scale (run_with_cache with no filter has them all).
function M.dla(model, cache, target, pos)
  local fn = "analysis.dla"
  U.check_model(model, fn)
  check_norm(model, fn)
  if type(cache) ~= "table" then U.fail(fn, "expected a cache from model:run_with_cache, got %s", type(cache)) end
  local cfg = model.cfg
  local emb = U.cached(cache, "hook_embed", fn, "run_with_cache with no filter caches every hook")
  local B, Tn = emb:shape()[1], emb:shape()[2]
  pos = U.position(pos or Tn, Tn, fn)
  local u, bias_u = target_direction(model, target, B, fn)
  return T.no_grad(function()
    local comps, labels = {}, {}
    local function add(label, x)   -- x [B, D] or [D]
      labels[#labels + 1] = label
      if x:dim() == 1 then x = x:unsqueeze(1):expand(B, x:numel()) end
      comps[#comps + 1] = x
    end
    add("embed", emb:detach():select(2, pos))
    if cfg.positional ~= "none" then
      add("pos_embed", U.cached(cache, "hook_pos_embed", fn):detach():select(2, pos))
    end
    for l = 0, cfg.n_layers - 1 do
      local z = U.cached(cache, "blocks." .. l .. ".attn.hook_z", fn):detach():select(2, pos)   -- [B,H,E]
      local WO = U.param(model, l, "attn.W_O", fn):detach()                                      -- [H,E,D]
      local per_head = z:unsqueeze(3):matmul(WO):squeeze(3)                                      -- [B,H,D]
      for h = 1, cfg.n_heads do add(string.format("L%dH%d", l, h), per_head:select(2, h)) end
      add("L" .. l .. ".b_O", U.param(model, l, "attn.b_O", fn):detach())
      if model._hook_set["blocks." .. l .. ".hook_mlp_out"] then
        add("L" .. l .. ".mlp", U.cached(cache, "blocks." .. l .. ".hook_mlp_out", fn):detach():select(2, pos))
      end
    end
    local X = T.stack(comps, 1)                          -- [N, B, D]
    local bias = bias_u
    if cfg.normalization ~= "none" then
      local scale = U.cached(cache, "ln_final.hook_scale", fn):detach():select(2, pos)   -- [B,1]
      X = (X - X:mean(-1, true)) / scale * model.params["ln_final.w"]:detach()
      bias = (model.params["ln_final.b"]:detach() * u):sum(-1) + bias_u
    end
    local values = (X * u):sum(-1)                       -- [N, B]
    if type(bias) == "number" then bias = T.full({ B }, bias)
    elseif bias:dim() == 0 then bias = bias:expand(B) end
    return { labels = labels, values = values, bias = bias, total = values:sum(1) + bias, mean = values:mean(2),
      pos = pos }
  end)
end

return M
