"""MlPipelines: each model's training pipeline as an `aws.sagemaker.Pipeline`, its definition
built by `pipelines/` from this environment's real outputs; the step code in S3 under a
content hash; the execution role; EventBridge Scheduler schedules with an encrypted
dead-letter queue. Failed executions are watched by the Monitoring component.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alert_sources import AlertSources
from components.aws_context import AwsContext
from components.definition_cache import Builder, cached_definition
from components.deployment_policies import (
    approval_events_pattern,
    deploy_policy,
    start_pipelines_policy,
)
from components.job_policies import JobResources, deployment_jobs_policy
from components.naming import Names
from components.pipeline_policies import execution_policy, scheduler_policy
from components.queues import DeadLetterArgs, dead_letter_queue
from components.step_code import CODE_PREFIX, StepCode, step_code
from components.trust_policies import service_trust_policy
from pipelines.steps.monitor import analyzer_registry
from stacks.settings import ModelSettings, ScheduleSettings, Settings

TRAINING, DEPLOYMENT = "training", "deployment"
# Scheduler keeps trying a run it could not start for an hour, then dead-letters it.
SCHEDULE_RETRY = {"maximum_event_age_in_seconds": 3600, "maximum_retry_attempts": 5}


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
    # Models with `deployment` settings: their deployment pipeline and endpoint names.
    deployment_pipeline_arns: dict[str, pulumi.Output[str]]
    endpoint_names: dict[str, str]
    # The role pipelines and their jobs run as (cluster-backed steps send requests with it).
    execution_role_name: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: MlPipelinesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:pipelines:MlPipelines", name, None, opts)
        self._name, self._args = name, args
        self.alert_sources = AlertSources()
        code = step_code()
        code_uri = self._upload_code(code)
        role = self._execution_role()
        self.execution_role_name, self.execution_role_arn = role.name, role.arn
        self.pipeline_names, self.endpoint_names = {}, {}
        self.pipeline_arns = {
            model: self._pipeline(model, settings, role, code_uri, code.digest, TRAINING)
            for model, settings in sorted(args.settings.models.items())
        }
        deployed = {m: s for m, s in sorted(args.settings.models.items()) if s.deployment}
        # Deploy and Monitor run as their own role: training code cannot touch endpoints.
        deployer = self._deployment_role() if deployed else None
        self.deployment_pipeline_arns = {
            model: self._pipeline(model, settings, deployer, code_uri, code.digest, DEPLOYMENT)
            for model, settings in deployed.items()
            if deployer is not None
        }
        if deployer is not None:
            self._deployment_access(deployer)
            self._deploy_on_approval()
        self._schedules()
        self.register_outputs(
            {
                "pipeline_arns": self.pipeline_arns,
                "deployment_pipeline_arns": self.deployment_pipeline_arns,
            }
        )

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

    def _job_resources(self) -> pulumi.Output[JobResources]:
        args = self._args
        purposes = ("datasets", "models", "pipeline")
        return pulumi.Output.all(
            args.data_key_arn,
            args.repository_arn,
            args.tracking_server_arn,
            args.security_group_id,
            *[args.bucket_arns[p] for p in purposes],
            *args.subnet_ids,
        ).apply(
            lambda values: JobResources(
                bucket_arns=dict(zip(purposes, values[4:7], strict=True)),
                key_arn=values[0],
                repository_arn=values[1],
                tracking_server_arn=values[2],
                subnet_ids=tuple(values[7:]),
                security_group_id=values[3],
            )
        )

    def _job_role(
        self,
        purpose: str,
        suffix: str,
        description: str,
        policy: Callable[[str, JobResources], Any],
    ) -> aws.iam.Role:
        """A role SageMaker pipelines and their jobs assume, with `policy(role ARN, resources)`
        as `<name>-<purpose>-access`."""
        args = self._args
        role_name = f"{args.names.base}-{suffix}"
        role = aws.iam.Role(
            f"{self._name}-{purpose}-role",
            name=role_name,
            assume_role_policy=json.dumps(service_trust_policy(args.context, "sagemaker")),
            description=description,
            opts=self._child(),
        )
        role_arn = args.context.arn("iam", f"role/{role_name}", regional=False)
        aws.iam.RolePolicy(
            f"{self._name}-{purpose}-access",
            role=role.id,
            policy=self._job_resources().apply(lambda r: json.dumps(policy(role_arn, r))),
            opts=self._child(),
        )
        return role

    def _execution_role(self) -> aws.iam.Role:
        """The training pipelines' role: their jobs, registration, MLflow."""
        args = self._args
        return self._job_role(
            "execution",
            "pipelines",
            "SageMaker training pipelines and the jobs they start, in this environment only",
            lambda role_arn, resources: execution_policy(
                args.context,
                role_arn=role_arn,
                resources=resources,
                group_prefix=args.names.model_package_group(""),
                pending_only=args.settings.environment != "dev",
            ),
        )

    def _deployment_role(self) -> aws.iam.Role:
        """The deployment pipelines' role: Deploy and Monitor, this environment's endpoints."""
        args = self._args
        return self._job_role(
            "deployment-jobs",
            "deployment",
            "SageMaker deployment pipelines, their steps and the endpoints' models",
            lambda role_arn, resources: deployment_jobs_policy(args.context, role_arn, resources),
        )

    def _pipeline(
        self,
        model: str,
        settings: ModelSettings,
        role: aws.iam.Role,
        code_uri: pulumi.Output[str],
        code_digest: str,
        kind: str,
    ) -> pulumi.Output[str]:
        args = self._args
        from pipelines.context import context_for_stack

        base = context_for_stack(args.stack, model, settings=args.settings)
        if kind == TRAINING:
            self.pipeline_names[model] = name = base.pipeline_name
            description = f"Trains, evaluates, gates and registers {model}"
        else:
            from pipelines.deployment import deployment_context, endpoint_name

            self.endpoint_names[model] = endpoint_name(base)
            name = deployment_context(base).pipeline_name
            description = f"Deploys approved versions of {model} to its endpoint"

        def definition(values: list[Any]) -> str:
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
            return cached_definition(real, settings, code_digest, _builder(kind))

        pipeline = aws.sagemaker.Pipeline(
            # The training pipeline keeps its original logical name (no replacement).
            f"{self._name}-{model}" if kind == TRAINING else f"{self._name}-{model}-{kind}",
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=description,
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

    def _deployment_access(self, role: aws.iam.Role) -> None:
        """The deployment role's rights on this environment's endpoints."""
        args = self._args
        aws.iam.RolePolicy(
            f"{self._name}-deployment-access",
            role=role.id,
            policy=json.dumps(
                deploy_policy(
                    args.context,
                    base=args.names.base,
                    stack=args.names.stack,
                    group_prefix=args.names.model_package_group(""),
                    analyzer_registry=analyzer_registry(args.context.region),
                )
            ),
            opts=self._child(),
        )

    def _deploy_on_approval(self) -> None:
        """A package turning Approved in a model's group starts that model's deployment
        pipeline with the package's ARN."""
        args = self._args
        role = aws.iam.Role(
            f"{self._name}-deploy-trigger-role",
            assume_role_policy=json.dumps(service_trust_policy(args.context, "events")),
            description="EventBridge starts the deployment pipelines on approvals",
            opts=self._child(),
        )
        arns = list(self.deployment_pipeline_arns.values())
        aws.iam.RolePolicy(
            f"{self._name}-deploy-trigger-access",
            role=role.id,
            policy=pulumi.Output.all(*arns).apply(
                lambda values: json.dumps(start_pipelines_policy(list(values)))
            ),
            opts=self._child(),
        )
        for model, pipeline_arn in self.deployment_pipeline_arns.items():
            rule = aws.cloudwatch.EventRule(
                f"{self._name}-{model}-approved",
                name=args.names.event_rule(f"{model}-approved"),
                description=f"A version of {model} was approved: deploy it",
                event_pattern=json.dumps(
                    approval_events_pattern(args.names.model_package_group(model))
                ),
                opts=self._child(),
            )
            aws.cloudwatch.EventTarget(
                f"{self._name}-{model}-deploy",
                rule=rule.name,
                arn=pipeline_arn,
                role_arn=role.arn,
                # EventBridge fills the parameter from the event (a dynamic path value).
                sagemaker_pipeline_target={
                    "pipeline_parameter_lists": [
                        {"name": "ModelPackageArn", "value": "$.detail.ModelPackageArn"}
                    ]
                },
                opts=self._child(),
            )

    def _schedules(self) -> None:
        args = self._args
        scheduled = {
            model: settings.schedule
            for model, settings in sorted(args.settings.models.items())
            if settings.schedule is not None
        }
        if not scheduled:
            return
        queue, alarm = dead_letter_queue(
            f"{self._name}-schedule-dlq",
            DeadLetterArgs(
                queue_name=args.names.queue("schedule-dlq"),
                key_arn=args.data_key_arn,
                alarm_name=args.names.queue("schedule-dead-letters"),
                alarm_description=(
                    "A scheduled pipeline run Scheduler could not start within its retry "
                    "window (the message holds the schedule and the error): that run did "
                    "not happen; start it by hand once the cause is fixed"
                ),
                # Monitoring creates the topic after the pipelines; an alarm may name a topic
                # before it exists (CloudWatch checks actions when they fire).
                alert_topic_arn=args.names.alert_topic_arn(),
            ),
            self._child(),
        )
        self.alert_sources.alarms.append(alarm.arn)
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
        }
        if parameters:
            target["sagemaker_pipeline_parameters"] = {"pipeline_parameters": parameters}
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


def _builder(kind: str) -> Builder:
    """The definition builder of a pipeline kind (imported on use: only a program with
    models pays for the SageMaker SDK)."""
    if kind == TRAINING:
        from pipelines import training

        return training.definition_json
    from pipelines import deployment

    return deployment.definition_json
