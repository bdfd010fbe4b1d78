"""The deployment pipeline definition (pipelines/deployment.py): one Deploy step whose
command line is exactly what pipelines/steps/deploy.py parses, built from the model's
deployment settings, and never cached."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.context import context_for_stack
from pipelines.deployment import (
    DEPLOY,
    MONITOR,
    PARAMETERS,
    NotDeployed,
    definition_json,
    rollback_alarm_names,
)
from pipelines.steps import monitor
from pipelines.steps.deploy import build_parser
from stacks.loader import load_stack_settings


def _definition(stack: str) -> dict[str, Any]:
    settings = load_stack_settings(stack)
    return json.loads(
        definition_json(context_for_stack(stack, "digits"), settings.models["digits"])
    )


def _resolved(value: Any, parameters: dict[str, Any]) -> str:
    """An argument as a run with default parameters would pass it."""
    if isinstance(value, str):
        return value
    if "Get" in value:
        return str(parameters[value["Get"].removeprefix("Parameters.")])
    join = value["Std:Join"]
    return join["On"].join(_resolved(v, parameters) for v in join["Values"])


def _arguments(definition: dict[str, Any], package: str, step_name: str = DEPLOY) -> list[str]:
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    defaults["ModelPackageArn"] = package
    (step,) = [s for s in definition["Steps"] if s["Name"] == step_name]
    raw = step["Arguments"]["AppSpecification"]["ContainerArguments"]
    return [_resolved(value, defaults) for value in raw]


@pytest.mark.parametrize(
    ("stack", "steps"),
    [("dev", [DEPLOY]), ("test", [DEPLOY, MONITOR]), ("prod", [DEPLOY, MONITOR])],
)
def test_uncached_deploy_then_monitor_steps(stack: str, steps: list[str]) -> None:
    definition = _definition(stack)
    assert [p["Name"] for p in definition["Parameters"]] == list(PARAMETERS)
    assert [s["Name"] for s in definition["Steps"]] == steps  # serverless (dev): no monitor
    step = definition["Steps"][0]
    assert (step["Name"], step["Type"]) == (DEPLOY, "Processing")
    assert all("CacheConfig" not in s for s in definition["Steps"])
    if MONITOR in steps:
        assert definition["Steps"][1]["DependsOn"] == [DEPLOY]
    retried = {e for policy in step["RetryPolicies"] for e in policy["ExceptionType"]}
    assert retried == {
        "SageMaker.CAPACITY_ERROR",
        "SageMaker.JOB_INTERNAL_ERROR",
        "SageMaker.RESOURCE_LIMIT",
        "Step.THROTTLING",
        "Step.SERVICE_FAULT",
    }
    arguments = step["Arguments"]
    assert arguments["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.t3.medium"
    assert arguments["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "-m",
        "pipelines.steps.deploy",
    ]
    assert arguments["NetworkConfig"]["VpcConfig"]["Subnets"]


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_the_command_line_is_what_the_deploy_step_parses(stack: str) -> None:
    settings = load_stack_settings(stack)
    deployment = settings.models["digits"].deployment
    assert deployment is not None
    package = f"arn:aws:sagemaker:eu-west-1:1:model-package/mlops-{stack}-digits/3"
    parsed = build_parser().parse_args(_arguments(_definition(stack), package))
    endpoint = f"mlops-{stack}-digits"
    assert parsed.model_package_arn == package
    assert parsed.endpoint_name == endpoint
    assert tuple(parsed.rollback_alarm_names) == rollback_alarm_names(endpoint)
    assert parsed.instance_type == deployment.instance_type
    assert parsed.instance_count == deployment.instance_count
    assert (parsed.min_capacity, parsed.max_capacity) == (
        deployment.min_capacity,
        deployment.max_capacity,
    )
    assert parsed.canary_percent == deployment.canary_percent
    assert parsed.wait_interval_seconds == deployment.canary_wait_seconds
    assert parsed.capture_percentage == deployment.data_capture_percent
    assert parsed.data_capture_s3_uri.endswith("/data-capture/digits/")
    serverless = deployment.serverless
    assert parsed.serverless_memory_mb == (serverless.memory_mb if serverless else None)


def test_prod_deploys_two_instances_by_default() -> None:
    parameters = {p["Name"]: p for p in _definition("prod")["Parameters"]}
    assert parameters["EndpointInstanceCount"]["DefaultValue"] == 2
    assert parameters["ModelPackageArn"]["DefaultValue"] == ""


def test_a_model_without_deployment_settings_has_no_deployment_pipeline() -> None:
    settings = load_stack_settings("dev")
    model = settings.models["digits"].model_copy(update={"deployment": None})
    with pytest.raises(NotDeployed, match="'digits' has no deployment settings"):
        definition_json(context_for_stack("dev", "digits"), model)


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_the_monitor_command_line_is_what_the_monitor_step_parses(stack: str) -> None:
    definition = _definition(stack)
    parsed = monitor.build_parser().parse_args(_arguments(definition, "unused", MONITOR))
    assert parsed.endpoint_name == f"mlops-{stack}-digits"
    assert parsed.baseline_data_uri.endswith("/digits/raw/")
    # The models bucket keeps the baseline the schedule's job definition refers to.
    assert parsed.work_s3_uri.startswith(f"s3://mlops-{stack}-models-")
    assert parsed.region == "eu-west-1"
