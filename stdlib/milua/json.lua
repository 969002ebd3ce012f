-- milua.json: JSON for results files and configs.
--
--   local json = require "milua.json"
--   json.encode(v [, {indent = true | n | "str"}])   -> string
--   json.decode(s)                                    -> value
--   json.write(path, v [, opts])    encode (indented unless opts.indent == false), write
--                                   path..".tmp", then rename it onto path
--   json.read(path)                 -> value
--   json.null                       the value JSON null decodes to (and encodes from)
--   json.object([t])                marks t (default a new table) to encode as an object
--                                   even when empty; decode marks empty objects this way
--
-- Encoding rules:
--   * a table whose keys are exactly 1..n is an array; an empty table is the array [];
--     any other table is an object with keys sorted (stable output). Integer keys of an
--     object become their decimal strings; other key types are an error.
--   * integers print as integers; floats print with the fewest significant digits that
--     read back to the same double, and always look like floats ("2.0", "1e+20"), so a
--     decode gives back the same Lua subtype. NaN and +-inf become null.
--   * strings must be valid UTF-8 and pass through unchanged except for '"', '\' and
--     control characters, which are escaped.
--   * a value with a totable method (a tensor) is encoded as its nested table.
--   * cycles, functions, threads and other userdata are errors naming the path ($.a[2]).
--   * tables nested deeper than 512 are an error (json.decode would not read them back).
-- Decoding accepts exactly RFC 8259 JSON: \u escapes (surrogate pairs joined, lone
-- surrogates rejected), numbers without a fraction or exponent become integers when they
-- fit, a repeated key keeps its last value. A value inside more than 512 arrays/objects
-- is an error. Errors name the byte: "json.decode: expected ',' or '}' at byte 17", and
-- the line and column too in a text of several lines.

-- The codec is the C one of nn/io/json.c (the safetensors reader's too), reached
-- through bindings/json.c; the file helpers below are plain Lua.
local core = require "milua.json_core"

local M = { encode = core.encode, decode = core.decode, null = core.null, object = core.object }

------------------------------------------------------------------------------ files

function M.write(path, v, opts)
  if type(path) ~= "string" then error("json.write: path must be a string", 2) end
  local o = { indent = true }
  if opts then for k, x in pairs(opts) do o[k] = x end end
  local text = M.encode(v, o) .. "\n"
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("json.write: cannot open " .. tmp .. ": " .. tostring(err), 2) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    error("json.write: cannot write " .. tmp .. ": " .. tostring(werr or cerr), 2)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error("json.write: cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(rerr), 2)
  end
  return true
end

function M.read(path)
  if type(path) ~= "string" then error("json.read: path must be a string", 2) end
  local f, err = io.open(path, "rb")
  if not f then error("json.read: cannot open " .. tostring(err), 2) end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(M.decode, text)
  if not ok then error("json.read: " .. path .. ": " .. tostring(v), 2) end
  return v
end

return M
