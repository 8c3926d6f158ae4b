-- emrflow: AWS Step Functions workflows as Lua scripts, with Amazon EMR on EKS.
--
--   local emrflow = require "emrflow"
--   local machine = emrflow.load(definition)          -- Lua table or ASL JSON text
--   local status, result = emrflow.run(definition, input, opts)
--   local client = emrflow.client{ region = "us-east-1" }
--
-- The modules behind it are usable alone: emrflow.asl, emrflow.emr, emrflow.json,
-- emrflow.sigv4, emrflow.scheduler, emrflow.emulator.
local json = require "emrflow.json"
local asl = require "emrflow.asl"
local version = require "emrflow.version"

local M = {}

M.VERSION = version.version
M.null = json.null

--- Loads (validates and compiles) a state machine definition. The EMR on EKS integration
-- is registered first, so its resources resolve.
function M.load(definition, opts)
  require "emrflow.emr"
  return asl.load(definition, opts)
end

--- Runs a definition to completion: returns status, output | {Error=, Cause=}.
function M.run(definition, input, opts)
  local machine = M.load(definition)
  return machine:start(input, opts):wait()
end

--- An Amazon EMR on EKS (emr-containers) client.
function M.client(opts)
  return require("emrflow.emr").client(opts)
end

return M
