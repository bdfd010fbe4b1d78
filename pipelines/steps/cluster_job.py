"""The Kubernetes object a cluster-backed Train step runs as (pure data).

`job_manifest(request, namespace, operator, region=...)` turns one TrainingRequest (the
contract: pipelines/steps/cluster_request.py) into the manifest the launcher Lambda
(pipelines/steps/launcher.py) creates in the team's namespace:

- one node: a batch/v1 Job with one pod;
- several nodes, where the Kubeflow training operator runs: a kubeflow.org/v1 PyTorchJob, one
  Master and `nodes - 1` Workers, each pod the same as the Job's (the operator sets RANK,
  WORLD_SIZE, MASTER_ADDR and MASTER_PORT; only rank 0 should report to SageMaker).

The pod: an init container `stage` copies the step code (the launcher's copy of it under the
run's output prefix, which the team's pod identity may read) into /opt/ml/code/pipelines with
the source of pipelines/steps/stage_code.py (`python -c`: the package is not on disk yet); the
`train` container runs `python -m pipelines.steps.cluster_run` with the hyperparameters as
`--name value` arguments, and reports the outcome with the callback token. A pod that dies
without reporting (OOM, node lost, the deadline) is reported by the launcher's sweep, which
finds the Job by its labels and the token in its annotations.

The tests validate both kinds against the cluster version's schema and scan them with checkov;
CHECKOV_ACCEPTED holds the findings accepted, with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

from pipelines.environment_variables import (
    AWS_DEFAULT_REGION,
    MLFLOW_EXPERIMENT_NAME,
    MLFLOW_TRACKING_URI,
    MLOPS_CALLBACK_TOKEN,
    MLOPS_MODEL_NAME,
    MLOPS_OUTPUT_URI,
    MLOPS_PIPELINE_EXECUTION_ID,
    MLOPS_TRAIN_URI,
    MLOPS_VALIDATION_URI,
    SM_CHANNEL_TRAIN,
    SM_CHANNEL_VALIDATION,
    SM_CHECKPOINT_DIR,
    SM_MODEL_DIR,
    SM_OUTPUT_DATA_DIR,
)
from pipelines.steps.cluster_request import TrainingRequest
from pipelines.steps.cluster_run import EXIT_NO_TOKEN, EXIT_NOT_WAITING, EXIT_REPORTED_FAILURE

Manifest = dict[str, Any]

# The same values as components/team_manifests.py and stacks/cluster_settings.py (the tests
# check that): the Lambda's package holds `pipelines/` only, so they are repeated here.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
TRAINING_SERVICE_ACCOUNT = "training"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"

# How the launcher finds its jobs again (labels) and what its sweep needs (annotations).
MANAGED_BY = {"app.kubernetes.io/managed-by": "mlops-launcher"}
MODEL_LABEL = "mlops.platform/model"
TEAM_LABEL = "mlops.platform/team"
EXECUTION_LABEL = "mlops.platform/execution"
CALLBACK_LABEL = "mlops.platform/callback"
CALLBACK_SELECTOR = f"{CALLBACK_LABEL}=true"
TOKEN_ANNOTATION = "mlops.platform/callback-token"  # noqa: S105 - a key, not a secret
EXECUTION_ARN_ANNOTATION = "mlops.platform/pipeline-execution-arn"
REPORTED_ANNOTATION = "mlops.platform/reported"

JOB_API, JOB_KIND = "batch/v1", "Job"
PYTORCH_JOB_API, PYTORCH_JOB_KIND = "kubeflow.org/v1", "PyTorchJob"

# A Job's name must be a DNS label (<= 63). The operator names a PyTorchJob's pods and
# services `<name>-master-0` and `<name>-worker-<n>` (DNS labels too), so 11 characters are
# left for that suffix. The same limit for both kinds keeps the names alike.
MAX_JOB_NAME = 52
TOKEN_DIGEST_LENGTH = 8
MAX_LABEL_VALUE = 63

# A retried pod runs train.py again on the GPUs, so retries are few, and only where they can
# help: staging the code failed (S3 hiccup), the report could not be sent (cluster_run exits
# 12), or the container died without an exit of its own (crash, OOM). A pod evicted or
# preempted (spot reclaim, node drain, scale-down) is replaced without counting (the
# podFailurePolicy below); one that reported, or had nothing to report to, fails the Job at once.
BACKOFF_LIMIT = 1
# cluster_run.py's exit codes after which another try cannot help: no callback token, a
# failure it reported, SageMaker no longer waiting for the token.
FINAL_EXIT_CODES = (EXIT_NO_TOKEN, EXIT_REPORTED_FAILURE, EXIT_NOT_WAITING)
# Finished jobs stay a day (`kubectl get jobs`, pod logs), then Kubernetes deletes them; the
# sweep, every few minutes, has long reported a failed one by then.
TTL_SECONDS_AFTER_FINISHED = 86_400

# The pod's layout: /opt/ml as SageMaker's (channels, model, output, code), writable scratch in
# /tmp; everything else read-only.
ML_ROOT = "/opt/ml"
CODE_ROOT = f"{ML_ROOT}/code"
CODE_PACKAGE_DIR = f"{CODE_ROOT}/pipelines"
TMP = "/tmp"  # noqa: S108 - an emptyDir mounted there, not the image's /tmp
SHM = "/dev/shm"  # noqa: S108 - a memory-backed emptyDir mounted there
TMP_SIZE_LIMIT = "20Gi"
# A high UID and GID no host user has; the step image runs as any user (its venv is readable
# by all, HOME points at /tmp).
RUN_AS = 10001
# The init container only copies a few hundred KB of code.
STAGE_RESOURCES = {"cpu": "500m", "memory": "1Gi"}

STAGE_CONTAINER, TRAIN_CONTAINER = "stage", "train"
# The training operator finds the container to configure by this name.
PYTORCH_CONTAINER = "pytorch"
ENTRYPOINT = ["python", "-m", "pipelines.steps.cluster_run"]

# checkov findings on these manifests that are accepted (SECURITY.md A7), check id -> why;
# tests/pipelines/test_cluster_job.py skips exactly these.
CHECKOV_ACCEPTED: dict[str, str] = {
    "CKV_K8S_43": (
        "image by tag, not digest: the image comes from the stack file's tag for the step image "
        "(the pipeline definition carries it); the stack's ECR repositories have immutable "
        "tags, so the tag names one image for good"
    ),
    "CKV_K8S_15": (
        "imagePullPolicy IfNotPresent, not Always: tags are immutable, so a cached image is the "
        "one named; a GPU node reuses the multi-GB CUDA image its last job pulled, and on EKS "
        "the kubelet pulls with the node's role, so Always would check no right of the pod's"
    ),
}

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def _dns_label(text: str) -> str:
    """`text` lower-cased, runs of anything but letters, digits and '-' turned into one '-'."""
    return _NOT_DNS.sub("-", text.lower()).strip("-")


def label_value(text: str) -> str:
    """`text` as a valid label value: <= 63 characters of letters, digits, '-', '_' and '.',
    starting and ending with a letter or digit."""
    value = _NOT_LABEL.sub("-", text)[:MAX_LABEL_VALUE]
    return value.strip("-_.")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:TOKEN_DIGEST_LENGTH]


def job_name(request: TrainingRequest) -> str:
    """`<model>-<execution id>-<digest of the callback token>`, a DNS label of at most
    MAX_JOB_NAME characters that starts with a letter.

    The same message always gives the same name, so a redelivered message finds its Job
    already there (409) instead of starting a second one. The token's digest tells apart two
    tries of the Train step in one execution (RetryPipelineExecution sends a new message with a
    new token), which model and execution alone would not; a digest because the token itself
    completes the step and names are printed everywhere.
    """
    suffix = "-" + token_digest(request.token)
    base = f"{_dns_label(request.model)}-{_dns_label(request.execution_id)}".strip("-")
    if not base[:1].isalpha():
        base = f"job-{base}".rstrip("-")
    return base[: MAX_JOB_NAME - len(suffix)].rstrip("-") + suffix


@functools.cache
def stage_code_source() -> str:
    """The text of pipelines/steps/stage_code.py, which the init container runs with
    `python -c` (it is self-contained: the standard library and boto3). Read once per
    Lambda environment, not per message."""
    return Path(__file__).with_name("stage_code.py").read_text(encoding="utf-8")


def code_copy_uri(request: TrainingRequest) -> str:
    """Where the launcher copies the step code: under the run's output prefix, which the
    team's pod identity may read (the code prefix itself it may not)."""
    return request.output_uri + "code/"


def labels(request: TrainingRequest) -> dict[str, str]:
    return {
        **MANAGED_BY,
        MODEL_LABEL: label_value(request.model),
        TEAM_LABEL: label_value(request.team),
        EXECUTION_LABEL: label_value(request.execution_id),
    }


def _metadata(request: TrainingRequest, namespace: str) -> dict[str, Any]:
    return {
        "name": job_name(request),
        "namespace": namespace,
        "labels": {**labels(request), CALLBACK_LABEL: "true"},
        "annotations": {
            TOKEN_ANNOTATION: request.token,
            EXECUTION_ARN_ANNOTATION: request.execution_arn,
        },
    }


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def _hardened() -> dict[str, Any]:
    """A container's securityContext: Pod Security `restricted`, and a read-only image."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _region_env(region: str) -> dict[str, str]:
    # Both names: botocore reads AWS_DEFAULT_REGION, other SDKs and tools AWS_REGION.
    return {AWS_DEFAULT_REGION.name: region, "AWS_REGION": region, "HOME": TMP}


def _stage_container(request: TrainingRequest, region: str) -> dict[str, Any]:
    return {
        "name": STAGE_CONTAINER,
        "image": request.image,
        "imagePullPolicy": "IfNotPresent",
        # argv after the source: sys.argv[1:] under `python -c` (stage_code.main's arguments).
        "command": ["python", "-c", stage_code_source(), code_copy_uri(request), CODE_PACKAGE_DIR],
        "env": _env(_region_env(region)),
        "resources": {"requests": dict(STAGE_RESOURCES), "limits": dict(STAGE_RESOURCES)},
        "securityContext": _hardened(),
        "volumeMounts": [
            {"name": "ml", "mountPath": ML_ROOT},
            {"name": "tmp", "mountPath": TMP},
        ],
    }


def _train_container(request: TrainingRequest, region: str, name: str) -> dict[str, Any]:
    arguments = [
        part for key, value in request.hyperparameters.items() for part in (f"--{key}", value)
    ]
    env = {
        MLOPS_CALLBACK_TOKEN.name: request.token,
        MLOPS_TRAIN_URI.name: request.train_uri,
        MLOPS_VALIDATION_URI.name: request.validation_uri,
        MLOPS_OUTPUT_URI.name: request.output_uri,
        MLFLOW_TRACKING_URI.name: request.mlflow_tracking_uri,
        MLFLOW_EXPERIMENT_NAME.name: request.mlflow_experiment_name,
        MLOPS_MODEL_NAME.name: request.model,
        # Groups this run under the execution's parent run in MLflow, as the other steps'.
        MLOPS_PIPELINE_EXECUTION_ID.name: request.execution_id,
        # SageMaker's container layout, inside the /opt/ml volume.
        SM_CHANNEL_TRAIN.name: str(SM_CHANNEL_TRAIN.default),
        SM_CHANNEL_VALIDATION.name: str(SM_CHANNEL_VALIDATION.default),
        SM_MODEL_DIR.name: str(SM_MODEL_DIR.default),
        SM_OUTPUT_DATA_DIR.name: str(SM_OUTPUT_DATA_DIR.default),
        SM_CHECKPOINT_DIR.name: str(SM_CHECKPOINT_DIR.default),
        "PYTHONPATH": CODE_ROOT,
        **_region_env(region),
    }
    if not request.mlflow_tracking_uri:
        del env[MLFLOW_TRACKING_URI.name]  # empty means "do not track"; unset says so plainly
    gpus = str(request.gpus_per_node)
    return {
        "name": name,
        "image": request.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(ENTRYPOINT),
        "args": arguments,
        "env": _env(env),
        "resources": {
            # GPUs: extended resources take requests equal to limits. CPU and memory limits
            # equal to the requests: the node reserves what the job may use (Guaranteed QoS,
            # last to be evicted under memory pressure).
            "requests": {"cpu": request.cpu, "memory": request.memory, GPU_RESOURCE: gpus},
            "limits": {"cpu": request.cpu, "memory": request.memory, GPU_RESOURCE: gpus},
        },
        "securityContext": _hardened(),
        "volumeMounts": [
            {"name": "ml", "mountPath": ML_ROOT},
            {"name": "tmp", "mountPath": TMP},
            {"name": "shm", "mountPath": SHM},
        ],
    }


def pod_template(
    request: TrainingRequest, region: str, container: str = TRAIN_CONTAINER
) -> dict[str, Any]:
    """The pod every node of the job runs (a PodTemplateSpec)."""
    spec: dict[str, Any] = {
        "serviceAccountName": TRAINING_SERVICE_ACCOUNT,
        # No Kubernetes API token in the pod: the job never calls the API. EKS Pod Identity
        # does not need it: its webhook adds its own projected token (audience
        # pods.eks.amazonaws.com) and the AWS_CONTAINER_* variables whatever this says, and
        # the team's service account sets the same (components/team_manifests.py).
        "automountServiceAccountToken": False,
        # No variables for every service in the namespace.
        "enableServiceLinks": False,
        # A failed pod is replaced by the Job (counted by backoffLimit), never restarted in
        # place: a restart would run train.py again outside the Job's accounting.
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,  # the emptyDir volumes are writable by this group
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # GPU nodes are tainted so that only GPU jobs land there.
        "tolerations": [dict(GPU_TOLERATION)],
        "initContainers": [_stage_container(request, region)],
        "containers": [_train_container(request, region, container)],
        "volumes": [
            # Channels, model, outputs and code: as large as the data (the node's disk).
            {"name": "ml", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
            # Shared memory for data loaders and NCCL (a container's own /dev/shm is 64 MB);
            # it counts against the container's memory limit.
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": request.memory}},
        ],
    }
    if request.accelerator:
        spec["nodeSelector"] = {ACCELERATOR_LABEL: request.accelerator}
    # No labels of its own: the Job controller labels the pods with the job's name
    # (`batch.kubernetes.io/job-name`; the operator: `training.kubeflow.org/job-name`), which
    # leads to the job and its labels. (checkov would also scan a labelled template as a Pod
    # of its own, apart from the namespace's network policies that cover it.)
    return {"spec": spec}


def job_manifest(
    request: TrainingRequest, namespace: str, operator: bool, *, region: str
) -> Manifest:
    """The Job (one node, or no training operator) or PyTorchJob (several nodes) for
    `request` in `namespace`; `region` is the AWS region the pods call (the launcher's)."""
    if request.nodes > 1 and operator:
        return _pytorch_job(request, namespace, region)
    return {
        "apiVersion": JOB_API,
        "kind": JOB_KIND,
        "metadata": _metadata(request, namespace),
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": TRAIN_CONTAINER,
                            "operator": "In",
                            "values": list(FINAL_EXIT_CODES),
                        },
                    },
                ]
            },
            # The step's maximum runtime, counted from the Job's start: waiting for a GPU node
            # or for the team's quota counts too, so a job that can never be placed ends.
            "activeDeadlineSeconds": request.max_runtime_seconds,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": pod_template(request, region),
        },
    }


def _pytorch_job(request: TrainingRequest, namespace: str, region: str) -> Manifest:
    template = pod_template(request, region, container=PYTORCH_CONTAINER)

    def replicas(count: int) -> dict[str, Any]:
        # ExitCode: exit codes 1-127 (the program's own, cluster_run's reports among them)
        # fail the job; 128-255 (killed by a signal: OOM, eviction) replace the pod, counted
        # by backoffLimit.
        return {"replicas": count, "restartPolicy": "ExitCode", "template": template}

    return {
        "apiVersion": PYTORCH_JOB_API,
        "kind": PYTORCH_JOB_KIND,
        "metadata": _metadata(request, namespace),
        "spec": {
            "runPolicy": {
                "backoffLimit": BACKOFF_LIMIT,
                "activeDeadlineSeconds": request.max_runtime_seconds,
                "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
                # Workers still running when the job ends give their GPUs back at once.
                "cleanPodPolicy": "Running",
            },
            "pytorchReplicaSpecs": {
                "Master": replicas(1),
                "Worker": replicas(request.nodes - 1),
            },
        },
    }
