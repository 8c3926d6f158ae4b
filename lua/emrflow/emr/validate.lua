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
local core = require "emrflow.core"
local errors = require "emrflow.errors"
local model = require "emrflow.emr.model"

local M = {}

local shapes, operations = model.shapes, model.operations
local fmt, concat, sort = string.format, table.concat, table.sort
local mtype = math.type
local null = json.null

------------------------------------------------------------------------------
-- A small regular-expression engine for the model's (Java) patterns.
-- Supported: literals, escapes (\d \D \w \W \s \S \uXXXX \t \n \r and escaped
-- punctuation), classes with ranges, `.`, groups (capturing, (?:...)),
-- lookahead (?=...) (?!...), alternation, * + ? {n} {n,} {n,m}, ^ and $.
-- Matching is over Unicode code points and always of the whole value (AWS
-- validates the entire member against the pattern). `.` also matches line
-- breaks, so multi-line values (SQL, Spark parameters) are not rejected on
-- the client; the service remains the judge.
------------------------------------------------------------------------------

local CLASS_D = { { 48, 57 } }
local CLASS_W = { { 48, 57 }, { 65, 90 }, { 95, 95 }, { 97, 122 } }
local CLASS_S = { { 9, 13 }, { 32, 32 } }

local function in_ranges(ranges, cp)
  for i = 1, #ranges do
    local r = ranges[i]
    if cp >= r[1] and cp <= r[2] then return true end
  end
  return false
end

-- A class: { ranges = {{lo,hi},...}, subs = { {ranges, negated}, ... }, negated = bool }
local function class_test(cls, cp)
  local hit = in_ranges(cls.ranges, cp)
  if not hit then
    for _, sub in ipairs(cls.subs) do
      if in_ranges(sub[1], cp) ~= sub[2] then hit = true; break end
    end
  end
  if cls.negated then return not hit end
  return hit
end

local function parse_regex(src)
  local pos, len = 1, #src
  local function perr(msg) error(fmt("bad pattern %q at %d: %s", src, pos, msg), 0) end
  local function peek() return src:sub(pos, pos) end

  -- An escape after the backslash: returns kind, value
  -- ("cp", codepoint) or ("class", ranges, negated)
  local function escape()
    local c = src:sub(pos, pos)
    pos = pos + 1
    if c == "" then perr("trailing backslash") end
    if c == "d" then return "class", CLASS_D, false end
    if c == "D" then return "class", CLASS_D, true end
    if c == "w" then return "class", CLASS_W, false end
    if c == "W" then return "class", CLASS_W, true end
    if c == "s" then return "class", CLASS_S, false end
    if c == "S" then return "class", CLASS_S, true end
    if c == "t" then return "cp", 9 end
    if c == "n" then return "cp", 10 end
    if c == "r" then return "cp", 13 end
    if c == "f" then return "cp", 12 end
    if c == "u" then
      local hex = src:sub(pos, pos + 3)
      if not hex:match("^%x%x%x%x$") then perr("bad \\u escape") end
      pos = pos + 4
      return "cp", tonumber(hex, 16)
    end
    if c:match("%w") then perr("unsupported escape \\" .. c) end
    return "cp", c:byte()
  end

  local function next_cp()
    local cp, n = utf8.codepoint(src, pos), #utf8.char(utf8.codepoint(src, pos))
    pos = pos + n
    return cp
  end

  local function parse_class()
    -- at the char after '['
    local cls = { ranges = {}, subs = {}, negated = false }
    if peek() == "^" then cls.negated = true; pos = pos + 1 end
    local first = true
    while true do
      local c = peek()
      if c == "" then perr("unterminated class") end
      if c == "]" and not first then pos = pos + 1; break end
      first = false
      local lo
      if c == "\\" then
        pos = pos + 1
        local kind, v, neg = escape()
        if kind == "class" then
          cls.subs[#cls.subs + 1] = { v, neg }
        else
          lo = v
        end
      elseif c == "[" then
        perr("nested classes are not supported")
      else
        lo = next_cp()
      end
      if lo then
        local hi = lo
        if peek() == "-" and src:sub(pos + 1, pos + 1) ~= "]" and src:sub(pos + 1, pos + 1) ~= "" then
          pos = pos + 1
          if peek() == "\\" then
            pos = pos + 1
            local kind, v = escape()
            if kind ~= "cp" then perr("bad range end") end
            hi = v
          else
            hi = next_cp()
          end
          if hi < lo then perr("reversed range") end
        end
        cls.ranges[#cls.ranges + 1] = { lo, hi }
      end
    end
    return { t = "class", cls = cls }
  end

  local parse_alt

  local function parse_atom()
    local c = peek()
    if c == "(" then
      pos = pos + 1
      local kind = "group"
      if src:sub(pos, pos + 1) == "?:" then pos = pos + 2
      elseif src:sub(pos, pos + 1) == "?=" then pos = pos + 2; kind = "look"
      elseif src:sub(pos, pos + 1) == "?!" then pos = pos + 2; kind = "nlook"
      elseif c == "(" and peek() == "?" then perr("unsupported group kind") end
      local node = parse_alt()
      if peek() ~= ")" then perr("missing )") end
      pos = pos + 1
      return { t = kind, node = node }
    elseif c == "[" then
      pos = pos + 1
      return parse_class()
    elseif c == "." then
      pos = pos + 1
      return { t = "any" }
    elseif c == "^" then
      pos = pos + 1
      return { t = "bol" }
    elseif c == "$" then
      pos = pos + 1
      return { t = "eol" }
    elseif c == "\\" then
      pos = pos + 1
      local kind, v, neg = escape()
      if kind == "class" then
        return { t = "class", cls = { ranges = {}, subs = { { v, neg } }, negated = false } }
      end
      return { t = "class", cls = { ranges = { { v, v } }, subs = {}, negated = false }, lit = v }
    else
      local cp = next_cp()
      return { t = "class", cls = { ranges = { { cp, cp } }, subs = {}, negated = false }, lit = cp }
    end
  end

  local function parse_seq()
    local items = {}
    while pos <= len do
      local c = peek()
      if c == "|" or c == ")" then break end
      if c == "*" or c == "+" or c == "?" or c == "{" then perr("nothing to repeat") end
      local atom = parse_atom()
      local q = peek()
      local min, max
      if q == "*" then min, max = 0, math.huge
      elseif q == "+" then min, max = 1, math.huge
      elseif q == "?" then min, max = 0, 1
      elseif q == "{" then
        local a, b, e = src:match("^{(%d+)(,?%d*)}()", pos)
        if not a then perr("bad {} quantifier") end
        min = tonumber(a)
        if b == "" then max = min elseif b == "," then max = math.huge else max = tonumber(b:sub(2)) end
        pos = e - 1
      end
      if min then
        pos = pos + 1
        if peek() == "?" or peek() == "+" then perr("lazy/possessive quantifiers are not supported") end
        atom = { t = "rep", node = atom, min = min, max = max }
      end
      items[#items + 1] = atom
    end
    return { t = "seq", items = items }
  end

  function parse_alt()
    local branches = { parse_seq() }
    while peek() == "|" do
      pos = pos + 1
      branches[#branches + 1] = parse_seq()
    end
    if #branches == 1 then return branches[1] end
    return { t = "alt", branches = branches }
  end

  local ast = parse_alt()
  if pos <= len then perr("unexpected " .. peek()) end
  return ast
end

-- Compile an AST node to m(s, n, i, k): s = code points, n = #s, k = continuation.
local compile_node

local function single_test(node)
  if node.t == "any" then return function() return true end end
  if node.t == "class" then
    local cls = node.cls
    return function(cp) return class_test(cls, cp) end
  end
  return nil
end

function compile_node(node)
  local t = node.t
  if t == "seq" then
    local ms = {}
    for i, item in ipairs(node.items) do ms[i] = compile_node(item) end
    local count = #ms
    if count == 0 then return function(_, _, i, k) return k(i) end end
    local function run(j, s, n, i, k)
      if j > count then return k(i) end
      return ms[j](s, n, i, function(i2) return run(j + 1, s, n, i2, k) end)
    end
    return function(s, n, i, k) return run(1, s, n, i, k) end
  elseif t == "alt" then
    local ms = {}
    for i, b in ipairs(node.branches) do ms[i] = compile_node(b) end
    return function(s, n, i, k)
      for j = 1, #ms do
        if ms[j](s, n, i, k) then return true end
      end
      return false
    end
  elseif t == "group" then
    return compile_node(node.node)
  elseif t == "look" or t == "nlook" then
    local m = compile_node(node.node)
    local want = t == "look"
    local function accept() return true end
    return function(s, n, i, k)
      if m(s, n, i, accept) == want then return k(i) end
      return false
    end
  elseif t == "bol" then
    return function(_, _, i, k) if i == 1 then return k(i) end return false end
  elseif t == "eol" then
    return function(_, n, i, k) if i == n + 1 then return k(i) end return false end
  elseif t == "any" or t == "class" then
    local test = single_test(node)
    return function(s, n, i, k)
      if i <= n and test(s[i]) then return k(i + 1) end
      return false
    end
  elseif t == "rep" then
    local min, max = node.min, node.max
    local test = single_test(node.node)
    if test then
      -- greedy over single code points: take as many as allowed, then give back
      return function(s, n, i, k)
        local j = i
        while j <= n and (j - i) < max and test(s[j]) do j = j + 1 end
        while j - i >= min do
          if k(j) then return true end
          j = j - 1
        end
        return false
      end
    end
    local m = compile_node(node.node)
    local function try(s, n, i, k, count)
      if count < max then
        local ok = m(s, n, i, function(i2)
          if i2 == i then return false end   -- empty iteration: stop looping
          return try(s, n, i2, k, count + 1)
        end)
        if ok then return true end
      end
      if count >= min then return k(i) end
      return false
    end
    return function(s, n, i, k) return try(s, n, i, k, 0) end
  end
  error("BUG: regex node " .. tostring(t))
end

-- Lua-pattern translation for the simple (and common) patterns: a sequence
-- of single ASCII classes with simple quantifiers, no groups.
local LUA_MAGIC = "^$()%.[]*+-?"

local function lua_char(cp, in_set)
  if cp < 32 or cp > 126 then return nil end
  local c = string.char(cp)
  if c:match("%w") then return c end
  if in_set then
    if c == "]" or c == "%" or c == "-" or c == "^" then return "%" .. c end
    return c
  end
  if LUA_MAGIC:find(c, 1, true) then return "%" .. c end
  return c
end

local function lua_set_item(lo, hi)
  if lo == hi then return lua_char(lo, true) end
  local a, b = lua_char(lo, true), lua_char(hi, true)
  if not a or not b or #a > 1 or #b > 1 then return nil end
  return a .. "-" .. b
end

local SUB_LUA = {
  [CLASS_D] = { "%d", "%D" }, [CLASS_S] = { "%s", "%S" },
}

local function lua_class(node)
  if node.t == "any" then return "." end
  local cls = node.cls
  if node.lit then return lua_char(node.lit, false) end
  if #cls.ranges == 0 and #cls.subs == 1 and not cls.negated then
    local sub = cls.subs[1]
    if SUB_LUA[sub[1]] then return SUB_LUA[sub[1]][sub[2] and 2 or 1] end
    if sub[1] == CLASS_W and not sub[2] then return "[%w_]" end
    return nil
  end
  local parts = { "[" }
  if cls.negated then return nil end
  for _, r in ipairs(cls.ranges) do
    local item = lua_set_item(r[1], r[2])
    if not item then return nil end
    parts[#parts + 1] = item
  end
  for _, sub in ipairs(cls.subs) do
    if sub[2] then return nil end
    if sub[1] == CLASS_D then parts[#parts + 1] = "%d"
    elseif sub[1] == CLASS_S then parts[#parts + 1] = "%s"
    elseif sub[1] == CLASS_W then parts[#parts + 1] = "%w_"
    else return nil end
  end
  parts[#parts + 1] = "]"
  return concat(parts)
end

local function to_lua_pattern(ast)
  if ast.t ~= "seq" then return nil end
  local out = { "^" }
  for idx, item in ipairs(ast.items) do
    if item.t == "bol" then
      if idx ~= 1 then return nil end
    elseif item.t == "eol" then
      if idx ~= #ast.items then return nil end
    else
      local node, q = item, ""
      if item.t == "rep" then
        node = item.node
        if item.min == 0 and item.max == math.huge then q = "*"
        elseif item.min == 1 and item.max == math.huge then q = "+"
        elseif item.min == 0 and item.max == 1 then q = "?"
        else return nil end
      end
      if node.t ~= "class" and node.t ~= "any" then return nil end
      -- Non-ASCII input must not meet a negated Lua class byte by byte.
      local c = lua_class(node)
      if not c then return nil end
      out[#out + 1] = c .. q
    end
  end
  out[#out + 1] = "$"
  return concat(out)
end

local regex_cache = {}

-- validate.regex(pattern) --> function(value) --> boolean (whole value)
function M.regex(pattern)
  local m = regex_cache[pattern]
  if m then return m end
  local ast = parse_regex(pattern)
  local lp = to_lua_pattern(ast)
  local engine = compile_node(ast)
  local function final_k(n) return function(i) return i == n + 1 end end
  local function slow(value)
    local s, n = {}, 0
    for _, cp in utf8.codes(value) do n = n + 1; s[n] = cp end
    return engine(s, n, 1, final_k(n)) == true
  end
  if lp then
    -- Lua patterns see bytes: fine for ASCII values. For other values the
    -- code-point engine decides (a multi-byte character is one \S, not three).
    m = function(value)
      if not value:find("[\128-\255]") then return value:find(lp) ~= nil end
      return slow(value)
    end
  else
    m = slow
  end
  regex_cache[pattern] = m
  return m
end

------------------------------------------------------------------------------
-- Model indexes
------------------------------------------------------------------------------

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

local function match(pattern, s)
  return M.regex(pattern)(s)
end

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
  local ok, problems, message = emr_core.check(operation, params, match)
  if ok then return true end
  return nil, errors.new{
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
  local s = os.date("!%Y-%m-%dT%H:%M:%S", secs)
  if frac > 0 then
    local us = math.floor(frac * 1e6 + 0.5)
    if us >= 1000000 then us = 999999 end
    return fmt("%s.%06dZ", s, us)
  end
  return s .. "Z"
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
