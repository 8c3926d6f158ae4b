--- emrflow.picture: XPath F&O 3.1 picture strings as JSONata (jsonata-js 2.x) applies them.
--
--   picture.format_number(number, picture [, options])  -- $formatNumber (decimal-format options:
--                         "decimal-separator", "grouping-separator", "exponent-separator",
--                         "minus-sign", "percent", "per-mille", "zero-digit", "digit",
--                         "pattern-separator")
--   picture.format_integer(number, picture)              -- $formatInteger: 0-patterns with grouping,
--                         w W Ww words, i I roman, a A letters, ";o" ordinals
--   picture.parse_integer(text, picture)                 -- $parseInteger (NaN when unreadable)
--   picture.format_datetime(ms [, picture [, timezone]]) -- $fromMillis ("+hhmm" timezone)
--   picture.parse_datetime(text, picture [, now_ms])     -- $toMillis with a picture --> ms | nil
--                         (nil when the text does not fit; NaN when it fits but names no
--                         valid time; parts left out before the first one given come from now_ms)
--   picture.format_base(number [, radix])                -- $formatBase
--
-- Errors raise { code = "D3080", message = ..., value = ... } with jsonata-js's codes
-- (D3080-D3093, D3100, D3130-D3136). Where jsonata-js would crash or loop, a clear error
-- instead: D1001 for an infinite integer, D3137 for a timezone that is not +hhmm or a
-- time outside JavaScript's dates; T0410 for an argument of the wrong type.
-- Where jsonata-js has quirks (Date.UTC reading years 0-99 as 19xx, "-0530" read as
-- -6 hours and -30 minutes, unknown components printed as "undefined"),
-- this module follows it: the point is to give the same answers.
-- Strings are handled as sequences of code points (jsonata-js uses UTF-16 units: the two
-- differ only for characters beyond U+FFFF in pictures). Analysed pictures are cached.
-- Every function takes time in proportion to the picture's and the text's length.
local regex = require "emrflow.regex"
local time = require "emrflow.time"

local M = {}

local floor, abs, fmod = math.floor, math.abs, math.fmod
local concat, insert, remove = table.concat, table.insert, table.remove
local sformat = string.format
local NaN = 0 / 0

local MESSAGES = {
  D3080 = "The picture string must only contain a maximum of two sub-pictures",
  D3081 = "The sub-picture must not contain more than one instance of the 'decimal-separator' character",
  D3082 = "The sub-picture must not contain more than one instance of the 'percent' character",
  D3083 = "The sub-picture must not contain more than one instance of the 'per-mille' character",
  D3084 = "The sub-picture must not contain both a 'percent' and a 'per-mille' character",
  D3085 = "The mantissa part of a sub-picture must contain at least one character that is either an "
    .. "'optional digit character' or a member of the 'decimal digit family'",
  D3086 = "The sub-picture must not contain a passive character that is preceded by an active character "
    .. "and that is followed by another active character",
  D3087 = "The sub-picture must not contain a 'grouping-separator' character that appears adjacent to a "
    .. "'decimal-separator' character",
  D3088 = "The sub-picture must not contain a 'grouping-separator' at the end of the integer part",
  D3089 = "The sub-picture must not contain two adjacent instances of the 'grouping-separator' character",
  D3090 = "The integer part of the sub-picture must not contain a member of the 'decimal digit family' "
    .. "that is followed by an instance of the 'optional digit character'",
  D3091 = "The fractional part of the sub-picture must not contain an instance of the 'optional digit "
    .. "character' that is followed by a member of the 'decimal digit family'",
  D3092 = "A sub-picture that contains a 'percent' or 'per-mille' character must not contain a character "
    .. "treated as an 'exponent-separator'",
  D3093 = "The exponent part of the sub-picture must comprise only of one or more characters that are "
    .. "members of the 'decimal digit family'",
  D3100 = "The radix of the formatBase function must be between 2 and 36.  It was given %s",
  D3130 = "Formatting or parsing an integer as a sequence starting with %s is not supported by this "
    .. "implementation",
  D3131 = "In a decimal digit pattern, all digits must be from the same decimal group",
  D3132 = "Unknown component specifier %s in date/time picture string",
  D3133 = "The 'name' modifier can only be applied to months and days in the date/time picture string, "
    .. "not %s",
  D3134 = "The timezone integer format specifier cannot have more than four digits",
  D3135 = "No matching closing bracket ']' in date/time picture string",
  D3136 = "The date/time picture string is missing specifiers required to parse the timestamp",
}

local error_mt = { __tostring = function(e) return e.code .. ": " .. e.message end }

local function raise(code, value, message)
  local text = message or MESSAGES[code]
  if value ~= nil then
    local shown = tostring(value)
    if #shown > 60 then shown = shown:sub(1, 57) .. "..." end
    text = sformat(text, shown)
  end
  error(setmetatable({ code = code, message = text, value = value }, error_mt), 0)
end

------------------------------------------------------------------------------
-- Strings as code points

local function chars(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = b < 0xC0 and 1 or b < 0xE0 and 2 or b < 0xF0 and 3 or 4
    local j = i + 1
    while j < i + len and j <= n and s:byte(j) >= 0x80 and s:byte(j) < 0xC0 do j = j + 1 end
    out[#out + 1] = s:sub(i, j - 1)
    i = j
  end
  return out
end

local function codepoint(ch)
  local ok, cp = pcall(utf8.codepoint, ch)
  return ok and cp or ch:byte()
end

local function sub(arr, i, j) -- 0-based [i, j), as String.prototype.substring
  local out = {}
  for k = i + 1, j do out[#out + 1] = arr[k] end
  return out
end

local function join(arr) return concat(arr) end

local function index_of(hay, needle, from) -- 0-based, -1 when absent (String.prototype.indexOf)
  local nl = #needle
  for i = (from or 0), #hay - nl do
    local hit = true
    for k = 1, nl do
      if hay[i + k] ~= needle[k] then hit = false; break end
    end
    if hit then return i end
  end
  return -1
end

local function last_index_of(hay, needle)
  local nl = #needle
  for i = #hay - nl, 0, -1 do
    local hit = true
    for k = 1, nl do
      if hay[i + k] ~= needle[k] then hit = false; break end
    end
    if hit then return i end
  end
  return -1
end

------------------------------------------------------------------------------
-- JavaScript number conversions

-- Number.prototype.toString(): the shortest round-trip digits, JavaScript's layout.
local function js_tostring(x)
  local int = math.tointeger(x)
  if int and int > -2 ^ 53 and int < 2 ^ 53 then return sformat("%d", int) end
  x = x + 0.0
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  if x == 0 then return "0" end
  local sign = x < 0 and "-" or ""
  x = abs(x)
  -- For normal numbers 15 significant digits round-trip whenever fewer do
  -- (DBL_DIG), and then equal the shortest form once trailing zeros go;
  -- subnormals have fewer digits of precision: search from one digit up.
  local text
  if x >= 2.2250738585072014e-308 then
    text = sformat("%.14e", x)
    if tonumber(text) ~= x then
      text = sformat("%.15e", x)
      if tonumber(text) ~= x then text = sformat("%.16e", x) end
    end
  else
    for p = 0, 16 do
      text = sformat("%." .. p .. "e", x)
      if tonumber(text) == x then break end
    end
  end
  local m, e = text:match("^(%d[%.%d]*)e([-+]%d+)$")
  local digits = m:gsub("%.", "")
  digits = digits:gsub("0+$", "")
  if digits == "" then digits = "0" end
  local k, n = #digits, tonumber(e) + 1
  local out
  if k <= n and n <= 21 then
    out = digits .. ("0"):rep(n - k)
  elseif 0 < n and n <= 21 then
    out = digits:sub(1, n) .. "." .. digits:sub(n + 1)
  elseif -6 < n and n <= 0 then
    out = "0." .. ("0"):rep(-n) .. digits
  else
    local ex = n - 1
    out = digits:sub(1, 1) .. (k > 1 and "." .. digits:sub(2) or "") .. "e" .. (ex >= 0 and "+" or "-")
      .. tostring(abs(ex))
  end
  return sign .. out
end
M.js_tostring = js_tostring

-- Number.prototype.toFixed(dp) for x >= 0: exact, ties away from zero.
local function js_tofixed(x, dp)
  if x ~= x or x >= 1e21 then return js_tostring(x) end
  local s = sformat("%." .. (dp + 30) .. "f", x)
  local int, frac = s:match("^(%d+)%.?(%d*)$")
  local keep, next_digit = frac:sub(1, dp), frac:sub(dp + 1, dp + 1)
  local digits = int .. keep
  if next_digit >= "5" then
    local t, i, carry = {}, #digits, true
    for k = 1, #digits do t[k] = digits:sub(k, k) end
    while carry and i >= 1 do
      if t[i] == "9" then t[i] = "0"; i = i - 1 else t[i] = string.char(t[i]:byte() + 1); carry = false end
    end
    digits = (carry and "1" or "") .. concat(t)
  end
  local il = #digits - dp
  if dp == 0 then return digits end
  return digits:sub(1, il) .. "." .. digits:sub(il + 1)
end

-- Math.round (ties toward +infinity).
local function js_round(x)
  local r = floor(x)
  if x - r >= 0.5 then r = r + 1 end
  return r + 0.0
end

-- Unary + on a text: the number, or NaN.
local function js_number(text)
  local v = tonumber(text)
  return v and v + 0.0 or NaN
end

-- JSONata's round(): half to even, shifting the decimal point through the text.
local function jsonata_round(arg, precision)
  arg = arg + 0.0
  if precision and precision ~= 0 then
    local m, e = js_tostring(arg):match("^([^e]*)e?(.*)$")
    arg = js_number(m .. "e" .. tostring((e ~= "" and tonumber(e) or 0) + precision))
  end
  local result = js_round(arg)
  local diff = result - arg
  if abs(diff) == 0.5 and abs(fmod(result, 2)) == 1 then result = result - 1 end
  if precision and precision ~= 0 then
    local m, e = js_tostring(result):match("^([^e]*)e?(.*)$")
    result = js_number(m .. "e" .. tostring((e ~= "" and tonumber(e) or 0) - precision))
  end
  if result == 0 then result = 0.0 end
  return result
end
M.round = jsonata_round

-- parseInt(text): leading blanks, a sign, decimal digits; NaN when there are none.
local function js_parse_int(text)
  local sign, digits = tostring(text):match("^%s*([+-]?)(%d+)")
  if not digits then return NaN end
  local v = tonumber(digits) + 0.0
  return sign == "-" and -v or v
end

-- Date.UTC(y, m0, d, h, mi, s, ms): months from 0, years 0-99 mean 19xx, fields
-- truncated and carried; NaN outside JavaScript's Date range.
local function js_date_utc(y, m0, d, h, mi, s, ms)
  local args = { y, m0, d or 1, h or 0, mi or 0, s or 0, ms or 0 }
  for i = 1, 7 do
    local v = args[i]
    if v ~= v or v == math.huge or v == -math.huge then return NaN end
    args[i] = v < 0 and -floor(-v) or floor(v)
  end
  y, m0, d, h, mi, s, ms = table.unpack(args)
  if y >= 0 and y <= 99 then y = 1900 + y end
  local days = time.days_from_civil(y + m0 // 12, m0 % 12 + 1, 1) + d - 1
  local t = days * 86400000.0 + ((h * 60.0 + mi) * 60.0 + s) * 1000.0 + ms
  if abs(t) > 8.64e15 then return NaN end
  return t
end

-- The UTC fields of a time value, as a JavaScript Date's getUTC* give them.
local function date_fields(t)
  local ms = floor(t)
  local y, mo, d, h, mi, s, f = time.fields(ms)
  local days = ms // 86400000
  local wd = (days + 4) % 7 -- 0 = Sunday, as getUTCDay
  return { year = y, month = mo - 1, date = d, hours = h, minutes = mi, seconds = s, ms = f, day = wd,
           time = ms + 0.0 }
end

------------------------------------------------------------------------------
-- Integers: words, roman numerals, letters, decimal patterns

local FEW = { [0] = "Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
  "Eleven", "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen" }
local ORDINALS = { [0] = "Zeroth", "First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh",
  "Eighth", "Ninth", "Tenth", "Eleventh", "Twelfth", "Thirteenth", "Fourteenth", "Fifteenth",
  "Sixteenth", "Seventeenth", "Eighteenth", "Nineteenth" }
local DECADES = { "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety", "Hundred" }
local MAGNITUDES = { "Thousand", "Million", "Billion", "Trillion" }

local function words_of(num, prev, ord)
  local words
  if num <= 19 then
    words = (prev and " and " or "") .. (ord and ORDINALS or FEW)[floor(num)]
  elseif num < 100 then
    local tens, rem = floor(num / 10), fmod(num, 10)
    words = (prev and " and " or "") .. DECADES[tens - 1]
    if rem > 0 then
      words = words .. "-" .. words_of(rem, false, ord)
    elseif ord then
      words = words:sub(1, -2) .. "ieth"
    end
  elseif num < 1000 then
    local hundreds, rem = floor(num / 100), fmod(num, 100)
    words = (prev and ", " or "") .. FEW[hundreds] .. " Hundred"
    if rem > 0 then
      words = words .. words_of(rem, true, ord)
    elseif ord then
      words = words .. "th"
    end
  else
    local mag = floor(math.log(num, 10) / 3)
    if mag > #MAGNITUDES then mag = #MAGNITUDES end
    local factor = 10.0 ^ (mag * 3)
    local mant = floor(num / factor) + 0.0
    local rem = num - mant * factor
    words = (prev and ", " or "") .. words_of(mant, false, false) .. " " .. MAGNITUDES[mag]
    if rem > 0 then
      words = words .. words_of(rem, true, ord)
    elseif ord then
      words = words .. "th"
    end
  end
  return words
end

-- Word -> value, and the words in jsonata-js's order (its parser's alternation order).
local WORD_VALUES, WORD_ORDER = {}, {}
local function word(w, v)
  if WORD_VALUES[w] == nil then WORD_ORDER[#WORD_ORDER + 1] = w end
  WORD_VALUES[w] = v
end
for i = 0, 19 do word(FEW[i]:lower(), i) end
for i = 0, 19 do word(ORDINALS[i]:lower(), i) end
for i, w in ipairs(DECADES) do
  local lw = w:lower()
  word(lw, (i + 1) * 10)
  word(lw:sub(1, -2) .. "ieth", (i + 1) * 10)
end
word("hundredth", 100)
for i, w in ipairs(MAGNITUDES) do
  local lw = w:lower()
  word(lw, 10.0 ^ (i * 3))
  word(lw .. "th", 10.0 ^ (i * 3))
end

-- Splits as /,\s|\sand\s|[\s\\-]/ does.
local function split_words(text)
  local parts, cur, i, n = {}, {}, 1, #text
  local function cut() parts[#parts + 1] = concat(cur); cur = {} end
  while i <= n do
    local c = text:sub(i, i)
    if c == "," and text:sub(i + 1, i + 1):match("%s") then
      cut(); i = i + 2
    elseif c:match("%s") and text:sub(i + 1, i + 4):match("^and%s") then
      cut(); i = i + 5
    elseif c:match("%s") or c == "\\" or c == "-" then
      cut(); i = i + 1
    else
      cur[#cur + 1] = c; i = i + 1
    end
  end
  cut()
  return parts
end

local function words_to_number(text)
  local segs = { 0.0 }
  for _, part in ipairs(split_words(text)) do
    local value = WORD_VALUES[part]
    if value == nil then
      segs[#segs] = NaN -- undefined poisons the sum, as in JavaScript
    elseif value < 100 then
      local top = remove(segs)
      if top >= 1000 then
        segs[#segs + 1] = top
        top = 0
      end
      segs[#segs + 1] = top + value
    else
      local product = remove(segs) * value
      segs[#segs + 1] = product
    end
  end
  local sum = 0.0
  for _, v in ipairs(segs) do sum = sum + v end
  return sum
end

local ROMAN = { { 1000, "m" }, { 900, "cm" }, { 500, "d" }, { 400, "cd" }, { 100, "c" }, { 90, "xc" },
  { 50, "l" }, { 40, "xl" }, { 10, "x" }, { 9, "ix" }, { 5, "v" }, { 4, "iv" }, { 1, "i" } }
local ROMAN_VALUES = { M = 1000, D = 500, C = 100, L = 50, X = 10, V = 5, I = 1 }
local ROMAN_MAX = 1e7 -- jsonata-js recurses once per numeral: not far past this it overflows its stack

local function to_roman(value)
  if value > ROMAN_MAX then
    raise("D3130", nil, "The number " .. js_tostring(value) .. " is too large for roman numerals")
  end
  local out = {}
  for _, r in ipairs(ROMAN) do
    while value >= r[1] do
      out[#out + 1] = r[2]
      value = value - r[1]
    end
  end
  return concat(out)
end

local function from_roman(text)
  local decimal, max = 0, 1
  for i = #text, 1, -1 do
    local v = ROMAN_VALUES[text:sub(i, i)]
    if v == nil then return NaN end
    if v < max then
      decimal = decimal - v
    else
      max = v
      decimal = decimal + v
    end
  end
  return decimal + 0.0
end

local function to_letters(value, a)
  local out = {}
  while value > 0 do
    insert(out, 1, string.char(floor(fmod(value - 1, 26)) + a))
    value = (value - 1) // 26
  end
  return concat(out)
end

local function from_letters(text, a)
  local decimal = 0.0
  local cs = chars(text)
  for i = 0, #cs - 1 do
    decimal = decimal + (codepoint(cs[#cs - i]) - a + 1) * 26.0 ^ i
  end
  return decimal
end

-- Zero code points of the Unicode decimal digit groups jsonata-js knows.
local DECIMAL_GROUPS = { 0x30, 0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6,
  0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0,
  0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
  0xFF10 }

local function digit_group(cp)
  for _, g in ipairs(DECIMAL_GROUPS) do
    if cp >= g and cp <= g + 9 then return g end
  end
  return nil
end

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

-- The interval when the separators are one character at equal intervals, else 0.
local function regular_interval(positions, characters)
  if #positions == 0 then return 0 end
  if characters then
    for i = 2, #characters do
      if characters[i] ~= characters[1] then return 0 end
    end
  end
  local factor = positions[1]
  local present = {}
  for i = 2, #positions do factor = gcd(factor, positions[i]) end
  for _, p in ipairs(positions) do present[p] = true end
  for index = 1, #positions do
    if not present[index * factor] then return 0 end
  end
  return factor
end

-- analyseIntegerPicture
local function analyse_integer(picture)
  local fmt = { primary = "decimal", case = "lower", ordinal = false }
  local pc = chars(picture)
  local semicolon = last_index_of(pc, { ";" })
  local primary
  if semicolon == -1 then
    primary = picture
  else
    primary = join(sub(pc, 0, semicolon))
    local modifier = sub(pc, semicolon + 1, #pc)
    if modifier[1] == "o" then fmt.ordinal = true end
  end
  if primary == "A" or primary == "a" then
    fmt.primary = "letters"
    if primary == "A" then fmt.case = "upper" end
  elseif primary == "I" or primary == "i" then
    fmt.primary = "roman"
    if primary == "I" then fmt.case = "upper" end
  elseif primary == "W" or primary == "Ww" or primary == "w" then
    fmt.primary = "words"
    fmt.case = primary == "W" and "upper" or primary == "Ww" and "title" or "lower"
  else
    local zero, mandatory, optional, position = nil, 0, 0, 0
    local separators = {}
    local cps = chars(primary)
    for i = #cps, 1, -1 do
      local ch = cps[i]
      local group = digit_group(codepoint(ch))
      if group then
        mandatory = mandatory + 1
        position = position + 1
        if zero == nil then
          zero = group
        elseif group ~= zero then
          raise("D3131")
        end
      elseif ch == "#" then
        position = position + 1
        optional = optional + 1
      else
        separators[#separators + 1] = { position = position, character = ch }
      end
    end
    if mandatory > 0 then
      fmt.zero = zero
      fmt.mandatory = mandatory
      fmt.optional = optional
      local positions, characters = {}, {}
      for i, s in ipairs(separators) do positions[i], characters[i] = s.position, s.character end
      local interval = regular_interval(positions, characters)
      if interval > 0 then
        fmt.regular = true
        fmt.separators = { position = interval, character = separators[1].character }
      else
        fmt.regular = false
        fmt.separators = separators
      end
    else
      fmt.primary = "sequence"
      fmt.token = primary
    end
  end
  return fmt
end

-- A copy of arr with sep (an array) before each index upto - g * step, g = 1, 2, ...
-- while that index is at least 1: regular grouping in one pass.
local function group_regular(arr, upto, step, sep)
  local out = {}
  local first = upto - ((upto - 1) // step) * step -- the leftmost index that gets one
  for i = 1, #arr do
    local at = i - 1
    if at >= first and at < upto and (upto - at) % step == 0 and at >= 1 then
      for _, ch in ipairs(sep) do out[#out + 1] = ch end
    end
    out[#out + 1] = arr[i]
  end
  return out
end

-- String.prototype.substr(start[, length]) on a code point array, 0-based.
local function substr(arr, start, length)
  local n = #arr
  if start < 0 then start = math.max(n + start, 0) end
  local stop = length and math.min(start + math.max(length, 0), n) or n
  return sub(arr, start, stop)
end

-- Array.prototype.slice / String.prototype.slice on a code point array: negative
-- bounds count from the end.
local function slice(arr, start, stop)
  local n = #arr
  local function clamp(x)
    if x < 0 then return math.max(n + x, 0) end
    return math.min(x, n)
  end
  start = clamp(start)
  stop = stop == nil and n or clamp(stop)
  return sub(arr, start, math.max(start, stop))
end

local function append(a, b)
  local out = {}
  for _, v in ipairs(a) do out[#out + 1] = v end
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end

local function format_decimal(value, fmt)
  if fmt.zero == 0x30 and not fmt.ordinal and not fmt.regular and #fmt.separators == 0 then
    local text = js_tostring(value) -- the common case: ASCII digits, padding only
    local pad = fmt.mandatory - #text
    return pad > 0 and ("0"):rep(pad) .. text or text
  end
  local s = chars(js_tostring(value))
  local pad = fmt.mandatory - #s
  if pad > 0 then
    local z = {}
    for i = 1, pad do z[i] = "0" end
    s = append(z, s)
  end
  if fmt.zero ~= 0x30 then
    for i, ch in ipairs(s) do s[i] = utf8.char(codepoint(ch) + fmt.zero - 0x30) end
  end
  if fmt.regular then
    s = group_regular(s, #s, fmt.separators.position, { fmt.separators.character })
  else
    for i = #fmt.separators, 1, -1 do
      local sep = fmt.separators[i]
      local pos = #s - sep.position
      s = append(append(substr(s, 0, pos), { sep.character }), substr(s, pos))
    end
  end
  if fmt.ordinal then
    local last, before = s[#s], s[#s - 1]
    local suffix = ({ ["1"] = "st", ["2"] = "nd", ["3"] = "rd" })[last]
    if not suffix or (#s > 1 and before == "1") then suffix = "th" end
    s[#s + 1] = suffix
  end
  return join(s)
end

-- _formatInteger
local function format_with(value, fmt, component)
  if fmt == nil then raise("D3133", component) end -- a name presentation on a numeric component
  local negative = value < 0
  value = abs(value)
  local out
  if fmt.primary == "letters" then
    out = to_letters(value, fmt.case == "upper" and 65 or 97)
  elseif fmt.primary == "roman" then
    out = to_roman(value)
    if fmt.case == "upper" then out = out:upper() end
  elseif fmt.primary == "words" then
    out = words_of(value, false, fmt.ordinal)
    if fmt.case == "upper" then
      out = out:upper()
    elseif fmt.case == "lower" then
      out = out:lower()
    end
  elseif fmt.primary == "decimal" then
    out = format_decimal(value, fmt)
  else
    raise("D3130", fmt.token)
  end
  return negative and "-" .. out or out
end

local function check_number(v, what)
  if type(v) ~= "number" then
    raise("T0410", nil, what .. " must be a number, got " .. type(v))
  end
  return v + 0.0
end

local function check_string(v, what)
  if type(v) ~= "string" then
    raise("T0410", nil, what .. " must be a string, got " .. type(v))
  end
  return v
end

--- $formatInteger(number, picture)
function M.format_integer(number, picture)
  number = check_number(number, "the number")
  check_string(picture, "the picture")
  if number ~= number or abs(number) == math.huge then
    raise("D1001", nil, "Number out of range: " .. js_tostring(number))
  end
  return format_with(floor(number) + 0.0, analyse_integer(picture))
end

-- The parser of an analysed integer picture: { pattern = regex text, parse = fn(text) -> number }.
local function integer_matcher(fmt)
  local m = {}
  local upper = fmt.case == "upper"
  if fmt.primary == "letters" then
    m.pattern = upper and "[A-Z]+" or "[a-z]+"
    m.parse = function(v) return from_letters(v, upper and 65 or 97) end
  elseif fmt.primary == "roman" then
    m.pattern = upper and "[MDCLXVI]+" or "[mdclxvi]+"
    m.parse = function(v) return from_roman(upper and v or v:upper()) end
  elseif fmt.primary == "words" then
    local words = {}
    for i, w in ipairs(WORD_ORDER) do words[i] = w end
    words[#words + 1] = "and"
    words[#words + 1] = "[\\-, ]"
    m.pattern = "(?:" .. concat(words, "|") .. ")+"
    m.parse = function(v) return words_to_number(v:lower()) end
  elseif fmt.primary == "decimal" then
    local width = fmt.parse_width and math.tointeger(fmt.parse_width)
    m.pattern = "[0-9]" .. (width and width > 0 and "{" .. width .. "}" or width == 0 and "{0}" or "+")
    if fmt.ordinal then m.pattern = m.pattern .. "(?:th|st|nd|rd)" end
    m.parse = function(v)
      local digits = chars(v)
      if fmt.ordinal then digits = sub(digits, 0, #digits - 2) end
      local drop = {}
      if fmt.regular then
        drop[","] = true
      else
        for _, sep in ipairs(fmt.separators) do drop[sep.character] = true end
      end
      local kept = {}
      for _, ch in ipairs(digits) do
        if not drop[ch] then
          kept[#kept + 1] = fmt.zero ~= 0x30 and utf8.char(codepoint(ch) - fmt.zero + 0x30) or ch
        end
      end
      return js_parse_int(join(kept))
    end
  else
    raise("D3130", fmt.token)
  end
  return m
end

--- $parseInteger(text, picture) --> number (NaN when the text cannot be read)
function M.parse_integer(text, picture)
  check_string(text, "the string")
  check_string(picture, "the picture")
  return integer_matcher(analyse_integer(picture)).parse(text)
end

------------------------------------------------------------------------------
-- Numbers: $formatNumber

local DEFAULT_FORMAT = {
  ["decimal-separator"] = ".", ["grouping-separator"] = ",", ["exponent-separator"] = "e",
  ["infinity"] = "Infinity", ["minus-sign"] = "-", ["NaN"] = "NaN", ["percent"] = "%",
  ["per-mille"] = "\u{2030}", ["zero-digit"] = "0", ["digit"] = "#", ["pattern-separator"] = ";",
}

local function count(arr, pred)
  local n = 0
  for _, ch in ipairs(arr) do
    if pred(ch) then n = n + 1 end
  end
  return n
end

local function format_properties(options)
  local p = {}
  for k, v in pairs(DEFAULT_FORMAT) do p[k] = v end
  if options ~= nil then
    if type(options) ~= "table" then
      raise("T0410", nil, "the options must be an object")
    end
    for k in pairs(DEFAULT_FORMAT) do
      local v = options[k]
      if v ~= nil then p[k] = type(v) == "string" and v or js_tostring(v) end
    end
  end
  return p
end

-- One sub-picture split into its parts (F&O 4.7.3 and jsonata-js's splitParts).
local function split_parts(sp, P)
  local active = P.is_active
  local n = #sp
  local prefix_len, suffix_start = 0, n
  for i = 1, n do
    if active(sp[i]) and sp[i] ~= P.exponent then prefix_len = i - 1; break end
  end
  for i = n, 1, -1 do
    if active(sp[i]) and sp[i] ~= P.exponent then suffix_start = i; break end
  end
  local prefix = sub(sp, 0, prefix_len)
  local suffix = sub(sp, suffix_start, n)
  local activePart = sub(sp, #prefix, n - #suffix)
  local mantissa, exponent
  local epos = index_of(sp, P.exponent_chars, #prefix)
  if epos == -1 or epos > n - #suffix then
    mantissa = activePart
  else
    mantissa = sub(activePart, 0, epos)
    exponent = sub(activePart, epos + 1, #activePart)
  end
  local integer, fractional
  local dpos = index_of(mantissa, P.decimal_chars)
  if dpos == -1 then
    integer, fractional = mantissa, suffix
  else
    integer, fractional = sub(mantissa, 0, dpos), sub(mantissa, dpos + 1, #mantissa)
  end
  return { prefix = prefix, suffix = suffix, active = activePart, mantissa = mantissa,
           exponent = exponent, integer = integer, fractional = fractional, picture = sp }
end

local function validate_parts(parts, P)
  local err
  local sp = parts.picture
  local dpos = index_of(sp, P.decimal_chars)
  if dpos ~= last_index_of(sp, P.decimal_chars) then err = "D3081" end
  if index_of(sp, P.percent_chars) ~= last_index_of(sp, P.percent_chars) then err = "D3082" end
  if index_of(sp, P.permille_chars) ~= last_index_of(sp, P.permille_chars) then err = "D3083" end
  if index_of(sp, P.percent_chars) ~= -1 and index_of(sp, P.permille_chars) ~= -1 then err = "D3084" end
  local valid = false
  for _, ch in ipairs(parts.mantissa) do
    if P.is_digit(ch) or ch == P.digit then valid = true; break end
  end
  if not valid then err = "D3085" end
  for _, ch in ipairs(parts.active) do
    if not P.is_active(ch) then err = "D3086"; break end
  end
  if dpos ~= -1 then
    if sp[dpos] == P.grouping or sp[dpos + 2] == P.grouping then err = "D3087" end
  elseif parts.integer[#parts.integer] == P.grouping then
    err = "D3088"
  end
  if index_of(sp, append(P.grouping_chars, P.grouping_chars)) ~= -1 then err = "D3089" end
  local opt = index_of(parts.integer, P.digit_chars)
  if opt ~= -1 and count(sub(parts.integer, 0, opt), P.is_digit) > 0 then err = "D3090" end
  opt = last_index_of(parts.fractional, P.digit_chars)
  if opt ~= -1 and count(sub(parts.fractional, opt, #parts.fractional), P.is_digit) > 0 then err = "D3091" end
  local has_exp = parts.exponent ~= nil
  if has_exp and #parts.exponent > 0 and (index_of(sp, P.percent_chars) ~= -1
      or index_of(sp, P.permille_chars) ~= -1) then
    err = "D3092"
  end
  local function not_digit(ch) return not P.is_digit(ch) end
  if has_exp and (#parts.exponent == 0 or count(parts.exponent, not_digit) > 0) then
    err = "D3093"
  end
  if err then raise(err) end
end

local function analyse_parts(parts, P)
  local function is_digitish(ch) return P.is_digit(ch) or ch == P.digit end
  local function grouping_positions(part, to_left)
    -- before[i]: digit characters in part[0, i) (counts in one pass, not per separator)
    local before = { [0] = 0 }
    for i, ch in ipairs(part) do before[i] = before[i - 1] + (is_digitish(ch) and 1 or 0) end
    local positions = {}
    local gp = index_of(part, P.grouping_chars)
    while gp ~= -1 do
      local at = math.min(gp, #part)
      positions[#positions + 1] = to_left and before[at] or before[#part] - before[at]
      -- (jsonata-js looks for the next one in the integer part, whichever part this is)
      gp = index_of(parts.integer, P.grouping_chars, gp + 1)
    end
    return positions
  end
  local int_positions = grouping_positions(parts.integer)
  local frac_positions = grouping_positions(parts.fractional, true)
  local min_int = count(parts.integer, P.is_digit)
  local scaling = min_int
  local min_frac = count(parts.fractional, P.is_digit)
  local max_frac = count(parts.fractional, is_digitish)
  local has_exp = parts.exponent ~= nil
  if min_int == 0 and max_frac == 0 then
    if has_exp then
      min_frac, max_frac = 1, 1
    else
      min_int = 1
    end
  end
  if has_exp and min_int == 0 and index_of(parts.integer, P.digit_chars) ~= -1 then min_int = 1 end
  if min_int == 0 and min_frac == 0 then min_frac = 1 end
  local min_exp = has_exp and count(parts.exponent, P.is_digit) or 0
  return { int_positions = int_positions, regular = regular_interval(int_positions), min_int = min_int,
           scaling = scaling, prefix = parts.prefix, frac_positions = frac_positions,
           min_frac = min_frac, max_frac = max_frac, min_exp = min_exp, suffix = parts.suffix,
           picture = parts.picture }
end

local function make_string(value, dp, P)
  local s = js_tofixed(abs(value), dp)
  if P.zero_cp ~= 0x30 then
    s = s:gsub("%d", function(d) return P.family[d:byte() - 47] end)
  end
  return chars(s)
end

local function rep(ch, n)
  local out = {}
  for i = 1, n do out[i] = ch end
  return out
end

-- Analysed pictures, by picture and options; emptied when it grows large.
local number_cache, number_cached = {}, 0
local CACHE_MAX = 256

local function option_key(props)
  local keys = {}
  for k in pairs(DEFAULT_FORMAT) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = props[k] end
  return concat(parts, "\0")
end

-- F&O 4.7.3-4.7.4: the picture's sub-pictures validated and analysed.
local function analyse_number_picture(picture, props)
  local P = {}
  P.zero_cp = codepoint(chars(props["zero-digit"])[1] or "0")
  P.family = {}
  local family_set = {}
  for i = 0, 9 do
    P.family[i + 1] = utf8.char(P.zero_cp + i)
    family_set[P.family[i + 1]] = true
  end
  P.decimal, P.grouping, P.exponent = props["decimal-separator"], props["grouping-separator"],
    props["exponent-separator"]
  P.digit, P.separator = props.digit, props["pattern-separator"]
  P.decimal_chars, P.grouping_chars = chars(P.decimal), chars(P.grouping)
  P.exponent_chars, P.digit_chars = chars(P.exponent), chars(P.digit)
  P.percent_chars, P.permille_chars = chars(props.percent), chars(props["per-mille"])
  P.minus_chars = chars(props["minus-sign"])
  P.is_digit = function(ch) return family_set[ch] == true end
  local active_set = {}
  for k in pairs(family_set) do active_set[k] = true end
  for _, k in ipairs { P.decimal, P.exponent, P.grouping, P.digit, P.separator } do active_set[k] = true end
  P.is_active = function(ch) return active_set[ch] == true end

  local pc = chars(picture)
  local subs, start = {}, 0
  local sep = chars(P.separator)
  while true do
    local at = #sep > 0 and index_of(pc, sep, start) or -1
    if at == -1 then subs[#subs + 1] = sub(pc, start, #pc); break end
    subs[#subs + 1] = sub(pc, start, at)
    start = at + #sep
  end
  if #subs > 2 then raise("D3080") end
  local parts = {}
  for i, sp in ipairs(subs) do parts[i] = split_parts(sp, P) end
  for _, p in ipairs(parts) do validate_parts(p, P) end
  local vars = {}
  for i, p in ipairs(parts) do vars[i] = analyse_parts(p, P) end
  if #vars == 1 then
    local copy = {}
    for k, v in pairs(vars[1]) do copy[k] = v end
    copy.prefix = append(P.minus_chars, vars[1].prefix)
    vars[2] = copy
  end
  for _, v in ipairs(vars) do
    v.percent = index_of(v.picture, P.percent_chars) ~= -1
    v.permille = index_of(v.picture, P.permille_chars) ~= -1
    v.has_decimal = index_of(v.picture, P.decimal_chars) ~= -1
  end
  return { P = P, vars = vars }
end

--- $formatNumber(number, picture [, options])
function M.format_number(value, picture, options)
  value = check_number(value, "the number")
  check_string(picture, "the picture")
  local props = format_properties(options)
  local key = picture .. "\1" .. option_key(props)
  local analysis = number_cache[key]
  if not analysis then
    analysis = analyse_number_picture(picture, props)
    if number_cached >= CACHE_MAX then number_cache, number_cached = {}, 0 end
    number_cache[key] = analysis
    number_cached = number_cached + 1
  end
  local P, vars = analysis.P, analysis.vars
  local minus, zero = props["minus-sign"], P.family[1]
  local pic = value >= 0 and vars[1] or vars[2]
  local adjusted = value
  if pic.percent then
    adjusted = value * 100
  elseif pic.permille then
    adjusted = value * 1000
  end
  local mantissa, exponent = adjusted, nil
  if pic.min_exp ~= 0 then
    local max_m, min_m = 10.0 ^ pic.scaling, 10.0 ^ (pic.scaling - 1)
    exponent = 0
    -- (jsonata-js loops forever on an infinite mantissa; this stops)
    if mantissa ~= 0 and mantissa == mantissa and abs(mantissa) ~= math.huge then
      while abs(mantissa) < min_m do mantissa = mantissa * 10; exponent = exponent - 1 end
      while abs(mantissa) > max_m do mantissa = mantissa / 10; exponent = exponent + 1 end
    end
  end
  local rounded = jsonata_round(mantissa, pic.max_frac)
  local s = make_string(rounded, pic.max_frac, P)
  local dot = index_of(s, { "." })
  if dot == -1 then
    s = append(s, P.decimal_chars)
  else
    s = append(append(sub(s, 0, dot), P.decimal_chars), sub(s, dot + 1, #s))
  end
  while s[1] == zero do remove(s, 1) end
  while s[#s] == zero do remove(s) end
  local dpos = index_of(s, P.decimal_chars)
  local pad_left = pic.min_int - dpos
  local pad_right = pic.min_frac - (#s - dpos - 1)
  if pad_left > 0 then s = append(rep(zero, pad_left), s) end
  if pad_right > 0 then s = append(s, rep(zero, pad_right)) end
  dpos = index_of(s, P.decimal_chars)
  if pic.regular > 0 then
    s = group_regular(s, dpos, pic.regular, P.grouping_chars)
  else
    for _, pos in ipairs(pic.int_positions) do
      s = append(append(slice(s, 0, dpos - pos), P.grouping_chars), slice(s, dpos - pos))
      dpos = dpos + 1
    end
  end
  dpos = index_of(s, P.decimal_chars)
  for _, pos in ipairs(pic.frac_positions) do
    local at = pos + dpos + 1
    s = append(append(slice(s, 0, at), P.grouping_chars), slice(s, at))
  end
  dpos = index_of(s, P.decimal_chars)
  if not pic.has_decimal or dpos == #s - 1 then remove(s) end
  if exponent ~= nil then
    local e = make_string(exponent, 0, P)
    local pad = pic.min_exp - #e
    if pad > 0 then e = append(rep(zero, pad), e) end
    s = append(append(s, P.exponent_chars), append(exponent < 0 and chars(minus) or {}, e))
  end
  return join(pic.prefix) .. join(s) .. join(pic.suffix)
end

------------------------------------------------------------------------------
-- $formatBase

local DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"

-- Number.prototype.toString(radix) for an integral value (V8: digits past the
-- double's precision come out as zeros).
local function to_radix(value, radix)
  if radix == 10 then return js_tostring(value) end
  if value ~= value then return "NaN" end
  local negative = value < 0
  local integer = abs(value)
  if integer == math.huge then return negative and "-Infinity" or "Infinity" end
  local out = {}
  while integer / radix >= 2 ^ 53 do
    integer = integer / radix
    out[#out + 1] = "0"
  end
  repeat
    local rem = fmod(integer, radix)
    out[#out + 1] = DIGITS36:sub(rem + 1, rem + 1)
    integer = (integer - rem) / radix
  until integer <= 0
  local s = {}
  for i = #out, 1, -1 do s[#s + 1] = out[i] end
  return (negative and "-" or "") .. concat(s)
end

--- $formatBase(number [, radix])
function M.format_base(value, radix)
  value = jsonata_round(check_number(value, "the number"))
  if radix == nil then
    radix = 10
  else
    radix = jsonata_round(check_number(radix, "the radix"))
  end
  if radix < 2 or radix > 36 then raise("D3100", js_tostring(radix)) end
  return to_radix(value, floor(radix))
end

------------------------------------------------------------------------------
-- Dates and times: $fromMillis / $toMillis with a picture

local DAYS = { [0] = "", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday" }
local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December" }
local DAY_MS = 86400000.0

local DEFAULT_PRESENTATION = { Y = "1", M = "1", D = "1", d = "1", F = "n", W = "1", w = "1", X = "1",
  x = "1", H = "1", h = "1", P = "n", m = "01", s = "01", f = "1", Z = "01:01", z = "01:01", C = "n",
  E = "n" }

local function parse_width(w)
  if w == nil or w == "*" then return nil end
  local v = js_parse_int(w)
  return v
end

local function analyse_marker(marker, spec)
  local text = join(chars(marker)):gsub("%s+", "")
  local mc = chars(text)
  local def = { kind = "marker", component = mc[1] or "" }
  local comma = last_index_of(mc, { "," })
  local pres
  if comma ~= -1 then
    local wm = sub(mc, comma + 1, #mc)
    local dash = index_of(wm, { "-" })
    local min, max
    if dash == -1 then
      min = join(wm)
    else
      min, max = join(sub(wm, 0, dash)), join(sub(wm, dash + 1, #wm))
    end
    def.width = { min = parse_width(min), max = parse_width(max) }
    pres = sub(mc, 1, comma)
  else
    pres = sub(mc, 1, #mc)
  end
  if #pres == 1 then
    def.p1 = pres[1]
  elseif #pres > 1 then
    local last = pres[#pres]
    if last == "a" or last == "t" or last == "c" or last == "o" then
      def.p2 = last
      def.ordinal = last == "o"
      def.p1 = join(sub(pres, 0, #pres - 1))
    else
      def.p1 = join(pres)
    end
  else
    def.p1 = DEFAULT_PRESENTATION[def.component]
  end
  if def.p1 == nil then raise("D3132", def.component) end
  local first = def.p1:sub(1, 1)
  if first == "n" then
    def.names = "lower"
  elseif first == "N" then
    def.names = def.p1:sub(2, 2) == "n" and "title" or "upper"
  elseif ("YMDdFWwXxHhmsf"):find(def.component, 1, true) and def.component ~= "" then
    local pattern = def.p1
    if def.p2 then pattern = pattern .. ";" .. def.p2 end
    def.int = analyse_integer(pattern)
    if def.width and def.width.min ~= nil and def.int.mandatory and def.int.mandatory < def.width.min then
      def.int.mandatory = def.width.min
    end
    if def.component == "Y" then
      def.n = -1
      if def.width and def.width.max ~= nil then
        def.n = def.width.max
        def.int.mandatory = def.n
      else
        local w = (def.int.mandatory or NaN) + (def.int.optional or NaN)
        if w >= 2 then def.n = w end
      end
    end
    local previous = spec[#spec]
    if previous and previous.int then previous.int.parse_width = previous.int.mandatory end
  end
  if def.component == "Z" or def.component == "z" then def.int = analyse_integer(def.p1) end
  return def
end

-- analyseDateTimePicture: literals and markers.
local function analyse_datetime(picture)
  local spec = {}
  local pc = chars(picture)
  local function literal(from, to)
    if to > from then
      local text = join(sub(pc, from, to)):gsub("%]%]", "]")
      spec[#spec + 1] = { kind = "literal", value = text }
    end
  end
  local start, pos = 0, 0
  while pos < #pc do
    if pc[pos + 1] == "[" then
      if pc[pos + 2] == "[" then
        literal(start, pos)
        spec[#spec + 1] = { kind = "literal", value = "[" }
        pos = pos + 2
        start = pos
      else
        literal(start, pos)
        start = pos
        pos = index_of(pc, { "]" }, start)
        if pos == -1 then raise("D3135") end
        spec[#spec + 1] = analyse_marker(join(sub(pc, start + 1, pos)), spec)
        start = pos + 1
        pos = pos + 1
      end
    else
      pos = pos + 1
    end
  end
  literal(start, pos)
  return spec
end

local ISO_PICTURE = "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f001][Z01:01t]"

-- Analysed date/time pictures (and their parsers), by picture.
local spec_cache, spec_cached = {}, 0

local function cached_spec(picture)
  local entry = spec_cache[picture]
  if not entry then
    entry = { spec = analyse_datetime(picture) }
    if spec_cached >= CACHE_MAX then spec_cache, spec_cached = {}, 0 end
    spec_cache[picture] = entry
    spec_cached = spec_cached + 1
  end
  return entry.spec, entry
end

local function start_of_first_week(year, month0)
  local first = js_date_utc(year, month0)
  local dow = date_fields(first).day
  if dow == 0 then dow = 7 end
  return dow > 4 and first + (8 - dow) * DAY_MS or first - (dow - 1) * DAY_MS
end

local function next_month(y, m0) if m0 == 11 then return y + 1, 0 end return y, m0 + 1 end
local function previous_month(y, m0) if m0 == 0 then return y - 1, 11 end return y, m0 - 1 end

local function delta_weeks(from, to) return (to - from) / (DAY_MS * 7) + 1 end

-- getDateTimeFragment
local function fragment(d, component)
  if component == "Y" then return d.year
  elseif component == "M" then return d.month + 1
  elseif component == "D" then return d.date
  elseif component == "d" then
    local today = js_date_utc(d.year, d.month, d.date)
    return (today - js_date_utc(d.year, 0)) / DAY_MS + 1
  elseif component == "F" then
    return d.day == 0 and 7 or d.day
  elseif component == "W" then
    local week1 = start_of_first_week(d.year, 0)
    local today = js_date_utc(d.year, d.month, d.date)
    local week = delta_weeks(week1, today)
    if week > 52 then
      if today >= start_of_first_week(d.year + 1, 0) then week = 1 end
    elseif week < 1 then
      week = delta_weeks(start_of_first_week(d.year - 1, 0), today)
    end
    return floor(week)
  elseif component == "w" then
    local week1 = start_of_first_week(d.year, d.month)
    local today = js_date_utc(d.year, d.month, d.date)
    local week = delta_weeks(week1, today)
    if week > 4 then
      if today >= start_of_first_week(next_month(d.year, d.month)) then week = 1 end
    elseif week < 1 then
      week = delta_weeks(start_of_first_week(previous_month(d.year, d.month)), today)
    end
    return floor(week)
  elseif component == "X" then
    local from, to = start_of_first_week(d.year, 0), start_of_first_week(d.year + 1, 0)
    if d.time < from then return d.year - 1 elseif d.time >= to then return d.year + 1 end
    return d.year
  elseif component == "x" then
    local from = start_of_first_week(d.year, d.month)
    local ny, nm = next_month(d.year, d.month)
    local to = start_of_first_week(ny, nm)
    if d.time < from then
      local _, pm = previous_month(d.year, d.month)
      return pm + 1
    elseif d.time >= to then
      return nm + 1
    end
    return d.month + 1
  elseif component == "H" then return d.hours
  elseif component == "h" then
    local h = d.hours % 12
    return h == 0 and 12 or h
  elseif component == "P" then return d.hours >= 12 and "pm" or "am"
  elseif component == "m" then return d.minutes
  elseif component == "s" then return d.seconds
  elseif component == "f" then return d.ms
  elseif component == "C" or component == "E" then return "ISO"
  end
  return nil
end

local function format_component(d, part, offset_h, offset_m)
  local c = part.component
  local value = fragment(d, c)
  if ("YMDdFWwXxHhms"):find(c, 1, true) and c ~= "" then
    if c == "Y" and part.n ~= -1 then value = fmod(value, 10.0 ^ (part.n or NaN)) end
    if part.names then
      if c == "M" or c == "x" then
        value = MONTHS[floor(value)]
      elseif c == "F" then
        value = DAYS[floor(value)]
      else
        raise("D3133", c)
      end
      if part.names == "upper" then
        value = value:upper()
      elseif part.names == "lower" then
        value = value:lower()
      end
      if part.width and part.width.max and utf8.len(value) > part.width.max then
        value = value:sub(1, part.width.max)
      end
      return value
    end
    return format_with(value + 0.0, part.int)
  elseif c == "f" then
    return format_with(value + 0.0, part.int, c)
  elseif c == "Z" or c == "z" then
    local offset = offset_h * 100 + offset_m
    local out
    if part.int.regular then
      out = format_with(offset, part.int)
    else
      local digits = part.int.mandatory
      if digits == 1 or digits == 2 then
        out = format_with(offset_h, part.int)
        if offset_m ~= 0 then out = out .. ":" .. M.format_integer(offset_m, "00") end
      elseif digits == 3 or digits == 4 then
        out = format_with(offset, part.int)
      else
        raise("D3134", digits)
      end
    end
    if offset >= 0 then out = "+" .. out end
    if c == "z" then out = "GMT" .. out end
    if offset == 0 and part.p2 == "t" then out = "Z" end
    return out
  elseif c == "P" then
    if part.names == "upper" then value = value:upper() end
    return value
  end
  if value == nil then return "undefined" end
  return tostring(value)
end

local iso_spec

--- $fromMillis(ms [, picture [, timezone]])
function M.format_datetime(ms, picture, timezone)
  ms = check_number(ms, "the number")
  local offset_h, offset_m = 0, 0
  if timezone ~= nil then
    local offset = js_parse_int(check_string(timezone, "the timezone"))
    if offset ~= offset then
      raise("D3137", nil, "The timezone must be of the form +hhmm, got " .. timezone)
    end
    offset_h = floor(offset / 100)
    offset_m = fmod(offset, 100)
  end
  local spec
  if picture == nil then
    iso_spec = iso_spec or analyse_datetime(ISO_PICTURE)
    spec = iso_spec
  else
    spec = cached_spec(check_string(picture, "the picture"))
  end
  local t = ms + (60 * offset_h + offset_m) * 60000
  t = t < 0 and -floor(-t) or floor(t)
  if abs(t) > 8.64e15 then
    raise("D3137", nil, "The time " .. js_tostring(ms) .. " is outside the range of dates")
  end
  local d = date_fields(t)
  local out = {}
  for _, part in ipairs(spec) do
    out[#out + 1] = part.kind == "literal" and part.value or format_component(d, part, offset_h, offset_m)
  end
  return concat(out)
end

local function escape_literal(text)
  return (text:gsub("[%.%*%+%?%^%$%{%}%(%)%|%[%]\\]", "\\%0"))
end

-- One part of a timestamp's parser: { pattern, parse, component }.
local function part_matcher(part)
  if part.kind == "literal" then return { pattern = escape_literal(part.value) } end
  local c = part.component
  local m
  if c == "Z" or c == "z" then
    local separator = part.int.regular and part.int.separators or nil
    m = { pattern = (c == "z" and "GMT" or "") .. "[-+][0-9]+"
      .. (separator and separator.character .. "[0-9]+" or "") }
    m.parse = function(v)
      if c == "z" then v = v:sub(4) end
      local hours, minutes
      minutes = 0
      if separator then
        local at = v:find(separator.character, 1, true)
        hours = js_parse_int(v:sub(1, at - 1))
        minutes = js_parse_int(v:sub(at + #separator.character))
      elseif #v - 1 <= 2 then
        hours = js_parse_int(v)
      else
        hours = js_parse_int(v:sub(1, 3))
        minutes = js_parse_int(v:sub(4))
      end
      return hours * 60 + minutes
    end
  elseif c == "f" then
    m = { pattern = "[0-9]+", parse = function(v) return tonumber("0." .. v:sub(1, 3)) * 1000 end }
  elseif part.int then
    m = integer_matcher(part.int)
  else
    local lookup = {}
    if c == "M" or c == "x" then
      for i, name in ipairs(MONTHS) do
        lookup[part.width and part.width.max and name:sub(1, part.width.max) or name] = i
      end
    elseif c == "F" then
      for i = 1, 7 do
        local name = DAYS[i]
        lookup[part.width and part.width.max and name:sub(1, part.width.max) or name] = i
      end
    elseif c == "P" then
      lookup = { am = 0, AM = 0, pm = 1, PM = 1 }
    else
      raise("D3133", c)
    end
    m = { pattern = "[a-zA-Z]+", parse = function(v) return lookup[v] end }
  end
  m.component = c
  return m
end

local function truthy(v) return v ~= nil and v ~= 0 and v == v end

local function is_type(type_mask, mask)
  return (~type_mask & mask) == 0 and (type_mask & mask) ~= 0
end

local function mask_of(components, letters)
  local mask = 0
  for ch in letters:gmatch(".") do mask = (mask << 1) | (truthy(components[ch]) and 1 or 0) end
  return mask
end

--- $toMillis(text, picture [, now_ms]) --> ms | nil (the text does not fit the picture) | NaN
function M.parse_datetime(text, picture, now_ms)
  check_string(text, "the timestamp")
  local spec, entry = cached_spec(check_string(picture, "the picture"))
  if not entry.re then
    local parts, patterns = {}, {}
    for i, part in ipairs(spec) do
      parts[i] = part_matcher(part)
      patterns[i] = "(" .. parts[i].pattern .. ")"
    end
    entry.re = regex.compile("^" .. concat(patterns) .. "$", "i")
    entry.parts = parts
  end
  local parts = entry.parts
  local start, _, caps = entry.re:exec(text)
  if not start then return nil end
  local components, any = {}, false
  for i, m in ipairs(parts) do
    if m.parse then
      local s, e = caps[2 * i - 1], caps[2 * i]
      local value = m.parse(s and text:sub(s, e) or "")
      if value ~= nil then components[m.component] = value end
      any = true
    end
  end
  if not any then return nil end
  local date_a = is_type(161, mask_of(components, "YXMxWwdD"))
  local date_b = not date_a and is_type(130, mask_of(components, "YXMxWwdD"))
  local date_c = is_type(84, mask_of(components, "YXMxWwdD"))
  local date_d = not date_c and is_type(72, mask_of(components, "YXMxWwdD"))
  local time_a = is_type(23, mask_of(components, "PHhmsf"))
  local time_b = not time_a and is_type(47, mask_of(components, "PHhmsf"))
  local comps = (date_b and "YD" or date_c and "XxwF" or date_d and "XWF" or "YMD")
    .. (time_b and "Phmsf" or "Hmsf")
  local now
  local started, ended = false, false
  for ch in comps:gmatch(".") do
    if components[ch] == nil then
      if started then
        components[ch] = ("MDd"):find(ch, 1, true) and 1 or 0
        ended = true
      else
        now = now or date_fields(floor(now_ms or time.now_ms()))
        components[ch] = fragment(now, ch)
      end
    else
      started = true
      if ended then raise("D3136") end
    end
  end
  local month = components.M
  if type(month) == "number" and month > 0 then
    components.M = month - 1
  else
    components.M = 0
  end
  if date_b then
    local derived = date_fields(js_date_utc(components.Y, 0) + (components.d - 1) * DAY_MS)
    components.M = derived.month
    components.D = derived.date
  end
  if date_c or date_d then raise("D3136") end
  if time_b then
    components.H = components.h == 12 and 0 or components.h
    if components.P == 1 then components.H = components.H + 12 end
  end
  local function num(v) return type(v) == "number" and v or NaN end
  local millis = js_date_utc(num(components.Y), num(components.M), num(components.D), num(components.H),
    num(components.m), num(components.s), num(components.f))
  local zone = truthy(components.Z) and components.Z or components.z
  if truthy(zone) then millis = millis - zone * 60 * 1000 end
  if millis == millis and millis == floor(millis) and abs(millis) < 2 ^ 63 then
    return math.tointeger(millis)
  end
  return millis
end

return M
