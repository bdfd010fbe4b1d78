"""The alert topic's policy and the alarm and dashboard bodies (pure data)."""

from __future__ import annotations

from typing import Any

from components.aws_context import AwsContext
from pipelines.training import TRAIN

PIPELINE_METRICS = "AWS/Sagemaker/ModelBuildingPipeline"
ENDPOINT_METRICS = "AWS/SageMaker"
# What Model Monitor's data-quality jobs publish (one metric per feature and statistic).
DRIFT_METRICS = "aws/sagemaker/Endpoints/data-metrics"
DASHBOARD_PERIOD_SECONDS = 300


def alert_topic_policy(
    ctx: AwsContext,
    topic: str,
    rules: list[str],
    alarms: list[str],
    workspaces: list[str],
    budgets: list[str],
) -> dict[str, Any]:
    """Who may publish alerts: exactly this environment's EventBridge rules, CloudWatch
    alarms, Prometheus workspaces and budgets, by ARN (aws:SourceArn, which each of these
    services sends to SNS); a kind with none gets no statement."""
    publishers = (
        ("EventBridgeRulesOfThisEnvironment", "events", rules, ["sns:Publish"]),
        ("CloudWatchAlarmsOfThisEnvironment", "cloudwatch", alarms, ["sns:Publish"]),
        # Alertmanager reads the topic's attributes before it publishes (AMP User Guide).
        (
            "PrometheusAlertmanagerOfThisEnvironment",
            "aps",
            workspaces,
            ["sns:Publish", "sns:GetTopicAttributes"],
        ),
        ("BudgetsOfThisEnvironment", "budgets", budgets, ["sns:Publish"]),
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": ctx.service_principal(service)},
                "Action": actions if len(actions) > 1 else actions[0],
                "Resource": topic,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": sorted(arns)},
                    "StringEquals": {"aws:SourceAccount": ctx.account_id},
                },
            }
            for sid, service, arns, actions in publishers
            if arns
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
    """Pipeline executions started, succeeded and failed, how long they and their training
    step took; each endpoint's invocations, errors, latency and data drift."""

    def widget(title: str, stat: str, metrics: list[list[Any]]) -> dict[str, Any]:
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

    def drift_widget() -> dict[str, Any]:
        """Model Monitor's drift distance per feature (one series per feature, found by a
        search: the features are the model's)."""
        searches = [
            [
                {
                    "expression": f"SEARCH('{{{DRIFT_METRICS},Endpoint,MonitoringSchedule}} "
                    f"Endpoint=\"{endpoint}\" feature_baseline_drift', 'Maximum', 3600)",
                    "id": f"drift{index}",
                }
            ]
            for index, endpoint in enumerate(endpoint_names)
        ]
        return widget("Data drift by feature (Model Monitor)", "Maximum", searches)

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
            widget(
                "Training step duration (ms)",
                "Maximum",
                [
                    [PIPELINE_METRICS, "StepDuration", "PipelineName", name, "StepName", TRAIN]
                    for name in pipeline_names
                ],
            ),
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
                    drift_widget(),
                ]
                if endpoint_names
                else []
            ),
        ]
    }
