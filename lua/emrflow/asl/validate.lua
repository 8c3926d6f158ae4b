-- emrflow.asl.validate: static checks of an ASL definition, each problem located by a
-- JSON pointer into the definition.
--
--   validate.check(def, { resolve = fn(resource) --> impl | nil }) --> { { path =, message = } }
--
-- It rejects what AWS Step Functions rejects at CreateStateMachine (unknown state type or
-- field, missing or dangling Next/End, unreachable states, bad paths, intrinsics and
-- templates, bad Retry/Catch, field types and ranges) and nothing it accepts.

local json = require "emrflow.json"
local time = require "emrflow.time"
local jsonpath = require "emrflow.asl.jsonpath"
local intrinsics = require "emrflow.asl.intrinsics"
local engine = require "emrflow.asl.engine"
local query = require "emrflow.asl.query"

local STATES = engine.STATES

local M = {}

local NULL = json.null
local fmt = string.format

local function ptr_escape(s)
  s = tostring(s)
  if not s:find("[~/]") then return s end
  return (s:gsub("~", "~0"):gsub("/", "~1"))
end

local function join(path, key)
  return path .. "/" .. ptr_escape(key)
end

local function is_array(v)
  if type(v) ~= "table" then return false end
  if json.is_array(v) then return true end
  if json.is_object(v) then return false end
  return v[1] ~= nil
end

local function is_object(v)
  return type(v) == "table" and not is_array(v)
end

local function is_int(v)
  return math.type(v) == "integer"
    or (math.type(v) == "float" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  if not pcall(table.sort, keys) then
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  end
  return keys
end

---------------------------------------------------------------------------
-- Field tables
---------------------------------------------------------------------------

local function set(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

local COMMON = { "Type", "Comment", "QueryLanguage" }
local ALLOWED = { JSONPath = {}, JSONata = {} }
for t, st in pairs(STATES) do
  for lang, list in pairs(st.fields) do
    local s = set(list)
    for _, c in ipairs(COMMON) do s[c] = true end
    ALLOWED[lang][t] = s
  end
end

local TOP_FIELDS = set { "Comment", "StartAt", "States", "Version", "TimeoutSeconds", "QueryLanguage" }
local BRANCH_FIELDS = set { "Comment", "StartAt", "States", "QueryLanguage" }
local PROCESSOR_FIELDS = set { "Comment", "StartAt", "States", "ProcessorConfig", "QueryLanguage" }
local RETRY_FIELDS = set { "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
  "JitterStrategy", "Comment" }
local CATCH_FIELDS = set { "ErrorEquals", "Next", "ResultPath", "Assign", "Output", "Comment" }

local COMPARATORS = {}
for _, base in ipairs { "StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals",
  "StringGreaterThanEquals", "NumericEquals", "NumericLessThan", "NumericGreaterThan",
  "NumericLessThanEquals", "NumericGreaterThanEquals", "BooleanEquals", "TimestampEquals",
  "TimestampLessThan", "TimestampGreaterThan", "TimestampLessThanEquals", "TimestampGreaterThanEquals" } do
  local kind = base:match("^String") and "string" or base:match("^Numeric") and "number"
    or base:match("^Boolean") and "boolean" or "timestamp"
  COMPARATORS[base] = kind
  COMPARATORS[base .. "Path"] = "path"
end
COMPARATORS.StringMatches = "string"
for _, k in ipairs { "IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp" } do
  COMPARATORS[k] = "boolean"
end

local VAR_NAME = "^[%a_][%w_]*$"

---------------------------------------------------------------------------
-- The checker
---------------------------------------------------------------------------

local Checker = {}
Checker.__index = Checker
Checker.BRANCH_FIELDS = BRANCH_FIELDS
Checker.PROCESSOR_FIELDS = PROCESSOR_FIELDS

function Checker:add(path, message)
  self.problems[#self.problems + 1] = { path = path, message = message }
end

local function is_jsonata_expr(v)
  return type(v) == "string" and v:match("^%s*{%%.*%%}%s*$") ~= nil
end

-- A Path field: a JSONPath (with $, $$ or $var roots), or null where allowed.
function Checker:path(v, path, opts)
  opts = opts or {}
  if v == NULL then
    if not opts.nullable then self:add(path, "must be a JSONPath string, not null") end
    return
  end
  if type(v) ~= "string" then
    self:add(path, "must be a JSONPath string")
    return
  end
  if opts.intrinsic and v:match("^States%.") then
    local ok, msg = intrinsics.compile(v)
    if not ok then self:add(path, fmt("invalid intrinsic function %q: %s", v, tostring(msg))) end
    return
  end
  local compiled, msg = jsonpath.compile(v)
  if not compiled then
    self:add(path, fmt("invalid JSONPath %q: %s", v, tostring(msg)))
    return
  end
  if opts.reference and not jsonpath.is_reference(v) then
    self:add(path, fmt("%q must be a reference path (only names and indexes)", v))
  end
  if opts.input_only and (v:sub(1, 2) == "$$" or v:match("^%$[%a_]")) then
    self:add(path, fmt("%q must start with '$' (the state input)", v))
  end
end

-- Payload templates: every "key.$" holds a path or an intrinsic function call.
function Checker:template(v, path, is_assign)
  if is_assign and not is_object(v) then
    self:add(path, "Assign must be an object")
    return
  end
  if not is_object(v) then
    if is_array(v) then
      for i = 1, #v do self:template(v[i], join(path, i - 1)) end
    end
    return
  end
  for _, k in ipairs(sorted_keys(v)) do
    local x = v[k]
    local p = join(path, k)
    if type(k) ~= "string" then
      self:add(p, "object keys must be strings")
    else
      if is_assign then
        local name = k:gsub("%.%$$", "")
        if not name:match(VAR_NAME) then
          self:add(p, fmt("invalid variable name %q (a letter or '_', then letters, digits or '_')", name))
        elseif name == "states" then
          self:add(p, "'$states' is a reserved variable name")
        else
          self:outer_collision(name, p)
        end
      end
      if k:sub(-2) == ".$" then
        if type(x) ~= "string" then
          self:add(p, "the value of a field ending in '.$' must be a string (a path or an intrinsic "
            .. "function)")
        elseif x:match("^States%.") then
          local ok, msg = intrinsics.compile(x)
          if not ok then self:add(p, fmt("invalid intrinsic function %q: %s", x, tostring(msg))) end
        elseif x:sub(1, 1) == "$" then
          local ok, msg = jsonpath.compile(x)
          if not ok then self:add(p, fmt("invalid JSONPath %q: %s", x, tostring(msg))) end
        else
          self:add(p, fmt("%q is neither a JSONPath (starting with '$') nor an intrinsic function", x))
        end
      else
        self:template(x, p)
      end
    end
  end
end

function Checker:positive_int(v, path, allow_zero)
  if not is_int(v) or v < (allow_zero and 0 or 1) then
    self:add(path, allow_zero and "must be a non-negative integer" or "must be a positive integer")
    return false
  end
  return true
end

function Checker:error_equals(v, path, retry)
  if not is_array(v) or #v == 0 then
    self:add(path, "ErrorEquals must be a non-empty array of error names")
    return false
  end
  local has_all = false
  for i, e in ipairs(v) do
    if type(e) ~= "string" then
      self:add(join(path, i - 1), "error names must be strings")
    elseif e == "States.ALL" then
      has_all = true
      if #v > 1 then self:add(join(path, i - 1), "States.ALL must appear alone in ErrorEquals") end
    end
  end
  local _ = retry
  return has_all
end

function Checker:retriers(list, path, lang)
  if not is_array(list) then
    self:add(path, "Retry must be an array")
    return
  end
  for i, r in ipairs(list) do
    local p = join(path, i - 1)
    if not is_object(r) then
      self:add(p, "a retrier must be an object")
    else
      for _, k in ipairs(sorted_keys(r)) do
        if not RETRY_FIELDS[k] then self:add(join(p, k), fmt("field '%s' is not allowed in a retrier", k)) end
      end
      self:comment(r, p)
      local has_all = self:error_equals(r.ErrorEquals, join(p, "ErrorEquals"), true)
      if has_all and i < #list then
        self:add(join(p, "ErrorEquals"), "a retrier with States.ALL must be the last one")
      end
      if r.IntervalSeconds ~= nil then self:positive_int(r.IntervalSeconds, join(p, "IntervalSeconds")) end
      if r.MaxAttempts ~= nil then self:positive_int(r.MaxAttempts, join(p, "MaxAttempts"), true) end
      if r.MaxDelaySeconds ~= nil then self:positive_int(r.MaxDelaySeconds, join(p, "MaxDelaySeconds")) end
      if r.BackoffRate ~= nil and (type(r.BackoffRate) ~= "number" or r.BackoffRate < 1.0) then
        self:add(join(p, "BackoffRate"), "BackoffRate must be a number of at least 1.0")
      end
      if r.JitterStrategy ~= nil and r.JitterStrategy ~= "FULL" and r.JitterStrategy ~= "NONE" then
        self:add(join(p, "JitterStrategy"), "JitterStrategy must be \"FULL\" or \"NONE\"")
      end
    end
  end
  local _ = lang
end

function Checker:catchers(list, path, lang, scope)
  if not is_array(list) then
    self:add(path, "Catch must be an array")
    return
  end
  for i, c in ipairs(list) do
    local p = join(path, i - 1)
    if not is_object(c) then
      self:add(p, "a catcher must be an object")
    else
      for _, k in ipairs(sorted_keys(c)) do
        if not CATCH_FIELDS[k] then self:add(join(p, k), fmt("field '%s' is not allowed in a catcher", k)) end
      end
      self:comment(c, p)
      local has_all = self:error_equals(c.ErrorEquals, join(p, "ErrorEquals"))
      if has_all and i < #list then
        self:add(join(p, "ErrorEquals"), "a catcher with States.ALL must be the last one")
      end
      self:target(c.Next, join(p, "Next"), scope, true)
      if c.ResultPath ~= nil then
        if lang == "JSONata" then
          self:add(join(p, "ResultPath"), "ResultPath is not allowed in a JSONata catcher")
        else
          self:path(c.ResultPath, join(p, "ResultPath"),
            { nullable = true, reference = true, input_only = true })
        end
      end
      if c.Output ~= nil and lang ~= "JSONata" then
        self:add(join(p, "Output"), "Output is only allowed in JSONata catchers")
      end
      if c.Assign ~= nil then self:assign(c.Assign, join(p, "Assign"), lang) end
    end
  end
end

function Checker:assign(v, path, lang)
  if lang == "JSONata" then
    if not is_object(v) then
      self:add(path, "Assign must be an object")
      return
    end
    for _, k in ipairs(sorted_keys(v)) do
      if type(k) ~= "string" or not k:match(VAR_NAME) then
        self:add(join(path, k), fmt("invalid variable name %q", tostring(k)))
      elseif k == "states" then
        self:add(join(path, k), "'$states' is a reserved variable name")
      else
        self:outer_collision(k, join(path, k))
      end
    end
    return
  end
  self:template(v, path, true)
end

-- A Parallel branch or inline Map iteration reads the variables of the scopes around it, and its
-- own assignments stay local; its variable names must not collide with outer ones (ref §10).
function Checker:outer_collision(name, path)
  local where = self.outer_vars[name]
  if where then
    self:add(path, fmt("variable '%s' is already assigned in an outer scope (at %s); a branch or "
      .. "iteration cannot assign a variable of its enclosing scope", name, where))
  end
end

-- The variable names assigned by the states of one scope (not nested ones): name -> pointer.
local function scope_assignments(states, spath, into)
  local function add_keys(assign, p)
    if not is_object(assign) then return end
    for k in pairs(assign) do
      if type(k) == "string" then
        local name = k:gsub("%.%$$", "")
        if into[name] == nil then into[name] = join(p, k) end
      end
    end
  end
  for name, st in pairs(states) do
    if type(name) == "string" and is_object(st) then
      local p = join(spath, name)
      add_keys(st.Assign, join(p, "Assign"))
      for _, list in ipairs { "Choices", "Catch" } do
        if is_array(st[list]) then
          for i, r in ipairs(st[list]) do
            if is_object(r) then add_keys(r.Assign, join(join(join(p, list), i - 1), "Assign")) end
          end
        end
      end
    end
  end
  return into
end

-- Checks a nested scope (branch, item processor) with the current scope's variables as outer ones.
function Checker:nested(fn, isolated)
  local saved = self.outer_vars
  self.outer_vars = isolated and {} or self.scope_vars
  fn()
  self.outer_vars = saved
end

-- A transition target in the current scope (states of this machine, branch or processor).
function Checker:target(name, path, scope, required)
  if name == nil then
    if required then self:add(path, "is required") end
    return
  end
  if type(name) ~= "string" then
    self:add(path, "must be the name of a state")
    return
  end
  if scope.states[name] == nil then
    self:add(path, fmt("no state named %q here", name))
    return
  end
  scope.edges[#scope.edges + 1] = name
end

function Checker:choice_rule(r, path, top, lang)
  if not is_object(r) then
    self:add(path, "a choice rule must be an object")
    return
  end
  self:comment(r, path)
  if lang == "JSONata" then
    if r.Condition == nil then self:add(join(path, "Condition"), "is required in a JSONata choice rule")
    elseif type(r.Condition) ~= "boolean" and not is_jsonata_expr(r.Condition) then
      self:add(join(path, "Condition"), "must be a boolean or a {% JSONata %} expression")
    end
    for _, k in ipairs(sorted_keys(r)) do
      if not (k == "Condition" or k == "Next" or k == "Assign" or k == "Output" or k == "Comment") then
        self:add(join(path, k), fmt("field '%s' is not allowed in a JSONata choice rule", tostring(k)))
      end
    end
    return
  end
  local ops = {}
  for _, k in ipairs(sorted_keys(r)) do
    if COMPARATORS[k] or k == "And" or k == "Or" or k == "Not" then
      ops[#ops + 1] = k
    elseif k == "Variable" or k == "Comment" or (top and (k == "Next" or k == "Assign")) then
      local _ = k
    else
      self:add(join(path, k), fmt("field '%s' is not allowed in a choice rule%s", tostring(k),
        top and "" or " (nested rules have no Next or Assign)"))
    end
  end
  if #ops ~= 1 then
    self:add(path, #ops == 0 and "a choice rule needs one comparison operator, or And, Or or Not"
      or "a choice rule must have exactly one operator, found " .. table.concat(ops, ", "))
    return
  end
  local op = ops[1]
  local v = r[op]
  if op == "And" or op == "Or" then
    if r.Variable ~= nil then self:add(join(path, "Variable"), "Variable is not allowed with " .. op) end
    if not is_array(v) or #v == 0 then
      self:add(join(path, op), op .. " must be a non-empty array of rules")
    else
      for i, sub in ipairs(v) do self:choice_rule(sub, join(join(path, op), i - 1), false, lang) end
    end
    return
  end
  if op == "Not" then
    if r.Variable ~= nil then self:add(join(path, "Variable"), "Variable is not allowed with Not") end
    self:choice_rule(v, join(path, op), false, lang)
    return
  end
  if r.Variable == nil then
    self:add(join(path, "Variable"), "is required with " .. op)
  else
    self:path(r.Variable, join(path, "Variable"))
  end
  local kind = COMPARATORS[op]
  local p = join(path, op)
  if kind == "path" then
    self:path(v, p)
  elseif kind == "timestamp" then
    if type(v) ~= "string" then
      self:add(p, op .. " takes a timestamp string")
    elseif not time.parse_iso(v) then
      self:add(p, fmt("%s takes an ISO-8601 extended offset date-time string, got %q", op, v))
    end
  elseif type(v) ~= kind then
    self:add(p, fmt("%s takes a %s", op, kind))
  end
end

-- The fields of a JSONata state that may hold expressions, compiled by the query language at
-- load time so that a syntax error is a located problem (nothing to do while the language
-- module is not installed: running such a state fails with a clear error).
local EXPRESSION_FIELDS = { "Arguments", "Output", "Assign", "Items", "ItemSelector", "Seconds", "Timestamp",
  "Error", "Cause", "MaxConcurrency", "ToleratedFailureCount", "ToleratedFailurePercentage", "TimeoutSeconds",
  "HeartbeatSeconds", "Credentials" }

function Checker:expressions(def, path)
  local q = query.get("JSONata")
  if not q then return end
  local function check(v, p, field)
    if v == nil then return end
    local ok, compiled, msg = pcall(q.compile_template, v, { path = p, field = field })
    if not ok then compiled, msg = nil, compiled end
    if compiled == nil then self:add(p, "invalid JSONata: " .. tostring(msg)) end
  end
  for _, f in ipairs(EXPRESSION_FIELDS) do check(def[f], join(path, f), f) end
  for _, list in ipairs { "Choices", "Catch" } do
    if is_array(def[list]) then
      for i, r in ipairs(def[list]) do
        if is_object(r) then
          local rp = join(join(path, list), i - 1)
          for _, f in ipairs { "Condition", "Output", "Assign" } do check(r[f], join(rp, f), f) end
        end
      end
    end
  end
end

-- Comment, wherever it may appear, is a string.
function Checker:comment(def, path)
  if def.Comment ~= nil and type(def.Comment) ~= "string" then
    self:add(join(path, "Comment"), "Comment must be a string")
  end
end

function Checker:exclusive(def, path, a, b)
  if def[a] ~= nil and def[b] ~= nil then
    self:add(join(path, b), fmt("%s and %s cannot both be set", a, b))
  end
end

function Checker:state(name, def, path, scope, lang)
  if not is_object(def) then
    self:add(path, "a state must be an object")
    return
  end
  self:comment(def, path)
  local t = def.Type
  if t == nil then
    self:add(join(path, "Type"), "is required")
    scope.bad_type = true
    return
  end
  if type(t) ~= "string" or not ALLOWED.JSONPath[t] then
    scope.bad_type = true
    local shown = type(t) == "string" and fmt("%q", t) or ("of JSON type " .. jsonpath.kind(t))
    self:add(join(path, "Type"), fmt("unknown state type %s (expected Pass, Task, Choice, Wait, Succeed, "
      .. "Fail, Parallel or Map)", shown))
    return
  end
  local slang = lang
  if def.QueryLanguage ~= nil then
    if def.QueryLanguage ~= "JSONPath" and def.QueryLanguage ~= "JSONata" then
      self:add(join(path, "QueryLanguage"), "must be \"JSONPath\" or \"JSONata\"")
    elseif lang == "JSONata" and def.QueryLanguage == "JSONPath" then
      self:add(join(path, "QueryLanguage"), "a JSONata state machine cannot have JSONPath states")
    else
      slang = def.QueryLanguage
    end
  end
  local allowed = ALLOWED[slang][t]
  for _, k in ipairs(sorted_keys(def)) do
    if not allowed[k] then
      local other = ALLOWED[slang == "JSONata" and "JSONPath" or "JSONata"][t][k]
      self:add(join(path, k), other
        and fmt("field '%s' is not allowed in a %s state (it is %s-only)", k, slang,
        slang == "JSONata" and "JSONPath" or "JSONata")
        or fmt("field '%s' is not allowed in a %s state", tostring(k), t))
    end
  end
  if utf8.len(name) == nil or utf8.len(name) > 80 then
    self:add(path, "state names must be 1 to 80 characters")
  end

  -- transitions
  if t ~= "Choice" and t ~= "Succeed" and t ~= "Fail" then
    if def.End ~= nil and def.End ~= true and def.End ~= false then
      self:add(join(path, "End"), "End must be a boolean")
    end
    local ends = def.End == true
    if def.Next ~= nil and ends then
      self:add(path, "a state cannot have both Next and End")
    elseif def.Next == nil and not ends then
      self:add(path, "a state needs Next or End: true")
    end
    if def.Next ~= nil then self:target(def.Next, join(path, "Next"), scope) end
  end

  -- JSONPath I/O fields
  if slang == "JSONPath" then
    if def.InputPath ~= nil then self:path(def.InputPath, join(path, "InputPath"), { nullable = true }) end
    if def.OutputPath ~= nil then self:path(def.OutputPath, join(path, "OutputPath"), { nullable = true }) end
    if def.ResultPath ~= nil then
      self:path(def.ResultPath, join(path, "ResultPath"),
        { nullable = true, reference = true, input_only = true })
    end
    for _, f in ipairs { "Parameters", "ResultSelector", "ItemSelector", "Credentials" } do
      if def[f] ~= nil then self:template(def[f], join(path, f)) end
    end
    if def.ResultSelector ~= nil and not is_object(def.ResultSelector) then
      self:add(join(path, "ResultSelector"), "must be an object")
    end
  end
  if def.Assign ~= nil then self:assign(def.Assign, join(path, "Assign"), slang) end
  if slang == "JSONata" then self:expressions(def, path) end
  if def.Retry ~= nil then self:retriers(def.Retry, join(path, "Retry"), slang) end
  if def.Catch ~= nil then self:catchers(def.Catch, join(path, "Catch"), slang, scope) end

  local check = STATES[t].check
  if check then check(self, def, path, scope, slang) end
end

-- A machine, branch or item processor: { StartAt, States }.
function Checker:machine(def, path, fields, lang)
  if not is_object(def) then
    self:add(path == "" and "" or path, "must be an object with StartAt and States")
    return
  end
  for _, k in ipairs(sorted_keys(def)) do
    if not fields[k] then
      self:add(join(path, k), fmt("field '%s' is not allowed here", tostring(k)))
    end
  end
  local mlang = lang
  if def.QueryLanguage ~= nil then
    if def.QueryLanguage ~= "JSONPath" and def.QueryLanguage ~= "JSONata" then
      self:add(join(path, "QueryLanguage"), "must be \"JSONPath\" or \"JSONata\"")
    elseif not (lang == "JSONata" and def.QueryLanguage == "JSONPath") then
      mlang = def.QueryLanguage
    end
  end
  local states = def.States
  if not is_object(states) or next(states) == nil then
    self:add(join(path, "States"), def.States == nil and "is required (a non-empty object of states)"
      or "States must be a non-empty object")
    if def.StartAt == nil then
      self:add(join(path, "StartAt"), "is required (the name of the first state)")
    end
    return
  end
  local saved_scope = self.scope_vars
  local scope_vars = {}
  for k, v in pairs(self.outer_vars) do scope_vars[k] = v end
  self.scope_vars = scope_assignments(states, join(path, "States"), scope_vars)
  if def.StartAt == nil then
    self:add(join(path, "StartAt"), "is required (the name of the first state)")
  elseif type(def.StartAt) ~= "string" then
    self:add(join(path, "StartAt"), "StartAt must be the name of a state")
  elseif states[def.StartAt] == nil then
    self:add(join(path, "StartAt"), fmt("no state named %q in States", def.StartAt))
  end
  self:comment(def, path)
  local scope = { states = states, edges = {}, bad_type = false, terminal = false }
  local graph = {}
  local spath = join(path, "States")
  for _, name in ipairs(sorted_keys(states)) do
    local p = join(spath, name)
    if type(name) ~= "string" then
      self:add(p, "state names must be strings")
    else
      if self.names[name] then
        self:add(p, fmt("state name %q is already used at %s (names are unique in the whole machine)", name,
          self.names[name]))
      else
        self.names[name] = p
      end
      scope.edges = {}
      self:state(name, states[name], p, scope, mlang)
      graph[name] = scope.edges
      local sd = states[name]
      if is_object(sd) and (sd.End == true or sd.Type == "Succeed" or sd.Type == "Fail") then
        scope.terminal = true
      end
    end
  end
  -- AWS: MISSING_END_STATE (a scope needs a state that ends it: End, Succeed or Fail); not
  -- reported when a state's Type is wrong (its fields cannot be known)
  if not scope.terminal and not scope.bad_type then
    self:add(spath, "no terminal state: one state needs \"End\": true, or be a Succeed or Fail state "
      .. "(MISSING_END_STATE)")
  end
  -- reachability from StartAt; a state with an unknown Type hides its transitions, so what only it
  -- could reach is not reported (no cascade after one mistyped Type)
  if type(def.StartAt) == "string" and states[def.StartAt] ~= nil and not scope.bad_type then
    local seen, stack = { [def.StartAt] = true }, { def.StartAt }
    while #stack > 0 do
      local n = table.remove(stack)
      for _, m in ipairs(graph[n] or {}) do
        if not seen[m] then
          seen[m] = true
          stack[#stack + 1] = m
        end
      end
    end
    for _, name in ipairs(sorted_keys(states)) do
      if type(name) == "string" and not seen[name] and graph[name] then
        self:add(join(spath, name), fmt("state %q is not reachable from StartAt", name))
      end
    end
  end
  self.scope_vars = saved_scope
end

function M.check(def, opts)
  opts = opts or {}
  local c = setmetatable({ problems = {}, names = {}, resolve = opts.resolve, outer_vars = {},
    scope_vars = {} }, Checker)
  if not is_object(def) then
    c:add("", "a state machine definition must be an object")
    return c.problems
  end
  local lang = "JSONPath"
  if def.QueryLanguage ~= nil then
    if def.QueryLanguage == "JSONata" or def.QueryLanguage == "JSONPath" then
      lang = def.QueryLanguage
    end
  end
  if def.Version ~= nil and def.Version ~= "1.0" then c:add("/Version", "Version must be \"1.0\"") end
  if def.TimeoutSeconds ~= nil then c:positive_int(def.TimeoutSeconds, "/TimeoutSeconds") end
  c:machine(def, "", TOP_FIELDS, lang)
  return c.problems
end

return M
