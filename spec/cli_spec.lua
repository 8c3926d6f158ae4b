-- The emrflow command line: run, validate, export, exit codes and --result-file.
local json = require "emrflow.json"

local function tmpfile(content, suffix)
  local name = os.tmpname() .. (suffix or "")
  local f = assert(io.open(name, "w"))
  f:write(content)
  f:close()
  return name
end

local function sh(cmdline)
  local errf = os.tmpname()
  local p = io.popen(cmdline .. " 2>" .. errf)
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errf)
  local err = f:read("a")
  f:close()
  os.remove(errf)
  return code, out, err
end

local function emrflow(args)
  return sh("lua5.4 bin/emrflow " .. args)
end

describe("emrflow CLI", function()
  local files = {}
  local function file(content, suffix)
    local n = tmpfile(content, suffix)
    files[#files + 1] = n
    return n
  end
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  local ok_json = [[{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"x.$":"$.a"},"Next":"W"},
    "W":{"Type":"Wait","Seconds":3600,"End":true}}}]]
  local fail_json = [[{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Bad","Cause":"because"}}}]]

  it("run prints the output and exits 0; --result-file gets the status and output", function()
    local def = file(ok_json, ".json")
    local res = os.tmpname()
    files[#files + 1] = res
    local code, out = emrflow("run " .. def .. " --input '{\"a\":5}' --clock virtual --result-file " .. res)
    assert.are.equal(0, code)
    assert.are.same({ x = 5 }, json.decode(out))
    local f = io.open(res)
    assert.are.same({ status = "SUCCEEDED", output = { x = 5 } }, json.decode(f:read("a")))
    f:close()
  end)

  it("a failed execution exits 2 and the result file carries error and cause", function()
    local def = file(fail_json, ".json")
    local res = os.tmpname()
    files[#files + 1] = res
    local code, out, err = emrflow("run " .. def .. " --result-file " .. res)
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("FAILED", 1, true))
    local f = io.open(res)
    assert.are.same({ status = "FAILED", error = "Bad", cause = "because" }, json.decode(f:read("a")))
    f:close()
  end)

  it("runs .lua definitions with function resources and reads --input-file", function()
    local def = file([[return { StartAt = "T", States = { T = { Type = "Task",
      Resource = function(input) return { doubled = input.n * 2 } end, End = true } } }]], ".lua")
    local input = file('{"n":21}', ".json")
    local code, out = emrflow("run " .. def .. " --input-file " .. input .. " --name my-run")
    assert.are.equal(0, code)
    assert.are.same({ doubled = 42 }, json.decode(out))
  end)

  it("--events prints history events to stderr", function()
    local def = file(ok_json, ".json")
    local code, _, err = emrflow("run " .. def .. " --input '{\"a\":1}' --clock virtual --events")
    assert.are.equal(0, code)
    assert.truthy(err:find("PassStateEntered", 1, true))
    assert.truthy(err:find("ExecutionSucceeded", 1, true))
  end)

  local bad_runs = {
    { "no definition", "run", "run takes one DEFINITION" },
    { "an unknown option", "run x.json --bogus", "unknown option --bogus" },
    { "a missing option value", "run x.json --input", "needs a value" },
    { "bad input JSON", "run x.json --input '{'", "not valid JSON" },
    { "an unreadable definition", "run /nonexistent/def.json", "cannot read" },
    { "an unknown command", "frobnicate", "unknown command" },
  }
  for _, c in ipairs(bad_runs) do
    it("exits 1 with a clear message for " .. c[1], function()
      local code, _, err = emrflow(c[2])
      assert.are.equal(1, code)
      assert.truthy(err:find(c[3], 1, true), err)
    end)
  end

  it("validate exits 0 for a valid definition and 1 with located problems", function()
    local good = file(ok_json, ".json")
    local code, out = emrflow("validate " .. good)
    assert.are.equal(0, code)
    assert.truthy(out:find("valid", 1, true))
    local bad = file([[{"StartAt":"X","States":{"A":{"Type":"Bogus"}}}]], ".json")
    local code2, _, err = emrflow("validate " .. bad)
    assert.are.equal(1, code2)
    assert.truthy(err:find("/StartAt: ", 1, true))
    assert.truthy(err:find("/States/A/Type: unknown state type", 1, true))
  end)

  it("export prints ASL JSON that validates and runs the same", function()
    local def = file([[return { StartAt = "A", States = { A = { Type = "Pass", Result = { k = 1 },
      ResultPath = "$.r", End = true } } }]], ".lua")
    local code, out = emrflow("export " .. def)
    assert.are.equal(0, code)
    local exported = file(out, ".json")
    assert.are.equal(0, (emrflow("validate " .. exported)))
    local c2, o2 = emrflow("run " .. exported .. " --input '{\"a\":1}'")
    assert.are.equal(0, c2)
    assert.are.same({ a = 1, r = { k = 1 } }, json.decode(o2))
  end)

  it("export refuses Lua function resources unless --placeholder-arns", function()
    local def = file([[return { StartAt = "T", States = { T = { Type = "Task", Resource = function() end,
      End = true } } }]], ".lua")
    local code, _, err = emrflow("export " .. def)
    assert.are.equal(1, code)
    assert.truthy(err:find("Lua function", 1, true))
    local c2, out = emrflow("export " .. def .. " --placeholder-arns --compact")
    assert.are.equal(0, c2)
    assert.truthy(out:find("arn:aws:states:::emrflow:lua-function", 1, true))
  end)

  it("parses options from a table so integrations can add their own", function()
    local cli = require "emrflow.cli"
    local opts, pos = cli.parse("run", { "run", "def.json", "--input={}", "--local", "--poll-rate", "5" }, 2)
    assert.are.same({ input = "{}", ["local"] = true, ["poll-rate"] = "5" }, opts)
    assert.are.same({ "def.json" }, pos)
  end)
end)
