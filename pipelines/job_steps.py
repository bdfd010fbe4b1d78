"""What every pipeline of this repo builds its job steps from, with the SageMaker SDK v3.

`offline_sdk` lets a process build definitions without reaching AWS; `JobSteps` holds one
pipeline's session, retry policies and processing-job pieces (the step image running a
module of the `pipelines` package, in the VPC, encrypted), which the training and deployment
pipelines extend with their own parameters and steps.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

from components.cluster_policies import TEAM_PREFIX
from pipelines.context import PipelineContext
from stacks.settings import ModelSettings, ProcessingSettings

# Paths inside the job containers. The step code is the `pipelines` package: it must sit in a
# directory of that name, whose parent goes on PYTHONPATH. Not under /opt/ml/processing/input,
# where Preprocess reads every CSV below.
CODE_PACKAGE = "pipelines"
PROCESSING_ROOT = "/opt/ml/processing"
PROCESSING_CODE_ROOT = f"{PROCESSING_ROOT}/code"

# Instance families with NVMe instance storage: SageMaker encrypts it in hardware and rejects
# a VolumeKmsKeyId for them (CreateTrainingJob ResourceConfig / CreateProcessingJob
# ClusterConfig). The pattern of policy rule E5 (policy/mlops_rules/sagemaker.py), which
# exempts exactly these; repeated so that building a definition needs no policy code.
LOCAL_STORAGE_INSTANCE = re.compile(
    r"^ml\.(?:[a-z]+\d+[a-z]*d[a-z]?|g5|g6|g6e|gr6|p5|p5e|p5en|p6-b200|dl1|trn1|trn1n|trn2)\."
)

# Retries. Capacity (spot, GPUs) and account limits free up over minutes to hours: wait long,
# for up to 4 hours. Internal errors and API faults are transient: a few quick retries.
BACKOFF_RATE = 2.0
CAPACITY_RETRY_INTERVAL_S, CAPACITY_RETRY_WINDOW_MIN = 120, 240
INTERNAL_ERROR_RETRY_INTERVAL_S, INTERNAL_ERROR_MAX_ATTEMPTS = 60, 3
API_RETRY_INTERVAL_S, API_RETRY_MAX_ATTEMPTS = 10, 5

# Given to the session so that it reads no SDK config file of whoever builds (which could put
# other roles, keys or subnets into the definition); emptied right after, see `_session`.
SDK_CONFIG: dict[str, Any] = {"SchemaVersion": "1.0"}


def has_local_storage(instance_type: str) -> bool:
    """Whether the instance type has NVMe instance storage (and so takes no volume key)."""
    return LOCAL_STORAGE_INSTANCE.match(instance_type) is not None


def cluster_team(model: ModelSettings) -> str | None:
    """The team whose cluster quota a cluster-backed model trains on; None for SageMaker."""
    training = model.training
    if training.backend != "cluster" or training.cluster is None:
        return None
    return training.cluster.team


def offline_sdk(region: str) -> None:
    """Let this process import and use the SDK without reaching AWS.

    sagemaker.serve creates boto clients at import time, which needs a region. ModelTrainer
    checks its role through IAM unless SAGEMAKER_VALIDATE_ROLE is false. Every decorated SDK
    call sends telemetry (an STS and an S3 request) unless opted out, and only SDK config can
    opt out; but with a non-empty config the SDK runs a full JSON-schema check on each of the
    ~40 config lookups a build makes (about 5 s). So telemetry is switched off at its source,
    for the whole process: nothing here wants it.
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    from sagemaker.core.telemetry import telemetry_logging  # type: ignore[import-untyped]

    telemetry_logging._send_telemetry_request = _no_telemetry  # noqa: SLF001  # see above
    # ProcessingStep and TransformStep build a LocalSagemakerClient (a local session: a dozen
    # boto clients, ~0.4 s) only to read one of its method names; a stand-in gives the name.
    from sagemaker.mlops.workflow import steps  # type: ignore[import-untyped]

    steps.LocalSagemakerClient = _MethodNames


def _no_telemetry(*_args: Any, **_kwargs: Any) -> None:
    return None


class _MethodNames:
    """Answers `LocalSagemakerClient().<method>.__name__` without creating a session."""

    def __getattr__(self, name: str) -> Any:
        def method() -> None:
            return None

        method.__name__ = name
        return method


def _session(context: PipelineContext) -> Any:
    return _cached_session(context.region, context.bucket)


@functools.cache
def _cached_session(region: str, bucket: str) -> Any:
    """A PipelineSession that makes no AWS call: region and bucket given, config empty.

    Cached per region and bucket: creating one loads botocore's service models for a dozen
    clients (about 1.5 s), while building a definition with it takes a tenth of that, and
    a stack with many models builds one definition per model.
    """
    import boto3  # type: ignore[import-untyped]
    from sagemaker.core.workflow.pipeline_context import PipelineSession  # type: ignore[import-untyped]

    session = PipelineSession(
        boto_session=boto3.Session(region_name=region),
        default_bucket=bucket,
        sagemaker_config=SDK_CONFIG,
    )
    session.sagemaker_config = {}  # see offline_sdk
    return session


def quiet_definition(build: Callable[[], Any]) -> str:
    """The definition JSON of the pipeline `build` returns, built without the SDK's
    narration: it logs at DEBUG to WARNING on loggers with their own levels (fields it pops,
    image URIs, "no jobs start in a PipelineSession"); none of it is news to a caller that
    asked for exactly this."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Running within a PipelineSession")
            definition: str = build().definition()
    finally:
        logging.disable(previous)
    return definition


class JobSteps:
    """One pipeline's session, retry policies and processing-job pieces."""

    # The environment every processing job gets (besides PYTHONPATH); subclasses add theirs.
    environment: dict[str, str]

    def __init__(self, context: PipelineContext, model: ModelSettings) -> None:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables  # type: ignore[import-untyped]
        from sagemaker.mlops.workflow.retry import (  # type: ignore[import-untyped]
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
            StepExceptionTypeEnum,
            StepRetryPolicy,
        )

        self.context, self.model = context, model
        self.session = _session(context)
        self.execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID
        self.environment = {}

        # Naming both step exceptions: a step with a retry policy retries only what it names.
        self.api_retries = [
            StepRetryPolicy(
                exception_types=[
                    StepExceptionTypeEnum.THROTTLING,
                    StepExceptionTypeEnum.SERVICE_FAULT,
                ],
                interval_seconds=API_RETRY_INTERVAL_S,
                backoff_rate=BACKOFF_RATE,
                max_attempts=API_RETRY_MAX_ATTEMPTS,
            )
        ]
        self.job_retries = [
            *self.api_retries,
            SageMakerJobStepRetryPolicy(
                exception_types=[
                    SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                    SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                ],
                interval_seconds=CAPACITY_RETRY_INTERVAL_S,
                backoff_rate=BACKOFF_RATE,
                expire_after_mins=CAPACITY_RETRY_WINDOW_MIN,
            ),
            SageMakerJobStepRetryPolicy(
                exception_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR],
                interval_seconds=INTERNAL_ERROR_RETRY_INTERVAL_S,
                backoff_rate=BACKOFF_RATE,
                max_attempts=INTERNAL_ERROR_MAX_ATTEMPTS,
            ),
        ]

    # -- shared pieces ----------------------------------------------------------------------

    def run_prefix(self, *parts: str) -> Any:
        """s3://<pipeline bucket>/<pipeline name>/<execution id>/<parts...>, with
        `teams/<team>/` after the bucket for a cluster-backed model."""
        from sagemaker.core.workflow.functions import Join  # type: ignore[import-untyped]

        context, team = self.context, cluster_team(self.model)
        # A cluster-backed Train step runs as the team's pod identity, which may read and
        # write only `teams/<team>/` of the artifact buckets (components/cluster_policies.py,
        # team_artifact_policy): the run's outputs it reads (Preprocess's) must live there.
        owner = [TEAM_PREFIX, team] if team is not None else []
        values = ["s3:/", context.bucket, *owner, context.pipeline_name, self.execution_id, *parts]
        return Join(on="/", values=values)

    def processor(
        self, step: str, processing: ProcessingSettings | None = None, image_uri: str = ""
    ) -> Any:
        """A processing job running `pipelines.steps.<step>` on the model's processing
        instances, or on `processing` where a step needs other ones; in the step image unless
        `image_uri` names another."""
        from sagemaker.core.network import NetworkConfig  # type: ignore[import-untyped]
        from sagemaker.core.processing import Processor  # type: ignore[import-untyped]

        context = self.context
        processing = processing or self.model.processing
        return Processor(
            role=context.role_arn,
            image_uri=image_uri or context.image_uri,
            # A Processor with an explicit entrypoint rather than ScriptProcessor(code=...),
            # which would give the job the one script file but not the package around it.
            entrypoint=["python3", "-m", f"{CODE_PACKAGE}.steps.{step}"],
            instance_type=processing.instance_type,
            instance_count=processing.instance_count,
            volume_kms_key=(
                None if has_local_storage(processing.instance_type) else context.kms_key_arn
            ),
            output_kms_key=context.kms_key_arn,
            base_job_name=f"{context.model_name}-{step}",
            sagemaker_session=self.session,
            env={**self.environment, "PYTHONPATH": PROCESSING_CODE_ROOT},
            network_config=NetworkConfig(
                subnets=list(context.subnet_ids),
                security_group_ids=list(context.security_group_ids),
                # Step code logs to MLflow, which network isolation would cut off.
                enable_network_isolation=False,
                encrypt_inter_container_traffic=processing.instance_count > 1,
            ),
        )

    @staticmethod
    def processing_input(name: str, s3_uri: Any, local_path: str) -> Any:
        from sagemaker.core.shapes import ProcessingInput, ProcessingS3Input  # type: ignore[import-untyped]

        return ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=s3_uri, local_path=local_path, s3_data_type="S3Prefix", s3_input_mode="File"
            ),
        )

    def code_input(self) -> Any:
        return self.processing_input(
            "code", self.context.code_uri, f"{PROCESSING_CODE_ROOT}/{CODE_PACKAGE}"
        )

    def processing_output(self, step: str, name: str, local_path: str) -> Any:
        from sagemaker.core.shapes import ProcessingOutput, ProcessingS3Output

        return ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(
                s3_uri=self.run_prefix(step, name),
                local_path=local_path,
                s3_upload_mode="EndOfJob",
            ),
        )
