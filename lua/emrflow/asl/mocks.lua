-- emrflow.asl.mocks: Step Functions Local mock configurations (the MockConfigFile format).
--
--   local m = mocks.new(config, test_case, machine_name)
--       config: the configuration as a table, or the path of its JSON file; when nil, the
--       file named by the environment variable SFN_MOCK_CONFIG.
--       Raises an emrflow error (code "mock_config") naming the file and what is wrong:
--       unknown machine or test case, a state mapped to an unknown response, a malformed
--       response or invocation key. The whole MockedResponses block is checked at load.
--   m:lookup(state_name, invocation)
--       invocation counts from 0 (the engine counts every invocation of the state in one
--       execution, retries included) -->
--         { Return = value }                        the mocked result
--         { Throw = { Error = e, Cause = c } }      the mocked failure (Cause may be nil)
--         nil                                        the state is not mocked in this test case
--         false, message                             mocked, but no key covers that invocation
--   m:mocks(state_name)  --> true when the test case mocks that state
--   m.machine_name, m.test_case, m.source (the file path, or "mock configuration table")
--
-- The format:
--   { "StateMachines": { "<machine>": { "TestCases": { "<case>": { "<state>": "<response>" } } } },
--     "MockedResponses": { "<response>": { "0": { "Return": <any JSON> },
--                                          "1-2": { "Throw": { "Error": "E", "Cause": "C" } } } } }
-- Keys are invocation numbers "N" or inclusive ranges "N-M"; they may not overlap.
local json = require "emrflow.json"
local errors = require "emrflow.errors"

local M = {}

local sformat, concat = string.format, table.concat

local Mocks = {}
Mocks.__index = Mocks

local function raise(source, fmt, ...)
  local where = source == "mock configuration table" and "mock configuration" or ("mock config " .. source)
  local message = where .. ": " .. sformat(fmt, ...)
  error(errors.new{ code = "mock_config", message = message }, 0)
end

local function is_object(v)
  return type(v) == "table" and v ~= json.null and not (json.is_array(v) and #v > 0)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local function known(t)
  local keys = sorted_keys(t)
  if #keys == 0 then return "none" end
  return "'" .. concat(keys, "', '") .. "'"
end

local function read_config(config)
  if config == nil then
    config = os.getenv("SFN_MOCK_CONFIG")
    if config == nil or config == "" then
      error(errors.new{ code = "mock_config",
        message = "no mock configuration: give a file or table, or set SFN_MOCK_CONFIG" }, 0)
    end
  end
  if type(config) == "table" then return config, "mock configuration table" end
  if type(config) ~= "string" then
    error(errors.new{ code = "mock_config",
      message = "a mock configuration is a table or a file path, not " .. type(config) }, 0)
  end
  local f, err = io.open(config, "rb")
  if not f then
    error(errors.new{ code = "mock_config", message = "cannot read mock config " .. tostring(err) }, 0)
  end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(json.decode, text)
  if not ok then
    raise(config, "invalid JSON: %s", tostring(value):gsub("^emrflow%.json: ", ""))
  end
  return value, config
end

-- "N" or "N-M" --> lo, hi | nil
local function parse_key(key)
  local a, b = key:match("^(%d+)%-(%d+)$")
  if not a then a = key:match("^(%d+)$"); b = a end
  if not a or #a > 15 or #b > 15 then return nil end
  local lo, hi = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
  if lo > hi then return nil end
  return lo, hi
end

local RESPONSE_FIELDS = { Return = true, Throw = true }

local function check_response(source, where, r)
  if not is_object(r) then
    raise(source, "%s must be an object with \"Return\" or \"Throw\"", where)
  end
  for k in pairs(r) do
    if not RESPONSE_FIELDS[k] then
      raise(source, "%s has an unknown field '%s' (expected \"Return\" or \"Throw\")", where, tostring(k))
    end
  end
  if (r.Return ~= nil) == (r.Throw ~= nil) then
    raise(source, "%s must have exactly one of \"Return\" and \"Throw\"", where)
  end
  if r.Return ~= nil then return { Return = r.Return } end
  local t = r.Throw
  if not is_object(t) or type(t.Error) ~= "string" then
    raise(source, "%s: \"Throw\" must be an object with a string \"Error\" (and an optional "
      .. "\"Cause\")", where)
  end
  if t.Cause ~= nil and t.Cause ~= json.null and type(t.Cause) ~= "string" then
    raise(source, "%s: \"Throw\".\"Cause\" must be a string", where)
  end
  for k in pairs(t) do
    if k ~= "Error" and k ~= "Cause" then
      raise(source, "%s: \"Throw\" has an unknown field '%s' (expected \"Error\" and \"Cause\")", where,
        tostring(k))
    end
  end
  local cause = t.Cause
  if cause == json.null then cause = nil end
  return { Throw = { Error = t.Error, Cause = cause } }
end

-- One mocked response: its invocation ranges, sorted, checked for overlaps.
local function load_response(source, name, entries)
  local where = sformat("MockedResponses.%s", name)
  if not is_object(entries) then
    raise(source, "%s must be an object of invocation keys (\"0\", \"1-2\", ...)", where)
  end
  local ranges = {}
  for _, key in ipairs(sorted_keys(entries)) do
    local raw = entries[key]
    if raw == nil then raw = entries[math.tointeger(tonumber(key))] end
    local lo, hi = parse_key(key)
    if not lo then
      raise(source, "%s has a bad invocation key '%s' (expected \"N\" or \"N-M\" with N <= M, "
        .. "invocations counted from 0)", where, key)
    end
    ranges[#ranges + 1] = { lo = lo, hi = hi, key = key,
      response = check_response(source, sformat("%s.\"%s\"", where, key), raw) }
  end
  if #ranges == 0 then raise(source, "%s has no responses", where) end
  table.sort(ranges, function(a, b) return a.lo < b.lo end)
  for i = 2, #ranges do
    if ranges[i].lo <= ranges[i - 1].hi then
      raise(source, "%s: the keys '%s' and '%s' overlap", where, ranges[i - 1].key, ranges[i].key)
    end
  end
  return ranges
end

local function select_case(source, cfg, test_case, machine_name)
  local machines = cfg.StateMachines
  if not is_object(machines) then raise(source, "\"StateMachines\" must be an object") end
  if type(machine_name) ~= "string" then raise(source, "no state machine name given") end
  local machine = machines[machine_name]
  if machine == nil then
    raise(source, "unknown state machine '%s' (StateMachines has %s)", machine_name, known(machines))
  end
  if not is_object(machine) or not is_object(machine.TestCases) then
    raise(source, "StateMachines.%s must be an object with a \"TestCases\" object", machine_name)
  end
  if type(test_case) ~= "string" then raise(source, "no test case given") end
  local case = machine.TestCases[test_case]
  if case == nil then
    raise(source, "unknown test case '%s' for state machine '%s' (TestCases has %s)", test_case,
      machine_name, known(machine.TestCases))
  end
  if not is_object(case) then
    raise(source, "StateMachines.%s.TestCases.%s must map state names to response names", machine_name,
      test_case)
  end
  return case
end

function M.new(config, test_case, machine_name)
  local cfg, source = read_config(config)
  if not is_object(cfg) then raise(source, "the configuration must be a JSON object") end
  local responses_cfg = cfg.MockedResponses
  if not is_object(responses_cfg) then raise(source, "\"MockedResponses\" must be an object") end
  local responses = {}
  for _, name in ipairs(sorted_keys(responses_cfg)) do
    responses[name] = load_response(source, name, responses_cfg[name])
  end
  local case = select_case(source, cfg, test_case, machine_name)
  local states = {}
  for _, state in ipairs(sorted_keys(case)) do
    local rname = case[state]
    if type(rname) ~= "string" then
      raise(source, "StateMachines.%s.TestCases.%s.%s must be the name of a mocked response",
        machine_name, test_case, state)
    end
    if not responses[rname] then
      raise(source, "state '%s' of test case '%s' uses the unknown response '%s' "
        .. "(MockedResponses has %s)", state, test_case, rname, known(responses))
    end
    states[state] = { name = rname, ranges = responses[rname] }
  end
  return setmetatable({ states = states, source = source, test_case = test_case,
    machine_name = machine_name }, Mocks)
end

function Mocks:mocks(state_name)
  return self.states[state_name] ~= nil
end

function Mocks:lookup(state_name, invocation)
  local s = self.states[state_name]
  if not s then return nil end
  local n = math.tointeger(invocation)
  if not n or n < 0 then
    error(sformat("mocks:lookup: invocation must be an integer >= 0, got %s", tostring(invocation)), 2)
  end
  for _, r in ipairs(s.ranges) do
    if n >= r.lo and n <= r.hi then return r.response end
  end
  local keys = {}
  for i, r in ipairs(s.ranges) do keys[i] = r.key end
  return false, sformat("the mocked response '%s' for state '%s' (test case '%s') has no entry for "
    .. "invocation %d (invocations count from 0; keys: %s)", s.name, state_name, self.test_case, n,
    concat(keys, ", "))
end

return M
