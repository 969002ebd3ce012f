-- The transformer against the PyTorch reference fixtures (tests/fixtures, written by
-- tests/reference/transformer.py): logits, loss, every parameter gradient, every hook
-- activation and its gradient, and a head ablation through a hook.
local T = require "milua.tensor"
local nn = require "milua.nn"
local test = require "milua.test"

-- tests/fixtures, found from this script's own path (tests/lua/nn_fixtures.lua)
local dir = os.getenv("MILUA_FIXTURES") or ((arg[0]:match("^(.*)/lua/[^/]*$") or "tests") .. "/fixtures")
local names = { "causal_ln_gelu", "encoder_ln_relu", "attn_only_noln" }

-- the loss the fixture was made with (its metadata "loss"): cross-entropy or MSE
local function loss_fn(meta, targets)
  if meta.loss == "mse" then return function(out) return nn.mse(out, targets) end end
  return function(out) return nn.cross_entropy(out, targets) end
end

local function maxdiff(a, b) return (a - b):abs():max():item() end

for _, f in ipairs(names) do
  local path = dir .. "/" .. f .. ".safetensors"
  local model, fx, meta = nn.load(path)
  local toks, targets = fx["fixture.tokens"], fx["fixture.targets"]
  local lossf = loss_fn(meta, targets)
  local tol = 2e-5 * math.max(1, fx["fixture.logits"]:abs():max():item())

  local logits = model:forward(toks)
  test.ok(maxdiff(logits, fx["fixture.logits"]) < tol, f .. ": logits match the reference")
  local loss = lossf(logits)
  test.close(loss:item(), fx["fixture.loss"]:item(), 1e-5, f .. ": loss matches")
  loss:backward()
  local worst, where = 0, "-"
  for _, n in ipairs(model.param_names) do
    local ref = fx["fixture.grad." .. n]
    local g = model.params[n].grad
    if not ref or not g then worst, where = math.huge, n break end
    local d = maxdiff(g, ref) / math.max(1e-3, ref:abs():max():item())
    if d > worst then worst, where = d, n end
  end
  test.ok(worst < 1e-4, string.format("%s: every parameter gradient matches (worst relative %.2g at %s)", f, worst, where))

  -- every hook point fires with the reference name and value, with gradients recorded and
  -- without (the no-grad cache takes the fused LayerNorm steps)
  for _, mode in ipairs({ "with grad", "no_grad" }) do
    local _, cache
    if mode == "no_grad" then T.no_grad(function() _, cache = model:run_with_cache(toks) end)
    else _, cache = model:run_with_cache(toks) end
    local n_ref, bad = 0, {}
    for k, v in pairs(fx) do
      local h = k:match("^fixture%.cache%.(.*)")
      if h then
        n_ref = n_ref + 1
        if not cache[h] or maxdiff(cache[h], v) > 1e-5 * math.max(1, v:abs():max():item()) then bad[#bad + 1] = h end
      end
    end
    test.ok(n_ref > 10 and #bad == 0, string.format("%s (%s): %d cached activations match (%s)", f, mode, n_ref,
      #bad == 0 and "all" or "bad: " .. table.concat(bad, ", ")))
    local n_cache = 0
    for _ in pairs(cache) do n_cache = n_cache + 1 end
    test.is(n_cache, n_ref, f .. " (" .. mode .. "): the cache holds exactly the model's hook points")
  end

  -- gradients of the loss with respect to every activation (attribution patching needs them)
  local _, gcache = model:run_with_cache(toks, nil, { grads = true, loss = lossf })
  local n_g, badg = 0, {}
  for k, v in pairs(fx) do
    local h = k:match("^fixture%.cache_grad%.(.*)")
    if h then
      n_g = n_g + 1
      local g = gcache:grad(h)
      if not g or maxdiff(g, v) > 1e-4 * math.max(1e-3, v:abs():max():item()) then badg[#badg + 1] = h end
    end
  end
  test.ok(n_g > 5 and #badg == 0, string.format("%s: %d activation gradients match (%s)", f, n_g,
    #badg == 0 and "all" or "bad: " .. table.concat(badg, ", ")))
  test.ok(model.params["embed.W_E"].grad and maxdiff(model.params["embed.W_E"].grad, fx["fixture.grad.embed.W_E"]) < 1e-5,
    f .. ": run_with_cache{grads} leaves parameter gradients as they were")

  -- head 2 of layer 0 zeroed at hook_z
  if fx["fixture.ablated_logits"] then
    local abl = T.no_grad(function()
      return model:run_with_hooks(toks, { ["blocks.0.attn.hook_z"] = function(z)
        local keep = T.ones(z:size(3)); keep[2] = 0
        return z * keep:view(1, 1, -1, 1)
      end })
    end)
    test.ok(maxdiff(abl, fx["fixture.ablated_logits"]) < tol, f .. ": head ablation through a hook matches")
    test.ok(maxdiff(abl, fx["fixture.logits"]) > 1e-3, f .. ": the ablation changes the logits")
  end
end

test.done()
