-- emrflow.asl.states.pass: the Pass state: its fields, its checks and its execution.

local core = require "emrflow.core"
local json = require "emrflow.json"
local scheduler = require "emrflow.scheduler"
local payload = require "emrflow.asl.payload"
local history = require "emrflow.asl.history"
local common = require "emrflow.asl.common"
local paths = require "emrflow.asl.paths"
local rt = require "emrflow.asl.runtime"
local pipeline = require "emrflow.asl.pipeline"

local PAYLOAD_LIMIT = common.PAYLOAD_LIMIT
local is_object_marked = json.is_object
local copy_shallow = json.copy_shallow
local json_size = json.size
local template_size = payload.size
local size_check = common.size_check
local ref_set = paths.ref_set
local enter = rt.enter
local io_fields = pipeline.io_fields
local effective_input = pipeline.effective_input
local finish = pipeline.finish
local words = common.words
local yield = scheduler.yield
local YIELD_EVERY = rt.YIELD_EVERY

local M = {}

local add_event = history.Recorder.add_event

-- The common Pass: Result, Parameters or the input itself, then ResultPath "$", null or
-- "$.name"; no InputPath, OutputPath or Assign. The same steps as the general exec below
-- (enter, Parameters, ResultPath, size check, exit) with no call that has nothing to do.
-- What it needs sits in the array part of st (one closure upvalue, one contiguous array),
-- since a long chain of states does not stay in the CPU caches.
-- (<const>: P[P_NAME] compiles to P[1], one VM instruction, not an upvalue read and an index)
-- A chain of them runs in C (core.asl's pass runner, src/l_asl.c, which reads this layout
-- and does what fast_pass_exec does for each state); Lua runs the states it leaves.
local P_NAME <const>, P_ENTERED <const>, P_EXITED <const>, P_SHAPE <const>, P_R <const> = 1, 2, 3, 4, 5
local P_KEY <const>, P_MODE <const>, P_SEGS <const>, P_TEXT <const> = 6, 7, 8, 9
local P_NEXT <const>, P_KEYLEN <const>, P_SIZES <const> = 10, 11, 12
-- P_SIG: how the C loop makes the result ("R": Result, "L": call P_SHAPE, a template's member
-- kinds (payload.compile_shape: P_R is then the template's values R), false: the input);
-- P_FAST: FAST, marking a common Pass; P_FLAT, P_BASE: where the C loop reads the state (see
-- flatten). Sixteen slots: the room the engine makes in each state's array part.
local P_SIG <const>, P_FAST <const>, P_FLAT <const>, P_BASE <const> = 13, 14, 15, 16
local MODE_KEY <const>, MODE_DISCARD <const>, MODE_WHOLE <const> = 1, 2, 3
local FAST = {}

-- run_chain(frame, input, P) --> count, next, output: runs P and the common Pass states after
-- it in C (count 0: none, fast_pass_exec runs P)
local run_chain = core.asl.pass_runner(size_check, YIELD_EVERY, PAYLOAD_LIMIT)

-- exec of the common Pass; P is the state (its array part, set by fast_pass).
local function fast_pass_exec(frame, input, P)
  -- two or more in a row: in C
  local nxt = P[P_NEXT]
  if nxt and nxt[P_FAST] == FAST then
    local count, st, out = run_chain(frame, input, P)
    if count > 0 then return st, out end
  end
  local quiet = frame.quiet
  local x = frame.x
  -- the host runs every YIELD_EVERY states, as after runtime.enter
  local entries = x.entries + 1
  x.entries = entries
  if entries % YIELD_EVERY == 0 then yield() end
  local id, t = 0, nil
  if not quiet then
    -- a Pass does not wait: its two events share one instant (the recorder's clock)
    local rec = x.rec
    t = rec.now()
    id = add_event(rec, P[P_ENTERED], frame.prev, input, nil, t)
    frame.prev = id
  end
  local name = P[P_NAME]
  frame.state_name = name
  frame.entered_id = id
  local r = input
  local shape = P[P_SHAPE]
  local sizes = false -- the size data of r (payload.size), when r is made here
  if shape then
    local env = frame.env
    env.input = input
    env.context = nil
    r = shape(env, P)
    sizes = P[P_SIZES]
  end
  -- The output's encoded size (the 256 KiB check). The frame remembers the size of the last
  -- output it made (so) and of the last Parameters result it put at the key (ro); values are
  -- never changed once made, so when this input is that output, the new size follows from
  -- the part that changes, without walking the rest (a large payload carried down a chain
  -- is not re-measured at every state).
  local out, size
  local m = P[P_MODE]
  if m == MODE_KEY then
    -- (the last output made here by copy_shallow is a JSON object: no need to ask)
    if input == frame.ko or is_object_marked(input) then
      local key = P[P_KEY]
      out = copy_shallow(input, key, r)
      frame.ko = out
      if input == frame.so then
        local rn = sizes and template_size(r, sizes, PAYLOAD_LIMIT) or json_size(r, PAYLOAD_LIMIT)
        if rn then
          local old = input[key]
          if old == nil then
            local sn = frame.sn
            size = sn + (sn > 2 and 1 or 0) + P[P_KEYLEN] + 1 + rn
          else
            local on
            if old == frame.ro then on = frame.rn else on = json_size(old, PAYLOAD_LIMIT) end
            if on then size = frame.sn - on + rn end
          end
          frame.ro, frame.rn = r, rn
        end
      end
    else
      out = ref_set(P[P_SEGS], input, r, P[P_TEXT])
    end
  elseif m == MODE_DISCARD then
    out = input
    if input == frame.so then size = frame.sn end
  else
    out = r
    if sizes then size = template_size(r, sizes, PAYLOAD_LIMIT) end
  end
  if size == nil then size = json_size(out, PAYLOAD_LIMIT) end
  if size and size > PAYLOAD_LIMIT then size_check(name, out) end
  frame.so, frame.sn = size and out or false, size or 0
  if not quiet then
    frame.prev = add_event(x.rec, P[P_EXITED], frame.prev, out, nil, t)
  end
  return P[P_NEXT], out
end

local function link_next(st) st[P_NEXT] = st.next or false end

-- The C loop reads each state from one array per scope, FLAT, where the common Pass states
-- are laid out along their chains (a state's record, then its successor's): a long chain is
-- then read in one sequential sweep rather than from ten thousand tables spread over the heap.
-- A record, from its base b (src/l_asl.c's F_* offsets):
--   b+1 the state, +2 name, +3 Entered descriptor, +4 Exited descriptor, +5 shape, +6 R,
--   +7 key, +8 mode, +9 key length, +10 size data, +11 sig, +12 next state (or false),
--   +13 the next state's base (0: not a common Pass), +13+k the template's values
local F_NEXTB <const>, F_FIELDS <const> = 13, 13

-- The values of the state's template, for the C loop (payload.compile_shape's R), or none.
local function template_values(st)
  local sig = st[P_SIG]
  if not sig or sig == "R" or sig == "L" then return nil, 0 end
  local R = st[P_R]
  return R, #R
end

local function put_record(flat, b, st)
  flat[b + 1], flat[b + 2], flat[b + 3], flat[b + 4] = st, st[P_NAME], st[P_ENTERED], st[P_EXITED]
  flat[b + 5], flat[b + 6], flat[b + 7], flat[b + 8] = st[P_SHAPE], st[P_R], st[P_KEY], st[P_MODE]
  flat[b + 9], flat[b + 10], flat[b + 11] = st[P_KEYLEN], st[P_SIZES], st[P_SIG]
  flat[b + 12], flat[b + F_NEXTB] = st[P_NEXT], 0
  local R, n = template_values(st)
  for k = 1, n do flat[b + F_FIELDS + k] = R[k] end
  return b + F_FIELDS + n
end

-- A scope's fix-up once its states are linked: FLAT for its common Pass states.
local function flatten(states)
  local fast, pointed = {}, {}
  for _, st in pairs(states) do
    if st[P_FAST] == FAST then
      fast[#fast + 1] = st
      local nxt = st[P_NEXT]
      if nxt and nxt[P_FAST] == FAST and nxt ~= st then pointed[nxt] = true end
    end
  end
  if #fast == 0 then return end
  -- chain heads first (in name order, for one layout per definition), then what is left (loops)
  table.sort(fast, function(a, b) return a.name < b.name end)
  local size = 0
  for _, st in ipairs(fast) do size = size + F_FIELDS + select(2, template_values(st)) end
  local flat, b = core.asl.array(size), 0
  local function place(st)
    while st and st[P_FAST] == FAST and not st[P_FLAT] do
      st[P_FLAT], st[P_BASE] = flat, b
      b = put_record(flat, b, st)
      st = st[P_NEXT]
    end
  end
  for _, st in ipairs(fast) do
    if not pointed[st] then place(st) end
  end
  for _, st in ipairs(fast) do place(st) end
  for _, st in ipairs(fast) do
    local nxt = st[P_NEXT]
    if nxt and nxt[P_FAST] == FAST then flat[st[P_BASE] + F_NEXTB] = nxt[P_BASE] end
  end
end
local flattened = setmetatable({}, { __mode = "k" }) -- scopes (their fix-up lists) done

-- A Pass with Result: the Result itself (shared, as the general exec does), Parameters unused.
local function result_shape(_, P) return P[P_R] end
-- Parameters: evaluated by their compiled function (P[P_R] or, for the templates the C loop
-- evaluates itself, P.parameters)
local function function_shape(env, P) return P[P_R](env) end
local function template_shape(env, P) return P.parameters(env) end

-- Sets st up for fast_pass_exec and returns it, or nil when st is not the common Pass.
local function fast_pass(st, def)
  local key = st.result_segs and #st.result_segs == 1 and type(st.result_segs[1]) == "string"
    and st.result_segs[1] or nil
  local mode = key and MODE_KEY or st.result_discard and MODE_DISCARD
    or (st.result_segs == nil and MODE_WHOLE) or nil
  if st.jsonata or st.input_null or st.input_path or st.output_null or st.output_path
      or st.assign or st.result_selector or st.needs_context or not mode then
    return nil
  end
  local shape, R, sizes, sig = false, false, false, false
  if def.Result ~= nil then
    shape, R, sig = result_shape, def.Result, "R"
    local n = json_size(R)
    sizes = n and { n, n = 1 } or false
    st.parameters_shape = nil
  elseif st.parameters then
    local compiled = st.parameters_shape
    if compiled then
      shape, R, sizes, sig = template_shape, compiled[2], compiled[3], compiled[4]
      st.parameters_shape = nil
    else
      shape, R, sig = function_shape, st.parameters, "L"
    end
  end
  if shape and not sig then shape, R, sig = function_shape, st.parameters, "L" end
  st[P_NAME], st[P_ENTERED], st[P_EXITED] = st.name, st.entered_desc, st.exited_desc
  st[P_SHAPE], st[P_R], st[P_KEY], st[P_MODE] = shape, R, key or false, mode
  st[P_SEGS], st[P_TEXT], st[P_NEXT] = st.result_segs or false, st.result_text or false, false
  st[P_KEYLEN] = key and json_size(key) or 0
  st[P_SIZES], st[P_SIG], st[P_FAST] = sizes, sig, FAST
  st[P_FLAT], st[P_BASE] = false, 0
  st.on_link = link_next -- st[P_NEXT] = st.next once the states are linked
  return fast_pass_exec
end

function M.compile(st, def, b)
  io_fields(st, def)
  local result = def.Result
  local parameters = st.parameters
  st.exec = fast_pass(st, def)
  if st.exec then
    local links = b and b.links
    if links and not flattened[links] then
      flattened[links] = true
      links[#links + 1] = flatten
    end
    return
  end
  st.exec = function(frame, input)
    local env = enter(frame, st, input)
    local r
    if result ~= nil then
      r = result
    else
      r = effective_input(st, input, env)
      if parameters then
        env.input = r
        r = parameters(env)
      end
    end
    return st.next, finish(frame, st, input, env, r)
  end
end


M.add_event = add_event
M.fast_pass_exec = fast_pass_exec
M.fast_pass = fast_pass


-- The fields of a Pass state in each query language (besides Type, Comment, QueryLanguage).
M.fields = {
  JSONPath = words [[Next End InputPath OutputPath Parameters ResultPath Result Assign]],
  JSONata = words [[Next End Output Assign]],
}

return M
