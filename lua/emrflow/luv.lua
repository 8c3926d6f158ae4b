-- emrflow.luv: drives an emrflow scheduler from a libuv loop (luv), without blocking it.
--
--   local uv = require "luv"
--   local s = require("emrflow.scheduler").new{ clock = "real" }
--   local att = require("emrflow.luv").attach(uv, s)     -- uv: the luv module (its loop)
--   local exec = machine:start(input, { scheduler = s })
--   uv.run()                       -- returns once nothing (of emrflow's or yours) is left
--   att:detach()
--
-- After every step the attachment brings one uv poll handle per socket the scheduler
-- watches (s:sockets()) and one uv timer (s:timeout()) in line with the scheduler; either
-- firing runs s:step(0), which never blocks. Work made ready by host code between steps
-- (exec:stop(), machine:start()) arms the timer through s:set_wakeup. Handles of an idle
-- attachment are stopped, so they do not keep uv.run() alive. A socket libcurl stops
-- watching loses its uv handle at once (closed, not just stopped: libuv must forget a
-- descriptor before its number can come back as another socket).
--
-- Errors never reach the loop: a failed step (not a Task error: those end up in the
-- execution) goes to opts.on_error(err), default a line on stderr.
local M = {}

local Attachment = {}
Attachment.__index = Attachment

local function close_handle(h)
  if not h:is_closing() then
    h:stop()
    h:close()
  end
end

local function default_on_error(err)
  io.stderr:write("emrflow.luv: scheduler step failed: ", tostring(err), "\n")
end

-- One step, then the handles follow the scheduler again. why: "socket" or "timer".
function Attachment:_run(why)
  if self.detached then return end
  self.counts[why] = self.counts[why] + 1
  local ok, err = pcall(self.s.step, self.s, 0)
  if not ok then pcall(self.on_error, err) end
  self.failed = not ok
  self:_sync()
end

-- Which uv events a scheduler socket entry asks for ("r", "w" or "rw").
local function events_of(sk)
  return (sk.read and "r" or "") .. (sk.write and "w" or "")
end

function Attachment:_sync_polls()
  local uv, polls = self.uv, self.polls
  local wanted = {}
  for _, sk in ipairs(self.s:sockets()) do
    local fd, ev = sk.fd, events_of(sk)
    wanted[fd] = true
    local cur = polls[fd]
    -- Another generation is another socket on a reused number: libuv must forget the old
    -- one (closing its handle) before it watches the new one.
    if cur and cur.gen ~= sk.gen then
      close_handle(cur.handle)
      polls[fd], cur = nil, nil
    end
    if not cur and ev ~= "" then
      local h, err = uv.new_socket_poll(fd)
      if not h then error("cannot watch socket " .. fd .. ": " .. tostring(err), 0) end
      cur = { handle = h, gen = sk.gen }
      polls[fd] = cur
    end
    if cur and cur.events ~= ev then
      cur.handle:start(ev, self.on_ready)
      cur.events = ev
    end
  end
  for fd, cur in pairs(polls) do
    if not wanted[fd] then
      close_handle(cur.handle)
      polls[fd] = nil
    end
  end
end

function Attachment:_sync_timer()
  local t = self.s:timeout()
  if t == nil then
    self.timer:stop()
  else
    local ms = math.max(0, math.ceil(t * 1000))
    if self.failed then ms = math.max(ms, 100) end   -- a failing step must not spin the loop
    self.timer:start(ms, 0, self.on_timer)
  end
end

function Attachment:_sync()
  if self.detached then return end
  local ok, err = pcall(self._sync_polls, self)
  if not ok then
    pcall(self.on_error, err)
    self.timer:start(10, 0, self.on_timer)      -- try again shortly rather than hang
    return
  end
  self:_sync_timer()
end

--- Stops following the scheduler and closes every handle. Idempotent.
function Attachment:detach()
  if self.detached then return end
  self.detached = true
  if self.s.wakeup == self.wake then self.s:set_wakeup(nil) end
  for fd, cur in pairs(self.polls) do
    close_handle(cur.handle)
    self.polls[fd] = nil
  end
  close_handle(self.timer)
  -- luv 1.44 crashes at exit on handles closed but never finished by the loop: outside the
  -- loop, let it finish them now (one non-blocking turn).
  if self.uv.loop_mode and self.uv.loop_mode() == nil then self.uv.run("nowait") end
end

--- How many steps a ready socket and the timer ran: { socket = n, timer = n }.
function Attachment:stats()
  return { socket = self.counts.socket, timer = self.counts.timer }
end

--- Brings the handles in line with the scheduler now (after host code changed it and the
-- wakeup was not enough, e.g. an attachment made before the scheduler had work).
function Attachment:update()
  self:_sync()
end

local function check_loop(uv)
  if type(uv) ~= "table" or type(uv.new_timer) ~= "function"
    or type(uv.new_socket_poll) ~= "function" then
    error("emrflow.luv.attach: expects the luv module (require \"luv\") as the loop", 3)
  end
end

local function check_scheduler(s)
  if type(s) ~= "table" or type(s.step) ~= "function" or type(s.sockets) ~= "function"
    or type(s.timeout) ~= "function" or type(s.set_wakeup) ~= "function" then
    error("emrflow.luv.attach: expects an emrflow scheduler (emrflow.scheduler.new)", 3)
  end
end

--- Attaches scheduler s to the luv loop uv. opts.on_error(err): where a failed step goes.
-- Returns the attachment (att:detach(), att:update(), att:stats()).
function M.attach(uv, s, opts)
  check_loop(uv)
  check_scheduler(s)
  opts = opts or {}
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("emrflow.luv.attach: on_error must be a function", 2)
  end
  if s.wakeup ~= nil then
    error("emrflow.luv.attach: this scheduler already has a wakeup (attached twice?)", 2)
  end
  local a = setmetatable({
    uv = uv, s = s, polls = {}, timer = uv.new_timer(), detached = false,
    counts = { socket = 0, timer = 0 },
    on_error = opts.on_error or default_on_error,
  }, Attachment)
  a.on_ready = function() a:_run("socket") end
  a.on_timer = function() a:_run("timer") end
  -- Host code made work ready between steps (exec:stop() may also have closed sockets):
  -- let go of sockets no longer watched at once, and step soon (never from inside the hook).
  a.wake = function()
    if a.detached then return end
    pcall(a._sync_polls, a)
    a.timer:start(0, 0, a.on_timer)
  end
  s:set_wakeup(a.wake)
  a:_sync()
  return a
end

return M
