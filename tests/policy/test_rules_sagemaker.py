"""The SageMaker rules (policy/mlops_rules/sagemaker.py): each one fails on resources that break
it and passes on resources that keep it.

The pipeline steps below have the shape SageMaker Python SDK v3 writes (`Pipeline.definition()`
of a ModelTrainer TrainingStep and a Processor ProcessingStep, seen here): CreateTrainingJob /
CreateProcessingJob arguments and RetryPolicies of `{"ExceptionType": [...]}` entries.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from policy.mlops_rules import Resource, Violation
from tests.policy.helpers import KEY, resource, run

ROLE_ARN = "arn:aws:iam::111122223333:role/mlops-prod-training"
VPC_CONFIG = {"SecurityGroupIds": ["sg-0jobs"], "Subnets": ["subnet-0a", "subnet-0b"]}
RETRY_POLICIES = [
    {
        "BackoffRate": 2.0,
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "ExceptionType": ["Step.THROTTLING", "Step.SERVICE_FAULT"],
    },
    {
        "BackoffRate": 2.0,
        "IntervalSeconds": 30,
        "MaxAttempts": 5,
        "ExceptionType": [
            "SageMaker.CAPACITY_ERROR",
            "SageMaker.JOB_INTERNAL_ERROR",
            "SageMaker.RESOURCE_LIMIT",
        ],
    },
]
TRAINING_STEP: dict[str, Any] = {
    "Name": "Train",
    "Type": "Training",
    "Arguments": {
        "AlgorithmSpecification": {
            "TrainingInputMode": "File",
            "TrainingImage": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/churn-train:1.4.0",
        },
        "HyperParameters": {"epochs": "10"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.2xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 50,
            "VolumeKmsKeyId": KEY,
            "KeepAlivePeriodInSeconds": 600,
        },
        "VpcConfig": VPC_CONFIG,
        "RoleArn": ROLE_ARN,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "OutputDataConfig": {
            "S3OutputPath": "s3://mlops-prod-models/churn",
            "KmsKeyId": KEY,
            "CompressionType": "GZIP",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": {
                            "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['train']"
                            ".S3Output.S3Uri"
                        },
                    }
                },
            }
        ],
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": True,
    },
    "RetryPolicies": RETRY_POLICIES,
}
PROCESSING_STEP: dict[str, Any] = {
    "Name": "Preprocess",
    "Type": "Processing",
    "Arguments": {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": "ml.m5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
                "VolumeKmsKeyId": KEY,
            }
        },
        "AppSpecification": {
            "ImageUri": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/churn-steps:1.4.0",
            "ContainerEntrypoint": ["python3", "-m", "steps.preprocess"],
        },
        "RoleArn": ROLE_ARN,
        "ProcessingInputs": [
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": "s3://mlops-prod-data/churn/raw",
                    "LocalPath": "/opt/ml/processing/input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "train",
                    "S3Output": {
                        "S3Uri": "s3://mlops-prod-data/churn/train",
                        "LocalPath": "/opt/ml/processing/train",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": KEY,
        },
        "NetworkConfig": {"EnableNetworkIsolation": True, "VpcConfig": VPC_CONFIG},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    },
    "RetryPolicies": RETRY_POLICIES,
}


# -- helpers ----------------------------------------------------------------------------------


def assert_flags(found: list[Violation], policy_name: str, urn: str, fragment: str) -> None:
    assert any(v.rule == policy_name and v.urn == urn and fragment in v.message for v in found), (
        f"no {policy_name} violation on {urn} saying {fragment!r} in {found}"
    )


def step(template: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    """A deep copy of a step with top-level Arguments replaced (None: removed)."""
    copied = copy.deepcopy(template)
    for key, value in arguments.items():
        if value is None:
            copied["Arguments"].pop(key, None)
        else:
            copied["Arguments"][key] = value
    return copied


def pipeline(*steps: dict[str, Any], name: str = "churn-training") -> Resource:
    definition = {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [{"Name": "TrainInstanceCount", "Type": "Integer", "DefaultValue": 1}],
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "MlflowConfig": None,
        "Steps": list(steps),
    }
    return resource(
        "aws:sagemaker/pipeline:Pipeline",
        name,
        {"pipelineName": name, "roleArn": ROLE_ARN, "pipelineDefinition": json.dumps(definition)},
    )


def good_pipeline() -> Resource:
    return pipeline(copy.deepcopy(PROCESSING_STEP), copy.deepcopy(TRAINING_STEP))


def model(**props: Any) -> Resource:
    return resource(
        "aws:sagemaker/model:Model",
        "churn-model",
        {
            "executionRoleArn": ROLE_ARN,
            "primaryContainer": {"image": "churn-serve:1.4.0"},
            "vpcConfig": {"subnets": ["subnet-0a"], "securityGroupIds": ["sg-0jobs"]},
            "enableNetworkIsolation": True,
            **props,
        },
    )


# -- N1 ---------------------------------------------------------------------------------------


def test_n1_flags_model_and_job_steps_outside_the_vpc() -> None:
    bare_model = resource("aws:sagemaker/model:Model", "bare", {"executionRoleArn": ROLE_ARN})
    jobs = pipeline(
        step(PROCESSING_STEP, NetworkConfig={"EnableNetworkIsolation": True}),
        step(TRAINING_STEP, VpcConfig={"Subnets": ["subnet-0a"]}),
    )
    found = run("n1-sagemaker-in-vpc", bare_model, jobs)
    assert_flags(found, "n1-sagemaker-in-vpc", bare_model.urn, "no VPC configuration")
    assert_flags(found, "n1-sagemaker-in-vpc", jobs.urn, "'Preprocess' (Processing): no VPC")
    assert_flags(found, "n1-sagemaker-in-vpc", jobs.urn, "'Train' (Training): VPC configuration")
    assert len(found) == 3


def test_n1_looks_into_condition_branches() -> None:
    condition = {
        "Name": "GoodEnough",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.8, "RightValue": 0.7}],
            "IfSteps": [step(TRAINING_STEP, VpcConfig=None)],
            "ElseSteps": [],
        },
    }
    jobs = pipeline(copy.deepcopy(PROCESSING_STEP), condition)
    found = run("n1-sagemaker-in-vpc", jobs)
    assert_flags(found, "n1-sagemaker-in-vpc", jobs.urn, "'Train' (Training): no VPC")


def test_n1_passes_models_and_steps_in_the_vpc() -> None:
    assert run("n1-sagemaker-in-vpc", model(), good_pipeline()) == []


def test_n1_never_flags_unknown_values_or_runtime_expressions() -> None:
    unknown_model = model(vpcConfig=None)
    unknown_definition = resource(
        "aws:sagemaker/pipeline:Pipeline", "preview", {"pipelineDefinition": None}
    )
    parameterized = pipeline(
        step(
            TRAINING_STEP,
            VpcConfig={"Subnets": {"Get": "Parameters.Subnets"}, "SecurityGroupIds": ["sg-0jobs"]},
        )
    )
    assert run("n1-sagemaker-in-vpc", unknown_model, unknown_definition, parameterized) == []


# -- N2 ---------------------------------------------------------------------------------------


def test_n2_flags_models_and_training_without_network_isolation() -> None:
    open_model = model(enableNetworkIsolation=False)
    jobs = pipeline(step(TRAINING_STEP, EnableNetworkIsolation=None))
    found = run("n2-sagemaker-network-isolation", open_model, jobs)
    assert_flags(found, "n2-sagemaker-network-isolation", open_model.urn, "network isolation")
    assert_flags(found, "n2-sagemaker-network-isolation", jobs.urn, "'Train' (Training)")


def test_n2_passes_isolated_jobs_and_jobs_that_log_to_mlflow() -> None:
    mlflow = step(
        TRAINING_STEP,
        EnableNetworkIsolation=False,
        Environment={
            "MLFLOW_TRACKING_URI": "arn:aws:sagemaker:eu-west-1:1:mlflow-tracking-server/x"
        },
    )
    mlflow["Name"] = "TrainWithMlflow"
    assert run("n2-sagemaker-network-isolation", model(), pipeline(mlflow, TRAINING_STEP)) == []


# -- N3 ---------------------------------------------------------------------------------------


def jobs_security_group(*ingress: tuple[str, int | None, bool]) -> list[Resource]:
    """The SageMaker jobs security group plus its ingress rules (protocol, port, from itself)."""
    group = resource(
        "aws:ec2/securityGroup:SecurityGroup", "jobs-sg", {"tags": {"purpose": "sagemaker-jobs"}}
    )
    other = "urn:pulumi:prod::mlops-platform::aws:ec2/securityGroup:SecurityGroup::other"
    rules = [
        resource(
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            f"jobs-sg-{protocol}-{port}",
            {"ipProtocol": protocol, "fromPort": port, "toPort": port},
            {
                "securityGroupId": (group.urn,),
                "referencedSecurityGroupId": (group.urn if from_itself else other,),
            },
        )
        for protocol, port, from_itself in ingress
    ]
    return [group, *rules]


def test_n3_flags_unencrypted_multi_instance_training_and_missing_ipsec_ingress() -> None:
    scaled = step(TRAINING_STEP, EnableInterContainerTrafficEncryption=None)
    scaled["Arguments"]["ResourceConfig"]["InstanceCount"] = 4
    parameterized = step(TRAINING_STEP, EnableInterContainerTrafficEncryption=False)
    parameterized["Name"] = "TrainScaled"
    parameterized["Arguments"]["ResourceConfig"]["InstanceCount"] = {
        "Get": "Parameters.TrainInstanceCount"
    }
    jobs = pipeline(scaled, parameterized)
    group, *rules = jobs_security_group(("udp", 500, True), ("50", None, False))
    found = run("n3-inter-container-encryption", jobs, group, *rules)
    assert_flags(found, "n3-inter-container-encryption", jobs.urn, "'Train' (Training)")
    assert_flags(found, "n3-inter-container-encryption", jobs.urn, "'TrainScaled' (Training)")
    # ESP is allowed, but from another group, not from the jobs group itself.
    assert_flags(found, "n3-inter-container-encryption", group.urn, "ESP")
    assert len(found) == 3


def test_n3_passes_single_instance_or_encrypted_training_and_self_ipsec_ingress() -> None:
    single = step(TRAINING_STEP, EnableInterContainerTrafficEncryption=None)
    single["Name"] = "TrainSingle"
    encrypted = copy.deepcopy(TRAINING_STEP)
    encrypted["Arguments"]["ResourceConfig"]["InstanceCount"] = 4
    found = run(
        "n3-inter-container-encryption",
        pipeline(single, encrypted),
        *jobs_security_group(("udp", 500, True), ("50", None, True)),
    )
    assert found == []


# -- N4 ---------------------------------------------------------------------------------------


def test_n4_flags_public_domains_and_open_notebooks() -> None:
    domain = resource("aws:sagemaker/domain:Domain", "studio", {"authMode": "IAM"})
    notebook = resource(
        "aws:sagemaker/notebookInstance:NotebookInstance",
        "scratch",
        {"directInternetAccess": "Disabled", "rootAccess": "Enabled"},
    )
    found = run("n4-sagemaker-domain-notebooks", domain, notebook)
    assert_flags(found, "n4-sagemaker-domain-notebooks", domain.urn, "PublicInternetOnly")
    assert_flags(found, "n4-sagemaker-domain-notebooks", notebook.urn, "root access")
    assert len(found) == 2


def test_n4_passes_vpc_only_domains_and_locked_notebooks() -> None:
    domain = resource("aws:sagemaker/domain:Domain", "studio", {"appNetworkAccessType": "VpcOnly"})
    notebook = resource(
        "aws:sagemaker/notebookInstance:NotebookInstance",
        "scratch",
        {"directInternetAccess": "Disabled", "rootAccess": "Disabled"},
    )
    assert run("n4-sagemaker-domain-notebooks", domain, notebook) == []


# -- E5 ---------------------------------------------------------------------------------------


def endpoint_config(name: str = "churn-config", **props: Any) -> Resource:
    return resource(
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        name,
        {
            "name": name,
            "kmsKeyArn": KEY,
            "productionVariants": [
                {
                    "variantName": "primary",
                    "modelName": "churn-model",
                    "instanceType": "ml.m5.large",
                    "initialInstanceCount": 2,
                }
            ],
            "dataCaptureConfig": {
                "enableCapture": True,
                "initialSamplingPercentage": 20,
                "destinationS3Uri": "s3://mlops-prod-data/capture",
                "kmsKeyId": KEY,
                "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
            },
            **props,
        },
    )


def data_quality_job(
    endpoint: Resource | None = None, volume_key: str | None = KEY, output_key: str | None = KEY
) -> Resource:
    cluster = {"instanceCount": 1, "instanceType": "ml.m5.xlarge", "volumeSizeInGb": 20}
    output: dict[str, Any] = {"monitoringOutputs": {"s3Output": {"s3Uri": "s3://x/monitor"}}}
    if volume_key:
        cluster["volumeKmsKeyId"] = volume_key
    if output_key:
        output["kmsKeyId"] = output_key
    return resource(
        "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition",
        "churn-data-quality",
        {
            "name": "churn-data-quality",
            "jobResources": {"clusterConfig": cluster},
            "dataQualityJobOutputConfig": output,
            "dataQualityJobInput": {
                "endpointInput": {
                    "endpointName": endpoint.props["name"] if endpoint else "churn",
                    "localPath": "/opt/ml/processing/input",
                }
            },
        },
        {"dataQualityJobInput": (endpoint.urn,)} if endpoint else None,
    )


def test_e5_flags_missing_keys_on_endpoints_jobs_and_monitoring() -> None:
    config = endpoint_config(kmsKeyArn="")
    training = copy.deepcopy(TRAINING_STEP)
    del training["Arguments"]["OutputDataConfig"]["KmsKeyId"]
    del training["Arguments"]["ResourceConfig"]["VolumeKmsKeyId"]
    processing = copy.deepcopy(PROCESSING_STEP)
    del processing["Arguments"]["ProcessingOutputConfig"]["KmsKeyId"]
    jobs = pipeline(processing, training)
    monitor = data_quality_job(volume_key=None, output_key=None)
    found = run("e5-sagemaker-kms", config, jobs, monitor)
    assert_flags(found, "e5-sagemaker-kms", config.urn, "no kmsKeyArn")
    assert_flags(found, "e5-sagemaker-kms", jobs.urn, "'Train' (Training): OutputDataConfig")
    assert_flags(found, "e5-sagemaker-kms", jobs.urn, "ResourceConfig.VolumeKmsKeyId")
    assert_flags(found, "e5-sagemaker-kms", jobs.urn, "'Preprocess' (Processing): Processing")
    assert_flags(found, "e5-sagemaker-kms", monitor.urn, "volumeKmsKeyId")
    assert_flags(found, "e5-sagemaker-kms", monitor.urn, "output has no kmsKeyId")
    assert len(found) == 6


def test_e5_passes_keys_set_and_instance_storage_without_volume_key() -> None:
    gpu = copy.deepcopy(TRAINING_STEP)
    gpu["Name"] = "TrainOnGpu"
    # NVMe instance storage is encrypted by hardware; SageMaker rejects a VolumeKmsKeyId there.
    gpu["Arguments"]["ResourceConfig"]["InstanceType"] = "ml.g5.2xlarge"
    del gpu["Arguments"]["ResourceConfig"]["VolumeKmsKeyId"]
    jobs = pipeline(copy.deepcopy(PROCESSING_STEP), copy.deepcopy(TRAINING_STEP), gpu)
    assert run("e5-sagemaker-kms", endpoint_config(), jobs, data_quality_job()) == []


def test_e5_never_flags_a_key_unknown_during_a_preview() -> None:
    assert run("e5-sagemaker-kms", endpoint_config(kmsKeyArn=None), data_quality_job()) == []


# -- E6 ---------------------------------------------------------------------------------------


def feature_group(online: dict[str, Any], offline: dict[str, Any] | None) -> Resource:
    props: dict[str, Any] = {"featureGroupName": "churn-features", "onlineStoreConfig": online}
    if offline is not None:
        props["offlineStoreConfig"] = offline
    return resource("aws:sagemaker/featureGroup:FeatureGroup", "churn-features", props)


def test_e6_flags_feature_stores_without_keys() -> None:
    group = feature_group(
        {"enableOnlineStore": True}, {"s3StorageConfig": {"s3Uri": "s3://mlops-prod-features"}}
    )
    found = run("e6-feature-group-kms", group)
    assert_flags(found, "e6-feature-group-kms", group.urn, "online store has no KMS key")
    assert_flags(found, "e6-feature-group-kms", group.urn, "offline store has no KMS key")


def test_e6_passes_keyed_stores_and_a_disabled_online_store() -> None:
    keyed = feature_group(
        {"enableOnlineStore": True, "securityConfig": {"kmsKeyId": KEY}},
        {"s3StorageConfig": {"s3Uri": "s3://mlops-prod-features", "kmsKeyId": KEY}},
    )
    online_off = feature_group({"enableOnlineStore": False}, None)
    assert run("e6-feature-group-kms", keyed) == []
    assert run("e6-feature-group-kms", online_off) == []


# -- R4 / R7 (prod endpoints) ------------------------------------------------------------------


def endpoint(name: str | None = "churn", resource_name: str = "churn", **props: Any) -> Resource:
    """A prod endpoint with blue/green and rollback alarms; `name` None: not known yet."""
    deployment = {
        "blueGreenUpdatePolicy": {
            "trafficRoutingConfiguration": {"type": "ALL_AT_ONCE", "waitIntervalInSeconds": 300}
        },
        "autoRollbackConfiguration": {"alarms": [{"alarmName": "churn-5xx"}]},
    }
    base = {"endpointConfigName": "churn-config", "deploymentConfig": deployment}
    if name is not None:
        base["name"] = name
    return resource("aws:sagemaker/endpoint:Endpoint", resource_name, {**base, **props})


def scaling_target(name: str, resource_id: str | None, deps: tuple[str, ...] = ()) -> Resource:
    return resource(
        "aws:appautoscaling/target:Target",
        name,
        {
            "serviceNamespace": "sagemaker",
            "scalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "resourceId": resource_id,
            "minCapacity": 2,
            "maxCapacity": 6,
        },
        {"resourceId": deps},
    )


def monitoring_schedule(definition: Resource) -> Resource:
    return resource(
        "aws:sagemaker/monitoringSchedule:MonitoringSchedule",
        "churn-monitoring",
        {
            "monitoringScheduleConfig": {
                "monitoringJobDefinitionName": definition.props["name"],
                "monitoringType": "DataQuality",
                "scheduleConfig": {"scheduleExpression": "cron(0 * ? * * *)"},
            }
        },
        {"monitoringScheduleConfig": (definition.urn,)},
    )


def test_r4_flags_single_instance_serverless_and_unguarded_prod_endpoints() -> None:
    config = endpoint_config(
        productionVariants=[
            {"variantName": "primary", "instanceType": "ml.m5.large", "initialInstanceCount": 1},
            {
                "variantName": "cheap",
                "serverlessConfig": {"maxConcurrency": 5, "memorySizeInMb": 2048},
            },
        ]
    )
    bare = endpoint(deploymentConfig={"rollingUpdatePolicy": {}})
    found = run("r4-prod-endpoint-ha", config, bare)
    assert_flags(found, "r4-prod-endpoint-ha", config.urn, "variant primary initialInstanceCount 1")
    assert_flags(found, "r4-prod-endpoint-ha", config.urn, "variant cheap is serverless")
    assert_flags(found, "r4-prod-endpoint-ha", bare.urn, "no blue/green")
    assert_flags(found, "r4-prod-endpoint-ha", bare.urn, "no auto-rollback alarms")
    assert_flags(found, "r4-prod-endpoint-ha", bare.urn, "no autoscaling target")
    assert len(found) == 5
    assert run("r4-prod-endpoint-ha", config, bare, tier="dev") == []


def test_r4_passes_a_guarded_autoscaled_prod_endpoint() -> None:
    target = scaling_target("churn-scaling", "endpoint/churn/variant/primary")
    assert run("r4-prod-endpoint-ha", endpoint_config(), endpoint(), target) == []


def test_r4_counts_autoscaling_targets_when_endpoint_names_are_unknown() -> None:
    first, second = endpoint(None, "first"), endpoint(None, "second")
    one_target = scaling_target("first-scaling", None)
    found = run("r4-prod-endpoint-ha", first, second, one_target)
    assert [v.message for v in found] == [
        "no autoscaling target registered for the endpoint's variants"
    ]
    by_dependency = scaling_target("second-scaling", None, deps=(second.urn,))
    assert run("r4-prod-endpoint-ha", first, second, one_target, by_dependency) == []


def test_r7_flags_prod_endpoints_without_capture_or_monitoring() -> None:
    config = endpoint_config(dataCaptureConfig={"enableCapture": False})
    unwatched = endpoint()
    found = run("r7-prod-data-capture-monitoring", config, unwatched)
    assert_flags(found, "r7-prod-data-capture-monitoring", config.urn, "does not capture data")
    assert_flags(found, "r7-prod-data-capture-monitoring", unwatched.urn, "no Model Monitor")
    assert len(found) == 2
    assert run("r7-prod-data-capture-monitoring", config, unwatched, tier="dev") == []


def test_r7_passes_captured_and_monitored_prod_endpoints() -> None:
    watched = endpoint()
    definition = data_quality_job(watched)
    resources = (endpoint_config(), watched, definition, monitoring_schedule(definition))
    assert run("r7-prod-data-capture-monitoring", *resources) == []


def alarm(name: str, **props: Any) -> Resource:
    base = {"metricName": "Invocation5XXErrors", "namespace": "AWS/SageMaker"}
    return resource("aws:cloudwatch/metricAlarm:MetricAlarm", name, {**base, **props})


def test_r7_flags_muted_or_silent_alarms_in_every_tier() -> None:
    muted = alarm("muted", actionsEnabled=False, alarmActions=["arn:aws:sns:eu-west-1:1:oncall"])
    silent = alarm("silent")
    found = run("r7-alarm-actions-enabled", muted, silent, tier="dev")
    assert_flags(found, "r7-alarm-actions-enabled", muted.urn, "actions are disabled")
    assert_flags(found, "r7-alarm-actions-enabled", silent.urn, "no alarm actions")
    assert len(found) == 2


def test_r7_passes_alarms_that_page_someone() -> None:
    paging = alarm("paging", alarmActions=["arn:aws:sns:eu-west-1:1:oncall"])
    assert run("r7-alarm-actions-enabled", paging, tier="dev") == []


# -- R5 / R6 (pipeline steps) -----------------------------------------------------------------


def test_r5_flags_job_steps_without_the_required_retry_policies() -> None:
    training = copy.deepcopy(TRAINING_STEP)
    del training["RetryPolicies"]
    processing = copy.deepcopy(PROCESSING_STEP)
    processing["RetryPolicies"] = RETRY_POLICIES[:1]
    jobs = pipeline(processing, training)
    found = run("r5-pipeline-retry-policies", jobs)
    assert_flags(found, "r5-pipeline-retry-policies", jobs.urn, "'Train' (Training): no retry")
    assert_flags(
        found,
        "r5-pipeline-retry-policies",
        jobs.urn,
        "'Preprocess' (Processing): no retry policy for SageMaker.CAPACITY_ERROR, "
        "SageMaker.JOB_INTERNAL_ERROR, SageMaker.RESOURCE_LIMIT",
    )


def test_r5_passes_steps_with_sdk_retry_policies() -> None:
    assert run("r5-pipeline-retry-policies", good_pipeline()) == []


def test_r6_flags_spot_without_checkpoints_or_wait_and_long_warm_pools() -> None:
    spot = step(
        TRAINING_STEP,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600},
    )
    spot["Arguments"]["ResourceConfig"]["KeepAlivePeriodInSeconds"] = 7200
    jobs = pipeline(spot)
    found = run("r6-spot-checkpoints-warm-pools", jobs)
    assert_flags(found, "r6-spot-checkpoints-warm-pools", jobs.urn, "without CheckpointConfig")
    assert_flags(found, "r6-spot-checkpoints-warm-pools", jobs.urn, "MaxWaitTimeInSeconds 3600")
    assert_flags(found, "r6-spot-checkpoints-warm-pools", jobs.urn, "KeepAlivePeriodInSeconds")
    assert len(found) == 3


def test_r6_passes_checkpointed_spot_training_with_a_short_warm_pool() -> None:
    spot = step(
        TRAINING_STEP,
        EnableManagedSpotTraining=True,
        CheckpointConfig={"S3Uri": "s3://mlops-prod-models/checkpoints/churn"},
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
    )
    assert run("r6-spot-checkpoints-warm-pools", pipeline(spot), good_pipeline()) == []


# -- A5 ---------------------------------------------------------------------------------------


def role(name: str, *inline_actions: str) -> Resource:
    inline = [
        {
            "name": f"{name}-inline",
            "policy": json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": list(inline_actions), "Resource": "*"}
                    ],
                }
            ),
        }
    ]
    return resource("aws:iam/role:Role", name, {"name": name, "inlinePolicies": inline})


def role_policy(target: Resource, *actions: str) -> Resource:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": list(actions), "Resource": "arn:aws:sagemaker:*"}
        ],
    }
    return resource(
        "aws:iam/rolePolicy:RolePolicy",
        f"{target.name}-extra",
        {"role": target.name, "policy": json.dumps(document)},
        {"role": (target.urn,)},
    )


def test_a5_flags_a_role_that_approves_and_builds_models() -> None:
    approver = role("approver", "sagemaker:UpdateModelPackage")
    builds_too = role_policy(approver, "sagemaker:Create*")
    found = run("a5-approver-separate-from-builder", approver, builds_too)
    assert_flags(found, "a5-approver-separate-from-builder", approver.urn, "CreateTrainingJob")
    assert_flags(found, "a5-approver-separate-from-builder", approver.urn, "CreatePipeline")
    assert len(found) == 1


def test_a5_passes_separate_approver_and_builder_roles() -> None:
    approver = role("approver", "sagemaker:UpdateModelPackage", "sagemaker:DescribeModelPackage")
    builder = role("builder", "sagemaker:CreateTrainingJob")
    resources = (approver, builder, role_policy(builder, "sagemaker:*Pipeline*"))
    assert run("a5-approver-separate-from-builder", *resources) == []
