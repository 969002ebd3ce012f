-- lego.mimic: attention mimicking (Zhang et al. 2022, sec. 4): before the task, train the heads,
-- without labels, to attend like an association head (uniform over the other positions holding
-- the same token) and like a local one (weights 1,2,4,2,1 on positions i-2..i+2).
--
--   local mimic = require "lego.mimic"
--   mimic.targets(tokens)                 -> assoc [B,T,T], local [T,T] target patterns
--   mimic.loss(model, tokens, heads)      -> KL(target || pattern), summed over layers
--   mimic.pretrain(model, {n_var, steps, batch, lr, warmup, heads}) -> train.run result
--   mimic.variant(r, probe, say)          the recipe.fit variant: pre-train r.mimic_steps steps, then the task
local train = require "milua.train"
local T = require "milua.tensor"
local lego = require "milua.data.lego"

local M = {}

--- mimic.targets(tokens) -> the target patterns for a batch: assoc [B,T,T] (uniform over the other positions with the same
-- token) and local [T,T] (weights 1,2,4,2,1 on keys i-2..i+2), each +1e-3 and row-normalised
function M.targets(tokens)
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

--- mimic.loss(model, tokens, {assoc = head, ["local"] = head}) -> loss summed over layers
function M.loss(model, tokens, heads)
  local assoc, loc = M.targets(tokens)
  local _, cache = model:run_with_cache(tokens, "hook_pattern")
  local total
  for l = 0, model.cfg.n_layers - 1 do
    local p = cache["blocks." .. l .. ".attn.hook_pattern"]
    local term = kl(assoc, p:select(2, heads.assoc)) + kl(loc:unsqueeze(1), p:select(2, heads["local"]))
    total = total and total + term or term
  end
  return total
end

--- mimic.pretrain(model, {n_var, steps, batch, lr, warmup, heads}) -> train.run result (losses = KL)
function M.pretrain(model, o)
  local heads = o.heads or { assoc = 1, ["local"] = 2 }
  return train.run {
    model = model, steps = o.steps, lr = o.lr or 1e-3, warmup = o.warmup or 0, decay = "cosine", clip = 1.0,
    batch = function() return lego.batch(o.batch or 64, o.n_var).tokens end,
    loss = function(m, tokens) return M.loss(m, tokens, heads) end,
    quiet = o.quiet, label = "mimic",
  }
end

--- mimic.variant(r, probe [B, T], say) -> {init, init_name} for recipe.fit: before the task, r.mimic_steps
-- steps of mimicking (batch 64, lr 1e-3, 10 warm-up steps) with head 1 as association and head 2 as local;
-- init reports the KL on probe before and after (say(fmt, ...)) and returns {kl_before, kl_after, steps, seconds}
function M.variant(r, probe, say)
  local heads = { assoc = 1, ["local"] = 2 }
  local function kl(m) return T.no_grad(function() return M.loss(m, probe, heads):item() end) end
  return {
    init_name = "mimic" .. r.mimic_steps,
    init = function(m)
      local before = kl(m)
      local res = M.pretrain(m, { n_var = r.n_var, steps = r.mimic_steps, batch = 64, lr = 1e-3, warmup = 10, heads = heads })
      local after = kl(m)
      if say then
        say("mimic pre-training: KL (summed over %d layers) %.2f -> %.2f in %d steps, %.0f s", m.cfg.n_layers, before,
          after, r.mimic_steps, res.seconds)
      end
      return { kl_before = before, kl_after = after, steps = r.mimic_steps, seconds = res.seconds }
    end,
  }
end

return M
