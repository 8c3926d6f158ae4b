-- The architecture's rules (ARCHITECTURE.md), read from the source: every `require` under lua/
-- (at the top or inside functions, pcall(require, ...) too), no forbidden arrow, no cycle.

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- Every module file under lua/: module name -> path.
local function modules()
  local out = {}
  local p = assert(io.popen("find lua -name '*.lua' | sort"))
  for path in p:lines() do
    local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    out[name] = path
  end
  p:close()
  return out
end

-- The modules a source text requires (string literals only), comments removed first.
local function requires_of(text)
  text = text:gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
  local found, seen = {}, {}
  local function add(name)
    if not seen[name] then
      seen[name] = true
      found[#found + 1] = name
    end
  end
  for name in text:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do add(name) end
  for name in text:gmatch("pcall%(%s*require%s*,%s*[\"']([%w_%.]+)[\"']") do add(name) end
  return found
end

local function graph()
  local g = {}
  local mods = modules()
  for name, path in pairs(mods) do
    local edges = {}
    for _, r in ipairs(requires_of(read(path))) do
      if mods[r] then edges[#edges + 1] = r end
    end
    g[name] = edges
  end
  return g
end

local FORBIDDEN = {
  { from = "^emrflow%.asl", to = "^emrflow%.emr", why = "the interpreter knows no service" },
  { from = "^emrflow%.asl", to = "^emrflow%.emulator", why = "the interpreter knows no emulator" },
  { from = "^emrflow%.asl", to = "^emrflow%.cli", why = "the interpreter knows no CLI" },
}

-- The first cycle found (a list of module names ending where it starts), or nil.
local function find_cycle(g)
  local state, stack = {}, {}
  local names = {}
  for n in pairs(g) do names[#names + 1] = n end
  table.sort(names)
  local function visit(n)
    state[n] = "open"
    stack[#stack + 1] = n
    for _, m in ipairs(g[n] or {}) do
      if state[m] == "open" then
        local cycle = {}
        for i = #stack, 1, -1 do
          table.insert(cycle, 1, stack[i])
          if stack[i] == m then break end
        end
        cycle[#cycle + 1] = m
        return cycle
      elseif state[m] == nil then
        local c = visit(m)
        if c then return c end
      end
    end
    stack[#stack] = nil
    state[n] = "done"
    return nil
  end
  for _, n in ipairs(names) do
    if state[n] == nil then
      local c = visit(n)
      if c then return c end
    end
  end
  return nil
end

describe("architecture", function()
  it("finds the requires of a source text, lazy and pcall'd ones included, comments excluded", function()
    local found = requires_of([[
local a = require "x.a"
-- local b = require "x.b"
local function f() return require("x.c") end
local ok, d = pcall(require, "x.d")
]])
    assert.are.same({ "x.a", "x.c", "x.d" }, found)
  end)

  it("finds a cycle and none in a tree", function()
    assert.are.same({ "a", "b", "c", "a" }, find_cycle { a = { "b" }, b = { "c" }, c = { "a" } })
    assert.is_nil(find_cycle { a = { "b", "c" }, b = { "c" }, c = {} })
  end)

  it("no module under emrflow.asl requires a service, the emulator or the CLI", function()
    local g = graph()
    local bad = {}
    for from, edges in pairs(g) do
      for _, to in ipairs(edges) do
        for _, rule in ipairs(FORBIDDEN) do
          if from:find(rule.from) and to:find(rule.to) then
            bad[#bad + 1] = from .. " -> " .. to .. " (" .. rule.why .. ")"
          end
        end
      end
    end
    table.sort(bad)
    assert.are.same({}, bad)
  end)

  it("has no require cycle anywhere under lua/", function()
    local cycle = find_cycle(graph())
    assert.is_nil(cycle, cycle and table.concat(cycle, " -> "))
  end)

  it("the interpreter sees the EMR integration only through asl.register_resource", function()
    local g = graph()
    local function reaches(from, target, seen)
      seen = seen or {}
      if from == target then return true end
      if seen[from] then return false end
      seen[from] = true
      for _, m in ipairs(g[from] or {}) do
        if reaches(m, target, seen) then return true end
      end
      return false
    end
    assert.is_false(reaches("emrflow.asl", "emrflow.emr.tasks"))
    assert.is_true(reaches("emrflow.emr", "emrflow.emr.tasks"))
  end)
end)
