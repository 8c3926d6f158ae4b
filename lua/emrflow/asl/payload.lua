-- emrflow.asl.payload: payload templates (Parameters, ItemSelector, ResultSelector, Assign,
-- Credentials) compiled once to closures.
--
--   payload.compile(template [, where]) --> fn | nil, message
--       template: any JSON value.  In objects, a key ending in ".$" is replaced by the key
--       without the suffix, and its value (a string) is evaluated: a path ("$...", "$$...",
--       "$name...", full JSONPath allowed) or an intrinsic call ("States.Format(...)").  Other
--       keys and values are literal; objects inside arrays are templates too.  Output keys keep
--       the template's order.  `where` (for example "/States/A/Parameters") prefixes compile
--       error messages.
--   fn(env) --> value
--       env = { input = <$>, context = <$$>, vars = { name = value }, consts = <cache> }.
--       Literal parts are copied on every call (constant objects: made once per env.consts,
--       the execution's cache, when given); values selected by paths are the input's own
--       nodes (shared, not copied), so treat inputs and results as immutable, as jsonpath.set
--       does.  A path that matches nothing raises States.Runtime "The JSONPath '<path>'
--       specified for the field '<key>.$' could not be found in the input '<compact json of
--       $>'"; intrinsics raise their own ASL errors.
--   payload.is_template(v) --> true when v holds a ".$" key anywhere (false: a plain literal)
--   payload.compile_shape(template [, where]) --> fn, shape, R, sizes, sig | nil, message
--       for the engine's hot path: with P[payload.SHAPE_BASE + k] = R[k] for every k,
--       shape(env, P) evaluates as fn(env) does (shape and R are nil when the template is
--       not an object template evaluated that way); payload.size(result, sizes) is then
--       json.size(result) computed from the sizes of its evaluated members only (sizes nil:
--       not known); sig: the kinds of its members, R's layout (see generate), by which
--       core.asl's Pass loop (src/l_asl.c) evaluates it as shape does
local json = require "emrflow.json"
local jsonpath = require "emrflow.asl.jsonpath"
local intrinsics = require "emrflow.asl.intrinsics"
local errors = require "emrflow.asl.errors"

local M = {}

local kind = jsonpath.kind
local copy = json.copy
local json_size = json.size
local ssub, sformat = string.sub, string.format

local SUFFIX = ".$"

local function is_dynamic_key(k)
  return type(k) == "string" and #k > 2 and ssub(k, -2) == SUFFIX
end

-- Paths a Map's ItemSelector may read without a context object (see reads_only_map_item).
local MAP_ITEM_PATHS = { ["$$.Map.Item.Value"] = "map_value", ["$$.Map.Item.Index"] = "map_index" }

-- Compiles the value of a ".$" key.
local function compile_expression(text, field, where)
  if type(text) ~= "string" then
    return nil, sformat("%s: the value of the field '%s' must be a string holding a JSONPath or an "
      .. "intrinsic function call, got %s", where, field, kind(text) or type(text))
  end
  if intrinsics.is_call(text) then
    local fn, msg = intrinsics.compile(text, field)
    if not fn then return nil, sformat("%s/%s: %s", where, field, msg) end
    return fn
  end
  if ssub(text, 1, 1) ~= "$" then
    return nil, sformat("%s: the value of the field '%s' must be a valid JSONPath or a valid "
      .. "intrinsic function call, got '%s'", where, field, text)
  end
  local p, msg = jsonpath.compile(text)
  if not p then return nil, sformat("%s/%s: %s", where, field, msg) end
  local eval = p.eval
  -- "$.name": object templates read it inline (see object_builder)
  local inline = p.root == "$" and #p.segs == 1 and p.segs[1].k == "name" and p.segs[1].name or nil
  local function path_value(env)
    local v = eval(env.input, env)
    if v == nil then
      errors.runtime(jsonpath.not_found_cause(text, field, env.input))
    end
    return v
  end
  local item_field = MAP_ITEM_PATHS[text]
  if item_field then
    return function(env)
      if env.map_index ~= nil then return env[item_field] end
      return path_value(env)
    end
  end
  return path_value, inline
end

--- Does a Map's ItemSelector read the context object only as "$$.Map.Item.Value" or
-- "$$.Map.Item.Index" (whole ".$" values)? Then the Map may give each item's index and
-- value as env.map_index and env.map_value instead of making a context object per item.
function M.reads_only_map_item(template)
  local k = kind(template)
  if k ~= "object" and k ~= "array" then return true end
  for key, v in pairs(template) do
    if is_dynamic_key(key) and type(v) == "string" then
      if v:find("$$", 1, true) and not MAP_ITEM_PATHS[v] then return false end
    elseif not M.reads_only_map_item(v) then
      return false
    end
  end
  return true
end

-- The evaluator of an object template whose members are parts[i] = { key =, part = { fn = }
-- | { const = } }: one call of json.object_from with the template's keyset (objects of one
-- template share their key order), generated as Lua source so that no loop or scratch table
-- runs per evaluation. Members are evaluated in template order (the first failure wins).
local MAX_GENERATED = 60
-- shape(env, P) reads the template's values at P[SHAPE_BASE + 1 ...] (the engine keeps them in
-- the array part of its compiled state, after its own fields).
local SHAPE_BASE = 14 -- (src/l_asl.c's SHAPE_BASE)
M.SHAPE_BASE = SHAPE_BASE
-- Member kinds -> generated code: templates of one shape share one prototype and one set of
-- library upvalues; each template's own values sit in one array R (R[1] its keyset), so an
-- evaluation touches few distinct objects (a chain of 10,000 states does not fit in a cache).
local makers = {}

-- Keysets are interned by their key lists (they never change), so that templates with the
-- same keys, and the objects they make, share one.
local keysets, keysets_size = {}, 0
-- An id of the strings list[i..j] (each with its length: keys may hold any character).
local function list_id(list, i, j)
  local parts = {}
  for k = i, j do parts[#parts + 1] = #list[k] .. ":" .. list[k] end
  return table.concat(parts, ",")
end

local function keyset_of(okeys, n)
  local id = list_id(okeys, 1, n)
  local ks = keysets[id]
  if not ks then
    ks = json.keyset(table.unpack(okeys, 1, n))
    if keysets_size >= 4096 then keysets, keysets_size = {}, 0 end
    keysets[id] = ks
    keysets_size = keysets_size + 1
  end
  return ks
end

-- The code for members of kinds sig ("i": "$.name" read inline, with its function as the
-- fallback; "f": a function; "k": a constant object's maker, a function made by
-- once_per_execution (src/l_asl.c reads env.consts itself); "c": a constant; "t": a table
-- constant, copied; "n": nil),
-- their values in R from R[2] on in that order (R[1] is the keyset). "@k@" stands for R[k]
-- in maker's code and for R[SHAPE_BASE + k] in shape's.
local function generate(sig)
  local exprs, reads = {}, {}
  local at = 1
  local function slot()
    at = at + 1
    return "@" .. at .. "@"
  end
  for idx = 1, #sig do
    local what = ssub(sig, idx, idx)
    if what == "i" then
      -- read $.name here; when it is missing (or false) the path's own function runs, in
      -- its turn, and raises AWS's error
      local k, f = slot(), slot()
      reads[#reads + 1] = sformat("local v%d; if type(i) == \"table\" then v%d = i[%s] end\n", idx, idx, k)
      exprs[idx] = sformat("(v%d ~= nil and v%d or %s(env))", idx, idx, f)
    elseif what == "f" or what == "k" then
      exprs[idx] = slot() .. "(env)"
    elseif what == "n" then
      exprs[idx] = "nil"
    elseif what == "t" then
      exprs[idx] = "copy(" .. slot() .. ")"
    else
      exprs[idx] = slot()
    end
  end
  local body = (#reads > 0 and ("local i = env.input\n" .. table.concat(reads)) or "")
    .. "return object_from(@1@, " .. table.concat(exprs, ", ") .. ")\n"
  local src = "local object_from, copy, type = ...\n"
    .. "local function shape(env, R)\n"
    .. body:gsub("@(%d+)@", function(k) return "R[" .. (SHAPE_BASE + tonumber(k)) .. "]" end) .. "end\n"
    .. "local function maker(R)\nreturn function(env)\n" .. body:gsub("@(%d+)@", "R[%1]") .. "end\nend\n"
    .. "return { shape = shape, maker = maker }"
  return assert(load(src, "=payload template", "t", {}))(json.object_from, copy, type)
end

local object_builder

-- A constant object member is made anew at each evaluation (outputs may be changed by their
-- receivers): by one json.object_from with its interned keyset, which is cheaper than a deep
-- json.copy and makes the same object. Nested constant objects are made the same way. Makers
-- are interned by the constant's JSON text (which tells integers from floats and keeps the
-- key order), so that states with the same constant share one (a long chain of states does
-- not stay in the CPU caches; one shared maker does).
-- Within one execution the object is made once (env.consts, the execution's cache) and then
-- shared by the results of its states, as values selected by paths are: nothing changes a
-- value once made. Each execution gets its own, so an output changed by a caller does not
-- change the next execution's.
-- (the cache's key is the function returned, which src/l_asl.c looks up itself)
local function once_per_execution(make)
  local once
  once = function(env)
    local cache = env.consts
    if not cache then return make(env) end
    local v = cache[once]
    if v == nil then
      v = make(env)
      cache[once] = v
    end
    return v
  end
  return once
end

local const_makers, const_makers_size = {}, 0
local function const_maker(part)
  local cparts = part.parts
  if not cparts or #cparts == 0 or #cparts > MAX_GENERATED then return nil end
  local ok, text = pcall(json.encode, part.const)
  if not ok then return nil end
  local maker = const_makers[text]
  if not maker then
    maker = once_per_execution(object_builder(cparts))
    if const_makers_size >= 4096 then const_makers, const_makers_size = {}, 0 end
    const_makers[text] = maker
    const_makers_size = const_makers_size + 1
  end
  return maker
end

-- Size data are interned too (templates of one form share theirs, see const_maker).
local sizes_seen, sizes_seen_n = {}, 0
local function interned_sizes(sd)
  local id = sd[1] .. list_id(sd, 2, sd.n)
  local seen = sizes_seen[id]
  if seen then return seen end
  if sizes_seen_n >= 4096 then sizes_seen, sizes_seen_n = {}, 0 end
  sizes_seen[id] = sd
  sizes_seen_n = sizes_seen_n + 1
  return sd
end

-- The size data of an object template's results: { static, key1, ..., n = } where static is
-- the encoded size of everything but the evaluated members' values, and key1... the keys of
-- those members; nil when a member could be left out or not be sized, or when most members
-- are evaluated.
local function size_data(okeys, evaluated, consts)
  local sd, static = { n = 1 }, 2 * #okeys + 1 -- braces, colons and commas
  for idx = 1, #okeys do
    static = static + json_size(okeys[idx])
    if evaluated[idx] then
      sd.n = sd.n + 1
      sd[sd.n] = okeys[idx]
    else
      local k = consts[idx] ~= nil and json_size(consts[idx])
      if not k then return nil end
      static = static + k
    end
  end
  -- one json.size call per evaluated member: worth it only when they are the lesser part
  if (sd.n - 1) * 2 > #okeys then return nil end
  sd[1] = static
  return interned_sizes(sd)
end

object_builder = function(parts)
  local n = #parts
  local okeys, fns, consts, inline = {}, {}, {}, {}
  local evaluated, statics, made = {}, {}, {}
  for idx, p in ipairs(parts) do
    okeys[idx] = p.key
    if p.part.fn then
      fns[idx] = p.part.fn
      evaluated[idx] = true
    else
      fns[idx] = const_maker(p.part)
      made[idx] = fns[idx] ~= nil
      if not fns[idx] then consts[idx] = p.part.const end
      statics[idx] = p.part.const
    end
    inline[idx] = p.part.inline
  end
  if n <= MAX_GENERATED then
    -- R: the keyset, then per member what its code refers to; sig: the members' kinds,
    -- which alone decide the generated code
    local R = { keyset_of(okeys, n) }
    local sig = {}
    for idx = 1, n do
      if inline[idx] then
        R[#R + 1] = inline[idx]
        R[#R + 1] = fns[idx]
        sig[idx] = "i"
      elseif fns[idx] then
        R[#R + 1] = fns[idx]
        sig[idx] = made[idx] and "k" or "f"
      elseif consts[idx] == nil then
        sig[idx] = "n"
      else
        R[#R + 1] = consts[idx]
        sig[idx] = type(consts[idx]) == "table" and "t" or "c"
      end
    end
    sig = table.concat(sig)
    local gen = makers[sig]
    if not gen then
      gen = generate(sig)
      makers[sig] = gen
    end
    return gen.maker(R), gen.shape, R, size_data(okeys, evaluated, statics), sig
  end
  local set, object = json.set, json.object
  return function(env)
    local out = object({})
    for idx = 1, n do
      local f = fns[idx]
      local val
      if f then
        val = f(env)
      else
        val = consts[idx]
        if type(val) == "table" then val = copy(val) end
      end
      set(out, okeys[idx], val)
    end
    return out
  end
end

-- Returns { const = v } or { fn = f }.
local function compile_node(v, where)
  local k = kind(v)
  if k == "object" then
    local keys, parts, dynamic = json.keys(v), {}, false
    local seen = {}
    for idx, key in ipairs(keys) do
      local out_key, part
      if is_dynamic_key(key) then
        out_key = ssub(key, 1, -3)
        local fn, msg = compile_expression(v[key], key, where)
        if not fn then return nil, msg end
        part = { fn = fn, inline = msg }
        dynamic = true
      else
        out_key = key
        local sub, msg = compile_node(v[key], where .. "/" .. key)
        if not sub then return nil, msg end
        part = sub
        if sub.fn then dynamic = true end
      end
      if seen[out_key] then
        return nil, sformat("%s: the field '%s' is given twice (as '%s' and '%s')", where, out_key,
          seen[out_key], key)
      end
      seen[out_key] = key
      parts[idx] = { key = out_key, part = part }
    end
    if not dynamic then return { const = v, parts = parts } end
    local fn, shape, R, sd, sig = object_builder(parts)
    return { fn = fn, shape = shape, R = R, sd = sd, sig = sig }
  elseif k == "array" then
    local parts, dynamic = {}, false
    for idx = 1, #v do
      local sub, msg = compile_node(v[idx], where .. "/" .. (idx - 1))
      if not sub then return nil, msg end
      parts[idx] = sub
      if sub.fn then dynamic = true end
    end
    if not dynamic then return { const = v } end
    local n = #parts
    return { fn = function(env)
      local out = json.array({})
      for idx = 1, n do
        local p = parts[idx]
        if p.fn then
          out[idx] = p.fn(env)
        else
          local val = p.const
          if type(val) == "table" then val = copy(val) end
          out[idx] = val
        end
      end
      return out
    end }
  end
  return { const = v }
end

--- Like compile, for an object template: also shape, R such that shape(env, R) == fn(env)
-- (one function shared by templates of the same form, and this template's values), or nil.
local compile

function M.compile_shape(template, where)
  return compile(template, where)
end

compile = function(template, where)
  where = where or "Parameters"
  local node, msg = compile_node(template, where)
  if not node then return nil, msg end
  if node.fn then return node.fn, node.shape, node.R, node.sd, node.sig end
  local const = node.const
  if type(const) == "table" then
    return function() return copy(const) end
  end
  return function() return const end
end

--- (compile returns only fn to its callers; shape and R are for compile_shape)
function M.compile(template, where)
  local fn, msg = compile(template, where)
  return fn, msg
end

--- json.size(result) of a template's result, from the size data compile_shape gave (nil when
-- a member is missing or cannot be sized: then ask json.size). limit as json.size's.
function M.size(result, sd, limit)
  local n = sd[1]
  for i = 2, sd.n do
    local v = result[sd[i]]
    if v == nil then return nil end
    local k = json_size(v, limit)
    if not k then return nil end
    n = n + k
  end
  return n
end

function M.is_template(v)
  local k = kind(v)
  if k == "object" then
    for key, sub in pairs(v) do
      if is_dynamic_key(key) or M.is_template(sub) then return true end
    end
  elseif k == "array" then
    for i = 1, #v do
      if M.is_template(v[i]) then return true end
    end
  end
  return false
end


return M
