-- emrflow.asl.intrinsics: the States.* intrinsic functions of JSONPath states.
--
--   intrinsics.compile(text [, field]) --> fn | nil, message
--       text is a call such as "States.Format('{} items', States.ArrayLength($.items))".
--       field names the template field for error texts (for example "value.$").
--       fn(env) evaluates it: env = { input = <$>, context = <$$>, vars = { name = value } }.
--       It raises ASL errors { Error =, Cause = }: States.IntrinsicFailure when a function
--       rejects its arguments, States.Runtime when a path argument matches nothing (cause
--       "The JSONPath '$.x' specified for the field '<field>' could not be found in the
--       input '<json>'").
--       Compiled calls are memoized by (field, text). A call of a pure function whose
--       arguments are all constants is evaluated once, at compile time, and its value shared
--       by every evaluation (values are never modified once made); if it fails there, it is
--       left to fail at run time as AWS reports it. States.UUID and unseeded
--       States.MathRandom are never folded.
--   intrinsics.is_call(text)          --> true when text looks like "States.<Name>(...)"
--   intrinsics.call(name, args)       --> value; runs one function on already-evaluated args
--   intrinsics.format_value(v)        --> v as States.Format prints it (Java style)
--   intrinsics.hash(data, algorithm)  --> lowercase hex digest (MD5, SHA-1, SHA-256, SHA-384,
--                                         SHA-512, spelled so), from OpenSSL (emrflow.digest)
--   intrinsics.base64_encode(s) / intrinsics.base64_decode(s) --> string | nil
--   intrinsics.utf8_text(s)           --> s with malformed UTF-8 replaced by U+FFFD (as Java
--                                         decodes bytes; Base64Decode's result)
--   intrinsics.set_random(fn)         -- fn(lo, hi) --> integer in [lo, hi], used by
--                                        unseeded MathRandom and UUID (default math.random)
--
-- Arguments: string literals in single quotes (escapes \' \{ \} \\), numbers, true, false,
-- null, paths ($..., $$..., $name...) and nested calls, at most 10 deep.
-- Results AWS recorded: Format prints objects as {a=1, b=[]} and floats as Java does;
-- MathAdd rounds each argument half up first; StringSplit splits on any delimiter character
-- and drops empty pieces; StringToJson("") is null; JsonMerge is shallow only; MathRandom
-- with a seed is deterministic (java.util.Random); ArrayRange includes its end.
-- Decided where AWS recorded nothing: MathRandom's bounds must be Java ints (else
-- States.IntrinsicFailure); Base64Decode replaces malformed UTF-8 with U+FFFD; JsonToString
-- of a value JSON cannot hold fails with States.IntrinsicFailure.
local json = require "emrflow.json"
local errors = require "emrflow.asl.errors"
local jsonpath = require "emrflow.asl.jsonpath"
local digest = require "emrflow.digest"

local M = {}

local null = json.null
local kind, deep_equal = jsonpath.kind, jsonpath.deep_equal
local sfind, ssub, sbyte, schar, sformat, srep = string.find, string.sub, string.byte, string.char,
  string.format, string.rep
local concat, tointeger, floor, mtype = table.concat, math.tointeger, math.floor, math.type

local MAX_DEPTH = 10
local MAX_INPUT_CHARS = 10000
local MAX_RANGE_ITEMS = 1000
local INT32_MIN, INT32_MAX = -2147483648, 2147483647

local function fail(fmt, ...)
  errors.intrinsic(sformat(fmt, ...))
end

---------------------------------------------------------------------------------------------
-- Hashes: OpenSSL through the C core (emrflow.digest), under the names AWS spells
---------------------------------------------------------------------------------------------

local HASHES = { ["MD5"] = true, ["SHA-1"] = true, ["SHA-256"] = true, ["SHA-384"] = true,
  ["SHA-512"] = true }

function M.hash(data, algorithm)
  if not HASHES[algorithm] then return nil, "unsupported hash algorithm " .. tostring(algorithm) end
  return digest.hex(algorithm, data)
end

---------------------------------------------------------------------------------------------
-- Base64
---------------------------------------------------------------------------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INV = {}
for i = 1, 64 do B64_INV[sbyte(B64, i)] = i - 1 end

local B64_PAIR = {} -- 12 bits -> two base64 characters
for i = 0, 4095 do
  B64_PAIR[i] = ssub(B64, (i >> 6) + 1, (i >> 6) + 1) .. ssub(B64, (i & 63) + 1, (i & 63) + 1)
end

function M.base64_encode(s)
  local n = #s
  local out, k = {}, 0
  local full = n - n % 3
  for i = 1, full, 3 do
    local a, b, c = sbyte(s, i, i + 2)
    local v = (a << 16) | (b << 8) | c
    k = k + 1
    out[k] = B64_PAIR[v >> 12] .. B64_PAIR[v & 4095]
  end
  local rest = n - full
  if rest > 0 then
    local a, b = sbyte(s, full + 1, n)
    local v = (a << 16) | ((b or 0) << 8)
    local quad = B64_PAIR[v >> 12] .. B64_PAIR[v & 4095]
    k = k + 1
    out[k] = rest == 1 and (ssub(quad, 1, 2) .. "==") or (ssub(quad, 1, 3) .. "=")
  end
  return concat(out, "", 1, k)
end

function M.base64_decode(s)
  s = s:gsub("[\r\n]", "")
  if #s % 4 ~= 0 then return nil end
  local out = {}
  for i = 1, #s, 4 do
    local a, b, c, d = sbyte(s, i, i + 3)
    local va, vb = B64_INV[a], B64_INV[b]
    if not va or not vb then return nil end
    local last = i + 3 == #s
    local vc, vd
    if c == 61 then
      if not last or d ~= 61 then return nil end
      out[#out + 1] = schar(((va << 2) | (vb >> 4)) & 255)
    else
      vc = B64_INV[c]
      if not vc then return nil end
      if d == 61 then
        if not last then return nil end
        out[#out + 1] = schar(((va << 2) | (vb >> 4)) & 255, ((vb << 4) | (vc >> 2)) & 255)
      else
        vd = B64_INV[d]
        if not vd then return nil end
        out[#out + 1] = schar(((va << 2) | (vb >> 4)) & 255, ((vb << 4) | (vc >> 2)) & 255,
          ((vc << 6) | vd) & 255)
      end
    end
  end
  return concat(out)
end

-- s with every malformed UTF-8 sequence replaced by U+FFFD (one per maximal bad prefix).
local REPLACEMENT = "\xEF\xBF\xBD"
function M.utf8_text(s)
  if utf8.len(s) then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local ok, bad = utf8.len(s, i)
    if ok then out[#out + 1] = ssub(s, i) break end
    out[#out + 1] = ssub(s, i, bad - 1)
    out[#out + 1] = REPLACEMENT
    -- skip the lead byte and the continuation bytes its sequence would have owned
    local lead = sbyte(s, bad)
    local want_cont = lead >= 0xF0 and 3 or lead >= 0xE0 and 2 or lead >= 0xC2 and 1 or 0
    i = bad + 1
    while want_cont > 0 and i <= n and sbyte(s, i) >= 0x80 and sbyte(s, i) <= 0xBF do
      i = i + 1
      want_cont = want_cont - 1
    end
  end
  return concat(out)
end

---------------------------------------------------------------------------------------------
-- Random numbers: java.util.Random for seeded MathRandom, math.random otherwise
---------------------------------------------------------------------------------------------

local random = math.random

function M.set_random(fn)
  random = fn or math.random
end

local MASK48 = (1 << 48) - 1
local JMUL = 0x5DEECE66D

local function java_random(seed)
  local state = (seed ~ JMUL) & MASK48
  local function nxt(bits)
    state = (state * JMUL + 0xB) & MASK48
    return state >> (48 - bits)
  end
  return function(bound) -- java.util.Random.nextInt(bound), bound > 0
    if bound > INT32_MAX then -- beyond Java's int: two 32-bit draws (never loops)
      return ((nxt(32) << 32) | nxt(32)) % bound
    end
    if bound & (bound - 1) == 0 then
      return (bound * nxt(31)) >> 31
    end
    local u = nxt(31)
    local r = u % bound
    while u - r + (bound - 1) > INT32_MAX do
      u = nxt(31)
      r = u % bound
    end
    return r
  end
end

---------------------------------------------------------------------------------------------
-- Printing values the way States.Format does (Java toString of the JSON tree)
---------------------------------------------------------------------------------------------

-- Java's Double.toString: plain notation for 1e-3 <= |x| < 1e7, else d.dddE<exp>.
local function java_double(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  local s
  for p = 1, 17 do
    s = sformat("%." .. p .. "e", x)
    if tonumber(s) == x then break end
  end
  local sign, mant, exp = s:match("^(%-?)([%d%.]+)e([%-+]%d+)$")
  exp = tonumber(exp)
  local digits = mant:gsub("%.", "")
  digits = digits:gsub("0+$", "")
  if digits == "" then digits = "0" end
  local ax = math.abs(x)
  if ax >= 1e-3 and ax < 1e7 then
    local point = exp + 1 -- digits before the decimal point
    local int, frac
    if point <= 0 then
      int, frac = "0", srep("0", -point) .. digits
    elseif point >= #digits then
      int, frac = digits .. srep("0", point - #digits), "0"
    else
      int, frac = ssub(digits, 1, point), ssub(digits, point + 1)
    end
    return sign .. int .. "." .. frac
  end
  local frac = ssub(digits, 2)
  if frac == "" then frac = "0" end
  return sign .. ssub(digits, 1, 1) .. "." .. frac .. "E" .. exp
end

local function format_value(v)
  local k = kind(v)
  if k == "string" then return v
  elseif k == "number" then
    if mtype(v) == "integer" then return tostring(v) end
    return java_double(v)
  elseif k == "boolean" then return tostring(v)
  elseif k == "null" then return "null"
  elseif k == "array" then
    local parts = {}
    for i = 1, #v do parts[i] = format_value(v[i]) end
    return "[" .. concat(parts, ", ") .. "]"
  elseif k == "object" then
    local parts = {}
    for _, key in ipairs(json.keys(v)) do parts[#parts + 1] = key .. "=" .. format_value(v[key]) end
    return "{" .. concat(parts, ", ") .. "}"
  end
  -- not JSON (a Lua function or userdata in a Lua-built input): never print its address
  fail("States.Format cannot print a %s value", type(v))
end
M.format_value = format_value

---------------------------------------------------------------------------------------------
-- The functions
---------------------------------------------------------------------------------------------

local ORD = { "first", "second", "third", "fourth", "fifth" }

local function want(fname, args, i, k)
  local v = args[i]
  local t = type(v)
  if t == k and t ~= "table" then return v end -- strings, numbers, booleans
  local got = kind(v)
  if got ~= k then
    fail("The %s argument of %s must be %s %s, but was %s: %s", ORD[i] or ("#" .. i), fname,
      (k == "array" or k == "object" or k == "integer") and "an" or "a", k, got or "missing",
      jsonpath.encode(v))
  end
  return v
end

local function want_int(fname, args, i)
  local v = args[i]
  local n = type(v) == "number" and tointeger(v)
  if not n then
    fail("The %s argument of %s must be an integer, but was %s: %s", ORD[i] or ("#" .. i), fname,
      kind(v) or "missing", jsonpath.encode(v))
  end
  return n
end

local function java_round(x)
  if mtype(x) == "integer" then return x end
  return floor(x + 0.5)
end

local function utf8_len(s)
  return utf8.len(s) or #s
end

local function check_size(fname, s)
  if utf8_len(s) > MAX_INPUT_CHARS then
    fail("The input string of %s must not be longer than %d characters", fname, MAX_INPUT_CHARS)
  end
end

local F = {}
local IMPURE, format_impl, call_site

local format_buf = {} -- States.Format's pieces (never re-entered: format_value calls no intrinsic)
F["States.Format"] = { 1, math.huge, function(args, n, tpl)
  local template = want("States.Format", args, 1, "string")
  local pieces = tpl
  if not pieces then
    pieces = {}
    local i = 1
    while true do
      local s = sfind(template, "{}", i, true)
      if not s then pieces[#pieces + 1] = ssub(template, i) break end
      pieces[#pieces + 1] = ssub(template, i, s - 1)
      pieces[#pieces + 1] = false
      i = s + 2
    end
  end
  local holes = pieces.holes
  if not holes then
    holes = 0
    for _, p in ipairs(pieces) do if p == false then holes = holes + 1 end end
    pieces.holes = holes
  end
  if holes ~= n - 1 then
    fail("The number of arguments (%d) does not match the number of placeholders '{}' (%d) in the "
      .. "format string of States.Format", n - 1, holes)
  end
  local out, a = format_buf, 1
  local np = #pieces
  for k = 1, np do
    local p = pieces[k]
    if p == false then
      a = a + 1
      local v = args[a]
      if type(v) ~= "string" then v = format_value(v) end
      out[k] = v
    else
      out[k] = p
    end
  end
  local text = concat(out, "", 1, np)
  for k = 1, np do out[k] = nil end
  return text
end }

F["States.StringToJson"] = { 1, 1, function(args)
  local s = want("States.StringToJson", args, 1, "string")
  if sfind(s, "^%s*$") then return null end
  local ok, v = pcall(json.decode, s)
  if not ok then
    fail("The argument of States.StringToJson is not valid JSON: %s", s)
  end
  return v
end }

F["States.JsonToString"] = { 1, 1, function(args)
  local ok, text = pcall(json.encode, args[1])
  if not ok then
    fail("The argument of States.JsonToString cannot be encoded as JSON: %s",
      (tostring(text):gsub("^emrflow%.json: ", "")))
  end
  return text
end }

F["States.Array"] = { 0, math.huge, function(args, n)
  local out = json.array({})
  for i = 1, n do out[i] = args[i] end
  return out
end }

F["States.ArrayPartition"] = { 2, 2, function(args)
  local arr = want("States.ArrayPartition", args, 1, "array")
  local size = want_int("States.ArrayPartition", args, 2)
  if size <= 0 then
    fail("The chunk size of States.ArrayPartition must be greater than 0, but was %d", size)
  end
  local out = json.array({})
  for i = 1, #arr, size do
    local chunk = json.array({})
    for j = i, math.min(i + size - 1, #arr) do chunk[#chunk + 1] = arr[j] end
    out[#out + 1] = chunk
  end
  return out
end }

F["States.ArrayContains"] = { 2, 2, function(args)
  local arr = want("States.ArrayContains", args, 1, "array")
  local v = args[2]
  for i = 1, #arr do
    if deep_equal(arr[i], v) then return true end
  end
  return false
end }

-- Walks the range and stops past the limit, so that neither a huge range is built nor its
-- length computed (to - from overflows for ranges wider than the 64-bit integers).
F["States.ArrayRange"] = { 3, 3, function(args)
  local from = want_int("States.ArrayRange", args, 1)
  local to = want_int("States.ArrayRange", args, 2)
  local step = want_int("States.ArrayRange", args, 3)
  if step == 0 then fail("The step of States.ArrayRange must not be 0") end
  local out = json.array({})
  local v, n = from, 0
  while (step > 0 and v <= to) or (step < 0 and v >= to) do
    if n == MAX_RANGE_ITEMS then
      fail("States.ArrayRange(%d, %d, %d) would return more than the limit of %d items", from, to, step,
        MAX_RANGE_ITEMS)
    end
    n = n + 1
    out[n] = v
    local nextv = v + step
    if (step > 0) ~= (nextv > v) then break end -- wrapped around the integers: the range ends
    v = nextv
  end
  return out
end }

F["States.ArrayGetItem"] = { 2, 2, function(args)
  local arr = want("States.ArrayGetItem", args, 1, "array")
  local i = want_int("States.ArrayGetItem", args, 2)
  if i < 0 or i >= #arr then
    fail("The index %d is out of bounds for States.ArrayGetItem on an array of length %d", i, #arr)
  end
  return arr[i + 1]
end }

F["States.ArrayLength"] = { 1, 1, function(args)
  return #want("States.ArrayLength", args, 1, "array")
end }

local function scalar_key(v)
  local t = type(v)
  if t == "number" then
    local i = tointeger(v)
    return i and ("n" .. i) or ("n" .. sformat("%.17g", v))
  elseif t == "string" then return "s" .. v
  elseif t == "boolean" then return v and "T" or "F"
  elseif v == null then return "N" end
  return nil
end

F["States.ArrayUnique"] = { 1, 1, function(args)
  local arr = want("States.ArrayUnique", args, 1, "array")
  local out, seen, others = json.array({}), {}, {}
  for i = 1, #arr do
    local v = arr[i]
    local key = scalar_key(v)
    if key then
      if not seen[key] then seen[key] = true; out[#out + 1] = v end
    else
      local dup = false
      for _, o in ipairs(others) do
        if deep_equal(o, v) then dup = true break end
      end
      if not dup then others[#others + 1] = v; out[#out + 1] = v end
    end
  end
  return out
end }

F["States.Base64Encode"] = { 1, 1, function(args)
  local s = want("States.Base64Encode", args, 1, "string")
  check_size("States.Base64Encode", s)
  return M.base64_encode(s)
end }

-- The decoded bytes become text as Java's new String(bytes, UTF_8) makes it: each malformed
-- sequence is replaced by U+FFFD, so the result is always a valid JSON string.
F["States.Base64Decode"] = { 1, 1, function(args)
  local s = want("States.Base64Decode", args, 1, "string")
  check_size("States.Base64Decode", s)
  local out = M.base64_decode(s)
  if not out then fail("The argument of States.Base64Decode is not valid base64: %s", s) end
  return M.utf8_text(out)
end }

F["States.Hash"] = { 2, 2, function(args)
  local data = want("States.Hash", args, 1, "string")
  check_size("States.Hash", data)
  local alg = want("States.Hash", args, 2, "string")
  if not HASHES[alg] then
    fail("The hash algorithm '%s' is not supported by States.Hash; use one of MD5, SHA-1, "
      .. "SHA-256, SHA-384, SHA-512", alg)
  end
  return digest.hex(alg, data)
end }

F["States.JsonMerge"] = { 3, 3, function(args)
  local a = want("States.JsonMerge", args, 1, "object")
  local b = want("States.JsonMerge", args, 2, "object")
  local deep = want("States.JsonMerge", args, 3, "boolean")
  if deep then fail("States.JsonMerge supports only a shallow merge: its third argument must be false") end
  local out = jsonpath.copy_object(a)
  for _, k in ipairs(json.keys(b)) do json.set(out, k, b[k]) end
  return out
end }

F["States.MathRandom"] = { 2, 3, function(args, n)
  local lo = want("States.MathRandom", args, 1, "number")
  local hi = want("States.MathRandom", args, 2, "number")
  lo, hi = java_round(lo), java_round(hi)
  for i, v in ipairs({ lo, hi }) do
    if not (v >= INT32_MIN and v <= INT32_MAX) then
      fail("The %s argument of States.MathRandom must be between %d and %d, but was %s", ORD[i],
        INT32_MIN, INT32_MAX, jsonpath.encode(args[i]))
    end
  end
  lo, hi = tointeger(lo), tointeger(hi)
  if lo > hi then
    fail("The start of States.MathRandom (%d) must not be greater than its end (%d)", lo, hi)
  end
  if n == 3 then
    local seed = want_int("States.MathRandom", args, 3)
    return lo + java_random(seed)(hi - lo + 1)
  end
  return random(lo, hi)
end }

F["States.MathAdd"] = { 2, 2, function(args)
  local a = java_round(want("States.MathAdd", args, 1, "number"))
  local b = java_round(want("States.MathAdd", args, 2, "number"))
  if a < INT32_MIN or a > INT32_MAX or b < INT32_MIN or b > INT32_MAX then
    local i, v = 1, a
    if not (a < INT32_MIN or a > INT32_MAX) then i, v = 2, b end
    fail("The %s argument of States.MathAdd must be between %d and %d, but was %s", ORD[i],
      INT32_MIN, INT32_MAX, tostring(v))
  end
  return tointeger(a + b) or (a + b)
end }

-- Splits on characters (code points); text that is not UTF-8 (possible only in a Lua-defined
-- input) is split on bytes.
-- ASCII delimiters (the usual case) split the bytes directly: an ASCII byte is never part of a
-- multi-byte UTF-8 character, so the pieces are the runs of other bytes, as character by
-- character. The pattern of each delimiter set is made once (at most 64 kept: a delimiter
-- may come from the input).
local split_patterns, split_count = {}, 0
local function split_pattern(delims)
  local p = split_patterns[delims]
  if p then return p end
  if split_count >= 64 then split_patterns, split_count = {}, 0 end
  p = "[^" .. delims:gsub("%W", "%%%0") .. "]+"
  split_patterns[delims], split_count = p, split_count + 1
  return p
end

F["States.StringSplit"] = { 2, 2, function(args)
  local s = want("States.StringSplit", args, 1, "string")
  local delims = want("States.StringSplit", args, 2, "string")
  if delims ~= "" and not sfind(delims, "[\x80-\xFF]") then
    local out, n = json.array({}), 0
    for piece in s:gmatch(split_pattern(delims)) do
      n = n + 1
      out[n] = piece
    end
    return out
  end
  local char = "[\0-\x7F\xC2-\xFD][\x80-\xBF]*"
  if not utf8.len(s) or not utf8.len(delims) then char = "." end
  local set = {}
  for ch in delims:gmatch(char) do set[ch] = true end
  local out, cur, k = json.array({}), {}, 0
  for ch in s:gmatch(char) do
    if set[ch] then
      if k > 0 then out[#out + 1] = concat(cur, "", 1, k); k = 0 end
    else
      k = k + 1
      cur[k] = ch
    end
  end
  if k > 0 then out[#out + 1] = concat(cur, "", 1, k) end
  return out
end }

F["States.UUID"] = { 0, 0, function()
  local b = {}
  for i = 1, 16 do b[i] = random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  return sformat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
    table.unpack(b))
end }

-- Functions whose value is not fixed by their arguments (never evaluated at compile time).
IMPURE = { ["States.UUID"] = true }

function M.call(name, args)
  local f = F[name]
  if not f then fail("Unknown intrinsic function %s", tostring(name)) end
  local n = #args
  if n < f[1] or n > f[2] then
    fail("%s takes %s arguments, got %d", name, f[1] == f[2] and tostring(f[1]) or
      (f[2] == math.huge and ("at least " .. f[1]) or (f[1] .. " to " .. f[2])), n)
  end
  return f[3](args, n)
end

---------------------------------------------------------------------------------------------
-- Parsing to closures
---------------------------------------------------------------------------------------------

local function perr(text, pos, msg)
  return nil, sformat("invalid intrinsic function '%s' at position %d: %s", text, pos, msg)
end

local function skip_ws(s, i)
  local _, e = sfind(s, "^%s*", i)
  return e and e + 1 or i
end

-- A string literal: returns value, format pieces (text and false for each unescaped {}), next.
local function read_literal(text, i)
  local buf, pieces, j, n = {}, {}, i + 1, #text
  local seg = {}
  while j <= n do
    local c = ssub(text, j, j)
    if c == "\\" then
      local d = ssub(text, j + 1, j + 1)
      if d == "'" or d == "{" or d == "}" or d == "\\" then
        buf[#buf + 1] = d
        seg[#seg + 1] = d
        j = j + 2
      else
        return perr(text, j, "a backslash in a string literal must escape one of ' { } \\")
      end
    elseif c == "'" then
      pieces[#pieces + 1] = concat(seg)
      return concat(buf), pieces, j + 1
    elseif c == "{" and ssub(text, j + 1, j + 1) == "}" then
      buf[#buf + 1] = "{}"
      pieces[#pieces + 1] = concat(seg)
      pieces[#pieces + 1] = false
      seg = {}
      j = j + 2
    else
      buf[#buf + 1] = c
      seg[#seg + 1] = c
      j = j + 1
    end
  end
  return perr(text, i, "unterminated string literal")
end

-- The end of a path argument: the first ',' or ')' outside brackets, parentheses and quotes
-- --> position | nil, position of an unterminated quote.
local function path_end(text, i)
  local depth, j, n = 0, i, #text
  while j <= n do
    local c = ssub(text, j, j)
    if c == "'" or c == '"' then
      local k = j + 1
      while k <= n and ssub(text, k, k) ~= c do
        if ssub(text, k, k) == "\\" then k = k + 1 end
        k = k + 1
      end
      if k > n then return nil, j end
      j = k
    elseif c == "[" or c == "(" then depth = depth + 1
    elseif c == "]" then depth = depth - 1
    elseif c == ")" then
      if depth == 0 then return j end
      depth = depth - 1
    elseif c == "," and depth == 0 then return j end
    j = j + 1
  end
  return j
end

local parse_call

local function fmt_line(v, a)
  return sformat("local %s = args[%d]\nif type(%s) ~= \"string\" then %s = fv(%s) end\n", v, a, v, v, v)
end

local function parse_arg(text, i, depth, field)
  i = skip_ws(text, i)
  local c = ssub(text, i, i)
  if c == "'" then
    local v, pieces, j = read_literal(text, i)
    if v == nil then return nil, pieces end
    return { const = v, pieces = pieces }, j
  elseif c == "$" then
    local e, quote = path_end(text, i)
    if not e then
      return perr(text, quote, "unterminated quote in the path argument that starts at position " .. i)
    end
    local ptext = ssub(text, i, e - 1):gsub("%s+$", "")
    local p, msg = jsonpath.compile(ptext)
    if not p then return nil, msg end
    local eval = p.eval
    local inline -- "$.a" or "$.a.b": read in the call site's own code
    if p.root == "$" and (#p.segs == 1 or #p.segs == 2) and p.segs[1].k == "name"
        and (#p.segs == 1 or p.segs[2].k == "name") then
      inline = { p.segs[1].name, p.segs[2] and p.segs[2].name }
    end
    return { fn = function(env)
      local v = eval(env.input, env)
      if v == nil then
        errors.runtime(jsonpath.not_found_cause(ptext, field or "", env.input))
      end
      return v
    end, inline = inline }, e
  elseif sfind(text, "^States%.", i) then
    local fn, j, folded = parse_call(text, i, depth + 1, field)
    if not fn then return nil, j end
    if folded ~= nil then return { const = folded }, j end
    return { fn = fn }, j
  end
  local _, e = sfind(text, "^%-?%d+%.?%d*[eE]?[%-+]?%d*", i)
  if e then
    local lit = ssub(text, i, e)
    local v = tonumber(lit)
    if v == nil then return perr(text, i, "bad number " .. lit) end
    if v ~= v or v == math.huge or v == -math.huge then
      return perr(text, i, "the number " .. lit .. " is out of range (JSON has no infinity)")
    end
    if sfind(lit, "[%.eE]") then v = v + 0.0 end
    return { const = v }, e + 1
  end
  for word, v in pairs({ ["true"] = true, ["false"] = false, ["null"] = null }) do
    if ssub(text, i, i + #word - 1) == word and not sfind(ssub(text, i + #word, i + #word), "[%w_]") then
      return { const = v }, i + #word
    end
  end
  return perr(text, i, "expected an argument (a 'string', a number, true, false, null, a path "
    .. "or a States.* call)")
end

parse_call = function(text, i, depth, field)
  if depth > MAX_DEPTH then return perr(text, i, "intrinsic functions nest at most 10 deep") end
  local _, e = sfind(text, "^States%.[%a%d]+", i)
  if not e then return perr(text, i, "expected States.<Function>(") end
  local name = ssub(text, i, e)
  local spec = F[name]
  if not spec then return perr(text, i, "unknown intrinsic function " .. name) end
  local j = skip_ws(text, e + 1)
  if ssub(text, j, j) ~= "(" then return perr(text, j, "expected '(' after " .. name) end
  j = skip_ws(text, j + 1)
  local args = {}
  if ssub(text, j, j) == ")" then
    j = j + 1
  else
    while true do
      local a, nj = parse_arg(text, j, depth, field)
      if not a then return nil, nj end
      args[#args + 1] = a
      j = skip_ws(text, nj)
      local c = ssub(text, j, j)
      if c == ")" then j = j + 1 break end
      if c ~= "," then return perr(text, j, "expected ',' or ')'") end
      j = j + 1
    end
  end
  local n = #args
  if n < spec[1] or n > spec[2] then
    return perr(text, i, sformat("%s takes %s arguments, got %d", name, spec[1] == spec[2] and
      tostring(spec[1]) or (spec[2] == math.huge and ("at least " .. spec[1]) or
      (spec[1] .. " to " .. spec[2])), n))
  end
  local impl = spec[3]
  -- The template of States.Format keeps its escaped braces apart from its placeholders.
  local tpl = name == "States.Format" and args[1] and args[1].pieces or nil
  if tpl then impl = format_impl(tpl, n) or impl end
  local consts, nfns = {}, 0
  for k, a in ipairs(args) do
    if a.fn then nfns = nfns + 1 else consts[k] = a.const end
  end
  -- A pure function of constants is evaluated once, here; its value is shared by every
  -- evaluation (values are never modified once made). If it fails it fails at run time,
  -- as AWS reports it.
  if nfns == 0 and not IMPURE[name] and not (name == "States.MathRandom" and n < 3) then
    local ok, value = pcall(impl, consts, n, tpl)
    if ok and value ~= nil then
      return function() return value end, j, value
    end
  end
  return call_site(impl, n, tpl, args), j
end

-- The evaluator of one call site, generated as Lua source per shape of its arguments and
-- cached, so that call sites of one shape share one prototype and library upvalues; the
-- site's own values sit in one array R (a chain of many states does not stay in the CPU
-- caches, so a call touches few objects). The arguments go into a scratch list of the site,
-- R[1] (an evaluation never yields and never re-enters its own call site); path values are
-- let go after the call. Arguments "$.a" / "$.a.b" are read inline; when missing (or false),
-- the path's own function runs and raises AWS's error.
local site_makers = {}
call_site = function(impl, n, tpl, args)
  local vals = {}
  local R = { vals, impl, tpl or false }
  local function slot(v)
    R[#R + 1] = v
    return "R[" .. #R .. "]"
  end
  local pre, sets, clears = {}, {}, {}
  local need_input = false
  for k = 1, n do
    local a = args[k]
    if a.fn and a.inline then
      need_input = true
      local k1, f = slot(a.inline[1]), slot(a.fn)
      if a.inline[2] then
        local k2 = slot(a.inline[2])
        pre[#pre + 1] = sformat("local a%d; if type(i) == \"table\" then a%d = i[%s] end\n"
          .. "if type(a%d) == \"table\" then a%d = a%d[%s] else a%d = nil end\n", k, k, k1, k, k, k, k2, k)
      else
        pre[#pre + 1] = sformat("local a%d; if type(i) == \"table\" then a%d = i[%s] end\n", k, k, k1)
      end
      pre[#pre + 1] = sformat("if a%d == nil or a%d == false then a%d = %s(env) end\n", k, k, k, f)
      sets[#sets + 1] = sformat("v[%d] = a%d\n", k, k)
      clears[#clears + 1] = sformat("v[%d] = nil\n", k)
    elseif a.fn then
      pre[#pre + 1] = sformat("local a%d = %s(env)\n", k, slot(a.fn))
      sets[#sets + 1] = sformat("v[%d] = a%d\n", k, k)
      clears[#clears + 1] = sformat("v[%d] = nil\n", k)
    else
      vals[k] = a.const
    end
  end
  local src = "local type = ...\nreturn function(R)\nreturn function(env)\n"
    .. (need_input and "local i = env.input\n" or "") .. concat(pre) .. "local v = R[1]\n" .. concat(sets)
    .. "local r = R[2](v, " .. n .. ", R[3] or nil)\n" .. concat(clears) .. "return r\nend\nend"
  local maker = site_makers[src]
  if not maker then
    maker = assert(load(src, "=intrinsic call", "t", {}))(type)
    site_makers[src] = maker
  end
  return maker(R)
end

-- States.Format with a literal template of k placeholders and k arguments after it: one
-- concatenation generated for the shape (cached), so no scratch list per call.
local format_makers = {}
format_impl = function(pieces, n)
  local holes = 0
  for _, p in ipairs(pieces) do if p == false then holes = holes + 1 end end
  if holes ~= n - 1 or holes > 20 then return nil end
  local parts, conv = {}, {}
  local a = 1
  for k, p in ipairs(pieces) do
    if p == false then
      a = a + 1
      local v = "a" .. a
      parts[#parts + 1] = v
      conv[#conv + 1] = fmt_line(v, a)
    elseif p ~= "" then
      parts[#parts + 1] = "P[" .. k .. "]"
    end
  end
  if #parts == 0 then parts[1] = '""' end
  -- called as impl(args, n, pieces): the pieces are the third argument
  local src = "local fv, type = ...\nreturn function(args, _, P)\n" .. concat(conv)
    .. "return " .. concat(parts, " .. ") .. "\nend"
  local fn = format_makers[src]
  if not fn then
    fn = assert(load(src, "=States.Format", "t", {}))(format_value, type)
    format_makers[src] = fn
  end
  return fn
end

function M.is_call(text)
  return type(text) == "string" and sfind(text, "^%s*States%.[%a%d]+%s*%(") ~= nil
end

-- Compiled calls by field and text, as jsonpath.compile memoizes paths: a call is a pure
-- function of its text and field (the field only names it in error causes), and evaluating
-- it keeps no state between calls, so states with the same call share one compiled function
-- (and the CPU caches hold it for all of them).
local cache, cache_size = {}, 0
local CACHE_MAX = 4096

function M.compile(text, field)
  if type(text) ~= "string" then return nil, "an intrinsic function call must be a string" end
  local key = (field or "") .. "\0" .. text
  local fn = cache[key]
  if fn then return fn end
  local i = skip_ws(text, 1)
  local j
  fn, j = parse_call(text, i, 1, field)
  if not fn then return nil, j end
  j = skip_ws(text, j)
  if j <= #text then return perr(text, j, "unexpected text after the call") end
  if cache_size >= CACHE_MAX then cache, cache_size = {}, 0 end
  cache[key] = fn
  cache_size = cache_size + 1
  return fn
end

return M
