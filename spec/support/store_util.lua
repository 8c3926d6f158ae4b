-- Spec helpers for the execution store: temporary directories, files, child processes.
--
--   local su = require "support.store_util"
--   local dir = su.tmpdir()              -- removed by su.cleanup()
--   su.write(path, text), su.read(path)
--   su.sh(cmd) --> ok, stdout            -- runs through /bin/sh
--   local child = su.spawn(lua_code, args)   -- a lua5.4 child: child:wait_line(pattern),
--                                             -- child:lines(), child:finish() (closes its stdin)
--   su.sample_execution(n)               -- fields for store:create_execution
--   su.wait_dead(pid [, seconds])        -- until pid is gone (or a zombie)
--   su.run_or_kill(lua_code, args, kill_after) --> status, output
--       a child that prints "pid N", "started ...", and at its end "status S" / "output JSON":
--       killed with -9 kill_after seconds after it started, or (kill_after nil) let end
local M = {}

local dirs = {}

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/emrflow-store-spec.XXXXXX")
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  dirs[#dirs + 1] = dir
  return dir
end

function M.cleanup()
  for _, d in ipairs(dirs) do
    os.execute("chmod -R u+w " .. M.quote(d) .. " 2>/dev/null; rm -rf " .. M.quote(d))
  end
  dirs = {}
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.sleep(seconds)
  os.execute(string.format("sleep %.3f", seconds))
end

-- The environment every child needs to find the modules of this worktree.
function M.lua_env()
  return "LUA_PATH=" .. M.quote(package.path) .. " LUA_CPATH=" .. M.quote(package.cpath)
end

local Child = {}
Child.__index = Child

--- Starts lua5.4 on `code` (written to a temporary script) with args, stdout and stderr going
-- to a file, stdin a pipe from this process (the child sees EOF when child:finish() closes it,
-- or when we die). The child's default store is a path that cannot be created, so a child
-- that forgot its store fails instead of writing to the user's.
function M.spawn(code, args)
  local out, script = os.tmpname(), os.tmpname()
  M.write(script, code)
  local quoted = {}
  for i, a in ipairs(args or {}) do quoted[i] = M.quote(a) end
  local cmd = string.format("%s EMRFLOW_STORE=/dev/null/no-store lua5.4 %s %s > %s 2>&1",
    M.lua_env(), M.quote(script), table.concat(quoted, " "), M.quote(out))
  local stdin = assert(io.popen(cmd, "w"))
  return setmetatable({ stdin = stdin, out = out, script = script }, Child)
end

function Child:lines()
  local text = M.read(self.out) or ""
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

--- Waits (up to `seconds`, default 20) until a line of the child's output matches pattern.
function Child:wait_line(pattern, seconds)
  local deadline = os.time() + (seconds or 20)
  repeat
    for _, line in ipairs(self:lines()) do
      local m = line:match(pattern)
      if m then return m end
    end
    M.sleep(0.05)
  until os.time() > deadline
  error("the child never printed a line matching " .. pattern .. "; it printed:\n"
    .. (M.read(self.out) or ""))
end

function Child:finish()
  if self.stdin then
    self.stdin:close()
    self.stdin = nil
  end
  local lines = self:lines()
  os.remove(self.out)
  os.remove(self.script)
  return lines
end

--- Waits until pid has died (gone, or a zombie its adoptive parent has yet to reap).
function M.wait_dead(pid, seconds)
  for _ = 1, (seconds or 20) * 50 do
    local stat = M.read("/proc/" .. pid .. "/stat")
    if not stat or stat:match("^%d+ %b() (%a)") == "Z" then return end
    M.sleep(0.02)
  end
  error("process " .. pid .. " survived kill -9")
end

--- Runs a child script (see the header); returns its status and decoded output when it
-- ended by itself (nil, nil when killed before printing them).
function M.run_or_kill(code, args, kill_after)
  local child = M.spawn(code, args)
  local pid = tonumber(child:wait_line("^pid (%d+)$"))
  child:wait_line("^(started) ", 30)
  if kill_after then
    M.sleep(kill_after)
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    M.wait_dead(pid)
  else
    child:wait_line("^status (%u+)$", 120)
  end
  local status, output
  for _, l in ipairs(child:finish()) do
    status = l:match("^status (%u+)$") or status
    output = l:match("^output (.*)$") or output
  end
  return status, output and require("emrflow.json").decode(output)
end

--- Fields of a sample execution n for store:create_execution.
function M.sample_execution(n, machine)
  machine = machine or "nightly"
  local name = "run-" .. tostring(n)
  return {
    arn = "arn:aws:states:us-east-1:123456789012:execution:" .. machine .. ":" .. name,
    name = name,
    machine_name = machine,
    machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:" .. machine,
    definition = '{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}',
    input = { n = n },
  }
end

return M
