--- emrflow.integrations.emrcontainers: found by the interpreter for
-- arn:aws:states:::aws-sdk:emrcontainers:* resources; loading it registers the EMR on EKS
-- integration (emrflow.emr.tasks), which serves every emr-containers operation.
-- @module emrflow.integrations.emrcontainers
return require "emrflow.emr.tasks"
