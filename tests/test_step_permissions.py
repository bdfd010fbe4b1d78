"""Every AWS call the deploy and monitor steps make (their client Protocols) is granted to
the execution role that runs them, and so is every action AWS checks on the caller on its
behalf (Application Auto Scaling's table in components/deployment_policies.py): a call added
to a step without its permission fails here, not in the first real deployment."""

from __future__ import annotations

import fnmatch
import inspect
import json
from typing import Any

import botocore.session
import pytest

from components.deployment_policies import ON_BEHALF_OF_THE_CALLER
from pipelines.steps import deploy, monitor
from stacks.offline import StackRecording

# Client Protocol -> the service whose IAM actions name its calls.
CLIENTS = [
    (deploy.SageMakerClient, "sagemaker"),
    (deploy.AutoScalingClient, "application-autoscaling"),
    (monitor.SageMakerClient, "sagemaker"),
]
# S3 names actions after what they touch, not after operations: monitor.py's calls.
S3_ACTIONS = {
    "get_paginator": "s3:ListBucket",  # list_objects_v2
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
}
# The deployment role's policies: Deploy and Monitor run as it.
ROLE_POLICIES = ("mlops-pipelines-deployment-jobs-access", "mlops-pipelines-deployment-access")


def _actions(protocol: type, service: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    operations = {op.lower(): op for op in model.operation_names}
    methods = [
        name
        for name, _ in inspect.getmembers(protocol, inspect.isfunction)
        if not name.startswith("_")
    ]
    prefix = model.metadata["signingName"] if service != "application-autoscaling" else service
    return {f"{prefix}:{operations[m.replace('_', '')]}" for m in methods}


def _allowed(recording: StackRecording) -> list[Any]:
    statements = []
    for name in ROLE_POLICIES:
        document = json.loads(recording.named(name).inputs["policy"])
        statements += [s for s in document["Statement"] if s["Effect"] == "Allow"]
    return statements


def _granted(action: str, statements: list[Any]) -> bool:
    for statement in statements:
        patterns = statement["Action"]
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if any(fnmatch.fnmatchcase(action, p) for p in patterns):
            return True
    return False


def test_the_protocols_name_real_operations() -> None:
    assert "sagemaker:UpdateEndpoint" in _actions(deploy.SageMakerClient, "sagemaker")
    assert "application-autoscaling:DeleteScalingPolicy" in _actions(
        deploy.AutoScalingClient, "application-autoscaling"
    )


@pytest.mark.parametrize(
    ("protocol", "service"), CLIENTS, ids=lambda v: getattr(v, "__qualname__", v)
)
def test_every_step_call_is_granted(prod: StackRecording, protocol: type, service: str) -> None:
    statements = _allowed(prod)
    missing = sorted(a for a in _actions(protocol, service) if not _granted(a, statements))
    assert missing == [], f"{protocol.__module__}.{protocol.__qualname__}"


def test_what_auto_scaling_checks_on_the_caller_is_granted(prod: StackRecording) -> None:
    statements = _allowed(prod)
    called = _actions(deploy.AutoScalingClient, "application-autoscaling")
    # Every write the step calls is in the table (a new one needs its row).
    writes = {a for a in called if not a.split(":")[1].startswith("Describe")}
    assert writes == set(ON_BEHALF_OF_THE_CALLER)
    missing = sorted(
        (call, action)
        for call in writes
        for action in ON_BEHALF_OF_THE_CALLER[call]
        if not _granted(action, statements)
    )
    assert missing == []


def test_the_monitor_steps_s3_calls_are_granted(prod: StackRecording) -> None:
    methods = {n for n, _ in inspect.getmembers(monitor.S3Client, inspect.isfunction)}
    assert {m for m in methods if not m.startswith("_")} == set(S3_ACTIONS)
    statements = _allowed(prod)
    assert [a for a in S3_ACTIONS.values() if not _granted(a, statements)] == []
