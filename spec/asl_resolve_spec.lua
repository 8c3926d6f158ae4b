-- How a Task's resource resolves at run time: Lua handlers, then mocks, then registered
-- integrations, else States.Runtime; machine:unresolved; execution ids and token seeds.
local asl = require "emrflow.asl"

local SNS = "arn:aws:states:::sns:publish"
local LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:hello"

local function task_machine(resource, extra)
  local t = { Type = "Task", Resource = resource, End = true }
  for k, v in pairs(extra or {}) do t[k] = v end
  return asl.load({ StartAt = "T", States = { T = t } }, { name = "resolve-spec" })
end

-- A mocks object as emrflow.asl.mocks builds them: lookup(state, invocation) -> response | nil, err.
local function fake_mocks(responses)
  local calls = {}
  return {
    calls = calls,
    lookup = function(_, state, n)
      calls[#calls + 1] = { state, n }
      local per = responses[state]
      if not per then return nil end
      local r = per[n]
      if r == nil then return nil, ("no mocked response for state '%s' invocation %d"):format(state, n) end
      return r
    end,
  }
end

describe("emrflow.asl resource resolution", function()
  it("a Lua handler given at start runs the Task (exact resource)", function()
    local m = task_machine(SNS)
    local status, out = m:run({ v = 1 }, { clock = "virtual", handlers = {
      [SNS] = function(input, ctx) return { got = input.v, state = ctx.state_name } end } })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ got = 1, state = "T" }, out)
  end)

  it("a glob handler matches, and an exact one wins over it", function()
    local m = task_machine(LAMBDA)
    local status, out = m:run({}, { clock = "virtual", handlers = {
      ["arn:aws:lambda:*"] = function() return "glob" end } })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal("glob", out)
    status, out = m:run({}, { clock = "virtual", handlers = {
      ["arn:aws:lambda:*"] = function() return "glob" end, [LAMBDA] = function() return "exact" end } })
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal("exact", out)
  end)

  it("handlers come before mocks, mocks before registered integrations", function()
    local entry = asl.register_resource("^arn:aws:states:::sns:publish$",
      { run = function() return "registered" end })
    local ok, err = pcall(function()
      local m = task_machine(SNS)
      local mocks = fake_mocks { T = { [0] = { Return = "mocked" } } }
      local _, out = m:run({}, { clock = "virtual", mocks = mocks })
      assert.are.equal("mocked", out)
      _, out = m:run({}, { clock = "virtual", mocks = mocks,
        handlers = { [SNS] = function() return "h" end } })
      assert.are.equal("h", out)
      _, out = m:run({}, { clock = "virtual" })
      assert.are.equal("registered", out)
    end)
    asl.unregister_resource(entry)
    assert(ok, err)
  end)

  it("counts a state's invocations from 0, retries included; a mocked Throw is retried and caught", function()
    local m = task_machine(SNS, {
      Retry = { { ErrorEquals = { "Boom" }, MaxAttempts = 2, IntervalSeconds = 1 } } })
    local mocks = fake_mocks { T = {
      [0] = { Throw = { Error = "Boom", Cause = "first" } },
      [1] = { Throw = { Error = "Boom", Cause = "second" } },
      [2] = { Return = { done = true } },
    } }
    local status, out = m:run({}, { clock = "virtual", mocks = mocks })
    assert.are.equal("SUCCEEDED", status)
    assert.are.same({ done = true }, out)
    assert.are.same({ { "T", 0 }, { "T", 1 }, { "T", 2 } }, mocks.calls)
  end)

  it("an invocation no mock key covers fails the Task with States.Runtime", function()
    local m = task_machine(SNS)
    local status, err = m:run({}, { clock = "virtual", mocks = fake_mocks { T = {} } })
    assert.are.equal("FAILED", status)
    assert.are.equal("States.Runtime", err.Error)
    assert.truthy(err.Cause:find("invocation 0", 1, true), err.Cause)
  end)

  it("machine:unresolved lists every Task nothing resolves, nested ones too", function()
    local m = asl.load({ StartAt = "P", States = {
      P = { Type = "Parallel", Next = "M", Branches = { { StartAt = "A", States = {
        A = { Type = "Task", Resource = SNS, End = true } } } } },
      M = { Type = "Map", End = true, ItemProcessor = { StartAt = "B", States = {
        B = { Type = "Task", Resource = LAMBDA, End = true } } } },
    } })
    assert.are.same({
      { state = "/States/M/ItemProcessor/States/B", resource = LAMBDA },
      { state = "/States/P/Branches/0/States/A", resource = SNS },
    }, m:unresolved())
    assert.are.same({ { state = "/States/M/ItemProcessor/States/B", resource = LAMBDA } },
      m:unresolved { handlers = { ["arn:aws:states:::*"] = function() end } })
    assert.are.same({}, m:unresolved { handlers = { ["arn:aws:states:::*"] = function() end },
      mocks = fake_mocks { B = { [0] = { Return = 1 } } } })
  end)

  it("a handler that is not a function is refused at start", function()
    local m = task_machine(SNS)
    assert.has_error(function() m:start({}, { handlers = { [SNS] = "nope" } }) end)
  end)
end)

describe("emrflow.asl execution ids and idempotency seeds", function()
  local function seeds(opts)
    local got = {}
    local m = asl.load({ StartAt = "P", States = { P = { Type = "Parallel", End = true, Branches = {
      { StartAt = "A", States = { A = { Type = "Task", Resource = SNS, End = true } } },
      { StartAt = "B", States = { B = { Type = "Map", End = true, ItemProcessor = { StartAt = "C", States = {
        C = { Type = "Task", Resource = SNS, End = true } } } } } },
    } } } })
    opts = opts or {}
    opts.clock = "virtual"
    opts.handlers = { [SNS] = function(_, ctx) got[#got + 1] = ctx.client_token_seed return 1 end }
    local x = m:start({ 1, 2 }, opts)
    assert.are.equal("SUCCEEDED", (x:wait()))
    table.sort(got)
    return got, x
  end

  it("mints a unique id per execution, even under the same name", function()
    local a, xa = seeds { name = "same" }
    local b, xb = seeds { name = "same" }
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", xa.id)
    assert.are_not.equal(xa.id, xb.id)
    for i = 1, #a do assert.are_not.equal(a[i], b[i]) end
  end)

  it("reuses a given execution_id (resume), and tells branches and iterations apart", function()
    local a = seeds { execution_id = "fixed-id" }
    local b = seeds { execution_id = "fixed-id" }
    assert.are.same(a, b)
    assert.are.equal(3, #a)
    local distinct, n = {}, 0
    for _, s in ipairs(a) do
      if not distinct[s] then n = n + 1 end
      distinct[s] = true
    end
    assert.are.equal(3, n)
  end)
end)

describe("emrflow.asl: integrations found by convention", function()
  it("an EMR on EKS machine runs and validates without requiring emrflow.emr first", function()
    -- a fresh Lua process, so nothing registered the integration beforehand
    local script = [[
      local asl = require "emrflow.asl"
      assert(package.loaded["emrflow.emr.tasks"] == nil)
      local p = asl.validate('{"StartAt":"A","States":{"A":{"Type":"Task",'
        .. '"Resource":"arn:aws:states:::emr-containers:createVirtualCluster.sync","End":true}}}')
      assert(#p == 1 and p[1].message:find("does not support .sync", 1, true), p[1] and p[1].message)
      local f = assert(io.open("examples/emr-eks-pipeline.json"))
      local m = asl.load(f:read("a")); f:close()
      local status = m:start({}, { emr = require("emrflow.emulator").new{}, clock = "virtual" }):wait()
      io.write(status)
    ]]
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w")); f:write(script); f:close()
    local p = io.popen("lua5.4 " .. tmp .. " 2>&1")
    local out = p:read("a"); p:close()
    os.remove(tmp)
    assert.are.equal("SUCCEEDED", out)
  end)
end)

describe("emrflow.asl: errors raised by Lua handlers", function()
  it("reach the Cause without the Lua position, wherever the handler was defined", function()
    local m = asl.load { StartAt = "T", States = {
      T = { Type = "Task", Resource = "arn:aws:states:::lambda:invoke", End = true } } }
    local from_file = function() error("boom") end           -- this spec file: "...lua:N: "
    local from_chunk = load("return function() error('bang') end")()  -- '[string "..."]:1: '
    for fn, want in pairs { [from_file] = "boom", [from_chunk] = "bang" } do
      local status, err = m:run({}, { clock = "virtual", handlers = { ["arn:aws:states:::lambda:*"] = fn } })
      assert.are.equal("FAILED", status)
      assert.are.equal("States.TaskFailed", err.Error)
      assert.are.equal(want, err.Cause)
    end
  end)
end)
