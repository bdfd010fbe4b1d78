"""Every environment variable the pipeline step code reads, typed, in one place.

Why one module: step code runs in three places (a laptop, the local runner, SageMaker
containers) and each passes settings through the environment. Naming every variable here, with
its type and default, keeps the contract reviewable in one screen and stops `os.environ.get`
calls with slightly different defaults from spreading through the steps. The style follows
MLflow's own `mlflow/environment_variables.py`.

The SageMaker variables are the training-container contract (set by SageMaker in training jobs);
their defaults are the paths SageMaker uses, so code that reads them works in a container even
where a variable is missing, and tests override them with `monkeypatch.setenv`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class EnvironmentVariable(Generic[T]):
    """One environment variable: its name, how to parse its text, and its default.

    An empty value counts as unset: container runtimes and pipeline definitions often pass
    `NAME=` for "no value", and treating that as a real (empty) tracking URI or path would only
    produce a confusing failure later.
    """

    def __init__(self, name: str, parse: Callable[[str], T], default: T) -> None:
        self.name = name
        self.parse = parse
        self.default = default

    def get_raw(self) -> str | None:
        """The text as set, or None when unset or empty."""
        value = os.environ.get(self.name)
        return value if value else None

    def is_set(self) -> bool:
        """Whether the variable holds a non-empty value."""
        return self.get_raw() is not None

    @property
    def defined(self) -> bool:
        """Whether the name is in the environment at all, even with an empty value (for the
        few variables where "set but empty" means something, like CUDA_VISIBLE_DEVICES)."""
        return self.name in os.environ

    def get(self) -> T:
        """The parsed value, or the default when unset (a mutable default is shared: copy it
        before changing it). A value that does not parse raises a ValueError naming the
        variable, so a typo fails at start-up with a clear message."""
        raw = self.get_raw()
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except (ValueError, TypeError) as error:
            raise ValueError(f"environment variable {self.name}={raw!r}: {error}") from error

    def __repr__(self) -> str:
        return f"EnvironmentVariable({self.name!r}, default={self.default!r})"


def _optional_str(text: str) -> str | None:
    return text


def _json_object(text: str) -> dict[str, Any]:
    """Parses a JSON object (SageMaker's SM_HPS holds the hyperparameters as one)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


# --- MLflow -------------------------------------------------------------------------------------

#: Where runs are logged. Unset means "do not track" (unit tests, quick local runs). A SageMaker
#: managed MLflow tracking server ARN works here when the `sagemaker-mlflow` plugin is installed.
MLFLOW_TRACKING_URI: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLFLOW_TRACKING_URI", _optional_str, None
)

#: The MLflow experiment every step logs into.
MLFLOW_EXPERIMENT_NAME: EnvironmentVariable[str] = EnvironmentVariable(
    "MLFLOW_EXPERIMENT_NAME", str, "mlops-platform"
)

# --- This platform ------------------------------------------------------------------------------

#: Groups the step runs of one pipeline execution under one MLflow parent run. The local runner
#: sets it; in SageMaker the step code reads the id from its job's name instead (see
#: `tracking.current_execution_id`), because a per-execution value in a step's environment
#: would be part of its cache key and no step would ever be reused.
MLOPS_PIPELINE_EXECUTION_ID: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_PIPELINE_EXECUTION_ID", _optional_str, None
)

#: Set by SageMaker in training containers; pipeline jobs are named
#: `pipelines-<execution id>-<step>-<suffix>`.
TRAINING_JOB_NAME: EnvironmentVariable[str | None] = EnvironmentVariable(
    "TRAINING_JOB_NAME", _optional_str, None
)

#: Where SageMaker describes a processing job to its container (its name among the rest).
MLOPS_PROCESSING_JOB_CONFIG: EnvironmentVariable[str] = EnvironmentVariable(
    "MLOPS_PROCESSING_JOB_CONFIG", str, "/opt/ml/config/processingjobconfig.json"
)

#: The feature group Preprocess ingests into (set by the pipeline in SageMaker). Unset: a local
#: run, and the records go to a Parquet file beside the splits.
MLOPS_FEATURE_GROUP_NAME: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_FEATURE_GROUP_NAME", _optional_str, None
)

#: The region of the feature group (the standard AWS variable).
AWS_DEFAULT_REGION: EnvironmentVariable[str | None] = EnvironmentVariable(
    "AWS_DEFAULT_REGION", _optional_str, None
)

#: The model this pipeline trains; tags the parent run.
MLOPS_MODEL_NAME: EnvironmentVariable[str] = EnvironmentVariable("MLOPS_MODEL_NAME", str, "digits")

#: The retrain trigger (a Lambda function, pipelines/steps/retrain_trigger.py): the training
#: pipeline Model Monitor violations start, and how long after its newest start it waits.
MLOPS_TRAINING_PIPELINE_NAME: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_TRAINING_PIPELINE_NAME", _optional_str, None
)
MLOPS_RETRAIN_COOLDOWN_HOURS: EnvironmentVariable[float] = EnvironmentVariable(
    "MLOPS_RETRAIN_COOLDOWN_HOURS", float, 24.0
)

# --- SageMaker training-container contract ------------------------------------------------------

#: Everything written here is packed into the training job's model.tar.gz.
SM_MODEL_DIR: EnvironmentVariable[Path] = EnvironmentVariable(
    "SM_MODEL_DIR", Path, Path("/opt/ml/model")
)

#: The `train` input channel.
SM_CHANNEL_TRAIN: EnvironmentVariable[Path] = EnvironmentVariable(
    "SM_CHANNEL_TRAIN", Path, Path("/opt/ml/input/data/train")
)

#: The `validation` input channel (early stopping watches it).
SM_CHANNEL_VALIDATION: EnvironmentVariable[Path] = EnvironmentVariable(
    "SM_CHANNEL_VALIDATION", Path, Path("/opt/ml/input/data/validation")
)

#: Non-model outputs of a training job (packed into output.tar.gz).
SM_OUTPUT_DATA_DIR: EnvironmentVariable[Path] = EnvironmentVariable(
    "SM_OUTPUT_DATA_DIR", Path, Path("/opt/ml/output/data")
)

#: Where SageMaker syncs checkpoints to and from S3 when the job has a CheckpointConfig; managed
#: spot training resumes from what it finds here after an interruption.
SM_CHECKPOINT_DIR: EnvironmentVariable[Path] = EnvironmentVariable(
    "SM_CHECKPOINT_DIR", Path, Path("/opt/ml/checkpoints")
)

#: The training job's hyperparameters as one JSON object (values are often strings).
SM_HPS: EnvironmentVariable[dict[str, Any]] = EnvironmentVariable("SM_HPS", _json_object, {})

# --- Accelerators -------------------------------------------------------------------------------

#: Read only to notice GPUs hidden on purpose (`CUDA_VISIBLE_DEVICES=-1`, or set but empty).
CUDA_VISIBLE_DEVICES: EnvironmentVariable[str | None] = EnvironmentVariable(
    "CUDA_VISIBLE_DEVICES", _optional_str, None
)

# --- Cluster-backed training (pipelines/steps/cluster_request.py is the contract) -----------------


def _json_list(text: str) -> list[Any]:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list, got {type(value).__name__}")
    return value


def _flag(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError("expected true or false")
    return text.lower() == "true"


#: The launcher Lambda: the cluster it creates jobs on (name, API endpoint, base64 CA).
MLOPS_CLUSTER_NAME: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_CLUSTER_NAME", _optional_str, None
)
MLOPS_CLUSTER_ENDPOINT: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_CLUSTER_ENDPOINT", _optional_str, None
)
MLOPS_CLUSTER_CA: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_CLUSTER_CA", _optional_str, None
)
#: {team: namespace} the launcher may create jobs in; a request for another team fails.
MLOPS_TEAM_NAMESPACES: EnvironmentVariable[dict[str, Any]] = EnvironmentVariable(
    "MLOPS_TEAM_NAMESPACES", _json_object, {}
)
#: {team: GPU quota}: a request for more GPUs than its team may hold at once fails at once.
MLOPS_TEAM_GPUS: EnvironmentVariable[dict[str, Any]] = EnvironmentVariable(
    "MLOPS_TEAM_GPUS", _json_object, {}
)
#: The GPUs the cluster's pools offer (accelerator labels); empty: not known (a shared
#: cluster), so any is tried.
MLOPS_GPU_ACCELERATORS: EnvironmentVariable[list[Any]] = EnvironmentVariable(
    "MLOPS_GPU_ACCELERATORS", _json_list, []
)
#: Whether the Kubeflow training operator runs there (multi-node requests become PyTorchJobs).
MLOPS_TRAINING_OPERATOR: EnvironmentVariable[bool] = EnvironmentVariable(
    "MLOPS_TRAINING_OPERATOR", _flag, False
)

#: The job's entrypoint (pipelines/steps/cluster_run.py): its callback token and where its
#: channels come from and its outputs go (S3 URIs under the team's prefix).
MLOPS_CALLBACK_TOKEN: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_CALLBACK_TOKEN", _optional_str, None
)
MLOPS_TRAIN_URI: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_TRAIN_URI", _optional_str, None
)
MLOPS_VALIDATION_URI: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_VALIDATION_URI", _optional_str, None
)
MLOPS_OUTPUT_URI: EnvironmentVariable[str | None] = EnvironmentVariable(
    "MLOPS_OUTPUT_URI", _optional_str, None
)

#: The pod's rank in a multi-node PyTorchJob (set by the training operator; 0 elsewhere).
RANK: EnvironmentVariable[int] = EnvironmentVariable("RANK", int, 0)
