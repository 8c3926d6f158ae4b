-- Spec helper: a moto server (an independent Step Functions implementation) on 127.0.0.1.
--
--   local moto = require "support.moto"
--   local srv, why = moto.start{ execute = true }   -- nil, why when moto is not installed
--   srv.url                                          -- "http://127.0.0.1:<port>"
--   srv:stop()
--
-- moto is looked for in $EMRFLOW_MOTO_PYTHON, then `python3` on PATH (a pyenv or venv one
-- may have it where Debian's /usr/bin/python3 does not). The server runs in-process in a
-- small Python launcher: ThreadedMotoServer on port 0 (the port it got is printed), with
-- moto's stepfunctions `execute_state_machine` setting on when `execute` is true (moto then
-- runs JSONPath machines). Lifetime as spec/support/fake.lua: the launcher's stdin is a FIFO
-- whose only writer is this Lua process; it exits at EOF, so it never outlives the specs, and
-- it closes the descriptors it inherits, so it never keeps another server alive.
local M = {}

local LAUNCHER = [[
import sys, os
os.closerange(3, 65536)   # never hold another server's FIFO open (it would outlive its stop)
from moto.core.config import default_user_config
default_user_config["stepfunctions"] = {"execute_state_machine": sys.argv[1] == "1"}
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print("PORT %d" % server.get_host_and_port()[1], flush=True)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 2)
sys.stdin.read()
os._exit(0)
]]

-- moto is not under test: `make asan` preloads the sanitizers for emrflow's C, not for Python.
local NO_PRELOAD = "env -u LD_PRELOAD "

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local probed

--- The Python interpreter that has moto, or nil, why.
function M.python()
  if probed ~= nil then return probed or nil, M.why end
  local candidates = {}
  if os.getenv("EMRFLOW_MOTO_PYTHON") then candidates[#candidates + 1] = os.getenv("EMRFLOW_MOTO_PYTHON") end
  candidates[#candidates + 1] = "python3"
  for _, py in ipairs(candidates) do
    local probe = " -c 'import moto.server, moto.stepfunctions' >/dev/null 2>&1"
    if run_ok(NO_PRELOAD .. shell_quote(py) .. probe) then
      probed = py
      return py
    end
  end
  probed = false
  M.why = "moto is not installed for " .. table.concat(candidates, " or ")
    .. " (pip install 'moto[server]', or set EMRFLOW_MOTO_PYTHON)"
  return nil, M.why
end

local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  local state = stat:match("%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local Server = {}
Server.__index = Server

function Server:stop()
  if self._stopped then return end
  self._stopped = true
  self._stdin:close()
  for _ = 1, 250 do
    if not alive(self.pid) then break end
    run_ok("sleep 0.02")
  end
  if alive(self.pid) then run_ok(("kill -9 %d 2>/dev/null"):format(self.pid)) end
  self._stdout:close()
end
Server.__close = Server.stop

--- Starts a moto server; returns it, or nil, why when moto is absent or does not start.
function M.start(opts)
  opts = opts or {}
  local py, why = M.python()
  if not py then return nil, why end
  local fifo = os.tmpname()
  os.remove(fifo)
  if not run_ok("mkfifo -m 600 " .. shell_quote(fifo)) then return nil, "mkfifo failed" end
  local cmd = ("echo PID $$; exec %s%s -c %s %s < %s"):format(NO_PRELOAD, shell_quote(py),
    shell_quote(LAUNCHER), opts.execute and "1" or "0", shell_quote(fifo))
  local out = io.popen(cmd, "r")
  local stdin = out and io.open(fifo, "w")
  os.remove(fifo)
  if not out or not stdin then
    if out then out:close() end
    return nil, "cannot start moto"
  end
  local pid = tonumber((out:read("l") or ""):match("^PID (%d+)$"))
  local port = tonumber((out:read("l") or ""):match("^PORT (%d+)$"))
  if not pid or not port then
    stdin:close()
    out:close()
    return nil, "moto did not start"
  end
  return setmetatable({ pid = pid, port = port, url = "http://127.0.0.1:" .. port,
                        _stdin = stdin, _stdout = out }, Server)
end

--- Credentials and an environment for clients of a moto server (moto accepts any).
M.credentials = { access_key_id = "AKIDMOTOEXAMPLE", secret_access_key = "moto-secret-example" }
M.ACCOUNT = "123456789012"

return M
