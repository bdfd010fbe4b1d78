"""IAM documents for the role VPC Flow Logs assumes to write to CloudWatch Logs (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext


def flow_logs_trust_policy(ctx: AwsContext) -> dict[str, Any]:
    # SourceAccount/SourceArn conditions stop the confused-deputy problem.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("vpc-flow-logs")},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ctx.account_id},
                    "ArnLike": {"aws:SourceArn": ctx.arn("ec2", "vpc-flow-log/*")},
                },
            }
        ],
    }


def flow_logs_write_policy(log_group_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteFlowLogs",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
            }
        ],
    }
