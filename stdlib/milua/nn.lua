-- milua.nn: the transformer model object, hooks, caches, checkpoints and losses.
--
--   local model = nn.transformer{ n_layers = 2, d_model = 64, ... }   -- keys: nn/model/config.c
--     (ln_position = "post" for post-LN blocks; readout = "flatten" | "cls_pooler" with d_out)
--   model:forward(tokens [, {return_type = "logits"|"resid", stop_at_layer = l}])
--   model:run_with_cache(tokens [, filter [, {grads = true, loss = fn}]]) -> logits, cache
--   model:run_with_hooks(tokens, {[name] = fn, ...} [, forward_opts])     -> logits
--   model:add_hook(name, fn) -> handle (handle:remove()); model:reset_hooks()
--   model:save(path [, extra_tensors [, extra_meta]]); nn.load(path) -> model, tensors, meta
-- The forward pass itself is C (nn/model/transformer.c); this file routes hook points.
local T = require "milua.tensor"
local core = require "milua.nn_core"
local json = require "milua.json"

local nn = {}
nn.cross_entropy = core.cross_entropy
nn.mse = core.mse
--- The transformer's fused kernels, one by one (each with its own backward):
--- nn.layer_norm(x, w, b [, eps]) over the last dim, or step by step (the model's hooked path):
--- nn.ln_scale(x [, eps]) -> [..., 1], nn.ln_normalize(x, scale), nn.affine(xn, w, b);
--- nn.ln_parts(x, w, b [, eps]) -> scale, xn, y: the three in one pass, without gradients;
--- nn.linear(x, W, b) with W [K, N] or per-head [H, K, E];
--- nn.attn_scores(q, k) -> [B,H,T,S] unscaled, from q [B,T,H,E] and k [B,S,H,E];
--- nn.attn_softmax(scores, scale [, causal]) -> pattern; nn.attn_apply(pattern, v) -> z [B,T,H,E]
nn.layer_norm = core.layer_norm
nn.ln_scale = core.ln_scale
nn.ln_normalize = core.ln_normalize
nn.affine = core.affine
nn.ln_parts = core.ln_parts
nn.linear = core.linear
nn.attn_scores = core.attn_scores
nn.attn_softmax = core.attn_softmax
nn.attn_apply = core.attn_apply

local Model = {}
Model.__index = Model
Model.__name = "milua.Transformer"

local config_keys = core.config_keys()   -- nn/model/config.c's table, in order

--- nn.transformer(cfg): a model with freshly initialised parameters (global generator)
function nn.transformer(cfg)
  if type(cfg) ~= "table" then error("nn.transformer: expected a config table", 2) end
  local c = core.config(cfg)
  local resolved = {}
  for _, k in ipairs(config_keys) do resolved[k] = c:get(k) end
  if next(resolved.fixed_patterns) == nil then resolved.fixed_patterns = nil end
  local self = setmetatable({
    cfg = resolved,
    _c = c,
    params = c:init_params(),
    _hooks = {},        -- name -> list of {fn = , id = }
    _next_hook_id = 0,
  }, Model)
  self.hook_names = c:hooks()
  self._hook_set = {}
  for _, n in ipairs(self.hook_names) do self._hook_set[n] = true end
  self.param_names = {}
  for i, p in ipairs(c:params()) do self.param_names[i] = p.name end
  return self
end

function Model:__tostring()
  local c = self.cfg
  local out = c.readout == "unembed" and (c.d_vocab_out ~= c.d_vocab and (", d_vocab_out=" .. c.d_vocab_out) or "")
    or (", readout=" .. c.readout .. ", d_out=" .. c.d_out)
  return string.format("Transformer(n_layers=%d, d_model=%d, n_heads=%d, d_head=%d, d_mlp=%d, d_vocab=%d%s, " ..
    "n_ctx=%d, act_fn=%s, normalization=%s%s, %s%s, %d parameters)", c.n_layers, c.d_model, c.n_heads, c.d_head,
    c.d_mlp, c.d_vocab, out, c.n_ctx, c.act_fn, c.normalization,
    c.normalization == "LN" and (", ln_position=" .. c.ln_position) or "",
    c.causal and "causal" or "bidirectional", c.tie_layers and ", tied layers" or "", self:num_params())
end

function Model:num_params()
  local n = 0
  for _, name in ipairs(self.param_names) do n = n + self.params[name]:numel() end
  return n
end

--- nn.suggest(name, names): the three closest names, for "did you mean" messages (the
-- algorithm of the config keys' messages, nn/model/config.c: fewest edits to turn name into a
-- part of the candidate, then into all of it)
function nn.suggest(name, names)
  return table.concat(core.closest(tostring(name), names, 3), ", ")
end

local function suggest(self, name) return nn.suggest(name, self.hook_names) end

function Model:_check_hook(name, fn_name)
  if type(name) ~= "string" or not self._hook_set[name] then
    error(string.format("%s: unknown hook point '%s' (close matches: %s)", fn_name, tostring(name), suggest(self, tostring(name))), 3)
  end
end

-- names selected by a cache filter: nil (all), a Lua pattern, a list of names, or a function
function Model:_select(filter, fn_name)
  local sel = {}
  if filter == nil then
    for _, n in ipairs(self.hook_names) do sel[n] = true end
  elseif type(filter) == "string" then
    for _, n in ipairs(self.hook_names) do if n:find(filter) then sel[n] = true end end
    if next(sel) == nil then
      error(string.format("%s: the pattern '%s' matches no hook point (close matches: %s)", fn_name, filter, suggest(self, filter)), 3)
    end
  elseif type(filter) == "table" then
    for _, n in ipairs(filter) do self:_check_hook(n, fn_name); sel[n] = true end
  elseif type(filter) == "function" then
    for _, n in ipairs(self.hook_names) do if filter(n) then sel[n] = true end end
  else
    error(fn_name .. ": the filter must be a Lua pattern, a list of names or a function(name) -> bool", 3)
  end
  return sel
end

-- one forward pass with per-call hooks (name -> fn) and an optional cache of names
function Model:_run(tokens, call_hooks, cache_sel, opts)
  opts = opts or {}
  if not T.is_tensor(tokens) then error("forward: tokens must be an int32 tensor [batch, pos]", 3) end
  local active, any = {}, false
  for name in pairs(self._hooks) do active[name] = true; any = true end
  if call_hooks then for name in pairs(call_hooks) do active[name] = true; any = true end end
  if cache_sel then for name in pairs(cache_sel) do active[name] = true; any = true end end
  local cache = cache_sel and {} or nil
  local ctx = { tokens = tokens, model = self }
  local dispatch
  if any then
    local persistent = self._hooks
    dispatch = function(act, name, layer)
      ctx.layer = layer >= 0 and layer or nil
      local list = persistent[name]
      if list then
        for _, h in ipairs(list) do
          local ok, r = pcall(h.fn, act, name, ctx)
          if not ok then error("hook " .. name .. ": " .. tostring(r), 0) end
          if r ~= nil then act = r end
        end
      end
      local fn = call_hooks and call_hooks[name]
      if fn then
        local ok, r = pcall(fn, act, name, ctx)
        if not ok then error("hook " .. name .. ": " .. tostring(r), 0) end
        if r ~= nil then act = r end
      end
      if cache and cache_sel[name] then cache[name] = act end
      return act
    end
  end
  local rt = opts.return_type or "logits"
  if rt ~= "logits" and rt ~= "resid" then
    error("forward: return_type must be \"logits\" or \"resid\", got " .. tostring(rt), 3)
  end
  local out = core.forward(self._c, self.params, tokens, any and active or nil, dispatch,
    opts.stop_at_layer, rt == "resid")
  return out, cache
end

function Model:forward(tokens, opts)
  return (self:_run(tokens, nil, nil, opts))
end
Model.__call = Model.forward

-- the cache: a table name -> activation, with methods through its metatable
local Cache = {}
Cache.__index = Cache
Cache.__name = "milua.ActivationCache"

function Cache:names()
  local ns = {}
  for k in pairs(self) do ns[#ns + 1] = k end
  table.sort(ns)
  return ns
end

--- cache:grad(name): d loss / d activation, when run_with_cache was asked for grads
function Cache:grad(name)
  local g = getmetatable(self)._grads
  return g and g[name]
end

function Cache:grads()
  return getmetatable(self)._grads or {}
end

function Cache:save(path, meta)
  local t = {}
  for k, v in pairs(self) do t[k] = v end
  for k, v in pairs(self:grads()) do t[k .. ".grad"] = v end
  T.save(path, t, meta)
end

local function cache_tostring(self)
  local lines = { "ActivationCache {" }
  for _, n in ipairs(Cache.names(self)) do
    lines[#lines + 1] = string.format("  %-32s [%s]", n, table.concat(self[n]:shape(), ","))
  end
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n")
end

local function new_cache(acts, grads)
  local mt = { __index = Cache, __name = "milua.ActivationCache", __tostring = cache_tostring, _grads = grads }
  return setmetatable(acts, mt)
end

--- run_with_cache(tokens, filter, opts): opts.grads = true with opts.loss = fn(logits) -> scalar
-- also caches d loss / d activation (cache:grad(name)); parameter gradients are left as they were.
function Model:run_with_cache(tokens, filter, opts)
  opts = opts or {}
  local sel = self:_select(filter, "run_with_cache")
  if not opts.grads then
    local logits, cache = self:_run(tokens, opts.hooks, sel, opts)
    return logits, new_cache(cache)
  end
  if type(opts.loss) ~= "function" then
    error("run_with_cache: grads = true needs opts.loss = function(logits) -> scalar loss", 2)
  end
  if not T.is_grad_enabled() then error("run_with_cache: grads = true cannot run inside T.no_grad", 2) end
  local saved = {}
  for _, n in ipairs(self.param_names) do saved[n] = self.params[n].grad end
  local logits, cache = self:_run(tokens, opts.hooks, sel, opts)
  for _, act in pairs(cache) do if act:requires_grad() then act:retain_grad() end end
  local loss = opts.loss(logits)
  if not T.is_tensor(loss) then error("run_with_cache: opts.loss must return a scalar tensor", 2) end
  loss:backward()
  local grads = {}
  for name, act in pairs(cache) do grads[name] = act.grad end
  for _, n in ipairs(self.param_names) do self.params[n].grad = saved[n] end
  -- the cached activations keep their values but not the graph behind them
  local detached = {}
  for name, act in pairs(cache) do detached[name] = act:detach() end
  return logits:detach(), new_cache(detached, grads), loss:detach()
end

function Model:run_with_hooks(tokens, hooks, opts)
  if type(hooks) ~= "table" then error("run_with_hooks: expected a table {[hook name] = function}", 2) end
  for name, fn in pairs(hooks) do
    self:_check_hook(name, "run_with_hooks")
    if type(fn) ~= "function" then error("run_with_hooks: the hook for " .. name .. " is not a function", 2) end
  end
  return (self:_run(tokens, hooks, nil, opts))
end

local Handle = {}
Handle.__index = Handle
function Handle:remove()
  local list = self.model._hooks[self.name]
  if not list then return end
  for i, h in ipairs(list) do
    if h.id == self.id then table.remove(list, i); break end
  end
  if #list == 0 then self.model._hooks[self.name] = nil end
end

function Model:add_hook(name, fn)
  self:_check_hook(name, "add_hook")
  if type(fn) ~= "function" then error("add_hook: expected a function(activation, name, ctx)", 2) end
  self._next_hook_id = self._next_hook_id + 1
  local list = self._hooks[name] or {}
  self._hooks[name] = list
  list[#list + 1] = { fn = fn, id = self._next_hook_id }
  return setmetatable({ model = self, name = name, id = self._next_hook_id }, Handle)
end

function Model:reset_hooks()
  self._hooks = {}
end

-- ---- checkpoints ----
local function config_json(cfg)
  local c = {}
  for k, v in pairs(cfg) do c[k] = v end
  return json.encode(c)
end

--- model:save(path [, extra_tensors [, extra_meta]]): parameters by name, config in metadata
function Model:save(path, extra, meta)
  local t = {}
  for _, n in ipairs(self.param_names) do t[n] = self.params[n] end
  for k, v in pairs(extra or {}) do
    if t[k] then error("save: extra tensor '" .. k .. "' would overwrite a parameter", 2) end
    t[k] = v
  end
  local m = { config = config_json(self.cfg) }
  for k, v in pairs(meta or {}) do
    if k == "config" then error("save: metadata key 'config' is reserved", 2) end
    m[k] = v
  end
  T.save(path, t, m)
end

--- nn.load(path) -> model, all tensors in the file, metadata
function nn.load(path)
  local tensors, meta = T.load(path)
  if not meta.config then error("load: " .. path .. " has no 'config' metadata: not a milua/TransformerLens checkpoint", 2) end
  local ok, cfg = pcall(json.decode, meta.config)
  if not ok then error("load: " .. path .. ": the config metadata is not valid JSON: " .. tostring(cfg), 2) end
  cfg.batch, cfg.seq = nil, nil   -- the reference writes its benchmark shape too
  if cfg.fixed_patterns then
    local fp = {}
    for k, v in pairs(cfg.fixed_patterns) do fp[tonumber(k)] = v end
    cfg.fixed_patterns = fp
  end
  local model = nn.transformer(cfg)
  for _, p in ipairs(model._c:params()) do
    local t = tensors[p.name]
    if not t then error("load: " .. path .. ": parameter '" .. p.name .. "' is missing", 2) end
    local want = table.concat(p.shape, ",")
    local got = table.concat(t:shape(), ",")
    if want ~= got or t:dtype() ~= "float32" then
      error(string.format("load: %s: parameter '%s' has shape [%s] %s, the config needs [%s] float32", path, p.name,
        got, t:dtype(), want), 2)
    end
    model.params[p.name] = t:requires_grad(true)
  end
  return model, tensors, meta
end

nn.Model = Model
return nn
