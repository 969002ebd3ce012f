-- Durability of every writer: a child process rewrites a model checkpoint (with optimizer
-- state), an activation cache and a tensor file over and over, alternating two versions;
-- the parent kills it with SIGKILL at random moments. Afterwards each file must load whole
-- and be exactly one of the two versions, never a mixture or a torn file, and no temporary
-- file may be left where a later save would trip on it.
local test = require "milua.test"
local T = require "milua.tensor"
local nn = require "milua.nn"
local sys = require "milua.sys"

local BIN = (os.getenv("MILUA_BUILD") or "build") .. "/milua"
local dir = os.tmpname()
os.remove(dir)
assert(sys.mkdir(dir))

local child = dir .. "/writer.lua"
local f = assert(io.open(child, "w"))
f:write([[
local T = require "milua.tensor"
local nn = require "milua.nn"
local optim = require "milua.optim"
local dir = arg[1]
T.seed(3)
-- large enough that one save takes a while (about 4 MB)
local model = nn.transformer { n_layers = 2, d_model = 128, n_heads = 4, d_mlp = 512, d_vocab = 64, n_ctx = 16 }
local opt = optim.adamw(model.params, { lr = 1e-3 })
local tokens = T.randint(1, 65, 2, 8)
local loss = nn.cross_entropy(model:forward(tokens), tokens)   -- one step, so the moments exist
loss:backward()
opt:step()
io.stdout:write("ready\n"); io.stdout:flush()
local v = 0
while true do
  v = 1 - v
  -- version v: every parameter filled with v + 1, every optimizer moment with v + 2
  T.no_grad(function() for _, p in pairs(model.params) do p:fill_(v + 1) end end)
  local extra, meta = opt:state_dict()
  for name, t in pairs(extra) do
    if name:match("^optim%.") and t:dtype() == "float32" then T.no_grad(function() t:fill_(v + 2) end) end
  end
  meta.version = tostring(v)
  model:save(dir .. "/model.safetensors", extra, meta)
  local _, cache = model:run_with_cache(tokens, "hook_resid")
  cache:save(dir .. "/cache.safetensors", { version = tostring(v) })
  T.save(dir .. "/tensor.safetensors", { x = T.full({ 256, 1024 }, v + 1) }, { version = tostring(v) })
end
]])
f:close()

-- every value of t equals x
local function all_equal(t, x) return t:ne(x):sum():item() == 0 end

local function check_files(round)
  local bad = {}
  local mp = dir .. "/model.safetensors"
  if io.open(mp, "rb") then
    local ok, m, extra, meta = pcall(nn.load, mp)
    if not ok then bad[#bad + 1] = "model: " .. tostring(m)
    else
      local v = tonumber(meta.version)
      if v ~= 0 and v ~= 1 then bad[#bad + 1] = "model: no version" end
      for name, p in pairs(m.params) do
        if not all_equal(p, v + 1) then bad[#bad + 1] = "model: " .. name .. " is not all " .. (v + 1) end
      end
      local moments = 0
      for name, t in pairs(extra) do
        if name:match("^optim%.") and t:dtype() == "float32" then moments = moments + 1 end
        if name:match("^optim%.") and t:dtype() == "float32" and not all_equal(t, v + 2) then
          bad[#bad + 1] = "optimizer state " .. name .. " is not all " .. (v + 2)
        end
      end
      if moments == 0 then bad[#bad + 1] = "model: no optimizer moments saved" end
    end
  end
  for _, name in ipairs({ "cache", "tensor" }) do
    local p = dir .. "/" .. name .. ".safetensors"
    if io.open(p, "rb") then
      local ok, t, meta = pcall(T.load, p)
      if not ok then bad[#bad + 1] = name .. ": " .. tostring(t)
      elseif not (meta.version == "0" or meta.version == "1") then bad[#bad + 1] = name .. ": no version"
      elseif name == "tensor" and not all_equal(t.x, tonumber(meta.version) + 1) then
        bad[#bad + 1] = "tensor: x is a mixture of versions"
      end
    end
  end
  test.ok(#bad == 0, "kill " .. round .. ": every file loads whole, one version" .. (#bad > 0 and (": " .. table.concat(bad, "; ")) or ""))
end

T.seed(11)
local kills, loaded = 0, 0
for round = 1, 12 do
  local p = assert(io.popen("sh -c 'echo $$; exec " .. BIN .. " " .. child .. " " .. dir .. "' 2>/dev/null"))
  local pid = p:read("l")
  p:read("l")   -- "ready"
  -- a random moment: 5 to 300 ms into the writes
  os.execute(string.format("sleep %.3f", T.random(5, 300) / 1000))
  os.execute("kill -9 " .. pid)
  p:close()
  kills = kills + 1
  check_files(round)
  if io.open(dir .. "/model.safetensors", "rb") then loaded = loaded + 1 end
end
test.ok(kills == 12 and loaded >= 8, "the writer was killed 12 times, with files on disk after most (" .. loaded .. ")")

-- temporaries a kill left behind do not stop the next save, and the next save of each path
-- removes them: a temporary is PATH.tmp.<host>.<pid>, removed once its process is gone
local function temps()
  local names = {}
  for name in io.popen("ls -A " .. dir):lines() do if name:find("%.tmp%.") then names[#names + 1] = name end end
  table.sort(names)
  return names
end
test.diag("temporaries after the kills: " .. table.concat(temps(), " "))
local function output(cmd)
  local h = io.popen(cmd)
  local line = h:read("l")
  h:close()   -- and reaped: a zombie would still count as running
  return line
end
local host = output("hostname")
local dead = output("sh -c 'echo $$'")                         -- a process that has exited
-- a writer that still runs (the process that started this test) and one on another machine:
-- both kept
local alive = io.open("/proc/self/stat"):read("l"):match("^%d+ %b() %S+ (%d+)")
local planted = { dir .. "/tensor.safetensors.tmp." .. host .. "." .. dead,
  dir .. "/tensor.safetensors.tmp." .. host .. "." .. alive,
  dir .. "/tensor.safetensors.tmp.other-machine." .. dead }
for _, p in ipairs(planted) do assert(io.open(p, "w")):close() end
local ok = pcall(T.save, dir .. "/tensor.safetensors", { x = T.ones(2) })
test.ok(ok, "a save after the kills succeeds")
local m = nn.transformer { n_layers = 1, d_model = 8, n_heads = 2, d_mlp = 8, d_vocab = 5, n_ctx = 4 }
m:save(dir .. "/model.safetensors")
local _, cache = m:run_with_cache(T.tensor({ { 1, 2 } }, "int32"), "hook_resid")
cache:save(dir .. "/cache.safetensors")
local expect = { "tensor.safetensors.tmp." .. host .. "." .. alive, "tensor.safetensors.tmp.other-machine." .. dead }
table.sort(expect)
test.is(temps(), expect, "the next saves removed the temporaries of dead writers on this host, " ..
  "and kept a live writer's and another machine's")
os.execute("rm -rf " .. dir)
test.done()
