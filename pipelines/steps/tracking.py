"""MLflow helpers shared by the steps: one nested run per step, under one parent run per
pipeline execution.

Why nested runs: a SageMaker pipeline runs each step in its own container, so no MLflow run
survives from one step to the next. Each step therefore finds (or creates) the parent run that
carries the execution id as a tag, and opens its own run beneath it; in the MLflow UI an
execution then reads as one row with Preprocess, Train and Evaluate under it.

Tracking is opt-in: with MLFLOW_TRACKING_URI unset, `step_run` does nothing at all (no local
`mlruns/` directory appears), so unit tests and quick local runs need no server. In SageMaker,
MLFLOW_TRACKING_URI may be the ARN of a SageMaker managed MLflow tracking server: MLflow accepts
that as a URI when the `sagemaker-mlflow` plugin is installed (it is in the step image), and the
plugin signs requests with the job's IAM role.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow import ActiveRun
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.environment_variables import (
    MLFLOW_EXPERIMENT_NAME,
    MLFLOW_TRACKING_URI,
    MLOPS_MODEL_NAME,
    MLOPS_PIPELINE_EXECUTION_ID,
    MLOPS_PROCESSING_JOB_CONFIG,
    TRAINING_JOB_NAME,
)

logger = logging.getLogger(__name__)

#: Tag on the parent run: the pipeline execution it stands for.
EXECUTION_TAG = "mlops.pipeline_execution_id"
#: Tag on the parent run: the model the pipeline trains.
MODEL_TAG = "mlops.model_name"
#: Tag on each step run: the step's name.
STEP_TAG = "mlops.step"


def _ensure_experiment(name: str) -> str:
    """Sets (creating if needed) the experiment and returns its id. Two steps creating the same
    experiment at once: the loser's create fails with "already exists", and a second call then
    finds the winner's experiment."""
    try:
        return mlflow.set_experiment(name).experiment_id
    except MlflowException:
        return mlflow.set_experiment(name).experiment_id


def _parent_runs(client: MlflowClient, experiment_id: str, execution_id: str) -> list[Run]:
    """The live parent runs tagged with this execution id, oldest first (ties by run id, so
    every caller orders them the same way)."""
    if "'" in execution_id or "\\" in execution_id:
        # Ids come from SageMaker (letters and digits) or the local runner; a quote would
        # break out of the filter's string literal.
        raise ValueError(
            f"pipeline execution id {execution_id!r} must not contain quotes or backslashes"
        )
    runs = client.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{EXECUTION_TAG}` = '{execution_id}'",
        max_results=100,
    )
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def find_or_create_parent_run(client: MlflowClient, experiment_id: str, execution_id: str) -> str:
    """The id of the parent run for `execution_id`, creating it on first use.

    MLflow has no atomic "create if absent", so two steps starting at the same moment could each
    create a parent. To converge, a step that created one searches again and adopts the OLDEST
    parent; if that is not its own, it deletes its own. Every caller orders candidates the same
    way, so all steps that see both candidates pick the same one. The remaining window: two
    parents created within the same millisecond (or on hosts with skewed clocks) where the
    earlier-searching step sees only its own; then the execution's steps split over two parents
    that carry the same tag, so a search by the tag still finds all of them. In practice the
    steps of one execution start minutes apart (each is a separate job), so the window is not
    hit; only parallel branches of a pipeline could come close.
    """
    existing = _parent_runs(client, experiment_id, execution_id)
    if existing:
        return str(existing[0].info.run_id)
    created = client.create_run(
        experiment_id,
        run_name=execution_id,
        tags={EXECUTION_TAG: execution_id, MODEL_TAG: MLOPS_MODEL_NAME.get()},
    )
    own_id = str(created.info.run_id)
    winner = str(_parent_runs(client, experiment_id, execution_id)[0].info.run_id)
    if winner != own_id:
        logger.info("parent run for %s already created by another step; using it", execution_id)
        client.delete_run(own_id)
    return winner


# SageMaker names the jobs of a pipeline execution `pipelines-<execution id>-<step>-<suffix>`.
PIPELINE_JOB_NAME = re.compile(r"^pipelines-([a-z0-9]+)-")


def _processing_job_name() -> str | None:
    try:
        config = json.loads(Path(MLOPS_PROCESSING_JOB_CONFIG.get()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = config.get("ProcessingJobName") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def current_execution_id() -> str | None:
    """The pipeline execution this step belongs to: MLOPS_PIPELINE_EXECUTION_ID where set (the
    local runner), else read from the SageMaker job's name, else None (a standalone run)."""
    explicit = MLOPS_PIPELINE_EXECUTION_ID.get()
    if explicit:
        return explicit
    match = PIPELINE_JOB_NAME.match(TRAINING_JOB_NAME.get() or _processing_job_name() or "")
    return match.group(1) if match else None


def _log_params(params: Mapping[str, Any]) -> None:
    """Logs params; values are stringified by MLflow (and long lists truncated by it)."""
    if params:
        mlflow.log_params(dict(params))


@contextmanager
def step_run(step: str, params: Mapping[str, Any] | None = None) -> Iterator[ActiveRun | None]:
    """Runs the body inside an MLflow run for `step`, or yields None when tracking is off.

    Within a pipeline execution (`current_execution_id`), the step's run is nested under the
    execution's parent run (found or created, see `find_or_create_parent_run`); without one
    the step's run stands alone. The run ends FAILED if the body raises, FINISHED otherwise,
    and the parent takes the same status with this step's end time, so a finished execution
    does not look "running" forever in the UI (a later step sets it again).
    """
    tracking_uri = MLFLOW_TRACKING_URI.get()
    if tracking_uri is None:
        yield None
        return
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = _ensure_experiment(MLFLOW_EXPERIMENT_NAME.get())
    client = MlflowClient()
    execution_id = current_execution_id()
    parent_id = (
        find_or_create_parent_run(client, experiment_id, execution_id) if execution_id else None
    )
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=step,
            parent_run_id=parent_id,
            tags={STEP_TAG: step, MODEL_TAG: MLOPS_MODEL_NAME.get()},
        ) as active:
            _log_params(params or {})
            yield active
        status = RunStatus.to_string(RunStatus.FINISHED)
    finally:
        if parent_id is not None:
            client.set_terminated(parent_id, status=status)
