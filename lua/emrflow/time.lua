--- emrflow.time: the one module for dates, timestamps and the clock.
--
--   time.parse_iso(text)             --> epoch ms (integer), sub-ms nanoseconds | nil, reason
--   time.parse_iso(text, "jsonata")  --> the same, accepting what JSONata's $toMillis does
--                                        (nil, reason, "pattern" | "invalid": see below)
--   time.parse_iso(text, "lenient")  --> the same, for timestamps from files and APIs (below)
--   time.format_iso(ms)              --> "2024-01-02T03:04:05.678Z" | nil, reason
--   time.format_iso(ms, "seconds")   --> "2024-01-02T03:04:05Z" (AWS API style, ms dropped)
--   time.fields(ms)                  --> y, m, d, hour, min, sec, ms (UTC)
--   time.days_from_civil(y, m, d)    --> days since 1970-01-01 (proleptic Gregorian)
--   time.civil_from_days(days)       --> y, m, d
--   time.now_ms()                    --> the real clock, epoch milliseconds
--
-- parse_iso accepts exactly what Step Functions does for TimestampEquals & co,
-- Wait Timestamp and TimestampPath: an ISO-8601 extended offset date-time, as
-- Java's DateTimeFormatter.ISO_OFFSET_DATE_TIME parses it (AWS's error names that
-- format): YYYY-MM-DDTHH:MM[:SS[.fraction of 0-9 digits]] then Z or an offset
-- +HH, +HH:MM or +HH:MM:SS within +-18:00; T and Z in either case; years of
-- more than 4 digits carry a sign (+12016; at most 100,000,000 here); dates and times are checked strictly
-- (no February 30, no 24:00, no leap second). Milliseconds are rounded down; the
-- second result keeps the nanoseconds below the millisecond (0 .. 999999).
--
-- The "jsonata" flavour follows jsonata-js: its ISO-8601 pattern (year, optional
-- -MM, -DD, THH:MM:SS, .fraction, then Z or +HH[:]MM), then JavaScript's
-- Date.parse: missing parts are the first month/day/midnight, a time without an
-- offset is taken as UTC, days up to 31 roll into the next month, 24:00:00 is
-- the next midnight.
--
-- The "lenient" flavour reads what AWS APIs and credential files write: blanks
-- around, T, t or a space between date and time, optional seconds and fraction, Z,
-- +HH:MM, +HHMM or no offset at all (UTC).
local core = require "emrflow.core"

local M = {}

local floor = math.floor
local tointeger = math.tointeger

local MS_PER_DAY = 86400000
-- JavaScript's Date range, which JSONata's $fromMillis inherits.
local MAX_MS = 8640000000000000

-- Java takes years up to 999,999,999; past this one epoch ms no longer fit 64 bits.
local MAX_YEAR = 100000000

local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function is_leap(y)
  return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
end

local function days_in_month(y, m)
  if m == 2 and is_leap(y) then return 29 end
  return MDAYS[m]
end
M.days_in_month = days_in_month
M.is_leap = is_leap

--- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm);
-- months and days outside their range count on (month 13 is next January).
function M.days_from_civil(y, m, d)
  y = y + (m - 1) // 12
  m = (m - 1) % 12 + 1
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- The proleptic Gregorian date of a day number (0 = 1970-01-01): y, m, d.
function M.civil_from_days(days)
  local z = days + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

--- The real clock in epoch milliseconds (an integer).
function M.now_ms()
  return floor(core.now() * 1000)
end

-- Splits a fraction's digits into whole milliseconds and the nanoseconds below.
local function fraction(digits)
  if digits == "" then return 0, 0 end
  local padded = (digits .. "000000000"):sub(1, 9)
  local ns = tonumber(padded)
  return ns // 1000000, ns % 1000000
end

local function bad(text, why)
  return nil, ("not an ISO-8601 extended offset date-time (%s): %s"):format(why, text)
end

-- The year at the start of s (4 digits, or a sign and 4 to 9 digits) and the rest.
local function year_of(s)
  local sign, digits, rest = s:match("^([+-]?)(%d+)(.*)$")
  if not digits then return nil end
  if sign == "" and #digits ~= 4 then return nil end
  if sign == "+" and #digits <= 4 then return nil end -- Java: a sign only past 4 digits
  if #digits > 9 or tonumber(digits) > MAX_YEAR then return nil end
  local y = tonumber(digits)
  if sign == "-" then
    if #digits < 4 then return nil end
    y = -y
  end
  return y, rest
end

-- The offset in seconds east of UTC, or nil.
local function offset_of(s)
  if s == "Z" or s == "z" then return 0 end
  local sign, hh, rest = s:match("^([+-])(%d%d)(.*)$")
  if not sign then return nil end
  local mm, ss = 0, 0
  if rest ~= "" then
    local m2, rest2 = rest:match("^:(%d%d)(.*)$")
    if not m2 then return nil end
    mm = tonumber(m2)
    if rest2 ~= "" then
      local s2 = rest2:match("^:(%d%d)$")
      if not s2 then return nil end
      ss = tonumber(s2)
    end
  end
  local h = tonumber(hh)
  if mm > 59 or ss > 59 then return nil end
  local total = h * 3600 + mm * 60 + ss
  if total > 18 * 3600 then return nil end
  return sign == "-" and -total or total
end

local function parse_step_functions(text)
  local y, rest = year_of(text)
  if not y then return bad(text, "year") end
  local mo, d, h, mi, tail = rest:match("^%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d)(.*)$")
  if not mo then return bad(text, "layout") end
  mo, d, h, mi = tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
  local sec, frac = 0, ""
  local s2, tail2 = tail:match("^:(%d%d)(.*)$")
  if s2 then
    sec, tail = tonumber(s2), tail2
    local f, tail3 = tail:match("^%.(%d*)(.*)$")
    if f then
      if #f > 9 then return bad(text, "more than 9 fraction digits") end
      frac, tail = f, tail3
    end
  end
  local off = offset_of(tail)
  if not off then return bad(text, "offset") end
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then return bad(text, "date") end
  if h > 23 or mi > 59 or sec > 59 then return bad(text, "time") end
  local ms, ns = fraction(frac)
  local secs = M.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off
  return secs * 1000 + ms, ns
end

-- jsonata-js: ^\d{4}(-[01]\d)?(-[0-3]\d)?(T[0-2]\d:[0-5]\d:[0-5]\d)?(\.\d+)?
--   ([+-][0-2]\d:?[0-5]\d|Z)?$
-- then Date.parse. Text that pattern refuses gives nil, reason, "pattern" (JSONata's
-- D3110); text it takes but Date.parse cannot read gives nil, reason, "invalid" (NaN).
local function parse_jsonata(text)
  local function refuse(why)
    return nil, ("not an ISO 8601 timestamp (%s): %s"):format(why, text), "pattern"
  end
  local function invalid(why)
    return nil, ("not a valid date-time (%s): %s"):format(why, text), "invalid"
  end
  local y, rest = text:match("^(%d%d%d%d)(.*)$")
  if not y then return refuse("year") end
  local mo, d, h, mi, sec = "01", "01", "00", "00", "00"
  local v, r = rest:match("^%-([01]%d)(.*)$")
  if v then mo, rest = v, r end
  v, r = rest:match("^%-([0-3]%d)(.*)$")
  if v then d, rest = v, r end
  local th, tm, ts, r2 = rest:match("^T([0-2]%d):([0-5]%d):([0-5]%d)(.*)$")
  local has_time = th ~= nil
  if has_time then h, mi, sec, rest = th, tm, ts, r2 end
  local frac = ""
  v, r = rest:match("^%.(%d+)(.*)$")
  if v then frac, rest = v, r end
  local off = 0
  if rest ~= "" and rest ~= "Z" then
    local sign, oh, om = rest:match("^([+-])([0-2]%d):?([0-5]%d)$")
    if not sign then return refuse("offset") end
    if not has_time then return invalid("an offset needs a time") end
    oh = tonumber(oh)
    if oh > 23 then return invalid("offset") end
    off = (oh * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  if frac ~= "" and not has_time then return invalid("a fraction needs a time") end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return invalid("date") end
  local ms = fraction(frac:sub(1, 3))
  if h > 24 or (h == 24 and (mi > 0 or sec > 0 or ms > 0)) then return invalid("time") end
  local secs = M.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off
  return secs * 1000 + ms, 0
end

local function parse_lenient(text)
  local body = text:match("^%s*(.-)%s*$")
  local y, mo, d, h, mi, tail = body:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d)(.*)$")
  if not y then return bad(text, "layout") end
  y, mo, d, h, mi = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi)
  local sec, frac = 0, ""
  local s2, tail2 = tail:match("^:(%d%d)(.*)$")
  if s2 then
    sec, tail = tonumber(s2), tail2
    local f, tail3 = tail:match("^%.(%d+)(.*)$")
    if f then frac, tail = f, tail3 end
  end
  local off = 0
  if tail ~= "" and tail ~= "Z" and tail ~= "z" then
    local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return bad(text, "offset") end
    oh, om = tonumber(oh), tonumber(om)
    if oh > 18 or om > 59 then return bad(text, "offset") end
    off = (oh * 3600 + om * 60) * (sign == "-" and -1 or 1)
  end
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then return bad(text, "date") end
  if h > 23 or mi > 59 or sec > 59 then return bad(text, "time") end
  local ms, ns = fraction(frac:sub(1, 9))
  return (M.days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off) * 1000 + ms, ns
end

--- Parses an ISO-8601 timestamp: epoch ms and the nanoseconds below the ms, or nil, reason.
function M.parse_iso(text, flavour)
  if type(text) ~= "string" then return nil, "a timestamp must be a string, got " .. type(text) end
  if flavour == "jsonata" then return parse_jsonata(text) end
  if flavour == "lenient" then return parse_lenient(text) end
  if flavour ~= nil and flavour ~= "step-functions" then
    error("time.parse_iso: unknown flavour " .. tostring(flavour) .. " (jsonata, lenient)", 2)
  end
  return parse_step_functions(text)
end

local function pad(n, width)
  local s = tostring(n < 0 and -n or n)
  if #s < width then s = ("0"):rep(width - #s) .. s end
  return (n < 0 and "-" or "") .. s
end

--- Splits epoch ms into y, m, d, hour, minute, second, millisecond (UTC).
function M.fields(ms)
  local days = ms // MS_PER_DAY
  local rem = ms - days * MS_PER_DAY
  local y, m, d = M.civil_from_days(days)
  return y, m, d, rem // 3600000, rem // 60000 % 60, rem // 1000 % 60, rem % 1000
end

--- "YYYY-MM-DDTHH:MM:SS.mmmZ" for epoch ms, as JSONata's $fromMillis writes it
-- (fractions of a ms truncated toward zero, the year's last 4 digits);
-- precision "seconds": "YYYY-MM-DDTHH:MM:SSZ", rounded down to the second.
function M.format_iso(ms, precision)
  if type(ms) ~= "number" or ms ~= ms then return nil, "epoch milliseconds must be a number" end
  if ms > MAX_MS or ms < -MAX_MS then return nil, "epoch milliseconds out of range: " .. tostring(ms) end
  if precision == "seconds" then
    local y, m, d, h, mi, s = M.fields(floor(ms / 1000) * 1000)
    return ("%s-%02d-%02dT%02d:%02d:%02dZ"):format(pad(y, 4), m, d, h, mi, s)
  end
  ms = tointeger(ms) or (ms < 0 and -floor(-ms) or floor(ms))
  local y, m, d, h, mi, s, f = M.fields(ms)
  local year = (y < 0 and "-" or "") .. pad(math.abs(y) % 10000, 4)
  return ("%s-%02d-%02dT%02d:%02d:%02d.%03dZ"):format(year, m, d, h, mi, s, f)
end

return M
