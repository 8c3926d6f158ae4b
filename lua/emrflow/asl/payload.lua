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
--       core.asl's Pass loop (src/l_asl.c) evaluates the template from R as shape does
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
local SHAPE_BASE = 16
M.SHAPE_BASE = SHAPE_BASE
-- Member kinds -> generated code: templates of one shape share one prototype and one set of
-- library upvalues; each template's own values sit in one array R (R[1] its keyset), so an
-- evaluation touches few distinct objects (a chain of 10,000 states does not fit in a cache).
local makers = {}

-- Interning (keysets, size data, constant objects' makers) is by tries of tables keyed by
-- the strings of a list, so that a template seen before costs no allocation (a definition
-- of ten thousand states compiles ten thousand templates of one or a few forms).
local LEAF = {} -- the key of a trie node's value
local function trie_find(root, list, i, j)
  local node = root
  for k = i, j do
    node = node[list[k]]
    if not node then return nil end
  end
  return node[LEAF]
end
local function trie_put(root, list, i, j, value)
  local node = root
  for k = i, j do
    local sub = node[list[k]]
    if not sub then
      sub = {}
      node[list[k]] = sub
    end
    node = sub
  end
  node[LEAF] = value
end

-- Keysets are interned by their key lists (they never change), so that templates with the
-- same keys, and the objects they make, share one.
local keysets, keysets_size = {}, 0
local function keyset_of(okeys, n)
  local ks = trie_find(keysets, okeys, 1, n)
  if not ks then
    ks = json.keyset(table.unpack(okeys, 1, n))
    if keysets_size >= 4096 then keysets, keysets_size = {}, 0 end
    trie_put(keysets, okeys, 1, n, ks)
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

-- The members of an object (kind "object") of n keys as the lists object_builder takes.
local function const_members(v, keys, n)
  local okeys, consts = {}, {}
  for idx = 1, n do
    okeys[idx] = keys[idx]
    consts[idx] = v[keys[idx]]
  end
  return okeys, consts
end

local const_makers, const_makers_size = {}, 0
-- The maker of the constant value v, or nil when v is not an object of 1 to MAX_GENERATED
-- members (then it is copied).
local function const_maker(v)
  if kind(v) ~= "object" then return nil end
  local keys = json.keys(v)
  local n = #keys
  if n == 0 or n > MAX_GENERATED then return nil end
  local ok, text = pcall(json.encode, v)
  if not ok then return nil end
  local maker = const_makers[text]
  if not maker then
    local okeys, consts = const_members(v, keys, n)
    maker = once_per_execution(object_builder(okeys, {}, consts, {}, n))
    if const_makers_size >= 4096 then const_makers, const_makers_size = {}, 0 end
    const_makers[text] = maker
    const_makers_size = const_makers_size + 1
  end
  return maker
end

-- Size data are interned too (templates of one form share theirs, see const_maker): by the
-- static size, then the evaluated members' keys.
local sizes_seen, sizes_seen_n = {}, 0

-- The size data of an object template's results: { static, key1, ..., n = } where static is
-- the encoded size of everything but the evaluated members' values, and key1... the keys of
-- those members; nil when a member could be left out or not be sized, or when most members
-- are evaluated. fns[idx]: member idx is evaluated; consts[idx]: else its value.
local function size_data(okeys, fns, consts, n)
  local static, evaluated = 2 * n + 1, 0 -- braces, colons and commas
  for idx = 1, n do
    static = static + json_size(okeys[idx])
    if fns[idx] then
      evaluated = evaluated + 1
    else
      local k = consts[idx] ~= nil and json_size(consts[idx])
      if not k then return nil end
      static = static + k
    end
  end
  -- one json.size call per evaluated member: worth it only when they are the lesser part
  if evaluated * 2 > n then return nil end
  local by_static = sizes_seen[static]
  local node = by_static
  for idx = 1, n do
    if node and fns[idx] then node = node[okeys[idx]] end
  end
  if node and node[LEAF] then return node[LEAF] end
  local sd = { static, n = evaluated + 1 }
  for idx = 1, n do
    if fns[idx] then sd[#sd + 1] = okeys[idx] end
  end
  if sizes_seen_n >= 4096 then sizes_seen, sizes_seen_n = {}, 0 end
  if not by_static then
    by_static = {}
    sizes_seen[static] = by_static
  end
  trie_put(by_static, sd, 2, sd.n, sd)
  sizes_seen_n = sizes_seen_n + 1
  return sd
end

-- The evaluator of an object template of n members: okeys[idx] its output keys; fns[idx] the
-- function of an evaluated member, inline[idx] the key when that is "$.key"; consts[idx] the
-- value of a constant member (objects among them made by const_maker). Returns fn, shape, R,
-- size data, sig (see compile_shape).
local sigbuf = {}
object_builder = function(okeys, fns, consts, inline, n)
  -- the makers of constant objects first (they may build, and use sigbuf, in their turn)
  local makes
  for idx = 1, n do
    local made = not fns[idx] and const_maker(consts[idx])
    if made then
      makes = makes or {}
      makes[idx] = made
    end
  end
  if n <= MAX_GENERATED then
    -- R: the keyset, then per member what its code refers to; sig: the members' kinds,
    -- which alone decide the generated code
    local R = { keyset_of(okeys, n) }
    for idx = 1, n do
      local made = makes and makes[idx]
      if inline[idx] then
        R[#R + 1] = inline[idx]
        R[#R + 1] = fns[idx]
        sigbuf[idx] = "i"
      elseif fns[idx] then
        R[#R + 1] = fns[idx]
        sigbuf[idx] = "f"
      elseif made then
        R[#R + 1] = made
        sigbuf[idx] = "k"
      elseif consts[idx] == nil then
        sigbuf[idx] = "n"
      else
        R[#R + 1] = consts[idx]
        sigbuf[idx] = type(consts[idx]) == "table" and "t" or "c"
      end
    end
    local sig = table.concat(sigbuf, "", 1, n)
    local gen = makers[sig]
    if not gen then
      gen = generate(sig)
      makers[sig] = gen
    end
    return gen.maker(R), gen.shape, R, size_data(okeys, fns, consts, n), sig
  end
  makes = makes or {}
  local set, object = json.set, json.object
  return function(env)
    local out = object({})
    for idx = 1, n do
      local f = fns[idx] or makes[idx]
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

local compile_node

-- Scratch lists of compile_object, one set per nesting level (compiling ten thousand
-- templates makes no lists but their results); emptied after use.
local scratch, level = {}, 0
local function lists()
  level = level + 1
  local set = scratch[level]
  if not set then
    set = { {}, {}, {}, {} }
    scratch[level] = set
  end
  return set[1], set[2], set[3], set[4]
end
local function release(n, ...)
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    for k = 1, n do t[k] = nil end
  end
  level = level - 1
end

local compile_members

-- An object template (a ".$" key somewhere in v) --> fn, shape, R, sd, sig | nil, message.
local function compile_object(v, where)
  local keys = json.keys(v)
  local n = #keys
  local okeys, fns, consts, inline = lists()
  local fn, shape, R, sd, sig = compile_members(v, where, keys, n, okeys, fns, consts, inline)
  if fn and n > MAX_GENERATED then
    -- (the evaluator of a large template keeps lists of its own)
    local function own(t) return table.move(t, 1, n, 1, {}) end
    fn = object_builder(own(okeys), own(fns), own(consts), own(inline), n)
  end
  release(n, okeys, fns, consts, inline)
  return fn, shape, R, sd, sig
end

compile_members = function(v, where, keys, n, okeys, fns, consts, inline)
  local seen = n > 16 and {} or nil -- (fewer keys: a look through okeys)
  for idx = 1, n do
    local key = keys[idx]
    local out_key, value = key, v[key]
    fns[idx], consts[idx], inline[idx] = nil, nil, nil
    if is_dynamic_key(key) then
      out_key = ssub(key, 1, -3)
      local fn, name = compile_expression(value, key, where)
      if not fn then return nil, name end
      fns[idx], inline[idx] = fn, name
    elseif M.is_template(value) then
      local sub, _, msg = compile_node(value, where .. "/" .. key, true)
      if not sub then return nil, msg end
      fns[idx] = sub
    else
      consts[idx] = value
    end
    local twice
    if seen then
      twice = seen[out_key]
      seen[out_key] = key
    else
      for j = 1, idx - 1 do
        if okeys[j] == out_key then twice = keys[j] end
      end
    end
    if twice then
      return nil, sformat("%s: the field '%s' is given twice (as '%s' and '%s')", where, out_key,
        twice, key)
    end
    okeys[idx] = out_key
  end
  if n > MAX_GENERATED then return true end -- (built by the caller, on lists of its own)
  return object_builder(okeys, fns, consts, inline, n)
end

-- Returns fn, or nil and { const = v } (template: v is known to be a template), or nil, nil,
-- message.
compile_node = function(v, where, template)
  if not template and not M.is_template(v) then return nil, { const = v } end
  if kind(v) == "object" then
    local fn, msg = compile_object(v, where)
    if not fn then return nil, nil, msg end
    return fn
  end
  -- an array holding templates
  local parts = {}
  for idx = 1, #v do
    local fn, const, msg = compile_node(v[idx], where .. "/" .. (idx - 1))
    if msg then return nil, nil, msg end
    parts[idx] = fn or const
  end
  local n = #parts
  return function(env)
    local out = json.array({})
    for idx = 1, n do
      local p = parts[idx]
      if type(p) == "function" then
        out[idx] = p(env)
      else
        local val = p.const
        if type(val) == "table" then val = copy(val) end
        out[idx] = val
      end
    end
    return out
  end
end

--- Like compile, for an object template: also shape, R such that shape(env, R) == fn(env)
-- (one function shared by templates of the same form, and this template's values), or nil.
local compile

function M.compile_shape(template, where)
  return compile(template, where)
end

compile = function(template, where)
  where = where or "Parameters"
  if kind(template) == "object" and M.is_template(template) then
    return compile_object(template, where)
  end
  local fn, node, msg = compile_node(template, where)
  if msg then return nil, msg end
  if fn then return fn end
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
