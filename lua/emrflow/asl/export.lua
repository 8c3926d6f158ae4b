-- emrflow.asl.export: a definition as ASL JSON text, in a readable order: the machine's fields,
-- then its states from StartAt in the order they are reached, every state's fields in one
-- order whatever its type; payloads keep their own key order.

local json = require "emrflow.json"
local common = require "emrflow.asl.common"

local M = {}

local words = common.words

-- Pretty JSON with two-space indentation, keeping the definition's key order.
local function pretty(v, indent, out)
  if type(v) ~= "table" then
    out[#out + 1] = json.encode(v)
    return
  end
  local pad = string.rep("  ", indent + 1)
  if json.is_array(v) then
    if #v == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "[\n"
    for i = 1, #v do
      out[#out + 1] = pad
      pretty(v[i], indent + 1, out)
      out[#out + 1] = i < #v and ",\n" or "\n"
    end
    out[#out + 1] = string.rep("  ", indent) .. "]"
    return
  end
  local keys = json.keys(v)
  if #keys == 0 then out[#out + 1] = "{}" return end
  out[#out + 1] = "{\n"
  for i, k in ipairs(keys) do
    out[#out + 1] = pad .. json.encode(k) .. ": "
    pretty(v[k], indent + 1, out)
    out[#out + 1] = i < #keys and ",\n" or "\n"
  end
  out[#out + 1] = string.rep("  ", indent) .. "}"
end

-- The definition's fields in one readable order, the same for every state type; fields not
-- listed follow in their own order.
local MACHINE_ORDER = { "Comment", "QueryLanguage", "StartAt", "TimeoutSeconds", "Version", "ProcessorConfig",
  "States" }
local STATE_ORDER = words [[
  Type Comment QueryLanguage Resource Credentials
  InputPath ItemsPath Items ItemReader ItemSelector ItemBatcher Parameters Arguments
  Result Seconds SecondsPath Timestamp TimestampPath Choices Default Branches ItemProcessor Iterator
  MaxConcurrency MaxConcurrencyPath ToleratedFailureCount ToleratedFailureCountPath
  ToleratedFailurePercentage ToleratedFailurePercentagePath Label ResultWriter
  TimeoutSeconds TimeoutSecondsPath HeartbeatSeconds HeartbeatSecondsPath
  ResultSelector ResultPath OutputPath Output Assign Error ErrorPath Cause CausePath
  Retry Catch Next End]]

local function ordered_keys(v, order)
  local keys, seen = {}, {}
  for _, k in ipairs(order) do
    if v[k] ~= nil then
      keys[#keys + 1] = k
      seen[k] = true
    end
  end
  for _, k in ipairs(json.keys(v)) do
    if not seen[k] then keys[#keys + 1] = k end
  end
  return keys
end

-- The state names of a States object: StartAt first, then in the order they are reached
-- (Next, Choices, Default, Catch, depth first), then any others in their own order.
local function state_order(def)
  local states = def.States
  local out, seen = {}, {}
  local function visit(name)
    if type(name) ~= "string" or seen[name] or states[name] == nil then return end
    seen[name] = true
    out[#out + 1] = name
    local st = states[name]
    if type(st) ~= "table" then return end
    if type(st.Choices) == "table" then
      for _, r in ipairs(st.Choices) do
        if type(r) == "table" then visit(r.Next) end
      end
    end
    visit(st.Default)
    visit(st.Next)
    if type(st.Catch) == "table" then
      for _, c in ipairs(st.Catch) do
        if type(c) == "table" then visit(c.Next) end
      end
    end
  end
  visit(def.StartAt)
  for _, k in ipairs(json.keys(states)) do visit(k) end
  return out
end

local exportable

-- Where the placeholder Lambda ARNs point when the caller names no region or account (the
-- defaults of asl.load).
local PLACEHOLDER_REGION, PLACEHOLDER_ACCOUNT = "us-east-1", "123456789012"

-- The placeholder for the Lua function of state `state`: a well-formed Lambda function ARN
-- (so `emrflow validate` and AWS accept the exported definition as it is) named after the
-- state: emrflow-<state name>, other characters than letters, digits, '-' and '_' as '-', cut
-- to Lambda's 64 characters.
local function placeholder_arn(state, opts)
  local name = ("emrflow-" .. (state or "function")):gsub("[^%w%-_]", "-"):sub(1, 64)
  return string.format("arn:aws:lambda:%s:%s:function:%s", opts.region or PLACEHOLDER_REGION,
    opts.account or PLACEHOLDER_ACCOUNT, name)
end

-- A machine, branch or item processor object.
local function export_machine(v, path, opts)
  local out = json.object {}
  for _, k in ipairs(ordered_keys(v, MACHINE_ORDER)) do
    local p = path .. "/" .. k
    if k == "States" and type(v.States) == "table" and not json.is_array(v.States) then
      local states = json.object {}
      for _, name in ipairs(state_order(v)) do
        json.set(states, name, exportable(v.States[name], p .. "/" .. name, opts, "state", name))
      end
      json.set(out, k, states)
    else
      json.set(out, k, exportable(v[k], p, opts))
    end
  end
  return out
end

-- state: the name of the state v is part of (for the placeholder of a Lua function).
function exportable(v, path, opts, role, state)
  if type(v) == "function" then
    if opts.placeholder_arns then return placeholder_arn(state, opts) end
    error("emrflow.asl: " .. path .. " is a Lua function; it has no ASL form (pass "
      .. "{ placeholder_arns = true } to emit a placeholder ARN)", 0)
  end
  if type(v) ~= "table" then return v end
  if json.is_array(v) then
    local out = json.array {}
    for i = 1, #v do out[i] = exportable(v[i], path .. "/" .. (i - 1), opts, nil, state) end
    return out
  end
  if role == "machine" then return export_machine(v, path, opts) end
  local out = json.object {}
  for _, k in ipairs(role == "state" and ordered_keys(v, STATE_ORDER) or json.keys(v)) do
    local x = v[k]
    local p = path .. "/" .. k
    if role == "state" and k == "Branches" and json.is_array(x) then
      local brs = json.array {}
      for i = 1, #x do brs[i] = exportable(x[i], p .. "/" .. (i - 1), opts, "machine") end
      json.set(out, k, brs)
    elseif role == "state" and (k == "ItemProcessor" or k == "Iterator") then
      json.set(out, k, exportable(x, p, opts, "machine"))
    else
      json.set(out, k, exportable(x, p, opts, nil, state))
    end
  end
  return out
end

--- The definition as ASL JSON text (pretty unless opts.compact); a Lua function Resource
-- raises unless opts.placeholder_arns, which puts a Lambda function ARN in its place
-- (arn:aws:lambda:<opts.region>:<opts.account>:function:emrflow-<state name>).
function M.to_json(def, opts)
  opts = opts or {}
  local v = exportable(def, "", opts, "machine")
  if opts.compact then return json.encode(v) end
  local out = {}
  pretty(v, 0, out)
  return table.concat(out)
end

return M
