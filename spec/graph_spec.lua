-- emrflow.graph and `emrflow graph`: the machine as a picture (mermaid, dot, svg) and an
-- execution's outcome per state (issue #14 item 4).
local graph = require "emrflow.graph"
local asl = require "emrflow.asl"
local json = require "emrflow.json"

local files = {}
local function tmp(content, suffix)
  local name = os.tmpname() .. (suffix or "")
  local f = assert(io.open(name, "w"))
  f:write(content)
  f:close()
  files[#files + 1] = name
  return name
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- graphviz's dot leaks memory, which LeakSanitizer reports when `make asan` preloads it into
-- every child process: dot then runs through a wrapper without the preload.
local DOT_ENV = ""
local DOT_WRAPPER
if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
  local wrapper = os.tmpname()
  local f = assert(io.open(wrapper, "w"))
  f:write('#!/bin/sh\nunset LD_PRELOAD\nexec dot "$@"\n')
  f:close()
  os.execute("chmod +x " .. wrapper)
  DOT_ENV = "EMRFLOW_DOT=" .. wrapper .. " "
  -- removed after the last block (each block's teardown removes the files made so far)
  DOT_WRAPPER = wrapper
end
local function emrflow(args, env)
  local errf = tmp("")
  local p = io.popen((env or "") .. "lua5.4 bin/emrflow " .. args .. " 2>" .. errf)
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errf)
  local err = f:read("a")
  f:close()
  return code, out, err
end

-- Every kind of edge and container: Choice rules and Default, Catch, Map, Parallel, End.
local DEF = [[{"StartAt":"Check","States":{
  "Check":{"Type":"Choice","Choices":[
      {"Variable":"$.n","NumericGreaterThan":10,"Next":"Fan"},
      {"And":[{"Variable":"$.s","StringEquals":"x"},
              {"Not":{"Variable":"$.b","BooleanEquals":true}}],"Next":"Both"}],
    "Default":"Done"},
  "Fan":{"Type":"Map","ItemsPath":"$.items","ItemProcessor":{"StartAt":"Work","States":{
      "Work":{"Type":"Task","Resource":"arn:aws:states:::emr-containers:startJobRun.sync","End":true}}},
    "Catch":[{"ErrorEquals":["States.TaskFailed","States.Timeout"],"Next":"Oops"}],"Next":"Done"},
  "Both":{"Type":"Parallel","Branches":[
      {"StartAt":"Left","States":{"Left":{"Type":"Pass","End":true}}},
      {"StartAt":"Right","States":{"Right":{"Type":"Wait","Seconds":1,"End":true}}}],"Next":"Done"},
  "Oops":{"Type":"Fail","Error":"Bad"},
  "Done":{"Type":"Succeed"}}}]]

describe("emrflow.graph", function()
  teardown(function() for _, f in ipairs(files) do os.remove(f) end end)

  local def = json.decode(DEF)

  it("mermaid: Map and Parallel as subgraphs, every edge labelled", function()
    local text = graph.render(def, { format = "mermaid" })
    assert.matches("^flowchart TD\n", text)
    local m = graph.model(def)
    local id = {}
    for _, n in ipairs(m.nodes) do id[n.name] = n.id end
    -- reading order: StartAt first
    assert.are.equal("Check", m.nodes[1].name)
    assert.matches('subgraph g%d+ %["Map: Fan"%]\n%s+' .. id.Fan .. '%["Fan<br/>Map"%]', text)
    assert.matches('subgraph g%d+ %["Parallel: Both"%]', text)
    assert.matches('subgraph g%d+ %["branch 1"%]\n%s+' .. id.Left, text)
    assert.matches('subgraph g%d+ %["branch 2"%]\n%s+' .. id.Right, text)
    local function edge(from, label, to)
      assert.matches(from .. ' %-%->|"' .. label:gsub("%p", "%%%0") .. '"| ' .. to, text)
    end
    edge(id.Check, "$.n #gt; 10", id.Fan)
    edge(id.Check, '($.s == #quot;x#quot; and not $.b == true)', id.Both)
    edge(id.Check, "Default", id.Done)
    edge(id.Fan, "Catch States.TaskFailed, States.Timeout", id.Oops)
    edge(id.Fan, "Next", id.Done)
    edge(id.Fan, "each item", id.Work)
    edge(id.Both, "branch 1", id.Left)
    edge(id.Both, "branch 2", id.Right)
    edge(id.Done, "End", "__end")
    assert.matches(id.Check .. '{"Check"}', text, 1, true)
    assert.matches(id.Work .. '%["Work<br/>emr%-containers:startJobRun.sync"%]', text)
    -- no execution, no colours
    assert.is_nil(text:find("classDef", 1, true))
  end)

  it("dot: clusters for Map and Parallel, labelled edges; graphviz accepts it", function()
    local text = graph.render(def, { format = "dot", title = "flow" })
    assert.matches('^digraph "flow" {', text)
    assert.are.equal(4, select(2, text:gsub("subgraph cluster_", "")))
    assert.matches('%[label="Default"%]', text)
    assert.matches('%[label="Catch States.TaskFailed, States.Timeout"%]', text)
    if graph.dot_command() then
      local src = tmp(text, ".dot")
      local p = io.popen("env -u LD_PRELOAD dot -Tplain " .. q(src) .. " 2>&1")
      local out = p:read("a")
      assert.is_true((p:close()), out)
      assert.matches("^graph ", out)
    end
  end)

  it("colours each state by what the execution did: succeeded, failed, caught, not reached", function()
    local m = asl.load {
      StartAt = "Try", States = {
        Try = { Type = "Task", Resource = function() error({ Error = "E", Cause = "c" }) end,
                Catch = { { ErrorEquals = { "States.ALL" }, Next = "Handle" } }, Next = "Never" },
        Handle = { Type = "Pass", Next = "Give_up" },
        Never = { Type = "Pass", End = true },
        Give_up = { Type = "Fail", Error = "X" },
      } }
    local x = m:start({}, { clock = "virtual" })
    x:wait()
    local events = x:history()
    assert.are.same({ Try = "caught", Handle = "succeeded", Give_up = "failed" }, graph.state_status(events))
    local text = graph.render(m.definition, { events = events })
    local model = graph.model(m.definition)
    local id = {}
    for _, n in ipairs(model.nodes) do id[n.name] = n.id end
    assert.matches("\n  class " .. id.Try .. " caught\n", text, 1, true)
    assert.matches("\n  class " .. id.Handle .. " succeeded\n", text, 1, true)
    assert.matches("\n  class " .. id.Give_up .. " failed\n", text, 1, true)
    assert.matches("\n  class " .. id.Never .. " not_reached\n", text, 1, true)
    assert.matches("%% execution: succeeded 1, failed 1, caught 1", text, 1, true)
    local dot = graph.render(m.definition, { events = events, format = "dot" })
    assert.matches(id.Never .. ' %[label="Never", fillcolor="#eeeeee"', dot)
  end)

  it("a history cut short shows the running state; a retried Task that then succeeds is succeeded", function()
    local n = 0
    local m = asl.load {
      StartAt = "Flaky", States = {
        Flaky = { Type = "Task",
                  Resource = function()
                    n = n + 1
                    if n < 2 then error({ Error = "E" }) end
                    return 1
                  end,
                  Retry = { { ErrorEquals = { "E" }, IntervalSeconds = 1 } }, Next = "Slow" },
        Slow = { Type = "Wait", Seconds = 100, End = true },
      } }
    local x = m:start({}, { clock = "virtual" })
    x:wait()
    local events = x:history()
    assert.are.same({ Flaky = "succeeded", Slow = "succeeded" }, graph.state_status(events))
    local partial = {}
    for _, ev in ipairs(events) do
      partial[#partial + 1] = ev
      if ev.type == "WaitStateEntered" then break end
    end
    assert.are.same({ Flaky = "succeeded", Slow = "running" }, graph.state_status(partial))
  end)

  it("reads histories as JSON lines (skipping emrflow's messages), arrays or {events: [...]}", function()
    local ev = '{"id":1,"previousEventId":0,"type":"PassStateEntered",'
      .. '"stateEnteredEventDetails":{"name":"P"}}'
    assert.are.equal(1, #graph.read_history("emrflow: started x\n" .. ev .. "\n\n"))
    assert.are.equal(1, #graph.read_history("[" .. ev .. "]"))
    assert.are.equal(1, #graph.read_history('{"events":[' .. ev .. "]}"))
    local ok, err = pcall(graph.read_history, ev .. "\n{\"id\":2,", "h.jsonl")
    assert.is_false(ok)
    assert.matches("^h%.jsonl: line 2: invalid JSON: unexpected end of input at column 9 %(byte 9%)$", err)
  end)

  it("reads an indented GetExecutionHistory reply, and says where a broken one breaks", function()
    local indented = '{\n  "events": [\n    {\n      "id": 1,\n      "previousEventId": 0,\n'
      .. '      "type": "PassStateEntered",\n      "stateEnteredEventDetails": { "name": "P" }\n'
      .. '    }\n  ]\n}\n'
    local events = graph.read_history(indented, "h.json")
    assert.are.equal(1, #events)
    assert.are.equal("PassStateEntered", events[1].type)
    -- cut inside the 4th line: the error is the document's, not "line 1" of JSON lines
    local ok, err = pcall(graph.read_history, indented:sub(1, 30), "h.json")
    assert.is_false(ok)
    assert.matches(
      "^h%.json is not valid JSON: unexpected end of input.* at line 4, column %d+ %(byte %d+%)$", err)
  end)
end)

describe("emrflow graph", function()
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
    if DOT_WRAPPER then os.remove(DOT_WRAPPER) end
  end)

  it("prints mermaid by default and dot with --format dot", function()
    local def = tmp(DEF, ".json")
    local code, out = emrflow("graph " .. def)
    assert.are.equal(0, code)
    assert.matches("^flowchart TD\n", out)
    local code2, out2 = emrflow("graph " .. def .. " --format dot")
    assert.are.equal(0, code2)
    assert.matches("^digraph", out2)
  end)

  it("colours by an execution's history from --history (the stderr of run --events)", function()
    local def = tmp([[{"StartAt":"A","States":{"A":{"Type":"Choice",
      "Choices":[{"Variable":"$.go","IsPresent":true,"Next":"C"}],"Default":"B"},
      "B":{"Type":"Fail","Error":"E"},"C":{"Type":"Pass","End":true}}}]], ".json")
    local hist = tmp("", ".jsonl")
    local code = emrflow("run " .. def .. " --events 2>" .. hist .. " #")
    assert.are.equal(2, code)
    local code2, out = emrflow("graph " .. def .. " --history " .. hist)
    assert.are.equal(0, code2)
    -- reading order: A (s1), the Choice's rule target C (s2), its Default B (s3)
    assert.matches("class s1 succeeded", out, 1, true)
    assert.matches("class s2 not_reached", out, 1, true)
    assert.matches("class s3 failed", out, 1, true)
  end)

  it("svg through graphviz's dot when installed, else a clear message (exit 1)", function()
    local def = tmp(DEF, ".json")
    if graph.dot_command() then
      local code, out = emrflow("graph " .. def .. " --format svg", DOT_ENV)
      assert.are.equal(0, code)
      assert.matches("<svg", out, 1, true)
    end
    -- no dot on the PATH (only lua5.4 there)
    local bin = os.tmpname()
    os.remove(bin)
    assert(os.execute("mkdir " .. bin .. " && ln -s \"$(command -v lua5.4)\" " .. bin .. "/lua5.4"))
    local code, out, err = emrflow("graph " .. def .. " --format svg", "PATH=" .. bin .. " ")
    os.execute("rm -r " .. bin)
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("emrflow: --format svg needs graphviz's dot program, which is not installed", err, 1, true)
  end)

  it("EMRFLOW_DOT may be a path or a command name; one that does not exist is named", function()
    local def = tmp(DEF, ".json")
    for _, missing in ipairs { "/nonexistent/dot", "no-such-dot-program" } do
      local code, out, err = emrflow("graph " .. def .. " --format svg", "EMRFLOW_DOT=" .. missing .. " ")
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("EMRFLOW_DOT names graphviz's dot program, but there is no '" .. missing .. "'", err,
        1, true)
    end
    if graph.dot_command() then
      local code, out = emrflow("graph " .. def .. " --format svg", "EMRFLOW_DOT=dot ")
      assert.are.equal(0, code)
      assert.matches("<svg", out, 1, true)
    end
  end)

  it("--execution reads the history from the execution store", function()
    local def = tmp(DEF, ".json")
    local has_store = pcall(require, "emrflow.store")
    local code, _, err = emrflow("graph " .. def .. " --execution nosuch --store " .. os.tmpname() .. ".db")
    assert.are.equal(1, code)
    if has_store then
      assert.matches("nosuch", err, 1, true)
    else
      assert.matches("--history FILE", err, 1, true)
    end
  end)

  it("bad arguments exit 1 with a message", function()
    local def = tmp(DEF, ".json")
    for _, c in ipairs {
      { "graph " .. def .. " --format png", "--format must be mermaid, dot or svg" },
      { "graph " .. def .. " --store x.db", "--store needs --execution" },
      { "graph " .. def .. " --history /nonexistent/h.jsonl", "/nonexistent/h.jsonl" },
      { "graph", "graph takes one DEFINITION" },
    } do
      local code, out, err = emrflow(c[1])
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
