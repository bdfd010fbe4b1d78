"""Who may do what around cluster-backed training (pure data): the launcher Lambda, the
pipelines that send it requests, and the queue between them."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext
from components.naming import Names

# The EKS access policy the launcher gets, in the team namespaces only: create and read Jobs.
EDIT_ACCESS_POLICY = "AmazonEKSEditPolicy"
# EKS access policies know only the built-in API groups. Where the training operator runs,
# the launcher's access entry also carries this Kubernetes group, which a Role in each team
# namespace lets create PyTorchJobs.
LAUNCHER_GROUP = "mlops:cluster-launcher"
PYTORCH_JOB_ROLE = "mlops-launcher-pytorchjobs"


def pipeline_executions_arn(ctx: AwsContext, names: Names) -> str:
    """Every execution of this environment's pipelines (their callback steps)."""
    return ctx.arn("sagemaker", f"pipeline/{names.base}-*/execution/*")


def callback_statement(ctx: AwsContext, names: Names) -> dict[str, Any]:
    """Completing a callback step of this environment's pipelines, and nothing else."""
    return {
        "Sid": "CompleteCallbackSteps",
        "Effect": "Allow",
        "Action": [
            "sagemaker:SendPipelineExecutionStepSuccess",
            "sagemaker:SendPipelineExecutionStepFailure",
        ],
        "Resource": pipeline_executions_arn(ctx, names),
    }


def launcher_policy(
    ctx: AwsContext,
    names: Names,
    *,
    queue_arn: str,
    key_arn: str,
    models_bucket_arn: str,
    log_group_arn: str,
    subnet_ids: list[str],
    security_group_id: str,
) -> dict[str, Any]:
    """The launcher reads its queue, stages step code into the teams' prefixes, fails steps
    it cannot start, and attaches to the VPC (its network interfaces only)."""
    interfaces = ctx.arn("ec2", "network-interface/*")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConsumeRequests",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility",
                ],
                "Resource": queue_arn,
            },
            {
                # The queue and the buckets encrypt with the data key.
                "Sid": "UseDataKeyThroughSqsAndS3",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": key_arn,
                "Condition": {
                    "StringLike": {"kms:ViaService": ["sqs.*.amazonaws.com", "s3.*.amazonaws.com"]}
                },
            },
            {
                "Sid": "ListStepCode",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": models_bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": ["code/*"]}},
            },
            {
                "Sid": "ReadStepCode",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{models_bucket_arn}/code/*",
            },
            {
                "Sid": "StageIntoTeamPrefixes",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{models_bucket_arn}/teams/*",
            },
            callback_statement(ctx, names),
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:*",
            },
            {
                # What Lambda needs to place the function in the VPC, scoped to its subnets
                # and security group (DescribeNetworkInterfaces has no resource scope).
                "Sid": "AttachToVpc",
                "Effect": "Allow",
                "Action": "ec2:CreateNetworkInterface",
                "Resource": [
                    interfaces,
                    *(ctx.arn("ec2", f"subnet/{s}") for s in subnet_ids),
                    ctx.arn("ec2", f"security-group/{security_group_id}"),
                ],
            },
            {
                "Sid": "ManageOwnInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": interfaces,
            },
            {
                # As AWSLambdaVPCAccessExecutionRole grants (neither has a resource scope).
                "Sid": "SeeInterfaces",
                "Effect": "Allow",
                "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                "Resource": "*",
            },
        ],
    }


def send_requests_policy(queue_arn: str, key_arn: str) -> dict[str, Any]:
    """The pipelines' execution role puts the callback steps' requests on the queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendTrainingRequests",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "EncryptRequests",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key_arn,
                "Condition": {"StringLike": {"kms:ViaService": "sqs.*.amazonaws.com"}},
            },
        ],
    }


def queue_policy(queue_arn: str, sender_role_arn: str) -> dict[str, Any]:
    """Only this environment's pipelines send; nobody talks to the queue without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PipelinesSend",
                "Effect": "Allow",
                "Principal": {"AWS": sender_role_arn},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyWithoutTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


def pytorch_job_rbac(namespace: str) -> list[dict[str, Any]]:
    """A Role letting the launcher's group run PyTorchJobs in a team namespace, and its
    binding (manifests)."""
    metadata = {
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": "pulumi"},
    }
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": PYTORCH_JOB_ROLE, **metadata},
            "rules": [
                {
                    "apiGroups": ["kubeflow.org"],
                    "resources": ["pytorchjobs"],
                    "verbs": ["create", "get", "list", "watch", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": PYTORCH_JOB_ROLE, **metadata},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": PYTORCH_JOB_ROLE,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": LAUNCHER_GROUP}
            ],
        },
    ]
