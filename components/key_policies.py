"""KMS key policies (pure data).

Both keys follow the same shape: named roles (the deployer and the stack's key
administrators, never the whole account) administer the key with an explicit list of admin
actions (never `kms:*` or `kms:Create*`, which includes CreateGrant, and the lockout safety
check is never bypassed); account principals use it only through the AWS services that
encrypt with it and create grants only for AWS resources; service principals that write on
their own behalf are allowed under the conditions each one actually sends
(`policy/mlops_rules/key_use.py` holds what each service sends, with its source, and checks
every stack against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.aws_context import AwsContext

Statement = dict[str, Any]

# No `kms:Create*` (it includes kms:CreateGrant: an administrator could grant itself Decrypt
# and step around "only through AWS services") and no `kms:Put*` beyond the key policy.
ADMIN_ACTIONS = [
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:PutKeyPolicy",
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
PUBLISH_ACTIONS = ["kms:GenerateDataKey*", "kms:Decrypt"]

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
    # CreateSchedule encrypts the target payload with the caller's permissions through
    # Scheduler (Scheduler User Guide, "Encryption at rest").
    "scheduler",
)
# Services that publish to encrypted SNS topics themselves and accept `aws:SourceAccount`
# on the key (SNS Developer Guide, "Key management": alarms, budget alerts, Prometheus
# Alertmanager). EventBridge is not one of them: see `_eventbridge_deliveries`.
SNS_PUBLISHERS = ("cloudwatch", "budgets", "aps")
# EC2 Auto Scaling launches the EKS nodes and encrypts their root volumes through this
# service-linked role; the deployer grants it the key (components/training_cluster.py).
AUTOSCALING_SERVICE_ROLE = (
    "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
)


@dataclass(frozen=True)
class KeyOwners:
    """Who administers an environment's keys, and the name prefix of what uses them."""

    # IAM role ARNs: the deployer first (KMS's lockout check needs the caller of CreateKey
    # and PutKeyPolicy to keep PutKeyPolicy), then the stack's key administrators.
    administrators: tuple[str, ...]
    # `mlops-<stack>`: the topics, queues and schedules this environment names.
    base: str


def _administration(owners: KeyOwners) -> Statement:
    return {
        "Sid": "KeyAdministrationByNamedRoles",
        "Effect": "Allow",
        "Principal": {"AWS": list(owners.administrators)},
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


def _node_volume_grant(ctx: AwsContext, owners: KeyOwners) -> Statement:
    """The deployer calls CreateGrant itself (not through a service) for the Auto Scaling
    role: allowed for that grantee only. A key policy naming the service-linked role would
    fail in an account where it does not exist yet; a grant does not."""
    return {
        "Sid": "DeployerGrantsNodeVolumesToAutoScaling",
        "Effect": "Allow",
        "Principal": {"AWS": owners.administrators[0]},
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {
            "StringEquals": {
                "kms:GranteePrincipal": ctx.arn("iam", AUTOSCALING_SERVICE_ROLE, regional=False)
            }
        },
    }


def _eventbridge_deliveries(ctx: AwsContext, owners: KeyOwners) -> list[Statement]:
    """EventBridge rules deliver to this environment's encrypted topics and queues. It sends
    no `aws:SourceAccount`/`aws:SourceArn` to KMS (SNS Developer Guide: adding them "is not
    supported for EventBridge-to-encrypted topics"), so each statement is scoped by the
    encryption context the target service passes: the topic's or the queue's ARN."""
    contexts = {
        "Topics": ("kms:EncryptionContext:aws:sns:topicArn", "sns"),
        "Queues": ("kms:EncryptionContext:aws:sqs:arn", "sqs"),
    }
    return [
        {
            "Sid": f"EventBridgeDeliversToThisEnvironments{target}",
            "Effect": "Allow",
            "Principal": {"Service": ctx.service_principal("events")},
            "Action": PUBLISH_ACTIONS,
            "Resource": "*",
            "Condition": {"ArnLike": {context_key: ctx.arn(service, f"{owners.base}-*")}},
        }
        for target, (context_key, service) in contexts.items()
    ]


def _scheduler_payloads(ctx: AwsContext, owners: KeyOwners) -> Statement:
    """A schedule's execution role decrypts the target payload when the schedule fires
    (Scheduler User Guide, "Encryption at rest": the execution role calls kms:Decrypt; the
    encryption context names the schedule). Scoped to this environment's schedules."""
    return {
        "Sid": "SchedulerExecutionRolesDecryptPayloads",
        "Effect": "Allow",
        "Principal": {"AWS": ctx.account_root},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"kms:CallerAccount": ctx.account_id},
            "ArnLike": {
                "kms:EncryptionContext:aws:scheduler:schedule:arn": ctx.arn(
                    "scheduler", f"schedule/*/{owners.base}-*"
                )
            },
        },
    }


def data_key_policy(ctx: AwsContext, owners: KeyOwners) -> dict[str, Any]:
    """Datasets, models, images, feature store, queues, topics, secrets, volumes."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _administration(owners),
            *_use_via_services(ctx, DATA_KEY_SERVICES),
            _node_volume_grant(ctx, owners),
            {
                "Sid": "PublishToEncryptedTopics",
                "Effect": "Allow",
                "Principal": {"Service": [ctx.service_principal(s) for s in SNS_PUBLISHERS]},
                "Action": PUBLISH_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            },
            *_eventbridge_deliveries(ctx, owners),
            _scheduler_payloads(ctx, owners),
        ],
    }


def logs_key_policy(ctx: AwsContext, owners: KeyOwners) -> dict[str, Any]:
    """CloudWatch log groups. (The S3 access-log bucket uses SSE-S3: server access logging
    does not deliver to a bucket whose default encryption is SSE-KMS.)"""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _administration(owners),
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
        ],
    }


# parliament findings accepted for key policies (tests/test_iam_lint.py), and why.
PARLIAMENT_ACCEPTED = {
    "RESOURCE_STAR": "in a key policy, Resource '*' means the key the policy is attached to",
    "UNKNOWN_CONDITION_FOR_ACTION": (
        "kms:EncryptionContext:* keys are the conditions AWS documents for CloudWatch Logs, "
        "SNS, SQS and Scheduler; parliament expands kms:Describe* to actions "
        "(DescribeCustomKeyStores) it does not apply to"
    ),
    "MISMATCHED_TYPE": (
        "AWS documents ArnLike on kms:EncryptionContext:aws:logs:arn; parliament types every "
        "encryption-context key as a plain string"
    ),
}
