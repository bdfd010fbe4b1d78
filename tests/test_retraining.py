"""DriftRetraining: Model Monitor violations on a deployed endpoint alert the team and start
the training pipeline through the retrain trigger (a Lambda function with a cooldown)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.retraining import TRIGGER_FILES, TRIGGER_HANDLER
from stacks import outputs
from stacks.loader import SettingsError, settings_from_config
from stacks.offline import StackRecording
from tests.conftest import recorded, stack_config
from tests.lambda_packages import assert_package_holds_its_imports

RETRAINING = "mlops:retraining:DriftRetraining"


@pytest.fixture(params=["test", "prod"])
def retraining(request: pytest.FixtureRequest) -> StackRecording:
    """The stacks whose deployed model retrains on drift."""
    return recorded(request.param)


def test_only_models_that_ask_for_it_retrain_on_drift(
    dev: StackRecording, retraining: StackRecording
) -> None:
    assert dev.of_type(RETRAINING) == []  # serverless: no data captured, nothing monitored
    (component,) = retraining.of_type(RETRAINING)
    assert component.name == "mlops-digits-retraining"


def test_violations_of_the_endpoints_monitor_reach_the_trigger_and_the_team(
    retraining: StackRecording,
) -> None:
    stack, region = retraining.stack, retraining.settings.aws.region
    account = retraining.settings.aws.account_id
    rule = retraining.named("mlops-digits-retraining-drift")
    assert rule.inputs["name"] == f"mlops-{stack}-digits-drift"
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobStatus": ["Completed"],
            "ExitMessage": [{"prefix": "CompletedWithViolations"}],
            "MonitoringScheduleArn": [
                f"arn:aws:sagemaker:{region}:{account}:monitoring-schedule/"
                f"mlops-{stack}-digits-data-quality"
            ],
        },
    }
    function = retraining.named("mlops-digits-retraining-trigger")
    targets = {
        t.inputs["arn"]
        for t in retraining.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.parent_name == "mlops-digits-retraining"
    }
    assert targets == {function.outputs["arn"], retraining.outputs[outputs.ALERT_TOPIC_ARN]}
    permission = retraining.named("mlops-digits-retraining-invoked-by-rule")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]


def test_the_trigger_knows_its_pipeline_and_cooldown(retraining: StackRecording) -> None:
    deployment = retraining.settings.models["digits"].deployment
    assert deployment is not None
    function = retraining.named("mlops-digits-retraining-trigger").inputs
    assert function["handler"] == TRIGGER_HANDLER
    assert function["environment"]["variables"] == {
        "MLOPS_TRAINING_PIPELINE_NAME": f"mlops-{retraining.stack}-digits-training",
        "MLOPS_RETRAIN_COOLDOWN_HOURS": str(deployment.retrain_cooldown_hours),
    }
    assert function["reservedConcurrentExecutions"] == 1
    assert function["kmsKeyArn"] == retraining.outputs[outputs.DATA_KEY_ARN]
    logs = retraining.named("mlops-digits-retraining-logs")
    assert function["loggingConfig"]["logGroup"] == logs.inputs["name"]
    assert logs.inputs["kmsKeyId"] == retraining.outputs[outputs.LOGS_KEY_ARN]


def test_the_trigger_may_only_start_its_training_pipeline(retraining: StackRecording) -> None:
    policy = json.loads(retraining.named("mlops-digits-retraining-access").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    start = statements["StartTrainingWithinCooldown"]
    assert start["Resource"] == retraining.outputs[outputs.PIPELINE_ARNS]["digits"]
    assert set(start["Action"]) == {
        "sagemaker:ListPipelineExecutions",
        "sagemaker:StartPipelineExecution",
    }


def test_the_trigger_package_holds_everything_it_imports(retraining: StackRecording) -> None:
    code: dict[str, Any] = retraining.named("mlops-digits-retraining-trigger").inputs["code"]
    assert_package_holds_its_imports(code, TRIGGER_FILES, TRIGGER_HANDLER)


def test_serverless_endpoints_cannot_retrain_on_drift() -> None:
    config = stack_config("dev")
    config["mlops-platform:models"]["digits"]["deployment"]["retrain_on_drift"] = True
    with pytest.raises(SettingsError, match=r"deployment\.retrain_on_drift: needs an instance"):
        settings_from_config(config, source="stacks/Pulumi.dev.yaml")
