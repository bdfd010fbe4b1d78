"""What every SageMaker job of the pipelines needs, whichever role runs it (pure data): the
environment's key, the step image, logs, metrics in SageMaker's namespaces, network interfaces
in the environment's subnets, and the environment's objects with the step code read-only.
pipeline_policies.py (training) and deployment_jobs_policy (Deploy and Monitor) add what each
does beyond that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.aws_context import AwsContext
from components.step_code import CODE_PREFIX

# Jobs in a VPC create network interfaces in its subnets and security groups. The Describe
# calls take no resource scoping; the rest are scoped to this environment's subnets and group.
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


def data_statements(buckets: dict[str, str]) -> list[dict[str, Any]]:
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


def job_statements(ctx: AwsContext, role_arn: str, resources: JobResources) -> list[dict[str, Any]]:
    """The statements every job role holds (data statements aside)."""
    key_arn, repository_arn = resources.key_arn, resources.repository_arn
    return [
        {
            "Sid": "PassOnlyItselfToSageMaker",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role_arn,
            "Condition": {
                "StringEquals": {"iam:PassedToService": ctx.service_principal("sagemaker")}
            },
        },
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
    ]


# Where the Deploy and Monitor steps write in the models bucket: the endpoint's data capture
# (written with the model's role, this one) and Model Monitor's baselines and reports.
DEPLOYMENT_WRITES = ("data-capture", "monitoring")


def deployment_jobs_policy(
    ctx: AwsContext, role_arn: str, resources: JobResources
) -> dict[str, Any]:
    """The Deploy and Monitor steps' role, beside what deploy_policy lets them do to
    endpoints: their processing jobs, reading the environment's data (model artifacts,
    baseline data, the step code), and writing only run outputs, data capture and Model
    Monitor's files. No MLflow, no registry, no training: a deployment cannot train or
    register a model, and a training job cannot touch an endpoint."""
    buckets = resources.bucket_arns
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RunDeploymentSteps",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                ],
                "Resource": ctx.arn("sagemaker", "processing-job/pipelines-*"),
            },
            *job_statements(ctx, role_arn, resources),
            {
                "Sid": "ReadEnvironmentData",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [f"{buckets[p]}/*" for p in ("datasets", "models", "pipeline")],
            },
            {
                "Sid": "WriteRunOutputsCaptureAndMonitoring",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [
                    f"{buckets['pipeline']}/*",
                    *(f"{buckets['models']}/{prefix}/*" for prefix in DEPLOYMENT_WRITES),
                ],
            },
            {
                "Sid": "EnvironmentBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [buckets[p] for p in ("datasets", "models", "pipeline")],
            },
        ],
    }
