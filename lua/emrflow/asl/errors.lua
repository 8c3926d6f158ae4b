-- emrflow.asl.errors: ASL error values and the canonical States.* error names.
--
-- An ASL error is a plain table { Error = "<name>", Cause = "<text>" | nil }, raised with
-- error(e, 0) so that Retry/Catch can match it by name.  Causes produced by the data-flow
-- modules (jsonpath, intrinsics, payload, choice) hold only AWS's detail text, for example
--   "Invalid path '$.x' : No results for path: $['x']";
-- the engine adds AWS's state prefix with errors.in_state() when the error leaves a state.
--
--   errors.new(name, cause)          --> { Error = name, Cause = cause }
--   errors.raise(name, cause)        -- error(errors.new(name, cause), 0); never returns
--   errors.is(v)                     --> true when v is an ASL error table (string Error)
--   errors.runtime(cause)            -- raise States.Runtime with that cause
--   errors.intrinsic(cause)          -- raise States.IntrinsicFailure with that cause
--   errors.state_prefix(state, id)   --> "An error occurred while executing the state '<state>'
--                                         (entered at the event id #<id>). "
--   errors.in_state(e, state, id)    --> a new error whose Cause carries that prefix
--   errors.ALL, errors.RUNTIME, ...  -- the States.* names (see the table below)
local M = {}

M.ALL = "States.ALL"
M.TIMEOUT = "States.Timeout"
M.HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
M.TASK_FAILED = "States.TaskFailed"
M.PERMISSIONS = "States.Permissions"
M.RUNTIME = "States.Runtime"
M.DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
M.RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
M.PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
M.BRANCH_FAILED = "States.BranchFailed"
M.NO_CHOICE_MATCHED = "States.NoChoiceMatched"
M.INTRINSIC_FAILURE = "States.IntrinsicFailure"
M.EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
M.ITEM_READER_FAILED = "States.ItemReaderFailed"
M.RESULT_WRITER_FAILED = "States.ResultWriterFailed"
M.QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"

function M.new(name, cause)
  return { Error = name, Cause = cause }
end

function M.raise(name, cause)
  error({ Error = name, Cause = cause }, 0)
end

function M.is(v)
  return type(v) == "table" and type(v.Error) == "string"
end

function M.runtime(cause)
  error({ Error = M.RUNTIME, Cause = cause }, 0)
end

function M.intrinsic(cause)
  error({ Error = M.INTRINSIC_FAILURE, Cause = cause }, 0)
end

function M.state_prefix(state, event_id)
  return string.format("An error occurred while executing the state '%s' (entered at the event id #%s). ",
    tostring(state), tostring(event_id))
end

function M.in_state(e, state, event_id)
  return { Error = e.Error, Cause = M.state_prefix(state, event_id) .. (e.Cause or "") }
end

return M
