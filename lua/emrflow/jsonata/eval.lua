--- JSONata evaluator: the processed AST compiled to Lua closures.
--
-- compile(ast) returns f(input, env) -> value. Every node's result goes through the same
-- rule as JSONata's: a sequence of none is undefined, a sequence of one is its item (unless
-- it must stay an array). Environments are frames chained with __index; tuple streams (for
-- @, # and %) are lists of tables { ["@"] = item, name = value, ... }.
local value = require "emrflow.jsonata.value"
local errors = require "emrflow.jsonata.errors"
local signature = require "emrflow.jsonata.signature"

local M = {}

local ARR, SEQ, CONS, FN = value.ARR, value.SEQ, value.CONS, value.FN
local is_array, is_object, num = value.is_array, value.is_object, value.num
local getmetatable, setmetatable, type, error = getmetatable, setmetatable, type, error
local floor = math.floor

--------------------------------------------------------------------------------------------
-- Runtime state of the evaluation in progress (one at a time per Lua state; $eval nests)
--------------------------------------------------------------------------------------------

-- depth: lambda calls in progress (bounded by max_calls so the Lua stack holds);
-- edepth/max_depth: expression nesting, counted only by code compiled for a depth limit.
local MAX_CALLS = 5000
local rt = { depth = 0, max_calls = MAX_CALLS, edepth = 0, max_depth = math.huge, deadline = nil, calls = 0,
  sites = {}, nsites = 0 }
M.rt = rt

local function now_ms()
  return os.clock() * 1000
end

local function throw(code, fields)
  local e = fields or {}
  e.code = code
  -- Where jsonata-js reports an error raised inside function calls: the position of the
  -- outermost call still running (a call whose function returned a tail call is no longer
  -- running: it only gives its position when the error has none), and, when the error has
  -- no token of its own, the innermost function's name.
  local n = rt.nsites
  if n > 0 then
    local sites = rt.sites
    local strong
    for i = 1, n do
      if not sites[i].weak then
        strong = sites[i]
        break
      end
    end
    if strong then
      e.position = strong.position
    elseif e.position == nil then
      e.position = sites[n].position
    end
    if e.token == nil then e.token = sites[n].token end
  end
  error(setmetatable(e, errors.Error), 0)
end
M.throw = throw

local function check_limits()
  if rt.depth > rt.max_calls then throw("U1001") end
  if rt.deadline then
    rt.calls = rt.calls + 1
    if rt.calls % 64 == 0 and now_ms() > rt.deadline then
      throw("U1001", { message = "Expression evaluation timeout: Check for infinite loop" })
    end
  end
end

--------------------------------------------------------------------------------------------
-- Frames
--------------------------------------------------------------------------------------------

local CHILD_MT = {} -- key under which a frame keeps the metatable of its children

local function new_frame(parent)
  local mt = rawget(parent, CHILD_MT)
  if mt == nil then
    mt = { __index = parent }
    rawset(parent, CHILD_MT, mt)
  end
  return setmetatable({}, mt)
end
M.new_frame = new_frame

local function tuple_frame(env, tuple)
  local f = new_frame(env)
  for k, v in pairs(tuple) do f[k] = v end
  return f
end

--------------------------------------------------------------------------------------------
-- Helpers shared by the nodes
--------------------------------------------------------------------------------------------

local function to_boolean(v)
  local t = type(v)
  if t == "nil" then return nil end
  if t == "boolean" then return v end
  if t == "string" then return v ~= "" end
  if t == "number" then return v ~= 0 and v == v end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == FN then return false end
    if is_array(v) then
      local n = #v
      if n == 1 then return to_boolean(v[1]) end
      for i = 1, n do
        if to_boolean(v[i]) then return true end
      end
      return false
    end
    return next(value.keys(v)) ~= nil
  end
  return false
end
M.to_boolean = to_boolean

local function check_numeric(v)
  if type(v) == "number" then
    if v ~= v then return false end
    if v == math.huge or v == -math.huge then throw("D1001", { value = v }) end
    return true
  end
  return false
end

local function lookup(input, key)
  if type(input) ~= "table" then return nil end
  local mt = getmetatable(input)
  if mt ~= nil and mt ~= ARR and mt ~= SEQ and mt ~= CONS then
    if mt == FN then return nil end
    return input[key]
  end
  if mt ~= nil or input[1] ~= nil then
    local out, n = setmetatable({}, SEQ), 0
    for i = 1, #input do
      local r = lookup(input[i], key)
      if r ~= nil then
        local rm = getmetatable(r)
        if type(r) == "table" and (rm == ARR or rm == SEQ or rm == CONS or (rm == nil and r[1] ~= nil)) then
          for j = 1, #r do
            n = n + 1
            out[n] = r[j]
          end
        else
          n = n + 1
          out[n] = r
        end
      end
    end
    return out
  end
  return input[key]
end
M.lookup = lookup

local function wrap(v)
  if v == nil then return setmetatable({}, SEQ) end
  return setmetatable({ v }, SEQ)
end

--------------------------------------------------------------------------------------------
-- Function application
--------------------------------------------------------------------------------------------

local apply
local apply_inner

local function push_site(position, token)
  local n = rt.nsites + 1
  rt.nsites = n
  local s = rt.sites[n]
  if s == nil then
    s = {}
    rt.sites[n] = s
  end
  s.position, s.token, s.weak = position, token, false
end

local function pop_site()
  rt.nsites = rt.nsites - 1
end

local function apply_lambda(proc, args, n)
  local env = new_frame(proc.env)
  local params = proc.params
  for i = 1, #params do env[params[i]] = args[i] end
  local _ = n
  if proc.native_body then return proc.native_body(env, proc.input) end
  return proc.body(proc.input, env)
end

function apply_inner(proc, args, n, input, env)
  if type(proc) ~= "table" or getmetatable(proc) ~= FN then throw("T1006") end
  if proc.sig then args, n = proc.sig:validate(args, n, input) end
  local kind = proc.kind
  if kind == "lambda" then
    rt.depth = rt.depth + 1
    check_limits()
    local r = apply_lambda(proc, args, n)
    rt.depth = rt.depth - 1
    return r
  elseif kind == "native" then
    return proc.impl(args, n, input, env, proc)
  elseif kind == "partial" then
    local full, fi, ai = {}, 0, 0
    local tpl = proc.args
    for i = 1, proc.nargs do
      fi = fi + 1
      if tpl[i] == M.HOLE then
        ai = ai + 1
        full[fi] = args[ai]
      else
        full[fi] = tpl[i]
      end
    end
    return apply(proc.target, full, fi, input, env)
  elseif kind == "chain" then
    local mid = apply(proc.first, args, n, input, env)
    return apply(proc.second, { mid }, 1, input, env)
  end
  throw("T1006")
end

-- The trampoline: a lambda whose body is a tail call returns a thunk; run the calls here.
local function trampoline(r, input, env)
  while type(r) == "table" and getmetatable(r) == FN and r.thunk do
    local nextp = r.tail_proc(r.input, r.env)
    local targs, tn = {}, #r.tail_args
    for i = 1, tn do targs[i] = r.tail_args[i](r.input, r.env) end
    push_site(r.tail_position, r.tail_token)
    r = apply_inner(nextp, targs, tn, input, env)
    pop_site()
  end
  return r
end

function apply(proc, args, n, input, env)
  local r = apply_inner(proc, args, n, input, env)
  while type(r) == "table" and getmetatable(r) == FN and r.thunk do
    local nextp = r.tail_proc(r.input, r.env)
    local targs, tn = {}, #r.tail_args
    for i = 1, tn do targs[i] = r.tail_args[i](r.input, r.env) end
    r = apply_inner(nextp, targs, tn, input, env)
  end
  return r
end
M.apply = apply

--- Call a function value with up to four arguments (the callbacks of $map and friends): plain
-- lambdas bind their parameters directly, everything else goes through apply.
function M.invoke(proc, n, a1, a2, a3, a4)
  if type(proc) ~= "table" or not proc.plain then
    return apply(proc, { a1, a2, a3, a4 }, n, nil, nil)
  end
  -- only frames that nothing can capture are ever kept in free_frame
  local env = proc.free_frame
  if env then
    proc.free_frame = nil
  else
    env = new_frame(proc.env)
  end
  local params = proc.params
  local np = #params
  if np == n and n <= 2 then
    -- the common case: as many arguments as parameters
    if n >= 1 then env[params[1]] = a1 end
    if n == 2 then env[params[2]] = a2 end
  else
    -- parameters past the arguments are undefined (a reused frame must forget them)
    if n < 4 then a4 = nil end
    if n < 3 then a3 = nil end
    if n < 2 then a2 = nil end
    if n < 1 then a1 = nil end
    if np >= 1 then env[params[1]] = a1 end
    if np >= 2 then env[params[2]] = a2 end
    if np >= 3 then env[params[3]] = a3 end
    if np >= 4 then env[params[4]] = a4 end
    if np > 4 then
      for i = 5, np do env[params[i]] = nil end
    end
  end
  local depth = rt.depth + 1
  rt.depth = depth
  if depth > MAX_CALLS or rt.deadline then check_limits() end
  local r = proc.body(proc.input, env)
  rt.depth = depth - 1
  if proc.reuse_frame then proc.free_frame = env end
  if type(r) == "table" and r.thunk and getmetatable(r) == FN then return trampoline(r, nil, nil) end
  return r
end

--- A Lua function calling `proc` with exactly n (1 or 2) arguments many times over (the loop
-- of $map, $filter, $reduce): for a plain lambda of n parameters whose frame nothing can
-- capture, one frame serves every call; anything else goes through M.invoke.
function M.caller(proc, n)
  local params = type(proc) == "table" and proc.plain and proc.reuse_frame and proc.params
  if not params or #params ~= n or n > 2 then
    return function(a1, a2) return M.invoke(proc, n, a1, a2) end
  end
  local p1, p2 = params[1], params[2]
  local body, input = proc.body, proc.input
  local env = new_frame(proc.env)
  local busy = false
  return function(a1, a2)
    if busy then return M.invoke(proc, n, a1, a2) end -- a call within a call: its own frame
    busy = true
    env[p1] = a1
    if p2 then env[p2] = a2 end
    local depth = rt.depth + 1
    rt.depth = depth
    if depth > MAX_CALLS or rt.deadline then check_limits() end
    local r = body(input, env)
    rt.depth = depth - 1
    busy = false
    if type(r) == "table" and r.thunk and getmetatable(r) == FN then return trampoline(r, nil, nil) end
    return r
  end
end

--- Number of arguments a function takes (for $map and friends).
function M.arity(f)
  if type(f) ~= "table" then return 0 end
  if f.kind == "lambda" then return #f.params end
  if f.kind == "native" then
    if f.nparams then return f.nparams end
    if f.sig then return #f.sig.params end
    return 1
  end
  if f.kind == "partial" then return f.nholes end
  return 1
end

M.HOLE = setmetatable({}, { __name = "jsonata.placeholder" })

--------------------------------------------------------------------------------------------
-- Compilation
--------------------------------------------------------------------------------------------

local compile -- node -> f(input, env)
local captures_frame
local never_sequence
local counting = false -- compiling with expression-depth checks

local function finish_seq(r, keep)
  if getmetatable(r) == SEQ and not r.tuples then
    if keep then r.keep = true end
    local n = #r
    if n == 0 then return nil end
    if n == 1 and not r.keep then return r[1] end
  end
  return r
end

-- Does a predicate's value depend on nothing (literals, ranges, arithmetic on them)?
local CONSTANT_OPS = { [".."] = true, ["+"] = true, ["-"] = true, ["*"] = true, ["/"] = true, ["%"] = true }
local function constant_node(node)
  if node.predicate or node.group or node.keepArray or node.stages then return false end
  local t = node.type
  if t == "number" or t == "string" or t == "value" then return true end
  if t == "unary" then
    if node.value == "-" then return constant_node(node.expression) end
    if node.value == "[" then
      for _, e in ipairs(node.expressions) do
        if not constant_node(e) then return false end
      end
      return true
    end
    return false
  end
  if t == "binary" and CONSTANT_OPS[node.value] then
    return constant_node(node.lhs) and constant_node(node.rhs)
  end
  return false
end

-- A predicate that is a constant list of positions ([[0..9]], [[1, -1]]): evaluated once per
-- filtering, then the items are picked by position (each as many times as it is listed).
local function constant_positions(pf)
  return function(input, env)
    local res = setmetatable({}, SEQ)
    local tuples = type(input) == "table" and getmetatable(input) == SEQ and input.tuples
    if tuples then res.tuples = true end
    if not is_array(input) then
      if input == nil then return res end
      input = { input }
    end
    local n = #input
    if n == 0 then return res end -- (the predicate is never evaluated)
    local r = pf(nil, env)
    if type(r) == "number" then
      if not check_numeric(r) then return res end -- NaN selects nothing
      r = { r }
    end
    local all_numbers = is_array(r)
    if all_numbers then
      for k = 1, #r do
        if type(r[k]) ~= "number" then all_numbers = false end
      end
    end
    if not all_numbers then
      if to_boolean(r) then
        for i = 1, n do res[i] = input[i] end
      end
      return res
    end
    local wanted = {}
    for k = 1, #r do
      local x = r[k]
      if x - x == 0 then -- (NaN and infinities select nothing)
        local ii = floor(x)
        if ii < 0 then ii = n + ii end
        wanted[ii] = (wanted[ii] or 0) + 1
      end
    end
    local rn = 0
    for index = 1, n do
      local times = wanted[index - 1]
      if times then
        for _ = 1, times do
          rn = rn + 1
          res[rn] = input[index]
        end
      end
    end
    return res
  end
end

-- Predicates: filter a value (or sequence) by a compiled predicate.
local function compile_filter(pred_node)
  local pf = compile(pred_node)
  if pred_node.type ~= "number" and constant_node(pred_node) then return constant_positions(pf) end
  if pred_node.type == "number" then
    local idx = floor(pred_node.value)
    return function(input)
      local res = setmetatable({}, SEQ)
      if type(input) == "table" and input.tuples and getmetatable(input) == SEQ then res.tuples = true end
      if not is_array(input) then
        if input == nil then return res end
        input = { input }
      end
      local i = idx
      if i < 0 then i = #input + i end
      local item = input[i + 1]
      if item ~= nil then
        if is_array(item) and getmetatable(item) ~= SEQ then return item end
        if is_array(item) then return item end
        res[1] = item
      end
      return res
    end
  end
  return function(input, env)
    local res, rn = setmetatable({}, SEQ), 0
    local tuples = type(input) == "table" and getmetatable(input) == SEQ and input.tuples
    if tuples then res.tuples = true end
    if not is_array(input) then
      if input == nil then return res end
      input = { input }
    end
    local n = #input
    for index = 1, n do
      local item = input[index]
      local ctx, fenv = item, env
      if tuples then
        ctx = item["@"]
        fenv = tuple_frame(env, item)
      end
      local r = pf(ctx, fenv)
      if r == true then
        rn = rn + 1
        res[rn] = item
      elseif r == false or r == nil then -- luacheck: ignore 542
        -- not selected
      elseif type(r) == "number" then
        if check_numeric(r) then
          local ii = floor(r)
          if ii < 0 then ii = n + ii end
          if ii == index - 1 then
            rn = rn + 1
            res[rn] = item
          end
        end
      elseif type(r) == "table" and is_array(r) and getmetatable(r) ~= FN then
        local all_numbers = true
        for k = 1, #r do
          if type(r[k]) ~= "number" then
            all_numbers = false
            break
          end
        end
        if all_numbers then
          for k = 1, #r do
            local ii = floor(r[k])
            if ii < 0 then ii = n + ii end
            if ii == index - 1 then
              rn = rn + 1
              res[rn] = item
            end
          end
        elseif to_boolean(r) then
          rn = rn + 1
          res[rn] = item
        end
      elseif to_boolean(r) then
        rn = rn + 1
        res[rn] = item
      end
    end
    return res
  end
end

-- The values of a list appended together as JSONata's fn.append chain does: one value stays
-- as it is, several are concatenated with arrays spliced in.
local function append_all(list)
  local n = #list
  if n <= 1 then return list[1] end
  local out, m = setmetatable({}, ARR), 0
  for i = 1, n do
    local v = list[i]
    local mt = getmetatable(v) -- (nil for numbers too: hence the type check for plain tables)
    if mt == ARR or mt == SEQ or mt == CONS or (mt == nil and type(v) == "table" and v[1] ~= nil) then
      for j = 1, #v do
        m = m + 1
        out[m] = v[j]
      end
    else
      m = m + 1
      out[m] = v
    end
  end
  return out
end

-- Object constructor / grouping: pairs of compiled (key, value).
local function compile_group(group)
  local pairs_ = {}
  for i, pair in ipairs(group.lhs) do pairs_[i] = { compile(pair[1]), compile(pair[2]) } end
  local npairs = #pairs_
  local position = group.position
  -- Keys that are all distinct string literals (the usual object constructor): every item
  -- falls in every key's group, so each value is evaluated once over all the items.
  local literal_keys = {}
  for i, pair in ipairs(group.lhs) do
    local k = pair[1]
    if k.type ~= "string" or k.predicate or k.group or literal_keys[k.value] then
      literal_keys = nil
      break
    end
    literal_keys[k.value] = i
    literal_keys[i] = k.value
  end
  return function(input, env)
    local reduce = type(input) == "table" and getmetatable(input) == SEQ and input.tuples
    local items
    if is_array(input) then
      items = input
    else
      items = { input }
    end
    if literal_keys and not reduce then
      local count = #items
      local ctx
      if count == 1 then
        ctx = items[1]
      elseif count > 1 then
        ctx = append_all(items)
      end
      local result = value.new_object()
      for p = 1, npairs do
        local v = pairs_[p][2](ctx, env)
        if v ~= nil then value.set(result, literal_keys[p], v) end
      end
      return result
    end
    local n = #items
    if n == 0 then n = 1 end -- one pass with undefined: literal objects still get made
    local groups, order = {}, {}
    if npairs == 1 and not reduce then
      -- one key expression over plain items (the usual grouping)
      local keyf = pairs_[1][1]
      for idx = 1, n do
        local item = items[idx]
        local key = keyf(item, env)
        if key ~= nil then
          if type(key) ~= "string" then throw("T1003", { position = position, value = key }) end
          local g = groups[key]
          if g then
            local list = g.items
            list[#list + 1] = item
          else
            groups[key] = { items = { item }, pair = 1 }
            order[#order + 1] = key
          end
        end
      end
    else
      for idx = 1, n do
        local item = items[idx]
        local env2 = reduce and tuple_frame(env, item) or env
        local ctx = reduce and item["@"] or item
        for p = 1, npairs do
          local key = pairs_[p][1](ctx, env2)
          if key ~= nil then
            if type(key) ~= "string" then throw("T1003", { position = position, value = key }) end
            local g = groups[key]
            if g then
              if g.pair ~= p then throw("D1009", { position = position, value = key }) end
              local list = g.items
              list[#list + 1] = item
            else
              groups[key] = { items = { item }, pair = p }
              order[#order + 1] = key
            end
          end
        end
      end
    end
    local result = value.new_object()
    local set = value.set
    for _, key in ipairs(order) do
      local g = groups[key]
      local list = g.items
      local ctx, env2 = append_all(list), env
      if reduce then
        local tuple = {}
        if #list > 1 then
          local per_key, keys = {}, {}
          for j = 1, #list do
            for k, v in pairs(list[j]) do
              local vals = per_key[k]
              if vals == nil then
                vals = {}
                per_key[k] = vals
                keys[#keys + 1] = k
              end
              vals[#vals + 1] = v
            end
          end
          for _, k in ipairs(keys) do tuple[k] = append_all(per_key[k]) end
        else
          for k, v in pairs(list[1]) do tuple[k] = v end
        end
        ctx = tuple["@"]
        tuple["@"] = nil
        env2 = tuple_frame(env, tuple)
      end
      local v = pairs_[g.pair][2](ctx, env2)
      if v ~= nil then set(result, key, v) end
    end
    return result
  end
end

-- Stable merge sort of list[1..n] with before(a, b) -> true when b must come before a.
local function merge_sort(list, n, swap)
  if n <= 1 then return list end
  local tmp = {}
  local function sort(lo, hi)
    if hi - lo < 1 then return end
    local mid = (lo + hi) // 2
    sort(lo, mid)
    sort(mid + 1, hi)
    local i, j, k = lo, mid + 1, lo
    while i <= mid and j <= hi do
      if swap(list[i], list[j]) then
        tmp[k] = list[j]
        j = j + 1
      else
        tmp[k] = list[i]
        i = i + 1
      end
      k = k + 1
    end
    while i <= mid do
      tmp[k] = list[i]
      i, k = i + 1, k + 1
    end
    while j <= hi do
      tmp[k] = list[j]
      j, k = j + 1, k + 1
    end
    for x = lo, hi do list[x] = tmp[x] end
  end
  sort(1, n)
  return list
end
M.merge_sort = merge_sort

local function compile_sort(step)
  local terms = {}
  for i, term in ipairs(step.terms) do
    terms[i] = { f = compile(term.expression), desc = term.descending }
  end
  local nterms = #terms
  local position = step.position
  return function(input, env)
    local tuples = getmetatable(input) == SEQ and input.tuples
    local n = #input
    local out = setmetatable({}, SEQ)
    if tuples then out.tuples = true end
    if n <= 1 then
      for i = 1, n do out[i] = input[i] end
      return out
    end
    -- evaluate every term once per item
    local recs = {}
    -- a term whose keys are all numbers, or all strings, needs no type checks
    local kinds = {}
    for i = 1, n do
      local item = input[i]
      local ctx, env2 = item, env
      if tuples then
        ctx = item["@"]
        env2 = tuple_frame(env, item)
      end
      local keys = {}
      for t = 1, nterms do
        local k = terms[t].f(ctx, env2)
        keys[t] = k
        local tk = type(k)
        if tk ~= "number" and tk ~= "string" then tk = false end
        if i == 1 then kinds[t] = tk elseif kinds[t] ~= tk then kinds[t] = false end
      end
      recs[i] = { item = item, keys = keys }
    end
    local plain = true
    for t = 1, nterms do
      if not kinds[t] then plain = false end
    end
    if plain then
      merge_sort(recs, n, function(a, b)
        local ka, kb = a.keys, b.keys
        for t = 1, nterms do
          local aa, bb = ka[t], kb[t]
          if aa ~= bb then
            if terms[t].desc then return aa < bb end
            return aa > bb
          end
        end
        return false
      end)
      for i = 1, n do out[i] = recs[i].item end
      return out
    end
    merge_sort(recs, n, function(a, b)
      for t = 1, nterms do
        local aa, bb = a.keys[t], b.keys[t]
        local comp
        if aa == nil then
          comp = (bb == nil) and 0 or 1
        elseif bb == nil then
          comp = -1
        else
          local ta, tb = type(aa), type(bb)
          if (ta ~= "string" and ta ~= "number") or (tb ~= "string" and tb ~= "number") then
            throw("T2008", { position = position, value = (ta ~= "string" and ta ~= "number") and aa or bb })
          end
          if ta ~= tb then throw("T2007", { position = position, value = aa, value2 = bb }) end
          if aa == bb then
            comp = 0
          elseif aa < bb then
            comp = -1
          else
            comp = 1
          end
          if terms[t].desc then comp = -comp end
        end
        if comp ~= 0 then return comp == 1 end
      end
      return false
    end)
    for i = 1, n do out[i] = recs[i].item end
    return out
  end
end

local function compile_stages(stages)
  if not stages then return nil end
  local list = {}
  for i, st in ipairs(stages) do
    if st.type == "filter" then
      list[i] = { filter = compile_filter(st.expr) }
    else
      list[i] = { index = st.value }
    end
  end
  return list
end

local function run_stages(stages, input, env)
  for s = 1, #stages do
    local st = stages[s]
    if st.filter then
      input = st.filter(input, env)
    else
      for i = 1, #input do input[i][st.index] = i - 1 end
    end
  end
  return input
end

-- One step over the items of a (non-tuple) sequence, flattening the results.
local function run_step(st, seq, n, env, last)
  if st.sort then
    local r = st.sort(seq, env)
    if st.stages then r = run_stages(st.stages, r, env) end
    return r
  end
  local f, stages, key = st.f, st.stages, st.key
  local out, on = setmetatable({}, SEQ), 0
  local first_array, count = nil, 0
  for i = 1, n do
    local item = seq[i]
    local res
    if key then
      -- a plain name: an object's member directly
      if type(item) == "table" then
        local imt = getmetatable(item)
        if imt ~= nil and imt ~= ARR and imt ~= SEQ and imt ~= CONS and imt ~= FN then
          res = item[key]
        else
          res = f(item, env)
        end
      end
    else
      res = f(item, env)
    end
    if stages then
      for s = 1, #stages do res = stages[s].filter(res, env) end
    end
    if res ~= nil then
      count = count + 1
      local mt = getmetatable(res)
      if mt == ARR or mt == SEQ or mt == CONS or (mt == nil and type(res) == "table" and res[1] ~= nil) then
        if count == 1 and mt ~= SEQ then first_array = res end
        if mt == CONS then
          on = on + 1
          out[on] = res
        else
          for j = 1, #res do
            on = on + 1
            out[on] = res[j]
          end
        end
      else
        on = on + 1
        out[on] = res
      end
    end
  end
  if last and count == 1 and first_array then return first_array end
  return out
end

local function run_tuple_step(st, seq, n, tuples, env)
  if st.sort then
    local r
    if tuples then
      r = st.sort(tuples, env)
    else
      local sorted = st.sort(seq, env)
      r = setmetatable({}, SEQ)
      r.tuples = true
      for i = 1, #sorted do
        local tuple = { ["@"] = sorted[i] }
        if st.index then tuple[st.index] = i - 1 end
        r[i] = tuple
      end
    end
    if st.stages then r = run_stages(st.stages, r, env) end
    return r
  end
  local out, on = setmetatable({}, SEQ), 0
  out.tuples = true
  if tuples == nil then
    tuples = {}
    for i = 1, n do tuples[i] = { ["@"] = seq[i] } end
  end
  local f = st.f
  for e = 1, #tuples do
    local tb = tuples[e]
    local env2 = tuple_frame(env, tb)
    local res = f(tb["@"], env2)
    if res ~= nil then
      local rtuples = false
      if not is_array(res) then
        res = { res }
      else
        rtuples = getmetatable(res) == SEQ and res.tuples
      end
      for b = 1, #res do
        local tuple = {}
        for k, v in pairs(tb) do tuple[k] = v end
        if rtuples then
          for k, v in pairs(res[b]) do tuple[k] = v end
        else
          if st.focus then
            tuple[st.focus] = res[b]
            tuple["@"] = tb["@"]
          else
            tuple["@"] = res[b]
          end
          if st.index then tuple[st.index] = b - 1 end
          if st.ancestor then tuple[st.ancestor] = tb["@"] end
        end
        on = on + 1
        out[on] = tuple
      end
    end
  end
  if st.stages then out = run_stages(st.stages, out, env) end
  return out
end

-- A path of plain steps (no tuples, sort or constructed first step): while the context is a
-- single value, steps apply to it directly without building sequences.
local function simple_path(steps, nsteps, first_is_var, group)
  local function run(input, env)
    local cur, seq, n
    if not first_is_var and is_array(input) then
      seq, n = input, #input
    else
      cur = input
    end
    for i = 1, nsteps do
      local st = steps[i]
      local last = i == nsteps
      if seq == nil then
        local res = st.f(cur, env)
        local stages = st.stages
        if stages then
          for s = 1, #stages do res = stages[s].filter(res, env) end
        end
        if res == nil then return nil end
        local mt = type(res) == "table" and getmetatable(res)
        if mt ~= false and (mt == ARR or mt == SEQ or mt == CONS or (mt == nil and res[1] ~= nil)) then
          if mt == CONS then
            cur = res
          elseif mt == SEQ then
            if last then
              local out = setmetatable({}, SEQ)
              for j = 1, #res do out[j] = res[j] end
              return out
            end
            seq, n = res, #res
          else
            if last then return res end
            seq, n = res, #res
          end
        else
          cur = res
        end
      else
        local r = run_step(st, seq, n, env, last)
        if last then return r end
        n = #r
        if n == 0 then return nil end
        seq = r
      end
    end
    return cur
  end
  if not group then return run end
  return function(input, env) return group(run(input, env), env) end
end

local function compile_path(node)
  local steps = {}
  for i, step in ipairs(node.steps) do
    local st = {
      tuple = step.tuple, focus = step.focus, index = step.index,
      ancestor = step.ancestor and step.ancestor.label, consarray = step.consarray,
    }
    if step.type == "sort" then
      st.sort = compile_sort(step)
    else
      st.f = compile(step)
      if step.type == "name" and not (step.predicate or step.group or step.keepArray or step.tuple) then
        st.key = step.value
      end
    end
    st.stages = compile_stages(step.stages)
    steps[i] = st
  end
  local nsteps = #steps
  local first_is_var = node.steps[1].type == "variable"
  local keep_singleton = node.keepSingletonArray
  local path_tuple = node.tuple
  local group = node.group and compile_group(node.group)
  local simple = not keep_singleton and not path_tuple and not steps[1].consarray
  for _, st in ipairs(steps) do
    if st.tuple or st.focus or st.index or st.ancestor or st.sort then simple = false end
  end
  if simple then return simple_path(steps, nsteps, first_is_var, group) end
  return function(input, env)
    local seq, n
    if not first_is_var and is_array(input) then
      seq, n = input, #input
    else
      seq, n = { input }, 1
    end
    local result, tuples
    local is_tuple = false
    for i = 1, nsteps do
      local st = steps[i]
      if st.tuple then is_tuple = true end
      if i == 1 and st.consarray then
        result = st.f(seq, env)
      elseif is_tuple then
        tuples = run_tuple_step(st, seq, n, tuples, env)
      else
        result = run_step(st, seq, n, env, i == nsteps)
      end
      if not is_tuple and (result == nil or (type(result) == "table" and #result == 0)) then break end
      if st.focus == nil then
        seq = result
        n = type(seq) == "table" and #seq or 0
      end
    end
    if is_tuple then
      if path_tuple then
        result = tuples
      else
        result = setmetatable({}, SEQ)
        for i = 1, #tuples do result[i] = tuples[i]["@"] end
      end
    end
    if keep_singleton and result ~= nil then
      local mt = getmetatable(result)
      if mt == CONS then
        result = setmetatable({ result }, SEQ)
        mt = SEQ
      end
      if mt == SEQ then
        result.keep = true
      elseif mt ~= ARR and type(result) ~= "table" then
        result = setmetatable({ result, keep = true }, SEQ)
      end
    end
    if group then result = group(is_tuple and tuples or result, env) end
    return result
  end
end

local function numeric_operands(l, r, op, position)
  if l ~= nil and not check_numeric(l) then
    throw("T2001", { position = position, token = op, value = l })
  end
  if r ~= nil and not check_numeric(r) then
    throw("T2002", { position = position, token = op, value = r })
  end
  return l ~= nil and r ~= nil
end

local function string_of(v)
  if v == nil then return "" end
  return M.string(v)
end

-- Arithmetic in doubles as JavaScript does; integral results become integers again.
local tointeger = math.tointeger
local ARITH = {
  ["+"] = function(a, b) local x = a + b + 0.0 return tointeger(x) or x end,
  ["-"] = function(a, b) local x = a - b + 0.0 return tointeger(x) or x end,
  ["*"] = function(a, b) local x = (a + 0.0) * b return tointeger(x) or x end,
  ["/"] = function(a, b) local x = a / b return tointeger(x) or x end,
  ["%"] = function(a, b) return num(math.fmod(a + 0.0, b + 0.0)) end,
}

local function comparable(l, r, op, position)
  local tl, tr = type(l), type(r)
  local lc = tl == "nil" or tl == "string" or tl == "number"
  local rc = tr == "nil" or tr == "string" or tr == "number"
  if not lc or not rc then
    throw("T2010", { position = position, token = op, value = (tl == "string" or tl == "number") and r or l })
  end
  if tl == "nil" or tr == "nil" then return false end
  if tl ~= tr then throw("T2009", { position = position, token = op, value = l, value2 = r }) end
  return true
end

local function compile_binary(node)
  local op, position = node.value, node.position
  local lf, rf = compile(node.lhs), compile(node.rhs)
  if op == "and" then
    return function(input, env)
      local l = lf(input, env)
      if l ~= true and (l == false or l == nil or not to_boolean(l)) then return false end
      local r = rf(input, env)
      if r == true then return true end
      if r == false or r == nil then return false end
      return to_boolean(r) and true or false
    end
  elseif op == "or" then
    return function(input, env)
      local l = lf(input, env)
      if l == true or (l ~= false and l ~= nil and to_boolean(l)) then return true end
      local r = rf(input, env)
      if r == true then return true end
      if r == false or r == nil then return false end
      return to_boolean(r) and true or false
    end
  elseif op == "+" or op == "*" then
    -- the two commonest, inline
    local fn, plus = ARITH[op], op == "+"
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" and l - l == 0 and r - r == 0 then
        local x
        if plus then x = l + r + 0.0 else x = (l + 0.0) * r end
        return tointeger(x) or x
      end
      if numeric_operands(l, r, op, position) then return fn(l, r) end
      return nil
    end
  elseif ARITH[op] then
    local fn = ARITH[op]
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" and l - l == 0 and r - r == 0 then
        return fn(l, r)
      end
      if numeric_operands(l, r, op, position) then return fn(l, r) end
      return nil
    end
  elseif op == "=" or op == "!=" then
    local eq = op == "="
    local deep_equal = value.deep_equal
    local rnode = node.rhs
    if (rnode.type == "string" or rnode.type == "number") and not rnode.predicate and not rnode.group then
      -- comparing with a literal string or number: plain equality
      local k = rnode.value
      return function(input, env)
        local l = lf(input, env)
        if l == nil then return false end
        if l == k then return eq end
        return not eq
      end
    end
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if l == nil or r == nil then return false end
      if l == r then return eq end
      if type(l) ~= "table" or type(r) ~= "table" then return not eq end
      if deep_equal(l, r) then return eq end
      return not eq
    end
  elseif op == "<" then
    local rnode = node.rhs
    if rnode.type == "number" and not rnode.predicate and not rnode.group then
      local k = rnode.value
      return function(input, env)
        local l = lf(input, env)
        if type(l) == "number" then return l < k end
        if comparable(l, k, op, position) then return l < k end
        return nil
      end
    end
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" then return l < r end
      if comparable(l, r, op, position) then return l < r end
      return nil
    end
  elseif op == "<=" then
    local rnode = node.rhs
    if rnode.type == "number" and not rnode.predicate and not rnode.group then
      local k = rnode.value
      return function(input, env)
        local l = lf(input, env)
        if type(l) == "number" then return l <= k end
        if comparable(l, k, op, position) then return l <= k end
        return nil
      end
    end
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" then return l <= r end
      if comparable(l, r, op, position) then return l <= r end
      return nil
    end
  elseif op == ">" then
    local rnode = node.rhs
    if rnode.type == "number" and not rnode.predicate and not rnode.group then
      local k = rnode.value
      return function(input, env)
        local l = lf(input, env)
        if type(l) == "number" then return l > k end
        if comparable(l, k, op, position) then return l > k end
        return nil
      end
    end
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" then return l > r end
      if comparable(l, r, op, position) then return l > r end
      return nil
    end
  elseif op == ">=" then
    local rnode = node.rhs
    if rnode.type == "number" and not rnode.predicate and not rnode.group then
      local k = rnode.value
      return function(input, env)
        local l = lf(input, env)
        if type(l) == "number" then return l >= k end
        if comparable(l, k, op, position) then return l >= k end
        return nil
      end
    end
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "number" and type(r) == "number" then return l >= r end
      if comparable(l, r, op, position) then return l >= r end
      return nil
    end
  elseif op == "&" then
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if type(l) == "string" and type(r) == "string" then return l .. r end
      return string_of(l) .. string_of(r)
    end
  elseif op == ".." then
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if l ~= nil and (type(l) ~= "number" or l ~= floor(l)) then
        throw("T2003", { position = position, token = op, value = l })
      end
      if r ~= nil and (type(r) ~= "number" or r ~= floor(r)) then
        throw("T2004", { position = position, token = op, value = r })
      end
      if l == nil or r == nil then return nil end
      if l > r then return nil end
      local size = r - l + 1
      if size > 1e7 then throw("D2014", { position = position, token = op, value = size }) end
      local out = setmetatable({}, SEQ)
      l = math.tointeger(l)
      for i = 1, math.tointeger(size) do out[i] = l + i - 1 end
      return out
    end
  elseif op == "in" then
    return function(input, env)
      local l, r = lf(input, env), rf(input, env)
      if l == nil or r == nil then return false end
      if not is_array(r) then return l == r end
      for i = 1, #r do
        if r[i] == l then return true end
      end
      return false
    end
  end
  throw("D2005", { position = position, token = op })
end

local function compile_array(node)
  local items = {}
  for i, item in ipairs(node.expressions) do
    items[i] = { f = compile(item), nested = item.type == "unary" and item.value == "[" }
  end
  local mt = node.consarray and CONS or ARR
  local nitems = #items
  return function(input, env)
    local out, n = {}, 0
    for i = 1, nitems do
      local it = items[i]
      local v = it.f(input, env)
      if v ~= nil then
        if it.nested or not is_array(v) then
          n = n + 1
          out[n] = v
        else
          for j = 1, #v do
            n = n + 1
            out[n] = v[j]
          end
        end
      end
    end
    return setmetatable(out, mt)
  end
end

-- Can a call's frame outlive the call (a closure, thunk, transform or binding made in the
-- body, or $eval)? If not, callbacks may reuse one frame from call to call.
local CAPTURING = { lambda = true, transform = true, partial = true, bind = true }
function captures_frame(node)
  if type(node) ~= "table" then return false end
  if CAPTURING[node.type] then return true end
  if node.type == "variable" and node.value == "eval" then return true end
  for k, v in pairs(node) do
    if type(v) == "table" and k ~= "slot" and k ~= "ancestor" and k ~= "seekingParent"
      and k ~= "signature" and k ~= "sig" and captures_frame(v) then
      return true
    end
  end
  return false
end

local function make_lambda(node, input, env, tail)
  local f = {
    kind = "lambda", input = input, env = env, params = node.param_names,
    body = node.compiled_body, sig = node.sig, reuse_frame = node.reuse_frame,
    plain = not node.sig and not tail, -- M.invoke may bind its parameters directly
  }
  if tail then
    f.thunk = true
    f.tail_proc = tail.proc
    f.tail_args = tail.args
    f.tail_position = tail.position
    f.tail_token = tail.token
  end
  return setmetatable(f, FN)
end

local function proc_name(pnode)
  if pnode.type == "path" then return pnode.steps[1].value end
  return pnode.value
end

local function compile_function(node)
  local pf = compile(node.procedure)
  local args = {}
  for i, a in ipairs(node.arguments) do args[i] = compile(a) end
  local nargs = #args
  local position = node.position
  local pnode = node.procedure
  local token = proc_name(pnode)
  local hint = pnode.type == "path" and pnode.steps[1].value
  -- applyto: the context value from ~> (prepended as first argument)
  local arg1, arg2 = args[1], args[2]
  local sites = rt.sites
  return function(input, env, applyto, has_applyto)
    local proc = pf(input, env)
    if proc == nil and hint and env[hint] ~= nil then
      throw("T1005", { position = position, token = hint })
    end
    local vals, n
    if has_applyto then
      vals = { applyto }
      for i = 1, nargs do vals[1 + i] = args[i](input, env) end
      n = 1 + nargs
    elseif nargs == 1 then
      vals, n = { (arg1(input, env)) }, 1
    elseif nargs == 2 then
      vals, n = { (arg1(input, env)), (arg2(input, env)) }, 2
    else
      vals, n = {}, nargs
      for i = 1, nargs do vals[i] = args[i](input, env) end
    end
    -- the call site (push_site inline)
    local ns = rt.nsites + 1
    rt.nsites = ns
    local site = sites[ns]
    if site == nil then
      site = {}
      sites[ns] = site
    end
    site.position, site.token, site.weak = position, token, false
    local r
    if type(proc) == "table" and proc.kind == "native" and getmetatable(proc) == FN then
      -- a built-in: check the arguments and call it (built-ins return no tail calls)
      local a, an = vals, n
      if proc.sig then a, an = proc.sig:validate(vals, n, input) end
      r = proc.impl(a, an, input, env, proc)
    else
      r = apply_inner(proc, vals, n, input, env)
      if type(r) == "table" and r.thunk and getmetatable(r) == FN then
        site.weak = true -- this call is over; its tail calls run next
        r = trampoline(r, input, env)
      end
    end
    rt.nsites = ns - 1
    return r
  end
end

local function compile_partial(node)
  local pf = compile(node.procedure)
  local args, holes = {}, 0
  for i, a in ipairs(node.arguments) do
    if a.type == "operator" and a.value == "?" then
      args[i] = false
      holes = holes + 1
    else
      args[i] = compile(a)
    end
  end
  local nargs = #args
  local position = node.position
  local pnode = node.procedure
  local hint = pnode.type == "path" and pnode.steps[1].value
  return function(input, env)
    local vals = {}
    for i = 1, nargs do
      if args[i] then vals[i] = args[i](input, env) else vals[i] = M.HOLE end
    end
    local proc = pf(input, env)
    if proc == nil and hint and env[hint] ~= nil then
      throw("T1007", { position = position, token = hint })
    end
    if type(proc) ~= "table" or getmetatable(proc) ~= FN then
      throw("T1008", { position = position, token = proc_name(pnode) })
    end
    if proc.kind == "lambda" and not proc.native_body then
      local penv = new_frame(proc.env)
      local unbound = {}
      for i, pname in ipairs(proc.params) do
        local v = vals[i]
        if v == M.HOLE then
          unbound[#unbound + 1] = pname
        else
          penv[pname] = v
        end
      end
      return setmetatable({ kind = "lambda", input = proc.input, env = penv, params = unbound,
        body = proc.body }, FN)
    end
    -- a built-in: fill the holes when applied; arguments past the template stay missing
    return setmetatable({ kind = "partial", target = proc, args = vals, nargs = nargs, nholes = holes }, FN)
  end
end

local function compile_apply(node)
  local lf = compile(node.lhs)
  local position = node.position
  if node.rhs.type == "function" then
    local ff = compile_function(node.rhs)
    return function(input, env)
      local l = lf(input, env)
      return ff(input, env, l, true)
    end
  end
  local rf = compile(node.rhs)
  return function(input, env)
    local l = lf(input, env)
    local f = rf(input, env)
    if type(f) ~= "table" or getmetatable(f) ~= FN then
      throw("T2006", { position = position, value = f })
    end
    if type(l) == "table" and getmetatable(l) == FN then
      return setmetatable({ kind = "chain", first = l, second = f }, FN)
    end
    return apply(f, { l }, 1, nil, env)
  end
end

local function compile_transform(node)
  local pattern, update = compile(node.pattern), compile(node.update)
  local delete = node.delete and compile(node.delete)
  local position = node.position
  local upos = node.update.position
  local dpos = node.delete and node.delete.position
  local sig = signature.parse("<(oa):o>", position)
  return function(_, env)
    local function transformer(args, _n, _input, _env)
      local obj = args[1]
      if obj == nil then return nil end
      local clone = env.clone
      if type(clone) ~= "table" or getmetatable(clone) ~= FN then throw("T2013", { position = position }) end
      local result = apply(clone, { obj }, 1, nil, env)
      local matches = pattern(result, env)
      if matches ~= nil then
        if not is_array(matches) then matches = { matches } end
        for i = 1, #matches do
          local match = matches[i]
          local upd = update(match, env)
          if upd ~= nil then
            if not is_object(upd) or getmetatable(upd) == FN then
              throw("T2011", { position = upos, value = upd })
            end
            if is_object(match) then
              for _, k in ipairs(value.keys(upd)) do
                if upd[k] ~= nil then value.set(match, k, upd[k]) end
              end
            end
          end
          if delete then
            local dels = delete(match, env)
            if dels ~= nil then
              local val = dels
              if not is_array(dels) then dels = { dels } end
              for j = 1, #dels do
                if type(dels[j]) ~= "string" then throw("T2012", { position = dpos, value = val }) end
              end
              if is_object(match) then
                for j = 1, #dels do value.set(match, dels[j], nil) end
              end
            end
          end
        end
      end
      return result
    end
    return setmetatable({ kind = "native", impl = transformer, sig = sig, name = "transform" }, FN)
  end
end

-- Does evaluating node bind a variable in the enclosing block's frame?
local function binds_here(node)
  if type(node) ~= "table" then return false end
  if node.type == "bind" then return true end
  if node.type == "block" or node.type == "lambda" then return false end
  for k, v in pairs(node) do
    if type(v) == "table" and k ~= "slot" and k ~= "ancestor" and k ~= "seekingParent"
      and k ~= "signature" and k ~= "sig" and binds_here(v) then
      return true
    end
  end
  return false
end

local function compile_block(node)
  local list = {}
  for i, e in ipairs(node.expressions) do list[i] = compile(e) end
  local n = #list
  if n == 0 then return function() return nil end end
  local needs_frame = false
  for _, e in ipairs(node.expressions) do
    if binds_here(e) then needs_frame = true end
  end
  if not needs_frame then
    if n == 1 then return list[1] end
    return function(input, env)
      local r
      for i = 1, n do r = list[i](input, env) end
      return r
    end
  end
  return function(input, env)
    local frame = new_frame(env)
    local r
    for i = 1, n do r = list[i](input, frame) end
    return r
  end
end

local function compile_unary_minus(node)
  local f = compile(node.expression)
  local position = node.position
  return function(input, env)
    local v = f(input, env)
    if v == nil then return nil end
    if check_numeric(v) then return num(-v) end
    throw("D1002", { position = position, token = "-", value = v })
  end
end

local function compile_wildcard()
  return function(input)
    local out = setmetatable({}, SEQ)
    if type(input) ~= "table" then return out end
    if getmetatable(input) == SEQ and input.outer and #input > 0 then input = input[1] end
    if type(input) ~= "table" or getmetatable(input) == FN then return out end
    local vals
    if is_array(input) then
      vals = input
    else
      vals = {}
      for _, k in ipairs(value.keys(input)) do vals[#vals + 1] = input[k] end
    end
    local plain = false
    for i = 1, #vals do
      local v = vals[i]
      if v ~= nil then
        if is_array(v) then
          value.flatten(v, out)
          plain = true
        else
          out[#out + 1] = v
        end
      end
    end
    if plain then setmetatable(out, ARR) end
    return out
  end
end

local function descend(v, out)
  if is_array(v) then
    for i = 1, #v do descend(v[i], out) end
    return
  end
  out[#out + 1] = v
  if type(v) == "table" and getmetatable(v) ~= FN then
    for _, k in ipairs(value.keys(v)) do
      if v[k] ~= nil then descend(v[k], out) end
    end
  end
end

local function compile_descendant()
  return function(input)
    if input == nil then return nil end
    local out = setmetatable({}, SEQ)
    descend(input, out)
    if #out == 1 then return out[1] end
    return out
  end
end

local function compile_condition(node)
  local cf, tf = compile(node.condition), compile(node["then"])
  local ef = node["else"] and compile(node["else"])
  return function(input, env)
    if to_boolean(cf(input, env)) then return tf(input, env) end
    if ef then return ef(input, env) end
    return nil
  end
end

local function compile_lambda(node)
  local names = {}
  for i, a in ipairs(node.arguments) do names[i] = a.value end
  node.param_names = names
  node.sig = node.signature
  if node.thunk then
    local body = node.body
    local tail = { proc = compile(body.procedure), args = {}, position = body.procedure.position,
      token = proc_name(body.procedure) }
    for i, a in ipairs(body.arguments) do tail.args[i] = compile(a) end
    -- a thunk's own body (when applied normally): the call itself
    node.compiled_body = compile(body)
    return function(input, env) return make_lambda(node, input, env, tail) end
  end
  node.compiled_body = compile(node.body)
  node.reuse_frame = not captures_frame(node.body)
  return function(input, env) return make_lambda(node, input, env, nil) end
end

local function compile_regex(node)
  local f = M.make_regex(node.value.pattern, node.value.flags, node.position)
  return function() return f end
end

local function compile_raw(node)
  local t = node.type
  if t == "path" then return compile_path(node) end
  if t == "binary" then return compile_binary(node) end
  if t == "unary" then
    if node.value == "-" then return compile_unary_minus(node) end
    if node.value == "[" then return compile_array(node) end
    if node.value == "{" then return compile_group(node) end
  end
  if t == "name" then
    local key, keep = node.value, node.keepArray
    return function(input)
      if type(input) ~= "table" then return nil end
      local mt = getmetatable(input)
      if mt ~= nil and mt ~= ARR and mt ~= SEQ and mt ~= CONS and mt ~= FN then return input[key] end
      return finish_seq(lookup(input, key), keep)
    end
  end
  if t == "string" or t == "number" or t == "value" then
    local v = node.value
    return function() return v end
  end
  if t == "wildcard" then return compile_wildcard() end
  if t == "descendant" then return compile_descendant() end
  if t == "parent" then
    local label = node.slot.label
    return function(_, env) return env[label] end
  end
  if t == "condition" then return compile_condition(node) end
  if t == "block" then return compile_block(node) end
  if t == "bind" then
    local name, rf = node.lhs.value, compile(node.rhs)
    return function(input, env)
      local v = rf(input, env)
      env[name] = v
      return v
    end
  end
  if t == "regex" then return compile_regex(node) end
  if t == "function" then return compile_function(node) end
  if t == "variable" then
    local name = node.value
    if name == "" then
      return function(input)
        if type(input) == "table" and getmetatable(input) == SEQ and input.outer then return input[1] end
        return input
      end
    end
    return function(_, env) return env[name] end
  end
  if t == "lambda" then return compile_lambda(node) end
  if t == "partial" then return compile_partial(node) end
  if t == "apply" then return compile_apply(node) end
  if t == "transform" then return compile_transform(node) end
  if t == "operator" and node.value == "?" then return function() return M.HOLE end end
  throw("S0206", { position = node.position, token = t })
end

-- Nodes whose result is never a sequence need no final sequence rule.
local NOT_SEQ_BINARY = { ["+"] = true, ["-"] = true, ["*"] = true, ["/"] = true, ["%"] = true,
  ["="] = true, ["!="] = true, ["<"] = true, ["<="] = true, [">"] = true, [">="] = true,
  ["&"] = true, ["and"] = true, ["or"] = true, ["in"] = true }

function never_sequence(node)
  local t = node.type
  if t == "string" or t == "number" or t == "value" or t == "lambda" or t == "regex"
    or t == "condition" or t == "block" or t == "transform" or t == "partial" then
    return true
  end
  if t == "binary" then return NOT_SEQ_BINARY[node.value] == true end
  if t == "name" then return true end -- finishes its own result
  if t == "variable" then return not node.keepArray end -- variables hold finished values
  if t == "unary" then return not node.keepArray end
  return false
end

-- A path of plain names, or a variable then names ($v.a.b): while every value on the way is an
-- object, each step is one member access. Anything else (arrays, strings) takes the general way,
-- which evaluates the same steps again from the start (they have no side effects).
local function plain_step(step)
  return not (step.stages or step.predicate or step.group or step.keepArray or step.tuple or step.focus
    or step.index or step.ancestor)
end

local function plain_chain(node, general)
  if node.keepSingletonArray or node.group or node.keepArray or node.tuple or node.predicate then
    return general
  end
  local steps = node.steps
  local first = steps[1]
  if not plain_step(first) or (first.type ~= "name" and first.type ~= "variable") then return general end
  if first.type == "variable" and first.value == "" then return general end
  local keys = {}
  for i = 2, #steps do
    local step = steps[i]
    if step.type ~= "name" or not plain_step(step) then return general end
    keys[#keys + 1] = step.value
  end
  local nkeys = #keys
  local first_var = first.type == "variable" and first.value
  local first_key = first.value
  if nkeys == 1 then
    -- the commonest: $v.key and name.key
    local k1 = keys[1]
    return function(input, env)
      local v
      if first_var then
        v = env[first_var]
      else
        if type(input) ~= "table" then return general(input, env) end
        local mt = getmetatable(input)
        if mt == nil or mt == ARR or mt == SEQ or mt == CONS or mt == FN then return general(input, env) end
        v = input[first_key]
      end
      if type(v) == "table" then
        local mt = getmetatable(v)
        if mt ~= nil and mt ~= ARR and mt ~= SEQ and mt ~= CONS and mt ~= FN then return v[k1] end
      elseif v == nil then
        return nil
      end
      return general(input, env)
    end
  end
  if nkeys == 0 and not first_var then
    return function(input, env)
      if type(input) == "table" then
        local mt = getmetatable(input)
        if mt ~= nil and mt ~= ARR and mt ~= SEQ and mt ~= CONS and mt ~= FN then return input[first_key] end
      end
      return general(input, env)
    end
  end
  return function(input, env)
    local v
    if first_var then
      v = env[first_var]
    else
      if type(input) ~= "table" then return general(input, env) end
      local mt = getmetatable(input)
      if mt == nil or mt == ARR or mt == SEQ or mt == CONS or mt == FN then return general(input, env) end
      v = input[first_key]
    end
    for i = 1, nkeys do
      if type(v) ~= "table" then
        if v == nil then return nil end
        return general(input, env)
      end
      local mt = getmetatable(v)
      if mt == nil or mt == ARR or mt == SEQ or mt == CONS or mt == FN then return general(input, env) end
      v = v[keys[i]]
    end
    if first_var and nkeys == 0 then return general(input, env) end
    return v
  end
end

function compile(node)
  local f = compile_raw(node)
  local t = node.type
  if node.predicate then
    local filters = {}
    for i, p in ipairs(node.predicate) do filters[i] = compile_filter(p.expr) end
    local inner = f
    f = function(input, env)
      local r = inner(input, env)
      for i = 1, #filters do r = filters[i](r, env) end
      return r
    end
  end
  if t ~= "path" and node.group then
    local g = compile_group(node.group)
    local inner = f
    f = function(input, env) return g(inner(input, env), env) end
  end
  if node.predicate or not never_sequence(node) then
    local keep = node.keepArray
    local inner = f
    if t == "function" then
      f = function(input, env, a, b) return finish_seq(inner(input, env, a, b), keep) end
    else
      f = function(input, env) return finish_seq(inner(input, env), keep) end
    end
  end
  if node.type == "path" and not counting then f = plain_chain(node, f) end
  if counting then
    local inner = f
    f = function(input, env, a, b)
      local d = rt.edepth + 1
      if d > rt.max_depth then throw("U1001") end
      rt.edepth = d
      local r = inner(input, env, a, b)
      rt.edepth = d - 1
      return r
    end
  end
  return f
end

--- Compile a processed AST; counted = true adds expression-depth checks (for max_depth).
function M.compile(ast, counted)
  counting = counted and true or false
  local ok, f = pcall(compile, ast)
  counting = false
  if not ok then error(f, 0) end
  return f
end

--- String conversion as $string: set by the function library.
M.string = nil
--- Regex literal -> function value: set by the function library.
M.make_regex = nil

signature.init(value.symbol)
signature.throw = throw
signature.wrap_array = function(v) return setmetatable({ v }, ARR) end

M.wrap = wrap
value.on_nonfinite = function(x) throw("D1001", { value = x }) end
M.check_numeric = check_numeric
M.tuple_frame = tuple_frame

return M
