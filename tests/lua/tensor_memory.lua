-- Memory: the collector keeps pace with native allocation, training loops run
-- at flat memory, <close> frees at once, views keep their storage alive, and
-- deep graphs are freed and walked without recursion.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn_core"

local MB = 1024 * 1024
local function settle()
  collectgarbage()
  collectgarbage()
  return T.live_bytes()
end
local base = settle()

-- 2000 tensors of 4 MB each, dropped at once: the binding collects when native memory doubles
-- (500 under the sanitizers, whose allocator makes each 4 MB block slow; still 2 GB in all)
local sanitized = os.getenv("MILUA_SANITIZED") or (os.getenv("MILUA_BUILD") or ""):find("asan")
local count = sanitized and 500 or 2000
local peak = 0
for i = 1, count do
  local t = T.zeros(MB)   -- 4 MB of float32
  if i % 500 == 0 then t[1] = i end
  local live = T.live_bytes()
  if live > peak then peak = live end
end
test.ok(peak < 300 * MB, string.format("%d x 4 MB: peak live bytes %.0f MB stay under 300 MB", count, peak / MB))
test.ok(peak >= 4 * MB, "live_bytes counts the tensors")
test.is(settle(), base, "everything is released after a collection")

-- <close> releases the storage at once, without the collector
do
  local before = T.live_bytes()
  do
    local big <close> = T.ones(4 * MB)
    test.is(T.live_bytes() - before, 16 * MB, "a 16 MB tensor is counted")
  end
  test.is(T.live_bytes(), before, "<close> frees the storage at the end of the scope")
end

-- a view keeps its storage alive; the storage goes with the last view
do
  local before = settle()
  local v
  do
    local b = T.zeros(MB)
    v = b:narrow(1, 1, 10)
  end
  local mid = settle()
  test.is(mid - before, 4 * MB, "a narrow view keeps the whole storage alive")
  v[1] = 3
  test.is(v[1]:item(), 3.0, "the view is still usable")
  v = nil
  test.is(settle(), before, "dropping the last view frees the storage")
end

-- gradients and saved tensors are released
do
  local before = settle()
  local w = T.randn(256, 256):requires_grad(true)
  local loss = (w:matmul(w) * w):sum()
  loss:backward()
  test.ok(w.grad ~= nil, "a gradient exists")
  local with_grad = settle()
  w:zero_grad()
  test.is(settle(), with_grad - 256 * 256 * 4, "zero_grad releases the gradient")
  loss, w = nil, nil
  test.is(settle(), before, "dropping the graph releases the saved tensors")
end

-- a small MLP trained for 1000 steps stays at flat memory
do
  T.seed(3)
  local X = T.randn(64, 16)
  local Y = T.randint(1, 5, 64)
  local W1 = (T.randn(16, 32) * 0.3):requires_grad(true)
  local b1 = T.zeros(32):requires_grad(true)
  local W2 = (T.randn(32, 4) * 0.3):requires_grad(true)
  local params = { W1, b1, W2 }
  local live_at, first_loss, last_loss, max_late = {}, nil, nil, 0
  for step = 1, 1000 do
    local h = (X:matmul(W1) + b1):gelu()
    local loss = nn.cross_entropy(h:matmul(W2), Y)
    for _, p in ipairs(params) do p.grad = nil end
    loss:backward()
    T.no_grad(function()
      for _, p in ipairs(params) do p:sub_(p.grad * 0.5) end
    end)
    if step == 1 then first_loss = loss:item() end
    last_loss = loss:item()
    if step == 100 or step == 1000 then live_at[step] = settle() end
    if step > 500 then max_late = math.max(max_late, T.live_bytes()) end
  end
  test.ok(last_loss < first_loss * 0.5, string.format("the MLP learns (loss %.3f -> %.3f)", first_loss, last_loss))
  test.is(live_at[1000], live_at[100], "live bytes after 1000 steps equal those after 100 (flat)")
  test.ok(max_late < live_at[100] + 70 * MB, string.format("live bytes without forced collection stay bounded (%.1f MB)",
    max_late / MB))
end
test.is(settle(), base, "the MLP's memory is released")

-- deep graphs: freeing and backward are iterative, not recursive
do
  local x = T.ones(1):requires_grad(true)
  local y = x
  for _ = 1, 100000 do y = y * 1.0 end
  y:sum():backward()
  test.is(x.grad:item(), 1.0, "backward through a chain of 100000 ops")
  local z = x
  for _ = 1, 100000 do z = z + 0 end
  z = nil
  test.lives(function() collectgarbage() collectgarbage() end, "freeing a chain of 100000 nodes does not overflow the stack")
end
test.is(settle(), base, "the deep graphs are released")

-- the pace of collection: dead tensors pile up to 8 MB (or the live bytes, if more) at most
-- before a full collection, even with Lua's own collector stopped (a 1 MB tensor a step)
do
  local before = settle()
  collectgarbage("stop")
  -- the bound is set at each paced collection from what is live then: 64 MB of garbage first,
  -- so that one happens here and not in an earlier test with more alive
  for _ = 1, 64 do local t = T.zeros(MB // 4) end
  local most = 0
  for _ = 1, 200 do
    local t = T.zeros(MB // 4)
    most = math.max(most, T.live_bytes() - before)
  end
  collectgarbage("restart")
  test.ok(most <= 8 * MB + before + MB, string.format("200 dead 1 MB tensors: at most %.1f MB of them held at once " ..
    "(the bound: 8 MB, or the live %.1f MB if more, plus one)", most / MB, before / MB))
  test.is(settle(), before, "and all released")
end

-- a training loop's pattern: the live bytes peak at the same height every step (activations,
-- released by the end of the step) and a 1 MB tensor per step is dropped for the collector (the
-- logits). A collection comes once as many bytes have been allocated as were live after the
-- last one, so the dropped tensors do not pile up until the peak doubles (that took 40 steps).
do
  local before = settle()
  collectgarbage("stop")
  local weights = T.zeros(4 * MB)   -- 16 MB held throughout
  local most = 0
  for _ = 1, 100 do
    local activations <close> = T.zeros(6 * MB)   -- 24 MB, released at the end of the step
    local logits = T.zeros(MB // 4)
    most = math.max(most, T.live_bytes() - before - 40 * MB)
  end
  collectgarbage("restart")
  test.ok(most <= 8 * MB, string.format("100 steps peaking at 40 MB live, a dead 1 MB tensor each: at most %.0f MB " ..
    "of them held at once (bound 8 MB)", most / MB))
  weights = nil
  test.is(settle(), before, "and all released")
end

-- the buffer cache keeps a freed buffer for reuse, and forgets it once two epochs of allocation
-- (each at least 64 MB) pass without anyone asking for its size
do
  settle()
  local m0 = T.memory()
  do local odd <close> = T.zeros(12345) end              -- 49,380 bytes, padded to 49,408
  local m1 = T.memory()
  if sanitized then   -- the sanitizer build frees at once, so that AddressSanitizer sees every use after free
    test.is({ m0.cached, m1.cached }, { 0, 0 }, "the sanitizer build caches no freed buffer")
  else
    test.is(m1.cached - m0.cached, 49408, "a freed buffer waits in the cache (its size padded to 64 bytes)")
  end
  for _ = 1, 200 do local u <close> = T.zeros(MB // 4) end   -- 200 MB of 1 MB buffers, reused
  local m2 = T.memory()
  test.ok(m2.cached <= MB, string.format("after 200 MB of other allocations only the 1 MB buffer in use stays cached " ..
    "(%d bytes cached)", m2.cached))
  test.ok(m2.total - m1.total >= 200 * MB, "T.memory().total counts every allocation, cached or not")
  if m2.heap_used > 0 then
    test.ok(m2.heap_used >= m2.live + m2.cached, string.format("malloc's bytes in use (%.1f MB) hold the live and cached " ..
      "tensor bytes (%.1f MB)", m2.heap_used / MB, (m2.live + m2.cached) / MB))
  else
    test.ok(m2.heap_free == 0, "heap_used and heap_free are 0 where malloc does not report them")
  end
end

test.done()
