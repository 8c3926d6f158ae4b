-- The documentation a user reads: every command and option in the README, the install line
-- that works on Debian, no link or path to a file the repository lacks, no pointer to
-- DESIGN.md (the repository has none), a changelog, and LDoc's reference builds (issue #14 item 8).
local cli = require "emrflow.cli"

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  -- a directory: io.open fails on some systems, `test -e` does not
  local ok = os.execute("test -e '" .. path:gsub("'", "'\\''") .. "'")
  return ok == true or ok == 0
end

local function docs()
  local list = { "README.md", "examples/README.md", "CHANGELOG.md" }
  local p = io.popen("ls doc/*.md 2>/dev/null")
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

-- Files that point at DESIGN.md and whose owners have been asked to fix them; each must
-- still do so (remove it from here once it is fixed).
local DESIGN_MENTIONS_PENDING = {}

local TOP_DIRS = { src = true, lua = true, spec = true, examples = true, doc = true, bin = true,
                   bench = true, tools = true, rockspec = true }
-- made by the build, not kept in the repository
local GENERATED = { "^build", "^doc/api" }

-- Relative paths a document mentions: markdown link targets, and words that start with one of
-- the repository's top-level directories (in prose, backticks and code blocks alike); the
-- placeholder spec names of "run one spec" instructions (`spec/x_spec.lua`) are not paths.
local function mentioned_paths(text)
  local paths = {}
  for target in text:gmatch("%]%(([^)%s]+)%)") do
    if not target:match("^%a+:") and not target:match("^#") and not target:match("[%*%[%]]") then
      paths[#paths + 1] = target:gsub("#.*$", "")
    end
  end
  for word, after in text:gmatch("%f[%w%./_%-]([%w_%-%.]+/[%w_%-%./]*)(.?)") do
    local top = word:match("^([%w_%-]+)/")
    -- placeholders (`src/ef_*.c`, `spec/<name>_spec.lua`) are patterns, not paths
    if top and TOP_DIRS[top] and not after:match("[%*<{%$]") and not word:match("[<>%*]")
        and not word:match("/x_spec%.lua$") and not word:match("/foo_spec%.lua$") then
      paths[#paths + 1] = (word:gsub("[%.,:;]+$", ""))
    end
  end
  for word in text:gmatch("`([%w_%-]+%.md)`") do paths[#paths + 1] = word end
  return paths
end

describe("documentation", function()
  it("mentions no file the repository lacks", function()
    local missing = {}
    for _, doc in ipairs(docs()) do
      local text = assert(read(doc), doc)
      local base = doc:match("^(.*)/") or "."
      for _, p in ipairs(mentioned_paths(text)) do
        local generated = false
        for _, g in ipairs(GENERATED) do if p:match(g) then generated = true end end
        local candidates = { p, base .. "/" .. p }
        local found = generated or p:sub(1, 3) == "../"
        for _, c in ipairs(candidates) do if exists(c) then found = true end end
        if not found then missing[#missing + 1] = doc .. ": " .. p end
      end
    end
    assert.are.same({}, missing)
  end)

  it("never points at DESIGN.md (the repository has none)", function()
    assert.is_nil(read("DESIGN.md"))
    local offenders = {}
    for _, doc in ipairs(docs()) do
      local mentions = read(doc):find("DESIGN%.md") ~= nil
      if DESIGN_MENTIONS_PENDING[doc] then
        assert.is_true(mentions, doc .. " no longer mentions DESIGN.md: drop it from the pending list")
      elseif mentions then
        offenders[#offenders + 1] = doc
      end
    end
    assert.are.same({}, offenders)
    -- nor do the comments of the command line's modules
    for _, f in ipairs { "lua/emrflow/cli.lua", "lua/emrflow/progress.lua", "lua/emrflow/graph.lua",
                         "lua/emrflow/json.lua", "lua/emrflow/sigv4.lua", "lua/emrflow/config.lua",
                         "lua/emrflow/credentials.lua", "lua/emrflow/version.lua", "bin/emrflow" } do
      assert.is_nil(read(f):find("DESIGN%.md"), f)
    end
  end)

  it("the README covers every command and every option of the command line", function()
    local readme = read("README.md")
    local usage = cli.usage()
    local commands = 0
    for name in usage:gmatch("\n  ([%a][%w%-]*)  +") do
      commands = commands + 1
      assert.matches("emrflow " .. name:gsub("%-", "%%-") .. "[ `%]\n]", readme)
      local c = cli.commands[name]
      for _, o in ipairs(c.options or {}) do
        assert.truthy(readme:find("--" .. o.name, 1, true), "README lacks --" .. o.name .. " of " .. name)
      end
    end
    assert.is_true(commands >= 13, usage)
    for _, o in ipairs { "--help", "--version" } do assert.truthy(readme:find(o, 1, true), o) end
  end)

  it("the README installs with the Lua 5.4 luarocks and names the test command", function()
    local readme = read("README.md")
    assert.truthy(readme:find("luarocks --lua-version 5.4 make rockspec/emrflow-scm-1.rockspec", 1, true))
    assert.is_nil(readme:find("\nluarocks make", 1, true))
    assert.is_nil(readme:find("`luarocks make", 1, true))
    assert.truthy(readme:find("make test", 1, true))
  end)

  it("the changelog has a section for the current version", function()
    local log = assert(read("CHANGELOG.md"))
    local v = require("emrflow.version").version
    assert.truthy(log:find(v, 1, true), "CHANGELOG.md names " .. v)
  end)

  it("LDoc builds the API reference from config.ld, without complaints about the CLI's modules", function()
    assert.truthy(read("config.ld"))
    if not os.execute("command -v ldoc >/dev/null 2>&1") then
      return pending("needs ldoc (Debian lua-ldoc)")
    end
    local dir = os.tmpname()
    os.remove(dir)
    local p = io.popen("ldoc -c config.ld -d " .. dir .. " . 2>&1")
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    for _, m in ipairs { "emrflow.cli", "emrflow.graph", "emrflow.json", "emrflow.sigv4", "emrflow.config",
                         "emrflow.credentials", "emrflow.progress", "emrflow.version" } do
      assert.truthy(read(dir .. "/modules/" .. m .. ".html"), m)
    end
    for _, f in ipairs { "cli", "graph", "json", "sigv4", "config", "credentials", "progress", "version" } do
      assert.is_nil(out:find("lua/emrflow/" .. f .. "%.lua:%d+:"), out)
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
