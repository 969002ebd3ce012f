-- Every experiment script refuses bad command lines the same way: an unknown flag, a value
-- of the wrong type, zero or negative steps, an --out that cannot be written. Each gives a
-- one-line message naming the problem on stderr, a non-zero exit, and writes no results.json.
-- The scripts are found by listing experiments/*.lua, so a new one is covered when it lands.
local test = require "milua.test"

local BIN = test.milua()
local dir = test.tmpdir()

local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1 1>/dev/null; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return out:gsub("exit=%d+%s*$", ""), code
end

local scripts = {}
local ls = assert(io.popen("ls experiments/*.lua"))
for line in ls:lines() do scripts[#scripts + 1] = line end
ls:close()
test.ok(#scripts >= 4, "experiment scripts found (" .. #scripts .. ")")

-- a file where --out wants a directory: it cannot be created
local blocker = dir .. "/a_file"
io.open(blocker, "w"):close()

local cases = {
  { "--bogus-flag", "bogus", "an unknown flag" },
  { "--seed=abc", "seed", "a seed that is not a number" },
  { "--steps 0", "steps", "zero steps" },
  { "--steps -5", "steps", "negative steps" },
  { "--out " .. blocker .. "/sub", "out", "an --out that cannot be created" },
}
for _, script in ipairs(scripts) do
  for i, c in ipairs(cases) do
    local out_dir = dir .. "/" .. script:gsub("[^%w]", "_") .. "_" .. i
    local args = c[1]:find("^%-%-out") and c[1] or (c[1] .. " --out " .. out_dir)
    local err, code = run(BIN .. " " .. script .. " " .. args)
    local lines = select(2, err:gsub("\n", "\n"))
    test.ok(code ~= nil and code ~= 0, script .. ", " .. c[3] .. ": a non-zero exit (" .. tostring(code) .. ")")
    test.ok(lines == 1 and err:find(c[2], 1, true) ~= nil and not err:find("stack traceback", 1, true),
      script .. ", " .. c[3] .. ": one line naming '" .. c[2] .. "'" .. (lines == 1 and "" or (": " .. err)))
    test.ok(io.open(out_dir .. "/results.json", "r") == nil, script .. ", " .. c[3] .. ": no results.json")
  end
end
os.execute("rm -rf " .. dir)
test.done()
