--- emrflow.json: JSON text <-> Lua values (the C bridge in src/l_json.c).
--
-- Values:
--   object  -> table marked as an object; string keys; key order recorded
--   array   -> table marked as an array; a proper sequence 1..n
--   string  -> string (checked UTF-8 both ways)
--   number  -> integer when the text is an integer that fits int64, else float
--   true/false -> boolean
--   null    -> json.null (light userdata NULL, the same value as cjson.null),
--              so arrays never have holes
--
-- Representation of the marks and of key order:
--   * Every array shares one metatable, json.array_mt.
--   * Every object has a metatable of its own, `m`, whose array part
--     m[1..n] lists the recorded keys in order; m's own metatable is the shared
--     mark json.object_mark (so is_object is two metatable lookups).  m holds
--     no string keys, so no JSON key can become a metamethod.  For objects of
--     9 or more keys, json.set keeps a key -> position index in m[0], built on
--     first need and dropped on delete.  Decoding records order as it goes;
--     json.set appends new keys; json.keys/encode list the recorded keys that
--     are still present, then any key assigned without json.set, sorted
--     bytewise.  A plain table with only string keys encodes in sorted order.
--   Objects of one shape may share m: json.object_from's objects share their
--   keyset, json.copy_shallow's copy shares the original's m when its key list
--   is the same. A shared m is marked m[-1] = true and never changes again:
--   json.set gives the object an m of its own first (copy on write).
--   Per-object metatables cost one small table per object but no weak tables
--   (ephemeron tables slow every GC cycle) and no lookups outside the object.
--
-- Errors are raised:
--   decode: "emrflow.json: <what> at line <l>, column <c> (byte <n>)" (1-based; the
--           column counts UTF-8 characters)
--   encode: "emrflow.json: <what> at <path>" (JSONPath, 0-based indices,
--           e.g. "$.a[3].b")
--
-- Functions:
--   json.decode(text [, { max_depth = 1000 }])   --> value
--   json.encode(value [, { max_depth = 1000 }])  --> compact JSON text
--   json.pretty(value [, indent])                 --> the same text indented (default 2 spaces)
--   json.array([t]) / json.object([t])           --> t, marked (new table if nil)
--   json.is_array(v) / json.is_object(v)         --> boolean
--   json.keys(obj)                                --> list of keys in order
--   json.set(obj, k, v)                           --> obj; obj[k] = v recording k's
--                                                     place (appended if new);
--                                                     v == nil deletes
--   json.copy(v)                                  --> deep copy keeping marks, order
--   json.copy_shallow(v [, k, val])               --> new table with v's members (shared,
--                                                     not copied), mark and key order; with
--                                                     k, then copy[k] = val as json.set does
--   json.object_of(k1, v1, k2, v2, ...)           --> new object with those members in that
--                                                     order (nil values left out)
--   json.keyset(k1, ..., kn)                     --> the shape of objects holding exactly
--                                                     those distinct keys in that order
--   json.object_from(keyset, v1, ..., vn)         --> new object: keyset's keys, in order,
--                                                     holding v1..vn (nil: key left out)
--   json.size(v [, limit])                        --> #json.encode(v) without making the
--                                                     text; past limit it stops early and
--                                                     returns a number > limit; nil when v
--                                                     cannot be encoded
-- @module emrflow.json
local core = require "emrflow.core"

local cj = core.json

local M = {}

M.null = cj.null
M.array_mt = cj.array_mt
M.object_mark = cj.object_mark

M.decode = cj.decode
M.encode = cj.encode
M.array = cj.array
M.object = cj.object
M.is_array = cj.is_array
M.is_object = cj.is_object
M.keys = cj.keys
M.set = cj.set
M.copy = cj.copy
M.copy_shallow = cj.copy_shallow
M.object_of = cj.object_of
M.size = cj.size
M.keyset = cj.keyset
M.object_from = cj.object_from

local function pretty(v, pad, step, out)
  local n = #out
  if type(v) ~= "table" or v == M.null then
    out[n + 1] = M.encode(v)
    return
  end
  local inner = pad .. step
  if M.is_array(v) then
    if #v == 0 then out[n + 1] = "[]" return end
    out[n + 1] = "[\n"
    for i = 1, #v do
      out[#out + 1] = inner
      pretty(v[i], inner, step, out)
      out[#out + 1] = i < #v and ",\n" or "\n"
    end
    out[#out + 1] = pad .. "]"
    return
  end
  local keys = M.keys(v)
  if #keys == 0 then out[n + 1] = "{}" return end
  out[n + 1] = "{\n"
  for i, k in ipairs(keys) do
    out[#out + 1] = inner .. M.encode(k) .. ": "
    pretty(v[k], inner, step, out)
    out[#out + 1] = i < #keys and ",\n" or "\n"
  end
  out[#out + 1] = pad .. "}"
end

--- JSON text of value indented by `indent` spaces (default 2) per level: the text
-- json.encode gives, laid out for people. Raises as json.encode does.
function M.pretty(value, indent)
  -- encoding first checks the value (and raises as encode does); decoding its text
  -- gives marked arrays and objects to lay out
  local shaped = M.decode(M.encode(value))
  local out = {}
  pretty(shaped, "", string.rep(" ", indent or 2), out)
  return table.concat(out)
end

return M
