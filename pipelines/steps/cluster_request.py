"""The contract of a cluster-backed Train step, written down once.

Three parties share it: the pipeline definition (a SageMaker CallbackStep whose `inputs` are
the ARGUMENTS below, pipelines/training.py), the launcher Lambda that turns the callback
message into a Kubernetes Job (pipelines/steps/launcher.py), and the job's entrypoint that
runs train.py and reports back (pipelines/steps/cluster_run.py).

The message. SageMaker sends one SQS message per step execution:

    {"token": "<10 chars>", "pipelineExecutionArn": "arn:...:pipeline/<name>/execution/<id>",
     "status": "Executing", "arguments": {<ARGUMENTS, every value a string>}}

The outputs. The step completes with SendPipelineExecutionStepSuccess carrying the OUTPUTS
(`ModelArtifacts`: the S3 URI of model.tar.gz, what Evaluate and Register read in place of a
training job's `ModelArtifacts.S3ModelArtifacts`; `Metrics`: the S3 URI of the metrics.json
train.py wrote, which a SageMaker job only keeps inside output.tar.gz), or with
SendPipelineExecutionStepFailure and a reason people can act on.

The container. The same image and train.py as a SageMaker training job, with the same
layout: channels in /opt/ml/input/data/{train,validation}, the model written to
/opt/ml/model (packed into model.tar.gz), other outputs to /opt/ml/output/data,
hyperparameters as `--name value` arguments, MLflow from MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME (MLOPS_PIPELINE_EXECUTION_ID groups the run under its execution).
Only the staging differs, and it is done with the team's pod identity, under the team's
prefix of the artifact buckets:

1. the launcher copies the step code (`codeUri`) to `<outputUri>code/`;
2. the pod's init container runs stage_code.py (`python -c <its source> <uri> <dir>`) to put
   it in /opt/ml/code/pipelines; the main container has PYTHONPATH=/opt/ml/code;
3. the main container runs `python -m pipelines.steps.cluster_run --name value ...`, which
   downloads the channels, runs train.py, uploads `<outputUri>model.tar.gz` and
   `<outputUri>metrics.json`, and reports (environment: MLOPS_CALLBACK_TOKEN,
   MLOPS_TRAIN_URI, MLOPS_VALIDATION_URI, MLOPS_OUTPUT_URI, AWS_DEFAULT_REGION).

Failures. A request the launcher cannot start fails the step at once with the reason. A
job that fails reports its own failure (cluster_run.py's exit codes tell the Job's
podFailurePolicy not to run it again); a pod killed outright (deadline, OOM, lost node, a
failed init container) reports nothing, and the launcher's sweep fails the step within
minutes. Checkpoints are not synced to S3 on the cluster: a pod the Job replaces starts
training again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# The CallbackStep's inputs: these keys, each a string (or a pipeline variable rendering one).
MODEL, TEAM, IMAGE = "model", "team", "image"
GPUS_PER_NODE, NODES, ACCELERATOR, CPU, MEMORY = (
    "gpusPerNode",
    "nodes",
    "accelerator",
    "cpu",
    "memory",
)
TRAIN_URI, VALIDATION_URI, CODE_URI, OUTPUT_URI = (
    "trainUri",
    "validationUri",
    "codeUri",
    "outputUri",
)
HYPERPARAMETERS, MAX_RUNTIME_SECONDS = "hyperparameters", "maxRuntimeSeconds"
MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME = "mlflowTrackingUri", "mlflowExperimentName"
ARGUMENTS = (
    MODEL,
    TEAM,
    IMAGE,
    GPUS_PER_NODE,
    NODES,
    ACCELERATOR,
    CPU,
    MEMORY,
    TRAIN_URI,
    VALIDATION_URI,
    CODE_URI,
    OUTPUT_URI,
    HYPERPARAMETERS,
    MAX_RUNTIME_SECONDS,
    MLFLOW_TRACKING_URI,
    MLFLOW_EXPERIMENT_NAME,
)

# SQS delivers a request this often before the dead-letter queue takes it; the launcher's
# last attempt fails the step instead, so it does not wait for nothing.
MAX_RECEIVES = 5

# The step's output parameters.
MODEL_ARTIFACTS, METRICS = "ModelArtifacts", "Metrics"
OUTPUTS = (MODEL_ARTIFACTS, METRICS)
MODEL_ARCHIVE, METRICS_FILE = "model.tar.gz", "metrics.json"

_TOKEN = re.compile(r"[A-Za-z0-9]{10}")
_EXECUTION = re.compile(
    r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:pipeline/[^/]+/execution/(\w+)"
)
_QUANTITY = re.compile(r"\d+(\.\d+)?(m|Ki|Mi|Gi|Ti)?")


class RequestError(ValueError):
    """A message the launcher cannot act on; the text is the step's failure reason."""


@dataclass(frozen=True)
class TrainingRequest:
    token: str
    execution_arn: str
    model: str
    team: str
    image: str
    gpus_per_node: int
    nodes: int
    accelerator: str | None
    cpu: str
    memory: str
    train_uri: str
    validation_uri: str
    code_uri: str
    output_uri: str
    hyperparameters: dict[str, str]
    max_runtime_seconds: int
    mlflow_tracking_uri: str
    mlflow_experiment_name: str

    @property
    def execution_id(self) -> str:
        match = _EXECUTION.fullmatch(self.execution_arn)
        assert match is not None  # checked in parse_message
        return match.group(1)

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    @property
    def model_artifacts_uri(self) -> str:
        return model_artifacts_uri(self.output_uri)


def parse_token(body: str) -> str | None:
    """The callback token of a message, if it has a well-formed one (to fail the step even
    when the rest of the message is unusable)."""
    try:
        token = json.loads(body).get("token")
    except (ValueError, AttributeError):
        return None
    return token if isinstance(token, str) and _TOKEN.fullmatch(token) else None


def parse_message(body: str) -> TrainingRequest:
    """The request in one SQS message body; RequestError names what is wrong."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise RequestError(f"the message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RequestError("the message is not a JSON object")
    token = message.get("token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise RequestError("the message has no callback token")
    execution_arn = message.get("pipelineExecutionArn")
    if not isinstance(execution_arn, str) or not _EXECUTION.fullmatch(execution_arn):
        raise RequestError("the message has no pipelineExecutionArn")
    arguments = message.get("arguments")
    if not isinstance(arguments, dict):
        raise RequestError("the message has no arguments")
    missing = [key for key in ARGUMENTS if key not in arguments]
    if missing:
        raise RequestError(f"the request lacks {', '.join(missing)}")
    text = {key: str(arguments[key]) for key in ARGUMENTS}
    for key in (TRAIN_URI, VALIDATION_URI, CODE_URI, OUTPUT_URI):
        if not text[key].startswith("s3://"):
            raise RequestError(f"{key} {text[key]!r} is not an S3 URI")
    for key in (CODE_URI, OUTPUT_URI):
        if not text[key].endswith("/"):
            raise RequestError(f"{key} {text[key]!r} must be a prefix ending in '/'")
    for key in (CPU, MEMORY):
        if not _QUANTITY.fullmatch(text[key]):
            raise RequestError(f"{key} {text[key]!r} is not a Kubernetes quantity")
    return TrainingRequest(
        token=token,
        execution_arn=execution_arn,
        model=text[MODEL],
        team=text[TEAM],
        image=text[IMAGE],
        gpus_per_node=_count(text, GPUS_PER_NODE),
        nodes=_count(text, NODES),
        accelerator=text[ACCELERATOR] or None,
        cpu=text[CPU],
        memory=text[MEMORY],
        train_uri=text[TRAIN_URI],
        validation_uri=text[VALIDATION_URI],
        code_uri=text[CODE_URI],
        output_uri=text[OUTPUT_URI],
        hyperparameters=_hyperparameters(text[HYPERPARAMETERS]),
        max_runtime_seconds=_count(text, MAX_RUNTIME_SECONDS),
        mlflow_tracking_uri=text[MLFLOW_TRACKING_URI],
        mlflow_experiment_name=text[MLFLOW_EXPERIMENT_NAME],
    )


def _count(arguments: dict[str, str], key: str) -> int:
    try:
        value = int(float(arguments[key]))
    except ValueError:
        raise RequestError(f"{key} {arguments[key]!r} is not a number") from None
    if value < 1:
        raise RequestError(f"{key} must be at least 1 (got {value})")
    return value


def _hyperparameters(text: str) -> dict[str, str]:
    try:
        value: Any = json.loads(text)
    except ValueError:
        raise RequestError(f"{HYPERPARAMETERS} is not a JSON object: {text[:100]!r}") from None
    if not isinstance(value, dict):
        raise RequestError(f"{HYPERPARAMETERS} is not a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def model_artifacts_uri(output_uri: str) -> str:
    return output_uri + MODEL_ARCHIVE


def metrics_uri(output_uri: str) -> str:
    return output_uri + METRICS_FILE


def success_parameters(output_uri: str) -> list[dict[str, str]]:
    """SendPipelineExecutionStepSuccess's OutputParameters for a request's `outputUri`."""
    return [
        {"Name": MODEL_ARTIFACTS, "Value": model_artifacts_uri(output_uri)},
        {"Name": METRICS, "Value": metrics_uri(output_uri)},
    ]


FAILURE_REASON_LIMIT = 256  # SendPipelineExecutionStepFailure's FailureReason


def failure_reason(text: str) -> str:
    """A reason within the API's limit, its start kept (where the cause is named)."""
    text = " ".join(text.split())
    if len(text) <= FAILURE_REASON_LIMIT:
        return text
    return text[: FAILURE_REASON_LIMIT - 3] + "..."
