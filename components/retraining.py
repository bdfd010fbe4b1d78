"""DriftRetraining: Model Monitor violations on a model's endpoint alert the team and start
the model's training pipeline again, at most once per cooldown.

The hourly data-quality monitor (put in place by the deployment pipeline's Monitor step) runs
as processing jobs; one that completes with violations raises a "Processing Job State Change"
event. A rule per model sends it to the alert topic and to a FIFO queue (one message group,
encrypted with the data key) that feeds the retrain trigger, a small Lambda function
(pipelines/steps/retrain_trigger.py) that starts the training pipeline unless it started
within the cooldown, so a flapping monitor cannot start a retraining storm. The FIFO group
serialises the trigger (no reserved concurrency, which a new account's Lambda quota may not
allow); events it keeps failing on go to a dead-letter queue, and both that queue and the
function's errors alarm on the alert topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.alert_sources import AlertSources
from components.aws_context import AwsContext
from components.lambda_package import (
    RUNTIME,
    code_archive,
    function_logs_and_role,
    package_files,
)
from components.naming import Names
from components.queues import DeadLetterArgs, dead_letter_queue, redrive_to
from components.retraining_policies import (
    drift_events_pattern,
    drift_queue_policy,
    trigger_policy,
)
from pipelines.environment_variables import (
    MLOPS_RETRAIN_COOLDOWN_HOURS,
    MLOPS_TRAINING_PIPELINE_NAME,
)
from pipelines.steps.monitor import schedule_name_for

# The trigger's code: its module and what it imports, as a package.
TRIGGER_FILES = package_files("retrain_trigger")
TRIGGER_HANDLER = "pipelines.steps.retrain_trigger.handler"
TRIGGER_TIMEOUT_SECONDS = 30
# SQS hides a message this long while the trigger works on it (Lambda: >= 6x the timeout).
VISIBILITY_TIMEOUT_SECONDS = 6 * TRIGGER_TIMEOUT_SECONDS
# Receives before an event goes to the dead-letter queue (SageMaker throttling passes).
MAX_RECEIVES = 5
# One message group: Lambda processes a FIFO group one batch at a time.
MESSAGE_GROUP = "drift"


@dataclass
class DriftRetrainingArgs:
    model: str
    context: AwsContext
    names: Names
    endpoint_name: str
    training_pipeline_name: str
    training_pipeline_arn: pulumi.Input[str]
    cooldown_hours: int
    alert_topic_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int


class DriftRetraining(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: DriftRetrainingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:retraining:DriftRetraining", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        function_name = args.names.function(f"{args.model}-retrain")
        logs, role = function_logs_and_role(
            function_name,
            logs_resource=f"{name}-logs",
            role_resource=f"{name}-role",
            description=f"Starts {args.training_pipeline_name} on drift, once per cooldown",
            context=args.context,
            logs_key_arn=args.logs_key_arn,
            retention_days=args.log_retention_days,
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-drift",
            name=args.names.event_rule(f"{args.model}-drift"),
            description=f"Model Monitor found violations on {args.endpoint_name}",
            event_pattern=json.dumps(
                drift_events_pattern(args.context, schedule_name_for(args.endpoint_name))
            ),
            opts=child,
        )
        self.alert_sources = AlertSources(rules=[rule.arn])
        queue = self._queue(name, args, rule, child)
        access = aws.iam.RolePolicy(
            f"{name}-access",
            role=role.id,
            policy=pulumi.Output.all(
                args.training_pipeline_arn, logs.arn, queue.arn, args.data_key_arn
            ).apply(lambda values: json.dumps(trigger_policy(*values))),
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-trigger",
            name=function_name,
            description=f"Retrains {args.model} when Model Monitor finds violations",
            role=role.arn,
            runtime=RUNTIME,
            handler=TRIGGER_HANDLER,
            code=code_archive(TRIGGER_FILES),
            timeout=TRIGGER_TIMEOUT_SECONDS,
            kms_key_arn=args.data_key_arn,
            environment={
                "variables": {
                    MLOPS_TRAINING_PIPELINE_NAME.name: args.training_pipeline_name,
                    MLOPS_RETRAIN_COOLDOWN_HOURS.name: str(args.cooldown_hours),
                }
            },
            logging_config={"log_format": "Text", "log_group": logs.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )
        aws.lambda_.EventSourceMapping(
            f"{name}-events",
            event_source_arn=queue.arn,
            function_name=function.arn,
            batch_size=10,
            function_response_types=["ReportBatchItemFailures"],
            # Lambda checks at creation that the role may receive from the queue.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access]),
        )
        self._errors_alarm(name, args, function_name, child)
        aws.cloudwatch.EventTarget(
            f"{name}-retrain",
            rule=rule.name,
            arn=queue.arn,
            sqs_target={"message_group_id": MESSAGE_GROUP},
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-alert", rule=rule.name, arn=args.alert_topic_arn, opts=child
        )
        self.register_outputs({"functionName": function.name, "queueUrl": queue.url})

    def _queue(
        self,
        name: str,
        args: DriftRetrainingArgs,
        rule: aws.cloudwatch.EventRule,
        child: pulumi.ResourceOptions,
    ) -> aws.sqs.Queue:
        purpose = f"{args.model}-retrain"
        dead_letters, depth = dead_letter_queue(
            f"{name}-dead-letters",
            DeadLetterArgs(
                queue_name=args.names.queue(f"{purpose}-dlq.fifo"),
                key_arn=args.data_key_arn,
                alarm_name=args.names.queue(f"{purpose}-dead-letters"),
                alarm_description=(
                    f"Drift events of {args.endpoint_name} the retrain trigger failed on "
                    f"{MAX_RECEIVES} times: {args.training_pipeline_name} did not start for "
                    "them; see the trigger's logs, then start it by hand if it should"
                ),
                alert_topic_arn=args.alert_topic_arn,
            ),
            child,
        )
        self.alert_sources.alarms.append(depth.arn)
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.names.queue(f"{purpose}.fifo"),
            fifo_queue=True,
            # EventBridge requires it of a FIFO target (it sends no deduplication id).
            content_based_deduplication=True,
            kms_master_key_id=args.data_key_arn,
            visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS,
            redrive_policy=redrive_to(dead_letters, MAX_RECEIVES),
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-queue-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, rule.arn).apply(
                lambda values: json.dumps(drift_queue_policy(*values))
            ),
            opts=child,
        )
        return queue

    def _errors_alarm(
        self,
        name: str,
        args: DriftRetrainingArgs,
        function_name: str,
        child: pulumi.ResourceOptions,
    ) -> None:
        alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-errors",
            name=f"{function_name}-errors",
            alarm_description=(
                f"The retrain trigger of {args.model} failed (the event is retried, then "
                "dead-lettered); see its logs"
            ),
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function_name},
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alert_topic_arn],
            opts=child,
        )
        self.alert_sources.alarms.append(alarm.arn)
