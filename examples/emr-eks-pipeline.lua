-- The EMR on EKS pipeline of emr-eks-pipeline.json, written in Lua with the Task builders.
-- The three Task states are the ones of the Step Functions page "Call Amazon EMR on EKS
-- with AWS Step Functions", joined into one pipeline:
--   Create_Virtual_Cluster -> Submit_Job (startJobRun.sync) -> Delete_Virtual_Cluster (.sync)
--
--   lua5.4 bin/emrflow run examples/emr-eks-pipeline.lua --local
--   lua5.4 bin/emrflow export examples/emr-eks-pipeline.lua     # the same ASL as the .json
local tasks = require("emrflow.emr").tasks

return {
  Comment = "The three Task states of the Step Functions page \"Call Amazon EMR on EKS with AWS Step "
    .. "Functions\", joined into one pipeline: create a virtual cluster, run a job on it to completion, "
    .. "then delete the cluster and wait for it to terminate.",
  StartAt = "Create_Virtual_Cluster",
  States = {
    Create_Virtual_Cluster = tasks.create_virtual_cluster{
      Name = "MyVirtualCluster",
      ContainerProvider = {
        Id = "EKSClusterName",
        Type = "EKS",
        Info = { EksInfo = { Namespace = "namespace" } },
      },
      ResultSelector = { ["VirtualClusterId.$"] = "$.Id" },
      Next = "Submit_Job",
    },

    Submit_Job = tasks.start_job_run{
      sync = true,
      Name = "MyJobName",
      ["VirtualClusterId.$"] = "$.VirtualClusterId",
      ExecutionRoleArn = "arn:aws:iam::123456789012:role/job-execution-role",
      ReleaseLabel = "emr-6.2.0-latest",
      JobDriver = {
        SparkSubmitJobDriver = {
          EntryPoint = "s3://my-bucket/jobs/trip-count.py",
          EntryPointArguments = { "60" },
          SparkSubmitParameters = "--conf spark.driver.cores=2 --conf spark.executor.instances=10 "
            .. "--conf spark.kubernetes.pyspark.pythonVersion=3 --conf spark.executor.memory=10G "
            .. "--conf spark.driver.memory=10G --conf spark.executor.cores=1 "
            .. "--conf spark.dynamicAllocation.enabled=false",
        },
      },
      ConfigurationOverrides = {
        ApplicationConfiguration = {
          {
            Classification = "spark-defaults",
            Properties = {
              ["spark.executor.instances"] = "2",
              ["spark.executor.memory"] = "2G",
            },
          },
        },
        MonitoringConfiguration = {
          PersistentAppUI = "ENABLED",
          CloudWatchMonitoringConfiguration = {
            LogGroupName = "MyLogGroupName",
            LogStreamNamePrefix = "MyLogStreamNamePrefix",
          },
          S3MonitoringConfiguration = { LogUri = "s3://<mylogsbucket>" },
        },
      },
      ResultPath = "$.JobRun",
      Next = "Delete_Virtual_Cluster",
    },

    Delete_Virtual_Cluster = tasks.delete_virtual_cluster{
      sync = true,
      ["Id.$"] = "$.VirtualClusterId",
      ResultPath = "$.VirtualCluster",
      End = true,
    },
  },
}
