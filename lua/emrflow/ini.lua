-- The AWS shared config / credentials file format (~/.aws/config, ~/.aws/credentials).
--
-- What is accepted, following botocore's reader:
--   * `[section]` headers (surrounding blanks inside the brackets are trimmed);
--   * `key = value` or `key: value` (the first `=` or `:` splits); keys are case-insensitive
--     (lower-cased), values are trimmed of surrounding blanks and otherwise kept verbatim
--     (no inline comments: `#` inside a value is part of it, as in botocore);
--   * whole-line comments starting with `#` or `;`, and blank lines;
--   * an indented line after `key =` with an empty value starts a sub-section
--     (`s3 =` / `  max_concurrent_requests = 10`, and `[services x]` bodies): the key's value
--     becomes a table of the indented `k = v` pairs;
--   * an indented line after a key with a value continues it (joined with "\n").
--   * a section that appears twice is merged; a key that appears twice keeps the last value.
-- Anything else is an error naming the file and line, never the line's text (it could hold
-- a secret).
local M = {}

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function split_kv(line)
  local pos = line:find("[=:]")
  if not pos then return nil end
  local key = trim(line:sub(1, pos - 1)):lower()
  if key == "" then return nil end
  return key, trim(line:sub(pos + 1))
end

--- Parses INI text. Returns `{ [section] = { [key] = value | {k = v} } }, order` where `order`
--- lists the section names in first-seen order; or nil, message ("<where>:<line>: ...").
function M.parse(text, where)
  if type(text) ~= "string" then
    error("emrflow.ini.parse: text must be a string, got " .. type(text), 2)
  end
  where = where or "<string>"
  local sections, order = {}, {}
  local current, last_key, last_indent_kind = nil, nil, nil
  local n = 0
  -- normalise line ends; a final line without "\n" still counts
  text = text:gsub("\r\n", "\n"):gsub("\r", "\n")
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end -- UTF-8 BOM
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local indented = line:match("^[ \t]+%S") ~= nil
    local stripped = trim(line)
    if stripped == "" or stripped:match("^[#;]") then
      -- blank or comment line: a blank line ends a continuation in configparser only for
      -- values; we keep it simple and leave state unchanged for comments, reset for blanks
      if stripped == "" then last_indent_kind = nil end
    elseif indented and current and last_key then
      local v = current[last_key]
      if type(v) == "table" or (v == "" and last_indent_kind ~= "continuation") then
        local k, val = split_kv(stripped)
        if not k then
          return nil, string.format("%s:%d: expected 'key = value' in the sub-section of '%s'",
                                    where, n, last_key)
        end
        if type(v) ~= "table" then v = {}; current[last_key] = v end
        v[k] = val
        last_indent_kind = "sub"
      else
        current[last_key] = v .. "\n" .. stripped
        last_indent_kind = "continuation"
      end
    elseif stripped:sub(1, 1) == "[" then
      local name = stripped:match("^%[(.*)%]$")
      if not name then
        return nil, string.format("%s:%d: section header is missing its closing ']'", where, n)
      end
      name = trim(name)
      if name == "" then
        return nil, string.format("%s:%d: empty section name '[]'", where, n)
      end
      current = sections[name]
      if not current then
        current = {}
        sections[name] = current
        order[#order + 1] = name
      end
      last_key, last_indent_kind = nil, nil
    else
      local k, v = split_kv(stripped)
      if not k then
        return nil, string.format("%s:%d: expected '[section]' or 'key = value'", where, n)
      end
      if not current then
        return nil, string.format("%s:%d: 'key = value' line before any [section] header", where, n)
      end
      current[k] = v
      last_key, last_indent_kind = k, nil
    end
  end
  return sections, order
end

--- Reads and parses a file. Returns sections, order; or nil, message, "missing" when the file
--- does not exist (callers treat a missing file as empty), or nil, message on other failures.
function M.read_file(path)
  if type(path) ~= "string" then
    error("emrflow.ini.read_file: path must be a string, got " .. type(path), 2)
  end
  local f, err, errno = io.open(path, "rb")
  if not f then
    if errno == 2 then return nil, "no such file: " .. path, "missing" end
    return nil, "cannot open " .. tostring(err)
  end
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, "cannot read " .. path .. ": " .. tostring(rerr) end
  return M.parse(text, path)
end

--- Splits the sections of an AWS *config* file into profiles and other named sections:
--- `[default]` and `[profile default]` are profile "default" (the latter wins on conflicts),
--- `[profile x]` is profile x, `[sso-session x]` and `[services x]` go to their own maps.
--- Other sections (e.g. `[x]` without the `profile ` prefix) are ignored, as the AWS CLI does.
function M.config_profiles(sections, order)
  local profiles, services, sso_sessions = {}, {}, {}
  local function merge(into, name, body)
    local t = into[name]
    if not t then t = {}; into[name] = t end
    for k, v in pairs(body) do t[k] = v end
  end
  -- [default] first so that [profile default] overrides it whatever the file order
  if sections["default"] then merge(profiles, "default", sections["default"]) end
  for _, name in ipairs(order or {}) do
    local body = sections[name]
    local kind, rest = name:match("^(%S+)%s+(.-)%s*$")
    if kind == "profile" and rest ~= "" then
      merge(profiles, rest, body)
    elseif kind == "services" and rest ~= "" then
      merge(services, rest, body)
    elseif kind == "sso-session" and rest ~= "" then
      merge(sso_sessions, rest, body)
    end
  end
  return profiles, services, sso_sessions
end

return M
