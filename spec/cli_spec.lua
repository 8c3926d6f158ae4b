-- The emrflow command line: run, validate, export, exit codes and --result-file.
local json = require "emrflow.json"

local function tmpfile(content, suffix)
  local name = os.tmpname() .. (suffix or "")
  local f = assert(io.open(name, "w"))
  f:write(content)
  f:close()
  return name
end

-- `emrflow run` records in the default execution store: these runs use a throwaway one
local STORE = os.tmpname()
os.remove(STORE)
local STORE_ENV = "export EMRFLOW_STORE=" .. STORE .. ".db; "
teardown(function()
  for _, suffix in ipairs { ".db", ".db-wal", ".db-shm" } do os.remove(STORE .. suffix) end
end)

local sh = require "support.sh"

local function emrflow(args)
  return sh(STORE_ENV .. "lua5.4 bin/emrflow " .. args)
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

  it("run refuses to start when a Task resource resolves to nothing, naming each and the remedies", function()
    local def = file([[{"StartAt":"Notify","States":{
      "Notify":{"Type":"Task","Resource":"arn:aws:states:::sns:publish",
                "Parameters":{"Message":"hi"},"Next":"Fn"},
      "Fn":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f:live",
            "End":true}}}]],
      ".json")
    local code, out, err = emrflow("run " .. def)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("Notify: arn:aws:states:::sns:publish", err, 1, true)
    assert.matches("Fn: arn:aws:lambda:us-east-1:123456789012:function:f:live", err, 1, true)
    assert.matches("handler", err, 1, true)
    assert.matches("--mock-config", err, 1, true)
    assert.is_nil(err:find("started", 1, true))
  end)

  it("run --name follows Step Functions' execution name rule (exit 1, nothing runs)", function()
    local def = file(ok_json, ".json")
    for _, bad in ipairs { "'a b'", "'a:b'", "'a/b'", string.rep("n", 81) } do
      local code, out, err = emrflow("run " .. def .. " --no-store --clock virtual --name " .. bad)
      assert.are.equal(1, code, bad)
      assert.are.equal("", out)
      assert.matches("--name must be 1 to 80 characters", err, 1, true)
    end
  end)

  it("a .lua definition that raises a table is reported by its content, never a Lua address", function()
    local def = file("error({ reason = 'no config' })", ".lua")
    local code, _, err = emrflow("validate " .. def)
    assert.are.equal(1, code)
    assert.matches('{"reason":"no config"}', err, 1, true)
    assert.is_nil(err:find("table: 0x", 1, true))
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
    assert.truthy(out:find('"arn:aws:lambda:us-east-1:123456789012:function:emrflow-T"', 1, true))
  end)

  it("parses options from a table so integrations can add their own", function()
    local cli = require "emrflow.cli"
    local opts, pos = cli.parse("run", { "run", "def.json", "--input={}", "--local", "--poll-rate", "5" }, 2)
    assert.are.same({ input = "{}", ["local"] = true, ["poll-rate"] = "5" }, opts)
    assert.are.same({ "def.json" }, pos)
  end)
end)

-- In-process: the extension contract (contracts §1) with fake extension modules.
describe("emrflow.cli extensions", function()
  local cli = require "emrflow.cli"
  local NAMES = { "emrflow.cli.mocks", "emrflow.cli.store", "emrflow.cli.remote" }
  local saved_loaded, saved_preload = {}, {}

  -- A writable stream collecting what is written.
  local function sink()
    local s = { parts = {} }
    function s:write(...)
      for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
      return self
    end
    function s:text() return table.concat(self.parts) end
    function s.flush() end
    return s
  end
  local function source(text)
    local s = { text = text }
    function s:read() local t = self.text; self.text = nil; return t end
    return s
  end
  local function run(argv, stdin)
    local out, err = sink(), sink()
    if argv[1] == "run" then
      -- not recorded in the user's default store (when the store's extension is there)
      cli.load_extensions()
      local skip = true
      for _, o in ipairs(cli.all_run_options()) do skip = skip and o.name ~= "no-store" end
      for _, a in ipairs(argv) do skip = skip or a == "--store" or a == "--no-store" end
      if not skip then argv[#argv + 1] = "--no-store" end
    end
    local code = cli.execute(argv, { stdin = source(stdin or ""), stdout = out, stderr = err })
    return code, out:text(), err:text()
  end

  local calls
  before_each(function()
    calls = {}
    for _, n in ipairs(NAMES) do
      saved_loaded[n], saved_preload[n] = package.loaded[n], package.preload[n]
      package.loaded[n] = nil
      package.preload[n] = function() error("module '" .. n .. "' not found:\n\tno file", 0) end
    end
    package.preload["emrflow.cli.store"] = function()
      return {
        commands = {
          hello = {
            summary = "say hello from an extension",
            usage = "emrflow hello NAME [--greeting WORD]",
            options = { { name = "greeting", arg = "WORD", help = "the word to greet with" },
                        { name = "tag", arg = "K=V", help = "repeatable", repeated = true } },
            run = function(opts, positional, c, io_)
              calls[#calls + 1] = { opts = opts, positional = positional, cli = c }
              if positional[1] == "nobody" then c.fail("nobody to greet") end
              io_.stdout:write((opts.greeting or "hello") .. " " .. tostring(positional[1]) .. "\n")
              return 0
            end,
          },
        },
        run_options = { { name = "shout", help = "a run option from an extension" },
                        { name = "refuse", help = "make the start hook refuse" } },
        start_hook = function(opts, start, c, io_)
          calls[#calls + 1] = { hook = true, opts = opts, start = start, cli = c, io = io_ }
          if opts.refuse then c.fail("refused by the extension") end
          if opts.shout then start.handlers = { ["arn:aws:states:::emr-containers:*"] = function() end } end
        end,
      }
    end
    cli.reset_extensions()
  end)

  after_each(function()
    for _, n in ipairs(NAMES) do
      package.loaded[n], package.preload[n] = saved_loaded[n], saved_preload[n]
    end
    cli.reset_extensions()
  end)

  it("--help lists the built-in commands, the extensions' and every documented command", function()
    local code, out = run { "--help" }
    assert.are.equal(0, code)
    for _, name in ipairs { "run", "validate", "export", "graph", "hello", "resume", "redrive", "executions",
                            "describe", "history", "deploy", "policy", "start", "stop" } do
      assert.matches("\n  " .. name .. " +%S", out)
    end
    assert.matches("say hello from an extension", out, 1, true)
    -- the store extension is (fake-)present: its promised commands it does not bring, and the
    -- remote ones, say they are not available
    assert.matches("deploy +create or update[^\n]*%(not available in this build%)", out)
    assert.is_nil(out:find("hello[^\n]*not available"))
  end)

  it("a documented command whose extension is absent exits 1 saying so", function()
    local code, out, err = run { "deploy", "x.json", "--name", "n" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("emrflow: 'deploy' is not available in this build", err, 1, true)
    assert.matches("emrflow.cli.remote", err, 1, true)
  end)

  it("CMD --help of an absent documented command prints its usage and says it is not available", function()
    local code, out = run { "deploy", "--help" }
    assert.are.equal(0, code)
    assert.matches("^usage: emrflow deploy DEFINITION", out)
    assert.matches("(not available in this build)", out, 1, true)
  end)

  it("runs an extension's command with its options, positional args, the cli module and io", function()
    local code, out = run { "hello", "world", "--greeting", "hi", "--tag", "a=1", "--tag=b=2" }
    assert.are.equal(0, code)
    assert.are.equal("hi world\n", out)
    assert.are.same({ "world" }, calls[1].positional)
    assert.are.same({ "a=1", "b=2" }, calls[1].opts.tag)
    assert.are.equal(cli, calls[1].cli)
  end)

  it("CMD --help describes each option of an extension's command", function()
    local code, out = run { "hello", "--help" }
    assert.are.equal(0, code)
    assert.matches("usage: emrflow hello NAME", out, 1, true)
    assert.matches("\n  %-%-greeting WORD +the word to greet with\n", out)
    assert.matches("\n  %-h, %-%-help +show this help\n", out)
  end)

  it("cli.fail in an extension exits 1 with the message", function()
    local code, _, err = run { "hello", "nobody" }
    assert.are.equal(1, code)
    assert.are.equal("emrflow: nobody to greet\n", err)
  end)

  it("run accepts the extensions' run_options and lists them in run --help", function()
    local _, out = run { "run", "--help" }
    assert.matches("\n  %-%-shout +a run option from an extension\n", out)
    local def = [[{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}]]
    local code, stdout = run({ "run", "-", "--shout", "--compact" }, def)
    assert.are.equal(0, code)
    assert.are.equal("{}\n", stdout)
    local hook = calls[#calls]
    assert.is_true(hook.hook and hook.opts.shout)
    -- the hooks learn the definition and the machine name it gives
    assert.are.equal("-", hook.start.definition_path)
    assert.are.equal("emrflow-machine", hook.start.machine_name)
    local start = cli.start_options({ definition = "/x/nightly flow.asl.json", quiet = true }, {})
    assert.are.equal("/x/nightly flow.asl.json", start.definition_path)
    assert.are.equal("nightly-flow.asl", start.machine_name)
    assert.are.equal(cli, hook.cli)
    assert.is_table(hook.io.stdout)
  end)

  it("a start hook's cli.fail stops run with exit 1 before any state runs", function()
    local ran = false
    package.loaded["cli_spec_probe"] = { ran = function() ran = true end }
    local def = [[return { StartAt = "T", States = { T = { Type = "Task", End = true,
      Resource = function() require("cli_spec_probe").ran() return {} end } } }]]
    local code, out, err = run({ "run", "-", "--refuse", "--events" }, def)
    package.loaded["cli_spec_probe"] = nil
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("emrflow: refused by the extension\n", err)
    assert.is_false(ran)
  end)

  it("a missing extension is skipped silently; a broken one with a warning, the rest still works", function()
    package.preload["emrflow.cli.mocks"] = function() error("boom in the extension") end
    cli.reset_extensions()
    local code, out, err = run { "--version" }
    assert.are.equal(0, code)
    assert.matches("^emrflow %d+%.%d+%.%d+", out)
    assert.matches("emrflow: warning: extension emrflow.cli.mocks failed to load: boom in the extension", err,
      1, true)
    assert.is_nil(err:find("store", 1, true))
  end)

  it("cli.read_definition reads JSON or Lua from a file or stdin (-), naming the machine", function()
    local def, name, text = cli.read_definition("-", { stdin = source(' {"StartAt":"P","States":{}}') })
    assert.are.equal(' {"StartAt":"P","States":{}}', def)
    assert.are.equal("emrflow-machine", name)
    assert.are.equal(def, text)
    local ldef = cli.read_definition("-", { stdin = source('return { StartAt = "P", States = {} }') })
    assert.are.equal("P", ldef.StartAt)
    local path = os.tmpname() .. "-my-flow.json"
    local f = assert(io.open(path, "w"))
    f:write('{"StartAt":"P",\n "States":{"P":{"Type":"Pass","End":true,}}}')
    f:close()
    local ok, err = pcall(cli.read_definition, path, {})
    os.remove(path)
    assert.is_false(ok)
    assert.are.equal(path .. " is not valid JSON: expected a string key, found '}' at line 2, column 42 "
      .. "(byte 58)", err.message)
    assert.are.equal("emrflow: " .. err.message, tostring(err))
  end)

  it("cli.read_input: --input JSON, --input-file FILE, - for stdin, {} by default", function()
    assert.are.same({ a = 1 }, cli.read_input({ input = '{"a":1}' }, {}))
    assert.are.same({ b = 2 }, cli.read_input({ input = "-" }, { stdin = source('{"b":2}') }))
    assert.are.same({ c = 3 }, cli.read_input({ ["input-file"] = "-" }, { stdin = source('{"c":3}') }))
    local empty = cli.read_input({}, {})
    assert.are.same({}, empty)
    assert.is_true(json.is_object(empty))
    local ok, err = pcall(cli.read_input, { input = '{"a":\n tru}' }, {})
    assert.is_false(ok)
    assert.matches("^%-%-input is not valid JSON: .* at line 2, column 2 %(byte 8%)$", err.message)
  end)

  it("cli.start_options applies run's options and every start hook; cli.finish drives to the end", function()
    local start = cli.start_options({ ["local"] = true, name = "n1", ["poll-rate"] = "4", shout = true,
                                      quiet = true }, {})
    assert.are.equal("virtual", start.clock)
    assert.are.equal("n1", start.name)
    assert.are.same({ rate = 4 }, start.poll)
    assert.is_function(start.emr.call)
    assert.is_function(start.handlers["arn:aws:states:::emr-containers:*"])
    local asl = require "emrflow.asl"
    local m = asl.load({ StartAt = "W", States = { W = { Type = "Wait", Seconds = 3600, Next = "P" },
      P = { Type = "Pass", Result = { b = { 1, 2 } }, End = true } } })
    local out, err = sink(), sink()
    local code = cli.finish(m:start({}, start), { pretty = true }, { stdout = out, stderr = err })
    assert.are.equal(0, code)
    assert.are.equal('{\n  "b": [\n    1,\n    2\n  ]\n}\n', out:text())
    local out2 = sink()
    local failing = asl.load({ StartAt = "F", States = { F = { Type = "Fail", Error = "E", Cause = "c" } } })
    local x = failing:start({}, { clock = "virtual" })
    assert.are.equal(2, cli.finish(x, {}, { stdout = out2, stderr = sink() }))
    assert.are.equal("", out2:text())
  end)

  it("validate: warnings keep exit 0, --strict makes them errors (exit 1)", function()
    local asl = require "emrflow.asl"
    local real = asl.validate
    asl.validate = function()
      return { { path = "/States/J/Parameters/Name", message = "fails the pattern", severity = "warning" } }
    end
    local def = [[{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}]]
    local ok, code, out, err = pcall(run, { "validate", "-" }, def)
    local ok2, code2, _, err2 = pcall(run, { "validate", "-", "--strict" }, def)
    asl.validate = real
    assert.is_true(ok and ok2)
    assert.are.equal(0, code)
    assert.are.equal("stdin: valid\n", out)
    assert.are.equal("stdin: warning: /States/J/Parameters/Name: fails the pattern\n", err)
    assert.are.equal(1, code2)
    assert.matches("/States/J/Parameters/Name: ", err2, 1, true)
    assert.matches("fails the pattern", err2, 1, true)
  end)

  it("validate --remote calls the remote extension's validate_remote, or says it is not available", function()
    local def = [[return { StartAt = "P", States = { P = { Type = "Pass", End = true } } }]]
    local code, _, err = run({ "validate", "-", "--remote" }, def)
    assert.are.equal(1, code)
    assert.matches("validate --remote is not available in this build", err, 1, true)
    local got
    package.preload["emrflow.cli.remote"] = function()
      return { validate_remote = function(text, opts, c, io_)
        got = { text = text, opts = opts, cli = c }
        io_.stdout:write("remote says ok\n")
        return 0
      end }
    end
    cli.reset_extensions()
    local code2, out2 = run({ "validate", "-", "--remote", "--region", "eu-west-1" }, def)
    assert.are.equal(0, code2)
    assert.are.equal("remote says ok\n", out2)
    -- a Lua definition goes as its ASL JSON
    assert.are.equal("P", json.decode(got.text).StartAt)
    assert.are.equal("eu-west-1", got.opts.region)
    assert.are.equal(cli, got.cli)
  end)

  it("cli.finish drives anything shaped like an execution (a remote one, say)", function()
    local steps = 0
    local remote = {
      step = function() steps = steps + 1; return steps < 3 end,
      stop = function() end,
      wait = function(self) self.output = { done = true }; return "SUCCEEDED" end,
    }
    local result = os.tmpname()
    local out = sink()
    local code = cli.finish(remote, { ["result-file"] = result }, { stdout = out, stderr = sink() })
    local f = assert(io.open(result))
    local written = json.decode(f:read("a"))
    f:close()
    os.remove(result)
    assert.are.equal(0, code)
    assert.are.equal(3, steps)
    assert.are.equal('{"done":true}\n', out:text())
    assert.are.same({ status = "SUCCEEDED", output = { done = true } }, written)
  end)

  it("output JSON is compact when stdout is not a terminal, or with --compact", function()
    local def = [[{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"a":[1]},"End":true}}}]]
    local _, out = run({ "run", "-" }, def)
    assert.are.equal('{"a":[1]}\n', out)
  end)
end)

-- Issue #14 item 5: honest progress.
describe("emrflow.progress", function()
  local progress = require "emrflow.progress"
  local asl = require "emrflow.asl"

  local function capture(def, input, opts)
    local lines = {}
    local stream = { write = function(self, ...) lines[#lines + 1] = table.concat({ ... }) return self end }
    local rep = progress.new { stream = stream, enabled = true, virtual = opts.clock == "virtual" }
    local m = asl.load(def)
    local status = m:start(input, { clock = opts.clock, on_event = rep:on_event() }):wait()
    return status, table.concat(lines)
  end

  local function map_of(task)
    return { StartAt = "M", States = { M = { Type = "Map", ItemsPath = "$.items", MaxConcurrency = 1,
      Iterator = { StartAt = "T", States = { T = task, Recovered = { Type = "Pass", End = true } } },
      End = true } } }
  end

  it("never calls a new Map iteration a retry", function()
    local n = 0
    local status, text = capture(map_of { Type = "Task", End = true,
      Resource = function(i)
        n = n + 1
        if n == 1 then error({ Error = "E", Cause = "first" }) end
        return i
      end,
      Catch = { { ErrorEquals = { "States.ALL" }, Next = "Recovered" } } }, { items = { 1, 2, 3 } },
      { clock = "virtual" })
    assert.are.equal("SUCCEEDED", status)
    assert.matches("! T failed: E first", text, 1, true)
    assert.is_nil(text:find("retry", 1, true), text)
  end)

  it("says retry for each ASL Retry attempt", function()
    local n = 0
    local _, text = capture(map_of { Type = "Task", End = true,
      Resource = function(i)
        n = n + 1
        if n <= 2 then error({ Error = "E", Cause = "again" }) end
        return i
      end,
      Retry = { { ErrorEquals = { "E" }, IntervalSeconds = 1, MaxAttempts = 3 } },
      Catch = { { ErrorEquals = { "States.ALL" }, Next = "Recovered" } } }, { items = { 1, 2 } },
      { clock = "virtual" })
    assert.are.equal(2, select(2, text:gsub("retry T", "")))
  end)

  it("writes no stray spaces and marks virtual-clock times", function()
    local def = { StartAt = "W", States = { W = { Type = "Wait", Seconds = 90, Next = "F" },
      F = { Type = "Task", Resource = function() error({ Error = "Boom" }) end, End = true } } }
    for _, clock in ipairs { "virtual", "real" } do
      if clock == "real" then def.States.W.Seconds = 0 end
      local _, text = capture(def, {}, { clock = clock })
      for line in text:gmatch("[^\n]+") do
        assert.is_nil(line:find("%s$"), "trailing space: [" .. line .. "]")
        local stamp, rest = line:match("^(%[[^%]]+%]) (.*)$")
        assert.is_string(stamp, line)
        assert.is_nil(rest:match("^%s*(.*)$"):find("  ", 1, true), "double space: [" .. line .. "]")
        if clock == "virtual" then
          assert.matches("^%[virtual %d%d:%d%d:%d%d %+%d+%.%ds%]$", stamp)
        else
          assert.matches("^%[%d%d:%d%d:%d%d %+%d+%.%ds%]$", stamp)
        end
      end
      -- a failure without a Cause leaves no dangling space
      assert.matches("! F failed: Boom\n", text, 1, true)
      if clock == "virtual" then
        assert.matches("execution FAILED after 90.0 s of virtual time", text, 1, true)
      else
        assert.is_nil(text:find("virtual", 1, true))
      end
    end
  end)
end)
