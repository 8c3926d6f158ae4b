--- emrflow.store.events: how a group of history events is kept in one row of the store.
--
-- A group is written in the compact format (src/ef_store.h, version 3; version 2 is read
-- too): a header, the JSON texts of its strings (event types, details keys) and of its
-- values (payloads, details, assigned variables), then one record of a few bytes per
-- event, packed in C as the events come (core.store.group). A record leaves out what its
-- neighbours imply: the id (consecutive), the previousEventId when it is id - 1, the clock
-- when it has not moved, the state's name when the previous event named it, and the value
-- when it is the previous one (a state's output is the next state's input). A payload
-- that is the previous payload with some members replaced (json.copy_shallow's copy, as
-- ResultPath makes it) is kept as those members only, and a member that is the previous
-- one with members replaced likewise; a member that is now an integer or a boolean is
-- kept in the record itself (version 3), not among the values. This keeps recording cheap
-- next to the interpreter (bench/store_bench.lua). Payloads stay JSON values here;
-- GetExecutionHistory's JSON-text members are made when the history is read.
-- Groups of the first format (two length-prefixed JSON arrays, then one fixed
-- "<i8i8dI4I4I4BI4I4" record per event) are read as well.
--
--   local g = events.group(); g:add(event) ...; g.n, g.first, g.last; g:texts(); g:bytes()
--   events.sink(g, owner, notable, slow, full, limit) --> an event sink filling g (see below)
--   events.encode(list) --> bytes, first_id, last_id   (the first format)
--   events.decode(bytes [, after [, out]]) --> list of GetExecutionHistory events, id > after

local json = require "emrflow.json"
local cstore = require("emrflow.core").store

local M = {}

local encode, decode, object_of, set = json.encode, json.decode, json.object_of, json.set
local copy_shallow = json.copy_shallow
local type, pairs = type, pairs
local unpack, byte, sub = string.unpack, string.byte, string.sub

local now = os.time

-- Details kinds (EF_STORE_KIND_* of src/ef_store.h).
local KIND_NONE, KIND_INPUT, KIND_OUTPUT, KIND_DETAILS, KIND_ITERATION = 0, 1, 2, 3, 4
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

-- A group being built: a table around the C group (core.store.group), whose n, first and
-- last are read from it.
local Group = {}
local count = {
  n = function(c) return (c:count()) end,
  first = function(c) local _, first = c:count() return first end,
  last = function(c) local _, _, last = c:count() return last end,
}
Group.__index = function(g, k)
  local method = Group[k]
  if method ~= nil then return method end
  local f = count[k]
  if f then return f(g.c) end
  -- what emrflow.store's insert_events hands to the store's insert_group
  if k == "fields" then return g.c end
  return nil
end

--- An empty group.
function M.group()
  return setmetatable({ c = cstore.group(encode, json.array_mt) }, Group)
end

--- Empties the group for the next events (its memory is kept).
function Group:reset()
  self.c:reset()
  self.bad = nil
end

--- Adds one event (as the engine's history gives it, expanded); ids must be consecutive.
function Group:add(ev)
  local key, d = details_of(ev)
  local kind, name, v, assigned = KIND_NONE, nil, nil, nil
  if d ~= nil then
    kind = STATE_KIND[key]
    if kind and d.name ~= nil then
      name, v, assigned = d.name, d[FIELD[kind]], d.assignedVariables
    else
      kind, v = KIND_DETAILS, d
    end
  end
  local id = ev.id
  local t = ev.timestamp or now()
  if type(t) ~= "number" then
    -- refused when the group is written (texts): the caller gets an error, nothing recorded
    self.bad = self.bad or ("the timestamp of event " .. tostring(id) .. " is not a number")
    t = 0
  end
  self.c:push(ev.type, key, kind, name, id, ev.previousEventId or id - 1, t, v, assigned)
end

--- The group's two JSON texts: its strings and its values (raises when a value cannot be
-- held in JSON); the store packs them with the records (emrflow.store's insert_events).
function Group:texts()
  if self.bad then error("emrflow.store: " .. self.bad, 0) end
  return self.c:texts()
end

--- The group's bytes, as the store keeps them.
function Group:bytes()
  return self.c:bytes(self:texts())
end

M.Group = Group

--- An event sink (machine:start's event_sink: emrflow.asl.history calls it with
-- (desc, id, prev, payload, assigned, t) for every event) adding to group g in C, with no
-- Lua run per event: while owner.enabled (a raw field), events whose type is a key of
-- notable (and any the C side does not know how to pack) go to
-- slow(desc, id, prev, payload, assigned, t) instead; full() is called once the group
-- holds limit events. Descriptors are cached in C by address: they must never change.
function M.sink(g, owner, notable, slow, full, limit)
  return cstore.sink(g.c, owner, notable, slow, full, limit)
end

-- The first format (read, and written by encode): strings and values, then one record
-- per event: id i8, previousEventId i8, timestamp d, type, key, name (string indexes,
-- 0 = none), kind B (0 no details, 1 input, 2 output: a state's Entered / Exited event
-- whose payload is value v; 3: v is the whole details table), v, assigned (value indexes).
local RECORD = "<i8i8dI4I4I4BI4I4"
local RECORD_SIZE = string.packsize(RECORD)
local HEADER = "<s4s4"

-- An interning table: value -> 1-based index in list (nil -> 0).
local function interner()
  local list, index = json.array {}, {}
  return list, function(v)
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

--- Encodes a list of consecutive events in the first format: bytes, first id, last id.
function M.encode(list)
  local strings, string_id = interner()
  local values, value_id = interner()
  local fields, n = {}, 0
  for i = 1, #list do
    local ev = list[i]
    local key, d = details_of(ev)
    local kind, name, v, assigned = KIND_NONE, 0, 0, 0
    if d ~= nil then
      kind = STATE_KIND[key]
      if kind and d.name ~= nil then
        name, v, assigned = string_id(d.name), value_id(d[FIELD[kind]]), value_id(d.assignedVariables)
      else
        kind, v = KIND_DETAILS, value_id(d)
      end
    end
    local at = n * 9
    fields[at + 1], fields[at + 2], fields[at + 3] = ev.id, ev.previousEventId or ev.id - 1,
      ev.timestamp or now()
    fields[at + 4], fields[at + 5], fields[at + 6] = string_id(ev.type), string_id(key), name
    fields[at + 7], fields[at + 8], fields[at + 9] = kind, v, assigned
    n = n + 1
  end
  return cstore.pack_group(encode(strings), encode(values), fields, n), list[1] and list[1].id,
    list[n] and list[n].id
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

-- The event of the record's parts, as GetExecutionHistory gives it. value: the payload,
-- the details or the map iteration's index; texts: payload -> its JSON text (a payload
-- that is a state's output and the next one's input is encoded once).
local function event_of(id, prev, t, etype, key, kind, name, value, assigned, texts)
  local e = object_of("timestamp", ms(t), "type", etype, "id", id, "previousEventId", prev)
  if kind == KIND_DETAILS then
    set(e, key, details_text(value))
  elseif kind == KIND_ITERATION then
    set(e, key, object_of("name", name, "index", value))
  elseif kind ~= KIND_NONE then
    local field = FIELD[kind]
    local d = object_of("name", name)
    if value ~= nil then
      local text = texts[value]
      if not text then
        text = encode(value)
        texts[value] = text
      end
      set(d, field, text)
      set(d, field .. "Details", NOT_TRUNCATED)
    end
    if assigned ~= nil then
      set(d, "assignedVariables", assigned_text(assigned))
      set(d, "assignedVariablesDetails", NOT_TRUNCATED)
    end
    set(e, key, d)
  end
  return e
end

-- The events of a group of the first format with an id greater than after, appended to out.
local function decode_v1(bytes, after, out)
  local strings_text, values_text, pos = unpack(HEADER, bytes)
  local strings, values = decode(strings_text), decode(values_text)
  local texts = {}
  local n = #out
  for at = pos, #bytes - RECORD_SIZE + 1, RECORD_SIZE do
    local id, prev, t, ti, ki, ni, kind, vi, ai = unpack(RECORD, bytes, at)
    if id > after then
      local value, assigned
      if vi > 0 then value = values[vi] end
      if ai > 0 then assigned = values[ai] end
      n = n + 1
      out[n] = event_of(id, prev, t, strings[ti], strings[ki], kind, strings[ni], value,
        assigned, texts)
    end
  end
  return out
end

-- Record flags of the compact format (EF_STORE_EV_* of src/ef_store.h).
local VALUE_MASK, VALUE_FULL, VALUE_SAME, VALUE_DELTA = 0x03, 1, 2, 3
local EV_PREV, EV_TIME, EV_NAME, EV_SAME_NAME, EV_ASSIGNED = 0x04, 0x08, 0x10, 0x20, 0x40
local COMPACT_HEADER = "<I4Bi8I4I4"

-- The unsigned LEB128 number at pos of s, and the position after it.
local function varint(s, pos)
  local b = byte(s, pos)
  if not b then error("a record is cut short", 0) end
  if b < 0x80 then return b, pos + 1 end
  local v, shift = b & 0x7f, 7
  repeat
    pos = pos + 1
    b = byte(s, pos)
    if not b then error("a record is cut short", 0) end
    v = v | ((b & 0x7f) << shift)
    shift = shift + 7
  until b < 0x80
  return v, pos + 1
end

local function unzigzag(z)
  return (z >> 1) ~ -(z & 1)
end

-- A delta shape's member codes (EF_STORE_MEMBER_* of src/ef_store.h): the next value, an
-- integer, true, false, from NESTED on a delta of (code - NESTED) members. Version 2 knew
-- the first only, and a delta from 1 on.
local MEMBER_VALUE, MEMBER_INT, MEMBER_TRUE, MEMBER_FALSE = 0, 1, 2, 3
local NESTED = { [2] = 1, [3] = 4 }

-- base's copy with n members replaced, as the delta shape at pos of bytes says (their keys
-- among strings, their values from values, after slot; nested: the first code of a nested
-- delta, by the group's version); returns it, the position after the shape and the last
-- slot taken.
local function apply_delta(base, n, bytes, pos, strings, values, slot, nested)
  local value = copy_shallow(base)
  for _ = 1, n do
    local key, code
    key, pos = varint(bytes, pos)
    key = strings[key]
    code, pos = varint(bytes, pos)
    local member
    if code == MEMBER_VALUE then
      member, slot = values[slot + 1], slot + 1
    elseif code >= nested then
      member, pos, slot = apply_delta(base[key], code - nested, bytes, pos, strings, values, slot,
        nested)
    elseif code == MEMBER_INT then
      member, pos = varint(bytes, pos)
      member = unzigzag(member)
    elseif code == MEMBER_TRUE or code == MEMBER_FALSE then
      member = code == MEMBER_TRUE
    end
    set(value, key, member)
  end
  return value, pos, slot
end

-- The events of a group of the compact format with an id greater than after, appended to out.
local function decode_compact(bytes, after, out)
  local _, version, first, ns, nv, pos = unpack(COMPACT_HEADER, bytes)
  local nested = NESTED[version]
  if not nested then error("a group of an unknown format (version " .. version .. ")", 0) end
  local strings = decode(sub(bytes, pos, pos + ns - 1))
  local values = decode(sub(bytes, pos + ns, pos + ns + nv - 1))
  pos = pos + ns + nv
  local size, n, slot, texts = #bytes, #out, 0, {}
  local id, t, name, last = first - 1, nil, nil, nil
  while pos <= size do
    local flags, kind = byte(bytes, pos, pos + 1)
    local ti, ki
    ti, pos = varint(bytes, pos + 2)
    ki, pos = varint(bytes, pos)
    id = id + 1
    local prev = id - 1
    if flags & EV_PREV ~= 0 then
      local z
      z, pos = varint(bytes, pos)
      prev = id - 1 - unzigzag(z)
    end
    if flags & EV_TIME ~= 0 then t, pos = unpack("<d", bytes, pos) end
    if flags & EV_NAME ~= 0 then
      local len
      len, pos = varint(bytes, pos)
      name = sub(bytes, pos, pos + len - 1)
      pos = pos + len
    end
    local mode, value = flags & VALUE_MASK, nil
    if mode == VALUE_FULL then
      slot = slot + 1
      value = values[slot]
      last = value
    elseif mode == VALUE_SAME then
      value = last
    elseif mode == VALUE_DELTA then
      -- the last value with some members replaced: the same keys, in the same order
      local n_members
      n_members, pos = varint(bytes, pos)
      value, pos, slot = apply_delta(last, n_members, bytes, pos, strings, values, slot, nested)
      last = value
    end
    if kind == KIND_ITERATION then
      local z
      z, pos = varint(bytes, pos)
      value = unzigzag(z)
    end
    local assigned
    if flags & EV_ASSIGNED ~= 0 then
      slot = slot + 1
      assigned = values[slot]
    end
    if id > after then
      n = n + 1
      out[n] = event_of(id, prev, t, strings[ti], strings[ki], kind,
        flags & (EV_NAME | EV_SAME_NAME) ~= 0 and name or nil, value, assigned, texts)
    end
  end
  return out
end

--- The events of a group (either format) with an id greater than after (default 0),
-- appended to out.
function M.decode(bytes, after, out)
  after = after or 0
  out = out or json.array {}
  if unpack("<I4", bytes) == 0 then return decode_compact(bytes, after, out) end
  return decode_v1(bytes, after, out)
end

return M
