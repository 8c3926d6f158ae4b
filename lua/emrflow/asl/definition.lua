-- emrflow.asl.definition: a definition (ASL JSON text or a Lua table) as JSON data.
--
--   definition.decode(def) --> data, from_json | raises "emrflow.asl: ..." or a located problem
--     { path =, message = } (never a Lua traceback)
--   definition.duplicate_keys(text) --> { { path = "<JSON pointer>", message = } }
--
-- Lua tables are copied into JSON shapes (marked arrays and objects, json.null kept), functions
-- (Lua Task resources) left in place, at most MAX_DEPTH levels deep (as the JSON decoder).

local json = require "emrflow.json"

local M = {}

M.MAX_DEPTH = 1000

local fmt = string.format

local function pointer_of(stack, depth)
  local parts = {}
  for i = 1, depth or #stack do
    local k = tostring(stack[i])
    parts[i] = (k:gsub("~", "~0"):gsub("/", "~1"))
  end
  return #parts == 0 and "" or "/" .. table.concat(parts, "/")
end

-- Bytes that are not UTF-8 text, shown as \xHH (a message stays readable text itself).
local function shown(s)
  return (s:gsub("[\128-\255]", function(c) return fmt("\\x%02X", c:byte()) end))
end

-- Copies a Lua definition into JSON data shapes; `stack` is the path so far (for errors).
-- Strings must be UTF-8 text, as in JSON: a located problem here, not an encoding failure
-- when the value reaches an output.
local function normalize(v, seen, stack)
  if type(v) == "string" and not utf8.len(v) then
    error({ path = pointer_of(stack), message = fmt("is not UTF-8 text: \"%s\"", shown(v)) }, 0)
  end
  if type(v) ~= "table" then return v end
  if seen[v] then error("emrflow.asl: the definition contains a cycle at " .. pointer_of(stack), 0) end
  if #stack >= M.MAX_DEPTH then
    error({ path = pointer_of(stack), message = fmt("nests deeper than %d levels", M.MAX_DEPTH) }, 0)
  end
  seen[v] = true
  local out
  local n = #v
  local arrayish = json.is_array(v) or (not json.is_object(v) and n > 0)
  if arrayish then
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > n then arrayish = false break end
    end
  end
  local depth = #stack + 1
  if arrayish then
    out = json.array {}
    for i = 1, n do
      stack[depth] = i - 1
      out[i] = normalize(v[i], seen, stack)
    end
  else
    out = json.object {}
    local ok, keys = pcall(json.keys, v)
    if not ok then
      -- a marked array with string keys, or a table with keys JSON cannot have: its string keys
      -- in byte order (the others are kept below for the validator to report)
      keys = {}
      for k in pairs(v) do
        if type(k) == "string" then keys[#keys + 1] = k end
      end
      table.sort(keys)
    end
    for _, k in ipairs(keys) do
      if not utf8.len(k) then
        error({ path = pointer_of(stack, depth - 1), message = fmt("has the key \"%s\", which is not "
          .. "UTF-8 text", shown(k)) }, 0)
      end
      stack[depth] = k
      json.set(out, k, normalize(v[k], seen, stack))
    end
    -- non-string keys are not JSON: a located problem (a table mixing items and members too)
    for k in pairs(v) do
      if type(k) ~= "string" then
        error({ path = pointer_of(stack, depth - 1), message = fmt("has the key %s, which is not a "
          .. "string: a JSON object's keys are strings (and an array has no named members)",
          math.type(k) and tostring(k) or ("of type " .. type(k))) }, 0)
      end
    end
  end
  stack[depth] = nil
  seen[v] = nil
  return out
end

-- Keys in the decoded data (objects' members, at any depth).
local function count_keys(v)
  if type(v) ~= "table" then return 0 end
  local n = 0
  if json.is_array(v) then
    for i = 1, #v do n = n + count_keys(v[i]) end
    return n
  end
  for _, x in pairs(v) do n = n + 1 + count_keys(x) end
  return n
end

-- Upper bound of the keys in JSON text: every '"' followed by ':' (a key ends so; a string
-- value holding '":' only adds to the count).
local function count_key_ends(text)
  local n, i, find = 0, 1, string.find
  while true do
    local _, e = find(text, '"%s*:', i)
    if not e then return n end
    n = n + 1
    i = e + 1
  end
end

--- True when `text` may hold duplicate keys given its decoded `data` (cheap: no garbage).
function M.may_have_duplicates(text, data)
  return count_key_ends(text) ~= count_keys(data)
end

--- Duplicate object keys in JSON text (which the decoder reduces to the last one), each
-- located by the JSON pointer of the object and named. The text is known to be valid JSON.
function M.duplicate_keys(text)
  local problems = {}
  local frames = {} -- per open container: { kind = "{" | "[", keys = {}, index = n, key = pending }
  local stack = {}  -- the pointer's steps to the value being read
  local i = 1
  local function value_begins()
    local top = frames[#frames]
    if not top then return end
    if top.kind == "[" then
      stack[#frames] = top.index
      top.index = top.index + 1
    else
      stack[#frames] = top.key
    end
  end
  local find, byte, sub = string.find, string.byte, string.sub
  local QUOTE, BACKSLASH, LBRACE, LBRACKET = 34, 92, 123, 91
  while true do
    -- jump to the next quote or bracket: nothing else matters here
    i = find(text, '[{}%[%]"]', i)
    if not i then break end
    local c = byte(text, i)
    if c == QUOTE then
      local j = i + 1
      while true do
        local q = find(text, '["\\]', j)
        if not q then return problems end
        if byte(text, q) == BACKSLASH then j = q + 2 else j = q break end
      end
      local top = frames[#frames]
      if top and top.kind == "{" and find(text, "^%s*:", j + 1) then
        local raw = sub(text, i, j)
        local key = raw
        if find(raw, "\\", 1, true) then
          local ok, k = pcall(json.decode, raw)
          if ok then key = k end
        else
          key = sub(raw, 2, -2)
        end
        if top.keys[key] then
          local at = pointer_of(stack, #frames - 1) .. "/" .. (tostring(key):gsub("~", "~0"):gsub("/", "~1"))
          problems[#problems + 1] = { path = at, message = fmt("duplicate key %q in an object (JSON keeps "
            .. "only the last one; Step Functions rejects it)", tostring(key)) }
        end
        top.keys[key] = true
        top.key = key
      else
        value_begins()
      end
      i = j + 1
    elseif c == LBRACE or c == LBRACKET then
      value_begins()
      frames[#frames + 1] = { kind = c == LBRACE and "{" or "[", keys = {}, index = 0 }
      i = i + 1
    else
      frames[#frames] = nil
      i = i + 1
    end
  end
  return problems
end

--- data, from_json: the definition as JSON data; raises "emrflow.asl: ..." on bad input.
function M.decode(def)
  if type(def) == "string" then
    local ok, v = pcall(json.decode, def)
    if not ok then
      error("emrflow.asl: the definition is not valid JSON: " .. tostring(v), 0)
    end
    return v, true
  end
  if type(def) ~= "table" then
    error("emrflow.asl: a definition is a table or ASL JSON text, got " .. type(def), 0)
  end
  return normalize(def, {}, {}), false
end

return M
