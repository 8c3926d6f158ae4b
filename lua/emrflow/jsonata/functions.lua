--- JSONata's function library ($sum ... $eval), as built-in function values.
--
-- Each built-in is impl(args, n, input, env) with args already checked against its
-- signature. Strings are indexed by Unicode code point.
local value = require "emrflow.jsonata.value"
local ev = require "emrflow.jsonata.eval"
local signature = require "emrflow.jsonata.signature"

local M = {}

local NULL, ARR, SEQ, FN = value.NULL, value.ARR, value.SEQ, value.FN
local is_array, is_object, num = value.is_array, value.is_object, value.num
local throw, apply, invoke = ev.throw, ev.apply, ev.invoke
local floor = math.floor

local lib = {} -- name -> function value

local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  return nil
end

local function define(name, sig, impl)
  lib[name] = setmetatable({ kind = "native", impl = impl, name = name,
    sig = sig and signature.parse(sig, 0) }, FN)
end

local function call(f, ...)
  local args = { ... }
  return apply(f, args, select("#", ...), nil, nil)
end

--- Arguments for a higher-order function's callback, cut to the callback's arity.
local function hof_call(f, a1, a2, a3, arity)
  arity = arity or ev.arity(f)
  if arity >= 3 then return invoke(f, 3, a1, a2, a3) end
  if arity == 2 then return invoke(f, 2, a1, a2) end
  return invoke(f, 1, a1)
end

local function new_seq() return setmetatable({}, SEQ) end

--------------------------------------------------------------------------------------------
-- Strings
--------------------------------------------------------------------------------------------

local function chars(s)
  local list, n = {}, 0
  if utf8.len(s) then
    for _, c in utf8.codes(s) do
      n = n + 1
      list[n] = utf8.char(c)
    end
  else
    for i = 1, #s do list[i] = s:sub(i, i) end
    n = #s
  end
  return list, n
end

local function ulen(s)
  return utf8.len(s) or #s
end

local function to_string(arg, pretty)
  if arg == nil then return nil end
  local t = type(arg)
  if t == "string" then return arg end
  if t == "table" and getmetatable(arg) == FN then return "" end
  if t == "number" then
    if arg ~= arg or arg == math.huge or arg == -math.huge then throw("D3001", { value = arg }) end
    return value.number_text(value.precision15(arg))
  end
  if t == "table" and getmetatable(arg) == SEQ and arg.outer then arg = arg[1] end
  return value.stringify(arg, pretty)
end
M.string = to_string
ev.string = to_string

define("string", "<x-b?:s>", function(a) return to_string(a[1], a[2]) end)
lib.string.nparams = 1 -- callbacks get the value only (prettify is not an index)

define("length", "<s-:n>", function(a)
  if a[1] == nil then return nil end
  return ulen(a[1])
end)

local function substring(str, start, length)
  if not str:find("[\128-\255]") then
    -- ASCII: characters are bytes
    local n = #str
    start = floor(start)
    if n + start < 0 then start = 0 end
    local from = start >= 0 and start or n + start
    local to = n
    if length ~= nil then
      if length <= 0 then return "" end
      to = floor(start >= 0 and start + length or n + start + length)
      if to > n then to = n end
    end
    if from >= to then return "" end
    return str:sub(from + 1, to)
  end
  local list, n = chars(str)
  start = floor(start)
  if n + start < 0 then start = 0 end
  local from = start >= 0 and start or n + start -- 0-based
  local to
  if length ~= nil then
    if length <= 0 then return "" end
    if start >= 0 then to = start + length else to = n + start + length end
    to = math.floor(to)
    if to > n then to = n end
  else
    to = n
  end
  if from > n then return "" end
  return table.concat(list, "", from + 1, math.max(from, to))
end

define("substring", "<s-nn?:s>", function(a)
  if a[1] == nil then return nil end
  return substring(a[1], a[2], a[3])
end)

define("substringBefore", "<s-s:s>", function(a)
  local str, chars_ = a[1], a[2]
  if str == nil then return nil end
  if chars_ == nil then return str end
  local p = str:find(chars_, 1, true)
  if p then return str:sub(1, p - 1) end
  return str
end)

define("substringAfter", "<s-s:s>", function(a)
  local str, chars_ = a[1], a[2]
  if str == nil then return nil end
  if chars_ == nil then return str end
  local p = str:find(chars_, 1, true)
  if p then return str:sub(p + #chars_) end
  return str
end)

-- Case mapping for ASCII plus Latin-1, Greek and Cyrillic letters (2-byte UTF-8).
local function map_case(s, upper)
  if upper then s = s:upper() else s = s:lower() end
  if not s:find("[\192-\223]") then return s end
  if upper then s = s:gsub("\195\159", "SS") end -- ß
  return (s:gsub(utf8.charpattern, function(c)
    if #c ~= 2 then return nil end
    local cp = utf8.codepoint(c)
    local out = cp
    if upper then
      if (cp >= 0xE0 and cp <= 0xFE and cp ~= 0xF7) then out = cp - 32
      elseif cp >= 0x3B1 and cp <= 0x3C9 and cp ~= 0x3C2 then out = cp - 32
      elseif cp >= 0x430 and cp <= 0x44F then out = cp - 32
      elseif cp >= 0x450 and cp <= 0x45F then out = cp - 80
      elseif cp >= 0x100 and cp <= 0x17F and cp % 2 == 1 then out = cp - 1 end
    else
      if (cp >= 0xC0 and cp <= 0xDE and cp ~= 0xD7) then out = cp + 32
      elseif cp >= 0x391 and cp <= 0x3A9 then out = cp + 32
      elseif cp >= 0x410 and cp <= 0x42F then out = cp + 32
      elseif cp >= 0x400 and cp <= 0x40F then out = cp + 80
      elseif cp >= 0x100 and cp <= 0x17F and cp % 2 == 0 then out = cp + 1 end
    end
    return utf8.char(out)
  end))
end

define("lowercase", "<s-:s>", function(a) return a[1] and map_case(a[1], false) end)
define("uppercase", "<s-:s>", function(a) return a[1] and map_case(a[1], true) end)

define("trim", "<s-:s>", function(a)
  local s = a[1]
  if s == nil then return nil end
  s = s:gsub("[ \t\n\r]+", " ")
  if s:sub(1, 1) == " " then s = s:sub(2) end
  if s:sub(-1) == " " then s = s:sub(1, -2) end
  return s
end)

define("pad", "<s-ns?:s>", function(a)
  local str, width, ch = a[1], a[2], a[3]
  if str == nil then return nil end
  if ch == nil or ch == "" then ch = " " end
  local pad_len = floor(math.abs(width) - ulen(str))
  if pad_len <= 0 then return str end
  local padding = ch:rep(pad_len)
  if ulen(ch) > 1 then padding = substring(padding, 0, pad_len) end
  if width > 0 then return str .. padding end
  return padding .. str
end)

--------------------------------------------------------------------------------------------
-- Regular expressions
--------------------------------------------------------------------------------------------

local regex_mod = optional("emrflow.regex")

-- byte offset (1-based) -> character index (0-based)
local function char_index(s, byte)
  return utf8.len(s, 1, byte - 1) or (byte - 1)
end

--- A regex function value from a JSONata regex literal.
function M.make_regex(pattern, flags, position)
  regex_mod = regex_mod or optional("emrflow.regex")
  if not regex_mod then
    throw("S0303", { position = position, value = "regular expressions need emrflow.regex" })
  end
  local ok, re = pcall(regex_mod.compile, pattern, flags or "")
  if not ok then
    throw("S0303", { position = position, value = tostring(re) })
  end
  local f
  f = setmetatable({ kind = "native", name = "regex", re = re, source = pattern, nparams = 1,
    impl = function(args)
      local s = args[1]
      if type(s) ~= "string" then return nil end
      local start, stop, caps = re:exec(s, 1)
      if not start then return nil end
      local groups = setmetatable({}, ARR)
      for g = 1, re.groups do
        local cs, ce = caps[2 * g - 1], caps[2 * g]
        groups[g] = cs and s:sub(cs, ce) or ""
      end
      return value.set(value.set(value.set(value.new_object(), "match", s:sub(start, stop)),
        "start", char_index(s, start)), "end", char_index(s, stop + 1)), groups
    end }, FN)
  return f
end
ev.make_regex = M.make_regex

--- Iterate the matches of a regex function value over s: calls each(match_text, start_byte,
-- stop_byte, groups) until it returns false or limit matches were seen.
-- A matcher written in JSONata: function($str) returning { match, start, end, groups, next }.
local function each_custom_match(f, s, limit, each)
  local m = call(f, s)
  local count = 0
  while m ~= nil and (not limit or count < limit) do
    if not is_object(m) or not (type(m.start) == "number" or type(m["end"]) == "number"
        or is_array(m.groups) or value.is_function(m.next)) then
      throw("T1010", {})
    end
    local bstart = utf8.offset(s, floor(m.start or 0) + 1) or (#s + 1)
    local bend = utf8.offset(s, floor(m["end"] or m.start or 0) + 1) or (#s + 1)
    local groups = is_array(m.groups) and m.groups or setmetatable({}, ARR)
    count = count + 1
    if each(m.match, bstart, bend - 1, groups) == false then return end
    if not value.is_function(m.next) then return end
    m = call(m.next)
  end
end

local function each_match(rx, s, limit, each)
  if not rx.re then return each_custom_match(rx, s, limit, each) end
  local re = rx.re
  local pos, count = 1, 0
  local first = true
  while pos <= #s + 1 do
    if limit and count >= limit then return end
    local start, stop, caps = re:exec(s, pos)
    if not start then return end
    if not first and stop < start then throw("D1004", { value = rx.source }) end
    first = false
    local groups = setmetatable({}, ARR)
    for g = 1, re.groups do
      local cs, ce = caps[2 * g - 1], caps[2 * g]
      groups[g] = cs and s:sub(cs, ce) or ""
    end
    count = count + 1
    if each(s:sub(start, stop), start, stop, groups) == false then return end
    if stop < start then
      pos = start + 1
      if pos > #s then return end
    else
      pos = stop + 1
    end
    if pos > #s then return end
  end
end

define("match", "<s-f<s:o>n?:a<o>>", function(a)
  local str, rx, limit = a[1], a[2], a[3]
  if str == nil then return nil end
  if limit ~= nil and limit < 0 then throw("D3040", { value = limit }) end
  local out = new_seq()
  if limit ~= nil and limit <= 0 then return out end
  each_match(rx, str, limit, function(m, start, _, groups)
    out[#out + 1] = value.set(value.set(value.set(value.new_object(), "match", m),
      "index", char_index(str, start)), "groups", groups)
  end)
  return out
end)

define("contains", "<s-(sf):b>", function(a)
  local str, token = a[1], a[2]
  if str == nil then return nil end
  if token == nil then return nil end
  if type(token) == "string" then return str:find(token, 1, true) ~= nil end
  local found = false
  each_match(token, str, 1, function() found = true end)
  return found
end)

local function substitute(replacement, m, groups)
  local out, pos, len = {}, 1, #replacement
  local ngroups = #groups
  while pos <= len do
    local d = replacement:find("$", pos, true)
    if not d then break end
    out[#out + 1] = replacement:sub(pos, d - 1)
    pos = d + 1
    local c = replacement:sub(pos, pos)
    if c == "$" then
      out[#out + 1] = "$"
      pos = pos + 1
    elseif c == "0" then
      out[#out + 1] = m
      pos = pos + 1
    else
      local max_digits = ngroups == 0 and 1 or (floor(math.log(ngroups, 10)) + 1)
      local digits = replacement:sub(pos, pos + max_digits - 1):match("^%d+")
      local index = digits and tonumber(digits)
      if index and max_digits > 1 and index > ngroups then
        digits = replacement:sub(pos, pos + max_digits - 2):match("^%d+")
        index = digits and tonumber(digits)
      end
      if index then
        if ngroups > 0 and groups[index] ~= nil then out[#out + 1] = groups[index] end
        pos = pos + #tostring(index)
      else
        out[#out + 1] = "$"
      end
    end
  end
  out[#out + 1] = replacement:sub(pos)
  return table.concat(out)
end

define("replace", "<s-(sf)(sf)n?:s>", function(a)
  local str, pattern, replacement, limit = a[1], a[2], a[3], a[4]
  if str == nil then return nil end
  if pattern == "" then throw("D3010", { value = pattern }) end
  if limit ~= nil and limit < 0 then throw("D3011", { value = limit }) end
  if limit ~= nil and limit <= 0 then return str end
  if type(pattern) == "string" then
    local out, pos, count = {}, 1, 0
    local rep = type(replacement) == "string" and replacement or to_string(replacement)
    while not limit or count < limit do
      local s, e = str:find(pattern, pos, true)
      if not s then break end
      out[#out + 1] = str:sub(pos, s - 1)
      out[#out + 1] = rep
      pos = e + 1
      count = count + 1
    end
    out[#out + 1] = str:sub(pos)
    return table.concat(out)
  end
  local out, pos = {}, 1
  each_match(pattern, str, limit, function(m, start, stop, groups)
    out[#out + 1] = str:sub(pos, start - 1)
    local r
    if type(replacement) == "string" then
      r = substitute(replacement, m, groups)
    else
      local mo = value.set(value.set(value.set(value.new_object(), "match", m),
        "index", char_index(str, start)), "groups", groups)
      r = call(replacement, mo)
      if type(r) ~= "string" then throw("D3012", { value = r }) end
    end
    out[#out + 1] = r
    pos = stop + 1
  end)
  out[#out + 1] = str:sub(pos)
  return table.concat(out)
end)

define("split", "<s-(sf)n?:a<s>>", function(a)
  local str, sep, limit = a[1], a[2], a[3]
  if str == nil then return nil end
  if limit ~= nil and limit < 0 then throw("D3020", { value = limit }) end
  local out = setmetatable({}, ARR)
  if limit ~= nil then limit = floor(limit) end
  if limit == 0 then return out end
  if type(sep) == "string" then
    if sep == "" then
      local list, n = chars(str)
      for i = 1, n do
        if limit and i > limit then break end
        out[i] = list[i]
      end
      return out
    end
    local pos = 1
    while true do
      if limit and #out >= limit then return out end
      local s, e = str:find(sep, pos, true)
      if not s then break end
      out[#out + 1] = str:sub(pos, s - 1)
      pos = e + 1
    end
    if not limit or #out < limit then out[#out + 1] = str:sub(pos) end
    return out
  end
  local pos, count = 1, 0
  each_match(sep, str, limit, function(_, start, stop)
    out[#out + 1] = str:sub(pos, start - 1)
    pos = stop + 1
    count = count + 1
  end)
  if not limit or count < limit then out[#out + 1] = str:sub(pos) end
  return out
end)

define("join", "<a<s>s?:s>", function(a)
  local strs, sep = a[1], a[2]
  if strs == nil then return nil end
  local list = {}
  for i = 1, #strs do list[i] = strs[i] end
  return table.concat(list, sep or "")
end)

--------------------------------------------------------------------------------------------
-- Numbers
--------------------------------------------------------------------------------------------

local picture = optional("emrflow.picture")
local timemod = optional("emrflow.time")

-- ISO 8601 text of epoch milliseconds (used when emrflow.time is not there)
local function format_iso(ms)
  local s = floor(ms / 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", floor(ms - s * 1000))
end

local function need(mod, name)
  if mod then return mod end
  throw("D3137", { detail = "$" .. name .. " needs the emrflow picture/time modules" })
end

local function picture_call(fname, ...)
  picture = picture or optional("emrflow.picture")
  local p = need(picture, fname)
  local ok, r = pcall(p[fname], ...)
  if not ok then
    if type(r) == "table" and r.code then throw(r.code, { value = r.value, detail = r.message }) end
    error(r, 0)
  end
  if type(r) == "number" then return num(r) end
  return r
end

define("formatNumber", "<n-so?:s>", function(a)
  if a[1] == nil then return nil end
  return picture_call("format_number", a[1], a[2], a[3])
end)

define("formatInteger", "<n-s:s>", function(a)
  if a[1] == nil then return nil end
  return picture_call("format_integer", a[1], a[2])
end)

define("parseInteger", "<s-s:n>", function(a)
  if a[1] == nil then return nil end
  return picture_call("parse_integer", a[1], a[2])
end)

local function round(x, precision)
  if x == nil then return nil end
  if precision and precision ~= 0 then
    local m, e = value.number_text(x):match("^([^e]+)e?(.*)$")
    x = tonumber(m .. "e" .. ((e ~= "" and tonumber(e) or 0) + precision))
  end
  local r = floor(x + 0.5)
  if math.abs(r - x) == 0.5 and math.abs(math.fmod(r, 2)) == 1 then r = r - 1 end
  if precision and precision ~= 0 then
    local m, e = value.number_text(num(r)):match("^([^e]+)e?(.*)$")
    r = tonumber(m .. "e" .. ((e ~= "" and tonumber(e) or 0) - precision))
  end
  return num(r + 0.0)
end

define("round", "<n-n?:n>", function(a) return round(a[1], a[2]) end)

define("formatBase", "<n-n?:s>", function(a)
  local v, radix = a[1], a[2]
  if v == nil then return nil end
  v = round(v)
  radix = radix == nil and 10 or radix
  if radix < 2 or radix > 36 then throw("D3100", { value = radix }) end
  radix = floor(radix)
  local neg = v < 0
  v = math.abs(v)
  local digits = "0123456789abcdefghijklmnopqrstuvwxyz"
  local out = {}
  v = floor(v)
  if v == 0 then return "0" end
  while v > 0 do
    local d = floor(math.fmod(v, radix))
    table.insert(out, 1, digits:sub(d + 1, d + 1))
    v = floor(v / radix)
  end
  return (neg and "-" or "") .. table.concat(out)
end)

-- -?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?
local function json_number_text(s)
  local rest = s:match("^%-?%d+(.*)$")
  if not rest then return false end
  rest = rest:gsub("^%.%d+", "", 1)
  rest = rest:gsub("^[eE][-+]?%d+", "", 1)
  return rest == ""
end

local function to_number(arg)
  if arg == nil then return nil end
  local t = type(arg)
  if t == "number" then return arg end
  if t == "string" then
    local s = arg
    if json_number_text(s) then
      local n = tonumber(s)
      if n and n == n and n ~= math.huge and n ~= -math.huge then return num(n + 0.0) end
    end
    local hex = s:match("^0[xX](%x+)$")
    if hex then return tonumber(hex, 16) end
    local oct = s:match("^0[oO]([0-7]+)$")
    if oct then return tonumber(oct, 8) end
    local bin = s:match("^0[bB]([01]+)$")
    if bin then return tonumber(bin, 2) end
  end
  if arg == true then return 1 end
  if arg == false then return 0 end
  throw("D3030", { value = arg, index = 1 })
end

define("number", "<(nsb)-:n>", function(a) return to_number(a[1]) end)
define("floor", "<n-:n>", function(a) return a[1] and num(floor(a[1]) + 0.0) end)
define("ceil", "<n-:n>", function(a) return a[1] and num(math.ceil(a[1]) + 0.0) end)
define("abs", "<n-:n>", function(a) return a[1] and num(math.abs(a[1]) + 0.0) end)
define("sqrt", "<n-:n>", function(a)
  local v = a[1]
  if v == nil then return nil end
  if v < 0 then throw("D3060", { value = v, index = 1 }) end
  return num(math.sqrt(v))
end)
define("power", "<n-n:n>", function(a)
  local b, e = a[1], a[2]
  if b == nil then return nil end
  local r = (b + 0.0) ^ e
  if r ~= r or r == math.huge or r == -math.huge then throw("D3061", { value = b, exp = e }) end
  return num(r)
end)
define("random", "<:n>", function() return math.random() end)

local function numbers(a)
  local arr = a[1]
  if arr == nil then return nil end
  return arr
end

define("sum", "<a<n>:n>", function(a)
  local arr = numbers(a)
  if arr == nil then return nil end
  local total = 0.0
  for i = 1, #arr do total = total + arr[i] end
  return num(total)
end)

define("count", "<a:n>", function(a)
  local arr = a[1]
  if arr == nil then return 0 end
  return #arr
end)

define("max", "<a<n>:n>", function(a)
  local arr = numbers(a)
  if arr == nil or #arr == 0 then return nil end
  local m = arr[1]
  for i = 2, #arr do if arr[i] > m then m = arr[i] end end
  return m
end)

define("min", "<a<n>:n>", function(a)
  local arr = numbers(a)
  if arr == nil or #arr == 0 then return nil end
  local m = arr[1]
  for i = 2, #arr do if arr[i] < m then m = arr[i] end end
  return m
end)

define("average", "<a<n>:n>", function(a)
  local arr = numbers(a)
  if arr == nil or #arr == 0 then return nil end
  local total = 0.0
  for i = 1, #arr do total = total + arr[i] end
  return num(total / #arr)
end)

--------------------------------------------------------------------------------------------
-- Booleans, types, objects, arrays
--------------------------------------------------------------------------------------------

define("boolean", "<x-:b>", function(a) return ev.to_boolean(a[1]) end)
define("not", "<x-:b>", function(a)
  local b = ev.to_boolean(a[1])
  if b == nil then return nil end
  return not b
end)
define("exists", "<x:b>", function(a) return a[1] ~= nil end)

define("type", "<x:s>", function(a) return value.type_of(a[1]) end)

local function keys_of(arg, out, seen)
  if is_array(arg) then
    for i = 1, #arg do keys_of(arg[i], out, seen) end
  elseif type(arg) == "table" and getmetatable(arg) ~= FN and arg ~= NULL then
    for _, k in ipairs(value.keys(arg)) do
      if arg[k] ~= nil and not seen[k] then
        seen[k] = true
        out[#out + 1] = k
      end
    end
  end
  return out
end

define("keys", "<x-:a<s>>", function(a) return keys_of(a[1], new_seq(), {}) end)

define("lookup", "<x-s:x>", function(a) return ev.lookup(a[1], a[2]) end)

define("append", "<xx:a>", function(a) return value.append(a[1], a[2]) end)

local function spread(arg)
  if is_array(arg) then
    local out = new_seq()
    for i = 1, #arg do
      local s = spread(arg[i])
      if is_array(s) then
        for j = 1, #s do out[#out + 1] = s[j] end
      elseif s ~= nil then
        out[#out + 1] = s
      end
    end
    return out
  end
  if is_object(arg) and getmetatable(arg) ~= FN then
    local out = new_seq()
    for _, k in ipairs(value.keys(arg)) do
      if arg[k] ~= nil then out[#out + 1] = value.set(value.new_object(), k, arg[k]) end
    end
    return out
  end
  return arg
end
define("spread", "<x-:a<o>>", function(a) return spread(a[1]) end)

define("merge", "<a<o>:o>", function(a)
  local arr = a[1]
  if arr == nil then return nil end
  local out = value.new_object()
  for i = 1, #arr do
    local o = arr[i]
    for _, k in ipairs(value.keys(o)) do
      if o[k] ~= nil then value.set(out, k, o[k]) end
    end
  end
  return out
end)

define("reverse", "<a:a>", function(a)
  local arr = a[1]
  if arr == nil then return nil end
  if #arr <= 1 then return arr end
  local out, n = setmetatable({}, ARR), #arr
  for i = 1, n do out[i] = arr[n - i + 1] end
  return out
end)

define("each", "<o-f:a>", function(a)
  local obj, f = a[1], a[2]
  if obj == nil then return nil end
  local out = new_seq()
  for _, k in ipairs(value.keys(obj)) do
    if obj[k] ~= nil then
      local r = hof_call(f, obj[k], k, obj)
      if r ~= nil then out[#out + 1] = r end
    end
  end
  return out
end)

define("sift", "<o-f?:o>", function(a)
  local obj, f = a[1], a[2]
  if obj == nil then return nil end
  local out = value.new_object()
  local any = false
  for _, k in ipairs(value.keys(obj)) do
    local v = obj[k]
    if v ~= nil and ev.to_boolean(hof_call(f, v, k, obj)) then
      value.set(out, k, v)
      any = true
    end
  end
  if not any then return nil end
  return out
end)

define("error", "<s?:x>", function(a)
  throw("D3137", { detail = a[1] or "$error() function evaluated" })
end)

define("assert", "<bs?:x>", function(a)
  if not a[1] then throw("D3141", { detail = a[2] or "$assert() statement failed" }) end
  return nil
end)

define("map", "<af>", function(a)
  local arr, f = a[1], a[2]
  if arr == nil then return nil end
  local out, n = new_seq(), 0
  local arity = ev.arity(f)
  local call1 = arity == 1 and ev.caller(f, 1)
  for i = 1, #arr do
    local r
    if call1 then r = call1(arr[i]) else r = hof_call(f, arr[i], i - 1, arr, arity) end
    if r ~= nil then
      n = n + 1
      out[n] = r
    end
  end
  return out
end)

define("filter", "<af>", function(a)
  local arr, f = a[1], a[2]
  if arr == nil then return nil end
  local out, n = new_seq(), 0
  local arity = ev.arity(f)
  for i = 1, #arr do
    if ev.to_boolean(hof_call(f, arr[i], i - 1, arr, arity)) then
      n = n + 1
      out[n] = arr[i]
    end
  end
  return out
end)

define("single", "<af?>", function(a)
  local arr, f = a[1], a[2]
  if arr == nil then return nil end
  local found, result = false, nil
  for i = 1, #arr do
    local ok = true
    if f ~= nil then ok = ev.to_boolean(hof_call(f, arr[i], i - 1, arr)) end
    if ok then
      if found then throw("D3138", { index = i }) end
      found, result = true, arr[i]
    end
  end
  if not found then throw("D3139", {}) end
  return result
end)

define("reduce", "<afj?:j>", function(a, n)
  local arr, f, init = a[1], a[2], a[3]
  if arr == nil then return nil end
  local arity = ev.arity(f)
  if arity < 2 then throw("D3050", { index = 1 }) end
  local result, index
  if n < 3 or init == nil then
    if #arr > 0 then
      result, index = arr[1], 2
    else
      result, index = init, 1
    end
  else
    result, index = init, 1
  end
  local call2 = arity == 2 and ev.caller(f, 2)
  while index <= #arr do
    if call2 then
      result = call2(result, arr[index])
    elseif arity >= 4 then
      result = invoke(f, 4, result, arr[index], index - 1, arr)
    elseif arity == 3 then
      result = invoke(f, 3, result, arr[index], index - 1)
    else
      result = invoke(f, 2, result, arr[index])
    end
    index = index + 1
  end
  return result
end)

define("zip", "<a+>", function(a, n)
  local out = setmetatable({}, ARR)
  local len = math.huge
  for i = 1, n do
    local arr = a[i]
    len = math.min(len, is_array(arr) and #arr or 0)
  end
  if n == 0 then len = 0 end
  for i = 1, len do
    local tuple = setmetatable({}, ARR)
    for j = 1, n do tuple[j] = a[j][i] end
    out[i] = tuple
  end
  return out
end)

local function sort_values(arr, cmp)
  if arr == nil then return nil end
  if #arr <= 1 then return arr end
  local list, n = {}, #arr
  for i = 1, n do list[i] = arr[i] end
  local swap
  if cmp == nil then
    local kind = type(list[1])
    for i = 1, n do
      if type(list[i]) ~= kind or (kind ~= "number" and kind ~= "string") then
        throw("D3070", { index = 1 })
      end
    end
    swap = function(x, y) return x > y end
  else
    swap = function(x, y) return ev.to_boolean(apply(cmp, { x, y }, 2, nil, nil)) == true end
  end
  ev.merge_sort(list, n, swap)
  return setmetatable(list, ARR)
end
define("sort", "<af?:a>", function(a) return sort_values(a[1], a[2]) end)

define("shuffle", "<a:a>", function(a)
  local arr = a[1]
  if arr == nil then return nil end
  if #arr <= 1 then return arr end
  local out = setmetatable({}, ARR)
  for i = 1, #arr do out[i] = arr[i] end
  for i = #out, 2, -1 do
    local j = math.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end)

define("distinct", "<x:x>", function(a)
  local arr = a[1]
  if arr == nil then return nil end
  if not is_array(arr) or #arr <= 1 then return arr end
  local out = getmetatable(arr) == SEQ and new_seq() or setmetatable({}, ARR)
  for i = 1, #arr do
    local v = arr[i]
    local dup = false
    for j = 1, #out do
      if value.deep_equal(v, out[j]) then
        dup = true
        break
      end
    end
    if not dup then out[#out + 1] = v end
  end
  return out
end)

local function clone(v)
  if type(v) ~= "table" then return v end
  if getmetatable(v) == FN then return nil end
  if is_array(v) then
    local out = setmetatable({}, ARR)
    for i = 1, #v do out[#out + 1] = clone(v[i]) end
    return out
  end
  local out = value.new_object()
  for _, k in ipairs(value.keys(v)) do
    local c = clone(v[k])
    if c ~= nil then value.set(out, k, c) end
  end
  return out
end
M.clone = clone

define("clone", "<(oa)-:o>", function(a) return clone(a[1]) end)

--------------------------------------------------------------------------------------------
-- Encoding
--------------------------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function latin1(s)
  -- btoa works on code points < 256: encode those as single bytes
  local ok = utf8.len(s)
  if not ok then return s end
  local out = {}
  for _, c in utf8.codes(s) do
    out[#out + 1] = c < 256 and string.char(c) or utf8.char(c)
  end
  return table.concat(out)
end

define("base64encode", "<s-:s>", function(a)
  local s = a[1]
  if s == nil then return nil end
  s = latin1(s)
  local out = {}
  for i = 1, #s, 3 do
    local b1, b2, b3 = s:byte(i, i + 2)
    local n = b1 * 65536 + (b2 or 0) * 256 + (b3 or 0)
    local c1, c2 = (n >> 18) & 63, (n >> 12) & 63
    local c3, c4 = (n >> 6) & 63, n & 63
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
      .. (b2 and B64:sub(c3 + 1, c3 + 1) or "=") .. (b3 and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end)

define("base64decode", "<s-:s>", function(a)
  local s = a[1]
  if s == nil then return nil end
  s = s:gsub("[^%w+/]", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = B64:find(s:sub(i, i), 1, true) - 1
    bits = (bits << 6) | v
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = utf8.char((bits >> nbits) & 255)
    end
  end
  return table.concat(out)
end)

local function encode_uri(s, keep)
  if not utf8.len(s) then throw("D3140", { value = s }) end
  return (s:gsub("[^%w]", function(c)
    if keep:find(c, 1, true) then return c end
    return string.format("%%%02X", c:byte())
  end))
end

define("encodeUrlComponent", "<s-:s>", function(a)
  return a[1] and encode_uri(a[1], "-_.!~*'()")
end)
define("encodeUrl", "<s-:s>", function(a)
  return a[1] and encode_uri(a[1], "-_.!~*'();/?:@&=+$,#")
end)

local function decode_uri(s, reserved)
  local ok = true
  local out = s:gsub("%%(..)", function(h)
    if not h:match("^%x%x$") then
      ok = false
      return nil
    end
    local c = string.char(tonumber(h, 16))
    if reserved and reserved:find(c, 1, true) then return "%" .. h end
    return c
  end)
  if not ok or s:find("%%.?$") and s:find("%%%x?$") or not utf8.len(out) then
    throw("D3140", { value = s })
  end
  return out
end

define("decodeUrlComponent", "<s-:s>", function(a)
  return a[1] and decode_uri(a[1], nil)
end)
define("decodeUrl", "<s-:s>", function(a)
  return a[1] and decode_uri(a[1], ";/?:@&=+$,#")
end)

--------------------------------------------------------------------------------------------
-- Time
--------------------------------------------------------------------------------------------

define("millis", "<:n>", function() return ev.rt.now end)

define("now", "<s?s?:s>", function(a)
  local ms = ev.rt.now
  if a[1] == nil and a[2] == nil then
    timemod = timemod or optional("emrflow.time")
    return (timemod and timemod.format_iso or format_iso)(ms)
  end
  return picture_call("format_datetime", ms, a[1], a[2])
end)

define("fromMillis", "<n-s?s?:s>", function(a)
  local ms, pic, tz = a[1], a[2], a[3]
  if ms == nil then return nil end
  if pic == nil and tz == nil then
    timemod = timemod or optional("emrflow.time")
    return (timemod and timemod.format_iso or format_iso)(floor(ms))
  end
  return picture_call("format_datetime", ms, pic, tz)
end)

define("toMillis", "<s-s?:n>", function(a)
  local ts, pic = a[1], a[2]
  if ts == nil then return nil end
  if pic == nil then
    timemod = timemod or optional("emrflow.time")
    local ms = need(timemod, "toMillis").parse_iso(ts, "jsonata")
    if ms == nil then throw("D3110", { value = ts }) end
    return ms
  end
  return picture_call("parse_datetime", ts, pic)
end)

--------------------------------------------------------------------------------------------

--- The library as a frame: name -> function value. extra: more definitions (name -> value).
function M.library()
  return lib
end

M.define = define
M.hof_call = hof_call

return M
