"""IAM documents of the model registry (pure data): the MLflow server's role and the model
package groups' cross-account read policy."""

from __future__ import annotations

from typing import Any

READ_ACTIONS = [
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages",
]


def mlflow_server_policy(bucket_arn: str, prefix: str, key_arn: str) -> dict[str, Any]:
    """Artifacts under one prefix of one bucket and that bucket's key. No registry rights:
    automatic model registration is off (the pipelines' Register step creates packages, and
    AWS would sync into groups named `<model>-<hash>`, outside this environment's names)."""
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
