"""Monitoring: the environment's encrypted alert topic (moved from MlPipelines without
replacement), its subscribers, who may publish to it, pipeline failure alerts and alarms,
the budget's alerts, and the dashboard."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from stacks import outputs
from stacks.loader import SettingsError, settings_from_config
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _policy(recording: StackRecording) -> dict[str, Any]:
    document = json.loads(recording.named("mlops-monitoring-alerts-policy").inputs["policy"])
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_alert_topic_is_encrypted_and_kept_through_the_move(recording: StackRecording) -> None:
    topic = recording.named("mlops-monitoring-alerts")
    assert topic.inputs["name"] == f"mlops-{recording.stack}-alerts"
    assert topic.inputs["kmsMasterKeyId"] == recording.outputs[outputs.DATA_KEY_ARN]
    assert recording.outputs[outputs.ALERT_TOPIC_ARN] == topic.outputs["arn"]
    # Its old identity under MlPipelines: an update moves it instead of replacing it (and
    # its policy, whose deletion would reset the topic's policy).
    assert any(alias.endswith("mlops-pipelines-alerts") for alias in topic.aliases)
    policy = recording.named("mlops-monitoring-alerts-policy")
    assert any(alias.endswith("mlops-pipelines-alerts-policy") for alias in policy.aliases)


def test_subscribers_follow_the_stack_file(recording: StackRecording) -> None:
    subscriptions = recording.of_type("aws:sns/topicSubscription:TopicSubscription")
    wanted = recording.settings.monitoring.alert_subscriptions
    assert len(subscriptions) == len(wanted)
    # Resources register concurrently: match each subscriber by its logical name.
    for index, subscriber in enumerate(wanted):
        found = recording.named(f"mlops-monitoring-alerts-subscriber-{index}").inputs
        assert (found["protocol"], found["endpoint"]) == (subscriber.protocol, subscriber.endpoint)
    topic = recording.named("mlops-monitoring-alerts")
    assert all(s.inputs["topic"] == topic.outputs["arn"] for s in subscriptions)


def test_prod_pages_on_call(prod: StackRecording) -> None:
    protocols = {s.protocol for s in prod.settings.monitoring.alert_subscriptions}
    assert protocols == {"email", "https"}


def _topic_arns(recording: StackRecording) -> set[str]:
    """The alert topic's ARN as the mock reports it and as AWS forms it from its name."""
    topic = recording.named("mlops-monitoring-alerts")
    region, account = recording.settings.aws.region, recording.settings.aws.account_id
    return {topic.outputs["arn"], f"arn:aws:sns:{region}:{account}:{topic.inputs['name']}"}


def _publishers(recording: StackRecording) -> dict[str, set[str]]:
    """What the stack points at the alert topic, found from the resources themselves."""
    topic = _topic_arns(recording)
    rules = {
        target.inputs["rule"]
        for target in recording.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if target.inputs["arn"] in topic
    }
    actions = ("alarmActions", "okActions", "insufficientDataActions")
    return {
        "events": {
            r.outputs["arn"]
            for r in recording.of_type("aws:cloudwatch/eventRule:EventRule")
            if r.inputs["name"] in rules
        },
        "cloudwatch": {
            alarm.outputs["arn"]
            for alarm in recording.of_type(ALARM)
            if topic & {a for key in actions for a in alarm.inputs.get(key) or []}
        },
        "aps": {
            recording.named("mlops-gpu-metrics-workspace").outputs["arn"]
            for _ in recording.of_type("aws:amp/alertManagerDefinition:AlertManagerDefinition")
        },
        "budgets": {
            b.outputs["arn"]
            for b in recording.of_type("aws:budgets/budget:Budget")
            if any(
                topic & set(n.get("subscriberSnsTopicArns") or [])
                for n in b.inputs.get("notifications") or []
            )
        },
    }


def test_exactly_the_stacks_own_publishers_may_publish(recording: StackRecording) -> None:
    """The topic policy names the exact ARN of every rule, alarm, workspace and budget the
    stack points at the topic, and nothing else: a prefix like `mlops-dev-*` would also let
    an on-demand copy's (`mlops-dev-alice-*`) publish."""
    account = recording.settings.aws.account_id
    statements = {s["Principal"]["Service"]: s for s in _policy(recording).values()}
    publishers = _publishers(recording)
    assert publishers["events"] and publishers["cloudwatch"] and publishers["budgets"]
    for service, arns in publishers.items():
        principal = f"{service}.amazonaws.com"
        if not arns:
            assert principal not in statements
            continue
        condition = statements[principal]["Condition"]
        assert set(condition["ArnEquals"]["aws:SourceArn"]) == arns, service
        assert condition["StringEquals"] == {"aws:SourceAccount": account}
    assert set(statements) == {f"{s}.amazonaws.com" for s, arns in publishers.items() if arns}


def test_retraining_and_dead_letter_alarms_are_admitted(prod: StackRecording) -> None:
    """Publishers created outside Monitoring (retraining, the schedule's dead letters) are
    in the topic policy too."""
    admitted = {
        arn
        for statement in _policy(prod).values()
        for arn in statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    }
    for name in (
        "mlops-digits-retraining-drift",
        "mlops-digits-retraining-errors",
        "mlops-digits-retraining-dead-letters-alarm",
        "mlops-pipelines-schedule-dlq-alarm",
    ):
        assert prod.named(name).outputs["arn"] in admitted, name


def test_the_data_key_lets_the_publishers_encrypt(recording: StackRecording) -> None:
    key = recording.named("mlops-encryption-data-key")
    statements = json.loads(key.inputs["policy"])["Statement"]
    publish = next(s for s in statements if s["Sid"] == "PublishToEncryptedTopics")
    assert set(publish["Principal"]["Service"]) == {
        "cloudwatch.amazonaws.com",
        "budgets.amazonaws.com",
        "aps.amazonaws.com",
    }
    account = recording.settings.aws.account_id
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": account}}
    # EventBridge sends no source account to KMS: its statement is scoped by the topic ARN
    # in the encryption context, and this stack's alert topic matches it.
    events = next(
        s for s in statements if s["Sid"] == "EventBridgeDeliversToThisEnvironmentsTopics"
    )
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    pattern = events["Condition"]["ArnLike"]["kms:EncryptionContext:aws:sns:topicArn"]
    topic = recording.named("mlops-monitoring-alerts")
    region = recording.settings.aws.region
    assert fnmatch.fnmatchcase(f"arn:aws:sns:{region}:{account}:{topic.inputs['name']}", pattern)
    other = f"arn:aws:sns:{region}:{account}:someone-elses-topic"
    assert not fnmatch.fnmatchcase(other, pattern)


def test_failed_executions_reach_the_topic(recording: StackRecording) -> None:
    topic = recording.named("mlops-monitoring-alerts")
    rule = recording.named("mlops-monitoring-failed-executions")
    assert rule.inputs["name"] == f"mlops-{recording.stack}-failed-executions"
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail"] == {
        "currentPipelineExecutionStatus": ["Failed"],
        "pipelineArn": list(recording.outputs[outputs.PIPELINE_ARNS].values()),
    }
    target = recording.named("mlops-monitoring-failed-executions-alert")
    assert target.inputs["arn"] == topic.outputs["arn"]


def test_a_failure_alarm_per_pipeline_with_actions(recording: StackRecording) -> None:
    topic = recording.named("mlops-monitoring-alerts")
    alarms = {
        a.inputs["dimensions"]["PipelineName"]: a.inputs
        for a in recording.of_type(ALARM)
        if a.inputs["metricName"] == "ExecutionFailed"
    }
    assert set(alarms) == {
        f"mlops-{recording.stack}-{m}-training" for m in recording.settings.models
    }
    for pipeline, alarm in alarms.items():
        assert alarm["name"] == f"{pipeline}-failed"
        assert alarm["namespace"] == "AWS/Sagemaker/ModelBuildingPipeline"
        assert alarm["metricName"] == "ExecutionFailed"
        assert (alarm["statistic"], alarm["threshold"]) == ("Sum", 1)
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["actionsEnabled"] is True
        assert alarm["alarmActions"] == [topic.outputs["arn"]]


def test_budget_alerts_also_reach_the_topic(recording: StackRecording) -> None:
    (budget,) = recording.of_type("aws:budgets/budget:Budget")
    topic = recording.named("mlops-monitoring-alerts")
    for notification in budget.inputs["notifications"]:
        assert notification["subscriberSnsTopicArns"] == [topic.outputs["arn"]]


def test_dashboard_shows_each_pipelines_executions(recording: StackRecording) -> None:
    dashboard = recording.named("mlops-monitoring-dashboard")
    assert dashboard.inputs["dashboardName"] == f"mlops-{recording.stack}"
    body = json.loads(dashboard.inputs["dashboardBody"])
    executions, durations, training, invocations, latency, drift = body["widgets"]
    pipeline = f"mlops-{recording.stack}-digits-training"
    endpoint = f"mlops-{recording.stack}-digits"
    assert [m[1] for m in invocations["properties"]["metrics"]] == [
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
    ]
    step = ["StepDuration", "PipelineName", pipeline, "StepName", "Train"]
    assert training["properties"]["metrics"] == [["AWS/Sagemaker/ModelBuildingPipeline", *step]]
    ((search,),) = drift["properties"]["metrics"]
    assert search["expression"].startswith("SEARCH('{aws/sagemaker/Endpoints/data-metrics,")
    assert f'Endpoint="{endpoint}"' in search["expression"]
    assert latency["properties"]["stat"] == "p99"
    assert latency["properties"]["metrics"] == [
        ["AWS/SageMaker", "ModelLatency", "EndpointName", endpoint, "VariantName", "AllTraffic"]
    ]
    assert [m[1] for m in executions["properties"]["metrics"]] == [
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
    ]
    assert all(m[3] == pipeline for m in executions["properties"]["metrics"])
    assert durations["properties"]["metrics"] == [
        ["AWS/Sagemaker/ModelBuildingPipeline", "ExecutionDuration", "PipelineName", pipeline]
    ]


def test_without_models_the_topic_still_serves_the_budget() -> None:
    config = stack_config("test")
    del config["mlops-platform:models"]
    recording = evaluate_config("test", config)
    topic = recording.named("mlops-monitoring-alerts")
    assert recording.outputs[outputs.ALERT_TOPIC_ARN] == topic.outputs["arn"]
    assert recording.of_type(ALARM) == []
    assert recording.of_type("aws:cloudwatch/eventRule:EventRule") == []


@pytest.mark.parametrize(
    ("subscription", "message"),
    [
        (
            {"protocol": "email", "endpoint": "ml-platform-team"},
            "alert_subscriptions[0].endpoint: a email endpoint must look like name@example.com",
        ),
        (
            {"protocol": "https", "endpoint": "http://hooks.example.com"},
            "alert_subscriptions[0].endpoint: a https endpoint must look like https://",
        ),
        (
            {"protocol": "sms", "endpoint": "+3531234567"},
            "alert_subscriptions[0].protocol: ",
        ),
    ],
)
def test_bad_subscribers_are_named(subscription: dict[str, str], message: str) -> None:
    config = stack_config("dev")
    config["mlops-platform:monitoring"] = {"alert_subscriptions": [subscription]}
    with pytest.raises(SettingsError) as caught:
        settings_from_config(config, source="stacks/Pulumi.dev.yaml")
    assert f"mlops-platform:monitoring.{message}" in str(caught.value)
