-- milua.tensor: the native tensor module plus the parts written in Lua.
local T = require "milua.tensor_core"

--- T.gradcheck(fn, inputs, opts) -> ok, report
-- Compares the gradients backward() computes for every input that requires
-- grad with central finite differences of sum(fn(inputs) * w) for a fixed
-- random weighting w. The differences are taken in float32 but with a step
-- eps = 1e-3 and a tolerance atol + rtol*|numeric| (defaults 1e-2 and 1e-2),
-- which suits float32 arithmetic for smooth functions of O(1) values.
function T.gradcheck(fn, inputs, opts)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call) then
    error("gradcheck: expected a function, got " .. type(fn), 2)
  end
  if type(inputs) ~= "table" then error("gradcheck: expected a list of inputs, got " .. type(inputs), 2) end
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-3, opts.atol or 1e-2, opts.rtol or 1e-2
  local out = fn(table.unpack(inputs))
  if not T.is_tensor(out) then error("gradcheck: the function must return a tensor, got " .. type(out), 2) end
  local w = T.no_grad(function() return T.randn(table.unpack(out:shape())) end)
  local function objective()
    return T.no_grad(function() return (fn(table.unpack(inputs)) * w):sum():item() end)
  end
  for _, x in ipairs(inputs) do if T.is_tensor(x) and x:requires_grad() then x.grad = nil end end
  ;(out * w):sum():backward()
  local worst, where = 0, nil
  for k, x in ipairs(inputs) do
    if T.is_tensor(x) and x:requires_grad() then
      local analytic = x.grad and x.grad:contiguous():view(-1):totable() or {}
      local flat = x:detach():view(-1)   -- shares memory with x when x is contiguous
      if not x:is_contiguous() then error("gradcheck: input " .. k .. " must be contiguous", 2) end
      for i = 1, flat:numel() do
        local orig = flat[i]:item()
        T.no_grad(function() flat[i] = orig + eps end)
        local fp = objective()
        T.no_grad(function() flat[i] = orig - eps end)
        local fm = objective()
        T.no_grad(function() flat[i] = orig end)
        local numeric = (fp - fm) / (2 * eps)
        local a = analytic[i] or 0
        local err = math.abs(a - numeric)
        local excess = err - (atol + rtol * math.abs(numeric))
        if excess > worst or (where == nil and excess > 0) then
          worst = excess
          where = string.format("input %d element %d: backward %.6g, finite difference %.6g", k, i, a, numeric)
        end
      end
    end
  end
  if where then return false, where end
  return true, "ok"
end

local sys = require "milua.sys"
--- T.get_rng_state() -> int32 tensor [8]; T.set_rng_state(t): save and restore the global generator
T.get_rng_state = sys.rng_state
T.set_rng_state = sys.set_rng_state
--- T.num_threads() -> n; T.set_num_threads(n): threads of milua's own parallel loops (OpenMP;
--- OpenBLAS always runs one). Results are bit-identical for any count; tiny models run faster on one,
--- and one thread avoids spin-waiting when the other cores are busy.
T.num_threads = sys.num_threads
T.set_num_threads = sys.set_num_threads

return T
