"""The deploy step against AWS APIs without AWS.

Where moto implements the calls (model packages with their approval status, models, endpoint
configurations, endpoints that are InService at once, Application Auto Scaling), the step talks
to a moto server on 127.0.0.1 over real HTTP: a first deploy, a re-run that changes nothing, an
unapproved package. moto 5.2.5 has no UpdateEndpoint and drops CreateModel's
EnableNetworkIsolation, so the updates (blue/green canary, rollback, failure, waiting for an
update in progress, auto scaling around an update) and the serverless variant run on real boto3
clients answered by botocore's Stubber, which checks every request against AWS's API model.
No test sleeps, and a guard fails any connection to anything but loopback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from pipelines.steps import deploy as deploy_step
from pipelines.steps.aws_calls import bounded_name
from pipelines.steps.deploy import (
    SCALING_TAG,
    DeployRequest,
    DeployRequestError,
    deploy,
    main,
    model_name_for,
    plan_deployment,
)
from tests.pipelines.aws_stubs import (
    ACCOUNT,
    RecordsCalls,
    assert_bad_flag_exits,
    loopback_only,  # noqa: F401 - autouse: no test leaves loopback
    replace_clients,
    sagemaker_arn,
    stubbed_client,
)
from tests.pipelines.moto_server import REGION, moto_client, moto_server, moto_url  # noqa: F401

ENDPOINT = "digits"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-endpoint"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CAPTURE = "s3://mlops-capture/digits"
ALARMS = ("digits-5xx", "digits-latency")
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
OLD_CONFIG = "digits-v1-0123abcd"
TARGET = {
    "ServiceNamespace": "sagemaker",
    "ResourceId": f"endpoint/{ENDPOINT}/variant/AllTraffic",
    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
}


def package_arn(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/digits/{version}"


def make_request(**overrides: Any) -> DeployRequest:
    settings: dict[str, Any] = {
        "model_package_arn": package_arn(2),
        "endpoint_name": ENDPOINT,
        "execution_role_arn": ROLE,
        "kms_key_arn": KMS,
        "data_capture_s3_uri": CAPTURE,
        "capture_percentage": 20,
        "subnet_ids": ("subnet-a", "subnet-b"),
        "security_group_ids": ("sg-endpoint",),
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "min_capacity": 2,
        "max_capacity": 6,
        "target_invocations_per_instance": 100.0,
        "rollback_alarm_names": ALARMS,
        "canary_percent": 25,
        "wait_interval_seconds": 300,
        "poll_seconds": 30.0,
        "timeout_seconds": 1800,
        "environment": "prod",
    }
    settings.update(overrides)
    return DeployRequest(**settings)


# --- moto server ----------------------------------------------------------------------------


@dataclass
class Recorded(RecordsCalls):
    """The moto-backed clients and every call (operation, parameters) they made."""

    sagemaker: Any
    autoscaling: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def writes(self) -> list[str]:
        return [name for name, _ in self.calls if not name.startswith(("Describe", "List", "Get"))]


@pytest.fixture
def aws(moto_url: str) -> Recorded:  # noqa: F811 - the fixture imported above
    recorded = Recorded(
        moto_client(moto_url, "sagemaker"), moto_client(moto_url, "application-autoscaling")
    )
    recorded.listen(recorded.sagemaker, recorded.autoscaling)
    return recorded


def register_package(sagemaker: Any, status: str) -> str:
    """A package in the `digits` group (created on first use) with `status`; returns its ARN."""
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    if not groups:
        sagemaker.create_model_package_group(ModelPackageGroupName="digits")
    created = sagemaker.create_model_package(
        ModelPackageGroupName="digits",
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/digits:1",
                    "ModelDataUrl": "s3://mlops-models/digits/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )
    return str(created["ModelPackageArn"])


def test_first_deploy_creates_an_isolated_encrypted_endpoint_with_capture(aws: Recorded) -> None:
    arn = register_package(aws.sagemaker, "Approved")
    request = make_request(model_package_arn=arn)

    result = deploy(aws.sagemaker, aws.autoscaling, request, sleep=lambda _: None)

    assert result.outcome == "created", result.message
    assert result.model_name == "digits-v1"
    assert re.fullmatch(r"digits-v1-[0-9a-f]{8}", result.endpoint_config_name)
    model = aws.sagemaker.describe_model(ModelName="digits-v1")
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    assert model["ExecutionRoleArn"] == ROLE
    assert model["VpcConfig"] == {
        "Subnets": ["subnet-a", "subnet-b"],
        "SecurityGroupIds": ["sg-endpoint"],
    }
    # moto does not keep EnableNetworkIsolation; what the step sent is checked instead.
    assert [call["EnableNetworkIsolation"] for call in aws.made("CreateModel")] == [True]
    config = aws.sagemaker.describe_endpoint_config(EndpointConfigName=result.endpoint_config_name)
    assert config["KmsKeyId"] == KMS
    assert config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": "digits-v1",
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 2,
        }
    ]
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": CAPTURE,
        "KmsKeyId": KMS,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
    endpoint = aws.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == result.endpoint_config_name
    targets = aws.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")
    assert [
        (t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets["ScalableTargets"]
    ] == [(TARGET["ResourceId"], 2, 6)]
    policies = aws.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")
    [policy] = policies["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 100.0
    assert aws.made("UpdateEndpoint") == []


def test_the_same_package_again_changes_nothing(aws: Recorded) -> None:
    arn = register_package(aws.sagemaker, "Approved")
    request = make_request(model_package_arn=arn)
    first = deploy(aws.sagemaker, aws.autoscaling, request, sleep=lambda _: None)
    aws.calls.clear()

    again = deploy(aws.sagemaker, aws.autoscaling, request, sleep=lambda _: None)

    assert again.outcome == "unchanged", again.message
    assert (again.endpoint_config_name, again.model_name) == (
        first.endpoint_config_name,
        first.model_name,
    )
    assert aws.writes() == []
    assert len(aws.sagemaker.list_models()["Models"]) == 1
    assert len(aws.sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_a_package_that_is_not_approved_deploys_nothing(aws: Recorded, status: str) -> None:
    arn = register_package(aws.sagemaker, status)
    aws.calls.clear()

    result = deploy(
        aws.sagemaker, aws.autoscaling, make_request(model_package_arn=arn), sleep=lambda _: None
    )

    assert result.outcome == "failed"
    assert arn in result.message and status in result.message
    assert aws.writes() == []
    assert aws.sagemaker.list_models()["Models"] == []
    assert aws.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert (
        aws.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        == []
    )


# --- Stubber --------------------------------------------------------------------------------


@dataclass
class Stubbed:
    """Real clients whose calls the stubbers answer in the order the test expects them."""

    sagemaker: Any
    autoscaling: Any
    sm: Stubber
    aas: Stubber
    sleeps: list[float] = field(default_factory=list)

    def deploy(self, request: DeployRequest) -> deploy_step.DeployResult:
        return deploy(self.sagemaker, self.autoscaling, request, sleep=self.sleeps.append)

    # sagemaker

    def package(self, version: int, approval: str = "Approved") -> None:
        self.sm.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "digits",
                "ModelPackageGroupName": "digits",
                "ModelPackageVersion": version,
                "ModelPackageArn": package_arn(version),
                "CreationTime": NOW,
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "ModelApprovalStatus": approval,
            },
            {"ModelPackageName": package_arn(version)},
        )

    def endpoint(
        self,
        status: str | None,
        config: str = OLD_CONFIG,
        *,
        failure: str | None = None,
        pending: str | None = None,
    ) -> None:
        """DescribeEndpoint's answer; `status` None: the endpoint does not exist."""
        if status is None:
            self._missing("describe_endpoint", {"EndpointName": ENDPOINT}, "endpoint")
            return
        answer: dict[str, Any] = {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
        }
        if failure:
            answer["FailureReason"] = failure
        if pending:
            answer["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
        self.sm.add_response("describe_endpoint", answer, {"EndpointName": ENDPOINT})

    def _missing(self, operation: str, params: dict[str, Any], what: str) -> None:
        self.sm.add_client_error(
            operation,
            service_error_code="ValidationException",
            service_message=f'Could not find {what} "{next(iter(params.values()))}".',
            http_status_code=400,
            expected_params=params,
        )

    def new_model_and_config(
        self, model: dict[str, Any], config: dict[str, Any], *, read_back_instance: str = ""
    ) -> None:
        """The model and the endpoint configuration do not exist yet and are created."""
        self._missing("describe_model", {"ModelName": model["ModelName"]}, "model")
        self.sm.add_response(
            "create_model", {"ModelArn": sagemaker_arn("model", model["ModelName"])}, model
        )
        name = config["EndpointConfigName"]
        self._missing(
            "describe_endpoint_config", {"EndpointConfigName": name}, "endpoint configuration"
        )
        self.sm.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": sagemaker_arn("endpoint-config", name)},
            config,
        )
        self.config(name, read_back_instance or "ml.m5.large")

    def config(self, name: str, instance_type: str) -> None:
        self.sm.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": name,
                "EndpointConfigArn": sagemaker_arn("endpoint-config", name),
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "digits-v1",
                        "InstanceType": instance_type,
                        "InitialInstanceCount": 2,
                    }
                ],
                "CreationTime": NOW,
            },
            {"EndpointConfigName": name},
        )

    def update(self, params: dict[str, Any]) -> None:
        self.sm.add_response(
            "update_endpoint", {"EndpointArn": sagemaker_arn("endpoint", ENDPOINT)}, params
        )

    # application auto scaling

    def target(self, capacity: tuple[int, int] | None) -> None:
        targets = []
        if capacity is not None:
            targets.append(
                {
                    **TARGET,
                    "MinCapacity": capacity[0],
                    "MaxCapacity": capacity[1],
                    "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling",
                    "CreationTime": NOW,
                }
            )
        self.aas.add_response(
            "describe_scalable_targets",
            {"ScalableTargets": targets},
            {
                "ServiceNamespace": "sagemaker",
                "ResourceIds": [TARGET["ResourceId"]],
                "ScalableDimension": TARGET["ScalableDimension"],
            },
        )

    def policies(self, *target_values: float) -> None:
        self.aas.add_response(
            "describe_scaling_policies",
            {"ScalingPolicies": [_policy(value) for value in target_values]},
            TARGET,
        )

    def register(self, low: int, high: int) -> None:
        self.aas.add_response(
            "register_scalable_target",
            {},
            {**TARGET, "MinCapacity": low, "MaxCapacity": high, "Tags": {SCALING_TAG: "prod"}},
        )

    def put_policy(self, target_value: float) -> None:
        self.aas.add_response(
            "put_scaling_policy",
            {"PolicyARN": _policy(target_value)["PolicyARN"]},
            {
                "PolicyName": "invocations-per-instance",
                **TARGET,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": _tracking(target_value),
            },
        )

    def new_autoscaling(self, low: int = 2, high: int = 6, target_value: float = 100.0) -> None:
        self.target(None)
        self.register(low, high)
        self.policies()
        self.put_policy(target_value)


def _tracking(target_value: float) -> dict[str, Any]:
    return {
        "TargetValue": target_value,
        "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        },
        "ScaleInCooldown": 300,
        "ScaleOutCooldown": 60,
    }


def _policy(target_value: float) -> dict[str, Any]:
    return {
        "PolicyARN": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:1:resource/sagemaker/"
        f"{TARGET['ResourceId']}:policyName/invocations-per-instance",
        "PolicyName": "invocations-per-instance",
        **TARGET,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": _tracking(target_value),
        "CreationTime": NOW,
    }


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    sagemaker, autoscaling = stubbed_client("sagemaker"), stubbed_client("application-autoscaling")
    with Stubber(sagemaker) as sm, Stubber(autoscaling) as aas:
        yield Stubbed(sagemaker, autoscaling, sm, aas)
        sm.assert_no_pending_responses()
        aas.assert_no_pending_responses()


CANARY = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            "WaitIntervalInSeconds": 300,
        },
        "TerminationWaitInSeconds": 300,
        "MaximumExecutionTimeoutInSeconds": 1800,
    },
    "AutoRollbackConfiguration": {
        "Alarms": [{"AlarmName": "digits-5xx"}, {"AlarmName": "digits-latency"}]
    },
}


def _update_to_v2(stubbed: Stubbed, request: DeployRequest) -> str:
    """Expects the calls up to UpdateEndpoint's own: the package, the live endpoint on the
    old config, a new model and config, no scalable target. Returns the new config's name."""
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config)
    stubbed.target(None)
    return plan.config_name


def test_a_new_endpoint_gets_the_exact_model_config_and_autoscaling(stubbed: Stubbed) -> None:
    request = make_request()
    config_name = plan_deployment(request, 2).config_name
    stubbed.package(2)
    stubbed.endpoint(None)
    stubbed.new_model_and_config(
        {
            "ModelName": "digits-v2",
            "PrimaryContainer": {"ModelPackageName": package_arn(2)},
            "ExecutionRoleArn": ROLE,
            "EnableNetworkIsolation": True,
            "VpcConfig": {"Subnets": ["subnet-a", "subnet-b"], "SecurityGroupIds": ["sg-endpoint"]},
        },
        {
            "EndpointConfigName": config_name,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "digits-v2",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 2,
                }
            ],
            "KmsKeyId": KMS,
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": 20,
                "DestinationS3Uri": CAPTURE,
                "KmsKeyId": KMS,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        },
    )
    stubbed.sm.add_response(
        "create_endpoint",
        {"EndpointArn": sagemaker_arn("endpoint", ENDPOINT)},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config_name},
    )
    stubbed.endpoint("Creating", config_name)
    stubbed.endpoint("Creating", config_name)
    stubbed.endpoint("InService", config_name)
    stubbed.new_autoscaling(low=2, high=6, target_value=100.0)

    result = stubbed.deploy(request)

    assert result.outcome == "created", result.message
    assert re.fullmatch(r"digits-v2-[0-9a-f]{8}", config_name)
    assert stubbed.sleeps == [30.0, 30.0]


def test_an_update_is_a_blue_green_canary_with_rollback_alarms(stubbed: Stubbed) -> None:
    request = make_request()
    new_config = _update_to_v2(stubbed, request)
    stubbed.update(
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config, "DeploymentConfig": CANARY}
    )
    stubbed.endpoint("Updating", OLD_CONFIG, pending=new_config)
    stubbed.endpoint("InService", new_config)
    stubbed.new_autoscaling()

    result = stubbed.deploy(request)

    assert result.outcome == "updated", result.message
    assert result.endpoint_config_name == new_config
    assert OLD_CONFIG in result.message and new_config in result.message
    assert stubbed.sleeps == [30.0]


def test_back_in_service_on_the_old_config_is_a_rollback(stubbed: Stubbed) -> None:
    request = make_request()
    new_config = _update_to_v2(stubbed, request)
    stubbed.update(
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config, "DeploymentConfig": CANARY}
    )
    stubbed.endpoint("Updating", OLD_CONFIG, pending=new_config)
    stubbed.endpoint(
        "InService", OLD_CONFIG, failure="Rolled back: alarm digits-5xx went into ALARM"
    )

    result = stubbed.deploy(request)

    assert result.outcome == "rolled_back"
    assert "alarm digits-5xx went into ALARM" in result.message
    assert OLD_CONFIG in result.message


def test_a_failed_update_is_failed_with_its_reason(stubbed: Stubbed) -> None:
    request = make_request()
    new_config = _update_to_v2(stubbed, request)
    stubbed.update(
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config, "DeploymentConfig": CANARY}
    )
    stubbed.endpoint("Failed", new_config, failure="The primary container failed ping checks")

    result = stubbed.deploy(request)

    assert result.outcome == "failed"
    assert "Failed" in result.message and "failed ping checks" in result.message


def test_an_update_in_progress_is_waited_for_then_the_newer_package_deployed(
    stubbed: Stubbed,
) -> None:
    """Two approvals in a row: v1's deployment is still running when v2's step starts."""
    request = make_request()
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("Updating", "digits-v0-ffffffff", pending=OLD_CONFIG)
    stubbed.endpoint("Updating", "digits-v0-ffffffff", pending=OLD_CONFIG)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config)
    stubbed.target((2, 6))
    stubbed.config(OLD_CONFIG, "ml.m5.large")
    stubbed.update(
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": plan.config_name,
            "DeploymentConfig": CANARY,
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}],
        }
    )
    stubbed.endpoint("InService", plan.config_name)
    stubbed.target((2, 6))
    stubbed.policies(100.0)

    result = stubbed.deploy(request)

    assert result.outcome == "updated", result.message
    assert result.endpoint_config_name == plan.config_name
    assert stubbed.sleeps == [30.0, 30.0]


def test_a_deployment_of_this_config_already_running_is_finished_not_repeated(
    stubbed: Stubbed,
) -> None:
    """The same step run again (a retried job) while its first run's update is still going."""
    request = make_request()
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("Updating", OLD_CONFIG, pending=plan.config_name)
    stubbed.endpoint("InService", plan.config_name)
    stubbed.target((2, 6))
    stubbed.policies(100.0)

    result = stubbed.deploy(request)

    assert result.outcome == "updated"
    assert "earlier run" in result.message


def test_a_new_instance_type_deregisters_autoscaling_before_the_update(stubbed: Stubbed) -> None:
    """AWS rejects an instance-type change of a variant registered for auto scaling."""
    request = make_request(instance_type="ml.c5.xlarge", min_capacity=1, max_capacity=4)
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config, read_back_instance="ml.c5.xlarge")
    stubbed.target((2, 6))
    stubbed.config(OLD_CONFIG, "ml.m5.large")
    stubbed.policies(100.0)
    stubbed.aas.add_response(
        "delete_scaling_policy", {}, {"PolicyName": "invocations-per-instance", **TARGET}
    )
    stubbed.aas.add_response("deregister_scalable_target", {}, TARGET)
    stubbed.update(
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": plan.config_name,
            "DeploymentConfig": CANARY,
        }
    )
    stubbed.endpoint("InService", plan.config_name)
    stubbed.new_autoscaling(low=1, high=4)

    result = stubbed.deploy(request)

    assert result.outcome == "updated", result.message


def test_autoscaling_detached_for_an_update_comes_back_after_a_rollback(stubbed: Stubbed) -> None:
    request = make_request(instance_type="ml.c5.xlarge")
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config, read_back_instance="ml.c5.xlarge")
    stubbed.target((3, 8))
    stubbed.config(OLD_CONFIG, "ml.m5.large")
    stubbed.policies(55.0)
    stubbed.aas.add_response(
        "delete_scaling_policy", {}, {"PolicyName": "invocations-per-instance", **TARGET}
    )
    stubbed.aas.add_response("deregister_scalable_target", {}, TARGET)
    stubbed.update(
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": plan.config_name,
            "DeploymentConfig": CANARY,
        }
    )
    stubbed.endpoint("InService", OLD_CONFIG, failure="alarm digits-latency")
    stubbed.register(3, 8)
    stubbed.put_policy(55.0)

    result = stubbed.deploy(request)

    assert result.outcome == "rolled_back"


def test_a_refused_update_puts_detached_autoscaling_back(stubbed: Stubbed) -> None:
    request = make_request(instance_type="ml.c5.xlarge")
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config, read_back_instance="ml.c5.xlarge")
    stubbed.target((2, 6))
    stubbed.config(OLD_CONFIG, "ml.m5.large")
    stubbed.policies(100.0)
    stubbed.aas.add_response(
        "delete_scaling_policy", {}, {"PolicyName": "invocations-per-instance", **TARGET}
    )
    stubbed.aas.add_response("deregister_scalable_target", {}, TARGET)
    stubbed.sm.add_client_error(
        "update_endpoint",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit for ml.c5.xlarge is 0 Instances",
        http_status_code=400,
    )
    stubbed.register(2, 6)
    stubbed.put_policy(100.0)

    result = stubbed.deploy(request)

    assert result.outcome == "failed"
    assert result.message.startswith("UpdateEndpoint failed: ResourceLimitExceeded: ")
    assert result.message.endswith("; nothing changed")


def test_serverless_has_no_instances_autoscaling_or_blue_green(stubbed: Stubbed) -> None:
    request = make_request(serverless_memory_mb=2048, serverless_max_concurrency=5)
    plan = plan_deployment(request, 2)
    assert plan.model == {
        "ModelName": "digits-v2",
        "PrimaryContainer": {"ModelPackageName": package_arn(2)},
        "ExecutionRoleArn": ROLE,
    }
    assert plan.config == {
        "EndpointConfigName": plan.config_name,
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": "digits-v2",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
        "KmsKeyId": KMS,
    }
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.new_model_and_config(plan.model, plan.config)
    stubbed.update({"EndpointName": ENDPOINT, "EndpointConfigName": plan.config_name})
    stubbed.endpoint("Updating", OLD_CONFIG)
    stubbed.endpoint("InService", plan.config_name)

    result = stubbed.deploy(request)

    assert result.outcome == "updated", result.message
    # The autoscaling stubber has no responses: any call to it would have raised.


def test_an_endpoint_that_does_not_settle_in_time_is_failed(stubbed: Stubbed) -> None:
    request = make_request(timeout_seconds=600, poll_seconds=300.0, wait_interval_seconds=60)
    plan = plan_deployment(request, 2)
    stubbed.package(2)
    stubbed.endpoint(None)
    stubbed.new_model_and_config(plan.model, plan.config)
    stubbed.sm.add_response(
        "create_endpoint",
        {"EndpointArn": sagemaker_arn("endpoint", ENDPOINT)},
        {"EndpointName": ENDPOINT, "EndpointConfigName": plan.config_name},
    )
    for _ in range(3):
        stubbed.endpoint("Creating", plan.config_name)

    result = stubbed.deploy(request)

    assert result.outcome == "failed"
    assert "still Creating after 600 s" in result.message
    assert stubbed.sleeps == [300.0, 300.0]


def test_a_model_of_the_same_name_serving_another_package_is_not_reused(stubbed: Stubbed) -> None:
    request = make_request()
    stubbed.package(2)
    stubbed.endpoint("InService", OLD_CONFIG)
    stubbed.sm.add_response(
        "describe_model",
        {
            "ModelName": "digits-v2",
            "PrimaryContainer": {"ModelPackageName": package_arn(2).replace("digits/", "other/")},
            "CreationTime": NOW,
            "ModelArn": sagemaker_arn("model", "digits-v2"),
        },
        {"ModelName": "digits-v2"},
    )

    result = stubbed.deploy(request)

    assert result.outcome == "failed"
    assert "model digits-v2 exists but serves" in result.message


def test_an_aws_error_is_a_failed_result_naming_the_call(stubbed: Stubbed) -> None:
    stubbed.sm.add_client_error(
        "describe_model_package",
        service_error_code="AccessDeniedException",
        service_message="not allowed",
        http_status_code=400,
    )

    result = stubbed.deploy(make_request())

    assert result.outcome == "failed"
    assert result.message == "DescribeModelPackage failed: AccessDeniedException: not allowed"


# --- names and request checks ---------------------------------------------------------------


def test_long_names_are_cut_to_63_characters_deterministically() -> None:
    long_a, long_b = "a" * 60 + "-one", "a" * 60 + "-two"
    name_a, name_b = model_name_for(long_a, 12), model_name_for(long_b, 12)
    assert len(name_a) <= 63 and len(name_b) <= 63
    assert name_a.endswith("-v12") and name_a != name_b
    assert model_name_for(long_a, 12) == name_a
    assert bounded_name("digits", "-v3") == "digits-v3"
    config_name = plan_deployment(make_request(endpoint_name="e" * 63), 7).config_name
    assert len(config_name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", config_name)


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"canary_percent": 0}, "canary_percent"),
        ({"canary_percent": 51}, "canary_percent"),
        ({"instance_count": 7}, "instance_count"),
        ({"min_capacity": 0, "instance_count": 1}, "min_capacity"),
        ({"serverless_memory_mb": 1500, "serverless_max_concurrency": 5}, "serverless_memory_mb"),
        ({"serverless_memory_mb": 2048}, "serverless_max_concurrency"),
        ({"security_group_ids": ()}, "security_group_ids"),
        ({"timeout_seconds": 500}, "timeout_seconds"),
        ({"endpoint_name": "-digits"}, "endpoint_name"),
    ],
)
def test_a_request_that_cannot_work_names_its_field(
    overrides: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(DeployRequestError) as raised:
        make_request(**overrides)
    assert raised.value.field == field_name


# --- command line ---------------------------------------------------------------------------


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--model-package-arn", package_arn(2),
        "--endpoint-name", ENDPOINT,
        "--execution-role-arn", ROLE,
        "--kms-key-arn", KMS,
        "--data-capture-s3-uri", CAPTURE,
        "--capture-percentage", "20",
        "--subnet-ids", "subnet-a,subnet-b",
        "--security-group-ids", "sg-endpoint",
        "--instance-type", "ml.m5.large",
        "--instance-count", "2",
        "--min-capacity", "2",
        "--max-capacity", "6",
        "--target-invocations-per-instance", "100",
        "--rollback-alarm-names", ",".join(ALARMS),
        "--canary-percent", "25",
        "--wait-interval-seconds", "300",
        "--timeout-seconds", "1800",
        "--output", str(tmp_path / "deploy" / "result.json"),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--canary-percent", "80"], "--canary-percent"),
        (["--instance-count", "two"], "--instance-count"),
        (["--max-capacity", "1"], "--instance-count"),
        (["--canary", "10"], "--canary"),
    ],
)
def test_a_bad_flag_exits_with_a_message_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    assert_bad_flag_exits(main, _argv(tmp_path, *extra), flag, capsys)


def test_main_writes_the_result_and_exits_1_after_a_rollback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stubbed: Stubbed,
) -> None:
    regions = replace_clients(monkeypatch, deploy_step, stubbed.sagemaker, stubbed.autoscaling)
    monkeypatch.setattr(deploy_step.time, "sleep", stubbed.sleeps.append)
    new_config = _update_to_v2(stubbed, make_request())
    stubbed.update(
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config, "DeploymentConfig": CANARY}
    )
    stubbed.endpoint("InService", OLD_CONFIG, failure="alarm digits-5xx fired")

    code = main(_argv(tmp_path))

    assert code == 1
    assert regions == [REGION]  # from the package ARN: no region in the environment
    written = json.loads((tmp_path / "deploy" / "result.json").read_text())
    assert written["outcome"] == "rolled_back"
    assert written["endpoint_name"] == ENDPOINT
    assert written["endpoint_config_name"] == new_config
    assert written["model_name"] == "digits-v2"
    assert "alarm digits-5xx fired" in written["message"]
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("deploy rolled_back: digits ")
