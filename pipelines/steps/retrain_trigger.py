"""Retrain trigger: the Lambda function that starts a model's training pipeline when Model
Monitor finds violations on its endpoint, at most once per cooldown.

The drift rule puts the monitoring execution's "Processing Job State Change" event on a FIFO
queue with one message group, and the queue's event source mapping hands it here: Lambda
processes one message group one batch at a time, so two violations never pass the cooldown
check together (what reserved concurrency of 1 did, without taking from the account's
unreserved concurrency, which a new account may not have). A flapping monitor (violations
every hour) must not start a retraining storm, so it starts a new execution only when the
pipeline's newest execution began longer ago than the cooldown, and at most one per batch;
the event id is the request token, so the same event delivered twice starts one execution.
A record that fails is reported with the records after it (FIFO order), retried, and after
the queue's receive limit lands in the dead-letter queue, which alarms. Configured by
environment variables (set by the DriftRetraining component).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pipelines.environment_variables import (
    MLOPS_RETRAIN_COOLDOWN_HOURS,
    MLOPS_TRAINING_PIPELINE_NAME,
)

logger = logging.getLogger(__name__)


class PipelinesClient(Protocol):
    def list_pipeline_executions(self, **kwargs: Any) -> dict[str, Any]: ...

    def start_pipeline_execution(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Decision:
    started: bool
    reason: str
    execution_arn: str | None = None


def latest_start(sagemaker: PipelinesClient, pipeline: str) -> datetime | None:
    page = sagemaker.list_pipeline_executions(
        PipelineName=pipeline, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
    )
    summaries = page.get("PipelineExecutionSummaries", [])
    return summaries[0]["StartTime"] if summaries else None


def retrain(
    sagemaker: PipelinesClient,
    *,
    pipeline: str,
    cooldown: timedelta,
    event_id: str,
    reason: str,
    now: datetime,
) -> Decision:
    """Start `pipeline` unless its newest execution started within `cooldown` of `now`."""
    last = latest_start(sagemaker, pipeline)
    if last is not None and now - last < cooldown:
        wait = cooldown - (now - last)
        return Decision(
            False,
            f"{pipeline} last started at {last.isoformat()}; cooldown ends in {wait}",
        )
    response = sagemaker.start_pipeline_execution(
        PipelineName=pipeline,
        PipelineExecutionDisplayName=f"drift-{now:%Y%m%d-%H%M%S}",
        PipelineExecutionDescription=reason[:3072],
        ClientRequestToken=event_id[:128],
    )
    return Decision(True, reason, response["PipelineExecutionArn"])


def violation_reason(event: dict[str, Any]) -> str:
    detail = event.get("detail", {})
    job = detail.get("ProcessingJobName", "a monitoring execution")
    message = detail.get("ExitMessage", "CompletedWithViolations")
    return f"Model Monitor found violations ({job}: {message})"


def _event_of(record: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(record["body"])
    if not isinstance(event, dict):
        raise ValueError(f"message {record.get('messageId')} is not an EventBridge event")
    return event


def handle_batch(
    sagemaker: PipelinesClient,
    records: list[dict[str, Any]],
    *,
    pipeline: str,
    cooldown: timedelta,
    now: datetime,
) -> tuple[list[Decision], list[str]]:
    """The decision per record, and the ids of the records to retry: the first that failed
    and every one after it (a FIFO group's order holds)."""
    decisions: list[Decision] = []
    for index, record in enumerate(records):
        try:
            if any(d.started for d in decisions):
                decisions.append(Decision(False, "an earlier event of this batch started it"))
                continue
            event = _event_of(record)
            decisions.append(
                retrain(
                    sagemaker,
                    pipeline=pipeline,
                    cooldown=cooldown,
                    event_id=str(event.get("id") or record["messageId"]),
                    reason=violation_reason(event),
                    now=now,
                )
            )
        except Exception:
            logger.exception("retraining event %s failed; retried", record.get("messageId"))
            return decisions, [str(r.get("messageId")) for r in records[index:]]
    return decisions, []


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    import boto3  # type: ignore[import-untyped]  # in the Lambda runtime

    pipeline = MLOPS_TRAINING_PIPELINE_NAME.get()
    if pipeline is None:
        raise RuntimeError(f"{MLOPS_TRAINING_PIPELINE_NAME.name} is not set")
    decisions, retry = handle_batch(
        boto3.client("sagemaker"),
        list(event.get("Records") or []),
        pipeline=pipeline,
        cooldown=timedelta(hours=MLOPS_RETRAIN_COOLDOWN_HOURS.get()),
        now=datetime.now(UTC),
    )
    for decision in decisions:
        logger.warning(
            "retraining %s: %s", "started" if decision.started else "skipped", decision.reason
        )
    # The event source mapping reports these messages as failed (ReportBatchItemFailures).
    return {"batchItemFailures": [{"itemIdentifier": message} for message in retry]}
