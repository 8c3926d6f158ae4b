--- Helpers shared by the credential providers: the masked credentials object, time parsing,
-- URL encoding, redaction, and an HTTP call with a few retries.
-- @module emrflow.credentials.common
local errors = require "emrflow.errors"
local time = require "emrflow.time"

local M = {}

-- ------------------------------------------------------------------------
-- The credentials object
--
-- access_key_id, expiration and source are plain fields; secret_access_key and
-- session_token live in a private side table reached through __index, so
-- tostring(), print(), pairs() and JSON encoding never show them, while
-- creds.secret_access_key still reads them (sigv4.sign reads fields this way).
-- Lua strings cannot be wiped: when a provider refreshes, its cached object is
-- dropped (and its secrets with it, once collected); nothing else keeps a copy.
-- ------------------------------------------------------------------------

local secret_of = setmetatable({}, { __mode = "k" })

local Credentials = { __name = "emrflow.Credentials" }
M.Credentials = Credentials

Credentials.__index = function(t, k)
  local s = secret_of[t]
  if s then return s[k] end
  return nil
end

Credentials.__newindex = function(_, k)
  error("emrflow.Credentials is read-only (tried to set '" .. tostring(k) .. "')", 2)
end

local function iso8601(t)
  return (time.format_iso(math.floor(t) * 1000, "seconds"))
end
M.iso8601 = iso8601

local function mask_id(id)
  if type(id) ~= "string" then return "?" end
  if #id <= 8 then return "****" end
  return id:sub(1, 4) .. "****" .. id:sub(-4)
end
M.mask_id = mask_id

Credentials.__tostring = function(c)
  return string.format("emrflow.Credentials{access_key_id=%s, secret_access_key=<redacted>, " ..
    "session_token=%s, expiration=%s, source=%s}", mask_id(rawget(c, "access_key_id")),
    secret_of[c] and secret_of[c].session_token and "<redacted>" or "none",
    rawget(c, "expiration") and iso8601(rawget(c, "expiration")) or "never",
    tostring(rawget(c, "source")))
end

Credentials.__close = nil

--- Makes a credentials object. t: access_key_id, secret_access_key, session_token?,
--- expiration? (unix seconds), source? (provider name), account_id?
function M.new_credentials(t)
  local c = {
    access_key_id = t.access_key_id,
    expiration = t.expiration,
    source = t.source,
    account_id = t.account_id,
  }
  secret_of[c] = { secret_access_key = t.secret_access_key, session_token = t.session_token }
  return setmetatable(c, Credentials)
end

function M.is_credentials(v)
  return getmetatable(v) == Credentials
end

-- Checks a credentials table given in code; raises on misuse (the message never holds a secret).
function M.check_static(t, where)
  if type(t) ~= "table" then
    error(where .. ": credentials must be a table, got " .. type(t), 3)
  end
  if M.is_credentials(t) then return t end
  for _, k in ipairs { "access_key_id", "secret_access_key" } do
    if type(t[k]) ~= "string" or t[k] == "" then
      error(where .. ": credentials." .. k .. " must be a non-empty string", 3)
    end
  end
  if t.session_token ~= nil and (type(t.session_token) ~= "string" or t.session_token == "") then
    error(where .. ": credentials.session_token must be a non-empty string when given", 3)
  end
  if t.expiration ~= nil and type(t.expiration) ~= "number" then
    error(where .. ": credentials.expiration must be unix seconds (a number) when given", 3)
  end
  return nil
end

-- ------------------------------------------------------------------------
-- Time
-- ------------------------------------------------------------------------

--- Parses an ISO 8601 / RFC 3339 timestamp ("2026-01-02T03:04:05Z", with optional fraction
--- and "+hh:mm" offset), leniently as credential sources write them (emrflow.time).
--- Returns unix seconds (integer) or nil.
function M.parse_time(s)
  if type(s) == "number" then return math.floor(s) end
  if type(s) ~= "string" then return nil end
  local ms = time.parse_iso(s, "lenient")
  return ms and ms // 1000 or nil
end

-- ------------------------------------------------------------------------
-- Encoding, redaction, XML
-- ------------------------------------------------------------------------

--- application/x-www-form-urlencoded value encoding as botocore does (RFC 3986 unreserved kept).
function M.urlencode(s)
  return (tostring(s):gsub("[^A-Za-z0-9%-_%.~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- Replaces each secret (plain text) in msg with "<redacted>", and bounds the length.
function M.redact(msg, secrets, max_len)
  msg = tostring(msg or "")
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= 4 then
      local from = 1
      while true do
        local i, j = msg:find(s, from, true)
        if not i then break end
        msg = msg:sub(1, i - 1) .. "<redacted>" .. msg:sub(j + 1)
        from = i + 10
      end
    end
  end
  -- text from the other side may carry secrets we were never told about (a proxy echoing a
  -- credentials document): long key-like runs are dropped too (AWS secret keys are 40 such
  -- characters, session tokens hundreds; request ids and ARNs are broken up by '-' or ':')
  msg = msg:gsub("[%w/+=]+", function(run)
    if #run >= 32 then return "<redacted>" end
  end)
  msg = msg:gsub("[%c]", " ")
  max_len = max_len or 300
  if #msg > max_len then msg = msg:sub(1, max_len) .. "..." end
  return msg
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'" }

local function utf8_char(n)
  if n and n >= 0 and n <= 0x10FFFF and not (n >= 0xD800 and n <= 0xDFFF) then return utf8.char(n) end
  return "?"
end

function M.xml_unescape(s)
  return (s:gsub("&(#?[xX]?)(%w+);", function(kind, name)
    if kind == "" then return ENTITIES[name] or ("&" .. name .. ";") end
    if kind == "#" then return utf8_char(tonumber(name, 10)) end
    return utf8_char(tonumber(name, 16))
  end))
end

--- The text of the first element <name ...>text</name> in xml (after `from`), unescaped,
--- or nil. A self-closing <name/> yields "". Returns text, end position.
function M.xml_text(xml, name, from)
  local _, j, after = xml:find("<" .. name .. "([%s/>])", from or 1)
  if not j then return nil end
  local close = j -- the '>' that ends the start tag
  if after ~= ">" then
    close = xml:find(">", j, true)
    if not close then return nil end
    if xml:sub(close - 1, close - 1) == "/" then return "", close end
  end
  local k, l = xml:find("</" .. name .. "%s*>", close + 1)
  if not k then return nil end
  local inner = xml:sub(close + 1, k - 1)
  inner = inner:gsub("^%s*<!%[CDATA%[(.-)%]%]>%s*$", "%1")
  return M.xml_unescape(inner), l
end

-- ------------------------------------------------------------------------
-- HTTP and errors
-- ------------------------------------------------------------------------

--- A credentials error (code "credentials").
function M.error(message, extra)
  local t = { code = "credentials", message = message, retryable = false }
  for k, v in pairs(extra or {}) do t[k] = v end
  return errors.new(t)
end

function M.header(resp, name)
  local low = name:lower()
  for _, h in ipairs(resp.headers or {}) do
    if type(h[1]) == "string" and h[1]:lower() == low then return h[2] end
  end
  return nil
end

--- A short description of an HTTP failure err (from core.http), never holding secrets.
function M.describe_neterr(err)
  if type(err) == "table" then
    return string.format("%s error%s", tostring(err.code or "network"),
      err.message and (": " .. M.redact(err.message, nil, 200)) or "")
  end
  return M.redact(tostring(err), nil, 200)
end

--- Sends req through ctx.http with up to `attempts` tries; retries network errors that are
--- retryable, HTTP 5xx and 429 (and `retry_status` statuses), sleeping between tries.
--- Returns resp (any status) | nil, err (the last network error).
function M.send(ctx, req, attempts, retry_status)
  attempts = attempts or 1
  local resp, err
  for i = 1, attempts do
    resp, err = ctx.http(req)
    local again
    if resp then
      again = resp.status >= 500 or resp.status == 429 or (retry_status and retry_status[resp.status])
    else
      again = type(err) ~= "table" or err.retryable ~= false
    end
    if not again or i == attempts then break end
    ctx.sleep(math.min(0.05 * 2 ^ (i - 1), 1))
  end
  return resp, err
end

return M
