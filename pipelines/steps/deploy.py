"""Deploy step: create or update a model's real-time endpoint from an approved model package.

It runs as a processing job in the step image when a model package is approved, and it must be
safe to run again and again: every name it creates is derived from what it deploys, so a second
run with the same package finds everything in place and touches nothing ("unchanged").

- The SageMaker model is named `<endpoint>-v<package version>`; an existing model of that name is
  reused only when it serves the same package.
- The endpoint configuration is named `<model>-<hash of its settings>`. Configurations cannot be
  changed in place, so any change in the variant, the KMS key or data capture gives a new name.
- A new endpoint is created; an existing one is moved to the new configuration with a blue/green
  CANARY update: SageMaker sends `canary_percent` of the capacity to the new fleet, bakes for
  `wait_interval_seconds` while the rollback alarms watch, then shifts the rest, and rolls back on
  its own when an alarm fires. The step tells "rolled_back" (back InService on the old
  configuration) from "failed".
- An endpoint already Creating/Updating when the step starts is waited for first, so two approvals
  in a row end with the newer package deployed.
- Auto scaling (instance variants): the variant is registered as a scalable target with a
  target-tracking policy on invocations per instance once it is InService. AWS rejects an
  UpdateEndpoint that changes the instance type of a variant registered for auto scaling; in
  that case the target is deregistered first (and restored if SageMaker rolls the update back).
  A model-only change is allowed with the target in place; the update then keeps the variant's
  current instance count (RetainAllVariantProperties), which auto scaling owns, instead of
  dropping to the initial count under load.

Serverless variants (`serverless_memory_mb` set) get no instances, no auto scaling and a plain
update; AWS does not support VPC configuration, network isolation or data capture for serverless
endpoints, so the step leaves them out there and says so in the log.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from pipelines.environment_variables import AWS_DEFAULT_REGION
from pipelines.steps.aws_calls import (
    RequestError,
    already_exists,
    boto3_client,
    bounded_name,
    check_name,
    check_vpc,
    could_not_find,
    csv_list,
    describe_error,
    describe_or_none,
    flag,
    region_of,
    report,
    request_from_args,
    short_hash,
)

logger = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged", "rolled_back", "failed"]
#: Outcomes after which the endpoint serves the requested package (exit code 0).
SUCCESSFUL_OUTCOMES = frozenset({"created", "updated", "unchanged"})

#: The endpoint's one production variant. Blue/green updates need the same name in both configs.
VARIANT_NAME = "AllTraffic"
#: Endpoint states that end on their own; the step waits them out.
TRANSITIONAL_STATES = frozenset(
    {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
)
#: After its own MaximumExecutionTimeout SageMaker still needs time to roll back; the step waits
#: this much longer than the timeout for an update so it reports the outcome, not "still busy".
ROLLBACK_GRACE_SECONDS = 900
#: Bounds of BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds (SageMaker API).
MIN_DEPLOYMENT_TIMEOUT = 600
MAX_DEPLOYMENT_TIMEOUT = 28800
#: ProductionVariantServerlessConfig bounds (SageMaker API): memory in 1 GB steps.
SERVERLESS_MEMORY_SIZES = frozenset(range(1024, 6144 + 1, 1024))
MAX_SERVERLESS_CONCURRENCY = 200

#: Application Auto Scaling names for a SageMaker variant's instance count.
SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# The tag every scalable target the step registers carries (value: the stack). Application
# Auto Scaling names a target by a random id, so the deploy role's policy scopes its writes
# by this tag (aws:RequestTag on register, aws:ResourceTag after): one environment cannot
# change another's endpoint scaling, on-demand copies in the same account included.
SCALING_TAG = "mlops-environment"
SCALING_POLICY_NAME = "invocations-per-instance"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
#: Scale out quickly when load rises, scale in slowly (AWS's default is 300 s for both).
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300

#: Where the processing job's output channel picks the result up.
DEFAULT_OUTPUT = Path("/opt/ml/processing/output/deploy/result.json")


class SageMakerClient(Protocol):
    """The calls used of a boto3 `sagemaker` client."""

    def describe_model_package(self, **kwargs: Any) -> Any: ...
    def describe_model(self, **kwargs: Any) -> Any: ...
    def create_model(self, **kwargs: Any) -> Any: ...
    def describe_endpoint_config(self, **kwargs: Any) -> Any: ...
    def create_endpoint_config(self, **kwargs: Any) -> Any: ...
    def describe_endpoint(self, **kwargs: Any) -> Any: ...
    def create_endpoint(self, **kwargs: Any) -> Any: ...
    def update_endpoint(self, **kwargs: Any) -> Any: ...


class AutoScalingClient(Protocol):
    """The calls used of a boto3 `application-autoscaling` client."""

    def describe_scalable_targets(self, **kwargs: Any) -> Any: ...
    def register_scalable_target(self, **kwargs: Any) -> Any: ...
    def deregister_scalable_target(self, **kwargs: Any) -> Any: ...
    def describe_scaling_policies(self, **kwargs: Any) -> Any: ...
    def put_scaling_policy(self, **kwargs: Any) -> Any: ...
    def delete_scaling_policy(self, **kwargs: Any) -> Any: ...


class DeployRequestError(RequestError):
    """A deploy request setting that cannot work; `field` names it."""


class _Refused(Exception):
    """The step stops without deploying; the message says why (becomes a "failed" result)."""


class _StillBusy(Exception):
    """The endpoint did not settle within the time the step waits."""


@dataclass(frozen=True, kw_only=True)
class DeployRequest:
    """What to deploy, and how. Invalid combinations raise DeployRequestError naming the field.

    The capacities apply to instance variants: `instance_count` is the initial count and must
    lie within [min_capacity, max_capacity], the range auto scaling keeps the variant in. With
    `serverless_memory_mb` set the variant is serverless and the instance settings are unused.
    `timeout_seconds` bounds each wait of the step and is the blue/green deployment's
    MaximumExecutionTimeout (600..28800 s for instance variants).
    """

    model_package_arn: str
    endpoint_name: str
    execution_role_arn: str
    kms_key_arn: str
    data_capture_s3_uri: str
    capture_percentage: int = 100
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    instance_type: str = "ml.m5.large"
    instance_count: int = 2
    min_capacity: int = 2
    max_capacity: int = 4
    #: InvocationsPerInstance (per minute) the scaling policy keeps the variant at; AWS's
    #: example value.
    target_invocations_per_instance: float = 70.0
    rollback_alarm_names: tuple[str, ...] = ()
    canary_percent: int = 10
    wait_interval_seconds: int = 600
    serverless_memory_mb: int | None = None
    serverless_max_concurrency: int | None = None
    poll_seconds: float = 30.0
    timeout_seconds: int = 3600
    #: The stack the endpoint belongs to: the SCALING_TAG value of its scalable target.
    environment: str = ""

    def __post_init__(self) -> None:
        for name in ("subnet_ids", "security_group_ids", "rollback_alarm_names"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_names()
        self._check_ranges()
        if self.serverless:
            self._check_serverless()
        else:
            self._check_instances()

    @property
    def serverless(self) -> bool:
        return self.serverless_memory_mb is not None

    def _check_names(self) -> None:
        check_name("endpoint_name", self.endpoint_name, DeployRequestError)
        for name in ("model_package_arn", "execution_role_arn", "kms_key_arn"):
            if not getattr(self, name):
                raise DeployRequestError(name, "must not be empty")
        if not self.data_capture_s3_uri.startswith("s3://"):
            raise DeployRequestError(
                "data_capture_s3_uri", f"must be an s3:// URI, got {self.data_capture_s3_uri!r}"
            )

    def _check_ranges(self) -> None:
        if not 0 <= self.capture_percentage <= 100:
            raise DeployRequestError("capture_percentage", "must be between 0 and 100")
        if not 1 <= self.canary_percent <= 50:
            raise DeployRequestError(
                "canary_percent", "must be between 1 and 50 (SageMaker's canary limit)"
            )
        if not 0 <= self.wait_interval_seconds <= 3600:
            raise DeployRequestError("wait_interval_seconds", "must be between 0 and 3600")
        if self.poll_seconds <= 0:
            raise DeployRequestError("poll_seconds", "must be positive")
        if self.timeout_seconds <= 0:
            raise DeployRequestError("timeout_seconds", "must be positive")
        if len(self.rollback_alarm_names) > 10:
            raise DeployRequestError("rollback_alarm_names", "SageMaker takes at most 10 alarms")

    def _check_serverless(self) -> None:
        if self.serverless_memory_mb not in SERVERLESS_MEMORY_SIZES:
            raise DeployRequestError(
                "serverless_memory_mb", "must be one of 1024, 2048, 3072, 4096, 5120, 6144"
            )
        concurrency = self.serverless_max_concurrency
        if concurrency is None or not 1 <= concurrency <= MAX_SERVERLESS_CONCURRENCY:
            raise DeployRequestError(
                "serverless_max_concurrency",
                f"must be between 1 and {MAX_SERVERLESS_CONCURRENCY} for a serverless variant",
            )

    def _check_instances(self) -> None:
        if self.serverless_max_concurrency is not None:
            raise DeployRequestError(
                "serverless_max_concurrency", "needs serverless_memory_mb (a serverless variant)"
            )
        if self.min_capacity < 1:
            raise DeployRequestError("min_capacity", "must be at least 1")
        if not self.min_capacity <= self.instance_count <= self.max_capacity:
            raise DeployRequestError(
                "instance_count",
                f"{self.instance_count} is outside [min_capacity, max_capacity] ="
                f" [{self.min_capacity}, {self.max_capacity}]",
            )
        if self.target_invocations_per_instance <= 0:
            raise DeployRequestError("target_invocations_per_instance", "must be positive")
        check_vpc(self.subnet_ids, self.security_group_ids, DeployRequestError)
        if not MIN_DEPLOYMENT_TIMEOUT <= self.timeout_seconds <= MAX_DEPLOYMENT_TIMEOUT:
            raise DeployRequestError(
                "timeout_seconds",
                f"must be between {MIN_DEPLOYMENT_TIMEOUT} and {MAX_DEPLOYMENT_TIMEOUT} (the"
                " blue/green deployment's MaximumExecutionTimeout)",
            )
        if self.timeout_seconds <= 2 * self.wait_interval_seconds:
            raise DeployRequestError(
                "timeout_seconds",
                f"must exceed the canary bake plus the final bake (2 x {self.wait_interval_seconds}"
                " s)",
            )


@dataclass(frozen=True)
class DeployResult:
    """What the step did. `message` says why, in words a person on call can act on."""

    outcome: Outcome
    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    message: str

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESSFUL_OUTCOMES


# --- names and specifications ---------------------------------------------------------------


def model_name_for(endpoint_name: str, version: int) -> str:
    """The SageMaker model for package version `version`: `<endpoint>-v<version>`."""
    return bounded_name(endpoint_name, f"-v{version}")


def model_spec(request: DeployRequest, model_name: str) -> dict[str, Any]:
    """CreateModel's parameters: the package as the container, in the VPC, network-isolated."""
    spec: dict[str, Any] = {
        "ModelName": model_name,
        "PrimaryContainer": {"ModelPackageName": request.model_package_arn},
        "ExecutionRoleArn": request.execution_role_arn,
    }
    if not request.serverless:
        spec["EnableNetworkIsolation"] = True
        if request.subnet_ids:
            spec["VpcConfig"] = {
                "Subnets": list(request.subnet_ids),
                "SecurityGroupIds": list(request.security_group_ids),
            }
    return spec


def _variant(request: DeployRequest, model_name: str) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": model_name}
    if request.serverless:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": request.serverless_memory_mb,
            "MaxConcurrency": request.serverless_max_concurrency,
        }
    else:
        variant["InstanceType"] = request.instance_type
        variant["InitialInstanceCount"] = request.instance_count
    return variant


def endpoint_config_spec(request: DeployRequest, model_name: str) -> dict[str, Any]:
    """CreateEndpointConfig's parameters without the name: the variant, the KMS key for the
    instances' storage and, for instance variants, data capture of requests and responses."""
    spec: dict[str, Any] = {
        "ProductionVariants": [_variant(request, model_name)],
        "KmsKeyId": request.kms_key_arn,
    }
    if not request.serverless:
        spec["DataCaptureConfig"] = {
            "EnableCapture": request.capture_percentage > 0,
            "InitialSamplingPercentage": request.capture_percentage,
            "DestinationS3Uri": request.data_capture_s3_uri,
            "KmsKeyId": request.kms_key_arn,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
    return spec


def endpoint_config_name_for(model_name: str, spec: Mapping[str, Any]) -> str:
    """`<model>-<8 hex of the settings' hash>`: new settings, new (immutable) configuration."""
    digest = short_hash(json.dumps(spec, sort_keys=True, separators=(",", ":")))
    return bounded_name(model_name, f"-{digest}")


def deployment_config(request: DeployRequest) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: blue/green with a canary, baked for
    `wait_interval_seconds` before the rest of the traffic moves and again before the old fleet
    goes, rolled back by SageMaker when one of the alarms fires."""
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": request.canary_percent},
                "WaitIntervalInSeconds": request.wait_interval_seconds,
            },
            "TerminationWaitInSeconds": request.wait_interval_seconds,
            "MaximumExecutionTimeoutInSeconds": request.timeout_seconds,
        }
    }
    if request.rollback_alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in request.rollback_alarm_names]
        }
    return config


def resource_id(endpoint_name: str) -> str:
    """Application Auto Scaling's id for the endpoint's variant."""
    return f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"


def scaling_policy_configuration(request: DeployRequest) -> dict[str, Any]:
    return {
        "TargetValue": float(request.target_invocations_per_instance),
        "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
        "ScaleInCooldown": SCALE_IN_COOLDOWN_SECONDS,
        "ScaleOutCooldown": SCALE_OUT_COOLDOWN_SECONDS,
    }


@dataclass(frozen=True)
class DeployPlan:
    """The names and the CreateModel / CreateEndpointConfig parameters for one package version;
    the same request and version always give the same plan."""

    version: int
    model_name: str
    config_name: str
    model: dict[str, Any]
    config: dict[str, Any]


def plan_deployment(request: DeployRequest, version: int) -> DeployPlan:
    """What deploying version `version` of the request's package creates."""
    model_name = model_name_for(request.endpoint_name, version)
    config = endpoint_config_spec(request, model_name)
    config_name = endpoint_config_name_for(model_name, config)
    return DeployPlan(
        version,
        model_name,
        config_name,
        model_spec(request, model_name),
        {"EndpointConfigName": config_name, **config},
    )


# --- SageMaker calls ------------------------------------------------------------------------


def _describe(call: Callable[..., Any], **params: Any) -> dict[str, Any] | None:
    """A Describe* answer, or None where SageMaker "could not find" the thing."""
    return describe_or_none(call, could_not_find, **params)


def _package_problem(arn: str, package: Mapping[str, Any]) -> str | None:
    """Why this package must not be deployed, or None."""
    approval = package.get("ModelApprovalStatus", "PendingManualApproval")
    if approval != "Approved":
        return f"model package {arn} is {approval}, not Approved; nothing was deployed"
    status = package.get("ModelPackageStatus")
    if status != "Completed":
        return f"model package {arn} has status {status}, not Completed; nothing was deployed"
    if package.get("ModelPackageVersion") is None:
        return f"model package {arn} has no version (not in a model package group)"
    return None


def _ensure_model(sagemaker: SageMakerClient, request: DeployRequest, plan: DeployPlan) -> None:
    """Creates the model unless it exists; an existing one must serve the same package."""
    existing = _describe(sagemaker.describe_model, ModelName=plan.model_name)
    if existing is None:
        if request.serverless and (request.subnet_ids or request.capture_percentage):
            logger.warning(
                "serverless variant: VPC configuration, network isolation and data capture are"
                " not supported by SageMaker for serverless endpoints and are left out"
            )
        try:
            sagemaker.create_model(**plan.model)
        except ClientError as error:
            if not already_exists(error):
                raise
        logger.info("model %s created for %s", plan.model_name, request.model_package_arn)
        return
    serves = existing.get("PrimaryContainer", {}).get("ModelPackageName")
    if serves != request.model_package_arn:
        raise _Refused(
            f"model {plan.model_name} exists but serves {serves!r}, not"
            f" {request.model_package_arn}; delete it or deploy under another endpoint name"
        )


def _ensure_endpoint_config(sagemaker: SageMakerClient, plan: DeployPlan) -> None:
    """Creates the endpoint configuration unless it exists (its name pins its settings), then
    reads it back: SageMaker asks callers to, before CreateEndpoint, because its own read of
    the configuration is eventually consistent."""
    if _describe(sagemaker.describe_endpoint_config, EndpointConfigName=plan.config_name):
        return
    try:
        sagemaker.create_endpoint_config(**plan.config)
    except ClientError as error:
        if not already_exists(error):
            raise
    logger.info("endpoint configuration %s created", plan.config_name)
    _describe(sagemaker.describe_endpoint_config, EndpointConfigName=plan.config_name)


@dataclass(frozen=True)
class _Settled:
    """The endpoint once no longer in a transitional state (None: it does not exist), and the
    configuration of a deployment that was in progress when the wait began."""

    endpoint: dict[str, Any] | None
    pending_config: str | None


def _settle(
    sagemaker: SageMakerClient,
    endpoint_name: str,
    budget_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None],
) -> _Settled:
    """Polls DescribeEndpoint every `poll_seconds` until the endpoint leaves Creating/Updating/
    ... (or disappears); raises _StillBusy after `budget_seconds` of waiting."""
    waited = 0.0
    pending: str | None = None
    while True:
        endpoint = _describe(sagemaker.describe_endpoint, EndpointName=endpoint_name)
        if endpoint is None or endpoint["EndpointStatus"] not in TRANSITIONAL_STATES:
            return _Settled(endpoint, pending)
        status = endpoint["EndpointStatus"]
        pending = pending or endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
        if waited >= budget_seconds:
            raise _StillBusy(
                f"endpoint {endpoint_name} is still {status} after {waited:.0f} s; SageMaker"
                " carries on, and the next run of this step waits for it"
            )
        logger.info("endpoint %s is %s; waiting %.0f s", endpoint_name, status, poll_seconds)
        sleep(poll_seconds)
        waited += poll_seconds


# --- auto scaling ---------------------------------------------------------------------------


def _scaling_tags(environment: str) -> dict[str, Any]:
    """Register's Tags: the environment's tag, when the step knows its environment."""
    return {"Tags": {SCALING_TAG: environment}} if environment else {}


def _target_params(endpoint_name: str) -> dict[str, str]:
    return {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id(endpoint_name),
        "ScalableDimension": SCALABLE_DIMENSION,
    }


def _scalable_target(autoscaling: AutoScalingClient, endpoint_name: str) -> dict[str, Any] | None:
    answer = autoscaling.describe_scalable_targets(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceIds=[resource_id(endpoint_name)],
        ScalableDimension=SCALABLE_DIMENSION,
    )
    targets: list[dict[str, Any]] = answer.get("ScalableTargets", [])
    return targets[0] if targets else None


def _scaling_policies(autoscaling: AutoScalingClient, endpoint_name: str) -> list[dict[str, Any]]:
    answer = autoscaling.describe_scaling_policies(**_target_params(endpoint_name))
    policies: list[dict[str, Any]] = answer.get("ScalingPolicies", [])
    return policies


def _policy_matches(policy: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    current = policy.get("TargetTrackingScalingPolicyConfiguration", {})
    return policy.get("PolicyType") == "TargetTrackingScaling" and all(
        current.get(key) == value for key, value in wanted.items()
    )


def ensure_autoscaling(
    autoscaling: AutoScalingClient, request: DeployRequest, endpoint_name: str
) -> list[str]:
    """Registers the variant's instance count as a scalable target in [min, max] and puts the
    target-tracking policy, each only where it is not already as wanted. Call it once the
    endpoint is InService: registering an active variant moves its instance count into the range.
    Returns what changed, in words (empty: nothing)."""
    changes = []
    target = _scalable_target(autoscaling, endpoint_name)
    wanted_range = (request.min_capacity, request.max_capacity)
    if target is None or (target.get("MinCapacity"), target.get("MaxCapacity")) != wanted_range:
        autoscaling.register_scalable_target(
            **_target_params(endpoint_name),
            MinCapacity=request.min_capacity,
            MaxCapacity=request.max_capacity,
            **_scaling_tags(request.environment),
        )
        changes.append(f"scalable target [{request.min_capacity}, {request.max_capacity}]")
    wanted = scaling_policy_configuration(request)
    policies = {
        policy["PolicyName"]: policy for policy in _scaling_policies(autoscaling, endpoint_name)
    }
    existing = policies.get(SCALING_POLICY_NAME)
    if existing is None or not _policy_matches(existing, wanted):
        autoscaling.put_scaling_policy(
            PolicyName=SCALING_POLICY_NAME,
            **_target_params(endpoint_name),
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=wanted,
        )
        changes.append(f"scaling policy {SCALING_POLICY_NAME}")
    return changes


@dataclass(frozen=True)
class _DetachedScaling:
    """A scalable target and its policies as they were before the step removed them."""

    target: dict[str, Any]
    policies: list[dict[str, Any]]


def _live_instance_type(sagemaker: SageMakerClient, config_name: str | None) -> str | None:
    if not config_name:
        return None
    config = _describe(sagemaker.describe_endpoint_config, EndpointConfigName=config_name)
    variants: list[dict[str, Any]] = (config or {}).get("ProductionVariants", [])
    for variant in variants:
        if variant.get("VariantName") == VARIANT_NAME:
            return variant.get("InstanceType")
    return None


def _prepare_autoscaling_for_update(
    sagemaker: SageMakerClient,
    autoscaling: AutoScalingClient,
    request: DeployRequest,
    live_config: str | None,
) -> tuple[_DetachedScaling | None, bool]:
    """AWS fails an UpdateEndpoint that changes the instance type of a variant registered for
    auto scaling; its policies must be deleted and the target deregistered first.
    Returns what was detached (to restore after a rollback) and whether a target stays in place
    through the update (a model-only change, which AWS allows)."""
    if request.serverless:
        # Serverless variants do not auto scale, and AWS does not turn an instance endpoint
        # into a serverless one: there is no target to detach.
        return None, False
    target = _scalable_target(autoscaling, request.endpoint_name)
    if target is None:
        return None, False
    live_type = _live_instance_type(sagemaker, live_config)
    if live_type == request.instance_type:
        return None, True
    policies = _scaling_policies(autoscaling, request.endpoint_name)
    for policy in policies:
        autoscaling.delete_scaling_policy(
            PolicyName=policy["PolicyName"], **_target_params(request.endpoint_name)
        )
    autoscaling.deregister_scalable_target(**_target_params(request.endpoint_name))
    logger.info(
        "auto scaling of %s deregistered: the variant changes from %s to %s",
        request.endpoint_name,
        live_type,
        request.instance_type,
    )
    return _DetachedScaling(target, policies), False


_POLICY_CONFIGURATIONS = (
    "TargetTrackingScalingPolicyConfiguration",
    "StepScalingPolicyConfiguration",
    "PredictiveScalingPolicyConfiguration",
)


def _restore_autoscaling(
    autoscaling: AutoScalingClient,
    endpoint_name: str,
    detached: _DetachedScaling,
    environment: str,
) -> None:
    """Puts back what `_prepare_autoscaling_for_update` removed (the old fleet still serves)."""
    autoscaling.register_scalable_target(
        **_target_params(endpoint_name),
        MinCapacity=detached.target["MinCapacity"],
        MaxCapacity=detached.target["MaxCapacity"],
        **_scaling_tags(environment),
    )
    for policy in detached.policies:
        configuration = {key: policy[key] for key in _POLICY_CONFIGURATIONS if key in policy}
        autoscaling.put_scaling_policy(
            PolicyName=policy["PolicyName"],
            **_target_params(endpoint_name),
            PolicyType=policy["PolicyType"],
            **configuration,
        )
    logger.info("auto scaling of %s restored as it was", endpoint_name)


# --- the step -------------------------------------------------------------------------------


class _Deployment:
    """One run of the step: the request, the clients and the names planned from the package."""

    def __init__(
        self,
        sagemaker: SageMakerClient,
        autoscaling: AutoScalingClient,
        request: DeployRequest,
        sleep: Callable[[float], None],
    ) -> None:
        self.sagemaker = sagemaker
        self.autoscaling = autoscaling
        self.request = request
        self.sleep = sleep
        self.plan: DeployPlan | None = None

    def result(self, outcome: Outcome, message: str) -> DeployResult:
        plan = self.plan
        return DeployResult(
            outcome,
            self.request.endpoint_name,
            plan.config_name if plan else "",
            plan.model_name if plan else "",
            message,
        )

    def settle(self, budget_seconds: float) -> _Settled:
        return _settle(
            self.sagemaker,
            self.request.endpoint_name,
            budget_seconds,
            self.request.poll_seconds,
            self.sleep,
        )

    def run(self) -> DeployResult:
        request = self.request
        package = self.sagemaker.describe_model_package(ModelPackageName=request.model_package_arn)
        problem = _package_problem(request.model_package_arn, package)
        if problem is not None:
            return self.result("failed", problem)
        plan = self.plan = plan_deployment(request, int(package["ModelPackageVersion"]))
        if not request.serverless and request.instance_count < 2:
            logger.warning(
                "a one-instance fleet cannot hold a canary of at most 50%% of its capacity;"
                " SageMaker may refuse or widen the canary of the next update"
            )
        settled = self.settle(request.timeout_seconds + ROLLBACK_GRACE_SECONDS)
        endpoint = settled.endpoint
        if endpoint is None:
            return self.create(plan)
        status = endpoint["EndpointStatus"]
        live = endpoint.get("EndpointConfigName")
        if status != "InService":
            reason = endpoint.get("FailureReason") or "no reason given"
            return self.result(
                "failed",
                f"endpoint {request.endpoint_name} is {status} ({reason}); it needs a person:"
                " SageMaker allows only deleting a Failed endpoint",
            )
        if live == plan.config_name:
            return self.already_deployed(settled.pending_config == plan.config_name)
        if settled.pending_config == plan.config_name:
            return self.rolled_back(plan, endpoint, "the deployment an earlier run started")
        return self.update(plan, live)

    def serving(self, outcome: Outcome, message: str) -> DeployResult:
        """The result once the endpoint serves the package: auto scaling set up as requested
        first (instance variants). Where that fails the endpoint serves, but the run failed."""
        if self.request.serverless:
            return self.result(outcome, message)
        try:
            changes = ensure_autoscaling(self.autoscaling, self.request, self.request.endpoint_name)
        except ClientError as error:
            return self.result(
                "failed", f"{message}, but auto scaling was not set up: {describe_error(error)}"
            )
        note = f"; auto scaling: {', '.join(changes)}" if changes else ""
        return self.result(outcome, message + note)

    def restore(self, detached: _DetachedScaling | None) -> str:
        """Puts detached auto scaling back; a note for the message where that fails."""
        if detached is None:
            return ""
        try:
            _restore_autoscaling(
                self.autoscaling, self.request.endpoint_name, detached, self.request.environment
            )
        except ClientError as error:
            return f"; auto scaling could not be restored: {describe_error(error)}"
        return ""

    def create(self, plan: DeployPlan) -> DeployResult:
        _ensure_model(self.sagemaker, self.request, plan)
        _ensure_endpoint_config(self.sagemaker, plan)
        self.sagemaker.create_endpoint(
            EndpointName=self.request.endpoint_name, EndpointConfigName=plan.config_name
        )
        logger.info("endpoint %s creating with %s", self.request.endpoint_name, plan.config_name)
        endpoint = self.settle(self.request.timeout_seconds).endpoint or {}
        if endpoint.get("EndpointStatus") != "InService":
            return self.failed(endpoint, "creating")
        return self.serving(
            "created",
            f"endpoint {self.request.endpoint_name} created with model package"
            f" {self.request.model_package_arn} (version {plan.version})",
        )

    def already_deployed(self, finished_earlier_run: bool) -> DeployResult:
        if finished_earlier_run:
            return self.serving(
                "updated",
                f"the deployment of {self.request.model_package_arn} that an earlier run started"
                " has finished",
            )
        return self.serving(
            "unchanged",
            f"endpoint {self.request.endpoint_name} already serves"
            f" {self.request.model_package_arn}",
        )

    def update(self, plan: DeployPlan, live_config: str | None) -> DeployResult:
        request = self.request
        _ensure_model(self.sagemaker, request, plan)
        _ensure_endpoint_config(self.sagemaker, plan)
        detached, kept = _prepare_autoscaling_for_update(
            self.sagemaker, self.autoscaling, request, live_config
        )
        params: dict[str, Any] = {
            "EndpointName": request.endpoint_name,
            "EndpointConfigName": plan.config_name,
        }
        if not request.serverless:
            params["DeploymentConfig"] = deployment_config(request)
        if kept:
            # Auto scaling owns the instance count: keep it, take the rest from the new config.
            params["RetainAllVariantProperties"] = True
            params["ExcludeRetainedVariantProperties"] = [
                {"VariantPropertyType": "DataCaptureConfig"}
            ]
        try:
            self.sagemaker.update_endpoint(**params)
        except ClientError as error:
            return self.result(
                "failed", f"{describe_error(error)}{self.restore(detached)}; nothing changed"
            )
        logger.info(
            "endpoint %s updating from %s to %s",
            request.endpoint_name,
            live_config,
            plan.config_name,
        )
        endpoint = self.settle(request.timeout_seconds + ROLLBACK_GRACE_SECONDS).endpoint or {}
        status = endpoint.get("EndpointStatus")
        if status == "InService" and endpoint.get("EndpointConfigName") == plan.config_name:
            return self.serving(
                "updated",
                f"endpoint {request.endpoint_name} moved from {live_config} to"
                f" {plan.config_name} (model package version {plan.version})",
            )
        if status == "InService":
            return self.rolled_back(plan, endpoint, "the update", self.restore(detached))
        return self.failed(endpoint, "updating")

    def rolled_back(
        self, plan: DeployPlan, endpoint: Mapping[str, Any], what: str, note: str = ""
    ) -> DeployResult:
        alarms = ", ".join(self.request.rollback_alarm_names) or "none configured"
        reason = endpoint.get("FailureReason") or f"no reason given (rollback alarms: {alarms})"
        return self.result(
            "rolled_back",
            f"SageMaker rolled back {what} to {plan.config_name}: endpoint"
            f" {self.request.endpoint_name} still serves {endpoint.get('EndpointConfigName')}"
            f" ({reason}){note}",
        )

    def failed(self, endpoint: Mapping[str, Any], doing: str) -> DeployResult:
        status = endpoint.get("EndpointStatus", "gone")
        reason = endpoint.get("FailureReason") or "no reason given"
        return self.result(
            "failed",
            f"endpoint {self.request.endpoint_name} ended {status} while {doing}: {reason}",
        )


def deploy(
    sagemaker: SageMakerClient,
    autoscaling: AutoScalingClient,
    request: DeployRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Creates or updates `request.endpoint_name` to serve `request.model_package_arn`.

    Never raises for what AWS answers: an API error, a package that is not approved, an endpoint
    that does not settle in time all come back as a "failed" result naming the cause. Waits poll
    every `poll_seconds` with `sleep` (injectable, so tests do not wait).
    """
    deployment = _Deployment(sagemaker, autoscaling, request, sleep)
    try:
        result = deployment.run()
    except ClientError as error:
        result = deployment.result("failed", describe_error(error))
    except (_Refused, _StillBusy) as stopped:
        result = deployment.result("failed", str(stopped))
    log = logger.info if result.succeeded else logger.error
    log("deploy %s: %s", result.outcome, result.message)
    return result


# --- command line ---------------------------------------------------------------------------


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(DeployRequest)}


def build_parser() -> argparse.ArgumentParser:
    """One flag per DeployRequest field (`--model-package-arn` for `model_package_arn`); lists
    are comma-separated. Defaults are the dataclass's."""
    parser = argparse.ArgumentParser(
        description="Deploy an approved model package to a SageMaker endpoint.", allow_abbrev=False
    )
    for name in (
        "model_package_arn",
        "endpoint_name",
        "execution_role_arn",
        "kms_key_arn",
        "data_capture_s3_uri",
    ):
        parser.add_argument(flag(name), required=True)
    parser.add_argument(
        flag("environment"), default="", help=f"the stack; the {SCALING_TAG} tag of the target"
    )
    for name in ("subnet_ids", "security_group_ids", "rollback_alarm_names"):
        parser.add_argument(flag(name), type=csv_list, default=())
    for name in (
        "capture_percentage",
        "instance_count",
        "min_capacity",
        "max_capacity",
        "canary_percent",
        "wait_interval_seconds",
        "timeout_seconds",
    ):
        parser.add_argument(flag(name), type=int, default=_DEFAULTS[name])
    parser.add_argument(flag("serverless_memory_mb"), type=int, default=None)
    parser.add_argument(flag("serverless_max_concurrency"), type=int, default=None)
    parser.add_argument(flag("instance_type"), default=_DEFAULTS["instance_type"])
    for name in ("target_invocations_per_instance", "poll_seconds"):
        parser.add_argument(flag(name), type=float, default=_DEFAULTS[name])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--region", default=None, help="default: AWS_DEFAULT_REGION, else the package ARN's"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[DeployRequest, argparse.Namespace]:
    """The request from the command line; an invalid value exits with an error naming its flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return request_from_args(parser, args, DeployRequest), args


def make_clients(region: str | None) -> tuple[SageMakerClient, AutoScalingClient]:
    """boto3 `sagemaker` and `application-autoscaling` clients for `region`, with botocore's
    standard retry mode (throttling and transient errors retried with backoff)."""
    sagemaker: SageMakerClient = boto3_client("sagemaker", region)
    autoscaling: AutoScalingClient = boto3_client("application-autoscaling", region)
    return sagemaker, autoscaling


def main(argv: Sequence[str] | None = None) -> int:
    """The processing container's entry point: 0 when the endpoint serves the package (created,
    updated, unchanged), 1 when it does not (rolled_back, failed)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request, args = parse_args(argv)
    region = args.region or AWS_DEFAULT_REGION.get() or region_of(request.model_package_arn)
    sagemaker, autoscaling = make_clients(region)
    # time.sleep looked up now, not when deploy() was defined: tests replace it.
    result = deploy(sagemaker, autoscaling, request, sleep=time.sleep)
    return report(
        result,
        args.output,
        f"deploy {result.outcome}: {result.endpoint_name} {result.endpoint_config_name}",
    )


if __name__ == "__main__":
    sys.exit(main())
