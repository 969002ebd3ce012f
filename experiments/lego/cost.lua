-- lego.cost: what the LEGO attention module (heads with fixed patterns) saves: forward FLOPs
-- counted from the config, and the forward time measured.
--
--   local cost = require "lego.cost"
--   cost.flops(cfg, seq_len)        -> {total, per_layer, saved, saved_fraction}
--   cost.forward_ms(model, tokens)  -> the best of five no-grad forward passes, in milliseconds
local T = require "milua.tensor"
local sys = require "milua.sys"

local C = {}

--- cost.flops(cfg, seq_len) -> {total, per_layer, saved, saved_fraction}: analytic forward FLOPs of one
-- sequence (a multiply-add counts 2). A head with a fixed pattern needs no Q, K nor scores:
-- `saved` counts that work (2*T*D*E for each of Q and K, and 2*T*T*E for the scores, per fixed
-- head and layer).
function C.flops(cfg, Tn)
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

--- cost.forward_ms(model, tokens) -> the best of five no-grad forward passes, in milliseconds
function C.forward_ms(model, tokens)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = sys.clock()
    T.no_grad(function() return model:forward(tokens) end)
    best = math.min(best, (sys.clock() - t0) * 1e3)
  end
  return best
end

return C
