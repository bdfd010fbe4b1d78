"""KMS key policies (pure data).

Both keys follow the same shape: the account root administers the key with an explicit list
of admin actions (never `kms:*`, and the lockout safety check is never bypassed), account
principals use it only through the AWS services that encrypt with it, and service principals
that write on their own behalf (CloudWatch Logs, S3 access logging, alarm and event
publishers to encrypted SNS topics) are scoped to this account and region.
"""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext

Statement = dict[str, Any]

ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]
USE_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
]
GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]

# Services that encrypt with the data key on a caller's behalf. Add one here when a component
# starts encrypting another service's resources with the data key.
DATA_KEY_SERVICES = (
    "s3",
    "sagemaker",
    "ecr",
    "ec2",  # EBS volumes of training instances and EKS nodes
    "eks",
    "sns",
    "sqs",
    "secretsmanager",
    "glue",
    "lambda",
)
# Services that publish to encrypted SNS topics themselves (alarms, EventBridge rules,
# budget alerts, Prometheus Alertmanager).
SNS_PUBLISHERS = ("cloudwatch", "events", "budgets", "aps")


def _administration(ctx: AwsContext) -> Statement:
    return {
        "Sid": "KeyAdministrationByAccount",
        "Effect": "Allow",
        "Principal": {"AWS": ctx.account_root},
        "Action": ADMIN_ACTIONS,
        "Resource": "*",
    }


def _use_via_services(ctx: AwsContext, services: tuple[str, ...]) -> list[Statement]:
    via = [ctx.service_principal(s, regional=True) for s in services]
    scoped = {"StringEquals": {"kms:CallerAccount": ctx.account_id, "kms:ViaService": via}}
    return [
        {
            "Sid": "KeyUseThroughAwsServices",
            "Effect": "Allow",
            "Principal": {"AWS": ctx.account_root},
            "Action": USE_ACTIONS,
            "Resource": "*",
            "Condition": scoped,
        },
        {
            # SageMaker, EBS and EKS hold grants on the key for the resources they encrypt.
            "Sid": "GrantsForAwsResources",
            "Effect": "Allow",
            "Principal": {"AWS": ctx.account_root},
            "Action": GRANT_ACTIONS,
            "Resource": "*",
            "Condition": {
                **scoped,
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            },
        },
    ]


def data_key_policy(ctx: AwsContext) -> dict[str, Any]:
    """Datasets, models, images, feature store, queues, topics, secrets, volumes."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _administration(ctx),
            *_use_via_services(ctx, DATA_KEY_SERVICES),
            {
                "Sid": "PublishToEncryptedTopics",
                "Effect": "Allow",
                "Principal": {"Service": [ctx.service_principal(s) for s in SNS_PUBLISHERS]},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            },
        ],
    }


def logs_key_policy(ctx: AwsContext) -> dict[str, Any]:
    """CloudWatch log groups and the S3 access-log bucket."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _administration(ctx),
            # People read access logs through S3.
            *_use_via_services(ctx, ("s3",)),
            {
                "Sid": "CloudWatchLogsOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("logs", regional=True)},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": ctx.arn("logs", "log-group:*")
                    }
                },
            },
            {
                "Sid": "S3ServerAccessLogDelivery",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("logging.s3")},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            },
        ],
    }


# parliament findings accepted for key policies (tests/test_iam_lint.py), and why.
PARLIAMENT_ACCEPTED = {
    "RESOURCE_STAR": "in a key policy, Resource '*' means the key the policy is attached to",
    "UNKNOWN_CONDITION_FOR_ACTION": (
        "kms:EncryptionContext:aws:logs:arn is the condition AWS documents for CloudWatch Logs; "
        "parliament expands kms:Describe* to actions (DescribeCustomKeyStores) it does not apply to"
    ),
    "MISMATCHED_TYPE": (
        "AWS documents ArnLike on kms:EncryptionContext:aws:logs:arn; parliament types every "
        "encryption-context key as a plain string"
    ),
}
