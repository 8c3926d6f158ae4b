--- emrflow.graph: a state machine as a picture, and what an execution did on it.
--
--   local graph = require "emrflow.graph"
--   local text = graph.render(definition, { format = "mermaid" | "dot" | "svg", events = history,
--                                           title = "name" })
--   local status = graph.state_status(events)   --> { [state name] = "succeeded" | "failed" | ... }
--   local events = graph.read_history(text, source)  -- JSON lines, or {"events":[...]}
--
-- Map and Parallel states are drawn as subgraphs holding their states (a Parallel holds one
-- subgraph per branch). Edges are labelled: "Next", "Default", each Choice rule by its
-- condition, "Catch <errors>", "End". With events (a history shaped like
-- GetExecutionHistory, as `emrflow run --events` and the execution store give it), every
-- state is coloured by what happened to it, as the Step Functions console's graph does:
-- succeeded, failed, caught (it failed and a Catch took over), running, not reached.
-- svg is drawn by graphviz's `dot` ($EMRFLOW_DOT, else `dot` on the PATH).
-- @module emrflow.graph
local json = require "emrflow.json"

local M = {}

--- The statuses, in the order the legend lists them, with their colours (fill, border).
M.STATUSES = { "succeeded", "failed", "caught", "running", "not reached" }
M.COLORS = {
  succeeded = { "#d4edda", "#2e7d32" },
  failed = { "#f8d7da", "#c62828" },
  caught = { "#ffe0b2", "#ef6c00" },
  running = { "#d0e4ff", "#1565c0" },
  ["not reached"] = { "#eeeeee", "#9e9e9e" },
}

local LABEL_MAX = 48

local function clip(s, n)
  n = n or LABEL_MAX
  if #s <= n then return s end
  local cut = n - 3
  -- never cut a UTF-8 character in two
  while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return s:sub(1, cut) .. "..."
end

-- ------------------------------------------------------------------------
-- Choice rules in words
-- ------------------------------------------------------------------------

local OPS = {
  StringEquals = "==", NumericEquals = "==", BooleanEquals = "==", TimestampEquals = "==",
  StringLessThan = "<", NumericLessThan = "<", TimestampLessThan = "<",
  StringGreaterThan = ">", NumericGreaterThan = ">", TimestampGreaterThan = ">",
  StringLessThanEquals = "<=", NumericLessThanEquals = "<=", TimestampLessThanEquals = "<=",
  StringGreaterThanEquals = ">=", NumericGreaterThanEquals = ">=", TimestampGreaterThanEquals = ">=",
  StringMatches = "matches",
}

local function value_text(v)
  local ok, text = pcall(json.encode, v)
  return ok and text or tostring(v)
end

local function rule_text(rule)
  if type(rule) ~= "table" then return "?" end
  if type(rule.Condition) == "string" then return rule.Condition end
  if type(rule.And) == "table" or type(rule.Or) == "table" then
    local parts = {}
    for _, r in ipairs(rule.And or rule.Or) do parts[#parts + 1] = rule_text(r) end
    return "(" .. table.concat(parts, rule.And and " and " or " or ") .. ")"
  end
  if type(rule.Not) == "table" then return "not " .. rule_text(rule.Not) end
  local var = tostring(rule.Variable or "?")
  for k, v in pairs(rule) do
    if k ~= "Variable" and k ~= "Next" and k ~= "Comment" and k ~= "Assign" and k ~= "Output" then
      local base = k:gsub("Path$", "")
      if k == "IsNull" or k == "IsPresent" or k == "IsString" or k == "IsNumeric" or k == "IsBoolean"
          or k == "IsTimestamp" then
        return var .. " " .. (v == false and "not " or "") .. k:sub(3):lower()
      end
      local op = OPS[base] or k
      return var .. " " .. op .. " " .. (base ~= k and tostring(v) or value_text(v))
    end
  end
  return var
end
M.rule_text = rule_text

-- ------------------------------------------------------------------------
-- The model: nodes, subgraphs, edges
-- ------------------------------------------------------------------------

-- States in reading order: StartAt first, then as reached through Next, Choices, Default
-- and Catch; states nothing reaches come last, by name.
local function ordered_names(states, start_at)
  local order, seen = {}, {}
  local queue = { start_at }
  local function push(n)
    if type(n) == "string" and states[n] and not seen[n] then queue[#queue + 1] = n end
  end
  local function push_all(list)
    if type(list) ~= "table" then return end
    for _, c in ipairs(list) do push(type(c) == "table" and c.Next) end
  end
  local i = 1
  while i <= #queue do
    local n = queue[i]
    i = i + 1
    if type(n) == "string" and states[n] and not seen[n] then
      seen[n] = true
      order[#order + 1] = n
      local st = states[n]
      if type(st) == "table" then
        push_all(st.Choices)
        push(st.Default)
        push_all(st.Catch)
        push(st.Next)
      end
    end
  end
  local rest = {}
  for n in pairs(states) do if not seen[n] then rest[#rest + 1] = n end end
  table.sort(rest)
  for _, n in ipairs(rest) do order[#order + 1] = n end
  return order
end

local function short_resource(r)
  if type(r) ~= "string" then return "Lua function" end
  return r:match("^arn:[^:]+:states:::(.+)$") or r:match(":function:([^:]+)") or r
end

-- Builds { nodes = {...}, groups = {...}, edges = {...} } from a definition.
local function model(def)
  local m = { nodes = {}, groups = {}, edges = {}, by_name = {} }
  local count = 0
  local function new_id(prefix)
    count = count + 1
    return prefix .. count
  end
  local function edge(from, to, label) m.edges[#m.edges + 1] = { from = from, to = to, label = label } end

  local scope
  -- one States block; returns the id of its StartAt node
  scope = function(block, group, top)
    local states = type(block) == "table" and block.States
    if type(states) ~= "table" then return nil end
    local ids = {}
    local names = ordered_names(states, block.StartAt)
    for _, name in ipairs(names) do
      local st = states[name]
      local id = new_id("s")
      ids[name] = id
      local node = { id = id, name = name, type = type(st) == "table" and st.Type or "?", group = group }
      if node.type == "Task" then node.detail = short_resource(st.Resource) end
      m.nodes[#m.nodes + 1] = node
      m.by_name[name] = m.by_name[name] or id
      if node.type == "Map" or node.type == "Parallel" then
        local g = { id = new_id("g"), label = node.type .. ": " .. name, parent = group }
        m.groups[#m.groups + 1] = g
        node.group = g.id
        node.owns = g.id
        if node.type == "Map" then
          local first = scope(st.ItemProcessor or st.Iterator, g.id, false)
          if first then edge(id, first, "each item") end
        else
          for i, b in ipairs(type(st.Branches) == "table" and st.Branches or {}) do
            local bg = { id = new_id("g"), label = "branch " .. i, parent = g.id }
            m.groups[#m.groups + 1] = bg
            local first = scope(b, bg.id, false)
            if first then edge(id, first, "branch " .. i) end
          end
        end
      end
    end
    for _, name in ipairs(names) do
      local st, id = states[name], ids[name]
      if type(st) == "table" then
        if type(st.Choices) == "table" then
          for _, c in ipairs(st.Choices) do
            if type(c) == "table" and ids[c.Next] then edge(id, ids[c.Next], clip(rule_text(c))) end
          end
        end
        if ids[st.Default] then edge(id, ids[st.Default], "Default") end
        if ids[st.Next] then edge(id, ids[st.Next], "Next") end
        if type(st.Catch) == "table" then
          for _, c in ipairs(st.Catch) do
            if type(c) == "table" and ids[c.Next] then
              local errs = type(c.ErrorEquals) == "table" and table.concat(c.ErrorEquals, ", ") or "?"
              edge(id, ids[c.Next], clip("Catch " .. errs))
            end
          end
        end
        if top and (st.End == true or st.Type == "Succeed") then edge(id, "__end", "End") end
        if top and st.Type == "Fail" then edge(id, "__end", "Fail") end
      end
    end
    return ids[block.StartAt]
  end

  local first = scope(def, nil, true)
  if first then edge("__start", first, nil) end
  return m
end
M.model = model

-- ------------------------------------------------------------------------
-- What an execution did
-- ------------------------------------------------------------------------

local function details_of(ev)
  for k, v in pairs(ev) do
    if type(k) == "string" and k:sub(-12) == "EventDetails" and type(v) == "table" then return v end
  end
  return nil
end

local FAILURES = {
  TaskFailed = true, TaskTimedOut = true, TaskSubmitFailed = true, TaskStartFailed = true,
  LambdaFunctionFailed = true, LambdaFunctionTimedOut = true, LambdaFunctionStartFailed = true,
  LambdaFunctionScheduleFailed = true, ActivityFailed = true, ActivityTimedOut = true,
  ActivityScheduleFailed = true,
}
local CONTAINER_FAILURES = { MapStateFailed = true, ParallelStateFailed = true, MapRunFailed = true }
local EXECUTION_END = { ExecutionSucceeded = true, ExecutionFailed = true, ExecutionAborted = true,
                        ExecutionTimedOut = true }
local RANK = { running = 4, failed = 3, caught = 2, succeeded = 1 }

-- ExecutionRedriven: the visits an earlier attempt left unfinished (the states that failed
-- and the Map / Parallel states around them) are closed as that attempt's; the redrive runs
-- those states again, and their new visits decide their colour.
local function close_attempt(visits, open_by_name, containers, attempt)
  for _, v in ipairs(visits) do
    if v.open then
      v.open = false
      v.unfinished_in = attempt
    end
  end
  for name in pairs(open_by_name) do open_by_name[name] = nil end
  for i = #containers, 1, -1 do containers[i] = nil end
end

--- The status of every state an execution entered, from its history events:
-- { [name] = "succeeded" | "failed" | "caught" | "running" } (states not listed were not reached).
-- A state visited several times (loops, Map iterations) takes its most telling outcome:
-- running, then failed, then caught, then succeeded. A redriven execution is shown as its
-- latest attempt: a state that failed and then succeeded on redrive is succeeded.
function M.state_status(events)
  local visit_of, open_by_name, visits, containers = {}, {}, {}, {}
  local ended, attempt = false, 0
  for _, ev in ipairs(events or {}) do
    local etype, d = tostring(ev.type), details_of(ev)
    local id, prev = ev.id, ev.previousEventId
    local v = visit_of[prev]
    if etype:sub(-12) == "StateEntered" and d and d.name then
      v = { name = d.name, open = true, attempt = attempt,
            container = etype == "MapStateEntered" or etype == "ParallelStateEntered" }
      visits[#visits + 1] = v
      open_by_name[d.name] = open_by_name[d.name] or {}
      table.insert(open_by_name[d.name], v)
      if v.container then containers[#containers + 1] = v end
    elseif etype:sub(-11) == "StateExited" and d and d.name then
      if not (v and v.name == d.name and v.open) then
        local list = open_by_name[d.name] or {}
        v = list[#list]
      end
      if v then
        v.open = false
        v.outcome = v.failed and "caught" or "succeeded"
        local list = open_by_name[d.name]
        for i = #list, 1, -1 do if list[i] == v then table.remove(list, i) break end end
      end
    elseif FAILURES[etype] then
      if v then v.failed = true end
    elseif etype == "TaskScheduled" or etype == "TaskSucceeded" then
      if v then v.failed = false end
    elseif CONTAINER_FAILURES[etype] then
      for i = #containers, 1, -1 do
        if containers[i].open then containers[i].failed = true break end
      end
    elseif EXECUTION_END[etype] then
      ended = true
    elseif etype == "ExecutionRedriven" then
      close_attempt(visits, open_by_name, containers, attempt)
      attempt = attempt + 1
      ended = false
    end
    if id ~= nil then visit_of[id] = v end
  end
  -- the latest attempt that entered each state
  local latest = {}
  for _, v in ipairs(visits) do
    if not latest[v.name] or v.attempt > latest[v.name] then latest[v.name] = v.attempt end
  end
  local status = {}
  for _, v in ipairs(visits) do
    local s = v.outcome
    if not s and v.unfinished_in then
      -- left failed by an earlier attempt: failed unless a later attempt entered it again
      s = latest[v.name] <= v.unfinished_in and "failed" or nil
    elseif not s then
      s = ended and "failed" or "running"
    end
    if s and (not status[v.name] or RANK[s] > RANK[status[v.name]]) then status[v.name] = s end
  end
  return status
end

--- Reads a history: JSON lines (one event per line, as `emrflow run --events` and
-- `emrflow history` write them; lines starting "emrflow: " are skipped, so stderr of
-- `emrflow run --events` can be used as it is), a JSON array of events, or
-- GetExecutionHistory's `{"events":[...]}`. Raises naming the source, line and column of bad JSON.
function M.read_history(text, source)
  source = source or "the history"
  local ok, whole = pcall(json.decode, text)
  if ok then
    if type(whole) == "table" and json.is_array(whole) then return whole end
    if type(whole) == "table" and type(whole.events) == "table" then return whole.events end
    if type(whole) == "table" and whole.type then return { whole } end
    error(source .. ": not a history (expected JSON lines of events, or {\"events\":[...]})", 0)
  end
  local events, n = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    -- emrflow's own messages ("emrflow: started ...") share stderr with --events
    if line:match("%S") and not line:match("^emrflow: ") then
      local lok, ev = pcall(json.decode, line)
      if not lok and #events == 0 and text:match("^%s*[%[{]") then
        -- not JSON lines from the start: one JSON document (GetExecutionHistory's output is
        -- indented), so its own error says where it breaks
        error(string.format("%s is not valid JSON: %s", source,
          tostring(whole):gsub("^emrflow%.json: ", "")), 0)
      end
      if not lok then
        error(string.format("%s: line %d: invalid JSON: %s", source, n,
          tostring(ev):gsub("^emrflow%.json: ", ""):gsub("at line 1, column", "at column")), 0)
      end
      if type(ev) ~= "table" or ev.type == nil then
        error(string.format("%s: line %d: not a history event (no \"type\")", source, n), 0)
      end
      events[#events + 1] = ev
    end
  end
  return events
end

--- The history of a stored execution (name or ARN) from the execution store at `path`
-- (default store when nil). `fail(message)` is called on any problem.
function M.history_from_store(execution, path, fail)
  local ok, store = pcall(require, "emrflow.store")
  if not ok then
    fail("--execution needs the execution store (emrflow.store), which this build does not have; "
      .. "give the history with --history FILE instead (emrflow run --events 2>FILE writes one)")
  end
  local sok, s, err = pcall(store.open, path)
  if not sok or not s then fail("cannot open the execution store: " .. tostring(sok and err or s)) end
  local hok, h, herr = pcall(s.history, s, execution)
  if not hok or not h then
    fail("cannot read the history of " .. execution .. ": " .. tostring(hok and herr or h))
  end
  if type(h) == "table" and type(h.events) == "table" then h = h.events end
  return h
end

-- ------------------------------------------------------------------------
-- Output
-- ------------------------------------------------------------------------

local function mermaid_text(s)
  return (s:gsub("#", "#35;"):gsub('"', "#quot;"):gsub("<", "#lt;"):gsub(">", "#gt;"))
end

local function node_label(node, sep, esc)
  local label = esc(node.name)
  if node.type == "Map" or node.type == "Parallel" then label = label .. sep .. esc(node.type) end
  if node.detail then label = label .. sep .. esc(clip(node.detail)) end
  return label
end

local function children_of(m)
  local nodes_in, groups_in = {}, {}
  for _, n in ipairs(m.nodes) do
    local g = n.group or ""
    nodes_in[g] = nodes_in[g] or {}
    table.insert(nodes_in[g], n)
  end
  for _, g in ipairs(m.groups) do
    local p = g.parent or ""
    groups_in[p] = groups_in[p] or {}
    table.insert(groups_in[p], g)
  end
  return nodes_in, groups_in
end

local function legend(status)
  local counts = {}
  for _, s in pairs(status) do counts[s] = (counts[s] or 0) + 1 end
  local parts = {}
  for _, s in ipairs(M.STATUSES) do
    if counts[s] then parts[#parts + 1] = s .. " " .. counts[s] end
  end
  return table.concat(parts, ", ")
end

local function status_of_node(node, status)
  return status[node.name] or "not reached"
end

local function mermaid(m, status)
  local out = { "flowchart TD" }
  local function add(depth, line) out[#out + 1] = string.rep("  ", depth) .. line end
  local nodes_in, groups_in = children_of(m)
  local shape = {
    Choice = { "{", "}" }, Succeed = { "([", "])" }, Fail = { "([", "])" },
  }
  local function emit(group_id, depth)
    for _, n in ipairs(nodes_in[group_id] or {}) do
      local sh = shape[n.type] or { "[", "]" }
      add(depth, string.format('%s%s"%s"%s', n.id, sh[1], node_label(n, "<br/>", mermaid_text), sh[2]))
    end
    for _, g in ipairs(groups_in[group_id] or {}) do
      add(depth, string.format('subgraph %s ["%s"]', g.id, mermaid_text(g.label)))
      emit(g.id, depth + 1)
      add(depth, "end")
    end
  end
  add(1, '__start(("start"))')
  emit("", 1)
  add(1, '__end(("end"))')
  for _, e in ipairs(m.edges) do
    if e.label then
      add(1, string.format('%s -->|"%s"| %s', e.from, mermaid_text(e.label), e.to))
    else
      add(1, string.format("%s --> %s", e.from, e.to))
    end
  end
  if status then
    add(1, "%% execution: " .. legend(status))
    local members = {}
    for _, n in ipairs(m.nodes) do
      local s = status_of_node(n, status)
      members[s] = members[s] or {}
      table.insert(members[s], n.id)
    end
    for _, s in ipairs(M.STATUSES) do
      local cls = s:gsub(" ", "_")
      local c = M.COLORS[s]
      add(1, string.format("classDef %s fill:%s,stroke:%s,color:#000", cls, c[1], c[2]))
      if members[s] then add(1, string.format("class %s %s", table.concat(members[s], ","), cls)) end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function dot_text(s)
  return (s:gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n"))
end

local function dot(m, status, title)
  local out = {}
  local function add(depth, line) out[#out + 1] = string.rep("  ", depth) .. line end
  add(0, string.format('digraph "%s" {', dot_text(title or "state machine")))
  add(1, 'graph [fontname="Helvetica", compound=true];')
  add(1, 'node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#555555",'
    .. ' fontname="Helvetica"];')
  add(1, 'edge [fontname="Helvetica", fontsize=10];')
  if status then add(1, string.format('label="execution: %s"; labelloc=b;', dot_text(legend(status)))) end
  local nodes_in, groups_in = children_of(m)
  local shape = { Choice = "diamond", Succeed = "ellipse", Fail = "ellipse" }
  local function emit(group_id, depth)
    for _, n in ipairs(nodes_in[group_id] or {}) do
      local attrs = { string.format('label="%s"', node_label(n, "\\n", dot_text)) }
      if shape[n.type] then attrs[#attrs + 1] = "shape=" .. shape[n.type] end
      if status then
        local c = M.COLORS[status_of_node(n, status)]
        attrs[#attrs + 1] = string.format('fillcolor="%s", color="%s"', c[1], c[2])
      end
      add(depth, string.format("%s [%s];", n.id, table.concat(attrs, ", ")))
    end
    for _, g in ipairs(groups_in[group_id] or {}) do
      add(depth, string.format("subgraph cluster_%s {", g.id))
      add(depth + 1, string.format('label="%s"; style="dashed,rounded"; color="#888888";', dot_text(g.label)))
      emit(g.id, depth + 1)
      add(depth, "}")
    end
  end
  add(1, '__start [label="start", shape=circle, fillcolor="#333333", fontcolor="#ffffff", width=0.4];')
  emit("", 1)
  add(1, '__end [label="end", shape=doublecircle, fillcolor="#333333", fontcolor="#ffffff", width=0.3];')
  for _, e in ipairs(m.edges) do
    if e.label then
      add(1, string.format('%s -> %s [label="%s"];', e.from, e.to, dot_text(e.label)))
    else
      add(1, string.format("%s -> %s;", e.from, e.to))
    end
  end
  add(0, "}")
  return table.concat(out, "\n") .. "\n"
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function on_path(name)
  local ok = os.execute("command -v " .. shell_quote(name) .. " >/dev/null 2>&1")
  return ok == true or ok == 0
end

--- The graphviz `dot` command: $EMRFLOW_DOT (a path, or a command on the PATH), else `dot`
-- when it is on the PATH; nil, why when there is none.
function M.dot_command()
  local cmd = os.getenv("EMRFLOW_DOT")
  if cmd and cmd ~= "" then
    local found
    if cmd:find("/", 1, true) then
      local f = io.open(cmd, "rb")
      found = f ~= nil
      if f then f:close() end
    else
      found = on_path(cmd)
    end
    if found then return cmd end
    return nil, "EMRFLOW_DOT names graphviz's dot program, but there is no '" .. cmd .. "'"
  end
  if on_path("dot") then return "dot" end
  return nil, "--format svg needs graphviz's dot program, which is not installed "
    .. "(Debian: apt-get install graphviz; or set EMRFLOW_DOT to its path)"
end

local function svg(dot_source)
  local cmd, why = M.dot_command()
  if not cmd then
    error(why .. "; --format dot or mermaid need nothing", 0)
  end
  local src = os.tmpname()
  local f = assert(io.open(src, "wb"))
  f:write(dot_source)
  f:close()
  local errf = os.tmpname()
  local p = io.popen(shell_quote(cmd) .. " -Tsvg " .. shell_quote(src) .. " 2>" .. shell_quote(errf))
  local out = p:read("a")
  local okc = p:close()
  local ef = io.open(errf, "rb")
  local err = ef and ef:read("a") or ""
  if ef then ef:close() end
  os.remove(src)
  os.remove(errf)
  if not okc or not out:find("<svg", 1, true) then
    error("graphviz's dot could not draw the graph: " .. (err ~= "" and err or "no output"), 0)
  end
  return out
end

--- Renders a definition (a decoded ASL table, as machine.definition holds it).
-- opts: format = "mermaid" (default) | "dot" | "svg"; events = history events to colour by;
-- title = the machine's name.
function M.render(def, opts)
  opts = opts or {}
  if type(def) == "string" then def = json.decode(def) end
  local m = model(def)
  local status = opts.events and M.state_status(opts.events) or nil
  local format = opts.format or "mermaid"
  if format == "mermaid" then return mermaid(m, status) end
  if format == "dot" then return dot(m, status, opts.title) end
  if format == "svg" then return svg(dot(m, status, opts.title)) end
  error("unknown graph format '" .. tostring(format) .. "' (mermaid, dot or svg)", 0)
end

return M
