-- The rockspec, the Makefile's sources and the tree stay in step, and the rock installs.
local gen = dofile("tools/gen-rockspec.lua")

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("rockspec", function()
  it("lists every C source the Makefile builds and every Lua module", function()
    local f = assert(io.open("rockspec/emrflow-scm-1.rockspec"))
    local have = f:read("a")
    f:close()
    assert.equal(gen.render("."), have, "run: lua5.4 tools/gen-rockspec.lua")
    local ok, out = run("make -s print")
    assert.is_true(ok)
    local srcs = {}
    for s in out:match("SRCS=([^\n]*)"):gmatch("%S+") do srcs[#srcs + 1] = s end
    table.sort(srcs)
    assert.same(gen.sources("."), srcs)
  end)

  it("installs with luarocks make into a private tree, and require works from it", function()
    local tree = os.tmpname()
    os.remove(tree)
    -- env -u LD_PRELOAD: under make asan the compiler must not run with the sanitizer.
    local ok, out = run("env -u LD_PRELOAD luarocks --lua-version=5.4 make --tree '" .. tree ..
      "' rockspec/emrflow-scm-1.rockspec")
    assert.is_true(ok, out)
    local lua_path = tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"
    local lua_cpath = tree .. "/lib/lua/5.4/?.so"
    local script = [[local e = require "emrflow"; local j = require "emrflow.json";
      assert(package.searchpath("emrflow.core", package.cpath):find(os.getenv("TREE"), 1, true));
      io.write(e.VERSION, " ", j.encode(j.decode('{"a":[1,2.5,null]}')))]]
    ok, out = run("cd / && env -u LD_PRELOAD TREE='" .. tree .. "' LUA_PATH='" .. lua_path ..
      "' LUA_CPATH='" .. lua_cpath .. "' lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'")
    assert.is_true(ok, out)
    assert.equal(require("emrflow.version").version .. ' {"a":[1,2.5,null]}', out)
    local bin = io.open(tree .. "/bin/emrflow")
    assert.is_truthy(bin, "bin/emrflow installed")
    if bin then bin:close() end
    run("rm -rf '" .. tree .. "'")
  end)
end)
