-- Spec helper: start a loopback fake server (spec/support/<name>.py, built on fakehttp.py),
-- talk to its /__fake/ control endpoints, stop it.
--
--   local fake = require "support.fake"
--   local srv = fake.start("fake_emr", { "--job-seconds", "0.1" })   -- or { job_seconds = 0.1 }
--   srv.url, srv.port                       -- "http://127.0.0.1:<port>", <port>
--   (with { "--tls-cert", cert, "--tls-key", key } the fake serves HTTPS: srv.url is
--    "https://127.0.0.1:<port>" and srv.ca_bundle = cert, used by srv:control)
--   srv:control("GET", "/__fake/stats")     --> decoded JSON (path may omit "/__fake/")
--   srv:control("POST", "/__fake/faults", { faults = { { kind = "reset" } } })
--   srv:faults{ { kind = "status", status = 503, count = 2 } }   -- POST /__fake/faults
--   srv:requests([{ method =, path_prefix = }])                  --> list of recorded requests
--   srv:stats(), srv:reset()
--   srv:stop()                              -- terminates the process and waits for it
--
-- Arguments: list entries are passed as they are; string keys become options
-- (job_seconds = 0.1 -> --job-seconds 0.1; true -> a bare flag; false/nil -> omitted).
--
-- Lifetime: the fake's stdin is a FIFO whose only writer is this Lua process, so the fake
-- sees EOF and exits as soon as srv:stop() closes it or this process dies in any way; it is
-- also given --watch-pid <this process>. The fake closes every inherited descriptor, so one
-- fake never keeps another alive. JSON goes through lua-cjson (null is cjson.null; integral
-- numbers come back as Lua integers).
local core = require "emrflow.core"
local cjson = require "cjson"

local M = {}

local PYTHON = "/usr/bin/python3"
local CONTROL_TIMEOUT_MS = 15000

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function support_dir()
  local src = debug.getinfo(1, "S").source
  local dir = src:match("^@(.*)/[^/]*$")
  return dir or "spec/support"
end

-- The --tls-cert value among the arguments, if any (then the fake speaks HTTPS).
local function tls_cert_of(args)
  if type(args) ~= "table" then return nil end
  if args.tls_cert then return tostring(args.tls_cert) end
  for i, v in ipairs(args) do
    if v == "--tls-cert" then return args[i + 1] end
    local c = type(v) == "string" and v:match("^%-%-tls%-cert=(.+)$")
    if c then return c end
  end
end

local function build_args(args)
  local out = {}
  if args == nil then return out end
  if type(args) ~= "table" then
    error("fake.start: args must be a table (got " .. type(args) .. ")", 3)
  end
  for _, v in ipairs(args) do out[#out + 1] = shell_quote(v) end
  local keys = {}
  for k in pairs(args) do
    if type(k) == "string" then keys[#keys + 1] = k
    elseif math.type(k) ~= "integer" or k < 1 or k > #args then
      error("fake.start: bad key in args: " .. tostring(k), 3)
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = args[k]
    local opt = "--" .. k:gsub("_", "-")
    if v == true then
      out[#out + 1] = shell_quote(opt)
    elseif v ~= false then
      out[#out + 1] = shell_quote(opt)
      out[#out + 1] = shell_quote(tostring(v))
    end
  end
  return out
end

-- lua-cjson decodes every number as a float; the fakes only send integers where they mean
-- counts, ids and seconds, so integral floats come back as integers.
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  elseif math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return math.tointeger(v)
  end
  return v
end

local function run_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

-- Running and not yet a zombie (a zombie is gone for our purpose; close() reaps it).
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

-- One blocking request on the server's private poller.
local function blocking(self, method, path, body)
  if self._stopped then error("fake " .. self.name .. ": already stopped", 3) end
  if not self._poller then self._poller = core.http.poller{ max_connections = 2 } end
  local p = self._poller
  local headers = { { "Host", "127.0.0.1:" .. self.port } }
  if body ~= nil then headers[#headers + 1] = { "Content-Type", "application/json" } end
  local id = p:add{ method = method, url = self.url .. path, headers = headers, body = body,
                    timeout_ms = CONTROL_TIMEOUT_MS, ca_bundle = self.ca_bundle }
  while true do
    for _, c in ipairs(p:step(100)) do
      if c.id == id then
        if c.err then return nil, c.err end
        return c.response
      end
    end
  end
end

function Server:control(method, path, body_table)
  if type(method) ~= "string" or type(path) ~= "string" then
    error("srv:control(method, path [, body_table]): method and path must be strings", 2)
  end
  if path:sub(1, 1) ~= "/" then path = "/__fake/" .. path end
  local body
  if body_table ~= nil then body = cjson.encode(body_table) end
  local resp, err = blocking(self, method, path, body)
  if not resp then
    error(("fake %s: %s %s failed: %s"):format(self.name, method, path, tostring(err)), 2)
  end
  local ok, doc = pcall(cjson.decode, resp.body)
  if resp.status >= 300 then
    error(("fake %s: %s %s -> HTTP %d: %s"):format(self.name, method, path, resp.status,
      resp.body), 2)
  end
  if not ok then
    error(("fake %s: %s %s: reply is not JSON: %s"):format(self.name, method, path, resp.body), 2)
  end
  return integers(doc)
end

function Server:faults(list)
  return self:control("POST", "/__fake/faults", { faults = list })
end

function Server:requests(filter)
  local q = {}
  for _, k in ipairs{ "method", "path_prefix", "since" } do
    if filter and filter[k] ~= nil then
      q[#q + 1] = k .. "=" .. tostring(filter[k]):gsub("[^%w%-%._~/]", function(c)
        return ("%%%02X"):format(c:byte())
      end)
    end
  end
  local path = "/__fake/requests" .. (#q > 0 and "?" .. table.concat(q, "&") or "")
  return self:control("GET", path).requests
end

function Server:stats()
  return self:control("GET", "/__fake/stats")
end

function Server:reset()
  return self:control("POST", "/__fake/reset")
end

function Server:stop()
  if self._stopped then return end
  self._stopped = true
  if self._poller then
    self._poller:close()
    self._poller = nil
  end
  self._stdin:close()                       -- EOF: the fake shuts down by itself
  local pid = self.pid
  local exited = false
  for _ = 1, 250 do                         -- up to about 5 s
    if not alive(pid) then exited = true break end
    run_ok("sleep 0.02")
  end
  if not exited then run_ok(("kill -9 %d 2>/dev/null"):format(pid)) end
  self._stdout:close()                      -- reaps it
end

Server.__close = Server.stop

function M.start(name, args)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error("fake.start: name must be the base name of a spec/support/*.py fake", 2)
  end
  local script = support_dir() .. "/" .. name .. ".py"
  local f = io.open(script, "r")
  if not f then error("fake.start: no such fake: " .. script, 2) end
  f:close()
  local argv = build_args(args)

  local fifo = os.tmpname()
  os.remove(fifo)
  if not run_ok("mkfifo -m 600 " .. shell_quote(fifo)) then
    error("fake.start: mkfifo failed for " .. fifo, 2)
  end
  -- $$ is the shell that execs python (same pid); $PPID is this Lua process.
  local cmd = ("echo PID $$; exec %s %s --watch-pid $PPID %s < %s"):format(
    PYTHON, shell_quote(script), table.concat(argv, " "), shell_quote(fifo))
  local out = io.popen(cmd, "r")
  local stdin = out and io.open(fifo, "w")  -- blocks until the shell opens the FIFO
  os.remove(fifo)
  if not out or not stdin then
    if out then out:close() end
    error("fake.start: cannot start " .. name, 2)
  end
  local pid_line = out:read("l")
  local port_line = out:read("l")
  local pid = pid_line and tonumber(pid_line:match("^PID (%d+)$"))
  local port = port_line and tonumber(port_line:match("^PORT (%d+)$"))
  if not pid or not port then
    stdin:close()
    out:close()
    error(("fake.start: %s did not start (got %q); see its stderr above"):format(
      name, tostring(port_line or pid_line)), 2)
  end
  local cert = tls_cert_of(args)
  return setmetatable({
    name = name, port = port, pid = pid, ca_bundle = cert,
    url = (cert and "https" or "http") .. "://127.0.0.1:" .. port,
    _stdout = out, _stdin = stdin,
  }, Server)
end

return M
