-- milua.train: a training loop with AdamW, a learning-rate schedule, gradient
-- clipping, periodic evaluation, checkpoints with exact resume, and progress.
--
--   local result = train.run{
--     model = model,                          -- from nn.transformer
--     batch = function(step) return tokens, targets, mask end,   -- mask optional
--     steps = 2000, lr = 1e-3, warmup = 100, decay = "cosine", min_lr = 0,
--     weight_decay = 0.01, betas = {0.9, 0.999}, clip = 1.0,
--     schedule = optim.one_cycle{lr = 1e-3, total = 2000, pct_start = 0.05},  -- instead of lr/warmup/decay:
--                                             -- function(step) -> lr[, beta1] (beta1 sets Adam's momentum)
--     loss = function(model, tokens, targets, mask) ... end,     -- default: cross-entropy of the logits
--     eval_every = 200, eval = function(model, step) return {acc = 0.9} end,
--     checkpoint = "out/ckpt.safetensors", checkpoint_every = 500, resume = true,
--     log_every = 100, quiet = false,
--   }
--   result = {losses = {...per step}, evals = {{step =, ...}, ...}, seconds =, steps =, resumed_from =}
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local sys = require "milua.sys"

local train = {}

local known = { model = 1, batch = 1, steps = 1, lr = 1, warmup = 1, decay = 1, min_lr = 1, weight_decay = 1,
  betas = 1, eps = 1, clip = 1, loss = 1, eval_every = 1, eval = 1, checkpoint = 1, checkpoint_every = 1,
  resume = 1, log_every = 1, quiet = 1, optimizer = 1, on_step = 1, params = 1, label = 1, schedule = 1 }

local function fmt_time(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, (s % 3600) // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end

local function fmt_rate(r)
  if r >= 1e6 then return string.format("%.1fM", r / 1e6) end
  if r >= 1e3 then return string.format("%.1fk", r / 1e3) end
  return string.format("%.0f", r)
end

--- a progress display: a redrawn bar on a terminal, plain periodic lines otherwise
function train.progress(total, opts)
  opts = opts or {}
  local tty = sys.isatty(1) and os.getenv("TERM") ~= "dumb"
  local p = { total = total, t0 = sys.clock(), last_draw = -1, tty = tty, label = opts.label or "train",
    every = opts.log_every or math.max(1, total // 10), quiet = opts.quiet }
  function p:update(step, loss, tokens_per_s, extra)
    if self.quiet then return end
    local now = sys.clock()
    local el = now - self.t0
    local eta = step > 0 and el / step * (self.total - step) or math.huge
    local info = string.format("%s step %d/%d loss %.4f %s tok/s ETA %s%s", self.label, step, self.total, loss,
      fmt_rate(tokens_per_s), fmt_time(eta), extra and ("  " .. extra) or "")
    if self.tty then
      if now - self.last_draw < 0.1 and step < self.total then return end
      self.last_draw = now
      local width = math.max(10, math.min(30, sys.term_width() - #info - 4))
      local filled = math.floor(width * step / self.total)
      io.stdout:write("\r[" .. string.rep("#", filled) .. string.rep(".", width - filled) .. "] " .. info .. "\27[K")
      if step >= self.total then io.stdout:write("\n") end
      io.stdout:flush()
    elseif step % self.every == 0 or step == self.total then
      print(info)
      io.stdout:flush()
    end
  end
  function p:message(msg)   -- a line that does not break the bar
    if self.quiet then return end
    if self.tty then io.stdout:write("\r\27[K") end
    print(msg)
  end
  return p
end

local function default_loss(model, tokens, targets, mask)
  return nn.cross_entropy(model:forward(tokens), targets, mask)
end

local function save_checkpoint(path, o, opt, step, losses)
  local extra, meta = opt:state_dict()
  extra["train.rng_state"] = T.get_rng_state()
  extra["train.losses"] = #losses > 0 and T.tensor(losses) or T.zeros(0)
  meta.train_step = tostring(step)
  o.model:save(path, extra, meta)
end

local function load_checkpoint(path, o, opt)
  local tensors, meta = T.load(path)
  for _, n in ipairs(o.model.param_names) do
    local t = tensors[n]
    if not t then error("train: checkpoint " .. path .. " lacks parameter '" .. n .. "'", 0) end
    T.no_grad(function() o.model.params[n]:copy_(t) end)
  end
  opt:load_state_dict(tensors, meta)
  if tensors["train.rng_state"] then T.set_rng_state(tensors["train.rng_state"]) end
  local losses = tensors["train.losses"] and tensors["train.losses"]:numel() > 0 and tensors["train.losses"]:totable() or {}
  return tonumber(meta.train_step) or 0, losses
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function train.run(o)
  for k in pairs(o) do
    if not known[k] then error("train.run: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if not o.model then error("train.run: 'model' is required", 2) end
  if type(o.batch) ~= "function" then error("train.run: 'batch' must be a function(step) -> tokens, targets, mask", 2) end
  local steps = o.steps or error("train.run: 'steps' is required", 2)
  local params = o.params or o.model.params
  local opt = o.optimizer or optim.adamw(params, { lr = o.lr or 1e-3, betas = o.betas or { 0.9, 0.999 },
    eps = o.eps or 1e-8, weight_decay = o.weight_decay or 0.01 })
  if o.schedule ~= nil and type(o.schedule) ~= "function" then
    error("train.run: 'schedule' must be a function(step) -> lr[, beta1], got " .. type(o.schedule), 2)
  end
  if o.schedule and (o.warmup or o.decay or o.min_lr) then
    error("train.run: give either 'schedule' or 'warmup'/'decay'/'min_lr', not both", 2)
  end
  local sched = o.schedule or optim.schedule { lr = o.lr or opt.lr, warmup = o.warmup or 0, total = steps,
    decay = o.decay or "constant", min_lr = o.min_lr or 0 }
  local lossfn = o.loss or default_loss
  local losses, evals = {}, {}
  local start = 0
  if o.checkpoint and o.resume and file_exists(o.checkpoint) then
    start, losses = load_checkpoint(o.checkpoint, o, opt)
    if start > steps then start = steps end
  end
  local bar = train.progress(steps, { log_every = o.log_every, quiet = o.quiet, label = o.label })
  if start > 0 then bar:message(string.format("resumed from %s at step %d", o.checkpoint, start)) end
  local t0 = sys.clock()
  local tokens_seen = 0
  for step = start + 1, steps do
    local lr, beta1 = sched(step)
    opt.lr = lr
    if beta1 and opt.betas then opt.betas = { beta1, opt.betas[2] } end   -- a fresh table: the caller's betas stay as given
    local tokens, targets, mask = o.batch(step)
    opt:zero_grad()
    local loss = lossfn(o.model, tokens, targets, mask)
    loss:backward()
    if o.clip then optim.clip_grad_norm(params, o.clip) end
    opt:step()
    local lv = loss:item()
    if lv ~= lv then error(string.format("train: the loss became NaN at step %d (lower the learning rate?)", step), 0) end
    losses[step] = lv
    tokens_seen = tokens_seen + tokens:numel()
    if o.on_step then o.on_step(step, lv) end
    local extra
    if o.eval and o.eval_every and (step % o.eval_every == 0 or step == steps) then
      local r = T.no_grad(function() return o.eval(o.model, step) end) or {}
      r.step = step
      evals[#evals + 1] = r
      local parts = {}
      for k, v in pairs(r) do if k ~= "step" and type(v) == "number" then parts[#parts + 1] = string.format("%s %.4g", k, v) end end
      table.sort(parts)
      extra = table.concat(parts, " ")
      bar:message(string.format("  eval at step %d: %s", step, extra))
    end
    local el = sys.clock() - t0
    bar:update(step, lv, tokens_seen / math.max(el, 1e-9), nil)
    if o.checkpoint and o.checkpoint_every and step % o.checkpoint_every == 0 then
      save_checkpoint(o.checkpoint, o, opt, step, losses)
    end
  end
  if o.checkpoint then save_checkpoint(o.checkpoint, o, opt, steps, losses) end
  return { losses = losses, evals = evals, seconds = sys.clock() - t0, steps = steps, resumed_from = start,
    optimizer = opt }
end

return train
