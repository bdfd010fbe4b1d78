"""The drift rule's event pattern and the retrain trigger's permissions (pure data)."""

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


def trigger_policy(pipeline_arn: str, log_group_arn: str) -> dict[str, Any]:
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
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:*",
            },
        ],
    }
