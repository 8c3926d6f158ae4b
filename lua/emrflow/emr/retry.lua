-- emrflow.emr.retry: the AWS SDKs' "standard" retry mode.
--
--   local policy = retry.new{ max_attempts = 3, random = math.random, quota = 500 }
--   policy:classify(err)       --> "throttling" | "transient" | "timeout" | nil (not retryable)
--   policy:should_retry(err, attempt) --> delay_s | nil, why   (acquires retry quota)
--   policy:on_success(retried) -- refunds quota
--
-- Standard mode, as the SDKs implement it: at most `max_attempts` attempts in
-- all (default 3); a retry waits random(0,1) * min(20, 2^i) seconds, i the
-- 0-based retry index; each retry takes 5 tokens (10 after a timeout) from a
-- per-client bucket of 500; a success refunds the last cost when the call
-- was retried, 1 token otherwise; with the bucket empty, errors are returned
-- at once (no retry storm during an outage).
local M = {}

M.MAX_BACKOFF_S = 20
M.QUOTA = 500
M.RETRY_COST = 5
M.TIMEOUT_RETRY_COST = 10
M.NO_RETRY_INCREMENT = 1

-- Which errors are retried, and how (the code lists, the back-off, the quota
-- arithmetic) is the C core's (src/ef_emr.c); this module keeps a client's bucket.
local emr_core = require("emrflow.core").emr

-- Classify an error object: "throttling", "transient", "timeout" or nil (the
-- C core's lists: src/ef_emr.c).
function M.classify(err)
  if type(err) ~= "table" then return nil end
  local code, aws, status = err.code, err.aws_code, err.status
  if type(code) ~= "string" then code = nil end
  if type(aws) ~= "string" then aws = nil end
  if math.type(status) ~= "integer" then status = nil end
  return emr_core.classify(code, aws, status)
end

local Policy = {}
Policy.__index = Policy

-- retry.new{ max_attempts =, random =, quota =, max_backoff_s = }
function M.new(opts)
  opts = opts or {}
  local max_attempts = opts.max_attempts or 3
  if math.type(max_attempts) ~= "integer" or max_attempts < 1 then
    error("retry.new: max_attempts must be an integer >= 1, got " .. tostring(max_attempts), 2)
  end
  if opts.random ~= nil and type(opts.random) ~= "function" then
    error("retry.new: random must be a function returning a number in [0, 1)", 2)
  end
  local quota = opts.quota or M.QUOTA
  return setmetatable({
    max_attempts = max_attempts,
    random = opts.random or math.random,
    max_backoff_s = opts.max_backoff_s or M.MAX_BACKOFF_S,
    capacity = quota,
    max_capacity = quota,
  }, Policy)
end

Policy.classify = function(_, err) return M.classify(err) end

-- Back-off before retry number `i` (0-based).
function Policy:delay(i)
  local r = self.random()
  return r * math.min(self.max_backoff_s, 2 ^ i)
end

-- Decide after attempt number `attempt` (1-based) failed with err.
-- Returns delay_s and the quota cost taken, or nil and a reason
-- ("not retryable", "max attempts", "retry quota exhausted"). The C core
-- decides (src/ef_emr.c, as its own client does); the bucket lives here.
function Policy:should_retry(err, attempt)
  local kind = M.classify(err)
  if not kind then return nil, "not retryable" end
  if attempt >= self.max_attempts then return nil, "max attempts" end
  local delay, cost, left = emr_core.retry_decide(kind, attempt, self.capacity, self.max_attempts,
                                                  self.random(), self.max_backoff_s)
  if not delay then return nil, cost end
  self.capacity = left
  return delay, cost
end

-- After a successful reply: give back the last retry's cost, or 1 token.
function Policy:on_success(last_cost)
  local refund = last_cost or M.NO_RETRY_INCREMENT
  self.capacity = math.min(self.max_capacity, self.capacity + refund)
end

M.Policy = Policy
return M
