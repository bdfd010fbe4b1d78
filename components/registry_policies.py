"""IAM documents of the model registry (pure data): the MLflow server's role and the model
package groups' cross-account read policy."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext

# What automatic model registration does from MLflow: create groups and packages, never
# approve them (SECURITY A5: approvers are separate from builders).
REGISTRATION_ACTIONS = [
    "sagemaker:AddTags",
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:CreateModelPackage",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
]
READ_ACTIONS = [
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages",
]


def mlflow_server_policy(
    ctx: AwsContext, bucket_arn: str, prefix: str, key_arn: str, group_prefix: str
) -> dict[str, Any]:
    """Artifacts under one prefix of one bucket, that bucket's key, and registration into
    this environment's model package groups."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ArtifactObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"{bucket_arn}/{prefix}*",
            },
            {
                "Sid": "ArtifactListing",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Sid": "ArtifactBucketLocation",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": bucket_arn,
            },
            {
                "Sid": "ArtifactEncryption",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": key_arn,
            },
            {
                "Sid": "AutomaticModelRegistration",
                "Effect": "Allow",
                "Action": REGISTRATION_ACTIONS,
                "Resource": [
                    ctx.arn("sagemaker", f"model-package-group/{group_prefix}*"),
                    ctx.arn("sagemaker", f"model-package/{group_prefix}*"),
                ],
            },
        ],
    }


def group_read_policy(
    group_arn: str, reader_account_ids: list[str], partition: str
) -> dict[str, Any]:
    """Lets other environments' accounts read a group and its packages (promotion)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadForPromotion",
                "Effect": "Allow",
                "Principal": {
                    "AWS": [
                        f"arn:{partition}:iam::{account}:root" for account in reader_account_ids
                    ]
                },
                "Action": READ_ACTIONS,
                "Resource": [
                    group_arn,
                    group_arn.replace(":model-package-group/", ":model-package/") + "/*",
                ],
            }
        ],
    }
