-- emrflow.emr: Amazon EMR on EKS (emr-containers).
--
--   local emr = require "emrflow.emr"
--   local client = emr.client{ region = "us-east-1", endpoint_url = nil, profile = nil,
--                              credentials = nil, max_attempts = 3 }
--   local out, err = client:start_job_run{ VirtualClusterId = "...", ... }
--   emr.model.validate("StartJobRun", params)      --> true | nil, err
--   emr.model.to_wire(op, params), emr.model.from_wire(op, body)
--   emr.tasks                                      -- Task-state helpers; requiring emrflow.emr
--                                                  -- registers the Task integration with emrflow.asl
local client = require "emrflow.emr.client"
local validate = require "emrflow.emr.validate"
local data = require "emrflow.emr.model"
local tasks = require "emrflow.emr.tasks"

local M = {}

--- A client: see emrflow.emr.client for the options.
function M.client(opts)
  return client.new(opts)
end

--- The API model: the generated data (operations, shapes, metadata, sources)
--- plus the functions working on it.
M.model = {
  operations = data.operations,
  shapes = data.shapes,
  metadata = data.metadata,
  sources = data.sources,
  validate = validate.check,
  to_wire = validate.to_wire,
  from_wire = validate.from_wire,
  pascal = validate.pascal,
  snake_case = client.snake_case,
}

M.uuid4 = client.uuid4
M.methods = client.methods

M.tasks = tasks

return M
