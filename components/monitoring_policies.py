"""The alert topic's policy and the alarm and dashboard bodies (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext

PIPELINE_METRICS = "AWS/Sagemaker/ModelBuildingPipeline"
ENDPOINT_METRICS = "AWS/SageMaker"
DASHBOARD_PERIOD_SECONDS = 300


def alert_topic_policy(ctx: AwsContext, topic_arn: str, base: str) -> dict[str, Any]:
    """Who may publish alerts: this stack's EventBridge rules and CloudWatch alarms (named
    `<base>-*`), and the Prometheus Alertmanager and AWS Budgets of this account."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EventBridgeRulesOfThisStack",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("events")},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnLike": {"aws:SourceArn": ctx.arn("events", f"rule/{base}-*")}},
            },
            {
                "Sid": "CloudWatchAlarmsOfThisStack",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("cloudwatch")},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": ctx.arn("cloudwatch", f"alarm:{base}-*")}
                },
            },
            {
                # The Alertmanager of this account's managed Prometheus workspaces.
                "Sid": "PrometheusAlertmanagerOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("aps")},
                "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                "Resource": topic_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": ctx.arn("aps", "workspace/*")},
                    "StringEquals": {"aws:SourceAccount": ctx.account_id},
                },
            },
            {
                "Sid": "BudgetsOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal("budgets")},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account_id}},
            },
        ],
    }


def failed_execution_pattern(pipeline_arns: list[str]) -> dict[str, Any]:
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": pipeline_arns},
    }


def dashboard_body(
    region: str, pipeline_names: list[str], endpoint_names: list[str]
) -> dict[str, Any]:
    """Pipeline executions started, succeeded and failed and how long they took; each
    endpoint's invocations, errors and latency."""

    def widget(title: str, stat: str, metrics: list[list[str]]) -> dict[str, Any]:
        return {
            "type": "metric",
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": DASHBOARD_PERIOD_SECONDS,
                "metrics": metrics,
            },
        }

    def endpoint_metrics(names: list[str]) -> list[list[str]]:
        return [
            [ENDPOINT_METRICS, metric, "EndpointName", endpoint, "VariantName", "AllTraffic"]
            for endpoint in endpoint_names
            for metric in names
        ]

    def pipeline_widget(title: str, metrics: list[str], stat: str) -> dict[str, Any]:
        series = [
            [PIPELINE_METRICS, metric, "PipelineName", name]
            for name in pipeline_names
            for metric in metrics
        ]
        return widget(title, stat, series)

    return {
        "widgets": [
            pipeline_widget(
                "Pipeline executions",
                ["ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed"],
                "Sum",
            ),
            pipeline_widget("Pipeline execution duration (ms)", ["ExecutionDuration"], "Maximum"),
            *(
                [
                    widget(
                        "Endpoint invocations and errors",
                        "Sum",
                        endpoint_metrics(
                            ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors"]
                        ),
                    ),
                    widget(
                        "Endpoint model latency p99 (µs)", "p99", endpoint_metrics(["ModelLatency"])
                    ),
                ]
                if endpoint_names
                else []
            ),
        ]
    }
