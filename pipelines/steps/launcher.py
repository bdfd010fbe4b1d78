"""The launcher: the Lambda function that runs cluster-backed Train steps as Kubernetes Jobs.

Two events:

- **SQS** (the cluster training queue; the event source mapping reports batch item failures).
  Each message is one Train step's request (pipelines/steps/cluster_request.py). The launcher
  checks it against the cluster it serves (the team has a namespace there, the GPUs fit the
  team's quota, a GPU pool offers the accelerator, several nodes only with the training
  operator), copies the step code to `<output uri>code/` (server-side S3 copies: the team's
  pods may read only their team's prefix), and creates the Job (pipelines/steps/cluster_job.py)
  in the team's namespace. A request that cannot work, or that the API refuses for good (over
  quota, no namespace, invalid), fails the step at once with the reason
  (SendPipelineExecutionStepFailure) and the message is consumed. A Job that already exists
  means the message came twice: nothing to do. Trouble that may pass (no answer, throttling,
  a server error) returns the message to the queue as a batch item failure, to be tried again.
- **Sweep** (`{"sweep": true}`, an EventBridge schedule every few minutes): the step's own
  container reports success or failure, but a pod that dies without a word (the deadline, OOM,
  a node lost, retries spent) cannot. The sweep lists the launcher's Jobs in every team
  namespace and fails the step of each failed one not yet reported, with Kubernetes' reason,
  then marks the Job reported (an annotation). Where SageMaker answers that the step no longer
  waits (the container reported first), the Job is marked all the same.

Configured by environment variables (pipelines/environment_variables.py): MLOPS_CLUSTER_NAME,
MLOPS_CLUSTER_ENDPOINT, MLOPS_CLUSTER_CA, MLOPS_TEAM_NAMESPACES, MLOPS_TEAM_GPUS,
MLOPS_GPU_ACCELERATORS, MLOPS_TRAINING_OPERATOR; the region is the Lambda's own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from pipelines.environment_variables import (
    AWS_DEFAULT_REGION,
    MLOPS_CLUSTER_CA,
    MLOPS_CLUSTER_ENDPOINT,
    MLOPS_CLUSTER_NAME,
    MLOPS_GPU_ACCELERATORS,
    MLOPS_TEAM_GPUS,
    MLOPS_TEAM_NAMESPACES,
    MLOPS_TRAINING_OPERATOR,
)
from pipelines.steps.aws_calls import boto3_client, error_code, error_message
from pipelines.steps.cluster_job import (
    CALLBACK_SELECTOR,
    JOB_API,
    JOB_KIND,
    PYTORCH_JOB_API,
    PYTORCH_JOB_KIND,
    REPORTED_ANNOTATION,
    TOKEN_ANNOTATION,
    code_copy_uri,
    job_manifest,
)
from pipelines.steps.cluster_request import (
    MAX_RECEIVES,
    RequestError,
    TrainingRequest,
    failure_reason,
    parse_message,
    parse_token,
)
from pipelines.steps.cluster_run import NOT_WAITING_CODES
from pipelines.steps.eks_api import KubernetesClient, KubernetesError
from pipelines.steps.stage_code import StagingError, split_s3_uri

logger = logging.getLogger(__name__)

NOT_STARTED = "cluster training not started"
# S3 errors that may pass (after botocore's own retries): throttling and S3's own trouble.
TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "ServiceUnavailable"}
)
SERVER_ERRORS = 500


class SageMakerClient(Protocol):
    def send_pipeline_execution_step_failure(self, **kwargs: Any) -> Any: ...


class S3Client(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...
    def copy_object(self, **kwargs: Any) -> Any: ...


class Kubernetes(Protocol):
    """The calls used of eks_api.KubernetesClient."""

    def create(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]: ...
    def list_objects(
        self, namespace: str, api_version: str, kind: str, label_selector: str
    ) -> list[dict[str, Any]]: ...
    def patch_annotations(
        self, namespace: str, api_version: str, kind: str, name: str, annotations: dict[str, str]
    ) -> dict[str, Any]: ...


class TryAgain(Exception):
    """Trouble that may pass: the message goes back to the queue (or the Job waits for the
    next sweep)."""


@dataclass(frozen=True)
class ClusterConfig:
    """What the launcher knows of the cluster it serves."""

    namespaces: dict[str, str]  # team -> namespace
    team_gpus: dict[str, int]  # team -> GPU quota
    accelerators: tuple[str, ...]  # the GPU pools' accelerator labels; empty: not known
    operator: bool  # the Kubeflow training operator runs there
    region: str

    @classmethod
    def from_environment(cls, region: str) -> ClusterConfig:
        return cls(
            namespaces={str(k): str(v) for k, v in MLOPS_TEAM_NAMESPACES.get().items()},
            team_gpus={str(k): int(v) for k, v in MLOPS_TEAM_GPUS.get().items()},
            accelerators=tuple(str(a) for a in MLOPS_GPU_ACCELERATORS.get()),
            operator=MLOPS_TRAINING_OPERATOR.get(),
            region=region,
        )

    def namespace_for(self, request: TrainingRequest) -> str:
        """The team's namespace; RequestError where the request cannot run on this cluster."""
        namespace = self.namespaces.get(request.team)
        if namespace is None:
            known = ", ".join(sorted(self.namespaces)) or "none"
            raise RequestError(
                f"team {request.team!r} has no namespace on the training cluster (teams: {known})"
            )
        quota = self.team_gpus.get(request.team)
        if quota is not None and request.gpus > quota:
            raise RequestError(
                f"{request.gpus} GPUs ({request.gpus_per_node} per node x {request.nodes} "
                f"nodes) is over team {request.team}'s quota of {quota} GPUs"
            )
        if self.accelerators and request.accelerator not in (None, *self.accelerators):
            offered = ", ".join(self.accelerators)
            raise RequestError(
                f"no GPU pool offers accelerator {request.accelerator} (offered: {offered})"
            )
        if request.nodes > 1 and not self.operator:
            raise RequestError(
                f"{request.nodes} nodes need the Kubeflow training operator (a PyTorchJob), "
                "which the training cluster does not run"
            )
        return namespace


Status = Literal["launched", "redelivered", "failed", "unreported"]


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str


@dataclass
class SweepSummary:
    checked: int = 0
    reported: list[str] = field(default_factory=list)
    already_reported: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "reported": self.reported,
            "alreadyReported": self.already_reported,
            "errors": self.errors,
        }


def copy_prefix(s3: S3Client, source_uri: str, target_uri: str) -> int:
    """Copies every object under `source_uri` to the same relative key under `target_uri`
    (server-side, the target bucket's default encryption); returns how many. RequestError
    where there is nothing to copy or S3 refuses; TryAgain for trouble that may pass."""
    try:
        source_bucket, source_prefix = split_s3_uri(source_uri)
        target_bucket, target_prefix = split_s3_uri(target_uri)
    except StagingError as error:
        raise RequestError(f"copying the step code: {error}") from None
    copied = 0
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=source_bucket, Prefix=source_prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if key.endswith("/"):  # a "folder" marker
                    continue
                s3.copy_object(
                    Bucket=target_bucket,
                    Key=target_prefix + key[len(source_prefix) :],
                    CopySource={"Bucket": source_bucket, "Key": key},
                )
                copied += 1
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = f"copying the step code {source_uri} to {target_uri}: {error_code(error)}: "
        text += error_message(error)
        if error_code(error) in TRANSIENT_S3_CODES or status >= SERVER_ERRORS:
            raise TryAgain(text) from error
        raise RequestError(text) from error
    except BotoCoreError as error:  # no connection, a timeout
        raise TryAgain(f"copying the step code {source_uri}: {error}") from error
    if copied == 0:
        raise RequestError(f"no step code under {source_uri}")
    return copied


def report_failure(
    sagemaker: SageMakerClient, token: str, reason: str
) -> Literal["sent", "not waiting"]:
    """Fails the step of `token` with `reason`; "not waiting" where SageMaker answers that the
    step no longer waits for the token (reported already, stopped, timed out). TryAgain for
    any other error: the failure must reach the step."""
    reason = failure_reason(reason)
    # One request per token and reason: the same report sent twice is one report.
    request_token = hashlib.sha256(f"{token}\n{reason}".encode()).hexdigest()
    try:
        sagemaker.send_pipeline_execution_step_failure(
            CallbackToken=token, FailureReason=reason, ClientRequestToken=request_token
        )
    except ClientError as error:
        if error_code(error) in NOT_WAITING_CODES:
            logger.warning("the step of this token no longer waits: %s", error)
            return "not waiting"
        raise TryAgain(f"could not fail the step: {error}") from error
    except BotoCoreError as error:
        raise TryAgain(f"could not fail the step: {error}") from error
    return "sent"


def failed_condition(job: dict[str, Any]) -> dict[str, Any] | None:
    """The Job's (or PyTorchJob's) `Failed` condition when it holds, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return dict(condition)
    return None


class Launcher:
    def __init__(
        self,
        kubernetes: Kubernetes,
        sagemaker: SageMakerClient,
        s3: S3Client,
        config: ClusterConfig,
    ) -> None:
        self.kubernetes = kubernetes
        self.sagemaker = sagemaker
        self.s3 = s3
        self.config = config

    # -- SQS: one request ----------------------------------------------------------------

    def launch(self, body: str) -> Outcome:
        """Runs one message's request. Raises TryAgain where the message should come back."""
        token = parse_token(body)
        try:
            request = parse_message(body)
            namespace = self.config.namespace_for(request)
            manifest = job_manifest(
                request, namespace, self.config.operator, region=self.config.region
            )
            copied = copy_prefix(self.s3, request.code_uri, code_copy_uri(request))
        except RequestError as error:
            return self.refuse(token, f"{NOT_STARTED}: {error}")
        where = f"{manifest['kind']} {namespace}/{manifest['metadata']['name']}"
        try:
            self.kubernetes.create(namespace, manifest)
        except KubernetesError as error:
            if error.already_exists:
                logger.info("%s exists already: the message came again", where)
                return Outcome("redelivered", where)
            if error.retryable:
                raise TryAgain(f"creating {where}: {error}") from error
            return self.refuse(token, f"{NOT_STARTED}: Kubernetes refused {where}: {error.message}")
        logger.info(
            "created %s (%d code files staged) for %s", where, copied, request.execution_arn
        )
        return Outcome("launched", where)

    def refuse(self, token: str | None, reason: str) -> Outcome:
        """Fail the step of `token` with `reason` (or log it, without a token)."""
        if token is None:
            logger.error("a message without a callback token, so no step to fail: %s", reason)
            return Outcome("unreported", reason)
        logger.error("failing the step: %s", reason)
        report_failure(self.sagemaker, token, reason)
        return Outcome("failed", reason)

    # -- the sweep -------------------------------------------------------------------------

    def kinds(self) -> list[tuple[str, str]]:
        kinds = [(JOB_API, JOB_KIND)]
        if self.config.operator:
            kinds.append((PYTORCH_JOB_API, PYTORCH_JOB_KIND))
        return kinds

    def sweep(self) -> SweepSummary:
        """Fails the step of every failed Job not yet reported, in every team namespace."""
        summary = SweepSummary()
        for namespace in sorted(set(self.config.namespaces.values())):
            for api_version, kind in self.kinds():
                try:
                    jobs = self.kubernetes.list_objects(
                        namespace, api_version, kind, CALLBACK_SELECTOR
                    )
                except KubernetesError as error:
                    logger.error("cannot list %s in %s: %s", kind, namespace, error)
                    summary.errors.append(f"{kind} in {namespace}: {error}")
                    continue
                for job in jobs:
                    summary.checked += 1
                    self._sweep_job(namespace, job, summary)
        return summary

    def _sweep_job(self, namespace: str, job: dict[str, Any], summary: SweepSummary) -> None:
        metadata = job.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        condition = failed_condition(job)
        if condition is None or annotations.get(REPORTED_ANNOTATION) == "true":
            return
        kind, name = job["kind"], str(metadata.get("name"))
        where = f"{namespace}/{name}"
        reason = (
            f"{kind} {where} failed: {condition.get('reason') or 'Failed'}: "
            f"{condition.get('message') or 'no message'}"
        )
        token = parse_token_text(annotations.get(TOKEN_ANNOTATION))
        if token is None:
            logger.error("%s has no callback token to report with: %s", where, reason)
        else:
            try:
                result = report_failure(self.sagemaker, token, reason)
            except TryAgain as error:
                logger.error("%s: %s (the next sweep tries again)", where, error)
                summary.errors.append(f"{where}: {error}")
                return
            logger.warning("%s: %s", reason, "reported" if result == "sent" else "not waiting")
            (summary.reported if result == "sent" else summary.already_reported).append(where)
        try:
            self.kubernetes.patch_annotations(
                namespace, job["apiVersion"], kind, name, {REPORTED_ANNOTATION: "true"}
            )
        except KubernetesError as error:
            # The next sweep reports again: SageMaker then answers "not waiting".
            logger.error("cannot mark %s reported: %s", where, error)
            summary.errors.append(f"{where}: {error}")


def parse_token_text(value: Any) -> str | None:
    """A callback token taken from an annotation, if it is a well-formed one."""
    # The contract's own check, as cluster_run.py makes it.
    return parse_token(json.dumps({"token": value})) if isinstance(value, str) else None


# -- the Lambda handler ---------------------------------------------------------------------


def lambda_region() -> str:
    """The Lambda's own region (the runtime sets AWS_REGION and AWS_DEFAULT_REGION)."""
    region = os.environ.get("AWS_REGION") or AWS_DEFAULT_REGION.get()
    if not region:
        raise RuntimeError("neither AWS_REGION nor AWS_DEFAULT_REGION is set")
    return region


# Clients live as long as the Lambda's execution environment: a warm invocation reuses them.
_AWS_CLIENTS: dict[str, tuple[SageMakerClient, S3Client]] = {}
_KUBERNETES_CLIENTS: dict[tuple[str, ...], Kubernetes] = {}


def make_clients(region: str) -> tuple[SageMakerClient, S3Client]:
    """boto3 `sagemaker` and `s3` clients for `region` (standard retry mode), made once."""
    if region not in _AWS_CLIENTS:
        _AWS_CLIENTS[region] = (boto3_client("sagemaker", region), boto3_client("s3", region))
    return _AWS_CLIENTS[region]


def make_kubernetes(region: str) -> Kubernetes:
    """The client of the cluster the environment names, made once per cluster."""
    variables = (MLOPS_CLUSTER_NAME, MLOPS_CLUSTER_ENDPOINT, MLOPS_CLUSTER_CA)
    key = (region, *(variable.get_raw() or "" for variable in variables))
    if key not in _KUBERNETES_CLIENTS:
        _KUBERNETES_CLIENTS[key] = KubernetesClient.from_environment(region)
    return _KUBERNETES_CLIENTS[key]


def make_launcher() -> Launcher:
    region = lambda_region()
    sagemaker, s3 = make_clients(region)
    return Launcher(make_kubernetes(region), sagemaker, s3, ClusterConfig.from_environment(region))


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    logger.setLevel(logging.INFO)
    if event.get("sweep"):
        summary = make_launcher().sweep().as_dict()
        logger.info("sweep: %s", summary)
        return summary
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError(f"neither an SQS batch nor a sweep: keys {sorted(event)}")
    launcher = make_launcher()
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = str(record.get("messageId"))
        try:
            outcome = launcher.launch(str(record.get("body", "")))
        except TryAgain as error:
            if _last_attempt(record):
                # The dead-letter queue would take it next: fail the step rather than let it
                # wait for a Job that will never exist.
                _give_up(launcher, record, error)
                continue
            logger.warning("message %s goes back to the queue: %s", message_id, error)
            failures.append({"itemIdentifier": message_id})
            continue
        except Exception:  # a bug must not fail the other messages of the batch
            logger.exception("message %s goes back to the queue", message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        logger.info("message %s: %s %s", message_id, outcome.status, outcome.detail)
    # Only this key: with ReportBatchItemFailures the queue reads it, and no other.
    return {"batchItemFailures": failures}


def _last_attempt(record: dict[str, Any]) -> bool:
    attributes = record.get("attributes") or {}
    try:
        return int(attributes.get("ApproximateReceiveCount", 1)) >= MAX_RECEIVES
    except (TypeError, ValueError):
        return False


def _give_up(launcher: Launcher, record: dict[str, Any], error: TryAgain) -> None:
    body = str(record.get("body", ""))
    reason = f"{NOT_STARTED}: gave up after {MAX_RECEIVES} attempts: {error}"
    try:
        launcher.refuse(parse_token(body), reason)
    except TryAgain as again:  # SageMaker unreachable too: the dead-letter alarm tells
        logger.error("message %s goes to the dead-letter queue: %s", record.get("messageId"), again)
