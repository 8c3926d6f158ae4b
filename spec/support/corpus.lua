-- luacheck: no max line length
-- The recorded-AWS conformance corpus, for specs: where it is and what is in a group.
-- It lives in ../shared (or $EMRFLOW_SHARED); specs skip its cases when it is absent.
local json = require "emrflow.json"

local M = {}

--- The shared/ directory (it may not exist).
function M.shared_dir()
  local env = os.getenv("EMRFLOW_SHARED")
  if env and env ~= "" then return env end
  return "../shared"
end

--- The case files of an ASL group, sorted, and the group's directory ({} when absent).
function M.files(group)
  local dir = M.shared_dir() .. "/conformance/asl/" .. group
  local list = io.popen("ls " .. dir .. " 2>/dev/null")
  local files = {}
  for f in list:lines() do files[#files + 1] = f end
  list:close()
  table.sort(files)
  return files, dir
end

--- One decoded case file.
function M.read(path)
  local fh = assert(io.open(path))
  local case = json.decode(fh:read("a"))
  fh:close()
  return case
end

-- The context object as the corpus redacts it (values the snapshot tool replaced).
local CONTEXT = [[{"Execution": {"Id": "arn:<partition>:states:<region>:111111111111:execution:<ArnPart_0idx>:<ExecArnPart_0idx>",
  "Input": null, "StartTime": "date", "Name": "<ExecArnPart_0idx>", "RoleArn": "snf_role_arn", "RedriveCount": 0},
  "StateMachine": {"Id": "arn:<partition>:states:<region>:111111111111:stateMachine:<ArnPart_0idx>", "Name": "<ArnPart_0idx>"},
  "State": {"Name": "", "EnteredTime": "date"}}]]

--- A fresh context object for state `name` of an execution with `input`.
function M.context(name, input)
  local ctx = json.decode(CONTEXT)
  ctx.Execution.Input = input
  ctx.State.Name = name
  return ctx
end

return M
