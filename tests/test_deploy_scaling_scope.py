"""The deploy role may change the scaling of its own environment's endpoints only: the deploy
step tags each scalable target with its stack, and the role's policy scopes every
Application Auto Scaling write by that tag (scalable targets have random-id ARNs). Checked
with the IAM evaluator against the calls the step makes, and against another environment's
target in the same account (an on-demand copy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.deployment import DEPLOY
from pipelines.steps.deploy import SCALING_TAG, SERVICE_NAMESPACE
from policy.mlops_rules.iam_eval import Request, allows
from stacks.offline import StackRecording

TARGET_ARN = "arn:aws:application-autoscaling:eu-west-1:{account}:scalable-target/0123abcd"
WRITES = (
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
)


def _statements(recording: StackRecording) -> list[Any]:
    policy = recording.named("mlops-pipelines-deployment-access").inputs["policy"]
    return list(json.loads(policy)["Statement"])


def _target(recording: StackRecording) -> str:
    return TARGET_ARN.format(account=recording.settings.aws.account_id)


def _context(tag_kind: str, stack: str | None) -> dict[str, str]:
    context = {"application-autoscaling:service-namespace": SERVICE_NAMESPACE}
    if stack is not None:
        context[f"aws:{tag_kind}/{SCALING_TAG}"] = stack
    return context


@pytest.fixture(params=["test", "prod"])
def deployed(request: pytest.FixtureRequest) -> StackRecording:
    from tests.conftest import recorded

    return recorded(request.param)


def test_registering_a_tagged_target_of_its_own_is_allowed(deployed: StackRecording) -> None:
    statements, target = _statements(deployed), _target(deployed)
    tags = _context("RequestTag", deployed.stack)
    for action in ("RegisterScalableTarget", "TagResource"):
        assert allows(
            statements, Request(f"application-autoscaling:{action}", target, context=tags)
        )
    # Without the tag, or with another environment's, registration is refused.
    for stack in (None, f"{deployed.stack}-alice"):
        request = Request(
            "application-autoscaling:RegisterScalableTarget",
            target,
            context=_context("RequestTag", stack),
        )
        assert not allows(statements, request), stack


def test_writes_reach_only_this_environments_targets(deployed: StackRecording) -> None:
    statements, target = _statements(deployed), _target(deployed)
    for action in WRITES:
        own = Request(action, target, context=_context("ResourceTag", deployed.stack))
        assert allows(statements, own), action
        copy = Request(action, target, context=_context("ResourceTag", f"{deployed.stack}-alice"))
        assert not allows(statements, copy), action
        untagged = Request(action, target, context=_context("ResourceTag", None))
        assert not allows(statements, untagged), action
    # Reading has no resource scope in AWS, so it is not scoped here either.
    describe = Request("application-autoscaling:DescribeScalableTargets", "*")
    assert allows(statements, describe)


def test_the_deploy_step_tags_with_the_stack_the_policy_expects(deployed: StackRecording) -> None:
    """The definition passes the stack to the step, which tags its targets with it."""
    (pipeline,) = [
        p
        for p in deployed.of_type("aws:sagemaker/pipeline:Pipeline")
        if p.inputs["pipelineName"].endswith("-deployment")
    ]
    steps = json.loads(pipeline.inputs["pipelineDefinition"])["Steps"]
    (deploy,) = [s for s in steps if s["Name"] == DEPLOY]
    arguments = deploy["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--environment") + 1] == deployed.stack


def test_target_tracking_alarms_of_its_endpoints_only(deployed: StackRecording) -> None:
    """Application Auto Scaling creates the policy's alarms with the caller's permissions,
    named after the scalable target."""
    statements, stack = _statements(deployed), deployed.stack
    account = deployed.settings.aws.account_id

    def alarm(endpoint: str) -> str:
        name = f"TargetTracking-endpoint/{endpoint}/variant/AllTraffic-AlarmHigh-0a1b"
        return f"arn:aws:cloudwatch:eu-west-1:{account}:alarm:{name}"

    for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"):
        assert allows(statements, Request(action, alarm(f"mlops-{stack}-digits")))
        assert not allows(statements, Request(action, alarm("mlops-other-digits")))
    endpoint = f"arn:aws:sagemaker:eu-west-1:{account}:endpoint/mlops-{stack}-digits"
    update = Request("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint)
    assert allows(statements, update)
