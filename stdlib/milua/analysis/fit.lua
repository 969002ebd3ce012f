-- milua.analysis.fit: goodness of fit and polynomial least squares, in double precision.
--
--   analysis.r2(pred, target) -> 1 - sum (target - pred)^2 / sum (target - mean)^2
--       (scikit-learn's r2_score); pred and target are 1-d tensors or Lua lists
--   analysis.polyfit(x, y, deg) -> coefficients, highest power first (NumPy's polyfit order)
--       least squares by Householder QR on the Vandermonde matrix of the centred and scaled x
--       (so powers of large x do not swamp the solve), expanded back to powers of x
--   analysis.polyval(coef, x) -> p(x) for a number, or a Lua list for a list / 1-d tensor
local T = require "milua.tensor"
local U = require "milua.analysis.util"

local M = {}

local function list_of(x, fn, what)
  if T.is_tensor(x) then
    if x:dim() ~= 1 then U.fail(fn, "%s must be 1-d, got shape %s", what, U.shape_str(x)) end
    return x:totable()
  end
  if type(x) ~= "table" then U.fail(fn, "%s must be a 1-d tensor or a list of numbers, got %s", what, type(x)) end
  for i = 1, #x do
    if type(x[i]) ~= "number" then U.fail(fn, "%s[%d] is a %s, expected a number", what, i, type(x[i])) end
  end
  return x
end

function M.r2(pred, target)
  local fn = "analysis.r2"
  local p, y = list_of(pred, fn, "pred"), list_of(target, fn, "target")
  if #p ~= #y then U.fail(fn, "pred has %d values but target has %d", #p, #y) end
  if #y < 2 then U.fail(fn, "needs at least 2 values, got %d", #y) end
  local mean = 0
  for i = 1, #y do mean = mean + y[i] end
  mean = mean / #y
  local ss_res, ss_tot = 0, 0
  for i = 1, #y do
    ss_res = ss_res + (y[i] - p[i]) ^ 2
    ss_tot = ss_tot + (y[i] - mean) ^ 2
  end
  if ss_tot == 0 then U.fail(fn, "the target is constant (%g): R^2 is undefined", mean) end
  return 1 - ss_res / ss_tot
end

-- least squares min ||A b - y|| for A [n][k] (n >= k, full column rank) by Householder QR
local function lstsq(A, y, n, k)
  for j = 1, k do
    local norm = 0
    for i = j, n do norm = norm + A[i][j] ^ 2 end
    norm = math.sqrt(norm)
    if norm == 0 then return nil end
    local alpha = A[j][j] > 0 and -norm or norm
    local v = {}
    for i = j, n do v[i] = A[i][j] end
    v[j] = v[j] - alpha
    local vv = 0
    for i = j, n do vv = vv + v[i] ^ 2 end
    if vv > 0 then
      for c = j, k do
        local s = 0
        for i = j, n do s = s + v[i] * A[i][c] end
        s = 2 * s / vv
        for i = j, n do A[i][c] = A[i][c] - s * v[i] end
      end
      local s = 0
      for i = j, n do s = s + v[i] * y[i] end
      s = 2 * s / vv
      for i = j, n do y[i] = y[i] - s * v[i] end
    end
  end
  local b = {}
  for j = k, 1, -1 do
    local s = y[j]
    for c = j + 1, k do s = s - A[j][c] * b[c] end
    if math.abs(A[j][j]) < 1e-12 * math.abs(A[1][1]) then return nil end
    b[j] = s / A[j][j]
  end
  return b
end

function M.polyfit(x, y, deg)
  local fn = "analysis.polyfit"
  x, y = list_of(x, fn, "x"), list_of(y, fn, "y")
  if #x ~= #y then U.fail(fn, "x has %d values but y has %d", #x, #y) end
  if math.type(deg) ~= "integer" or deg < 0 then U.fail(fn, "deg must be a non-negative integer, got %s", tostring(deg)) end
  local distinct, seen = 0, {}
  for i = 1, #x do
    if x[i] ~= x[i] or y[i] ~= y[i] or math.abs(x[i]) == math.huge or math.abs(y[i]) == math.huge then
      U.fail(fn, "point %d is not finite (x = %s, y = %s)", i, tostring(x[i]), tostring(y[i]))
    end
    if not seen[x[i]] then seen[x[i]] = true; distinct = distinct + 1 end
  end
  if distinct < deg + 1 then
    U.fail(fn, "a degree-%d fit needs at least %d distinct x values, got %d", deg, deg + 1, distinct)
  end
  local n, k = #x, deg + 1
  local c, s = 0, 0
  for i = 1, n do c = c + x[i] end
  c = c / n
  for i = 1, n do s = math.max(s, math.abs(x[i] - c)) end
  if s == 0 then s = 1 end
  local A, rhs = {}, {}
  for i = 1, n do
    local t, row = (x[i] - c) / s, {}
    local pw = 1
    for j = 1, k do row[j] = pw; pw = pw * t end      -- column j holds t^(j-1)
    A[i], rhs[i] = row, y[i]
  end
  local beta = lstsq(A, rhs, n, k)
  if not beta then U.fail(fn, "the Vandermonde matrix is rank-deficient at degree %d", deg) end
  -- sum_j beta_j ((x - c)/s)^j = sum_i coef_i x^i via the binomial expansion
  local raw = {}
  for i = 0, deg do raw[i] = 0 end
  for j = 0, deg do
    local scale = beta[j + 1] / s ^ j
    local binom = 1
    for i = 0, j do                                -- C(j, i) x^i (-c)^(j - i)
      raw[i] = raw[i] + scale * binom * (-c) ^ (j - i)
      binom = binom * (j - i) / (i + 1)
    end
  end
  local coef = {}
  for i = deg, 0, -1 do coef[#coef + 1] = raw[i] end
  return coef
end

function M.polyval(coef, x)
  local fn = "analysis.polyval"
  coef = list_of(coef, fn, "coef")
  if #coef == 0 then U.fail(fn, "coef is empty") end
  local function at(v)
    local r = 0
    for i = 1, #coef do r = r * v + coef[i] end
    return r
  end
  if type(x) == "number" then return at(x) end
  local xs = list_of(x, fn, "x")
  local out = {}
  for i = 1, #xs do out[i] = at(xs[i]) end
  return out
end

return M
