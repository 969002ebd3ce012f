-- T.save / T.load: round trips, metadata, NumPy interop both ways, a reference
-- fixture, and error paths that must raise Lua errors without killing the process.
local test = require "milua.test"
local T = require "milua.tensor"
local json = require "milua.json"

local base = os.tmpname()          -- a fresh name; our files hang off it
os.remove(base)
local made = {}
local function tmp(name)
  local p = base .. "_" .. name
  made[#made + 1] = p
  return p
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_all(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function flat(t)
  if t:dim() == 0 then return { t:item() } end
  return t:contiguous():view(-1):totable()
end

-- the float32 value nearest to a Lua number, as a Lua number
local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end

-- a file that is the 8-byte length, the header as given, then raw data
local function st_bytes(header, data) return string.pack("<I8", #header) .. header .. (data or "") end

------------------------------------------------------------------ round trip

T.seed(3)
local x = T.randn(5, 7)
x[1][1] = 0 / 0                    -- NaN and -0 must come back bit for bit
x[1][2] = -0.0
x[2][3] = 1e-40                    -- a float32 subnormal
local ids = T.tensor({ { 1, -2, 2147483647 }, { -2147483648, 0, 5 } }, "int32")
local tensors = {
  x = x,
  xT = x:t(),                      -- a non-contiguous view
  ids = ids,
  scalar = T.tensor(2.5),          -- 0-d
  empty = T.zeros(0, 3),
  ["blocks.0.attn.W_Q"] = T.randn(2, 3, 4),
}
local p1 = tmp("a.safetensors")
test.lives(function() T.save(p1, tensors, { note = "hi", step = 1200, lr = 0.5 }) end, "save: six tensors and metadata")
local back, meta = T.load(p1)
test.is(type(back), "table", "load: returns a table of tensors")
local names = {}
for k in pairs(back) do names[#names + 1] = k end
table.sort(names)
test.is(names, { "blocks.0.attn.W_Q", "empty", "ids", "scalar", "x", "xT" }, "load: every name comes back")
test.is(back.x:shape(), { 5, 7 }, "load: shape of x")
test.is(back.xT:shape(), { 7, 5 }, "load: the view saved with its own shape")
test.is(back.xT, x:t():contiguous(), "load: the view's values in row-major order")
test.is(back.ids:dtype(), "int32", "load: int32 stays int32")
test.is(back.ids, ids, "load: int32 values incl. the extremes")
test.is(back.scalar:dim(), 0, "load: 0-d stays 0-d")
test.is(back.scalar:item(), 2.5, "load: 0-d value")
test.is(back.empty:shape(), { 0, 3 }, "load: empty tensor keeps its shape")
test.is(back["blocks.0.attn.W_Q"], tensors["blocks.0.attn.W_Q"], "load: dotted names")
local bx = flat(back.x)
test.ok(bx[1] ~= bx[1] and string.pack("<f", bx[2]) == string.pack("<f", -0.0) and bx[10] == f32(1e-40) and bx[10] ~= 0,
  "load: NaN, -0 and a subnormal survive")

-- bit-exact: saving what was loaded reproduces the file byte for byte
local p2 = tmp("b.safetensors")
T.save(p2, back, meta)
test.ok(read_all(p1) == read_all(p2), "round trip is bit-exact (re-saving the loaded tensors gives the same bytes)")
T.save(p2, tensors, { note = "hi", step = 1200, lr = 0.5 })
test.ok(read_all(p1) == read_all(p2), "save is deterministic (sorted names and metadata)")

------------------------------------------------------------------ metadata
test.is(meta, { format = "pt", note = "hi", step = "1200", lr = "0.5" },
  "metadata: strings back, numbers via tostring, format = pt added")
do
  local p = tmp("meta.safetensors")
  T.save(p, {}, { config = json.encode({ n_layers = 2, act_fn = "gelu" }), weird = "q\"\\\n\t\u{20AC}" })
  local t, m = T.load(p)
  test.is(next(t), nil, "metadata only: no tensors")
  test.is(m.weird, "q\"\\\n\t\u{20AC}", "metadata: quotes, backslash, controls, UTF-8 round trip")
  test.is(json.decode(m.config).act_fn, "gelu", "metadata: a JSON config survives")
  T.save(p, { a = T.ones(2) })
  local _, m2 = T.load(p)
  test.is(m2, { format = "pt" }, "metadata: without a meta table only format = pt")
  test.lives(function() T.save(p, { a = T.ones(2) }, { format = "pt" }) end, "metadata: format = pt may be given")
end

------------------------------------------------------------------ NumPy

local PY = "/usr/bin/python3"
local function python(code)
  local script = tmp("py.py")
  write_all(script, code)
  local h = io.popen(PY .. " " .. script .. " 2>&1")
  local out = h:read("a")
  local ok = h:close()
  return ok, out
end

local have_numpy = exists(PY) and python("import numpy\n")
if not have_numpy then
  test.skip("numpy reads milua's file", "no /usr/bin/python3 with numpy")
  test.skip("numpy writes, milua reads", "no /usr/bin/python3 with numpy")
else
  -- milua writes, NumPy reads: print every value with repr (exact for float32 -> double)
  local ok, out = python(([==[
import json, struct, numpy as np
raw = open(%q, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
meta = hdr.pop("__metadata__")
print("META", meta["format"], meta["note"], n %% 8)
kinds = {"F32": "<f4", "I32": "<i4"}
for name in sorted(hdr):
    e = hdr[name]
    b, en = e["data_offsets"]
    a = np.frombuffer(raw[8 + n + b: 8 + n + en], dtype=kinds[e["dtype"]]).reshape(e["shape"])
    vals = " ".join(repr(float(v)) for v in a.reshape(-1))
    print("T", name, e["dtype"], ",".join(str(s) for s in a.shape), vals)
]==]):format(p1))
  local seen, mismatches, metaline = 0, {}, nil
  for line in out:gmatch("[^\n]+") do
    if line:match("^META") then metaline = line end
    local name, dtype, shape, vals = line:match("^T (%S+) (%S+) (%S*) ?(.*)$")
    if name then
      seen = seen + 1
      local t = tensors[name]
      local want = flat(t)
      local got = {}
      for v in vals:gmatch("%S+") do got[#got + 1] = v == "nan" and 0 / 0 or tonumber(v) end
      local same = #got == #want and dtype == (t:dtype() == "int32" and "I32" or "F32")
      for i = 1, #want do
        local w, g = want[i], got[i]
        if not (w == g or (w ~= w and g ~= g)) then same = false end
      end
      local sh = table.concat(t:shape(), ",")
      if not same or shape ~= sh then mismatches[#mismatches + 1] = name end
    end
  end
  test.ok(ok and seen == 6 and #mismatches == 0,
    "numpy reads milua's file: 6 tensors, exact values and shapes" ..
    (#mismatches > 0 and (" (mismatch: " .. table.concat(mismatches, " ") .. ")") or ""))
  if not (ok and seen == 6) then test.diag(out) end
  test.is(metaline, "META pt hi 0", "numpy sees format = pt, the note, and a header padded to 8")

  -- NumPy writes F64 / I64 / F16 / BF16, milua reads
  local p3 = tmp("np.safetensors")
  ok, out = python(([==[
import json, struct, numpy as np
d = np.array([[0.1, -2.5, 1e10], [3.0, -1e-3, 123456.789]], dtype="<f8")
i = np.array([1, -7, 2147483647, -2147483648], dtype="<i8")
h = np.array([0.5, -3.0, 65504.0], dtype="<f2")
bf = (np.array([1.0, -0.15625, 3.0], dtype="<f4").view("<u4") >> 16).astype("<u2")
parts, hdr, off = [], {"__metadata__": {"source": "numpy", "format": "pt"}}, 0
for name, arr, dt in [("d", d, "F64"), ("i", i, "I64"), ("h", h, "F16"), ("bf", bf, "BF16")]:
    b = arr.tobytes()
    hdr[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
    parts.append(b); off += len(b)
hj = json.dumps(hdr).encode()
hj += b" " * (-len(hj) %% 8)
open(%q, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(parts))
big = np.array([2**40], dtype="<i8").tobytes()
hj = json.dumps({"big": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}).encode()
open(%q, "wb").write(struct.pack("<Q", len(hj)) + hj + big)
print("written")
]==]):format(p3, tmp("np_big.safetensors")))
  test.ok(ok and out:match("written"), "numpy wrote F64, I64, F16 and BF16 tensors")
  local ok2, t, m = pcall(T.load, p3)
  test.ok(ok2, "milua loads numpy's file" .. (ok2 and "" or (": " .. tostring(t))))
  if ok2 then
    test.is(t.d:dtype(), "float32", "F64 loads as float32")
    test.is(t.d:shape(), { 2, 3 }, "F64 shape")
    local want = { 0.1, -2.5, 1e10, 3.0, -1e-3, 123456.789 }
    for k = 1, #want do want[k] = f32(want[k]) end
    test.is(flat(t.d), want, "F64 values rounded to float32")
    test.is(t.i:dtype(), "int32", "I64 loads as int32")
    test.is(flat(t.i), { 1, -7, 2147483647, -2147483648 }, "I64 values incl. int32 extremes")
    test.is(flat(t.h), { 0.5, -3.0, 65504.0 }, "F16 values")
    test.is(flat(t.bf), { 1.0, -0.15625, 3.0 }, "BF16 values")
    test.is(m, { source = "numpy", format = "pt" }, "numpy's metadata")
  end
  test.throws(function() T.load(base .. "_np_big.safetensors") end, "does not fit int32",
    "an I64 value beyond int32 is an error")
end

------------------------------------------------------------------ a reference fixture (tests/fixtures)
do
  local path = (arg[0]:match("^(.*)/lua/[^/]*$") or "tests") .. "/fixtures/causal_ln_gelu.safetensors"
  local t, m = T.load(path)
  test.is(t["embed.W_E"]:shape(), { 11, 32 }, "fixture: embed.W_E [11,32]")
  test.is(t["blocks.0.attn.W_Q"]:shape(), { 4, 32, 8 }, "fixture: blocks.0.attn.W_Q [4,32,8]")
  test.is(t["blocks.1.mlp.W_in"]:shape(), { 32, 64 }, "fixture: blocks.1.mlp.W_in [32,64]")
  test.is(t["unembed.W_U"]:shape(), { 32, 11 }, "fixture: unembed.W_U [32,11]")
  test.is(t["fixture.tokens"]:dtype(), "int32", "fixture: tokens are int32")
  test.is(m.format, "pt", "fixture: format = pt")
  test.ok(type(m.config) == "string" and json.decode(m.config).d_model == 32, "fixture: metadata has the config")
end

------------------------------------------------------------------ errors (each a Lua error; the process goes on)
test.throws(function() T.load(tmp("missing.safetensors")) end, "missing.safetensors: cannot open: No such file",
  "load: a missing file names the file and the reason")
do
  local p = tmp("corrupt.safetensors")
  write_all(p, st_bytes('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', "\0\0\0\0"))
  test.throws(function() T.load(p) end, "header is not valid JSON", "load: a corrupt header")
  write_all(p, st_bytes('{"w":{"dtype":"F32","shape":[4,8,16],"data_offsets":[0,100]}}', string.rep("\0", 100)))
  test.throws(function() T.load(p) end, "tensor 'w' data_offsets [0, 100] do not match shape [4,8,16] of F32 (2048 bytes)",
    "load: offsets that do not match the shape")
  write_all(p, read_all(p1):sub(1, 200))
  test.throws(function() T.load(p) end, "truncated file", "load: a truncated file")
  write_all(p, "abc")
  test.throws(function() T.load(p) end, "file too short", "load: a 3-byte file")
  write_all(p, st_bytes('{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', string.rep("\0", 8)))
  test.throws(function() T.load(p) end, "unsupported dtype \"C64\"", "load: an unknown dtype")
end
test.throws(function() T.load() end, "bad argument #1", "load: no path")

local p4 = tmp("err.safetensors")
test.throws(function() T.save(p4, { w = 3 }) end, "save: value for key 'w' is a number, expected a tensor",
  "save: a non-tensor value names its key")
test.throws(function() T.save(p4, { T.ones(2) }) end, "save: tensor table keys must be strings, got a number (1)",
  "save: a non-string key")
test.throws(function() T.save(p4, { w = T.ones(2) }, { k = {} }) end, "metadata value for 'k' is a table",
  "save: a bad metadata value names its key")
test.throws(function() T.save(p4, { w = T.ones(2) }, { [1] = "x" }) end, "metadata keys must be strings",
  "save: a non-string metadata key")
test.throws(function() T.save(p4, { w = T.ones(2) }, { format = "np" }) end, "\"format\" must be \"pt\"",
  "save: format other than pt")
test.throws(function() T.save(p4, { __metadata__ = T.ones(2) }) end, "reserved", "save: __metadata__ as a name")
test.throws(function() T.save(p4, "w") end, "expected a table of tensors", "save: tensors not a table")
test.throws(function() T.save(p4, {}, "meta") end, "table of metadata strings", "save: meta not a table")
test.throws(function() T.save(base .. "_no/such/dir/x.safetensors", { w = T.ones(2) }) end,
  "No such file or directory", "save: a missing directory")
do
  local closed
  do
    local c <close> = T.ones(2)
    closed = c
  end
  test.throws(function() T.save(p4, { w = closed }) end, "value for key 'w' is a closed tensor",
    "save: a closed tensor")
end
test.ok(not exists(p4), "save: failed saves create no file")
local h = io.popen("ls -a " .. base:match("^(.*)/") .. " 2>/dev/null")
local listing = h:read("a")
h:close()
local prefix = base:match("([^/]*)$")
test.ok(not listing:find(prefix .. "[^\n]*%.tmp%.", 1), "save: no temporary files left behind")
test.lives(function() T.save(p4, { w = T.ones(2) }) end, "the process survives: a later save works")

for _, p in ipairs(made) do os.remove(p) end
test.done()
