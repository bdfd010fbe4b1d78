"""IAM and resource policies of the pipelines as infrastructure (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext
from components.job_policies import JobResources, data_statements, job_statements
from components.mlflow_actions import MLFLOW_ACTIONS
from pipelines.training import PENDING

# SageMaker names a pipeline's jobs `pipelines-<execution id>-<step>-<suffix>`.
PIPELINE_JOBS = ("processing-job/pipelines-*", "training-job/pipelines-*")
# parliament findings accepted for the execution policy (tests/test_iam_lint.py), and why.
PARLIAMENT_ACCEPTED = {
    "RESOURCE_MISMATCH": (
        "parliament's IAM data predates the sagemaker-mlflow service, whose actions AWS scopes "
        "to the tracking server ARN; accepted for sagemaker-mlflow actions only"
    ),
    "UNKNOWN_ACTION": (
        "parliament's IAM data predates MLflow 3's LoggedModel actions "
        "(components/mlflow_actions.py); accepted for sagemaker-mlflow actions only"
    ),
}
ACCEPTED_SERVICE = "sagemaker-mlflow:"


def _deny_registering_approved(groups: list[str]) -> dict[str, Any]:
    """Whatever else allows it: no version registered in another status than pending
    (CreateModelPackage takes sagemaker:ModelApprovalStatus, Service Authorization
    Reference). A missing status is denied too; the Register step always states it."""
    return {
        "Sid": "RegisterOnlyPendingVersions",
        "Effect": "Deny",
        "Action": "sagemaker:CreateModelPackage",
        "Resource": groups,
        "Condition": {"StringNotEquals": {"sagemaker:ModelApprovalStatus": PENDING}},
    }


def execution_policy(
    ctx: AwsContext,
    *,
    role_arn: str,
    resources: JobResources,
    group_prefix: str,
    pending_only: bool,
) -> dict[str, Any]:
    """What the pipeline and the jobs it starts (running as the same role) may do. With
    `pending_only` (outside dev) it may register versions only as PendingManualApproval."""
    tracking_server_arn = resources.tracking_server_arn
    groups = [
        ctx.arn("sagemaker", f"model-package-group/{group_prefix}*"),
        ctx.arn("sagemaker", f"model-package/{group_prefix}*"),
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            *([_deny_registering_approved(groups)] if pending_only else []),
            {
                "Sid": "RunPipelineJobs",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                "Resource": [ctx.arn("sagemaker", job) for job in PIPELINE_JOBS],
            },
            {
                # Registers versions; approving them is another role's job (SECURITY A5).
                "Sid": "RegisterModelVersions",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                ],
                "Resource": groups,
            },
            {
                # Preprocess writes features into this stack's feature groups.
                "Sid": "IngestFeatures",
                "Effect": "Allow",
                "Action": "sagemaker:PutRecord",
                "Resource": ctx.arn("sagemaker", f"feature-group/{group_prefix}*"),
            },
            *job_statements(ctx, role_arn, resources),
            *data_statements(resources.bucket_arns),
            {
                "Sid": "TrackInMlflow",
                "Effect": "Allow",
                "Action": MLFLOW_ACTIONS,
                "Resource": tracking_server_arn,
            },
        ],
    }


def scheduler_policy(pipeline_arns: list[str], queue_arn: str, key_arn: str) -> dict[str, Any]:
    """EventBridge Scheduler starts these pipelines and dead-letters what it cannot deliver."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartPipelines",
                "Effect": "Allow",
                "Action": "sagemaker:StartPipelineExecution",
                "Resource": pipeline_arns,
            },
            {
                "Sid": "DeadLetters",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "EncryptedDeadLetters",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key_arn,
            },
        ],
    }


def feature_store_policy(
    ctx: AwsContext, bucket_arn: str, prefix: str, key_arn: str
) -> dict[str, Any]:
    """The offline store: objects under one prefix, the data key, and SageMaker's Glue table."""
    database = "sagemaker_featurestore"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OfflineStoreObjects",
                "Effect": "Allow",
                # As AWS's AmazonSageMakerFeatureStoreAccess grants: the offline store's writer
                # sets the object ACL (a no-op under BucketOwnerEnforced, still authorised).
                "Action": ["s3:PutObject", "s3:GetObject", "s3:PutObjectAcl"],
                "Resource": f"{bucket_arn}/{prefix}*",
            },
            {
                "Sid": "OfflineStoreBucket",
                "Effect": "Allow",
                "Action": "s3:GetBucketAcl",
                "Resource": bucket_arn,
            },
            {
                "Sid": "OfflineStoreEncryption",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": key_arn,
            },
            {
                "Sid": "OfflineStoreCatalog",
                "Effect": "Allow",
                "Action": [
                    "glue:GetDatabase",
                    "glue:CreateDatabase",
                    "glue:GetTable",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                ],
                "Resource": [
                    ctx.arn("glue", "catalog"),
                    ctx.arn("glue", f"database/{database}"),
                    ctx.arn("glue", f"table/{database}/*"),
                ],
            },
        ],
    }
