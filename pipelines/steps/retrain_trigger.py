"""Retrain trigger: the Lambda function that starts a model's training pipeline when Model
Monitor finds violations on its endpoint, at most once per cooldown.

EventBridge invokes it with the monitoring execution's "Processing Job State Change" event.
A flapping monitor (violations every hour) must not start a retraining storm, so it starts a
new execution only when the pipeline's newest execution began longer ago than the cooldown;
the event id is the request token, so EventBridge delivering the same event twice starts one
execution. Configured by environment variables (set by the MlPipelines component).
"""

from __future__ import annotations

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


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    import boto3  # type: ignore[import-untyped]  # in the Lambda runtime

    pipeline = MLOPS_TRAINING_PIPELINE_NAME.get()
    if pipeline is None:
        raise RuntimeError(f"{MLOPS_TRAINING_PIPELINE_NAME.name} is not set")
    decision = retrain(
        boto3.client("sagemaker"),
        pipeline=pipeline,
        cooldown=timedelta(hours=MLOPS_RETRAIN_COOLDOWN_HOURS.get()),
        event_id=str(event.get("id", "")) or datetime.now(UTC).isoformat(),
        reason=violation_reason(event),
        now=datetime.now(UTC),
    )
    logger.warning(
        "retraining %s: %s", "started" if decision.started else "skipped", decision.reason
    )
    return {
        "started": decision.started,
        "reason": decision.reason,
        "execution": decision.execution_arn,
    }
