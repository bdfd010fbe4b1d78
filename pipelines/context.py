"""The per-environment values a pipeline definition is built from.

`PipelineContext` is plain data: the deploy program (`MlPipelines`) fills it with the ARNs and
IDs of the resources it created, `context_for_stack` fills it from a committed stack file
alone. Names that follow from the settings (buckets, ECR repository, model package group,
pipeline name) are computed exactly as the components compute them. Where only a deployed
stack knows a value, its unknown part is a *placeholder* `{{name}}` inside a value that is
otherwise well-formed: `arn:aws:iam::111111111111:role/{{role_name}}`, `{{subnet_id_0}}`,
`s3://<models bucket>/code/{{code_hash}}/`. Well-formed because the SDK looks at shapes (a role that
is not an IAM ARN is looked up in IAM); `{{...}}` because no AWS name or ID contains braces,
so a definition still holding one is rejected by SageMaker instead of pointing at some other
resource. `PipelineContext.placeholders()` lists the ones left, for a deploy program to refuse.

No SageMaker SDK import here: building a context is cheap; only `pipelines.training` pays for
the SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from components.aws_context import AwsContext
from components.naming import Names
from stacks.loader import STACKS_DIR, load_stack_settings
from stacks.settings import Settings

# Step code runs from the `training` repository's image; inference reuses it for now.
STEP_IMAGE_REPOSITORY = "training"
INFERENCE_IMAGE_REPOSITORY = "inference"
CPU_TAG_SUFFIX = "-cpu"
# The ArtifactStore buckets (components.artifact_store.DATA_BUCKETS) a pipeline uses. The
# `pipeline` bucket expires everything after `pipeline_output_expiry_days`, so inputs and model
# artifacts, which must outlive a run, live in `datasets` and `models`.
PIPELINE_BUCKET, DATASETS_BUCKET, MODELS_BUCKET = "pipeline", "datasets", "models"
# The SQS queue a cluster-backed Train step (a CallbackStep) sends its request to, for the
# launcher Lambda; `Names.queue(CLUSTER_TRAINING_QUEUE)` is its name (the component creating
# the queue uses this constant too).
CLUSTER_TRAINING_QUEUE = "cluster-training"

PLACEHOLDER = re.compile(r"\{\{[a-z0-9_]+\}\}")


def placeholder(name: str) -> str:
    """The stand-in for a value only a deployed stack knows: `{{name}}`."""
    value = f"{{{{{name}}}}}"
    if not PLACEHOLDER.fullmatch(value):
        raise ValueError(f"placeholder names are lowercase words joined by '_', not {name!r}")
    return value


class UnknownModel(KeyError):
    """The stack file has no such entry under `models`."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class PipelineContext:
    """Everything environment-specific a pipeline definition holds."""

    stack: str
    model_name: str
    region: str
    # Role the pipeline's jobs run as (SageMaker execution role).
    role_arn: str
    # The environment's `pipeline` bucket: intermediate datasets, evaluation reports,
    # checkpoints.
    bucket: str
    # Where raw training data arrives and trained model artifacts are kept (never expire).
    datasets_bucket: str
    models_bucket: str
    # The data key: job volumes and outputs.
    kms_key_arn: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    # The SageMaker MLflow tracking server ARN (the mlflow SDK with the sagemaker-mlflow
    # plugin takes the ARN as its tracking URI).
    mlflow_tracking_uri: str
    mlflow_experiment_name: str
    model_package_group: str
    # The step image: <account>.dkr.ecr.<region>.amazonaws.com/mlops-<stack>/training:<tag>
    image_uri: str
    # The CPU step image (pipelines/image/cpu) of the Deploy and Monitor steps: the step
    # image's repository, tag `<image_tag>-cpu`.
    cpu_image_uri: str
    # The inference image (pipelines/image/inference): <registry>/mlops-<stack>/inference:<tag>,
    # which registered versions name in their inference specification.
    inference_image_uri: str
    # S3 prefix (ending in "/") holding the contents of the `pipelines/` package, the step
    # code: s3://<models bucket>/code/<hash>/, with <code_uri>steps/train.py and so on.
    code_uri: str
    pipeline_name: str
    # The feature group Preprocess ingests into (the model's spec in pipelines/features.py).
    feature_group_name: str
    # The tier (dev, test, prod): outside dev a run cannot change the gate or the approval.
    environment: str
    # The URL of the queue of cluster-backed Train steps (CLUSTER_TRAINING_QUEUE): known from
    # the names alone. Only models with `training.backend: cluster` use it.
    callback_queue_url: str = ""

    def __post_init__(self) -> None:
        if not self.code_uri.startswith("s3://") or not self.code_uri.endswith("/"):
            raise ValueError(f"code_uri must be an S3 prefix ending in '/', not {self.code_uri!r}")
        if not self.subnet_ids or not self.security_group_ids:
            raise ValueError("jobs run in the VPC: give at least one subnet and security group")

    def placeholders(self) -> list[str]:
        """The placeholders still in this context (empty once every value is real)."""
        found: list[str] = []
        for field in fields(self):
            value = getattr(self, field.name)
            for text in value if isinstance(value, tuple) else (value,):
                found += PLACEHOLDER.findall(str(text))
        return found


def ecr_registry(context: AwsContext) -> str:
    """The account's private ECR registry host (China regions use amazonaws.com.cn)."""
    suffix = "amazonaws.com.cn" if context.partition == "aws-cn" else "amazonaws.com"
    return f"{context.account_id}.dkr.ecr.{context.region}.{suffix}"


def context_for_stack(
    stack: str, model: str, stacks_dir: Path = STACKS_DIR, settings: Settings | None = None
) -> PipelineContext:
    """The context of `model` in stack `stack`, from its committed stack file.

    Deterministic names are computed; role, KMS key, subnets (unless the stack reuses an
    existing VPC), security group, tracking server and code hash are `{{...}}` placeholders.
    Pass `settings` to skip reading the stack file again.
    """
    settings = settings or load_stack_settings(stack, stacks_dir)
    if model not in settings.models:
        known = ", ".join(sorted(settings.models)) or "none"
        raise UnknownModel(f"stack {stack!r} has no model {model!r} (its models: {known})")
    aws = AwsContext(account_id=settings.aws.account_id, region=settings.aws.region)
    names = Names(stack=stack, context=aws)
    existing_vpc = settings.network.existing_vpc
    subnets = (
        tuple(existing_vpc.private_subnet_ids)
        if existing_vpc is not None
        # One private subnet per AZ, created by the Network component.
        else tuple(placeholder(f"subnet_id_{i}") for i in range(settings.network.az_count))
    )
    bucket = names.bucket(PIPELINE_BUCKET)
    repository = names.repository(STEP_IMAGE_REPOSITORY)
    return PipelineContext(
        stack=stack,
        model_name=model,
        region=aws.region,
        role_arn=aws.arn("iam", f"role/{placeholder('role_name')}", regional=False),
        bucket=bucket,
        datasets_bucket=names.bucket(DATASETS_BUCKET),
        models_bucket=names.bucket(MODELS_BUCKET),
        kms_key_arn=aws.arn("kms", f"key/{placeholder('data_key_id')}"),
        subnet_ids=subnets,
        security_group_ids=(placeholder("security_group_id"),),
        mlflow_tracking_uri=aws.arn(
            "sagemaker", f"mlflow-tracking-server/{placeholder('tracking_server_name')}"
        ),
        mlflow_experiment_name=f"{names.base}-{model}",
        model_package_group=names.model_package_group(model),
        image_uri=f"{ecr_registry(aws)}/{repository}:{settings.models[model].image_tag}",
        cpu_image_uri=(
            f"{ecr_registry(aws)}/{repository}:{settings.models[model].image_tag}{CPU_TAG_SUFFIX}"
        ),
        inference_image_uri=(
            f"{ecr_registry(aws)}/{names.repository(INFERENCE_IMAGE_REPOSITORY)}:"
            f"{settings.models[model].inference_image_tag}"
        ),
        # Models bucket: the pipeline bucket expires objects, and scheduled runs need the code.
        code_uri=f"s3://{names.bucket(MODELS_BUCKET)}/code/{placeholder('code_hash')}/",
        pipeline_name=f"{names.base}-{model}-training",
        feature_group_name=names.feature_group(model),
        environment=settings.environment,
        callback_queue_url=names.queue_url(CLUSTER_TRAINING_QUEUE),
    )
