"""The deployment half of MlPipelines and Monitoring: a deployment pipeline per deployed
model, started by approvals through EventBridge, the deploy step's permissions, and the
endpoint alarms that both alert and roll a blue/green shift back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.deployment import rollback_alarm_names
from stacks import outputs
from stacks.loader import SettingsError, settings_from_config
from stacks.offline import StackRecording
from tests.conftest import stack_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _statements(recording: StackRecording, name: str) -> dict[str, Any]:
    policy = json.loads(recording.named(name).inputs["policy"])
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def test_a_deployment_pipeline_per_deployed_model(recording: StackRecording) -> None:
    pipeline = recording.named("mlops-pipelines-digits-deployment")
    # Its own role: Deploy and Monitor, not the training jobs' role.
    role = recording.named("mlops-pipelines-deployment-jobs-role")
    assert role.inputs["name"] == f"mlops-{recording.stack}-deployment"
    assert pipeline.inputs["pipelineName"] == f"mlops-{recording.stack}-digits-deployment"
    assert pipeline.inputs["roleArn"] == role.outputs["arn"]
    definition = json.loads(pipeline.inputs["pipelineDefinition"])
    steps = [step["Name"] for step in definition["Steps"]]
    serverless = recording.settings.models["digits"].deployment.serverless  # type: ignore[union-attr]
    assert steps == (["Deploy"] if serverless else ["Deploy", "Monitor"])
    # Built from the environment's real outputs: no placeholder is left.
    assert "{{" not in pipeline.inputs["pipelineDefinition"]
    arguments = definition["Steps"][0]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert (
        arguments[arguments.index("--kms-key-arn") + 1] == recording.outputs[outputs.DATA_KEY_ARN]
    )


def test_approvals_start_the_deployment_pipeline(recording: StackRecording) -> None:
    rule = recording.named("mlops-pipelines-digits-approved")
    assert rule.inputs["name"] == f"mlops-{recording.stack}-digits-approved"
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": [f"mlops-{recording.stack}-digits"],
            "ModelApprovalStatus": ["Approved"],
        },
    }
    target = recording.named("mlops-pipelines-digits-deploy")
    pipeline = recording.named("mlops-pipelines-digits-deployment")
    role = recording.named("mlops-pipelines-deploy-trigger-role")
    assert target.inputs["arn"] == pipeline.outputs["arn"]
    assert target.inputs["roleArn"] == role.outputs["arn"]
    assert target.inputs["sagemakerPipelineTarget"] == {
        "pipelineParameterLists": [{"name": "ModelPackageArn", "value": "$.detail.ModelPackageArn"}]
    }
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    (start,) = _statements(recording, "mlops-pipelines-deploy-trigger-access").values()
    assert start["Action"] == "sagemaker:StartPipelineExecution"
    assert start["Resource"] == [pipeline.outputs["arn"]]


def test_the_deploy_step_touches_only_this_environment(recording: StackRecording) -> None:
    base = f"mlops-{recording.stack}"
    statements = _statements(recording, "mlops-pipelines-deployment-access")
    packages = statements["ReadThisEnvironmentsPackages"]
    assert packages["Resource"].endswith(f":model-package/{base}-*")
    endpoints = statements["DeployThisEnvironmentsEndpoints"]
    assert sorted(r.rsplit(":", 1)[-1] for r in endpoints["Resource"]) == [
        f"endpoint-config/{base}-*",
        f"endpoint/{base}-*",
        f"model/{base}-*",
    ]
    assert "sagemaker:UpdateModelPackage" not in endpoints["Action"]  # never approves (A5)
    assert statements["ReadRollbackAlarms"]["Resource"].endswith(f":alarm:{base}-*")


def test_rollback_alarms_watch_the_endpoint(recording: StackRecording) -> None:
    endpoint = f"mlops-{recording.stack}-digits"
    deployment = recording.settings.models["digits"].deployment
    assert deployment is not None
    topic = recording.named("mlops-monitoring-alerts").outputs["arn"]
    alarms = {a.inputs["name"]: a.inputs for a in recording.of_type(ALARM)}
    errors, latency = (alarms[name] for name in rollback_alarm_names(endpoint))
    for alarm in (errors, latency):
        assert alarm["namespace"] == "AWS/SageMaker"
        assert alarm["dimensions"] == {"EndpointName": endpoint, "VariantName": "AllTraffic"}
        assert alarm["actionsEnabled"] is True
        assert alarm["alarmActions"] == [topic]
        assert (alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (
            60,
            3,
            2,
        )
    assert (errors["metricName"], errors["statistic"], errors["threshold"]) == (
        "Invocation5XXErrors",
        "Sum",
        1,
    )
    assert latency["metricName"] == "ModelLatency"
    assert latency["extendedStatistic"] == "p99"
    assert latency["threshold"] == deployment.latency_p99_ms * 1000  # microseconds


def test_the_deploy_step_reaches_autoscaling_without_internet(recording: StackRecording) -> None:
    region = recording.settings.aws.region
    services = {
        e.inputs["serviceName"] for e in recording.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert f"com.amazonaws.{region}.application-autoscaling" in services


def test_prod_deploys_to_at_least_two_instances(prod: StackRecording) -> None:
    deployment = prod.settings.models["digits"].deployment
    assert deployment is not None and deployment.serverless is None
    assert deployment.instance_count >= 2 and deployment.min_capacity >= 2


def test_dev_deploys_serverless(dev: StackRecording) -> None:
    pipeline = json.loads(
        dev.named("mlops-pipelines-digits-deployment").inputs["pipelineDefinition"]
    )
    arguments = pipeline["Steps"][0]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--serverless-memory-mb") + 1] == "2048"


@pytest.mark.parametrize(
    ("stack", "change", "key", "message"),
    [
        ("prod", {"instance_count": 1, "min_capacity": 1}, "instance_count", ">= 2 in prod"),
        (
            "prod",
            {"serverless": {"memory_mb": 2048}, "retrain_on_drift": False},
            "serverless",
            "on instances (R4)",
        ),
        ("test", {"instance_count": 3}, "instance_count", "within min_capacity..max_capacity"),
        ("test", {"min_capacity": 2, "max_capacity": 1, "instance_count": 2}, "max_capacity", ">="),
        ("dev", {"serverless": {"memory_mb": 1000}}, "serverless.memory_mb", "1024"),
    ],
)
def test_bad_deployment_settings_are_named(
    stack: str, change: dict[str, Any], key: str, message: str
) -> None:
    config = stack_config(stack)
    config["mlops-platform:models"]["digits"]["deployment"].update(change)
    with pytest.raises(SettingsError) as caught:
        settings_from_config(config, source=f"stacks/Pulumi.{stack}.yaml")
    text = str(caught.value)
    line = next((ln for ln in text.splitlines() if f"models.digits.deployment.{key}:" in ln), None)
    assert line is not None, text
    assert message in line


# A "SageMaker Model Package State Change" event as SageMaker sends it (SageMaker Developer
# Guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge").
APPROVAL_EVENT = {
    "version": "0",
    "id": "4c2a1f8e-0000-0000-0000-000000000000",
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "account": "333333333333",
    "region": "eu-west-1",
    "detail": {
        "ModelPackageGroupName": "mlops-prod-digits",
        "ModelPackageVersion": 7,
        "ModelPackageArn": (
            "arn:aws:sagemaker:eu-west-1:333333333333:model-package/mlops-prod-digits/7"
        ),
        "ModelApprovalStatus": "Approved",
    },
}


def _resolve(path: str, event: dict[str, object]) -> object:
    """EventBridge's dynamic path (`$.a.b`): dot notation over the event."""
    value: object = event
    for key in path.removeprefix("$.").split("."):
        assert isinstance(value, dict) and key in value, path
        value = value[key]
    return value


def test_the_approval_target_fills_the_package_from_the_event(prod: StackRecording) -> None:
    """EventBridge's target parameters, SageMakerPipelineParameters among them, take a dynamic
    JSON path when the whole value is one (EventBridge User Guide, "Event bus targets": "Target
    parameters", "Dynamic path parameters"), so no input transformer is needed."""
    target = prod.named("mlops-pipelines-digits-deploy").inputs["sagemakerPipelineTarget"]
    ((parameter),) = target["pipelineParameterLists"]
    value = parameter["value"]
    assert value.startswith("$.") and " " not in value  # the whole value is the path
    arn = _resolve(value, APPROVAL_EVENT)
    assert arn == APPROVAL_EVENT["detail"]["ModelPackageArn"]  # type: ignore[index]
    # ... and it names a package of the group the rule matches.
    pattern = json.loads(prod.named("mlops-pipelines-digits-approved").inputs["eventPattern"])
    (group,) = pattern["detail"]["ModelPackageGroupName"]
    assert f":model-package/{group}/" in str(arn)


def test_training_and_deployment_roles_are_apart(recording: StackRecording) -> None:
    """Training code cannot create or update endpoints; deployments cannot train, register or
    track; neither may rewrite the step code."""
    from policy.mlops_rules.iam_eval import Request, allows

    def statements(*names: str) -> list[Any]:
        found: list[Any] = []
        for name in names:
            found += json.loads(recording.named(name).inputs["policy"])["Statement"]
        return found

    training = statements("mlops-pipelines-execution-access")
    deployment = statements(
        "mlops-pipelines-deployment-jobs-access", "mlops-pipelines-deployment-access"
    )
    region, account = recording.settings.aws.region, recording.settings.aws.account_id
    endpoint = f"arn:aws:sagemaker:{region}:{account}:endpoint/mlops-{recording.stack}-digits"
    for action in ("sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"):
        assert allows(deployment, Request(action, endpoint))
        assert not allows(training, Request(action, endpoint))
    server = str(recording.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN])
    group = (
        f"arn:aws:sagemaker:{region}:{account}:model-package-group/mlops-{recording.stack}-digits"
    )
    job = f"arn:aws:sagemaker:{region}:{account}:training-job/pipelines-x-Train"
    pending = {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    for action, resource in (
        ("sagemaker-mlflow:CreateRun", server),
        ("sagemaker:CreateModelPackage", group),
        ("sagemaker:CreateTrainingJob", job),
    ):
        assert allows(training, Request(action, resource, context=pending)), action
        assert not allows(deployment, Request(action, resource, context=pending)), action
    models = f"arn:aws:s3:::{recording.outputs[outputs.BUCKET_NAMES]['models']}"
    artifact = f"{models}/digits/pipelines-x-Train/output/model.tar.gz"
    assert allows(deployment, Request("s3:GetObject", artifact))
    assert not allows(deployment, Request("s3:PutObject", artifact))
    assert allows(deployment, Request("s3:PutObject", f"{models}/data-capture/digits/x.jsonl"))
    for role in (training, deployment):
        assert not allows(role, Request("s3:PutObject", f"{models}/code/0a1b/pipelines/x.py"))
