-- emrflow.asl.paths: the one path reader and the one path writer of the interpreter.
--
-- Reference paths ("$.a['b'][0]", with the roots $, $$ and $var) are parsed into segments:
-- strings (keys) and integers (0-based indexes). Other JSONPath (wildcards, filters, slices)
-- is read through emrflow.asl.jsonpath. Writing (ResultPath) copies only the objects along
-- the path, so everything off the path is shared.

local json = require "emrflow.json"
local common = require "emrflow.asl.common"

local is_object_marked = json.is_object
local copy_shallow = json.copy_shallow
local new_object = json.object
local fmt = string.format
local raise = common.raise
local is_array = common.is_array
local is_object = common.is_object
local show = common.show

local M = {}

-- Parses a reference path ("$.a['b'][0]") into segments: strings (keys) and integers
-- (0-based indexes). Returns nil for anything with wildcards, filters, slices or unions.
local function parse_ref(text)
  if type(text) ~= "string" or text:sub(1, 1) ~= "$" then return nil end
  local segs, i, n = {}, 2, #text
  while i <= n do
    local c = text:sub(i, i)
    if c == "." then
      local name = text:match("^[^%.%[%]%*%?%(%)@,:'\" ]+", i + 1)
      if not name then return nil end
      segs[#segs + 1] = name
      i = i + 1 + #name
    elseif c == "[" then
      local num = text:match("^%[(%-?%d+)%]", i)
      if num then
        segs[#segs + 1] = math.tointeger(tonumber(num))
        i = i + #num + 2
      else
        local q = text:sub(i + 1, i + 1)
        if q ~= "'" and q ~= '"' then return nil end
        local j, buf = i + 2, {}
        while true do
          local ch = text:sub(j, j)
          if ch == "" then return nil end
          if ch == "\\" then
            buf[#buf + 1] = text:sub(j + 1, j + 1)
            j = j + 2
          elseif ch == q then
            break
          else
            buf[#buf + 1] = ch
            j = j + 1
          end
        end
        if text:sub(j + 1, j + 1) ~= "]" then return nil end
        segs[#segs + 1] = table.concat(buf)
        i = j + 2
      end
    else
      return nil
    end
  end
  return segs
end
local function ref_get(segs, v)
  for i = 1, #segs do
    if type(v) ~= "table" then return nil end
    local s = segs[i]
    if type(s) == "number" then
      if not is_array(v) then return nil end
      v = v[s + 1]
    else
      if is_array(v) then return nil end
      v = v[s]
    end
    if v == nil then return nil end
  end
  return v
end

-- "$['a']['b'][0]": how Jayway prints a path in "No results for path" messages.
local function normalized(segs)
  local parts = { "$" }
  for i = 1, #segs do
    local s = segs[i]
    parts[#parts + 1] = type(s) == "number" and ("[" .. s .. "]") or ("['" .. s .. "']")
  end
  return table.concat(parts)
end

-- The root a path reads from: "input", "context" ($$) or a variable ($name).
local function split_root(text)
  if text:sub(1, 2) == "$$" then return "context", nil, "$" .. text:sub(3) end
  local name = text:match("^%$([%a_][%w_]*)")
  if name then return "var", name, "$" .. text:sub(#name + 2) end
  return "input", nil, text
end

local function root_value(kind, name, input, env)
  if kind == "input" then return input end
  if kind == "context" then return env and env.context end
  local vars = env and env.vars
  return vars and vars[name]
end


-- Copies an object shallowly, keeping its key order (json.copy_shallow, in C). Unmarked
-- tables (Lua values that never went through emrflow.json) get their keys recorded in
-- json.keys order, as a marked object would list them.
local function copy_object(o)
  if is_object_marked(o) then return copy_shallow(o) end
  local c = new_object {}
  local keys = json.keys(o)
  for i = 1, #keys do
    local k = keys[i]
    json.set(c, k, o[k])
  end
  return c
end

local function result_path_failure(text, target)
  raise("States.ResultPathMatchFailure", fmt("Unable to apply ReferencePath %s to input %s",
    text, show(target)))
end

-- A copy of node with value written at segs[i..] (intermediate objects made); the copies are
-- shallow, so everything off the path is shared.
local function ref_put(segs, i, node, value, target, text)
  local s = segs[i]
  local last = i == #segs
  if type(s) == "number" then
    if not is_array(node) then result_path_failure(text, target) end
    if s < 0 then s = #node + s end -- [-1]: the last element
    if s < 0 or node[s + 1] == nil then result_path_failure(text, target) end
    local c = copy_shallow(node)
    -- (not `last and value or ...`: the value may be false)
    if last then c[s + 1] = value else c[s + 1] = ref_put(segs, i + 1, node[s + 1], value, target, text) end
    return c
  end
  if node == nil then node = new_object {} end
  if not is_object(node) then result_path_failure(text, target) end
  local v = value
  if not last then v = ref_put(segs, i + 1, node[s], value, target, text) end
  if is_object_marked(node) then return copy_shallow(node, s, v) end
  local c = copy_object(node)
  json.set(c, s, v)
  return c
end

-- ResultPath: a copy of `target` with `value` written at segs (intermediate objects made).
local function ref_set(segs, target, value, text)
  if #segs == 0 then return value end
  return ref_put(segs, 1, target, value, target, text)
end

M.parse_ref = parse_ref
M.ref_get = ref_get
M.normalized = normalized
M.split_root = split_root
M.root_value = root_value
M.copy_object = copy_object
M.result_path_failure = result_path_failure
M.ref_put = ref_put
M.ref_set = ref_set

--- Writes `value` at the reference path `text` ("$.a.b[0]") into a copy of `target`; raises
-- States.ResultPathMatchFailure when the path cannot be applied, States.Runtime when the text
-- is not a reference path on "$".
function M.set(text, target, value)
  local kind, _, rest = split_root(text)
  local segs = kind == "input" and parse_ref(rest) or nil
  if not segs then
    raise("States.Runtime", fmt("The ResultPath '%s' is not a valid reference path", tostring(text)))
  end
  return ref_set(segs, target, value, text)
end

return M
