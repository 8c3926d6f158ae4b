-- emrflow.emr.validate: the emr-containers API model at work.
--
--   validate.check(operation, params)      --> true | nil, err (ValidationException-like)
--   validate.to_wire(operation, params)    --> { path =, query =, headers =, body = } (camelCase)
--   validate.from_wire(operation, body)    --> result table (PascalCase)
--   validate.regex(pattern)                --> matcher(string) --> boolean (whole-string match)
--
-- Parameters and results use Step Functions' spelling (model member name with
-- its first letter upper-cased); the wire uses the model's names. Only the
-- members of structure shapes are renamed: map keys (Properties, Tags,
-- JobTemplateParameters) are data and pass through untouched.
local json = require "emrflow.json"
local time = require "emrflow.time"
local core = require "emrflow.core"
local errors = require "emrflow.errors"
local model = require "emrflow.emr.model"

local M = {}

local shapes, operations = model.shapes, model.operations
local fmt, concat, sort = string.format, table.concat, table.sort
local mtype = math.type
local null = json.null

------------------------------------------------------------------------------
-- The model's (Java) patterns, through emrflow.regex's linear-time C engine.
-- Matching is of the whole value (AWS validates the entire member against the
-- pattern), and `.` also matches line breaks, so multi-line values (SQL, Spark
-- parameters) are not rejected on the client; the service remains the judge.
-- Escapes Java refuses (\q) are refused here too, as the service would.
------------------------------------------------------------------------------

local regex = require "emrflow.regex"

-- Letters Java accepts after a backslash (classes, anchors, controls, quoting).
local JAVA_ESCAPES = "tnrfaecdDsSwWpPbBAGZzuxQEhHvVRk0"

local matchers = {}

-- validate.regex(pattern) --> matcher(string) --> boolean (whole-string match)
function M.regex(pattern)
  local m = matchers[pattern]
  if m then return m end
  local i = 1
  while true do
    local p = pattern:find("\\", i, true)
    if not p then break end
    local c = pattern:sub(p + 1, p + 1)
    if c:match("%a") and not JAVA_ESCAPES:find(c, 1, true) then
      error(fmt("emrflow.emr: unsupported escape \\%s in pattern %q", c, pattern), 2)
    end
    i = p + 2
  end
  local ok, re = pcall(regex.compile, pattern, "s")
  if not ok then
    error(fmt("emrflow.emr: bad pattern %q: %s", pattern, tostring(re)), 2)
  end
  m = function(s) return re:full_match(s) end
  matchers[pattern] = m
  return m
end

local function pascal(name) return name:sub(1, 1):upper() .. name:sub(2) end
M.pascal = pascal

-- For each structure shape: by_pascal / by_wire lookup of its members,
-- with the member's shape table resolved.
local index = {}
for _, s in pairs(shapes) do
  if s.type == "structure" then
    local by_pascal, by_wire, required = {}, {}, {}
    for _, mem in ipairs(s.members) do
      local entry = { name = mem.name, pascal = mem.pascal or pascal(mem.name), shape = shapes[mem.shape],
                      shape_name = mem.shape, location = mem.location,
                      location_name = mem.location_name or mem.name,
                      idempotency_token = mem.idempotency_token }
      by_pascal[entry.pascal] = entry
      by_wire[mem.name] = entry
    end
    for _, r in ipairs(s.required or {}) do required[#required + 1] = by_wire[r] end
    index[s] = { by_pascal = by_pascal, by_wire = by_wire, required = required, list = {} }
    for _, mem in ipairs(s.members) do
      index[s].list[#index[s].list + 1] = by_wire[mem.name]
    end
  end
end

function M.operation(name)
  return operations[name]
end

-- Members of an operation's input, in model order (resolved entries).
function M.input_members(operation)
  local op = operations[operation]
  if not op or not op.input then return {} end
  return index[shapes[op.input]].list
end

------------------------------------------------------------------------------
-- Validation: the C core's checks (src/ef_emr.c), patterns through M.regex
------------------------------------------------------------------------------

local emr_core = core.emr

local function unknown_operation(operation)
  return errors.new{ code = "validation", aws_code = "ValidationException", retryable = false,
                     message = fmt("unknown emr-containers operation %q", tostring(operation)),
                     operation = operation }
end

-- validate.check(operation, params) --> true | nil, err
-- err.field is the first problem's path; err.problems lists { path =, message = }.
function M.check(operation, params)
  if type(operation) ~= "string" or not operations[operation] then
    return nil, unknown_operation(operation)
  end
  local ok, problems, message = emr_core.check(operation, params)
  if ok then return true end
  return nil, M.error_of(operation, problems, message)
end

-- The validation error for the C core's problems list and message.
function M.error_of(operation, problems, message)
  return errors.new{
    code = "validation", aws_code = "ValidationException", retryable = false,
    message = message, field = problems[1].path, problems = problems, operation = operation,
  }
end

------------------------------------------------------------------------------
-- Wire conversion
------------------------------------------------------------------------------

local function iso8601(v)
  if type(v) == "string" then return v end
  local secs = math.floor(v)
  local frac = v - secs
  local s = time.format_iso(secs * 1000, "seconds")
  -- beyond the dates time knows (or not a number): sent as given; the service refuses it
  if not s then return tostring(v) end
  if frac > 0 then
    local us = math.floor(frac * 1e6 + 0.5)
    if us >= 1000000 then us = 999999 end
    return fmt("%s.%06dZ", s:sub(1, -2), us)
  end
  return s
end
M.iso8601 = iso8601

local wire_value

local function wire_structure(shape, v)
  local out = {}
  local idx = index[shape]
  for k, val in pairs(v) do
    local entry = idx.by_pascal[k]
    if entry and val ~= null then
      out[entry.name] = wire_value(entry.shape, val)
    end
  end
  return json.object(out)
end

function wire_value(shape, v)
  local t = shape.type
  if t == "structure" then return wire_structure(shape, v)
  elseif t == "list" then
    local member = shapes[shape.member]
    local out = {}
    for i = 1, #v do out[i] = wire_value(member, v[i]) end
    return json.array(out)
  elseif t == "map" then
    local vshape = shapes[shape.value]
    local out = {}
    local vt = vshape.type
    for k, val in pairs(v) do
      if vt == "structure" or vt == "list" or vt == "map" or vt == "timestamp" then
        out[k] = wire_value(vshape, val)
      else
        out[k] = val
      end
    end
    return json.object(out)
  elseif t == "timestamp" then
    return iso8601(v)
  elseif (t == "integer" or t == "long") and mtype(v) == "float" then
    return math.tointeger(v) or v
  end
  return v
end

-- Percent-encoding with the unreserved set left bare (RFC 3986).
local function escape_byte(c) return fmt("%%%02X", c:byte()) end
local function uri_escape(s) return (s:gsub("[^%w%-%._~]", escape_byte)) end
local function uri_escape_greedy(s) return (s:gsub("[^%w%-%._~/]", escape_byte)) end
M.uri_escape = uri_escape

local function scalar_text(shape, v)
  local t = shape.type
  if t == "timestamp" then return iso8601(v) end
  if t == "boolean" then return v and "true" or "false" end
  if (t == "integer" or t == "long") and mtype(v) == "float" then return tostring(math.tointeger(v) or v) end
  return tostring(v)
end

-- Per-operation request plans: the URI template split into literal parts and
-- labels, and the members by location.
local plans = {}

local function plan_of(operation)
  local plan = plans[operation]
  if plan then return plan end
  local op = operations[operation]
  if not op then return nil end
  local path, fixed_query = op.uri, nil
  local qpos = path:find("?", 1, true)
  if qpos then path, fixed_query = path:sub(1, qpos - 1), path:sub(qpos + 1) end
  local shape = op.input and shapes[op.input]
  local labels = {}
  local members = shape and index[shape].list or {}
  for _, entry in ipairs(members) do
    if entry.location == "uri" then labels[entry.location_name] = entry end
  end
  -- parts: literal strings, and { entry, greedy } for labels
  local parts, pos = {}, 1
  while true do
    local a, b, name, plus = path:find("{([%w_]+)(%+?)}", pos)
    if not a then break end
    if a > pos then parts[#parts + 1] = path:sub(pos, a - 1) end
    local entry = labels[name]
    if not entry then error("BUG: " .. operation .. ": URI label {" .. name .. "} has no member") end
    parts[#parts + 1] = { entry = entry, greedy = plus == "+" }
    pos = b + 1
  end
  if pos <= #path then parts[#parts + 1] = path:sub(pos) end
  local query, headers, body = {}, {}, {}
  for _, entry in ipairs(members) do
    local loc = entry.location
    if loc == "querystring" then
      query[#query + 1] = { entry = entry, name = uri_escape(entry.location_name) }
    elseif loc == "header" or loc == "headers" then
      headers[#headers + 1] = entry
    elseif loc ~= "uri" then
      body[#body + 1] = entry
    end
  end
  plan = { method = op.method, parts = parts, fixed_query = fixed_query ~= "" and fixed_query or nil,
           query = query, headers = headers, body = body }
  plans[operation] = plan
  return plan
end

local function escape_fast(s, greedy)
  if greedy then
    if not s:find("[^%w%-%._~/]") then return s end
    return uri_escape_greedy(s)
  end
  if not s:find("[^%w%-%._~]") then return s end
  return uri_escape(s)
end

-- validate.to_wire(operation, params) --> { method =, path =, query =, headers =, body = }
-- `query` is the encoded query string ("" when none); `body` is a camelCase
-- table (nil when the operation sends no body); `headers` ordered pairs.
-- Parameters are assumed valid (validate.check first).
function M.to_wire(operation, params)
  local plan = plan_of(operation)
  if not plan then error("unknown emr-containers operation " .. tostring(operation), 2) end
  params = params or {}
  local path
  local parts = plan.parts
  if #parts == 1 and type(parts[1]) == "string" then
    path = parts[1]
  else
    local out = {}
    for i = 1, #parts do
      local part = parts[i]
      if type(part) == "string" then
        out[i] = part
      else
        local v = params[part.entry.pascal]
        out[i] = (v ~= nil and v ~= null) and escape_fast(scalar_text(part.entry.shape, v), part.greedy) or ""
      end
    end
    path = concat(out)
  end
  local query = ""
  if #plan.query > 0 or plan.fixed_query then
    local q = {}
    if plan.fixed_query then q[1] = plan.fixed_query end
    for _, item in ipairs(plan.query) do
      local entry = item.entry
      local v = params[entry.pascal]
      if v ~= nil and v ~= null then
        local st = entry.shape.type
        if st == "list" then
          local member = shapes[entry.shape.member]
          for i = 1, #v do q[#q + 1] = item.name .. "=" .. escape_fast(scalar_text(member, v[i])) end
        elseif st == "map" then
          local keys = {}
          for k in pairs(v) do keys[#keys + 1] = k end
          sort(keys)
          for _, k in ipairs(keys) do q[#q + 1] = escape_fast(k) .. "=" .. escape_fast(tostring(v[k])) end
        else
          q[#q + 1] = item.name .. "=" .. escape_fast(scalar_text(entry.shape, v))
        end
      end
    end
    query = concat(q, "&")
  end
  local headers = {}
  for _, entry in ipairs(plan.headers) do
    local v = params[entry.pascal]
    if v ~= nil and v ~= null then
      if entry.location == "header" then
        headers[#headers + 1] = { entry.location_name, scalar_text(entry.shape, v) }
      else
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        sort(keys)
        for _, k in ipairs(keys) do headers[#headers + 1] = { entry.location_name .. k, tostring(v[k]) } end
      end
    end
  end
  local body
  for _, entry in ipairs(plan.body) do
    local v = params[entry.pascal]
    if v ~= nil and v ~= null then
      body = body or json.object({})
      body[entry.name] = wire_value(entry.shape, v)
    end
  end
  return { method = plan.method, path = path, query = query, headers = headers, body = body,
           has_body_members = #plan.body > 0 }
end

------------------------------------------------------------------------------
-- Results: camelCase wire -> PascalCase
------------------------------------------------------------------------------

-- Each output shape gets a converter generated once, as straight-line Lua: a
-- table constructor sized for the shape's members, one lookup per member, and
-- a pass for members newer than the model (renamed, value untouched). Lists
-- and maps of scalars are shared with the input document, not copied.
local converters = {}
local converter_of

local function needs_conversion(shape)
  local t = shape.type
  if t == "structure" then return true end
  if t == "list" then return needs_conversion(shapes[shape.member]) end
  if t == "map" then return needs_conversion(shapes[shape.value]) end
  return false
end

local function lua_string(s) return fmt("%q", s) end

local function generate(name, shape)
  local t = shape.type
  local src = {}
  local deps = {}
  local function dep(dname)
    for i, d in ipairs(deps) do if d == dname then return "c" .. i end end
    deps[#deps + 1] = dname
    return "c" .. #deps
  end
  if t == "structure" then
    local members = index[shape].list
    local ctor = {}
    for _, e in ipairs(members) do ctor[#ctor + 1] = "[" .. lua_string(e.pascal) .. "] = nil" end
    src[#src + 1] = "return function(v)"
    src[#src + 1] = "  if type(v) ~= 'table' then return v end"
    src[#src + 1] = "  local out = { " .. concat(ctor, ", ") .. " }"
    src[#src + 1] = "  local n, x = 0, nil"
    for _, e in ipairs(members) do
      local conv = needs_conversion(e.shape) and dep(e.shape_name) or nil
      src[#src + 1] = fmt("  x = v[%s]; if x ~= nil then n = n + 1; out[%s] = %s end", lua_string(e.name),
                          lua_string(e.pascal), conv and (conv .. "(x)") or "x")
    end
    src[#src + 1] = "  local total = 0"
    src[#src + 1] = "  for _ in next, v do total = total + 1 end"
    src[#src + 1] = "  if total > n then"
    src[#src + 1] = "    for k, val in next, v do"
    src[#src + 1] = "      if type(k) == 'string' and by_wire[k] == nil then out[pascal(k)] = val end"
    src[#src + 1] = "    end"
    src[#src + 1] = "  end"
    src[#src + 1] = "  if next(out) == nil then return object(out) end"
    src[#src + 1] = "  return out"
    src[#src + 1] = "end"
  elseif t == "list" then
    local conv = dep(shape.member)
    src[#src + 1] = "return function(v)"
    src[#src + 1] = "  if type(v) ~= 'table' then return v end"
    src[#src + 1] = "  local out = {}"
    src[#src + 1] = "  for i = 1, #v do out[i] = " .. conv .. "(v[i]) end"
    src[#src + 1] = "  return array(out)"
    src[#src + 1] = "end"
  else -- map
    local conv = dep(shape.value)
    src[#src + 1] = "return function(v)"
    src[#src + 1] = "  if type(v) ~= 'table' then return v end"
    src[#src + 1] = "  local out = {}"
    src[#src + 1] = "  for k, val in next, v do out[k] = " .. conv .. "(val) end"
    src[#src + 1] = "  return object(out)"
    src[#src + 1] = "end"
  end
  -- dependencies are looked up lazily (shapes can be recursive: Configuration)
  local header = { "local type, next, object, array, pascal, by_wire, get = ..." }
  for i, d in ipairs(deps) do
    header[#header + 1] = fmt("local c%d = function(x) local f = get(%s); c%d = f; return f(x) end",
                              i, lua_string(d), i)
  end
  local code = concat(header, "\n") .. "\n" .. concat(src, "\n")
  local chunk = assert(load(code, "=emrflow.emr.from_wire:" .. name, "t", {}))
  local by_wire = t == "structure" and index[shape].by_wire or nil
  return chunk(type, next, json.object, json.array, pascal, by_wire, converter_of)
end

function converter_of(name)
  local f = converters[name]
  if not f then
    local shape = shapes[name]
    if not shape then error("unknown shape " .. tostring(name), 2) end
    if needs_conversion(shape) then
      f = generate(name, shape)
    else
      f = function(v) return v end
    end
    converters[name] = f
  end
  return f
end

-- validate.from_wire(operation, body_table) --> PascalCase result table (new
-- tables for structures; lists and maps of scalars are shared with `body`)
function M.from_wire(operation, body)
  local op = operations[operation]
  if not op then error("unknown emr-containers operation " .. tostring(operation), 2) end
  if type(body) ~= "table" or not op.output then return json.object({}) end
  return converter_of(op.output)(body)
end

-- Convert a value of a named shape (for callers that hold a sub-document).
function M.from_wire_shape(shape_name, v)
  if not shapes[shape_name] then error("unknown shape " .. tostring(shape_name), 2) end
  return converter_of(shape_name)(v)
end

function M.to_wire_shape(shape_name, v)
  local shape = shapes[shape_name]
  if not shape then error("unknown shape " .. tostring(shape_name), 2) end
  return wire_value(shape, v)
end

return M
