-- `emrflow run --events` writes event timestamps as `emrflow history` does (and AWS's
-- GetExecutionHistory): seconds to the millisecond, the same value for the same event.
local su = require "support.store_util"
local progress = require "emrflow.progress"
local json = require "emrflow.json"

-- The timestamps of the JSON lines of text, as written (the number's text).
local function stamps(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then list[#list + 1] = assert(line:match('"timestamp":([%d%.eE%+%-]+)')) end
  end
  return list
end

describe("--events timestamps", function()
  after_each(su.cleanup)

  it("are milliseconds, the same as emrflow history's", function()
    local dir = su.tmpdir()
    local def, db = dir .. "/chain.json", dir .. "/x.db"
    su.write(def, [[{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},
      "B":{"Type":"Pass","Result":{"n":1},"End":true}}}]])
    local env = "EMRFLOW_STORE=/dev/null/no-store lua5.4 bin/emrflow "
    local ok = su.sh("(" .. env .. "run " .. su.quote(def) .. " --name e1 --store " .. su.quote(db)
      .. " --events 2>" .. su.quote(dir .. "/events") .. " >/dev/null)")
    assert.is_true(ok)
    local live = stamps(su.read(dir .. "/events"))
    local hok, history = su.sh(env .. "history e1 --store " .. su.quote(db))
    assert.is_true(hok, history)
    local stored = stamps(history)
    assert.equal(6, #live) -- started, 2 x (entered, exited), succeeded
    assert.same(stored, live)
    for _, t in ipairs(live) do
      local decimals = t:match("%.(%d+)$") or ""
      assert.is_true(#decimals <= 3, "timestamp " .. t .. " has more than 3 decimals")
    end
  end)

  it("are rounded to the millisecond by progress.materialize", function()
    local e = progress.materialize({ id = 1, previousEventId = 0, timestamp = 1796636053.1445913,
      type = "ExecutionStarted" }, true)
    assert.equal(1796636053.145, e.timestamp)
    assert.matches('"timestamp":1796636053.145,', json.encode(e), 1, true)
  end)
end)
