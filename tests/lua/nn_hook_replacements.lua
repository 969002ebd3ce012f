-- Hook replacements of every kind a researcher returns, at the attention and LayerNorm hook
-- points that have their own code paths (hook_scale, hook_attn_scores, hook_pattern, hook_z),
-- with and without gradients: a strided or expanded view of the right shape acts exactly
-- like its contiguous copy; an int32 tensor, a wrong shape or a non-tensor is an error that
-- names the hook; and the causal mask holds on the whole upper triangle of every head.
local T = require "milua.tensor"
local nn = require "milua.nn"
local test = require "milua.test"

T.seed(21)
local model = nn.transformer { n_layers = 2, d_model = 16, n_heads = 2, d_head = 8, d_mlp = 32, d_vocab = 10,
  n_ctx = 8, act_fn = "gelu" }
local toks = T.randint(1, 11, 3, 6)
local targets = T.randint(1, 11, 3, 6)
local _, cache = model:run_with_cache(toks)
local base = T.no_grad(function() return model:forward(toks) end)
local function maxdiff(a, b) return (a - b):abs():max():item() end

-- the causal mask: every (query, key > query) entry of every head, layer and batch row is 0
local worst = 0
for l = 0, 1 do
  local p = cache["blocks." .. l .. ".attn.hook_pattern"]
  local Tn = p:shape()[3]
  local q = T.arange(1, Tn + 1):view(Tn, 1)
  local k = T.arange(1, Tn + 1):view(1, Tn)
  local upper = k:gt(q)                                        -- [T, T], 1 above the diagonal
  worst = math.max(worst, (p * upper):abs():max():item())
  test.ok((p + upper):min():item() > 0, "layer " .. l .. ": every allowed key gets some attention")
end
test.is(worst, 0, "causal: exactly zero attention on the whole upper triangle, every head and layer")

-- the same replacement as a contiguous tensor and as a strided or expanded view must give the
-- same logits and the same parameter gradients
local function grads_of(hooks)
  for _, p in pairs(model.params) do p.grad = nil end
  local logits = model:run_with_hooks(toks, hooks)
  nn.cross_entropy(logits, targets):backward()
  local g = {}
  for name, p in pairs(model.params) do g[name] = p.grad and p.grad:clone() end
  return logits, g
end
local function same_grads(a, b)
  local w = 0
  for name, ga in pairs(a) do
    if ga then w = math.max(w, maxdiff(ga, b[name])) end
  end
  return w
end

local points = {
  -- name, a function making the replacement from the activation (contiguous), and a view of it
  { "blocks.0.ln1.hook_scale", function(x) return x * 1.5 end,
    function(x) return (x * 1.5):expand(table.unpack(x:shape())) end },
  { "blocks.1.attn.hook_attn_scores", function(x) return x * 0.5 end,
    function(x) return (x * 0.5):transpose(3, 4):contiguous():transpose(3, 4) end },   -- strided
  { "blocks.0.attn.hook_pattern", function(x)
      local u = T.ones(table.unpack(x:shape())) / x:shape()[4]; return u end,
    function(x)   -- a uniform pattern as an expanded [1,1,1,T] row
      local s = x:shape(); return (T.ones(1, 1, 1, s[4]) / s[4]):expand(s[1], s[2], s[3], s[4]) end },
  { "blocks.1.attn.hook_z", function(x) return x:clone() * 2 end,
    function(x) return (x * 2):permute(1, 3, 2, 4):contiguous():permute(1, 3, 2, 4) end },   -- strided
}
for _, pt in ipairs(points) do
  local name, plain, view = pt[1], pt[2], pt[3]
  local a = T.no_grad(function() return model:run_with_hooks(toks, { [name] = function(x) return plain(x) end }) end)
  local b = T.no_grad(function() return model:run_with_hooks(toks, { [name] = function(x) return view(x) end }) end)
  test.ok(maxdiff(a, b) < 1e-6, name .. ": a strided or expanded replacement equals its contiguous copy (no grad)")
  test.ok(maxdiff(a, model:forward(toks)) > 1e-4, name .. ": the replacement changes the logits")
  local la, ga = grads_of({ [name] = function(x) return plain(x) end })
  local lb, gb = grads_of({ [name] = function(x) return view(x) end })
  test.ok(maxdiff(la, lb) < 1e-6 and same_grads(ga, gb) < 1e-6,
    name .. ": the same logits and parameter gradients with gradients on")
  -- wrong replacements: int32, the wrong shape, a non-tensor; with and without gradients
  for _, mode in ipairs({ "no grad", "grad" }) do
    local run = function(fn)
      if mode == "no grad" then return T.no_grad(function() return model:run_with_hooks(toks, { [name] = fn }) end) end
      return model:run_with_hooks(toks, { [name] = fn })
    end
    test.throws(function() run(function(x) return x:int() end) end, name,
      name .. " (" .. mode .. "): an int32 replacement is an error naming the hook")
    test.throws(function() run(function(x) return x:narrow(1, 1, 2) end) end, "shape",
      name .. " (" .. mode .. "): a replacement of the wrong shape is an error about its shape")
    test.throws(function() run(function() return "x" end) end, "must return a tensor or nothing",
      name .. " (" .. mode .. "): a non-tensor is an error")
  end
  test.ok(maxdiff(T.no_grad(function() return model:forward(toks) end), base) == 0,
    name .. ": after the failing hooks the model runs unhooked, bit for bit")
end

-- a replaced scale is the one divided by: doubling hook_scale halves the normalized stream
local _, c2 = model:run_with_cache(toks, "blocks%.0%.ln1")
local halved
T.no_grad(function()
  model:run_with_hooks(toks, {
    ["blocks.0.ln1.hook_scale"] = function(s) return s * 2 end,
    ["blocks.0.ln1.hook_normalized"] = function(x) halved = x:clone() end,
  })
end)
test.ok(maxdiff(halved * 2, c2["blocks.0.ln1.hook_normalized"]) < 1e-5,
  "a replaced hook_scale is the divisor: twice the scale, half the normalized stream")
test.done()
