-- Tests of analysis.r2, analysis.polyfit and analysis.polyval against NumPy and values derived
-- by hand.
local test = require "milua.test"
local T = require "milua.tensor"
local analysis = require "milua.analysis"

-- by hand: target {1, 2, 3}, pred {1, 2, 4}: ss_res 1, ss_tot 2 -> 0.5
test.close(analysis.r2({ 1, 2, 4 }, { 1, 2, 3 }), 0.5, 1e-15, "r2 by hand")
test.is(analysis.r2({ 5, 6, 7 }, { 5, 6, 7 }), 1.0, "a perfect prediction has r2 1")
test.close(analysis.r2({ 2, 2, 2 }, { 1, 2, 3 }), 0.0, 1e-15, "predicting the mean gives r2 0")
-- an exact cubic is recovered from 6 points
do
  local xs, ys = {}, {}
  for i = 1, 6 do xs[i] = 100 * i; ys[i] = 2 - 0.5 * xs[i] + 3e-4 * xs[i] ^ 2 - 1e-7 * xs[i] ^ 3 end
  test.close(analysis.polyfit(xs, ys, 3), { -1e-7, 3e-4, -0.5, 2 }, 1e-9, "an exact cubic at x = 100..600 is recovered")
  test.close(analysis.polyval({ -1e-7, 3e-4, -0.5, 2 }, 1000), -1e-7 * 1e9 + 3e-4 * 1e6 - 0.5 * 1e3 + 2, 1e-9, "polyval at one x")
  test.close(analysis.polyval({ 1, 0, -1 }, T.tensor({ 0, 2, -3 })), { -1, 3, 8 }, 0, "polyval of x^2 - 1 on a tensor")
end

-- against NumPy: noisy data (NumPy reads the float32 inputs as 9-digit decimals, a relative
-- change of up to 5e-10, so agreement is checked to 1e-7 relative) over the range the experiment uses (x in the hundreds, degree 4)
T.seed(3)
local x = T.rand(40) * 900 + 100
local y = (x / 100):pow(2) * 0.3 - x / 50 + T.randn(40) * 2
local pred = y + T.randn(40)
local res = test.numpy([[
x, y, p = A
out(np.polyfit(x, y, 4))
out(np.polyfit(x, y, 1))
out(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())
out(np.polyval(np.polyfit(x, y, 4), np.array([50.0, 500.0, 1200.0])))
]], { x, y, pred })
test.is(#res, 4, "NumPy answered four lines")
local c4 = analysis.polyfit(x, y, 4)
for i = 1, 5 do
  local want = res[1][i]
  test.close(c4[i], want, 1e-7 * math.abs(want) + 1e-12, "degree-4 coefficient " .. i .. " as np.polyfit")
end
local c1 = analysis.polyfit(x, y, 1)
test.close(c1, res[2], 1e-7 * math.max(math.abs(res[2][1]), math.abs(res[2][2])), "degree-1 fit as np.polyfit")
test.close(analysis.r2(pred, y), res[3][1], 1e-8, "r2 as NumPy's formula")
test.close(analysis.polyval(c4, { 50, 500, 1200 }), res[4], 1e-6, "polyval of the fit, extrapolated too, as np.polyval")

-- errors
test.throws(function() analysis.r2({ 1, 2 }, { 1, 2, 3 }) end, "analysis.r2: pred has 2 values but target has 3", "r2 lengths differ")
test.throws(function() analysis.r2({ 1, 2 }, { 4, 4 }) end, "the target is constant (4): R^2 is undefined", "r2 of a constant target")
test.throws(function() analysis.polyfit({ 1, 1, 2 }, { 1, 2, 3 }, 2) end,
  "a degree-2 fit needs at least 3 distinct x values, got 2", "too few distinct x")
test.throws(function() analysis.polyfit({ 1, 2 }, { 1, 2 }, -1) end, "deg must be a non-negative integer, got -1", "negative degree")
test.throws(function() analysis.polyfit({ 1, 0 / 0 }, { 1, 2 }, 0) end, "point 2 is not finite", "NaN refused")
test.throws(function() analysis.polyfit("x", { 1 }, 0) end, "x must be a 1-d tensor or a list of numbers, got string", "bad x")
test.throws(function() analysis.polyval({}, 1) end, "analysis.polyval: coef is empty", "empty coefficients")
test.throws(function() analysis.r2(T.zeros(2, 2), { 1, 2 }) end, "pred must be 1-d, got shape [2,2]", "2-d pred")

test.done()
