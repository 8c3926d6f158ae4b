-- Acceptance tests of the `emrflow` command, black-box from the README, "The command line":
--   emrflow run DEFINITION [--input JSON | --input-file FILE] [--name NAME]
--               [--local] [--region R] [--endpoint-url URL] [--result-file FILE] [--events]
--   emrflow validate DEFINITION
--   emrflow export DEFINITION.lua
-- Exit codes: 0 succeeded, 2 the execution failed, 1 emrflow itself could not run (bad
-- arguments, invalid definition, unreadable file). On success stdout gets the output JSON;
-- progress goes to stderr. --result-file gets one JSON object with status and output, or
-- status, error and cause.
local json = require "emrflow.json"
local asl = require "emrflow.asl"

local files = {}

local function tmp(content, suffix)
  local name = os.tmpname() .. (suffix or "")
  if content then
    local f = assert(io.open(name, "w"))
    f:write(content)
    f:close()
  end
  files[#files + 1] = name
  return name
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- `emrflow run` records in the default execution store: these runs use a throwaway one
local STORE = os.tmpname()
os.remove(STORE)
local STORE_ENV = "export EMRFLOW_STORE=" .. STORE .. ".db; "
teardown(function()
  for _, suffix in ipairs { ".db", ".db-wal", ".db-shm" } do os.remove(STORE .. suffix) end
end)

-- Runs bin/emrflow with the arguments (a list, quoted here); returns code, stdout, stderr.
local function emrflow(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = q(a) end
  local errf = tmp()
  local p = io.popen(STORE_ENV .. "lua5.4 bin/emrflow " .. table.concat(parts, " ") .. " 2>" .. errf
    .. " </dev/null")
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, read(errf) or ""
end

local OK_JSON = [[{"StartAt":"A","States":{
  "A":{"Type":"Pass","Parameters":{"x.$":"$.a","name.$":"$$.Execution.Name","id.$":"$$.Execution.Id"},
       "Next":"W"},
  "W":{"Type":"Wait","Seconds":3600,"End":true}}}]]
local FAIL_JSON = [[{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Bad","Cause":"because"}}}]]
local BARE_FAIL_JSON = [[{"StartAt":"F","States":{"F":{"Type":"Fail"}}}]]
local TIMEOUT_JSON = [[{"TimeoutSeconds":5,"StartAt":"W",
  "States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}]]
local INVALID_JSON = [[{"StartAt":"A","States":{"A":{"Type":"Bogus"},"B":{"Type":"Pass","Next":"Nowhere"}}}]]
local LUA_DEF = [[
return { StartAt = "T", States = { T = { Type = "Task", End = true,
  Resource = function(input) return { doubled = input.n * 2 } end } } }
]]
local LUA_FAILING = [[
return { StartAt = "T", States = { T = { Type = "Task", End = true,
  Resource = function() error({ Error = "Lua.Failed", Cause = "on purpose" }) end } } }
]]
local LUA_PURE = [[
return { Comment = "exportable", StartAt = "P", States = {
  P = { Type = "Pass", Result = { k = 1 }, ResultPath = "$.r", Next = "C" },
  C = { Type = "Choice", Choices = { { Variable = "$.r.k", NumericEquals = 1, Next = "S" } }, Default = "F" },
  S = { Type = "Succeed" }, F = { Type = "Fail", Error = "E" } } }
]]

describe("acceptance: emrflow CLI", function()
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  describe("run", function()
    it("exits 0 and prints only the output JSON on stdout; progress goes to stderr", function()
      local code, out, err = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":5}', "--local" }
      assert.are.equal(0, code, err)
      local v = json.decode(out) -- stdout is exactly one JSON document
      assert.are.equal(5, v.x)
      assert.is_true(#err > 0)
      assert.is_nil(err:find('"x":5', 1, true) and out:find("SUCCEEDED", 1, true))
    end)

    it("--result-file gets {status: SUCCEEDED, output}", function()
      local res = tmp()
      local code = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":[1,2]}', "--local",
        "--result-file", res }
      assert.are.equal(0, code)
      local r = json.decode(read(res))
      assert.are.equal("SUCCEEDED", r.status)
      assert.are.same({ 1, 2 }, r.output.x)
    end)

    it("--input-file reads the input; without input the input is {}", function()
      local code, out = emrflow { "run", tmp(OK_JSON, ".json"), "--input-file", tmp('{"a":"from file"}'),
        "--local" }
      assert.are.equal(0, code)
      assert.are.equal("from file", json.decode(out).x)
      local code2, out2 = emrflow { "run", tmp([[{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}]],
        ".json") }
      assert.are.equal(0, code2)
      assert.are.same({}, json.decode(out2))
      assert.are.equal("{}", (out2:gsub("%s+$", "")))
    end)

    it("--name names the execution ($$.Execution.Name and the execution ARN)", function()
      local code, out = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":1}', "--local", "--name",
        "nightly-42" }
      assert.are.equal(0, code)
      local v = json.decode(out)
      assert.are.equal("nightly-42", v.name)
      assert.truthy(v.id:match("^arn:aws:states:[%w%-]+:%d+:execution:[^:]+:nightly%-42$"), v.id)
    end)

    it("--region sets the region of the execution ARN", function()
      local code, out = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":1}', "--local", "--region",
        "eu-west-1" }
      assert.are.equal(0, code)
      assert.truthy(json.decode(out).id:find("^arn:aws:states:eu%-west%-1:"))
    end)

    it("--local runs a one-hour Wait at once (virtual clock)", function()
      local t = os.time()
      local code = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":1}', "--local" }
      assert.are.equal(0, code)
      assert.is_true(os.time() - t < 30)
    end)

    it("--endpoint-url is accepted", function()
      local code = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":1}', "--local",
        "--endpoint-url", "http://127.0.0.1:1" }
      assert.are.equal(0, code)
    end)

    it("--events prints history events to stderr, never to stdout", function()
      local code, out, err = emrflow { "run", tmp(OK_JSON, ".json"), "--input", '{"a":1}', "--local",
        "--events" }
      assert.are.equal(0, code)
      assert.truthy(err:find("PassStateEntered", 1, true))
      assert.truthy(err:find("WaitStateExited", 1, true))
      assert.is_nil(out:find("PassStateEntered", 1, true))
      assert.are.equal(1, json.decode(out).x)
    end)

    it("a failed execution exits 2 with nothing on stdout; the result file has status, error, cause",
      function()
      local res = tmp()
      local code, out, err = emrflow { "run", tmp(FAIL_JSON, ".json"), "--result-file", res }
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.truthy(err:find("Bad", 1, true))
      assert.are.same({ status = "FAILED", error = "Bad", cause = "because" }, json.decode(read(res)))
    end)

    it("a Fail without Error or Cause gives a result file without them (null)", function()
      local res = tmp()
      local code = emrflow { "run", tmp(BARE_FAIL_JSON, ".json"), "--result-file", res }
      assert.are.equal(2, code)
      local r = json.decode(read(res))
      assert.are.equal("FAILED", r.status)
      assert.is_true(r.error == nil or r.error == json.null)
      assert.is_true(r.cause == nil or r.cause == json.null)
    end)

    it("a machine TimeoutSeconds ends TIMED_OUT: exit 2, status TIMED_OUT", function()
      local res = tmp()
      local code, out = emrflow { "run", tmp(TIMEOUT_JSON, ".json"), "--local", "--result-file", res }
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.are.equal("TIMED_OUT", json.decode(read(res)).status)
    end)

    it("runs a .lua definition with Lua function tasks", function()
      local code, out = emrflow { "run", tmp(LUA_DEF, ".lua"), "--input", '{"n":21}' }
      assert.are.equal(0, code)
      assert.are.same({ doubled = 42 }, json.decode(out))
    end)

    it("a Lua task raising {Error, Cause} fails the execution: exit 2", function()
      local res = tmp()
      local code = emrflow { "run", tmp(LUA_FAILING, ".lua"), "--result-file", res }
      assert.are.equal(2, code)
      assert.are.same({ status = "FAILED", error = "Lua.Failed", cause = "on purpose" },
        json.decode(read(res)))
    end)

    it("accepts --option=value spelling", function()
      local code, out = emrflow { "run", tmp(OK_JSON, ".json"), '--input={"a":3}', "--local" }
      assert.are.equal(0, code)
      assert.are.equal(3, json.decode(out).x)
    end)
  end)

  describe("emrflow could not run: exit 1 with a clear message on stderr", function()
    local def
    setup(function() def = tmp(OK_JSON, ".json") end)
    local cases = {
      { "no command", {}, "usage" },
      { "an unknown command", { "launch", "x.json" }, "launch" },
      { "run without DEFINITION", { "run" }, "DEFINITION" },
      { "run with two definitions", function() return { "run", def, def } end, "DEFINITION" },
      { "an unknown option", function() return { "run", def, "--bogus" } end, "--bogus" },
      { "an option without its value", function() return { "run", def, "--name" } end, "--name" },
      { "--input and --input-file together", function() return { "run", def, "--input", "{}",
        "--input-file", def } end,
        "--input" },
      { "--input that is not JSON", function() return { "run", def, "--input", '{"a":' } end, "JSON" },
      { "an unreadable --input-file", function() return { "run", def, "--input-file",
        "/nonexistent/input.json" } end,
        "/nonexistent/input.json" },
      { "an unreadable DEFINITION", { "run", "/nonexistent/def.json" }, "/nonexistent/def.json" },
      { "a DEFINITION that is a directory", { "run", "/tmp" }, "/tmp" },
      { "an --input-file that is a directory", function() return { "run", def, "--input-file", "/tmp" } end,
        "/tmp" },
      { "a DEFINITION that is not JSON", function() return { "run", tmp('{"StartAt":', ".json") } end,
        "JSON" },
      { "an invalid definition (every problem, located)", function() return { "run", tmp(INVALID_JSON,
        ".json") } end,
        "/States/A/Type" },
      { "a .lua definition with a syntax error", function() return { "run", tmp("return {", ".lua") } end,
        ".lua" },
      { "a .lua definition that raises", function() return { "run", tmp('error("boom")', ".lua") } end,
        "boom" },
      { "a .lua definition that returns a non-table", function() return { "run", tmp("return 42",
        ".lua") } end,
        "table" },
      { "--scenario without --local", function() return { "run", def, "--scenario", def } end, "--local" },
      { "an execution name over 80 characters", function() return { "run", def, "--local", "--name",
        string.rep("n", 81) } end, "80" },
      { "an unwritable --result-file (found before running)", function()
        return { "run", def, "--local", "--result-file", "/nonexistent/dir/result.json" }
      end, "/nonexistent/dir" },
      { "validate without DEFINITION", { "validate" }, "DEFINITION" },
      { "validate an unreadable file", { "validate", "/nonexistent/def.json" }, "/nonexistent/def.json" },
      { "export without DEFINITION", { "export" }, "DEFINITION" },
      { "export a .lua definition that raises", function() return { "export", tmp('error("kaput")',
        ".lua") } end,
        "kaput" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local args = type(c[2]) == "function" and c[2]() or c[2]
        local code, out, err = emrflow(args)
        assert.are.equal(1, code, err)
        assert.are.equal("", out)
        assert.truthy(err:find(c[3], 1, true), "stderr should mention " .. c[3] .. ":\n" .. err)
        assert.is_nil(err:find("stack traceback", 1, true), "no Lua traceback for user errors:\n" .. err)
      end)
    end

    it("reports every problem of an invalid definition, each with its JSON pointer", function()
      local code, _, err = emrflow { "run", tmp(INVALID_JSON, ".json") }
      assert.are.equal(1, code)
      assert.truthy(err:find("/States/A/Type", 1, true))
      assert.truthy(err:find("/States/B/Next", 1, true))
    end)

    it("--help prints the usage on stdout and exits 0", function()
      local code, out = emrflow { "--help" }
      assert.are.equal(0, code)
      assert.truthy(out:find("emrflow run", 1, true))
      assert.truthy(out:find("validate", 1, true))
      assert.truthy(out:find("export", 1, true))
    end)
  end)

  describe("validate", function()
    it("exits 0 for a valid JSON or Lua definition", function()
      assert.are.equal(0, (emrflow { "validate", tmp(OK_JSON, ".json") }))
      assert.are.equal(0, (emrflow { "validate", tmp(LUA_DEF, ".lua") }))
    end)

    it("exits 1 for an invalid one, listing every problem with its pointer on stderr", function()
      local code, out, err = emrflow { "validate", tmp(INVALID_JSON, ".json") }
      assert.are.equal(1, code)
      assert.is_nil(out:find("valid", 1, true) and not out:find("invalid", 1, true))
      assert.truthy(err:find("/States/A/Type", 1, true))
      assert.truthy(err:find("/States/B/Next", 1, true))
    end)

    it("exits 1 for text that is not JSON", function()
      local code, _, err = emrflow { "validate", tmp("{nope", ".json") }
      assert.are.equal(1, code)
      assert.truthy(err:find("JSON", 1, true))
    end)

    it("does not run the definition", function()
      local marker = tmp()
      os.remove(marker)
      local code = emrflow { "validate", tmp(([[
        return { StartAt = "T", States = { T = { Type = "Task", End = true,
          Resource = function() io.open(%q, "w"):close() return 1 end } } }]]):format(marker), ".lua") }
      assert.are.equal(0, code)
      assert.is_nil(read(marker))
    end)
  end)

  describe("export", function()
    it("prints ASL JSON for a .lua definition that loads back to the same machine", function()
      local code, out = emrflow { "export", tmp(LUA_PURE, ".lua") }
      assert.are.equal(0, code)
      local v = json.decode(out)
      assert.are.equal("exportable", v.Comment)
      assert.are.same({}, asl.validate(out))
      local m = asl.load(out)
      local status, res = m:start({}, { clock = "virtual" }):wait()
      assert.are.equal("SUCCEEDED", status)
      assert.are.same({ r = { k = 1 } }, res)
    end)

    it("refuses a Lua function Resource with exit 1 and a message naming the state", function()
      local code, out, err = emrflow { "export", tmp(LUA_DEF, ".lua") }
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.truthy(err:find("/States/T/Resource", 1, true), err)
    end)

    it("exits 1 for an invalid definition", function()
      local code, _, err = emrflow { "export",
        tmp("return { StartAt = 'A', States = { A = { Type = 'Pass' } } }",
        ".lua") }
      assert.are.equal(1, code)
      assert.truthy(err:find("/States/A", 1, true))
    end)
  end)
end)

-- Issue #14: help, version, stdin, located JSON errors, pretty or compact output.
describe("acceptance: the command line a user expects", function()
  -- Runs a shell command line; returns code, stdout, stderr.
  local function sh(cmdline)
    local errf = tmp()
    local p = io.popen(STORE_ENV .. cmdline .. " 2>" .. errf)
    local out = p:read("a")
    local _, _, code = p:close()
    return code, out, read(errf) or ""
  end

  it("--help lists every command, the durable store's and the AWS ones included, with a line each", function()
    local code, out = emrflow { "--help" }
    assert.are.equal(0, code)
    for _, name in ipairs { "run", "validate", "export", "graph", "resume", "redrive", "executions",
                            "describe",
                            "history", "deploy", "policy", "start", "stop" } do
      assert.matches("\n  " .. name .. " +%a", out)
    end
  end)

  for _, cmd in ipairs { "run", "validate", "export", "graph" } do
    it("emrflow " .. cmd .. " --help describes each option (exit 0, on stdout)", function()
      local code, out, err = emrflow { cmd, "--help" }
      assert.are.equal(0, code, err)
      assert.matches("^usage: emrflow " .. cmd, out)
      local cli = require "emrflow.cli"
      for _, o in ipairs(cli.commands[cmd].options) do
        assert.matches("\n  %-%-" .. o.name:gsub("%-", "%%-") .. "[^\n]*%S", out)
      end
      -- -h is the same
      local _, out2 = emrflow { cmd, "-h" }
      assert.are.equal(out, out2)
    end)
  end

  it("emrflow help COMMAND is COMMAND --help; an unknown one exits 1", function()
    local code, out = emrflow { "help", "graph" }
    assert.are.equal(0, code)
    assert.are.equal(select(2, emrflow { "graph", "--help" }), out)
    local code2, out2, err2 = emrflow { "help", "frobnicate" }
    assert.are.equal(1, code2)
    assert.are.equal("", out2)
    assert.matches("unknown command 'frobnicate'", err2, 1, true)
  end)

  it("run --help lists the documented options of run", function()
    local _, out = emrflow { "run", "--help" }
    for _, o in ipairs { "input", "input-file", "name", "local", "scenario", "region", "endpoint-url",
                         "result-file", "events", "progress", "quiet", "compact", "poll-rate" } do
      assert.matches("\n  %-%-" .. o:gsub("%-", "%%-") .. "[ \n]", out)
    end
  end)

  it("--version prints the version from emrflow.version", function()
    local code, out = emrflow { "--version" }
    assert.are.equal(0, code)
    assert.are.equal("emrflow " .. require("emrflow.version").version .. "\n", out)
  end)

  it("- reads the DEFINITION from stdin (JSON or Lua)", function()
    local code, out = sh("printf '%s' " .. q(OK_JSON) .. " | lua5.4 bin/emrflow run - --input '{\"a\":7}' "
      .. "--clock virtual")
    assert.are.equal(0, code)
    assert.are.equal(7, json.decode(out).x)
    local code2, out2 = sh("printf '%s' " .. q(LUA_DEF) .. " | lua5.4 bin/emrflow run - --input '{\"n\":4}'")
    assert.are.equal(0, code2)
    assert.are.same({ doubled = 8 }, json.decode(out2))
  end)

  it("--input - and --input-file - read the input from stdin", function()
    local def = tmp(OK_JSON, ".json")
    for _, opt in ipairs { "--input", "--input-file" } do
      local code, out = sh("echo '{\"a\":\"in\"}' | lua5.4 bin/emrflow run " .. q(def) .. " " .. opt
        .. " - --clock virtual")
      assert.are.equal(0, code)
      assert.are.equal("in", json.decode(out).x)
    end
    local code, _, err = sh("echo '{}' | lua5.4 bin/emrflow run - --input -")
    assert.are.equal(1, code)
    assert.matches("cannot both be -", err, 1, true)
  end)

  it("JSON errors name the file, the line and the column beside the byte offset", function()
    local def = tmp('{\n  "StartAt": "A",\n  "States": {\n    "A": {"Type": "Pass" "End": true}\n  }\n}\n',
      ".json")
    local code, out, err = emrflow { "run", def }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("emrflow: " .. def .. " is not valid JSON: expected ',' or '}', found '\"' at line 4, "
      .. "column 26 (byte 60)\n", err)
    local input = tmp('{"a": [1,\n2,,3]}', ".json")
    local code2, _, err2 = emrflow { "run", tmp(OK_JSON, ".json"), "--input-file", input }
    assert.are.equal(1, code2)
    assert.matches("--input-file " .. input .. " is not valid JSON: expected a JSON value, found ',' "
      .. "at line 2, column 3 (byte 13)", err2, 1, true)
    local code3, _, err3 = emrflow { "validate", def }
    assert.are.equal(1, code3)
    assert.matches(def .. " is not valid JSON: .* at line 4, column 26", err3)
  end)

  it("prints the output pretty on a terminal, compact when piped or with --compact", function()
    if not os.execute("command -v script >/dev/null 2>&1") then return pending("needs script(1)") end
    local def = tmp([[{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"a":[1,2],"b":{}},"End":true}}}]],
      ".json")
    local function on_tty(args)
      local p = io.popen(STORE_ENV .. "script -qec "
        .. q("lua5.4 bin/emrflow run " .. def .. args .. " 2>/dev/null")
        .. " /dev/null")
      local text = p:read("a"):gsub("\r\n", "\n")
      p:close()
      return text
    end
    assert.are.equal('{\n  "a": [\n    1,\n    2\n  ],\n  "b": {}\n}\n', on_tty(""))
    assert.are.equal('{"a":[1,2],"b":{}}\n', on_tty(" --compact"))
    local _, piped = emrflow { "run", def }
    assert.are.equal('{"a":[1,2],"b":{}}\n', piped)
  end)

  it("an unknown option points at the command's --help", function()
    local code, _, err = emrflow { "validate", tmp(OK_JSON, ".json"), "--bogus" }
    assert.are.equal(1, code)
    assert.matches("unknown option --bogus for 'validate' (see emrflow validate --help)", err, 1, true)
  end)
end)
