-- milua.tensor: the native tensor module plus the parts written in Lua.
local T = require "milua.tensor_core"

--- T.gradcheck(fn, inputs, opts) -> ok, report
-- Compares the gradients backward() computes for every input that requires grad with central
-- finite differences of sum(fn(inputs) * w) for a fixed random weighting w. The function runs
-- in float32, so the weighted sum is formed in double (from the output's elements) to keep
-- the differences' rounding noise small; eps = 1e-3.
-- An element passes when |backward - numeric| <= atol + rtol * scale, where scale is the
-- largest |numeric| gradient of that input: the tolerance follows each input's own gradient
-- size, so a small true gradient (the mean of n elements has 1/n) is held to the same relative
-- precision as a large one. Defaults rtol = 1e-2, atol = 1e-4: a backward that is 4% off
-- fails. Piecewise functions (relu, abs, max) need inputs away from their kinks.
local function weighted_sum(y, w)
  local a, b = y:contiguous():view(-1):totable(), w
  local s = 0.0
  for i = 1, #a do s = s + a[i] * b[i] end
  return s
end

function T.gradcheck(fn, inputs, opts)
  local mt = getmetatable(fn)
  if type(fn) ~= "function" and not (type(mt) == "table" and mt.__call) then
    error("gradcheck: expected a function, got " .. type(fn), 2)
  end
  if type(inputs) ~= "table" then error("gradcheck: expected a list of inputs, got " .. type(inputs), 2) end
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-3, opts.atol or 1e-4, opts.rtol or 1e-2
  local out = fn(table.unpack(inputs))
  if not T.is_tensor(out) then error("gradcheck: the function must return a tensor, got " .. type(out), 2) end
  local w = T.no_grad(function() return T.randn(table.unpack(out:shape())) end)
  local wlist = w:view(-1):totable()
  local function objective()
    return T.no_grad(function() return weighted_sum(fn(table.unpack(inputs)), wlist) end)
  end
  for _, x in ipairs(inputs) do if T.is_tensor(x) and x:requires_grad() then x.grad = nil end end
  ;(out * w):sum():backward()
  local worst, where = 0, nil
  for k, x in ipairs(inputs) do
    if T.is_tensor(x) and x:requires_grad() then
      if not x:is_contiguous() then error("gradcheck: input " .. k .. " must be contiguous", 2) end
      local analytic = x.grad and x.grad:contiguous():view(-1):totable() or {}
      local flat = x:detach():view(-1)   -- shares memory with x
      local numeric, scale = {}, 0
      for i = 1, flat:numel() do
        local orig = flat[i]:item()
        T.no_grad(function() flat[i] = orig + eps end)
        local fp = objective()
        T.no_grad(function() flat[i] = orig - eps end)
        local fm = objective()
        T.no_grad(function() flat[i] = orig end)
        numeric[i] = (fp - fm) / (2 * eps)
        scale = math.max(scale, math.abs(numeric[i]))
      end
      for i = 1, #numeric do
        local a = analytic[i] or 0
        local excess = math.abs(a - numeric[i]) - (atol + rtol * scale)
        if excess > worst or (where == nil and excess > 0) then
          worst = excess
          where = string.format("input %d element %d: backward %.6g, finite difference %.6g (gradient scale %.3g)",
            k, i, a, numeric[i], scale)
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
--- T.gemm_engine() -> name; T.set_gemm_engine(name): the matrix-product engine, "auto" (the
--- default: oneDNN, and OpenBLAS for tiny products where its AVX2 kernels are faster; the
--- table is in nn/core/parallel.c), "openblas" or "onednn" for every product. The environment
--- variable MILUA_GEMM sets the initial value. Either engine gives bit-identical results for
--- any thread count; the two engines round differently from each other.
T.gemm_engine = sys.gemm_engine
T.set_gemm_engine = sys.set_gemm_engine

return T
