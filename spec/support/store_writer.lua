-- A writer for spec/store_kill_spec.lua: appends events (and effects) to one execution in
-- groups of random size until it is killed, printing "ack <id>" once each group's append
-- has returned. Continues after the last recorded event, as a resumed execution would.
--
--   lua5.4 spec/support/store_writer.lua STORE SEED [MAX_EVENTS [NAME]]
local store = require "emrflow.store"
local json = require "emrflow.json"

local path, seed, max_events = arg[1], tonumber(arg[2]), tonumber(arg[3] or "200000")
local name = arg[4] or "victim"
math.randomseed(seed)

local s = assert(store.open(path))
local x = s:find(name)
if not x then
  x = assert(s:create_execution {
    arn = "arn:aws:states:us-east-1:123456789012:execution:kill:" .. name, name = name,
    machine_name = "kill", machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:kill",
    definition = "{}", input = json.object {},
  })
end
local id = assert(s:last_event_id(x))
print("start " .. id)
io.stdout:flush()

local pad = string.rep("p", 300)
while id < max_events do
  local group = {}
  for i = 1, math.random(1, 40) do
    group[i] = { id = id + i, previousEventId = id + i - 1, timestamp = 1733560000 + id + i,
      type = "PassStateEntered",
      stateEnteredEventDetails = { name = "S" .. (id + i), input = { n = id + i, pad = pad } } }
  end
  assert(s:append_events(x, group))
  id = id + #group
  if math.random() < 0.2 then
    assert(s:record_effect(x, "effect-" .. id, "task", { ClientToken = "token-" .. id }))
    print("effect " .. id)
  end
  print("ack " .. id)
  io.stdout:flush()
end
print("done")
