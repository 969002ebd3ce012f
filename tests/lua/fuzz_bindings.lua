-- Replays sequences of the bindings fuzzer (tests/fuzz/bindings.lua): random tensor calls,
-- hooks that misbehave and bad configs, each a result or a clear Lua error, with a reference
-- computation intact after every sequence. The first 40 sequences, and any sequence that once
-- crashed (listed in tests/fuzz/corpus/bindings.txt), run here; `make fuzz` runs new ones.
local test = require "milua.test"
local fz = dofile("tests/fuzz/bindings.lua")

local seqs = {}
for k = 1, 40 do seqs[#seqs + 1] = k end
local f = io.open("tests/fuzz/corpus/bindings.txt", "r")
test.ok(f ~= nil, "the list of once-crashing sequences is in the repository")
if f then
  for line in f:lines() do
    local k = tonumber(line:match("^%s*(%d+)"))
    if k then seqs[#seqs + 1] = k end
  end
  f:close()
end
for _, k in ipairs(seqs) do
  local ok, err = pcall(fz.run_sequence, k, 200)
  test.ok(ok, "fuzz sequence " .. k .. (ok and "" or (": " .. tostring(err))))
end
test.done()
