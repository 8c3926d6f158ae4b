--- JSONata values over emrflow.json values.
--
-- JSON values are emrflow.json's (json.null, arrays marked with json.array_mt, objects with
-- their own key-order metatable). The evaluator adds three kinds of table:
--   * sequences (SEQ): results of path steps, with flags keep (keepSingleton), tuples
--     (a tuple stream) and outer (the wrapper around an array input);
--   * constructed arrays (CONS): arrays built by [...] at the ends of a path, kept whole;
--   * functions (FN): lambdas, built-ins, partial applications, regexes.
-- Results are turned back into plain JSON arrays before they leave the library.
local json = require "emrflow.json"

local M = {}

local NULL = json.null
local ARR = json.array_mt
local OBJMARK = json.object_mark
local SEQ = { __name = "jsonata.sequence" }
local CONS = { __name = "jsonata.array" }
local FN = { __name = "jsonata.function" }
M.NULL, M.ARR, M.SEQ, M.CONS, M.FN = NULL, ARR, SEQ, CONS, FN

local getmetatable, setmetatable, type = getmetatable, setmetatable, type
local math_type, floor = math.type, math.floor
local json_set, json_keys = json.set, json.keys
local sfmt = string.format

function M.is_array(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  return mt == ARR or mt == SEQ or mt == CONS or (mt == nil and v[1] ~= nil)
end
local is_array = M.is_array

function M.is_object(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == nil then return v[1] == nil end
  return getmetatable(mt) == OBJMARK
end

function M.is_function(v)
  return type(v) == "table" and getmetatable(v) == FN
end

--- JSONata's type name ($type): "null", "number", "string", "boolean", "array", "object", "function".
function M.type_of(v)
  local t = type(v)
  if t == "nil" then return nil end
  if v == NULL then return "null" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == FN then return "function" end
    if is_array(v) then return "array" end
    return "object"
  end
  if t == "userdata" then return "null" end
  return t
end

--- One-letter symbol used by signatures.
function M.symbol(v)
  local t = type(v)
  if t == "nil" then return "m" end
  if t == "string" then return "s" end
  if t == "number" then return "n" end
  if t == "boolean" then return "b" end
  if v == NULL then return "l" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == FN then return "f" end
    if is_array(v) then return "a" end
    return "o"
  end
  return "l"
end

function M.seq(...)
  return setmetatable({ ... }, SEQ)
end

function M.new_seq()
  return setmetatable({}, SEQ)
end

function M.new_object()
  return json.object()
end

M.set = json_set

--- Keys of an object in order (for plain tables: sorted).
function M.keys(obj)
  if getmetatable(obj) == nil then
    local ks = {}
    for k in pairs(obj) do
      if type(k) == "string" then ks[#ks + 1] = k end
    end
    table.sort(ks)
    return ks
  end
  return json_keys(obj)
end

--- Normalise a number: integral floats in the safe range become integers (JSON prints them so).
local tointeger = math.tointeger
function M.num(x)
  return tointeger(x) or x
end

function M.is_numeric(v)
  return type(v) == "number" and v == v
end

--- Append as JSONata's fn.append: concatenate, wrapping non-arrays.
function M.append(a, b)
  if a == nil then return b end
  if b == nil then return a end
  local out = setmetatable({}, ARR)
  local n
  if is_array(a) then
    for i = 1, #a do out[i] = a[i] end
    n = #a
  else
    n = 1
    out[1] = a
  end
  if is_array(b) then
    for i = 1, #b do out[n + i] = b[i] end
  else
    out[n + 1] = b
  end
  return out
end

--- Fully flatten nested arrays into the list out.
function M.flatten(arr, out)
  out = out or setmetatable({}, ARR)
  for i = 1, #arr do
    local v = arr[i]
    if is_array(v) then
      M.flatten(v, out)
    else
      out[#out + 1] = v
    end
  end
  return out
end

--------------------------------------------------------------------------------------------
-- Numbers and strings as JavaScript prints them
--------------------------------------------------------------------------------------------

--- Shortest round-trip text of a float, in JavaScript's notation.
function M.number_text(x)
  if math_type(x) == "integer" then return tostring(x) end
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  if x == 0 then return "0" end
  local s
  for p = 1, 17 do
    s = sfmt("%." .. (p - 1) .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, d1, rest, ex = s:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. rest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local e = tonumber(ex)
  local nd = #digits
  if e >= 21 or e <= -7 then
    local mant = digits:sub(1, 1)
    if nd > 1 then mant = mant .. "." .. digits:sub(2) end
    return sign .. mant .. "e" .. (e >= 0 and "+" or "-") .. math.abs(e)
  end
  if e >= 0 then
    if nd <= e + 1 then return sign .. digits .. string.rep("0", e + 1 - nd) end
    return sign .. digits:sub(1, e + 1) .. "." .. digits:sub(e + 2)
  end
  return sign .. "0." .. string.rep("0", -e - 1) .. digits
end
local number_text = M.number_text

--- A number rounded to 15 significant digits (as $string does with toPrecision(15)).
function M.precision15(x)
  if math_type(x) == "integer" or x == floor(x) then return x end
  return M.num(tonumber(sfmt("%.15g", x)))
end

--- Called for a non-finite number met by stringify (the evaluator raises D1001).
M.on_nonfinite = function() end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or sfmt("\\u%04x", c:byte())
  end) .. '"'
end
M.quote = quote

--- JSON.stringify as $string uses it: numbers to 15 digits, functions as "", pretty with 2 spaces.
function M.stringify(v, pretty)
  local buf, n = {}, 0
  local function put(s)
    n = n + 1
    buf[n] = s
  end
  local function emit(x, indent)
    local t = type(x)
    if t == "string" then
      put(quote(x))
    elseif t == "number" then
      if x ~= x or x == math.huge or x == -math.huge then
        M.on_nonfinite(x)
        put("null")
      else
        put(number_text(M.precision15(x)))
      end
    elseif t == "boolean" then
      put(x and "true" or "false")
    elseif x == NULL or t ~= "table" then
      put("null")
    elseif getmetatable(x) == FN then
      put('""')
    elseif is_array(x) then
      if #x == 0 then return put("[]") end
      local inner = pretty and (indent .. "  ") or ""
      put("[")
      for i = 1, #x do
        if i > 1 then put(",") end
        if pretty then put("\n" .. inner) end
        local e = x[i]
        if e == nil then put("null") else emit(e, inner) end
      end
      if pretty then put("\n" .. indent) end
      put("]")
    else
      local keys = M.keys(x)
      local inner = pretty and (indent .. "  ") or ""
      local first = true
      put("{")
      for _, k in ipairs(keys) do
        local e = x[k]
        if e ~= nil then
          if not first then put(",") end
          first = false
          if pretty then put("\n" .. inner) end
          put(quote(k))
          put(pretty and ": " or ":")
          emit(e, inner)
        end
      end
      if pretty and not first then put("\n" .. indent) end
      put("}")
    end
  end
  emit(v, "")
  return table.concat(buf)
end

--------------------------------------------------------------------------------------------
-- Equality and output
--------------------------------------------------------------------------------------------

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  local fa, fb = getmetatable(a) == FN, getmetatable(b) == FN
  if fa or fb then return false end
  local aa, ab = is_array(a), is_array(b)
  if aa ~= ab then return false end
  if aa then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not deep_equal(a[i], b[i]) then return false end
    end
    return true
  end
  local ka, kb = M.keys(a), M.keys(b)
  local na, nb = 0, 0
  for _, k in ipairs(ka) do if a[k] ~= nil then na = na + 1 end end
  for _, k in ipairs(kb) do if b[k] ~= nil then nb = nb + 1 end end
  if na ~= nb then return false end
  for _, k in ipairs(ka) do
    if a[k] ~= nil and not deep_equal(a[k], b[k]) then return false end
  end
  return true
end
M.deep_equal = deep_equal

--- Turn evaluator tables into plain JSON values (in place): sequences and constructed arrays
-- become json arrays, sequence flags go.
-- Tables already plain JSON are remembered (weakly): values are never modified once they are
-- results or inputs, so a document evaluated again and again (and what results share with it)
-- is walked once, not at every evaluation.
local clean = setmetatable({}, { __mode = "k" })

local function to_json(v)
  if clean[v] then return v end
  local mt = getmetatable(v)
  if mt == FN then return v end
  if mt == SEQ or mt == CONS then
    v.keep, v.tuples, v.outer = nil, nil, nil
    setmetatable(v, ARR)
    mt = ARR
  end
  clean[v] = true -- (before the members: a cycle ends here)
  if mt == ARR then
    for i = 1, #v do
      local e = v[i]
      if type(e) == "table" then to_json(e) end
    end
  else
    for _, e in pairs(v) do
      if type(e) == "table" then to_json(e) end
    end
  end
  return v
end

function M.to_json(v)
  if type(v) ~= "table" then return v end
  return to_json(v)
end

return M
