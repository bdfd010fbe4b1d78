"""IAM and resource policies of the pipelines as infrastructure (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.aws_context import AwsContext
from components.mlflow_actions import MLFLOW_ACTIONS
from components.step_code import CODE_PREFIX
from pipelines.training import PENDING

# SageMaker names a pipeline's jobs `pipelines-<execution id>-<step>-<suffix>`.
PIPELINE_JOBS = ("processing-job/pipelines-*", "training-job/pipelines-*")
# Jobs in a VPC create network interfaces in its subnets and security groups. The Describe
# calls take no resource scoping; the rest are scoped to this account's EC2 resources.
VPC_DESCRIBE_ACTIONS = [
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
VPC_INTERFACE_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
]
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


@dataclass(frozen=True)
class JobResources:
    """What the pipelines' jobs touch: the environment's buckets (by purpose), its key, the
    step image's repository, the tracking server, and the VPC's subnets and security group."""

    bucket_arns: dict[str, str]  # datasets, models, pipeline
    key_arn: str
    repository_arn: str
    tracking_server_arn: str
    subnet_ids: tuple[str, ...]
    security_group_id: str


def _data_statements(buckets: dict[str, str]) -> list[dict[str, Any]]:
    """Objects: read and write everywhere but the step code, which is content-addressed and
    read-only to jobs (a job that could rewrite `code/` would change what later runs
    execute under the same hash)."""
    arns = [buckets[p] for p in ("datasets", "models", "pipeline")]
    return [
        {
            "Sid": "EnvironmentData",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [f"{arn}/*" for arn in arns],
        },
        {
            "Sid": "StepCodeIsReadOnly",
            "Effect": "Deny",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{buckets['models']}/{CODE_PREFIX}/*",
        },
        {
            "Sid": "EnvironmentBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": arns,
        },
    ]


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
    key_arn, repository_arn = resources.key_arn, resources.repository_arn
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
            {
                "Sid": "PassOnlyItselfToSageMaker",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": role_arn,
                "Condition": {
                    "StringEquals": {"iam:PassedToService": ctx.service_principal("sagemaker")}
                },
            },
            *_data_statements(resources.bucket_arns),
            {
                "Sid": "EnvironmentKey",
                "Effect": "Allow",
                "Action": [
                    "kms:Decrypt",
                    "kms:GenerateDataKey",
                    "kms:CreateGrant",
                    "kms:DescribeKey",
                ],
                "Resource": key_arn,
            },
            {
                "Sid": "PullStepImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": repository_arn,
            },
            {
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {
                "Sid": "JobLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": ctx.arn("logs", "log-group:/aws/sagemaker/*"),
            },
            {
                # PutMetricData takes no resource, only its namespace (cloudwatch:namespace):
                # SageMaker's own, where jobs and Model Monitor publish.
                "Sid": "JobMetrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {
                    "StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}
                },
            },
            {
                "Sid": "DescribeTheVpc",
                "Effect": "Allow",
                "Action": VPC_DESCRIBE_ACTIONS,
                "Resource": "*",
            },
            {
                # Interfaces only in this environment's subnets and security group.
                "Sid": "JobsInTheVpc",
                "Effect": "Allow",
                "Action": VPC_INTERFACE_ACTIONS,
                "Resource": [
                    ctx.arn("ec2", "network-interface/*"),
                    *(ctx.arn("ec2", f"subnet/{s}") for s in resources.subnet_ids),
                    ctx.arn("ec2", f"security-group/{resources.security_group_id}"),
                ],
            },
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
