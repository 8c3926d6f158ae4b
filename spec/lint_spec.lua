-- The code stays lint-clean: luacheck (std lua54, no globals) over every Lua file, and
-- cppcheck over the C sources, exactly as `make lint` runs them.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

describe("lint", function()
  it("luacheck reports nothing", function()
    local ok, out = run("luacheck -q --no-color lua bin spec bench tools examples")
    assert.is_true(ok, out)
  end)

  it("cppcheck reports nothing", function()
    local ok, out = run("cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability " ..
      "--std=c11 --inline-suppr -Isrc src spec/c")
    assert.is_true(ok, out)
  end)
end)
