"""Monitoring: where an environment's alerts go, and what raises them.

An alert topic `mlops-<stack>-alerts` encrypted with the data key, with the subscribers the
stack file names; failed pipeline executions reach it through an EventBridge rule, CloudWatch
alarms on the pipelines' ExecutionFailed metric (actions enabled) and the budget's alerts
too; a dashboard of the pipelines' executions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_sources import AlertSources
from components.aws_context import AwsContext
from components.monitoring_policies import (
    ENDPOINT_METRICS,
    PIPELINE_METRICS,
    alert_topic_policy,
    dashboard_body,
    failed_execution_pattern,
)
from components.naming import Names
from pipelines.deployment import rollback_alarm_names
from stacks.deployment_settings import DeploymentSettings
from stacks.monitoring_settings import MonitoringSettings

# An execution that fails shows in the metric within its 5-minute period.
ALARM_PERIOD_SECONDS = 300
# Endpoint alarms watch minutes (they roll back a canary): 2 bad minutes out of 3.
ENDPOINT_PERIOD_SECONDS, ENDPOINT_EVALUATION_PERIODS, ENDPOINT_DATAPOINTS = 60, 3, 2
MICROSECONDS_PER_MS = 1000
# The topic and its policy moved here from MlPipelines; aliases keep them (and their
# subscriptions) instead of replacing them.
PREVIOUS_TOPIC_NAME = "mlops-pipelines-alerts"


@dataclass
class MonitoringArgs:
    settings: MonitoringSettings
    context: AwsContext
    names: Names
    data_key_arn: pulumi.Input[str]
    # model -> pipeline ARN and name (empty: the environment has no pipelines)
    pipeline_arns: dict[str, pulumi.Output[str]]
    pipeline_names: dict[str, str]
    # endpoint name -> its deployment settings (models that are deployed)
    endpoints: dict[str, DeploymentSettings]
    # The URN of the component that owned the topic before (MlPipelines).
    previous_owner_urn: pulumi.Input[str]


class Monitoring(pulumi.ComponentResource):
    alert_topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:monitoring:Monitoring", name, None, opts)
        self._name, self._args = name, args
        # What publishes to the topic from here; the environment passes the other
        # components' to admit_publishers (the topic policy names each exact ARN).
        self.alert_sources = AlertSources()
        child = pulumi.ResourceOptions(parent=self)
        previous_owner = args.previous_owner_urn
        topic = aws.sns.Topic(
            f"{name}-alerts",
            name=args.names.alert_topic(),
            kms_master_key_id=args.data_key_arn,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    aliases=[pulumi.Alias(name=PREVIOUS_TOPIC_NAME, parent=previous_owner)]
                ),
            ),
        )
        self.alert_topic_arn = topic.arn
        self._topic = topic
        for index, subscription in enumerate(args.settings.alert_subscriptions):
            aws.sns.TopicSubscription(
                f"{name}-alerts-subscriber-{index}",
                topic=topic.arn,
                protocol=subscription.protocol,
                endpoint=subscription.endpoint,
                opts=child,
            )
        if args.pipeline_arns:
            self._pipeline_alerts(topic)
        for endpoint, deployment in sorted(args.endpoints.items()):
            self._endpoint_alarms(topic, endpoint, deployment)
        self.register_outputs({"alertTopicArn": self.alert_topic_arn})

    def _pipeline_alerts(self, topic: aws.sns.Topic) -> None:
        name, args = self._name, self._args
        child = pulumi.ResourceOptions(parent=self)
        rule = aws.cloudwatch.EventRule(
            f"{name}-failed-executions",
            name=args.names.event_rule("failed-executions"),
            description="Failed executions of this environment's pipelines",
            event_pattern=pulumi.Output.all(*args.pipeline_arns.values()).apply(
                lambda arns: json.dumps(failed_execution_pattern(list(arns)))
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-failed-executions-alert", rule=rule.name, arn=topic.arn, opts=child
        )
        self.alert_sources.rules.append(rule.arn)
        for model, pipeline in sorted(args.pipeline_names.items()):
            failed = aws.cloudwatch.MetricAlarm(
                f"{name}-{model}-pipeline-failed",
                name=f"{pipeline}-failed",
                alarm_description=f"An execution of {pipeline} failed",
                namespace=PIPELINE_METRICS,
                metric_name="ExecutionFailed",
                dimensions={"PipelineName": pipeline},
                statistic="Sum",
                period=ALARM_PERIOD_SECONDS,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                # No executions is not a failure.
                treat_missing_data="notBreaching",
                actions_enabled=True,
                alarm_actions=[topic.arn],
                opts=child,
            )
            self.alert_sources.alarms.append(failed.arn)
        aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.names.base,
            dashboard_body=json.dumps(
                dashboard_body(
                    args.context.region,
                    sorted(args.pipeline_names.values()),
                    sorted(args.endpoints),
                )
            ),
            opts=child,
        )

    def _endpoint_alarms(
        self, topic: aws.sns.Topic, endpoint: str, deployment: DeploymentSettings
    ) -> None:
        """Server errors and p99 model latency of the endpoint: they alert, and the
        deployment pipeline names them as the blue/green rollback alarms."""
        name = self._name
        child = pulumi.ResourceOptions(parent=self)
        variant = {"EndpointName": endpoint, "VariantName": "AllTraffic"}
        common: dict[str, Any] = {
            "namespace": ENDPOINT_METRICS,
            "dimensions": variant,
            "period": ENDPOINT_PERIOD_SECONDS,
            "evaluation_periods": ENDPOINT_EVALUATION_PERIODS,
            "datapoints_to_alarm": ENDPOINT_DATAPOINTS,
            "comparison_operator": "GreaterThanOrEqualToThreshold",
            "treat_missing_data": "notBreaching",
            "actions_enabled": True,
            "alarm_actions": [topic.arn],
            "ok_actions": [topic.arn],
        }
        errors, latency = rollback_alarm_names(endpoint)
        errors_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-{errors}",
            name=errors,
            alarm_description=f"{endpoint} answers with server errors",
            metric_name="Invocation5XXErrors",
            statistic="Sum",
            threshold=1,
            opts=child,
            **common,
        )
        latency_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-{latency}",
            name=latency,
            alarm_description=(
                f"{endpoint}: model latency p99 over {deployment.latency_p99_ms} ms"
            ),
            metric_name="ModelLatency",
            extended_statistic="p99",
            threshold=deployment.latency_p99_ms * MICROSECONDS_PER_MS,  # ModelLatency is in µs
            opts=child,
            **common,
        )
        self.alert_sources.alarms += [errors_alarm.arn, latency_alarm.arn]

    def admit_publishers(self, *others: AlertSources) -> None:
        """The topic policy: exactly this component's and the others' rules, alarms,
        workspaces and budgets publish. Called once every component that alerts exists."""
        name, args = self._name, self._args
        sources = AlertSources()
        for each in (self.alert_sources, *others):
            sources.add(each)
        arns = pulumi.Output.all(
            topic=self._topic.arn,
            rules=pulumi.Output.all(*sources.rules),
            alarms=pulumi.Output.all(*sources.alarms),
            workspaces=pulumi.Output.all(*sources.workspaces),
            budgets=pulumi.Output.all(*sources.budgets),
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self._topic.arn,
            policy=arns.apply(lambda v: json.dumps(alert_topic_policy(args.context, **v))),
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(parent=self),
                pulumi.ResourceOptions(
                    aliases=[
                        pulumi.Alias(
                            name=f"{PREVIOUS_TOPIC_NAME}-policy", parent=args.previous_owner_urn
                        )
                    ]
                ),
            ),
        )
