"""The drift rule's event pattern, the drift queue's policy and the retrain trigger's
permissions (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext


def drift_events_pattern(ctx: AwsContext, schedule_name: str) -> dict[str, Any]:
    """A monitoring execution of this schedule that completed with violations."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "detail": {
            "ProcessingJobStatus": ["Completed"],
            "ExitMessage": [{"prefix": "CompletedWithViolations"}],
            "MonitoringScheduleArn": [ctx.arn("sagemaker", f"monitoring-schedule/{schedule_name}")],
        },
    }


def drift_queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Only the model's drift rule sends; nobody talks to the queue without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DriftRuleSends",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
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


def trigger_policy(
    pipeline_arn: str, log_group_arn: str, queue_arn: str, key_arn: str
) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartTrainingWithinCooldown",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:ListPipelineExecutions",
                    "sagemaker:StartPipelineExecution",
                ],
                "Resource": pipeline_arn,
            },
            {
                # What Lambda's event source mapping calls with the function's role (Lambda
                # Developer Guide, "Using Lambda with Amazon SQS": execution role permissions).
                "Sid": "ConsumeDriftEvents",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                "Resource": queue_arn,
            },
            {
                "Sid": "DecryptDriftEventsThroughSqs",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": key_arn,
                "Condition": {"StringLike": {"kms:ViaService": "sqs.*.amazonaws.com"}},
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:*",
            },
        ],
    }
