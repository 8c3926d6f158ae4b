--- emrflow.store.events: how a group of history events is kept in one row of the store.
--
-- A group is a binary string: a header of two length-prefixed JSON arrays, the strings
-- (event types, details keys, state names) and the values (payloads, details) the events
-- refer to, then one fixed-size record per event:
--   id i8, previousEventId i8, timestamp d, type, key, name (string indexes, 0 = none),
--   kind B (0 no details, 1 input, 2 output: a state's Entered / Exited event whose
--   payload is value v; 3: v is the whole details table), v, assigned (value indexes).
-- Strings and values are written once per group: a payload that is one state's output and
-- the next one's input, or the type of ten thousand Pass events, costs one entry. This
-- keeps recording cheap next to the interpreter (bench/store_bench.lua). Payloads stay JSON
-- values here; GetExecutionHistory's JSON-text members are made when the history is read.
--
--   events.encode(list) --> bytes, first_id, last_id   (raises on values JSON cannot hold)
--   local g = events.group(); g:add(event) ...; g:bytes(); g.n, g.first, g.last
--   events.decode(bytes [, after [, out]]) --> list of GetExecutionHistory events, id > after

local json = require "emrflow.json"
local pack_group = require("emrflow.core").store.pack_group

local M = {}

local encode, decode, object_of, set = json.encode, json.decode, json.object_of, json.set
local type, pairs = type, pairs
local unpack = string.unpack

local RECORD = "<i8i8dI4I4I4BI4I4"
local now = os.time
local RECORD_SIZE = string.packsize(RECORD)
local HEADER = "<s4s4"

local KIND_NONE, KIND_INPUT, KIND_OUTPUT, KIND_DETAILS = 0, 1, 2, 3
local STATE_KIND = { stateEnteredEventDetails = KIND_INPUT, stateExitedEventDetails = KIND_OUTPUT }
local FIELD = { [KIND_INPUT] = "input", [KIND_OUTPUT] = "output" }

local function details_of(ev)
  -- most events are a state's Entered / Exited: no need to look through the others
  local d = ev.stateEnteredEventDetails
  if d ~= nil then return "stateEnteredEventDetails", d end
  d = ev.stateExitedEventDetails
  if d ~= nil then return "stateExitedEventDetails", d end
  for k, v in pairs(ev) do
    if type(k) == "string" and k:sub(-12) == "EventDetails" then return k, v end
  end
  return nil
end

-- An interning table: value -> 1-based index in list (nil and false -> 0).
local function interner()
  local list, index = json.array {}, {}
  return list, index, function(v)
    if v == nil then return 0 end
    local i = index[v]
    if not i then
      i = #list + 1
      list[i] = v
      index[v] = i
    end
    return i
  end
end

-- A group being built: events are packed as they come, so that the group keeps no table
-- per event alive (they would cost the garbage collector more than the packing).
local Group = {}
Group.__index = Group

--- An empty group.
function M.group()
  local g = setmetatable({ fields = {} }, Group)
  g:reset()
  return g
end

--- Empties the group for the next events, keeping its record array (grown once, not
-- again for every group).
function Group:reset()
  self.strings, self.string_index, self.string_id = interner()
  self.values, self.value_index, self.value_id = interner()
  self.n, self.first, self.last, self.last_value, self.last_index = 0, nil, nil, nil, nil
end

local FIELDS = 9     -- the values of one record, kept flat in group.fields until bytes()

--- Adds one event (as the engine's history gives it); ids must be consecutive.
function Group:add(ev)
  local string_id, value_id = self.string_id, self.value_id
  local key, d = details_of(ev)
  local kind, name, v, assigned = KIND_NONE, 0, 0, 0
  if d ~= nil then
    kind = STATE_KIND[key]
    if kind and d.name ~= nil then
      name = string_id(d.name)
      v = value_id(d[FIELD[kind]])
      assigned = value_id(d.assignedVariables)
    else
      kind = KIND_DETAILS
      v = value_id(d)
    end
  end
  local id = ev.id
  local last = self.last
  if last and id ~= last + 1 then
    error("emrflow.store: events must come with consecutive ids (" .. tostring(id) .. " after "
      .. last .. ")", 2)
  end
  local n = self.n
  local f, at = self.fields, n * FIELDS
  f[at + 1], f[at + 2], f[at + 3] = id, ev.previousEventId or id - 1, ev.timestamp or now()
  f[at + 4], f[at + 5], f[at + 6] = string_id(ev.type), string_id(key), name
  f[at + 7], f[at + 8], f[at + 9] = kind, v, assigned
  self.n = n + 1
  if n == 0 then self.first = id end
  self.last = id
end

local KIND_OF_FIELD = { input = KIND_INPUT, output = KIND_OUTPUT }

--- Adds one event given as the engine's history keeps it (no table per event): desc (its
-- descriptor: etype, key, name, field), id, previousEventId, payload (a state's input or
-- output, a Map iteration's index, or the details table; false: none), assigned variables
-- and the timestamp. The same record as add() makes for the expanded event. Returns the
-- number of events in the group.
function Group:add_parts(desc, id, prev, payload, assigned, t)
  -- the hot path of recording (one call per event): strings are interned inline
  local strings, string_index = self.strings, self.string_index
  local kind, key, name, v, a = KIND_NONE, 0, 0, 0, 0
  local field = desc.field
  if field then
    local s = desc.key
    key = string_index[s]
    if not key then key = #strings + 1; strings[key] = s; string_index[s] = key end
    local k = KIND_OF_FIELD[field]
    if k then
      -- a state's output is the next state's input: the same value, kept once
      if payload == self.last_value then
        v = self.last_index
      else
        local values = self.values
        v = #values + 1
        values[v] = payload
        self.last_value, self.last_index = payload, v
      end
      kind = k
      s = desc.name
      if s ~= nil then
        name = string_index[s]
        if not name then name = #strings + 1; strings[name] = s; string_index[s] = name end
      end
      if assigned ~= nil then a = self.value_id(assigned) end
    else -- a Map iteration's event: { name, index }
      kind, v = KIND_DETAILS, self.value_id(object_of("name", desc.name, "index", payload))
    end
  elseif desc.key and payload ~= false and payload ~= nil then
    kind, key, v = KIND_DETAILS, self.string_id(desc.key), self.value_id(payload)
  end
  local last = self.last
  if last and id ~= last + 1 then
    error("emrflow.store: events must come with consecutive ids (" .. tostring(id) .. " after "
      .. last .. ")", 2)
  end
  local etype = desc.etype
  local ti = string_index[etype]
  if not ti then ti = #strings + 1; strings[ti] = etype; string_index[etype] = ti end
  local n = self.n
  local f, at = self.fields, n * FIELDS
  f[at + 1], f[at + 2], f[at + 3] = id, prev, t
  f[at + 4], f[at + 5], f[at + 6] = ti, key, name
  f[at + 7], f[at + 8], f[at + 9] = kind, v, a
  self.n = n + 1
  if n == 0 then self.first = id end
  self.last = id
  return n + 1
end

--- The group's bytes (raises when a value cannot be held in JSON). The header and the
-- records are packed in C, in one buffer (core.store.pack_group: HEADER, then RECORD for
-- each event).
--- The group's two JSON texts: its strings and its values (raises when a value cannot be
-- held in JSON); the store packs them with the records (emrflow.store's insert_events).
function Group:texts()
  return encode(self.strings), encode(self.values)
end

function Group:bytes()
  return pack_group(encode(self.strings), encode(self.values), self.fields, self.n)
end

--- Encodes a list of consecutive events: bytes, first id, last id.
function M.encode(list)
  local g = M.group()
  for i = 1, #list do g:add(list[i]) end
  return g:bytes(), g.first, g.last
end

-- Members of *EventDetails whose values GetExecutionHistory gives as JSON text.
local JSON_MEMBERS = { input = "inputDetails", output = "outputDetails", parameters = false }
local NOT_TRUNCATED = object_of("truncated", false)

local function assigned_text(vars)
  local out = json.object {}
  for _, name in ipairs(json.keys(vars)) do set(out, name, encode(vars[name])) end
  return out
end

-- Details of any other event, with GetExecutionHistory's JSON-text members.
local function details_text(d)
  local out = json.object {}
  for _, k in ipairs(json.keys(d)) do
    local v = d[k]
    local flag = JSON_MEMBERS[k]
    if flag ~= nil then
      set(out, k, encode(v))
      if flag and d[flag] == nil then set(out, flag, NOT_TRUNCATED) end
    elseif k == "assignedVariables" and type(v) == "table" then
      set(out, k, assigned_text(v))
      if d.assignedVariablesDetails == nil then set(out, "assignedVariablesDetails", NOT_TRUNCATED) end
    else
      set(out, k, v)
    end
  end
  return out
end

-- Dates are kept to the millisecond, as Step Functions gives them.
local function ms(t)
  return math.floor(t * 1000 + 0.5) / 1000
end

M.Group = Group

--- The events of a group with an id greater than after (default 0), appended to out.
function M.decode(bytes, after, out)
  after = after or 0
  out = out or json.array {}
  local strings_text, values_text, pos = unpack(HEADER, bytes)
  local strings, values = decode(strings_text), decode(values_text)
  local texts = {}
  local n = #out
  for at = pos, #bytes - RECORD_SIZE + 1, RECORD_SIZE do
    local id, prev, t, ti, ki, ni, kind, vi, ai = unpack(RECORD, bytes, at)
    if id > after then
      local e = object_of("timestamp", ms(t), "type", strings[ti], "id", id, "previousEventId", prev)
      if kind == KIND_DETAILS then
        set(e, strings[ki], details_text(values[vi]))
      elseif kind ~= KIND_NONE then
        local field = FIELD[kind]
        local d = object_of("name", strings[ni])
        if vi > 0 then
          local text = texts[vi]
          if not text then
            text = encode(values[vi])
            texts[vi] = text
          end
          set(d, field, text)
          set(d, field .. "Details", NOT_TRUNCATED)
        end
        if ai > 0 then
          set(d, "assignedVariables", assigned_text(values[ai]))
          set(d, "assignedVariablesDetails", NOT_TRUNCATED)
        end
        set(e, strings[ki], d)
      end
      n = n + 1
      out[n] = e
    end
  end
  return out
end

return M
