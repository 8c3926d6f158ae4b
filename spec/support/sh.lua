-- Spec helper: runs a shell command line, capturing both streams.
--
--   local sh = require "support.sh"
--   local code, out, err = sh(cmdline)     -- exit code, stdout, stderr
local function sh(cmdline)
  local errf = os.tmpname()
  local p = io.popen(cmdline .. " 2>" .. errf)
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errf)
  local err = f:read("a")
  f:close()
  os.remove(errf)
  return code, out, err
end

return sh
