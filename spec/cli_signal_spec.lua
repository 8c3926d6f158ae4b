-- SIGINT / SIGTERM to `emrflow run` abort the execution: ABORTED, exit code 2.
local json = require "emrflow.json"

local function tmp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

describe("emrflow run and signals", function()
  for _, sig in ipairs{ "INT", "TERM" } do
    it("SIG" .. sig .. " stops a running execution: ABORTED in the result file, exit 2", function()
      local def = tmp('{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}')
      local result = os.tmpname()
      local cmd = string.format(
        "lua5.4 bin/emrflow run %s --result-file %s 2>/dev/null & pid=$!; sleep 0.7; " ..
        "kill -%s $pid; wait $pid; echo \"exit=$?\"", def, result, sig)
      local t0 = os.time()
      local p = io.popen(cmd)
      local out = p:read("a")
      p:close()
      assert.matches("exit=2", out)
      assert.is_true(os.time() - t0 < 20, "stopped promptly, not after the Wait")
      local r = json.decode(assert(read(result)))
      assert.equal("ABORTED", r.status)
      assert.equal("stopped by SIG" .. sig, r.cause)
      os.remove(def)
      os.remove(result)
    end)
  end
end)
