-- emrflow.asl.jsonpath: JSONPath as AWS Step Functions evaluates it (Jayway flavour).
--
-- A path starts at one of three roots:
--   "$"       the value given to get/query (the state input, or the result for ResultSelector)
--   "$$"      the context object, env.context
--   "$name"   the workflow variable env.vars[name] (name: letter or "_", then letters, digits, "_")
-- and continues with segments:
--   .name  ['name']  ["name"]  [0]  [-1]                  (reference-path segments)
--   .*  [*]  [1:5]  [-1:]  [::2]  [0,2]  ['a','b']  ..name  ..*  ..[0]
--   [?(@.x > 1 && @.y == 'a')]  [?(@.x)]  [?(!(@.x < 2))]  (filters: == != < <= > >= =~ in nin
--                                 subsetof anyof noneof size empty; literals, @ and $ paths)
--   .length()  (a trailing function: length of an array, string or object)
-- Inside ['...'] a backslash escapes the quote and a backslash; other backslashes are literal.
--
--   jsonpath.compile(text)              --> compiled | nil, message   (memoized by text)
--   jsonpath.get(p, value [, env])      --> value | nil, err
--       p is a compiled path or its text.  A definite path yields its single node; a path with
--       a wildcard, slice, union, filter or ".." yields a json.array of every match (maybe
--       empty).  A definite path that matches nothing gives err = { Error = "States.Runtime",
--       Cause = "Invalid path '<text>' : No results for path: $['a']['b']" } (AWS's text for
--       InputPath/OutputPath/ItemsPath).  JSON null is json.null; a missing node is nil.
--   jsonpath.query(p, value [, env])    --> json.array of all matches | nil, err
--   jsonpath.set(p, target, v)          --> new_target | nil, err
--       ResultPath: p is a reference path on "$".  Returns a copy of target with v placed at p;
--       the containers along p are copied (target itself is never modified), missing objects
--       on the way are created.  A segment that meets a non-object (or a non-array, or an index
--       out of range) gives States.ResultPathMatchFailure "Unable to apply ReferencePath <p> to
--       input <json>".
--   jsonpath.is_reference(text)         --> boolean  (only names and indexes; any root)
--   jsonpath.is_definite(p)             --> boolean
--   jsonpath.not_found_cause(text, field, input)
--       --> "The JSONPath '<text>' specified for the field '<field>' could not be found in the
--            input '<compact json of input>'"   (AWS's text for payload templates, ErrorPath...)
--   jsonpath.kind(v)  --> "null" | "boolean" | "number" | "string" | "array" | "object" | nil
--   jsonpath.deep_equal(a, b) --> boolean (numbers by value, objects regardless of key order)
--
-- A compiled path is a table { text, root = "$" | "$$" | "var", var = name, definite,
-- reference, eval = function(value, env) --> value | nil, err }.
local json = require "emrflow.json"
local errors = require "emrflow.asl.errors"
local regex = require "emrflow.regex"
local paths = require "emrflow.asl.paths"

local M = {}

local null = json.null
local is_array_marked, is_object_marked = json.is_array, json.is_object
local type, tostring, tonumber, ipairs, next = type, tostring, tonumber, ipairs, next
local sfind, ssub, sformat = string.find, string.sub, string.format

---------------------------------------------------------------------------------------------
-- Value kinds
---------------------------------------------------------------------------------------------

local function kind(v)
  local t = type(v)
  if t == "table" then
    if is_array_marked(v) then return "array" end
    if is_object_marked(v) then return "object" end
    if v[1] ~= nil then return "array" end
    return "object"
  elseif t == "string" or t == "number" or t == "boolean" then
    return t
  elseif v == null then
    return "null"
  elseif v == nil then
    return nil
  end
  return t
end
M.kind = kind

local function deep_equal(a, b)
  if a == b then return true end
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then return false end
  if ka == "array" then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not deep_equal(a[i], b[i]) then return false end
    end
    return true
  elseif ka == "object" then
    for k, v in next, a do
      if not deep_equal(v, b[k]) then return false end
    end
    for k in next, b do
      if a[k] == nil then return false end
    end
    return true
  end
  return false
end
M.deep_equal = deep_equal

local function encode(v)
  local ok, text = pcall(json.encode, v)
  if ok then return text end
  local t = type(v)
  if t == "table" or t == "function" or t == "userdata" or t == "thread" then
    return "<a Lua " .. t .. ", not JSON>"
  end
  return tostring(v)
end

---------------------------------------------------------------------------------------------
-- Parsing
---------------------------------------------------------------------------------------------
-- Segment kinds: { k = "name", name = s } { k = "index", i = n } { k = "names", list }
-- { k = "indexes", list } { k = "wild" } { k = "slice", from, to, step } { k = "filter", pred }
-- { k = "scan", seg = <segment> } { k = "fn", name = "length" }

local parse_filter -- forward

local function perr(text, pos, msg)
  return nil, sformat("invalid JSONPath '%s' at position %d: %s", text, pos, msg)
end

-- Reads a quoted string starting at s[i] (the quote).  Returns value, next index.
local function read_quoted(s, i)
  local q = ssub(s, i, i)
  local buf, j, n = {}, i + 1, #s
  while j <= n do
    local c = ssub(s, j, j)
    if c == "\\" then
      local d = ssub(s, j + 1, j + 1)
      if d == q or d == "\\" then
        buf[#buf + 1] = d
        j = j + 2
      else
        buf[#buf + 1] = c
        j = j + 1
      end
    elseif c == q then
      return table.concat(buf), j + 1
    else
      buf[#buf + 1] = c
      j = j + 1
    end
  end
  return nil, j
end

local function skip_ws(s, i)
  local _, e = sfind(s, "^%s*", i)
  return e + 1
end

local function parse_int(str)
  if not sfind(str, "^%s*%-?%d+%s*$") then return nil end
  return math.tointeger(tonumber(str))
end

-- Parses a bracket segment; s[i] == "[".  Returns segment, next index | nil, message.
local function parse_bracket(text, s, i)
  local j = skip_ws(s, i + 1)
  local c = ssub(s, j, j)
  if c == "'" or c == '"' then
    local names = {}
    while true do
      local v, nj = read_quoted(s, j)
      if not v then return perr(text, j, "unterminated quoted name") end
      names[#names + 1] = v
      j = skip_ws(s, nj)
      c = ssub(s, j, j)
      if c == "]" then break end
      if c ~= "," then return perr(text, j, "expected ',' or ']' after a quoted name") end
      j = skip_ws(s, j + 1)
      c = ssub(s, j, j)
      if c ~= "'" and c ~= '"' then return perr(text, j, "expected a quoted name") end
    end
    if #names == 1 then return { k = "name", name = names[1] }, j + 1 end
    return { k = "names", list = names }, j + 1
  elseif c == "*" then
    j = skip_ws(s, j + 1)
    if ssub(s, j, j) ~= "]" then return perr(text, j, "expected ']' after '*'") end
    return { k = "wild" }, j + 1
  elseif c == "?" then
    j = skip_ws(s, j + 1)
    if ssub(s, j, j) ~= "(" then return perr(text, j, "expected '(' after '?'") end
    local pred, nj = parse_filter(text, s, j + 1)
    if not pred then return nil, nj end
    j = skip_ws(s, nj)
    if ssub(s, j, j) ~= ")" then return perr(text, j, "expected ')' to close the filter") end
    j = skip_ws(s, j + 1)
    if ssub(s, j, j) ~= "]" then return perr(text, j, "expected ']' after the filter") end
    return { k = "filter", pred = pred }, j + 1
  end
  local close = sfind(s, "]", j, true)
  if not close then return perr(text, i, "missing ']'") end
  local body = ssub(s, j, close - 1)
  if sfind(body, ":", 1, true) then
    local parts = {}
    for p in (body .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = p end
    if #parts > 3 then return perr(text, j, "bad slice '" .. body .. "'") end
    local vals = {}
    for n = 1, 3 do
      local p = parts[n]
      if p and not sfind(p, "^%s*$") then
        vals[n] = parse_int(p)
        if not vals[n] then return perr(text, j, "bad slice '" .. body .. "'") end
      end
    end
    if vals[3] == 0 then return perr(text, j, "slice step cannot be 0") end
    return { k = "slice", from = vals[1], to = vals[2], step = vals[3] or 1 }, close + 1
  end
  local list = {}
  for p in (body .. ","):gmatch("([^,]*),") do
    local n = parse_int(p)
    if not n then return perr(text, j, "bad array index '" .. body .. "'") end
    list[#list + 1] = n
  end
  if #list == 1 then return { k = "index", i = list[1] }, close + 1 end
  return { k = "indexes", list = list }, close + 1
end

-- Characters that end a dot-notation name.  In a filter, operators and ')' end it too.
local NAME_TOP = "^[^%.%[%(%s]+"
local NAME_FILTER = "^[^%.%[%(%)%s=!<>&|,~%]]+"

-- Parses segments from s[i] on.  Returns segs, next index | nil, message.
local function parse_segments(text, s, i, in_filter)
  local segs, n = {}, #s
  local name_pat = in_filter and NAME_FILTER or NAME_TOP
  while i <= n do
    local c = ssub(s, i, i)
    if c == "." then
      if ssub(s, i + 1, i + 1) == "." then
        local j = i + 2
        local d = ssub(s, j, j)
        local seg, nj
        if d == "*" then
          seg, nj = { k = "wild" }, j + 1
        elseif d == "[" then
          seg, nj = parse_bracket(text, s, j)
          if not seg then return nil, nj end
        else
          local _, e = sfind(s, name_pat, j)
          if not e then return perr(text, j, "expected a name after '..'") end
          seg, nj = { k = "name", name = ssub(s, j, e) }, e + 1
        end
        segs[#segs + 1] = { k = "scan", seg = seg }
        i = nj
      elseif ssub(s, i + 1, i + 1) == "*" then
        segs[#segs + 1] = { k = "wild" }
        i = i + 2
      elseif ssub(s, i + 1, i + 1) == "[" then
        -- Jayway accepts "$.['a']"
        i = i + 1
      else
        local _, e = sfind(s, name_pat, i + 1)
        if not e then return perr(text, i + 1, "expected a name after '.'") end
        local name = ssub(s, i + 1, e)
        if ssub(s, e + 1, e + 2) == "()" then
          if name ~= "length" and name ~= "size" then
            return perr(text, i + 1, "unsupported function '" .. name .. "()'")
          end
          segs[#segs + 1] = { k = "fn", name = "length" }
          i = e + 3
          if i <= n and not in_filter then return perr(text, i, "a function must end the path") end
        else
          segs[#segs + 1] = { k = "name", name = name }
          i = e + 1
        end
      end
    elseif c == "[" then
      local seg, nj = parse_bracket(text, s, i)
      if not seg then return nil, nj end
      segs[#segs + 1] = seg
      i = nj
    else
      if in_filter then break end
      return perr(text, i, "unexpected character '" .. c .. "'")
    end
  end
  return segs, i
end

local function is_definite_segs(segs)
  for idx, seg in ipairs(segs) do
    local k = seg.k
    if k == "wild" or k == "slice" or k == "filter" or k == "scan" or k == "indexes" then
      return false
    end
    if k == "names" and idx < #segs then return false end
  end
  return true
end

local function is_reference_segs(segs)
  for _, seg in ipairs(segs) do
    if seg.k ~= "name" and seg.k ~= "index" then return false end
  end
  return true
end

-- Parses the root.  Returns root, var, next index | nil, message.
local function parse_root(text, s, i)
  if ssub(s, i, i) == "@" then return "@", nil, i + 1 end
  if ssub(s, i, i) ~= "$" then return perr(text, i, "a path must start with '$'") end
  if ssub(s, i + 1, i + 1) == "$" then return "$$", nil, i + 2 end
  local _, e = sfind(s, "^[%a_][%w_]*", i + 1)
  if e then return "var", ssub(s, i + 1, e), e + 1 end
  return "$", nil, i + 1
end

---------------------------------------------------------------------------------------------
-- Filters
---------------------------------------------------------------------------------------------
-- A predicate is a function(node, root, env) --> boolean.  Operands evaluate to a value, or to
-- nil when a path does not exist.

local eval_segs -- forward: eval_segs(segs, value, env, out) appends matches to out

local function operand_path(root, var, segs)
  local definite = is_definite_segs(segs)
  return function(node, rootv, env)
    local start
    if root == "@" then start = node
    elseif root == "$" then start = rootv
    elseif root == "$$" then start = env and env.context
    else start = env and env.vars and env.vars[var] end
    if start == nil then return nil end
    local out = {}
    eval_segs(segs, start, env, out, 1)
    if definite then return out[1] end
    return json.array(out)
  end
end

local function compare(a, b)
  -- returns -1/0/1, or nil when the values are not comparable
  local ta, tb = type(a), type(b)
  if ta == "number" and tb == "string" then b = tonumber(b); tb = b and "number" end
  if ta == "string" and tb == "number" then a = tonumber(a); ta = a and "number" end
  if ta ~= tb or (ta ~= "number" and ta ~= "string") then return nil end
  if a < b then return -1 elseif a > b then return 1 else return 0 end
end

local function loose_equal(a, b)
  if a == nil or b == nil then return false end
  local ta, tb = type(a), type(b)
  if (ta == "number" and tb == "string") or (ta == "string" and tb == "number") then
    return compare(a, b) == 0
  end
  return deep_equal(a, b)
end

local function contains(list, v)
  if kind(list) ~= "array" then return false end
  for _, x in ipairs(list) do
    if loose_equal(x, v) then return true end
  end
  return false
end

local BINOPS = {
  ["=="] = loose_equal,
  ["!="] = function(a, b) return not loose_equal(a, b) end,
  ["<"] = function(a, b) return compare(a, b) == -1 end,
  ["<="] = function(a, b) local c = compare(a, b); return c == -1 or c == 0 end,
  [">"] = function(a, b) return compare(a, b) == 1 end,
  [">="] = function(a, b) local c = compare(a, b); return c == 1 or c == 0 end,
  ["in"] = function(a, b) return a ~= nil and contains(b, a) end,
  ["nin"] = function(a, b) return a ~= nil and not contains(b, a) end,
  ["subsetof"] = function(a, b)
    if kind(a) ~= "array" then return false end
    for _, x in ipairs(a) do if not contains(b, x) then return false end end
    return true
  end,
  ["anyof"] = function(a, b)
    if kind(a) ~= "array" then return false end
    for _, x in ipairs(a) do if contains(b, x) then return true end end
    return false
  end,
  ["noneof"] = function(a, b)
    if kind(a) ~= "array" then return false end
    for _, x in ipairs(a) do if contains(b, x) then return false end end
    return true
  end,
  ["contains"] = function(a, b)
    if type(a) == "string" and type(b) == "string" then return sfind(a, b, 1, true) ~= nil end
    return contains(a, b)
  end,
  ["size"] = function(a, b)
    local k = kind(a)
    if k == "array" or k == "string" then return #a == b end
    return false
  end,
  ["empty"] = function(a, b)
    local k = kind(a)
    local e
    if k == "array" or k == "string" then e = #a == 0
    elseif k == "object" then e = next(a) == nil
    else return false end
    return e == b
  end,
}

-- A filter's /regular expression/flags, compiled by emrflow.regex (linear time: no pattern
-- can make matching blow up). Returns the compiled regex, or nil and why.
local function compile_regex(re)
  local src, flags = re:match("^/(.*)/(%a*)$")
  if not src then return nil, "expected /pattern/flags" end
  local keep = {}
  for f in flags:gmatch(".") do
    if f ~= "i" and f ~= "m" and f ~= "s" then return nil, "unknown flag '" .. f .. "'" end
    keep[#keep + 1] = f
  end
  local ok, compiled = pcall(regex.compile, src, table.concat(keep))
  if not ok then return nil, tostring(compiled) end
  return compiled
end

local function parse_operand(text, s, i)
  i = skip_ws(s, i)
  local c = ssub(s, i, i)
  if c == "@" or c == "$" then
    local root, var, j = parse_root(text, s, i)
    if not root then return nil, var end
    local segs, nj = parse_segments(text, s, j, true)
    if not segs then return nil, nj end
    return { path = operand_path(root, var, segs) }, nj
  elseif c == "'" or c == '"' then
    local v, nj = read_quoted(s, i)
    if not v then return perr(text, i, "unterminated string") end
    return { value = v }, nj
  elseif c == "/" then
    local e = i + 1
    while e <= #s and ssub(s, e, e) ~= "/" do
      if ssub(s, e, e) == "\\" then e = e + 1 end
      e = e + 1
    end
    local _, fe = sfind(s, "^%a*", e + 1)
    local re = ssub(s, i, fe)
    local compiled, why = compile_regex(re)
    if not compiled then return perr(text, i, "invalid regular expression " .. re .. ": " .. why) end
    return { regex = compiled }, fe + 1
  elseif c == "[" then
    local close = sfind(s, "]", i, true)
    if not close then return perr(text, i, "missing ']'") end
    local ok, v = pcall(json.decode, (ssub(s, i, close):gsub("'", '"')))
    if not ok then return perr(text, i, "bad list literal") end
    return { value = v }, close + 1
  end
  local _, e = sfind(s, "^%-?%d+%.?%d*[eE]?[%-+]?%d*", i)
  if e then
    local v = tonumber(ssub(s, i, e))
    if v == nil then return perr(text, i, "bad number") end
    return { value = v }, e + 1
  end
  for word, v in pairs({ ["true"] = true, ["false"] = false, ["null"] = null }) do
    if ssub(s, i, i + #word - 1) == word then return { value = v }, i + #word end
  end
  return perr(text, i, "expected a value in the filter")
end

local function operand_fn(op)
  if op.path then return op.path end
  local v = op.value
  return function() return v end
end

local OPWORDS = { "subsetof", "contains", "noneof", "anyof", "empty", "size", "nin", "in" }

local function parse_comparison(text, s, i)
  local left, j = parse_operand(text, s, i)
  if not left then return nil, j end
  j = skip_ws(s, j)
  local op
  for _, sym in ipairs({ "==", "!=", "<=", ">=", "=~", "<", ">" }) do
    if ssub(s, j, j + #sym - 1) == sym then op = sym; break end
  end
  if not op then
    for _, w in ipairs(OPWORDS) do
      if ssub(s, j, j + #w - 1) == w and not sfind(ssub(s, j + #w, j + #w), "[%w_]") then op = w; break end
    end
  end
  local lf = operand_fn(left)
  if not op then
    -- existence test
    if not left.path then
      local v = left.value
      return function() return v == true end, j
    end
    return function(node, root, env) return lf(node, root, env) ~= nil end, j
  end
  local right, nj = parse_operand(text, s, j + #op)
  if not right then return nil, nj end
  if op == "=~" then
    local re = right.regex
    if not re then return perr(text, j, "'=~' needs a /regular expression/") end
    -- Jayway's =~ uses Matcher.matches(): the whole string must match
    return function(node, root, env)
      local v = lf(node, root, env)
      return type(v) == "string" and re:full_match(v)
    end, nj
  end
  local rf, f = operand_fn(right), BINOPS[op]
  return function(node, root, env)
    return f(lf(node, root, env), rf(node, root, env)) and true or false
  end, nj
end

local parse_or

local function parse_unary(text, s, i)
  i = skip_ws(s, i)
  if ssub(s, i, i) == "!" and ssub(s, i + 1, i + 1) ~= "=" then
    local p, j = parse_unary(text, s, i + 1)
    if not p then return nil, j end
    return function(...) return not p(...) end, j
  end
  if ssub(s, i, i) == "(" then
    local p, j = parse_or(text, s, i + 1)
    if not p then return nil, j end
    j = skip_ws(s, j)
    if ssub(s, j, j) ~= ")" then return perr(text, j, "expected ')'") end
    return p, j + 1
  end
  return parse_comparison(text, s, i)
end

local function parse_and(text, s, i)
  local p, j = parse_unary(text, s, i)
  if not p then return nil, j end
  while true do
    j = skip_ws(s, j)
    if ssub(s, j, j + 1) ~= "&&" then return p, j end
    local q, nj = parse_unary(text, s, j + 2)
    if not q then return nil, nj end
    local a = p
    p = function(...) return a(...) and q(...) end
    j = nj
  end
end

parse_or = function(text, s, i)
  local p, j = parse_and(text, s, i)
  if not p then return nil, j end
  while true do
    j = skip_ws(s, j)
    if ssub(s, j, j + 1) ~= "||" then return p, j end
    local q, nj = parse_and(text, s, j + 2)
    if not q then return nil, nj end
    local a = p
    p = function(...) return a(...) or q(...) end
    j = nj
  end
end

parse_filter = parse_or

---------------------------------------------------------------------------------------------
-- Evaluation
---------------------------------------------------------------------------------------------

local function children(v, out)
  local k = kind(v)
  if k == "array" then
    for i = 1, #v do out[#out + 1] = v[i] end
  elseif k == "object" then
    for _, key in ipairs(json.keys(v)) do out[#out + 1] = v[key] end
  end
  return out
end

local function slice_indexes(len, from, to, step)
  local res = {}
  if step > 0 then
    from = from or 0
    to = to or len
    if from < 0 then from = math.max(0, len + from) end
    if to < 0 then to = len + to end
    if to > len then to = len end
    for i = from, to - 1, step do res[#res + 1] = i end
  else
    from = from or len - 1
    to = to or -len - 1
    if from < 0 then from = len + from end
    if from >= len then from = len - 1 end
    if to < 0 then to = len + to end
    for i = from, to + 1, step do if i >= 0 then res[#res + 1] = i end end
  end
  return res
end

-- The root value of the filter ("$" inside [?()]) is kept in this upvalue during evaluation.
local filter_root

local function apply_seg(seg, v, env, out, is_leaf)
  local k = seg.k
  if k == "name" then
    if type(v) == "table" and kind(v) == "object" then
      local x = v[seg.name]
      if x ~= nil then out[#out + 1] = x end
    end
  elseif k == "index" then
    if type(v) == "table" and kind(v) == "array" then
      local i = seg.i
      if i < 0 then i = #v + i end
      local x = v[i + 1]
      if x ~= nil and i >= 0 then out[#out + 1] = x end
    end
  elseif k == "names" then
    if type(v) == "table" and kind(v) == "object" then
      if is_leaf then
        local merged = json.object({})
        for _, name in ipairs(seg.list) do
          if v[name] ~= nil then json.set(merged, name, v[name]) end
        end
        out[#out + 1] = merged
      else
        for _, name in ipairs(seg.list) do
          if v[name] ~= nil then out[#out + 1] = v[name] end
        end
      end
    end
  elseif k == "indexes" then
    if type(v) == "table" and kind(v) == "array" then
      for _, i in ipairs(seg.list) do
        if i < 0 then i = #v + i end
        if i >= 0 and v[i + 1] ~= nil then out[#out + 1] = v[i + 1] end
      end
    end
  elseif k == "wild" then
    children(v, out)
  elseif k == "slice" then
    if type(v) == "table" and kind(v) == "array" then
      for _, i in ipairs(slice_indexes(#v, seg.from, seg.to, seg.step)) do
        if v[i + 1] ~= nil then out[#out + 1] = v[i + 1] end
      end
    end
  elseif k == "filter" then
    local kv = kind(v)
    if kv == "array" then
      for i = 1, #v do
        if seg.pred(v[i], filter_root, env) then out[#out + 1] = v[i] end
      end
    elseif kv == "object" then
      if seg.pred(v, filter_root, env) then out[#out + 1] = v end
    end
  elseif k == "fn" then
    local kv = kind(v)
    if kv == "array" or kv == "string" then out[#out + 1] = #v
    elseif kv == "object" then out[#out + 1] = #json.keys(v) end
  elseif k == "scan" then
    local sub = seg.seg
    local function walk(node)
      if sub.k == "filter" then
        if kind(node) == "object" and sub.pred(node, filter_root, env) then out[#out + 1] = node end
      else
        apply_seg(sub, node, env, out, is_leaf)
      end
      local kn = kind(node)
      if kn == "array" or kn == "object" then
        for _, c in ipairs(children(node, {})) do walk(c) end
      end
    end
    walk(v)
  end
end

eval_segs = function(segs, value, env, out, _)
  local cur = { value }
  local n = #segs
  for idx = 1, n do
    local nxt = {}
    local seg = segs[idx]
    for _, v in ipairs(cur) do apply_seg(seg, v, env, nxt, idx == n) end
    cur = nxt
    if #cur == 0 then break end
  end
  for _, v in ipairs(cur) do out[#out + 1] = v end
  return out
end

-- Jayway's normalized form of a definite path, up to segment `upto`.
local function normalized(c, upto)
  local buf = { c.root == "var" and ("$" .. c.var) or c.root }
  for idx = 1, upto or #c.segs do
    local seg = c.segs[idx]
    if seg.k == "name" then buf[#buf + 1] = "['" .. seg.name .. "']"
    elseif seg.k == "index" then buf[#buf + 1] = "[" .. seg.i .. "]"
    elseif seg.k == "names" then
      local q = {}
      for _, nm in ipairs(seg.list) do q[#q + 1] = "'" .. nm .. "'" end
      buf[#buf + 1] = "[" .. table.concat(q, ",") .. "]"
    elseif seg.k == "fn" then buf[#buf + 1] = "." .. seg.name .. "()" end
  end
  return table.concat(buf)
end

-- Why a definite path found nothing, in Jayway's words.
local function not_found(c, start)
  local segs = c.segs
  local cur = start
  local detail
  if cur == nil then
    detail = "No results for path: " .. normalized(c)
  else
    for idx = 1, #segs do
      local out = {}
      apply_seg(segs[idx], cur, nil, out, idx == #segs)
      if out[1] == nil then
        if idx == #segs or segs[idx].k ~= "name" then
          detail = "No results for path: " .. normalized(c)
        else
          detail = "Missing property in path " .. normalized(c, idx)
        end
        break
      end
      cur = out[1]
    end
  end
  return { Error = errors.RUNTIME, Cause = sformat("Invalid path '%s' : %s", c.text, detail) }
end

local function root_value(c, value, env)
  local root = c.root
  if root == "$" then
    if value == nil and env then return env.input end
    return value
  elseif root == "$$" then
    return env and env.context
  end
  local vars = env and env.vars
  return vars and vars[c.var]
end

-- Builds the fast evaluator of a compiled path.
local function make_eval(c)
  local segs = c.segs
  local simple = true
  for _, seg in ipairs(segs) do
    if seg.k ~= "name" and seg.k ~= "index" then simple = false break end
  end
  if simple then
    local n = #segs
    local keys, negs = {}, {}
    for idx, seg in ipairs(segs) do
      if seg.k == "name" then keys[idx] = seg.name
      else
        if seg.i < 0 then negs[idx] = seg.i else keys[idx] = seg.i + 1 end
      end
    end
    -- A string key finds nothing in an array table, an integer key nothing in an object.
    -- The usual shapes, "$.a" and "$.a.b" on the input, get closures of their own.
    if c.root == "$" and n <= 2 and type(keys[1]) == "string" and (n == 1 or type(keys[2]) == "string") then
      local k1, k2 = keys[1], keys[2]
      if n == 1 then
        return function(value, env)
          if value == nil and env then value = env.input end
          local v
          if type(value) == "table" then v = value[k1] end
          if v == nil then return nil, not_found(c, value) end
          return v
        end
      end
      return function(value, env)
        if value == nil and env then value = env.input end
        local v
        if type(value) == "table" then v = value[k1] end
        if type(v) == "table" then v = v[k2] else v = nil end
        if v == nil then return nil, not_found(c, value) end
        return v
      end
    end
    return function(value, env)
      local cur = root_value(c, value, env)
      local start = cur
      for idx = 1, n do
        if type(cur) ~= "table" then cur = nil break end
        local key = keys[idx]
        if key then
          cur = cur[key]
        else
          local i = #cur + negs[idx]
          if i >= 0 then cur = cur[i + 1] else cur = nil end
        end
        if cur == nil then break end
      end
      if cur == nil then return nil, not_found(c, start) end
      return cur
    end
  end
  local definite = c.definite
  return function(value, env)
    local start = root_value(c, value, env)
    if start == nil then
      if definite then return nil, not_found(c, nil) end
      return json.array({})
    end
    local saved = filter_root
    filter_root = c.root == "$" and start or (env and env.input)
    local ok, out = pcall(eval_segs, segs, start, env, {})
    filter_root = saved
    if not ok then error(out, 0) end
    if definite then
      if out[1] == nil then return nil, not_found(c, start) end
      return out[1]
    end
    return json.array(out)
  end
end

local cache, cache_size = {}, 0

function M.compile(text)
  if type(text) ~= "string" then
    return nil, "a JSONPath must be a string, got " .. type(text)
  end
  local c = cache[text]
  if c then return c end
  local root, var, i = parse_root(text, text, 1)
  if not root then return nil, var end
  if root == "@" then return perr(text, 1, "a path must start with '$'") end
  local segs, j = parse_segments(text, text, i, false)
  if not segs then return nil, j end
  c = {
    text = text, root = root, var = var, segs = segs,
    definite = is_definite_segs(segs), reference = is_reference_segs(segs),
  }
  c.eval = make_eval(c)
  if cache_size >= 4096 then cache, cache_size = {}, 0 end
  cache[text] = c
  cache_size = cache_size + 1
  return c
end

local function compiled(p)
  if type(p) == "table" and p.eval then return p end
  local c, msg = M.compile(p)
  if not c then return nil, { Error = errors.RUNTIME, Cause = msg } end
  return c
end

function M.get(p, value, env)
  local c, err = compiled(p)
  if not c then return nil, err end
  return c.eval(value, env)
end

function M.query(p, value, env)
  local c, err = compiled(p)
  if not c then return nil, err end
  local start = root_value(c, value, env)
  if start == nil then return json.array({}) end
  local saved = filter_root
  filter_root = c.root == "$" and start or (env and env.input)
  local ok, out = pcall(eval_segs, c.segs, start, env, {})
  filter_root = saved
  if not ok then error(out, 0) end
  return json.array(out)
end

function M.is_reference(text)
  local c = type(text) == "table" and text or M.compile(text)
  return c ~= nil and c.reference
end

function M.is_definite(p)
  local c = compiled(p)
  return c ~= nil and c.definite
end

function M.not_found_cause(text, field, input)
  return sformat("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'",
    text, field, encode(input))
end

-- Shallow copies keeping the JSON shape and key order.
local function copy_object(o)
  local c = json.object({})
  for _, k in ipairs(json.keys(o)) do json.set(c, k, o[k]) end
  return c
end

-- ResultPath writing: the one path writer is emrflow.asl.paths; this keeps the
-- (value | nil, err) form for callers that want it.
function M.set(p, target, v)
  local c, err = compiled(p)
  if not c then return nil, err end
  if c.root ~= "$" or not c.reference then
    return nil, { Error = errors.RUNTIME,
      Cause = sformat("The ResultPath '%s' is not a valid reference path", c.text) }
  end
  local ok, out = pcall(paths.set, c.text, target, v)
  if not ok then
    if type(out) == "table" and out.Error == errors.RESULT_PATH_MATCH_FAILURE then
      out = { Error = out.Error, Cause = sformat("Unable to apply ReferencePath %s to input %s", c.text,
        encode(target)) }
    end
    return nil, out
  end
  return out
end

-- Exposed for the other ASL modules.
M.encode = encode
M.copy_object = copy_object
M._normalized = normalized

return M
