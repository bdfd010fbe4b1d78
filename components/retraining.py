"""DriftRetraining: Model Monitor violations on a model's endpoint alert the team and start
the model's training pipeline again, at most once per cooldown.

The hourly data-quality monitor (put in place by the deployment pipeline's Monitor step) runs
as processing jobs; one that completes with violations raises a "Processing Job State Change"
event. A rule per model sends it to the alert topic and to the retrain trigger, a small
Lambda function (pipelines/steps/retrain_trigger.py) that starts the training pipeline
unless it started within the cooldown, so a flapping monitor cannot start a retraining storm.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.lambda_package import (
    RUNTIME,
    code_archive,
    function_logs_and_role,
    package_files,
)
from components.naming import Names
from components.retraining_policies import drift_events_pattern, trigger_policy
from pipelines.environment_variables import (
    MLOPS_RETRAIN_COOLDOWN_HOURS,
    MLOPS_TRAINING_PIPELINE_NAME,
)
from pipelines.steps.monitor import schedule_name_for

# The trigger's code: its module and what it imports, as a package.
TRIGGER_FILES = package_files("retrain_trigger")
TRIGGER_HANDLER = "pipelines.steps.retrain_trigger.handler"
TRIGGER_TIMEOUT_SECONDS = 30


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
        aws.iam.RolePolicy(
            f"{name}-access",
            role=role.id,
            policy=pulumi.Output.all(args.training_pipeline_arn, logs.arn).apply(
                lambda values: json.dumps(trigger_policy(values[0], values[1]))
            ),
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
            # One at a time: two violations at once must not both pass the cooldown check.
            reserved_concurrent_executions=1,
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
        rule = aws.cloudwatch.EventRule(
            f"{name}-drift",
            name=args.names.event_rule(f"{args.model}-drift"),
            description=f"Model Monitor found violations on {args.endpoint_name}",
            event_pattern=json.dumps(
                drift_events_pattern(args.context, schedule_name_for(args.endpoint_name))
            ),
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-invoked-by-rule",
            function=function.name,
            action="lambda:InvokeFunction",
            principal=args.context.service_principal("events"),
            source_arn=rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(f"{name}-retrain", rule=rule.name, arn=function.arn, opts=child)
        aws.cloudwatch.EventTarget(
            f"{name}-alert", rule=rule.name, arn=args.alert_topic_arn, opts=child
        )
        self.register_outputs({"functionName": function.name})
