"""The retrain trigger (pipelines/steps/retrain_trigger.py): a violation starts the training
pipeline unless it started within the cooldown; a repeated event starts nothing twice; a
batch from the FIFO queue starts at most one execution, and a record that fails is retried
with those after it.
SageMaker is played by botocore's Stubber, which checks each request against AWS's model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.steps import retrain_trigger
from pipelines.steps.retrain_trigger import handle_batch, retrain, violation_reason

PIPELINE = "mlops-prod-digits-training"
EXECUTION = "arn:aws:sagemaker:eu-west-1:333333333333:pipeline/x/execution/abc"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EVENT = {
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "SageMaker Processing Job State Change",
    "detail": {
        "ProcessingJobName": "model-monitoring-202611231100-abc",
        "ExitMessage": "CompletedWithViolations: Job completed successfully with 3 violations.",
    },
}


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _latest(stubber: Stubber, started: datetime | None) -> None:
    summaries = (
        [
            {
                "PipelineExecutionArn": EXECUTION,
                "StartTime": started,
                "PipelineExecutionStatus": "Succeeded",
            }
        ]
        if started
        else []
    )
    stubber.add_response(
        "list_pipeline_executions",
        {"PipelineExecutionSummaries": summaries},
        {
            "PipelineName": PIPELINE,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )


def _started(stubber: Stubber) -> None:
    stubber.add_response(
        "start_pipeline_execution",
        {"PipelineExecutionArn": EXECUTION},
        {
            "PipelineName": PIPELINE,
            "PipelineExecutionDisplayName": "drift-20261123-120000",
            "PipelineExecutionDescription": violation_reason(EVENT),
            "ClientRequestToken": EVENT["id"],
        },
    )


def _retrain(client: Any, hours: float = 24) -> Any:
    return retrain(
        client,
        pipeline=PIPELINE,
        cooldown=timedelta(hours=hours),
        event_id=EVENT["id"],
        reason=violation_reason(EVENT),
        now=NOW,
    )


def test_violations_start_the_training_pipeline(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    _latest(stubber, NOW - timedelta(hours=30))
    _started(stubber)
    decision = _retrain(client)
    assert decision.started and decision.execution_arn == EXECUTION
    assert "3 violations" in decision.reason


def test_a_pipeline_that_never_ran_starts(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    _latest(stubber, None)
    _started(stubber)
    assert _retrain(client).started


def test_within_the_cooldown_nothing_starts(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    _latest(stubber, NOW - timedelta(hours=2))
    decision = _retrain(client, hours=6)
    assert not decision.started
    assert decision.reason.endswith("cooldown ends in 4:00:00")


def _record(event: dict[str, Any] | str, message_id: str = "m-1") -> dict[str, Any]:
    """An SQS record as Lambda's event source mapping passes it."""
    body = event if isinstance(event, str) else json.dumps(event)
    return {"messageId": message_id, "body": body, "attributes": {"MessageGroupId": "drift"}}


def _batch(client: Any, *records: dict[str, Any]) -> Any:
    return handle_batch(
        client, list(records), pipeline=PIPELINE, cooldown=timedelta(hours=24), now=NOW
    )


def test_a_batch_starts_at_most_one_execution(sagemaker: tuple[Any, Stubber]) -> None:
    client, stubber = sagemaker
    _latest(stubber, NOW - timedelta(hours=30))
    _started(stubber)
    second = {**EVENT, "id": "another-event"}
    decisions, retry = _batch(client, _record(EVENT), _record(second, "m-2"))
    assert [d.started for d in decisions] == [True, False]
    assert decisions[1].reason == "an earlier event of this batch started it"
    assert retry == []


def test_a_failing_record_is_retried_with_the_ones_after_it(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stubber = sagemaker
    stubber.add_client_error("list_pipeline_executions", "ThrottlingException", "Rate exceeded")
    decisions, retry = _batch(client, _record(EVENT, "m-1"), _record(EVENT, "m-2"))
    assert decisions == []
    assert retry == ["m-1", "m-2"]


def test_a_message_that_is_no_event_is_retried_not_dropped(
    sagemaker: tuple[Any, Stubber],
) -> None:
    client, stubber = sagemaker
    _latest(stubber, NOW - timedelta(hours=2))
    decisions, retry = _batch(client, _record(EVENT, "m-1"), _record("[1, 2]", "m-2"))
    assert [d.started for d in decisions] == [False]
    assert retry == ["m-2"]


def test_the_handler_reads_its_configuration(
    sagemaker: tuple[Any, Stubber],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, stubber = sagemaker
    monkeypatch.setenv("MLOPS_TRAINING_PIPELINE_NAME", PIPELINE)
    monkeypatch.setenv("MLOPS_RETRAIN_COOLDOWN_HOURS", "12")
    monkeypatch.setattr("boto3.client", lambda service: client)
    monkeypatch.setattr(retrain_trigger, "datetime", _FrozenDatetime)
    _latest(stubber, NOW - timedelta(hours=1))
    result = retrain_trigger.handler({"Records": [_record(EVENT)]}, None)
    assert result == {"batchItemFailures": []}
    assert "retraining skipped" in caplog.text and "cooldown ends in 11:00:00" in caplog.text


def test_the_handler_reports_failures_to_the_event_source_mapping(
    sagemaker: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = sagemaker
    monkeypatch.setenv("MLOPS_TRAINING_PIPELINE_NAME", PIPELINE)
    monkeypatch.setattr("boto3.client", lambda service: client)
    stubber.add_client_error("list_pipeline_executions", "ThrottlingException", "Rate exceeded")
    result = retrain_trigger.handler({"Records": [_record(EVENT, "m-9")]}, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-9"}]}


def test_the_handler_needs_its_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_TRAINING_PIPELINE_NAME", raising=False)
    with pytest.raises(RuntimeError, match="MLOPS_TRAINING_PIPELINE_NAME is not set"):
        retrain_trigger.handler(EVENT, None)


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return NOW
