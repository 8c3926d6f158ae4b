-- The remote commands (emrflow.cli.remote): deploy, policy, validate --remote, start --remote
-- [--wait], stop --remote, run as a user runs them (bin/emrflow in a clean environment) against
-- moto's server (an independent Step Functions; skipped with a notice when absent) and
-- spec/support/fake_sfn.py (versions, aliases and ValidateStateMachineDefinition, which moto lacks).
local json = require "emrflow.json"
local sfn = require "emrflow.sfn"
local fake = require "support.fake"
local moto = require "support.moto"

local ROLE = "arn:aws:iam::123456789012:role/sfn-role"
local CLEAN_ENV = "env -u AWS_PROFILE -u AWS_DEFAULT_REGION -u AWS_ENDPOINT_URL -u AWS_SESSION_TOKEN "
  .. "-u EMRFLOW_PROGRESS HOME=/nonexistent AWS_CONFIG_FILE=/nonexistent/config "
  .. "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials AWS_EC2_METADATA_DISABLED=true "
  .. "AWS_ACCESS_KEY_ID=AKIDREMOTEEXAMPLE AWS_SECRET_ACCESS_KEY=remote-secret-KEY-never-shown "
  .. "AWS_REGION=us-east-1 "

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function tmpfile(text, suffix)
  local path = os.tmpname()
  if suffix then
    os.remove(path)
    path = path .. suffix
  end
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Runs `emrflow ARGS` with the Step Functions endpoint set through AWS_ENDPOINT_URL_SFN.
-- Returns exit code, stdout, stderr.
local function emrflow(url, args)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = CLEAN_ENV .. "AWS_ENDPOINT_URL_SFN=" .. q(url) .. " lua5.4 bin/emrflow " .. args
    .. " >" .. out .. " 2>" .. err
  local _, _, code = os.execute(cmd)
  local o, e = read(out), read(err)
  os.remove(out)
  os.remove(err)
  assert.not_matches("remote%-secret", e)
  return code, o, e
end

local function client_of(url)
  return sfn.client{ region = "us-east-1", endpoint_url = url, credentials = moto.credentials,
                     env = { AWS_CONFIG_FILE = "/nonexistent/config",
                             AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/credentials" } }
end

-- The CLI loads extension modules (contracts §1) only from the version that has them.
local function extensions_supported()
  local ok, cli = pcall(require, "emrflow.cli")
  return ok and type(cli.load_extensions) == "function" and type(cli.finish) == "function"
end

local PASS = '{"StartAt":"Greet","States":{"Greet":{"Type":"Pass",'
  .. '"Parameters":{"greeting.$":"States.Format(\'hi {}\', $.who)"},"End":true}}}'
local FAIL = '{"StartAt":"Boom","States":{"Boom":{"Type":"Fail","Error":"Job.Broken","Cause":"it broke"}}}'

describe("emrflow deploy / start / stop against moto", function()
  -- moto (5.x) executes at most one execution per server process (a second StartExecution
  -- fails inside moto), so every spec that runs an execution starts a server of its own.
  local why, client, pass_file, fail_file
  local srv, servers = nil, {}

  local function fresh()
    local s, w = moto.start{ execute = true }
    if not s then
      why = w
      return nil
    end
    servers[#servers + 1] = s
    srv = s
    if client then client:close() end
    client = client_of(s.url)
    return s
  end

  setup(function()
    if not extensions_supported() then
      why = "this emrflow.cli has no extension loader (contracts §1) yet"
      return
    end
    fresh()
    pass_file, fail_file = tmpfile(PASS, ".json"), tmpfile(FAIL, ".json")
  end)
  teardown(function()
    if client then client:close() end
    for _, s in ipairs(servers) do s:stop() end
    if pass_file then os.remove(pass_file) end
    if fail_file then os.remove(fail_file) end
  end)

  local function skip(new_server)
    if srv and (not new_server or fresh()) then return false end
    print("\nnotice: skipping the remote CLI specs against moto: " .. tostring(why))
    return true
  end

  it("deploy creates, then reports an unchanged machine, then updates a changed one", function()
    if skip() then return pending(why) end
    local code, out, err = emrflow(srv.url, "deploy " .. pass_file .. " --name greet --role-arn " .. ROLE)
    assert.equal(0, code, err)
    local r = json.decode(out)
    assert.same({ "stateMachineArn", "stateMachineVersionArn", "created", "updated" }, json.keys(r))
    assert.equal("arn:aws:states:us-east-1:123456789012:stateMachine:greet", r.stateMachineArn)
    assert.is_true(r.created)
    assert.is_false(r.updated)
    assert.equal(json.null, r.stateMachineVersionArn)
    local stored = assert(client:describe_state_machine{ stateMachineArn = r.stateMachineArn })
    assert.equal(PASS, stored.definition)

    code, out, err = emrflow(srv.url, "deploy " .. pass_file .. " --name greet --role-arn " .. ROLE)
    assert.equal(0, code, err)
    r = json.decode(out)
    assert.is_false(r.created)
    assert.is_false(r.updated)
    assert.matches("unchanged", err)

    local changed = tmpfile(PASS:gsub("hi ", "hello "), ".json")
    code, out, err = emrflow(srv.url, "deploy " .. changed .. " --name greet --role-arn " .. ROLE
      .. " --tracing --tag team=data --tag env=test")
    assert.equal(0, code, err)
    r = json.decode(out)
    assert.is_false(r.created)
    assert.is_true(r.updated)
    assert.matches("definition, tracing", err)
    local d = assert(client:describe_state_machine{ stateMachineArn = r.stateMachineArn })
    assert.matches("hello ", d.definition)
    assert.is_true(d.tracingConfiguration.enabled)

    -- declarative: without --tracing the same definition is deployed with tracing off
    code, out, err = emrflow(srv.url, "deploy " .. changed .. " --name greet --role-arn " .. ROLE)
    os.remove(changed)
    assert.equal(0, code, err)
    assert.is_true(json.decode(out).updated)
    assert.matches("%(tracing%)", err)
    d = assert(client:describe_state_machine{ stateMachineArn = r.stateMachineArn })
    assert.is_false(d.tracingConfiguration.enabled)
  end)

  it("deploy exports a Lua definition, and refuses Lua-function resources naming them", function()
    if skip() then return pending(why) end
    local code, out, err = emrflow(srv.url, "deploy examples/emr-eks-pipeline.lua --name pipeline-lua "
      .. "--role-arn " .. ROLE)
    assert.equal(0, code, err)
    local arn = json.decode(out).stateMachineArn
    local deployed = json.decode(assert(client:describe_state_machine{ stateMachineArn = arn }).definition)
    assert.equal("Create_Virtual_Cluster", deployed.StartAt)

    local lua_def = tmpfile([[
return { StartAt = "Local", States = {
  Local = { Type = "Task", Next = "Done",
            Resource = function(input) return input end },
  Done = { Type = "Succeed" } } }
]], ".lua")
    code, out, err = emrflow(srv.url, "deploy " .. lua_def .. " --name has-functions --role-arn " .. ROLE)
    os.remove(lua_def)
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("state Local has Resource = a Lua function %(.-:3%)", err)
    assert.matches("cannot be deployed", err)
    assert.is_nil(client:find_state_machine("has-functions"))
  end)

  it("start --remote --wait follows the execution: output, result file, exit 0", function()
    if skip(true) then return pending(why) end
    assert.equal(0, (emrflow(srv.url, "deploy " .. pass_file .. " --name wait-ok --role-arn " .. ROLE)))
    local result = os.tmpname()
    local code, out, err = emrflow(srv.url, "start wait-ok --remote --wait --input '{\"who\":\"aws\"}' "
      .. "--result-file " .. result .. " --events")
    assert.equal(0, code, err)
    assert.same({ greeting = "hi aws" }, json.decode(out))
    assert.same({ status = "SUCCEEDED", output = { greeting = "hi aws" } }, json.decode(read(result)))
    os.remove(result)
    assert.matches("emrflow: started arn:aws:states:us%-east%-1:123456789012:execution:wait%-ok:", err)
    assert.matches('"type":"ExecutionStarted"', err)         -- --events: GetExecutionHistory's events
    assert.matches('"type":"ExecutionSucceeded"', err)
  end)

  it("start --remote --wait on a failing machine: exit 2 with the error and cause", function()
    if skip(true) then return pending(why) end
    assert.equal(0, (emrflow(srv.url, "deploy " .. fail_file .. " --name wait-fail --role-arn " .. ROLE)))
    local result = os.tmpname()
    local code, out, err = emrflow(srv.url,
      "start arn:aws:states:us-east-1:123456789012:stateMachine:wait-fail --remote --wait "
      .. "--result-file " .. result)
    assert.equal(2, code, err)
    assert.equal("", out)
    assert.same({ status = "FAILED", error = "Job.Broken", cause = "it broke" }, json.decode(read(result)))
    os.remove(result)
    assert.matches("FAILED error=Job.Broken", err)
  end)

  it("start without --wait prints the execution ARN; bad targets and a missing --remote exit 1", function()
    if skip(true) then return pending(why) end
    assert.equal(0, (emrflow(srv.url, "deploy " .. pass_file .. " --name no-wait --role-arn " .. ROLE)))
    local code, out, err = emrflow(srv.url, "start no-wait --remote --name run-1 --input '{\"who\":\"x\"}'")
    assert.equal(0, code, err)
    assert.equal("arn:aws:states:us-east-1:123456789012:execution:no-wait:run-1",
      json.decode(out).executionArn)

    code, out, err = emrflow(srv.url, "start nowhere --remote")
    assert.equal("", out)
    assert.equal(1, code)
    assert.matches("no state machine named 'nowhere'", err)
    code, out, err = emrflow(srv.url, "start no-wait")
    assert.equal("", out)
    assert.equal(1, code)
    assert.matches("add %-%-remote", err)
    code, out, err = emrflow(srv.url, "deploy " .. pass_file .. " --name x --role-arn not-an-arn")
    assert.equal("", out)
    assert.equal(1, code)
    assert.matches("%-%-role%-arn must be an IAM role ARN", err)
  end)
end)

describe("emrflow deploy --publish --alias, validate --remote, stop (fake_sfn)", function()
  local srv, why, client, def_file

  setup(function()
    if not extensions_supported() then
      why = "this emrflow.cli has no extension loader (contracts §1) yet"
      return
    end
    srv = fake.start("fake_sfn")
    client = client_of(srv.url)
    def_file = tmpfile(PASS, ".json")
  end)
  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
    if def_file then os.remove(def_file) end
  end)

  local function skip()
    if srv then return false end
    print("\nnotice: skipping the remote CLI specs: " .. tostring(why))
    return true
  end

  local function versions(arn)
    return #assert(client:list_all("ListStateMachineVersions", { stateMachineArn = arn }))
  end

  it("publishes a version only when something changed, and moves the alias with it", function()
    if skip() then return pending(why) end
    local args = " --name pub --role-arn " .. ROLE .. " --publish --alias live"
    local code, out, err = emrflow(srv.url, "deploy " .. def_file .. args)
    assert.equal(0, code, err)
    local r = json.decode(out)
    local arn = r.stateMachineArn
    assert.equal(arn .. ":1", r.stateMachineVersionArn)
    assert.equal(arn .. ":live", r.stateMachineAliasArn)

    code, out, err = emrflow(srv.url, "deploy " .. def_file .. args)
    assert.equal(0, code, err)
    r = json.decode(out)
    assert.is_false(r.updated)
    assert.equal(arn .. ":1", r.stateMachineVersionArn)
    assert.equal(1, versions(arn))

    local changed = tmpfile(PASS:gsub("hi ", "hey "), ".json")
    code, out, err = emrflow(srv.url, "deploy " .. changed .. args)
    os.remove(changed)
    assert.equal(0, code, err)
    r = json.decode(out)
    assert.is_true(r.updated)
    assert.equal(arn .. ":2", r.stateMachineVersionArn)
    assert.equal(2, versions(arn))
    local alias = assert(client:describe_state_machine_alias{ stateMachineAliasArn = arn .. ":live" })
    assert.same({ { stateMachineVersionArn = arn .. ":2", weight = 100 } }, alias.routingConfiguration)
  end)

  it("deploy refuses to change a machine's type", function()
    if skip() then return pending(why) end
    assert.equal(0, (emrflow(srv.url, "deploy " .. def_file .. " --name typed --role-arn " .. ROLE)))
    local code, _, err = emrflow(srv.url,
      "deploy " .. def_file .. " --name typed --type EXPRESS --role-arn " .. ROLE)
    assert.equal(1, code)
    assert.matches("is STANDARD: the type of a state machine cannot change", err)
  end)

  it("start --wait says it cannot follow an EXPRESS execution", function()
    if skip() then return pending(why) end
    assert(client:create_state_machine{ name = "fast", definition = PASS, roleArn = ROLE, type = "EXPRESS" })
    local code, _, err = emrflow(srv.url, "start fast --remote --wait --name e1")
    assert.equal(1, code)
    assert.matches("started arn:aws:states:us%-east%-1:123456789012:express:fast:e1", err)
    assert.matches("cannot follow an EXPRESS execution", err)
  end)

  it("refuses names Step Functions would refuse before calling it", function()
    if skip() then return pending(why) end
    local before = #srv:requests()
    local code, _, err = emrflow(srv.url, "deploy " .. def_file .. " --name 'two words' --role-arn " .. ROLE)
    assert.equal(1, code)
    assert.matches("%-%-name must be 1 to 80 characters without blanks", err)
    code, _, err = emrflow(srv.url, "deploy " .. def_file .. " --name ok.name --role-arn " .. ROLE
      .. " --alias 2024")
    assert.equal(1, code)
    assert.matches("%-%-alias must be", err)
    code, _, err = emrflow(srv.url, "start some-machine --remote --name 'a/b'")
    assert.equal(1, code)
    assert.matches("%-%-name must be", err)
    assert.equal(before, #srv:requests())
  end)

  it("validate --remote prints AWS's diagnostics; exit 0 when OK, 1 otherwise", function()
    if skip() then return pending(why) end
    local code, out, err = emrflow(srv.url, "validate " .. def_file .. " --remote")
    assert.equal(0, code, err)
    assert.matches("valid %(AWS Step Functions%)", out)
    local bad = tmpfile('{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nowhere"}}}', ".json")
    code, out, err = emrflow(srv.url, "validate " .. bad .. " --remote")
    assert.equal("", out)
    os.remove(bad)
    assert.equal(1, code)
    assert.matches("error: /States/A/Next: MISSING_TRANSITION_TARGET: Missing 'Next' target: Nowhere", err)
  end)

  it("stop --remote ends a running execution ABORTED", function()
    if skip() then return pending(why) end
    local sm = assert(client:create_state_machine{ name = "stoppable", definition = PASS, roleArn = ROLE })
    local x = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "long" })
    local code, out, err = emrflow(srv.url,
      "stop " .. x.executionArn .. " --remote")
    assert.equal(0, code, err)
    assert.equal(x.executionArn, json.decode(out).executionArn)
    local d = assert(client:describe_execution{ executionArn = x.executionArn })
    assert.equal("ABORTED", d.status)
  end)

  it("a remote execution as cli.finish drives it: events in order, stop, final status", function()
    if skip() then return pending(why) end
    local remote = require "emrflow.cli.remote"
    local cli = { fail = function(m) error(m, 0) end }
    local sm = assert(client:create_state_machine{ name = "driven", definition = PASS, roleArn = ROLE })
    local x1 = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "one" })
    local seen = {}
    local r = remote.new_remote(client, x1.executionArn, function(ev) seen[#seen + 1] = ev.type end, cli)
    assert.is_true(r:step(0.01))
    srv:control("POST", "finish", { executionArn = x1.executionArn, status = "SUCCEEDED",
                                    output = '{"done":true}', states = { "Greet" } })
    assert.equal("SUCCEEDED", r:wait())
    assert.same({ done = true }, r.output)
    assert.same({ "ExecutionStarted", "PassStateEntered", "PassStateExited", "ExecutionSucceeded" }, seen)

    local x2 = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "two" })
    local r2 = remote.new_remote(client, x2.executionArn, nil, cli)
    r2:stop("States.Aborted", "stopped by SIGINT")
    assert.equal("ABORTED", r2:wait())
    assert.equal("States.Aborted", r2.error)
  end)

  it("SIGTERM during start --wait stops the remote execution: ABORTED, exit 2", function()
    if skip() then return pending(why) end
    assert(client:create_state_machine{ name = "to-stop", definition = PASS, roleArn = ROLE })
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    local inner = CLEAN_ENV .. "AWS_ENDPOINT_URL_SFN=" .. q(srv.url) .. " lua5.4 bin/emrflow start to-stop "
      .. "--remote --wait --name sigterm --result-file " .. dir .. "/result >" .. dir .. "/out 2>" .. dir
      .. "/err & echo $! >" .. dir .. "/pid; wait $!; echo $? >" .. dir .. "/code"
    os.execute("sh -c " .. q(inner) .. " >/dev/null 2>&1 &")
    local function wait_for(test)
      for _ = 1, 300 do
        if test() then return true end
        os.execute("sleep 0.05")
      end
      return false
    end
    assert.is_true(wait_for(function() return (read(dir .. "/err") or ""):find("started", 1, true) end))
    local pid = assert(read(dir .. "/pid")):match("%d+")
    os.execute("kill -TERM " .. pid)
    local ended = wait_for(function() return (read(dir .. "/code") or "") ~= "" end)
    if not ended then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end   -- never leave it polling
    assert.is_true(ended)
    assert.equal("2", read(dir .. "/code"):match("%d+"))
    local result = json.decode(read(dir .. "/result"))
    assert.equal("ABORTED", result.status)
    local d = assert(client:describe_execution{
      executionArn = "arn:aws:states:us-east-1:123456789012:execution:to-stop:sigterm" })
    assert.equal("ABORTED", d.status)
    assert.matches("SIGTERM", d.cause)
    os.execute("rm -rf " .. dir)
  end)

  it("start --wait: a SIGTERM while StartExecution is in flight stops the new execution (exit 2)", function()
    if skip() then return pending(why) end
    assert(client:create_state_machine{ name = "early-stop", definition = PASS, roleArn = ROLE })
    -- StartExecution takes 2 s: the signal arrives before emrflow knows the execution exists
    srv:faults{ { kind = "slow", seconds = 2, count = 1, match = { body_contains = '"name":"early"' } } }
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    local inner = CLEAN_ENV .. "AWS_ENDPOINT_URL_SFN=" .. q(srv.url)
      .. " lua5.4 bin/emrflow start early-stop --remote --wait --name early --result-file " .. dir
      .. "/result >" .. dir .. "/out 2>" .. dir .. "/err & echo $! >" .. dir .. "/pid; wait $!; echo $? >"
      .. dir .. "/code"
    os.execute("sh -c " .. q(inner) .. " >/dev/null 2>&1 &")
    local function wait_for(test)
      for _ = 1, 300 do
        if test() then return true end
        os.execute("sleep 0.05")
      end
      return false
    end
    assert.is_true(wait_for(function()
      for _, r in ipairs(srv:requests()) do
        if (r.body or ""):find('"name":"early"', 1, true) then return true end
      end
      return false
    end))
    local pid = assert(read(dir .. "/pid")):match("%d+")
    os.execute("kill -TERM " .. pid)
    local ended = wait_for(function() return (read(dir .. "/code") or "") ~= "" end)
    if not ended then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end   -- never leave it polling
    assert.is_true(ended)
    assert.equal("2", read(dir .. "/code"):match("%d+"), read(dir .. "/err"))
    assert.equal("ABORTED", json.decode(read(dir .. "/result")).status)
    local d = assert(client:describe_execution{
      executionArn = "arn:aws:states:us-east-1:123456789012:execution:early-stop:early" })
    assert.equal("ABORTED", d.status)
    assert.matches("SIGTERM", d.cause)
    os.execute("rm -rf " .. dir)
  end)

  it("reports what AWS rejects, and missing credentials, with exit 1 and no secret", function()
    if skip() then return pending(why) end
    local bad = tmpfile('{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nowhere"}}}', ".json")
    local code, out, err = emrflow(srv.url, "deploy " .. bad .. " --name invalid --role-arn " .. ROLE)
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("CreateStateMachine: InvalidDefinition %(HTTP 400%): Invalid State Machine", err)
    assert.matches("%[request %x+%]", err)

    local _, _, no_creds = os.execute(CLEAN_ENV .. "AWS_ENDPOINT_URL_SFN=" .. q(srv.url)
      .. " sh -c 'unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; lua5.4 bin/emrflow deploy " .. bad
      .. " --name x --role-arn " .. ROLE .. " 2>" .. bad .. ".err'")
    assert.equal(1, no_creds)
    local msg = read(bad .. ".err")
    assert.matches("ListStateMachines: no AWS credentials found", msg)
    assert.not_matches("traceback", msg)
    os.remove(bad .. ".err")
    os.remove(bad)
  end)

  it("a remote execution rides out failed polls, and stops on a permanent error", function()
    if skip() then return pending(why) end
    local remote = require "emrflow.cli.remote"
    local cli = { fail = function(m) error(m, 0) end }
    local once = sfn.client{ region = "us-east-1", endpoint_url = srv.url, credentials = moto.credentials,
                             max_attempts = 1, env = { AWS_CONFIG_FILE = "/nonexistent/config" } }
    local sm = assert(client:create_state_machine{ name = "flaky", definition = PASS, roleArn = ROLE })
    local x = assert(client:start_execution{ stateMachineArn = sm.stateMachineArn, name = "f1" })
    srv:control("POST", "finish", { executionArn = x.executionArn, status = "SUCCEEDED", output = "{}" })
    srv:faults{ { kind = "status", status = 503, count = 3, body = { message = "busy" },
                  match = { header = { ["X-Amz-Target"] = "AWSStepFunctions.DescribeExecution" } } } }
    local r = remote.new_remote(once, x.executionArn, nil, cli)
    assert.equal("SUCCEEDED", r:wait())
    assert.equal(0, #srv:control("GET", "faults").faults)      -- all three were met

    local gone = remote.new_remote(once, x.executionArn:gsub("f1$", "never-started"), nil, cli)
    local ok, msg = pcall(gone.wait, gone)
    assert.is_false(ok)
    assert.matches("DescribeExecution: ExecutionDoesNotExist", msg)
    assert.matches("goes on in AWS Step Functions", msg)
    once:close()
  end)

  it("policy prints the document for the definition's integrations", function()
    if skip() then return pending(why) end
    local code, out, err = emrflow(srv.url,
      "policy examples/emr-eks-pipeline.json --role-arn " .. ROLE .. " --region eu-west-1 --compact")
    assert.equal(0, code, err)
    local doc = json.decode(out)
    assert.equal("2012-10-17", doc.Version)
    assert.matches('"Action":"emr%-containers:StartJobRun","Resource":'
      .. '"arn:aws:emr%-containers:eu%-west%-1:123456789012:/virtualclusters/%*"', out)
    assert.matches("note: state Submit_Job: VirtualClusterId is dynamic", err)
  end)
end)
