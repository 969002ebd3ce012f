-- milua.json on the C codec (nn/io/json.c through bindings/json.c): what tests/lua/cli_json.lua
-- does not cover. Python's json module is the independent reader and writer.
local test = require "milua.test"
local json = require "milua.json"
local T = require "milua.tensor"

------------------------------------------------------------------------------ numbers

test.is(json.encode({ 5e-324, 2.5e-320, 2^53, 2^53 + 2, 1e16, 9.1e15, 1e15 + 0.5, math.maxinteger }),
  "[5e-324,2.5e-320,9007199254740992.0,9007199254740994.0,1e+16,9.1e+15,1000000000000000.5,9223372036854775807]",
  "json: subnormals, floats around 2^53 and the largest integer")
test.is(json.decode("9223372036854775807"), math.maxinteger, "json: the largest integer decodes exactly")
test.is(math.type(json.decode("9223372036854775808")), "float", "json: one past it becomes a float")
test.is(json.decode("-0.0"), -0.0, "json: -0.0")
test.is(1 / json.decode("-0.0"), -math.huge, "json: -0.0 keeps its sign")

-- Python reads what we write and writes back what it read: every double survives both ways
do
  local xs, s = {}, 0x2545F491
  for i = 1, 400 do
    s = s * 6364136223846793005 + 1442695040888963407
    local x = string.unpack("<d", string.pack("<i8", s))
    if x ~= x or x == math.huge or x == -math.huge then x = i + 0.5 end
    xs[i] = x
  end
  xs[#xs + 1] = 5e-324
  xs[#xs + 1] = -2.2250738585072014e-308
  local path = os.tmpname()
  json.write(path, { xs = xs, n = 7, s = "é\0\127\"" })
  local p = assert(io.popen("/usr/bin/python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); "
    .. "print(json.dumps(d)); print(sum(isinstance(x, float) for x in d[\"xs\"]), type(d[\"n\"]).__name__, "
    .. "[ord(c) for c in d[\"s\"]])' " .. path))
  local back = p:read("l")
  local info = p:read("l")
  p:close()
  os.remove(path)
  test.ok(back ~= nil, "json: python3 read our file")
  local v = json.decode(back or "null")
  local same = type(v) == "table" and #v.xs == #xs
  for i = 1, #xs do same = same and v.xs[i] == xs[i] and math.type(v.xs[i]) == "float" end
  test.ok(same, "json: " .. #xs .. " doubles written by milua, read and rewritten by Python, read back exactly")
  test.is(info, #xs .. " int [233, 0, 127, 34]", "json: Python sees floats as floats, 7 as int, the string's code points")
end

------------------------------------------------------------------------------ strings

test.is(json.decode(json.encode("a\0b\127c")), "a\0b\127c", "json: NUL and DEL survive a round trip")
test.is(json.decode('"\127"'), "\127", "json: a raw DEL in a string is valid JSON (RFC 8259)")
test.is(json.encode("\u{10FFFF}\u{7FF}"), '"\u{10FFFF}\u{7FF}"', "json: UTF-8 passes through unescaped")
test.throws(function() json.encode({ ["\255"] = 1 }) end, 'json.encode: string at $["\255"] is not valid UTF-8',
  "json: a key that is not UTF-8, named by its path")

------------------------------------------------------------------------------ layout

test.is(json.encode({ t = T.tensor({ { 1, 2 }, { 3, 4 } }, "int32"), v = T.tensor({ 0.5 }) }, { indent = true }),
  '{\n  "t": [\n    [1, 2],\n    [3, 4]\n  ],\n  "v": [0.5]\n}', "json: tensors indent like the tables they are")
test.is(json.encode({ a = { 1 } }, { indent = "\t" }), '{\n\t"a": [1]\n}', "json: indent by a string")
test.is(json.encode({ a = { 1 } }, { indent = 0 }), '{"a":[1]}', "json: indent 0 is compact")
test.is(json.encode({ a = json.object(), b = {} }, { indent = true }), '{\n  "a": {},\n  "b": []\n}',
  "json: empty object and empty array when indenting")
test.throws(function() json.encode(1, { indent = 1000000000 }) end, "indent of 1000000000 spaces is too wide",
  "json: an absurd indent is refused")
test.throws(function() json.encode(1, { indent = 2.0 }) end, "indent must be true, a number of spaces or a string",
  "json: a float indent is refused")

------------------------------------------------------------------------------ paths and Lua values

test.throws(function() json.encode({ ["a b"] = { print } }) end, 'json.encode: cannot encode a function at $["a b"][1]',
  "json: a key that is not a name is quoted in the path")
test.throws(function() json.encode({ [3] = { x = print }, y = 1 }) end, 'cannot encode a function at $["3"].x',
  "json: an integer key shows as its decimal string")
test.throws(function() json.encode({ [1.5] = 1 }) end, "key of type number in object at $", "json: a float key is refused")
test.is(json.encode(setmetatable({ 1, 2 }, { __index = function() error("no such field") end })), "[1,2]",
  "json: a metatable whose __index raises is not a tensor")
test.throws(function() json.encode({ x = setmetatable({}, { __index = { totable = function() error("broken totable") end } }) }) end,
  "broken totable", "json: an error in totable reaches the caller")
do
  local t = {}
  test.is(json.object(t), t, "json.object returns its table")
  test.is(json.encode(t), "{}", "json.object(t): t encodes as an object")
  test.throws(function() json.object(5) end, "table expected, got number", "json.object refuses a number")
  test.is(tostring(json.null), "null", "json.null prints as null")
end

------------------------------------------------------------------------------ depth

local function nested(n)
  local root = {}
  local t = root
  for _ = 2, n do t[1] = {}; t = t[1] end
  return root
end
do
  local text = json.encode(nested(512))
  test.is(#text, 1024, "json: 512 nested tables encode")
  test.lives(function() json.decode(text) end, "json: and decode back")
  test.throws(function() json.encode(nested(513)) end, "json.encode: tables nested deeper than 512",
    "json: deeper tables are refused, not overflowing the C stack")
  test.lives(function() json.decode(("["):rep(513) .. ("]"):rep(513)) end, "json: 513 nested empty arrays decode")
  test.throws(function() json.decode(("["):rep(514) .. ("]"):rep(514)) end, "json.decode: nesting deeper than 512 at byte 514",
    "json: one more level is refused where it starts")
end

------------------------------------------------------------------------------ errors

test.throws(function() json.decode('{\n  "a": 1,\n  "b": tru\n}') end,
  'json.decode: unexpected "t" at byte 20 (line 3, column 8)', "json: a multi-line text gets line and column")
test.throws(function() json.decode('"\\\n"') end, "json.decode: invalid escape \\ before control character 10 at byte 2",
  "json: a backslash before a control character")
test.throws(function() json.decode('"\\') end, "json.decode: invalid escape \\ at byte 2", "json: a backslash at the end")
do
  local ok, msg = pcall(function() local v = json.decode(42); return v end)
  test.ok(not ok and msg:find("json_codec.lua:%d+: json.decode: expected a string, got number"),
    "json: a bad argument is reported at the caller's line (" .. tostring(msg) .. ")")
end

test.done()
