-- Distributed Map: every iteration a child execution with its own history, as on AWS, so the
-- parent's history holds only the Map Run events and stays under its 25,000-event quota.
local asl = require "emrflow.asl"

local function distributed(extra)
  local m = { Type = "Map", End = true, ItemProcessor = {
    ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" },
    StartAt = "Double", States = {
      Double = { Type = "Pass", Parameters = { ["v.$"] = "$" }, Next = "Done" },
      Done = { Type = "Succeed" } } } }
  for k, v in pairs(extra or {}) do m[k] = v end
  return { StartAt = "M", States = { M = m } }
end

describe("emrflow.asl Distributed Map", function()
  it("runs 10,000 items as child executions; the parent's history stays small", function()
    local items = {}
    for i = 1, 10000 do items[i] = i end
    local children, child_events = 0, 0
    local x = asl.load(distributed()):start(items, { clock = "virtual",
      on_child_execution = function(c)
        children = children + 1
        child_events = child_events + #c:history()
      end })
    local status, out = x:wait()
    assert.are.equal("SUCCEEDED", status)
    assert.are.equal(10000, #out)
    assert.are.same({ v = 1 }, out[1])
    assert.are.same({ v = 10000 }, out[10000])
    assert.are.equal(10000, children)
    -- each child: ExecutionStarted, Pass entered/exited, Succeed entered/exited, ExecutionSucceeded
    assert.are.equal(60000, child_events)
    local types = x:event_types()
    assert.is_true(#types < 20, table.concat(types, ","))
    local has_run = false
    for _, t in ipairs(types) do if t == "MapRunStarted" then has_run = true end end
    assert.is_true(has_run)
  end)

  it("a child execution has its own history, id and context; it does not see the parent's variables",
    function()
      local seen = {}
      local def = { StartAt = "Set", States = {
        Set = { Type = "Pass", Assign = { secret = 1 }, Next = "M" },
        M = { Type = "Map", End = true, ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED", ExecutionType = "STANDARD" }, StartAt = "T", States = {
            T = { Type = "Task", Resource = "arn:aws:states:::sns:publish", End = true,
              Parameters = { ["exec.$"] = "$$.Execution.Id" } } } } } } }
      local x = asl.load(def):start({ 1, 2 }, { clock = "virtual",
        handlers = { ["arn:aws:states:::sns:publish"] = function(input, ctx)
          seen[#seen + 1] = { exec = input.exec, seed = ctx.client_token_seed }
          return input.exec
        end },
        on_child_execution = function(c)
          local h = c:history()
          assert.are.equal("ExecutionStarted", h[1].type)
          assert.are.equal("ExecutionSucceeded", h[#h].type)
        end })
      local status, out = x:wait()
      assert.are.equal("SUCCEEDED", status)
      assert.are_not.equal(out[1], out[2])
      assert.truthy(out[1]:find(":execution:", 1, true), out[1])
      assert.are_not.equal(seen[1].seed, seen[2].seed)
      local vs = asl.validate { StartAt = "Set", States = {
        Set = { Type = "Pass", Assign = { secret = 1 }, Next = "M" },
        M = { Type = "Map", End = true, ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED" }, StartAt = "P", States = {
            P = { Type = "Pass", Parameters = { ["s.$"] = "$secret" }, End = true } } } } } }
      assert.are.same({}, vs)
      local st = asl.load { StartAt = "Set", States = {
        Set = { Type = "Pass", Assign = { secret = 1 }, Next = "M" },
        M = { Type = "Map", End = true, ItemProcessor = {
          ProcessorConfig = { Mode = "DISTRIBUTED" }, StartAt = "P", States = {
            P = { Type = "Pass", Parameters = { ["s.$"] = "$secret" }, End = true } } } } } }
        :run({ 1 }, { clock = "virtual" })
      assert.are.equal("FAILED", st)
    end)

  it("a failing child fails the Map Run (MapRunFailed) and the Map state, over its tolerance of 0", function()
    local def = distributed()
    def.States.M.ItemProcessor.States = { Double = { Type = "Fail", Error = "Bad", Cause = "item" } }
    local x = asl.load(def):start({ 1 }, { clock = "virtual" })
    local status, err = x:wait()
    assert.are.equal("FAILED", status)
    -- as on AWS: the threshold error, not the child's own (spec/dmap_failure_spec.lua has more)
    assert.are.equal("States.ExceedToleratedFailureThreshold", err.Error)
    local failed = false
    for _, t in ipairs(x:event_types()) do if t == "MapRunFailed" then failed = true end end
    assert.is_true(failed)
  end)
end)
