-- Acceptance: `emrflow run ... --local` (the built-in emulator) and against an endpoint,
-- black-box through bin/emrflow, from the README ("The command line", "The emulator and its
-- scenarios") and the integration issue (examples, --scenario, --poll-rate, --events,
-- progress on stderr, SIGINT/SIGTERM).
local json = require "emrflow.json"
local core = require "emrflow.core"

local JSON_EX = "examples/emr-eks-pipeline.json"
local LUA_EX = "examples/emr-eks-pipeline.lua"

-- Environment for runs that must not find any real AWS configuration.
local CLEAN_ENV = "env -u AWS_PROFILE -u AWS_REGION -u AWS_DEFAULT_REGION -u AWS_ENDPOINT_URL "
  .. "-u AWS_ENDPOINT_URL_EMR_CONTAINERS -u EMRFLOW_PROGRESS HOME=/nonexistent "
  .. "AWS_CONFIG_FILE=/nonexistent/config AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials "
  .. "AWS_EC2_METADATA_DISABLED=true "
local FAKE_CREDS = "AWS_ACCESS_KEY_ID=AKIDEXAMPLE "
  .. "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY "

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `emrflow run ARGS`; returns exit code, stdout, stderr.
local function emrflow(args, env)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = CLEAN_ENV .. (env or "") .. " lua5.4 bin/emrflow " .. args .. " >" .. out .. " 2>" .. err
  local _, _, code = os.execute(cmd)
  local o, e = read(out), read(err)
  os.remove(out)
  os.remove(err)
  return code, o, e
end

local function plain(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = plain(x) end
  return t
end

-- Ids, ARNs, tokens and times differ between backends and runs; the rest must not.
local VARYING = { Id = true, Arn = true, VirtualClusterId = true, CreatedAt = true, FinishedAt = true,
                  CreatedBy = true, ClientToken = true }
local function normalize(out)
  local t = plain(out)
  t.VirtualClusterId = "ID"
  for _, k in ipairs{ "JobRun", "VirtualCluster" } do
    for f in pairs(VARYING) do if t[k] and t[k][f] ~= nil then t[k][f] = f end end
  end
  return t
end

local function header_of(req, name)
  for _, h in ipairs(req.headers or {}) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

local function event_lines(stderr)
  local evs = {}
  for line in stderr:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then evs[#evs + 1] = json.decode(line) end
  end
  return evs
end

describe("acceptance: emrflow run --local", function()
  it("runs the JSON example: exit 0, the output on stdout", function()
    -- the README: "On success stdout gets the output JSON"; examples: create, run, delete
    local code, out, err = emrflow("run " .. JSON_EX .. " --local")
    assert.are.equal(0, code, err)
    local o = json.decode(out)
    assert.matches("^[0-9a-z]+$", o.VirtualClusterId)
    assert.are.equal("COMPLETED", o.JobRun.State)
    assert.are.equal("MyJobName", o.JobRun.Name)
    assert.are.equal(o.VirtualClusterId, o.JobRun.VirtualClusterId)
    assert.are.equal("TERMINATED", o.VirtualCluster.State)
    assert.are.equal(o.VirtualClusterId, o.VirtualCluster.Id)
    -- the page's parameters reached the job run (PascalCase, map keys verbatim)
    assert.are.equal("s3://my-bucket/jobs/trip-count.py", o.JobRun.JobDriver.SparkSubmitJobDriver.EntryPoint)
    assert.are.same({ "60" }, plain(o.JobRun.JobDriver.SparkSubmitJobDriver.EntryPointArguments))
    assert.are.same({ ["spark.executor.instances"] = "2", ["spark.executor.memory"] = "2G" },
      plain(o.JobRun.ConfigurationOverrides.ApplicationConfiguration[1].Properties))
    assert.are.equal("arn:aws:iam::123456789012:role/job-execution-role", o.JobRun.ExecutionRoleArn)
    -- stderr is not a terminal here: no progress lines
    assert.is_nil(err:find("> Submit_Job", 1, true))
    assert.is_nil(err:find("RUNNING", 1, true))
  end)

  it("the Lua example gives the same output as the JSON one", function()
    local c1, o1, e1 = emrflow("run " .. JSON_EX .. " --local --name same-name")
    local c2, o2, e2 = emrflow("run " .. LUA_EX .. " --local --name same-name")
    assert.are.equal(0, c1, e1)
    assert.are.equal(0, c2, e2)
    assert.are.same(normalize(json.decode(o1)), normalize(json.decode(o2)))
  end)

  it("--result-file gets {\"status\":\"SUCCEEDED\",\"output\":...}", function()
    local rf = os.tmpname()
    local code, out = emrflow("run " .. JSON_EX .. " --local --result-file " .. q(rf))
    assert.are.equal(0, code)
    local r = json.decode(read(rf))
    os.remove(rf)
    assert.are.equal("SUCCEEDED", r.status)
    assert.are.same(plain(json.decode(out)), plain(r.output))
  end)

  it("--scenario: a FAILED job fails the run: exit 2, States.TaskFailed, the JobRun as cause", function()
    -- decided behaviour: job ends FAILED -> States.TaskFailed, Cause = the final JobRun as a JSON string
    local sc = tmpfile('{"jobs":[{"match":"MyJob*","final_state":"FAILED","failure_reason":"USER_ERROR",'
      .. '"state_details":"Exit code 1","running_seconds":120}]}')
    local rf = os.tmpname()
    local code, out = emrflow("run " .. JSON_EX .. " --local --scenario " .. q(sc) .. " --result-file "
        .. q(rf))
    assert.are.equal(2, code)
    assert.are.equal("", out)
    local r = json.decode(read(rf))
    assert.are.equal("FAILED", r.status)
    assert.are.equal("States.TaskFailed", r.error)
    local jr = json.decode(r.cause)
    assert.are.equal("FAILED", jr.State)
    assert.are.equal("USER_ERROR", jr.FailureReason)
    assert.are.equal("Exit code 1", jr.StateDetails)
    assert.are.equal("MyJobName", jr.Name)
    os.remove(sc)
    os.remove(rf)
  end)

  it("--scenario: a CANCELLED job fails the run the same way", function()
    local sc = tmpfile('{"defaults":{"final_state":"CANCELLED"}}')
    local rf = os.tmpname()
    local code = emrflow("run " .. JSON_EX .. " --local --scenario " .. q(sc) .. " --result-file " .. q(rf))
    assert.are.equal(2, code)
    local r = json.decode(read(rf))
    assert.are.equal("States.TaskFailed", r.error)
    assert.are.equal("CANCELLED", json.decode(r.cause).State)
    os.remove(sc)
    os.remove(rf)
  end)

  it("--scenario api_errors: throttling is retried (success); other codes fail as EmrContainers.<Code>",
      function()
    local sc1 = tmpfile('{"api_errors":[{"operation":"StartJobRun","code":"ThrottlingException","count":2}]}')
    local code1, out1 = emrflow("run " .. JSON_EX .. " --local --scenario " .. q(sc1))
    assert.are.equal(0, code1)
    assert.are.equal("COMPLETED", json.decode(out1).JobRun.State)
    local sc2 = tmpfile('{"api_errors":[{"operation":"CreateVirtualCluster","code":"ValidationException",'
      .. '"count":1,"message":"EKS cluster is not reachable"}]}')
    local rf = os.tmpname()
    local code2 = emrflow("run " .. JSON_EX .. " --local --scenario " .. q(sc2) .. " --result-file " .. q(rf))
    assert.are.equal(2, code2)
    local r = json.decode(read(rf))
    assert.are.equal("FAILED", r.status)
    assert.are.equal("EmrContainers.ValidationException", r.error)
    assert.are.equal("EKS cluster is not reachable", r.cause)
    os.remove(sc1)
    os.remove(sc2)
    os.remove(rf)
  end)

  it("emrflow's own problems exit 1 with a message: bad scenario, missing file, --scenario without --local",
      function()
    local bad = tmpfile('{"defaults":{"final_state":"DONE"}}')
    local cases = {
      { "run " .. JSON_EX .. " --local --scenario " .. q(bad), "final_state" },
      { "run " .. JSON_EX .. " --local --scenario /nonexistent/scenario.json", "scenario" },
      { "run " .. JSON_EX .. " --scenario " .. q(bad), "%-%-local" },
      { "run " .. JSON_EX .. " --local --poll-rate 0", "poll%-rate" },
      { "run " .. JSON_EX .. " --local --poll-rate fast", "poll%-rate" },
      { "run /nonexistent/def.json --local", "nonexistent" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = emrflow(c[1])
      assert.are.equal(1, code, c[1] .. "\n" .. err)
      assert.are.equal("", out)
      assert.matches(c[2], err)
      assert.is_nil(err:find("stack traceback", 1, true), err)
    end
    os.remove(bad)
  end)

  it("--poll-rate N caps the polls per second of every .sync job together", function()
    -- the README: --poll-rate N sets rate (requests per second per endpoint, shared)
    local n = 30
    local names = {}
    for i = 1, n do names[i] = '"job-' .. i .. '"' end
    local def = tmpfile([[{"StartAt":"Create","States":{
      "Create":{"Type":"Task","Resource":"arn:aws:states:::emr-containers:createVirtualCluster",
        "Parameters":{"Name":"vc","ContainerProvider":{"Id":"eks","Type":"EKS"}},
        "ResultSelector":{"VirtualClusterId.$":"$.Id"},"ResultPath":"$.vc","Next":"Fan"},
      "Fan":{"Type":"Map","ItemsPath":"$.names","MaxConcurrency":0,
        "ItemSelector":{"VirtualClusterId.$":"$.vc.VirtualClusterId","name.$":"$$.Map.Item.Value"},
        "ItemProcessor":{"StartAt":"Job","States":{"Job":{"Type":"Task",
          "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
          "Parameters":{"Name.$":"$.name","VirtualClusterId.$":"$.VirtualClusterId",
            "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
            "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://my-bucket/x.py"}}},
          "ResultSelector":{"State.$":"$.State"},"End":true}}},"End":true}}}]])
    local input = tmpfile('{"names":[' .. table.concat(names, ",") .. ']}')
    -- every job is done before its first poll: one poll each
    local sc = tmpfile('{"defaults":{"pending_seconds":0,"submitted_seconds":0,"running_seconds":0.5}}')
    local function duration(rate)
      local code, out, err = emrflow("run " .. q(def) .. " --local --input-file " .. q(input)
        .. " --scenario " .. q(sc) .. " --events --poll-rate " .. rate)
      assert.are.equal(0, code, err)
      local o = json.decode(out)
      assert.are.equal(n, #o)
      for i = 1, n do assert.are.equal("COMPLETED", o[i].State) end
      local evs = event_lines(err)
      return evs[#evs].timestamp - evs[1].timestamp
    end
    local slow, fast = duration(1), duration(100)
    -- 30 polls at 1 per second take at least 29 s; at 100 per second well under 10 s
    assert.is_true(slow >= n - 1, "rate 1: " .. slow .. " s")
    assert.is_true(fast < 10, "rate 100: " .. fast .. " s")
    os.remove(def)
    os.remove(input)
    os.remove(sc)
  end)

  it("--events writes the history as JSON lines on stderr", function()
    local code, _, err = emrflow("run " .. JSON_EX .. " --local --events")
    assert.are.equal(0, code)
    local evs = event_lines(err)
    assert.are.equal("ExecutionStarted", evs[1].type)
    assert.are.equal("ExecutionSucceeded", evs[#evs].type)
    local scheduled = {}
    for i, e in ipairs(evs) do
      assert.are.equal(i, e.id)
      assert.is_number(e.timestamp)
      if e.type == "TaskScheduled" then
        local d = e.taskScheduledEventDetails
        assert.are.equal("emr-containers", d.resourceType)
        scheduled[#scheduled + 1] = d.resource
        assert.is_string(d.parameters)          -- payloads as JSON text (GetExecutionHistory)
        json.decode(d.parameters)
      end
    end
    assert.are.same({ "createVirtualCluster", "startJobRun.sync", "deleteVirtualCluster.sync" }, scheduled)
    -- no secret ever: the emulator has none, and no Authorization appears anyway
    assert.is_nil(err:find("Authorization", 1, true))
  end)

  it("shows progress on stderr when asked, with the job's state changes", function()
    local code, out, err = emrflow("run " .. JSON_EX .. " --local --progress")
    assert.are.equal(0, code)
    assert.is_table(json.decode(out))
    for _, want in ipairs{ "Submit_Job", "RUNNING", "COMPLETED", "TERMINATED", "SUCCEEDED" } do
      assert.is_truthy(err:find(want, 1, true), want .. " in\n" .. err)
    end
    -- and --quiet keeps it silent
    local _, _, err2 = emrflow("run " .. JSON_EX .. " --local --quiet")
    assert.is_nil(err2:find("RUNNING", 1, true))
  end)

  it("progress of a Map of 300 jobs stays readable: a summary, the first failures only", function()
    local def = tmpfile([[{"StartAt":"Create","States":{
      "Create":{"Type":"Task","Resource":"arn:aws:states:::emr-containers:createVirtualCluster",
        "Parameters":{"Name":"vc","ContainerProvider":{"Id":"eks","Type":"EKS"}},
        "ResultSelector":{"VirtualClusterId.$":"$.Id"},"ResultPath":"$.vc","Next":"Fan"},
      "Fan":{"Type":"Map","ItemsPath":"$.names","MaxConcurrency":0,
        "ItemSelector":{"VirtualClusterId.$":"$.vc.VirtualClusterId","name.$":"$$.Map.Item.Value"},
        "ItemProcessor":{"StartAt":"Job","States":{"Job":{"Type":"Task",
          "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
          "Parameters":{"Name.$":"$.name","VirtualClusterId.$":"$.VirtualClusterId",
            "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
            "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://my-bucket/x.py"}}},
          "ResultSelector":{"State.$":"$.State"},"End":true}}},"End":true}}}]])
    local names = {}
    for i = 1, 300 do names[i] = '"nightly-' .. i .. '"' end
    local input = tmpfile('{"names":[' .. table.concat(names, ",") .. ']}')
    local code, out, err = emrflow("run " .. q(def) .. " --local --progress --input-file " .. q(input))
    assert.are.equal(0, code, err)
    assert.are.equal(300, #json.decode(out))
    local lines = select(2, err:gsub("\n", ""))
    assert.is_true(lines < 80, lines .. " lines of progress:\n" .. err)
    assert.matches("300/300", err)
    -- every job of the first batch fails: only the first few failures are shown
    local sc = tmpfile('{"jobs":[{"match":"nightly-*","final_state":"FAILED",'
      .. '"failure_reason":"USER_ERROR"}]}')
    local code2, _, err2 = emrflow("run " .. q(def) .. " --local --progress --input-file " .. q(input)
      .. " --scenario " .. q(sc))
    assert.are.equal(2, code2)
    local fails = select(2, err2:gsub("%-> FAILED", ""))
    assert.is_true(fails >= 1 and fails <= 12, fails .. " failure lines")
    assert.is_true(select(2, err2:gsub("\n", "")) < 80)
    -- the other running jobs are cancelled (or already over), never reported as a failed cancel
    assert.is_nil(err2:find("could not cancel", 1, true), err2)
    os.remove(def)
    os.remove(input)
    os.remove(sc)
  end)

  it("shows progress by default when stderr is a terminal", function()
    -- Integration issue: progress on stderr (quiet when not a terminal unless asked)
    if not os.execute("command -v script >/dev/null 2>&1") then return pending("needs script(1)") end
    local out = os.tmpname()
    local p = io.popen(CLEAN_ENV .. "script -qec " .. q("lua5.4 bin/emrflow run " .. JSON_EX .. " --local >"
        .. out)
      .. " /dev/null")
    local tty = p:read("a")
    p:close()
    local o = read(out)
    os.remove(out)
    assert.are.equal("COMPLETED", json.decode(o).JobRun.State)
    for _, want in ipairs{ "> Submit_Job", "RUNNING", "COMPLETED", "TERMINATED", "SUCCEEDED" } do
      assert.is_truthy(tty:find(want, 1, true), want .. " in\n" .. tty)
    end
  end)

  it("validate and export agree with the examples", function()
    local code, out = emrflow("validate " .. JSON_EX)
    assert.are.equal(0, code)
    assert.matches("valid", out)
    local code2, out2 = emrflow("export " .. LUA_EX)
    assert.are.equal(0, code2)
    assert.are.same(plain(json.decode(read(JSON_EX))), plain(json.decode(out2)))
    -- createVirtualCluster.sync is rejected at load time (decided behaviour: Resources)
    local bad = tmpfile('{"StartAt":"C","States":{"C":{"Type":"Task",'
      .. '"Resource":"arn:aws:states:::emr-containers:createVirtualCluster.sync",'
      .. '"Parameters":{"Name":"vc","ContainerProvider":{"Id":"eks","Type":"EKS"}},"End":true}}}')
    local code3, _, err3 = emrflow("validate " .. q(bad))
    assert.are.equal(1, code3)
    assert.matches("/States/C/Resource", err3)
    local code4, _, err4 = emrflow("run " .. q(bad) .. " --local")
    assert.are.equal(1, code4)
    assert.matches("/States/C/Resource", err4)
    os.remove(bad)
  end)
end)

local have_http = type(core.http) == "table" and core.http.poller ~= nil
local have_fake, fake = pcall(require, "support.fake")

describe("acceptance: emrflow run against an endpoint (the fake server)", function()
  local function live(name, fn)
    if have_http and have_fake then it(name, fn) else
      it(name, function() pending("needs core.http and spec/support/fake.lua") end)
    end
  end

  live("both examples give the --local output against the endpoint (in parallel)", function()
    local a = fake.start("fake_emr", { job_seconds = 0.1, terminate_seconds = 0.1 })
    local b = fake.start("fake_emr", { job_seconds = 0.1, terminate_seconds = 0.1 })
    local oa, ob, ea, eb = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
    local env = CLEAN_ENV .. FAKE_CREDS
    local cmd = string.format(
      "%s lua5.4 bin/emrflow run %s --region us-east-1 --endpoint-url %s --name same --no-store "
      .. ">%s 2>%s & "
      .. "%s lua5.4 bin/emrflow run %s --region us-east-1 --endpoint-url %s --name same --no-store "
      .. ">%s 2>%s & "
      .. "wait", env, JSON_EX, a.url, oa, ea, env, LUA_EX, b.url, ob, eb)
    os.execute(cmd)
    local out_a, out_b = read(oa), read(ob)
    local err_a = read(ea)
    for _, f in ipairs{ oa, ob, ea, eb } do os.remove(f) end
    local posts = a:requests{ method = "POST" }
    local deletes = a:requests{ method = "DELETE" }
    a:stop()
    b:stop()
    local ja, jb = json.decode(out_a), json.decode(out_b)
    assert.are.equal("COMPLETED", ja.JobRun.State, err_a)
    assert.are.equal("TERMINATED", ja.VirtualCluster.State)
    assert.are.same(normalize(ja), normalize(jb))
    local _, lo = emrflow("run " .. JSON_EX .. " --local --name same")
    local l = normalize(json.decode(lo))
    local r = normalize(ja)
    assert.are.same(l, r)
    -- the seed example's exact payloads on the wire (camelCase, map keys verbatim; reference A3)
    local create = json.decode(posts[1].body)
    assert.are.same({ name = "MyVirtualCluster", containerProvider = { id = "EKSClusterName", type = "EKS",
      info = { eksInfo = { namespace = "namespace" } } } },
      (function() local t = plain(create); t.clientToken = nil; return t end)())
    assert.is_string(create.clientToken)
    local start = plain(json.decode(posts[2].body))
    assert.is_string(start.clientToken)
    start.clientToken = nil
    assert.are.same({
      name = "MyJobName",
      executionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role",
      releaseLabel = "emr-6.2.0-latest",
      jobDriver = { sparkSubmitJobDriver = {
        entryPoint = "s3://my-bucket/jobs/trip-count.py",
        entryPointArguments = { "60" },
        sparkSubmitParameters = "--conf spark.driver.cores=2 --conf spark.executor.instances=10 "
          .. "--conf spark.kubernetes.pyspark.pythonVersion=3 --conf spark.executor.memory=10G "
          .. "--conf spark.driver.memory=10G --conf spark.executor.cores=1 "
          .. "--conf spark.dynamicAllocation.enabled=false" } },
      configurationOverrides = {
        applicationConfiguration = { { classification = "spark-defaults",
          properties = { ["spark.executor.instances"] = "2", ["spark.executor.memory"] = "2G" } } },
        monitoringConfiguration = { persistentAppUI = "ENABLED",
          cloudWatchMonitoringConfiguration = { logGroupName = "MyLogGroupName",
                                                logStreamNamePrefix = "MyLogStreamNamePrefix" },
          s3MonitoringConfiguration = { logUri = "s3://<mylogsbucket>" } } },
    }, start)
    assert.matches("^/virtualclusters/[0-9a-z]+/jobruns$", posts[2].path)
    assert.are.equal(1, #deletes)
    assert.matches("^/virtualclusters/[0-9a-z]+$", deletes[1].path)
  end)

  live("no endpoint given: https://emr-containers.<region>.amazonaws.com, through HTTPS_PROXY, "
    .. "trusting AWS_CA_BUNDLE", function()
    -- Client issue: default endpoint (reference A2), proxies, AWS_CA_BUNDLE, TLS verification.
    -- The "service" is a TLS fake_emr whose certificate names the real host; the proxy (a
    -- fake with --connect-to) tunnels every CONNECT to it, so nothing leaves 127.0.0.1.
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -m 700 " .. dir)
    local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    if not os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 "
      .. "-subj /CN=emr-containers.us-east-1.amazonaws.com "
      .. "-addext subjectAltName=DNS:emr-containers.us-east-1.amazonaws.com,IP:127.0.0.1 "
      .. ">/dev/null 2>&1"):format(key, cert)) then
      os.execute("rm -rf " .. dir)
      return pending("openssl could not make a certificate")
    end
    local service = fake.start("fake_emr", { "--tls-cert", cert, "--tls-key", key })
    local proxy = fake.start("fake_echo", { "--connect-to", tostring(service.port) })
    local def = tmpfile('{"StartAt":"L","States":{"L":{"Type":"Task",'
      .. '"Resource":"arn:aws:states:::aws-sdk:emrcontainers:listVirtualClusters",'
      .. '"Parameters":{},"End":true}}}')
    local ok, perr = pcall(function()
      local base = FAKE_CREDS .. "HTTPS_PROXY=" .. proxy.url .. " https_proxy=" .. proxy.url .. " "
      local code, out, err = emrflow("run " .. q(def) .. " --region us-east-1",
          base .. "AWS_CA_BUNDLE=" .. cert .. " ")
      assert.are.equal(0, code, err)
      assert.are.same({}, plain(json.decode(out).VirtualClusters))
      local connects = proxy:requests{ method = "CONNECT" }
      assert.is_true(#connects >= 1)
      assert.matches("^emr%-containers%.us%-east%-1%.amazonaws%.com:443", connects[1].path)
      -- the Authorization header never goes to the proxy
      assert.is_nil(header_of(connects[1], "Authorization"))
      local gets = service:requests{ method = "GET" }
      assert.are.equal("/virtualclusters", gets[1].path)
      -- without the bundle the certificate is not trusted: emrflow fails (exit 2, no retry storm)
      local code2 = emrflow("run " .. q(def) .. " --region us-east-1", base)
      assert.are.equal(2, code2)
      assert.are.equal(1, #service:requests{ method = "GET" })
    end)
    proxy:stop()
    service:stop()
    os.remove(def)
    os.execute("rm -rf " .. dir)
    if not ok then error(perr, 0) end
  end)

  live("SIGTERM aborts: the running job gets CancelJobRun, ABORTED in the result file, exit 2", function()
    local srv = fake.start("fake_emr", { job_seconds = 60, cancel_seconds = 0.1 })
    local rf = os.tmpname()
    local env = CLEAN_ENV .. FAKE_CREDS
    -- start in the background; once the job run exists (it would run 3 minutes), SIGTERM
    local pidfile, codefile = os.tmpname(), os.tmpname()
    os.remove(codefile)
    local inner = string.format("%s lua5.4 bin/emrflow run %s --region us-east-1 --endpoint-url %s "
      .. "--result-file %s >/dev/null 2>&1 & echo $! > %s; wait $!; echo $? > %s",
      env, JSON_EX, srv.url, rf, pidfile, codefile)
    os.execute("sh -c " .. q(inner) .. " >/dev/null 2>&1 &")
    local t0 = os.time()
    local started = false
    for _ = 1, 150 do
      if #srv:requests{ method = "POST",
          path_prefix = "/virtualclusters/" } >= 1 then started = true break end
      os.execute("sleep 0.1")
    end
    assert.is_true(started, "StartJobRun never arrived")
    local pid = (read(pidfile) or ""):match("%d+")
    assert.is_truthy(pid)
    os.execute("kill -TERM " .. pid)
    local code
    for _ = 1, 200 do
      code = read(codefile)
      if code and code:match("%d") then break end
      os.execute("sleep 0.1")
    end
    os.remove(pidfile)
    os.remove(codefile)
    assert.are.equal("2", code and code:match("%d+"))
    assert.is_true(os.time() - t0 < 25, "stopped promptly")
    local deletes = srv:requests{ method = "DELETE" }
    local st = srv:control("GET", "/__fake/state")
    srv:stop()
    local r = json.decode(assert(read(rf)))
    os.remove(rf)
    assert.are.equal("ABORTED", r.status)
    local cancelled = 0
    for _, d in ipairs(deletes) do if d.path:find("/jobruns/", 1, true) then cancelled = cancelled + 1 end end
    assert.are.equal(1, cancelled)
    assert.are.equal("CANCELLED", st.jobRuns[1].state)
  end)
end)

-- Issue #14 item 2: configuration problems are found before the execution starts: exit 1, no
-- state runs, a clear message without source paths, never a Task error a Catch could swallow.
describe("acceptance: pre-flight checks of emrflow run", function()
  -- The example's first Task wrapped in a Catch of everything: a configuration problem must
  -- not become a caught Task failure (the run would "succeed").
  local CAUGHT = [[{"StartAt":"Create","States":{
    "Create":{"Type":"Task","Resource":"arn:aws:states:::emr-containers:createVirtualCluster",
      "Parameters":{"Name":"vc","ContainerProvider":{"Id":"eks","Type":"EKS"}},
      "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Swallowed"}],"End":true},
    "Swallowed":{"Type":"Pass","End":true}}}]]
  local def
  setup(function() def = tmpfile(CAUGHT) end)
  teardown(function() os.remove(def) end)

  local cases = {
    { "no region", FAKE_CREDS, "", "no AWS region: pass --region, or set AWS_REGION" },
    { "a malformed --region", FAKE_CREDS, "--region 'us east 1'",
      "region 'us east 1' is not a valid region name" },
    { "a malformed AWS_REGION", FAKE_CREDS .. "AWS_REGION=us_east!1 ", "", "is not a valid region name" },
    { "no credentials", "AWS_REGION=us-east-1 ", "", "no AWS credentials found" },
    { "a session token with CR/LF",
      FAKE_CREDS .. "AWS_REGION=us-east-1 AWS_SESSION_TOKEN=\"$(printf 'tok\\r\\nen')\" ",
      "", "session token from environment contains a line break" },
    { "an unknown profile", "AWS_REGION=us-east-1 ", "--profile nosuch", "profile 'nosuch'" },
    { "an unknown AWS_PROFILE", "AWS_REGION=us-east-1 AWS_PROFILE=nosuch ", "",
      "profile 'nosuch' (from AWS_PROFILE)" },
    { "an --endpoint-url without a scheme", FAKE_CREDS .. "AWS_REGION=us-east-1 ",
      "--endpoint-url localhost:4566",
      "--endpoint-url 'localhost:4566' is not an http:// or https:// URL" },
    { "an AWS_ENDPOINT_URL without a scheme",
      FAKE_CREDS .. "AWS_REGION=us-east-1 AWS_ENDPOINT_URL=localhost:4566 ",
      "", "AWS_ENDPOINT_URL must be an http(s):// URL" },
  }
  for _, c in ipairs(cases) do
    it(c[1] .. ": exit 1 before any state runs, a clear message", function()
      local code, out, err = emrflow("run " .. def .. " --events " .. c[3], c[2])
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.matches(c[4], err, 1, true)
      assert.matches("^emrflow: ", err)
      assert.is_nil(err:find("ExecutionStarted", 1, true), "no state ran:\n" .. err)
      assert.is_nil(err:find("started arn:", 1, true), err)
      assert.is_nil(err:find("%.lua:%d"), "no source path:\n" .. err)
      assert.is_nil(err:find("tok\r\nen", 1, true))
    end)
  end

  it("names the states that would call AWS", function()
    local _, _, err = emrflow("run " .. def, "AWS_REGION=us-east-1 ")
    assert.matches("for the EMR on EKS calls of Create:", err, 1, true)
    -- several, in reading order
    local _, _, err2 = emrflow("run " .. JSON_EX, "AWS_REGION=us-east-1 ")
    assert.matches("calls of Create_Virtual_Cluster, Submit_Job, Delete_Virtual_Cluster:", err2, 1, true)
  end)

  it("is not done with --local, nor for a definition without AWS integrations", function()
    local code = emrflow("run " .. def .. " --local")
    assert.are.equal(0, code)
    local pass = tmpfile([[{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}]])
    local code2 = emrflow("run " .. pass)
    os.remove(pass)
    assert.are.equal(0, code2)
  end)

  it("skips Tasks that a handler or a mock answers (in-process)", function()
    local cli = require "emrflow.cli"
    local asl = require "emrflow.asl"
    local m = asl.load(CAUGHT, { name = "caught" })
    local handlers = { ["arn:aws:states:::emr-containers:*"] = function() end }
    assert.are.same({}, cli.preflight(m, { handlers = handlers }))
    local mocks = { config = { StateMachines = { caught = { TestCases = { happy = { Create = "R" } } } },
                               MockedResponses = { R = { ["0"] = { Return = {} } } } },
                    test_case = "happy" }
    assert.are.same({}, cli.preflight(m, { mocks = mocks }))
    assert.are.same({}, cli.preflight(m, { emr = { call = function() end } }))
    -- with none of these, the state is listed (and the missing region found)
    local ok, err = pcall(cli.preflight, m, { region = "bad region!", endpoint_url = "http://127.0.0.1:1" })
    assert.is_false(ok)
    assert.matches("Create", err.message, 1, true)
  end)
end)

-- Issue #14 item 6: --local starts from existing virtual clusters (scenario virtual_clusters).
describe("acceptance: --local with the scenario's virtual_clusters", function()
  local JOB = [[{"StartAt":"Submit","States":{"Submit":{"Type":"Task",
    "Resource":"arn:aws:states:::emr-containers:startJobRun.sync",
    "Parameters":{"VirtualClusterId.$":"$.VirtualClusterId","Name":"nightly",
      "ExecutionRoleArn":"arn:aws:iam::123456789012:role/r","ReleaseLabel":"emr-6.2.0-latest",
      "JobDriver":{"SparkSubmitJobDriver":{"EntryPoint":"s3://my-bucket/x.py"}}},
    "ResultSelector":{"State.$":"$.State","VirtualClusterId.$":"$.VirtualClusterId"},"End":true}}}]]
  local VC = "abcdefghij0123456789abcde"

  it("a workflow taking a VirtualClusterId as input runs locally", function()
    local def = tmpfile(JOB)
    local sc = tmpfile('{"virtual_clusters":[{"id":"' .. VC .. '","name":"prod","state":"RUNNING",'
      .. '"container_provider_id":"eks-prod"}]}')
    local input = " --input '{\"VirtualClusterId\":\"" .. VC .. "\"}'"
    local code, out, err = emrflow("run " .. def .. " --local --scenario " .. sc .. input)
    assert.are.equal(0, code, err)
    assert.are.same({ State = "COMPLETED", VirtualClusterId = VC }, json.decode(out))
    -- without it, the cluster does not exist
    local code2, _, err2 = emrflow("run " .. def .. " --local" .. input)
    assert.are.equal(2, code2)
    assert.matches("EmrContainers.ResourceNotFoundException", err2, 1, true)
    -- a TERMINATED one cannot take jobs
    local sc2 = tmpfile('{"virtual_clusters":[{"id":"' .. VC .. '","state":"TERMINATED"}]}')
    local code3 = emrflow("run " .. def .. " --local --scenario " .. sc2 .. input)
    assert.are.equal(2, code3)
    for _, f in ipairs { def, sc, sc2 } do os.remove(f) end
  end)

  it("a bad virtual_clusters entry exits 1 naming the file and the field", function()
    local def = tmpfile(JOB)
    for _, c in ipairs {
      { '{"virtual_clusters":{}}', "virtual_clusters" },
      { '{"virtual_clusters":[{"id":"UPPER"}]}', "id" },
      { '{"virtual_clusters":[{"id":"abc","colour":"red"}]}', "colour" },
      { '{"virtual_clusters":[{"id":"abc","state":"SLEEPY"}]}', "state" },
    } do
      local sc = tmpfile(c[1])
      local code, _, err = emrflow("run " .. def .. " --local --scenario " .. sc)
      assert.are.equal(1, code, err)
      assert.matches(sc, err, 1, true)
      assert.matches(c[2], err, 1, true)
      os.remove(sc)
    end
    os.remove(def)
  end)
end)
