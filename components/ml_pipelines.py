"""MlPipelines: each model's training pipeline as an `aws.sagemaker.Pipeline`, its definition
built by `pipelines/` from this environment's real outputs; the step code in S3 under a
content hash; the execution role; EventBridge Scheduler schedules with an encrypted
dead-letter queue. Failed executions are watched by the Monitoring component.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws_context import AwsContext
from components.definition_cache import cached_definition
from components.naming import Names
from components.pipeline_policies import (
    execution_policy,
    scheduler_policy,
)
from components.step_code import StepCode, step_code
from components.trust_policies import service_trust_policy
from stacks.settings import ModelSettings, ScheduleSettings, Settings

CODE_PREFIX = "code"
# Scheduler keeps trying a run it could not start for an hour, then dead-letters it.
SCHEDULE_RETRY = {"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 5}
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass
class MlPipelinesArgs:
    settings: Settings
    stack: str
    context: AwsContext
    names: Names
    data_key_arn: pulumi.Input[str]
    bucket_names: dict[str, pulumi.Output[str]]  # by purpose: datasets, models, pipeline
    bucket_arns: dict[str, pulumi.Output[str]]
    repository_arn: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    tracking_server_arn: pulumi.Input[str]


class MlPipelines(pulumi.ComponentResource):
    pipeline_arns: dict[str, pulumi.Output[str]]
    pipeline_names: dict[str, str]

    def __init__(
        self, name: str, args: MlPipelinesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:pipelines:MlPipelines", name, None, opts)
        self._name, self._args = name, args
        code = step_code()
        code_uri = self._upload_code(code)
        role = self._execution_role()
        self.pipeline_names = {}
        self.pipeline_arns = {
            model: self._pipeline(model, settings, role, code_uri, code.digest)
            for model, settings in sorted(args.settings.models.items())
        }
        self._schedules()
        self.register_outputs({"pipeline_arns": self.pipeline_arns})

    def _child(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self)

    def _upload_code(self, code: StepCode) -> pulumi.Output[str]:
        """The `pipelines/` package under code/<hash>/pipelines/: immutable per content."""
        args = self._args
        bucket = args.bucket_names["models"]
        prefix = f"{CODE_PREFIX}/{code.short_hash}/pipelines/"
        for relative, path in code.files:
            aws.s3.BucketObjectv2(
                f"{self._name}-code-{relative.replace('/', '-').removesuffix('.py')}",
                bucket=bucket,
                key=prefix + relative,
                source=pulumi.FileAsset(str(path)),
                server_side_encryption="aws:kms",
                kms_key_id=args.data_key_arn,
                opts=self._child(),
            )
        return pulumi.Output.concat("s3://", bucket, "/", prefix)

    def _execution_role(self) -> aws.iam.Role:
        args = self._args
        role_name = f"{args.names.base}-pipelines"
        role = aws.iam.Role(
            f"{self._name}-execution-role",
            name=role_name,
            assume_role_policy=json.dumps(service_trust_policy(args.context, "sagemaker")),
            description="SageMaker pipelines and the jobs they start, in this environment only",
            opts=self._child(),
        )
        role_arn = args.context.arn("iam", f"role/{role_name}", regional=False)
        buckets = [args.bucket_arns[p] for p in ("datasets", "models", "pipeline")]
        aws.iam.RolePolicy(
            f"{self._name}-execution-access",
            role=role.id,
            policy=pulumi.Output.all(
                args.data_key_arn, args.repository_arn, args.tracking_server_arn, *buckets
            ).apply(
                lambda values: json.dumps(
                    execution_policy(
                        args.context,
                        role_arn=role_arn,
                        bucket_arns=list(values[3:]),
                        key_arn=values[0],
                        repository_arn=values[1],
                        group_prefix=args.names.model_package_group(""),
                        tracking_server_arn=values[2],
                    )
                )
            ),
            opts=self._child(),
        )
        return role

    def _pipeline(
        self,
        model: str,
        settings: ModelSettings,
        role: aws.iam.Role,
        code_uri: pulumi.Output[str],
        code_digest: str,
    ) -> pulumi.Output[str]:
        args = self._args
        from pipelines.context import context_for_stack

        base = context_for_stack(args.stack, model, settings=args.settings)
        self.pipeline_names[model] = base.pipeline_name

        def definition(values: list[Any]) -> str:
            # Imported here: only a program with models pays for the SageMaker SDK.
            from pipelines.training import definition_json

            role_arn, key_arn, tracking_uri, code, security_group, *subnets = values
            real = dataclasses.replace(
                base,
                role_arn=role_arn,
                kms_key_arn=key_arn,
                mlflow_tracking_uri=tracking_uri,
                code_uri=code,
                security_group_ids=(security_group,),
                subnet_ids=tuple(subnets),
            )
            return cached_definition(real, settings, code_digest, definition_json)

        pipeline = aws.sagemaker.Pipeline(
            f"{self._name}-{model}",
            pipeline_name=base.pipeline_name,
            pipeline_display_name=base.pipeline_name,
            pipeline_description=f"Trains, evaluates, gates and registers {model}",
            role_arn=role.arn,
            pipeline_definition=pulumi.Output.all(
                role.arn,
                args.data_key_arn,
                args.tracking_server_arn,
                code_uri,
                args.security_group_id,
                *args.subnet_ids,
            ).apply(definition),
            opts=self._child(),
        )
        return pipeline.arn

    def _schedules(self) -> None:
        args = self._args
        scheduled = {
            model: settings.schedule
            for model, settings in sorted(args.settings.models.items())
            if settings.schedule is not None
        }
        if not scheduled:
            return
        queue = aws.sqs.Queue(
            f"{self._name}-schedule-dlq",
            kms_master_key_id=args.data_key_arn,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS,
            opts=self._child(),
        )
        role = aws.iam.Role(
            f"{self._name}-scheduler-role",
            assume_role_policy=json.dumps(service_trust_policy(args.context, "scheduler")),
            description="EventBridge Scheduler starts this environment's pipelines",
            opts=self._child(),
        )
        arns = [self.pipeline_arns[model] for model in scheduled]
        aws.iam.RolePolicy(
            f"{self._name}-scheduler-access",
            role=role.id,
            policy=pulumi.Output.all(queue.arn, args.data_key_arn, *arns).apply(
                lambda v: json.dumps(scheduler_policy(list(v[2:]), v[0], v[1]))
            ),
            opts=self._child(),
        )
        for model, schedule in scheduled.items():
            self._schedule(model, schedule, role, queue)

    def _schedule(
        self, model: str, schedule: ScheduleSettings, role: aws.iam.Role, queue: aws.sqs.Queue
    ) -> None:
        args = self._args
        window: Any = (
            {"mode": "FLEXIBLE", "maximum_window_in_minutes": schedule.flexible_window_minutes}
            if schedule.flexible_window_minutes
            else {"mode": "OFF"}
        )
        parameters = [
            {"name": name, "value": str(value)}
            for name, value in sorted(schedule.parameters.items())
        ]
        # Nested dicts of Outputs: Any, where the provider's TypedDicts would need casts.
        target: Any = {
            "arn": self.pipeline_arns[model],
            "role_arn": role.arn,
            "retry_policy": SCHEDULE_RETRY,
            "dead_letter_config": {"arn": queue.arn},
            "sagemaker_pipeline_parameters": {"pipeline_parameters": parameters},
        }
        aws.scheduler.Schedule(
            f"{self._name}-{model}-schedule",
            name=f"{args.names.base}-{model}-training",
            description=f"Scheduled training of {model}",
            schedule_expression=schedule.expression,
            schedule_expression_timezone=schedule.timezone,
            flexible_time_window=window,
            state="ENABLED" if schedule.enabled else "DISABLED",
            kms_key_arn=args.data_key_arn,
            target=target,
            opts=self._child(),
        )
