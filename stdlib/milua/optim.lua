-- milua.optim: AdamW and SGD over a table of named tensors, gradient clipping,
-- learning-rate schedules, and optimizer state that saves and restores exactly.
--
--   local opt = optim.adamw(model.params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01})
--   opt:zero_grad(); loss:backward(); optim.clip_grad_norm(model.params, 1.0); opt:step()
--   opt.lr = schedule(step)     -- the learning rate is a plain field
local T = require "milua.tensor"
local core = require "milua.optim_core"

local optim = {}

local function sorted_names(params, fn)
  if type(params) ~= "table" then error(fn .. ": expected a table of named tensors (e.g. model.params)", 3) end
  local names = {}
  for k, v in pairs(params) do
    if type(k) ~= "string" then error(fn .. ": parameter keys must be names (strings)", 3) end
    if not T.is_tensor(v) then error(fn .. ": parameter '" .. k .. "' is not a tensor", 3) end
    if v:dtype() ~= "float32" then error(fn .. ": parameter '" .. k .. "' is " .. v:dtype() .. ", expected float32", 3) end
    names[#names + 1] = k
  end
  if #names == 0 then error(fn .. ": no parameters", 3) end
  table.sort(names)   -- a fixed order makes runs reproducible
  return names
end

local function check_opts(fn, opts, allowed)
  for k in pairs(opts) do
    if not allowed[k] then
      local list = {}
      for a in pairs(allowed) do list[#list + 1] = a end
      table.sort(list)
      error(string.format("%s: unknown option '%s' (known: %s)", fn, tostring(k), table.concat(list, ", ")), 3)
    end
  end
end

local Optimizer = {}
Optimizer.__index = Optimizer

function Optimizer:zero_grad()
  for _, n in ipairs(self.names) do self.params[n].grad = nil end
end

-- state tensors for parameter n, created lazily so they match the parameter
local function state_for(self, n, key)
  local s = self.state[key .. "." .. n]
  if not s then
    s = T.zeros(self.params[n]:shape())
    self.state[key .. "." .. n] = s
  end
  return s
end

function Optimizer:step()
  self.step_count = self.step_count + 1
  for _, n in ipairs(self.names) do
    local p = self.params[n]
    -- <close> drops these references at once: left to the collector, last step's gradients
    -- stay resident beside this step's
    local grad <close> = p.grad
    if grad then
      if not p:is_contiguous() then error("optim: parameter '" .. n .. "' must be contiguous", 2) end
      local g <close> = grad:contiguous()
      if self.kind == "adamw" then
        local count = (self.counts[n] or 0) + 1   -- per-parameter step, as PyTorch keeps it
        self.counts[n] = count
        core.adamw_step(p, g, state_for(self, n, "m"), state_for(self, n, "v"), self.lr, self.betas[1], self.betas[2],
          self.eps, self.weight_decay, count)
      else
        local buf, first = nil, false
        if self.momentum ~= 0 then
          first = self.state["momentum." .. n] == nil
          buf = state_for(self, n, "momentum")
        end
        core.sgd_step(p, g, buf, self.lr, self.momentum, self.weight_decay, self.nesterov, first)
      end
    end
  end
end

--- opt:state_dict() -> tensors (name -> tensor), metadata (strings): everything to resume exactly
function Optimizer:state_dict()
  local tensors, meta = {}, { kind = self.kind, step = tostring(self.step_count), lr = string.format("%.17g", self.lr) }
  for k, v in pairs(self.state) do tensors["optim." .. k] = v end
  local counts = {}
  for _, n in ipairs(self.names) do counts[#counts + 1] = self.counts[n] or 0 end
  tensors["optim.counts"] = T.tensor(counts, "int32")
  return tensors, meta
end

function Optimizer:load_state_dict(tensors, meta)
  if meta.kind and meta.kind ~= self.kind then
    error("load_state_dict: the state is for " .. meta.kind .. ", this optimizer is " .. self.kind, 2)
  end
  self.state = {}
  for k, v in pairs(tensors) do
    local key = k:match("^optim%.(.+)$")
    if key and key ~= "counts" then
      local n = key:match("^[^.]+%.(.+)$")
      if not self.params[n] then error("load_state_dict: state '" .. k .. "' names no parameter of this optimizer", 2) end
      self.state[key] = v:clone()
    end
  end
  local counts = tensors["optim.counts"]
  if counts then
    local c = counts:totable()
    if #c ~= #self.names then error("load_state_dict: the state has " .. #c .. " parameters, the optimizer " .. #self.names, 2) end
    for i, n in ipairs(self.names) do self.counts[n] = c[i] end
  end
  self.step_count = tonumber(meta.step) or 0
  if meta.lr then self.lr = tonumber(meta.lr) end
end

function Optimizer:save(path)
  local t, m = self:state_dict()
  T.save(path, t, m)
end

function Optimizer:load(path)
  local t, m = T.load(path)
  self:load_state_dict(t, m)
end

local function new(kind, params, opts, defaults, fn)
  opts = opts or {}
  check_opts(fn, opts, defaults)
  local o = setmetatable({ kind = kind, params = params, names = sorted_names(params, fn), state = {}, counts = {},
    step_count = 0 }, Optimizer)
  for k, d in pairs(defaults) do
    local v = opts[k]
    if v == nil then v = d end
    o[k] = v
  end
  if type(o.lr) ~= "number" or o.lr < 0 then error(fn .. ": lr must be a non-negative number", 3) end
  return o
end

function optim.adamw(params, opts)
  local o = new("adamw", params, opts, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01 }, "optim.adamw")
  if type(o.betas) ~= "table" or #o.betas ~= 2 then error("optim.adamw: betas must be {beta1, beta2}", 2) end
  return o
end

--- optim.adam: AdamW without weight decay (Adam with L2 = 0 is the same update)
function optim.adam(params, opts)
  opts = opts or {}
  if (opts.weight_decay or 0) ~= 0 then error("optim.adam: use optim.adamw for weight decay", 2) end
  local o = optim.adamw(params, { lr = opts.lr, betas = opts.betas, eps = opts.eps, weight_decay = 0 })
  return o
end

function optim.sgd(params, opts)
  return new("sgd", params, opts, { lr = 1e-2, momentum = 0, weight_decay = 0, nesterov = false }, "optim.sgd")
end

--- optim.clip_grad_norm(params, max_norm) -> total norm before clipping (PyTorch's rule)
function optim.clip_grad_norm(params, max_norm)
  local names = sorted_names(params, "clip_grad_norm")
  local sq = 0
  for _, n in ipairs(names) do
    local g <close> = params[n].grad
    if g then sq = sq + core.sqnorm(g) end
  end
  local total = math.sqrt(sq)
  local coef = max_norm / (total + 1e-6)
  if coef < 1 then   -- in place, as torch.nn.utils.clip_grad_norm_
    for _, n in ipairs(names) do
      local g <close> = params[n].grad
      if g then T.no_grad(function() g:mul_(coef) end) end
    end
  end
  return total
end

--- optim.one_cycle{lr =, total =, pct_start = 0.3, div_factor = 25, final_div_factor = 1e4,
---   base_momentum = 0.85, max_momentum = 0.95} -> function(step) -> lr, beta1
-- PyTorch's OneCycleLR (two phases, cosine annealing) for steps 1..total: the rate rises from
-- lr/div_factor to lr over the first pct_start of the steps, then falls to
-- lr/div_factor/final_div_factor; beta1 (Adam's momentum) moves the opposite way, from
-- max_momentum down to base_momentum and back. Step s here is PyTorch's step s - 1.
function optim.one_cycle(s)
  check_opts("optim.one_cycle", s, { lr = true, total = true, pct_start = true, div_factor = true,
    final_div_factor = true, base_momentum = true, max_momentum = true })
  local lr, total = s.lr, s.total
  if type(lr) ~= "number" or lr <= 0 then error("optim.one_cycle: lr must be a positive number, got " .. tostring(lr), 2) end
  if math.type(total) ~= "integer" or total < 2 then
    error("optim.one_cycle: total must be an integer number of steps >= 2, got " .. tostring(total), 2)
  end
  local pct = s.pct_start or 0.3
  if type(pct) ~= "number" or not (pct > 0 and pct < 1) then
    error("optim.one_cycle: pct_start must be a fraction between 0 and 1, got " .. tostring(pct), 2)
  end
  -- PyTorch's end of the rising phase (0-based, fractional); when it falls before the first step
  -- the cycle starts partway down the falling phase, as OneCycleLR does
  local warm_end = pct * total - 1
  local initial = lr / (s.div_factor or 25)
  local final = initial / (s.final_div_factor or 1e4)
  local m_lo, m_hi = s.base_momentum or 0.85, s.max_momentum or 0.95
  local function anneal(from, to, t) return to + (from - to) / 2 * (math.cos(math.pi * t) + 1) end
  return function(step)
    local k = step - 1
    if warm_end > 0 and k <= warm_end then
      local t = k / warm_end
      return anneal(initial, lr, t), anneal(m_hi, m_lo, t)
    end
    local t = math.min(1, (k - warm_end) / (total - 1 - warm_end))
    return anneal(lr, final, t), anneal(m_lo, m_hi, t)
  end
end

--- optim.schedule{lr =, warmup = 0, total =, decay = "cosine"|"linear"|"constant", min_lr = 0}
-- -> function(step) -> lr, for steps 1..total: linear warm-up from lr/warmup, then the decay.
function optim.schedule(s)
  check_opts("optim.schedule", s, { lr = true, warmup = true, total = true, decay = true, min_lr = true })
  local lr, warm, total, decay, min_lr = s.lr, s.warmup or 0, s.total, s.decay or "cosine", s.min_lr or 0
  if type(lr) ~= "number" then error("optim.schedule: lr is required", 2) end
  if decay ~= "constant" and type(total) ~= "number" then error("optim.schedule: total steps are required for " .. decay .. " decay", 2) end
  if decay ~= "cosine" and decay ~= "linear" and decay ~= "constant" then
    error("optim.schedule: decay must be \"cosine\", \"linear\" or \"constant\", got " .. tostring(decay), 2)
  end
  return function(step)
    if step <= warm then return lr * step / warm end
    if decay == "constant" then return lr end
    local t = math.min(1, (step - warm) / math.max(1, total - warm))
    if decay == "linear" then return min_lr + (lr - min_lr) * (1 - t) end
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))
  end
end

return optim
