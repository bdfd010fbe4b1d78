"""DriftRetraining: Model Monitor violations on a deployed endpoint alert the team and start
the training pipeline through a FIFO queue and the retrain trigger (a Lambda function with a
cooldown, serialised by the queue's single message group, without reserved concurrency)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from components.retraining import (
    MAX_RECEIVES,
    MESSAGE_GROUP,
    TRIGGER_FILES,
    TRIGGER_HANDLER,
    TRIGGER_TIMEOUT_SECONDS,
)
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
    queue = retraining.named("mlops-digits-retraining-queue")
    targets = {
        t.inputs["arn"]: t.inputs
        for t in retraining.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if t.parent_name == "mlops-digits-retraining"
    }
    assert set(targets) == {queue.outputs["arn"], retraining.outputs[outputs.ALERT_TOPIC_ARN]}
    # EventBridge needs a message group for a FIFO target.
    assert targets[queue.outputs["arn"]]["sqsTarget"] == {"messageGroupId": MESSAGE_GROUP}
    policy = json.loads(retraining.named("mlops-digits-retraining-queue-policy").inputs["policy"])
    sends = next(s for s in policy["Statement"] if s["Sid"] == "DriftRuleSends")
    assert sends["Principal"] == {"Service": "events.amazonaws.com"}
    assert sends["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.outputs["arn"]}}


def test_the_queue_serialises_the_trigger_and_keeps_what_fails(
    retraining: StackRecording,
) -> None:
    stack = retraining.stack
    queue = retraining.named("mlops-digits-retraining-queue").inputs
    dead = retraining.named("mlops-digits-retraining-dead-letters")
    assert queue["name"] == f"mlops-{stack}-digits-retrain.fifo"
    assert queue["fifoQueue"] is True
    # EventBridge requires content-based deduplication of a FIFO target.
    assert queue["contentBasedDeduplication"] is True
    assert queue["kmsMasterKeyId"] == retraining.outputs[outputs.DATA_KEY_ARN]
    assert queue["visibilityTimeoutSeconds"] >= 6 * TRIGGER_TIMEOUT_SECONDS
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": dead.outputs["arn"],
        "maxReceiveCount": MAX_RECEIVES,
    }
    # A FIFO queue's dead-letter queue is FIFO too.
    assert dead.inputs["name"].endswith(".fifo") and dead.inputs["fifoQueue"] is True
    mapping = retraining.named("mlops-digits-retraining-events")
    function = retraining.named("mlops-digits-retraining-trigger")
    assert (
        mapping.inputs["eventSourceArn"]
        == retraining.named("mlops-digits-retraining-queue").outputs["arn"]
    )
    assert mapping.inputs["functionName"] == function.outputs["arn"]
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda checks the role's SQS permissions when the mapping is created.
    access = retraining.named("mlops-digits-retraining-access")
    assert access.urn in mapping.depends_on
    topic = retraining.outputs[outputs.ALERT_TOPIC_ARN]
    depth = retraining.named("mlops-digits-retraining-dead-letters-alarm").inputs
    assert depth["dimensions"] == {"QueueName": dead.outputs["name"]}
    assert depth["alarmActions"] == [topic]
    errors = retraining.named("mlops-digits-retraining-errors").inputs
    assert (errors["namespace"], errors["metricName"]) == ("AWS/Lambda", "Errors")
    assert errors["dimensions"] == {"FunctionName": function.inputs["name"]}
    assert errors["alarmActions"] == [topic]


def test_the_trigger_knows_its_pipeline_and_cooldown(retraining: StackRecording) -> None:
    deployment = retraining.settings.models["digits"].deployment
    assert deployment is not None
    function = retraining.named("mlops-digits-retraining-trigger").inputs
    assert function["handler"] == TRIGGER_HANDLER
    assert function["environment"]["variables"] == {
        "MLOPS_TRAINING_PIPELINE_NAME": f"mlops-{retraining.stack}-digits-training",
        "MLOPS_RETRAIN_COOLDOWN_HOURS": str(deployment.retrain_cooldown_hours),
    }
    # No reserved concurrency: a new account's unreserved minimum would refuse it.
    assert "reservedConcurrentExecutions" not in function
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
    queue = retraining.named("mlops-digits-retraining-queue")
    consume = statements["ConsumeDriftEvents"]
    assert consume["Resource"] == queue.outputs["arn"]
    assert set(consume["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    decrypt = statements["DecryptDriftEventsThroughSqs"]
    assert decrypt["Resource"] == retraining.outputs[outputs.DATA_KEY_ARN]
    assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "sqs.*.amazonaws.com"}}


def test_eventbridge_may_encrypt_into_the_queue(retraining: StackRecording) -> None:
    """The queue's data key lets EventBridge in by the queue ARN in the encryption context."""
    key = json.loads(retraining.named("mlops-encryption-data-key").inputs["policy"])
    (events,) = [
        s for s in key["Statement"] if s["Sid"] == "EventBridgeDeliversToThisEnvironmentsQueues"
    ]
    pattern = events["Condition"]["ArnLike"]["kms:EncryptionContext:aws:sqs:arn"]
    region, account = retraining.settings.aws.region, retraining.settings.aws.account_id
    name = retraining.named("mlops-digits-retraining-queue").inputs["name"]
    assert fnmatch.fnmatchcase(f"arn:aws:sqs:{region}:{account}:{name}", pattern)
    for needed in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert any(fnmatch.fnmatchcase(needed, action) for action in events["Action"]), needed


def test_the_trigger_package_holds_everything_it_imports(retraining: StackRecording) -> None:
    code: dict[str, Any] = retraining.named("mlops-digits-retraining-trigger").inputs["code"]
    assert_package_holds_its_imports(code, TRIGGER_FILES, TRIGGER_HANDLER)


def test_serverless_endpoints_cannot_retrain_on_drift() -> None:
    config = stack_config("dev")
    config["mlops-platform:models"]["digits"]["deployment"]["retrain_on_drift"] = True
    with pytest.raises(SettingsError, match=r"deployment\.retrain_on_drift: needs an instance"):
        settings_from_config(config, source="stacks/Pulumi.dev.yaml")
