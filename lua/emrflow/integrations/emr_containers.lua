--- emrflow.integrations.emr_containers: found by the interpreter for
-- arn:aws:states:::emr-containers:* resources (the optimized EMR on EKS integration);
-- loading it registers the integration (emrflow.emr.tasks).
-- @module emrflow.integrations.emr_containers
return require "emrflow.emr.tasks"
