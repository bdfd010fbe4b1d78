"""The deployment pipeline: Deploy puts an approved model package on the model's real-time
endpoint (pipelines/steps/deploy.py), then Monitor baselines the training data and puts the
endpoint under hourly data-quality monitoring (pipelines/steps/monitor.py; instance
endpoints only: serverless ones capture no data).

An EventBridge rule starts it when a package of the model's group turns Approved, passing
the package ARN as `ModelPackageArn`; a person can start it by hand with any approved ARN.
The step creates the endpoint, or shifts it blue/green (canary, rolled back by the
endpoint's alarms) to the new package, registers autoscaling, waits, and fails the execution
when the endpoint rolled back or failed. Re-running with the deployed package changes
nothing. `get_pipeline(context, model)` builds it; `definition_json` renders it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pipelines.context import PipelineContext
from pipelines.job_steps import PROCESSING_ROOT, JobSteps, offline_sdk, quiet_definition
from stacks.deployment_settings import DeploymentSettings
from stacks.settings import ModelSettings, ProcessingSettings

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-untyped]

DEPLOY = "Deploy"
MONITOR = "Monitor"
PARAMETERS = (
    "ModelPackageArn",
    "EndpointInstanceType",
    "EndpointInstanceCount",
    "BaselineDataUri",
)
RESULT_OUTPUT = "result"
MONITOR_OUTPUT = "monitor"
# The endpoint's alarms (components/monitoring.py) that roll a blue/green shift back.
ROLLBACK_ALARM_SUFFIXES = ("5xx", "latency-p99")
# The deploy step only calls AWS APIs and waits: the smallest processing instance will do.
DEPLOY_INSTANCE = ProcessingSettings(instance_type="ml.t3.medium", instance_count=1)
# How long the step waits for the endpoint: the canary bake plus creating both fleets.
DEPLOY_TIMEOUT_MARGIN_SECONDS = 3600


class NotDeployed(ValueError):
    """The model has no `deployment` settings in this stack."""


def endpoint_name(context: PipelineContext) -> str:
    return context.pipeline_name.removesuffix("-training")


def rollback_alarm_names(endpoint: str) -> tuple[str, ...]:
    return tuple(f"{endpoint}-{suffix}" for suffix in ROLLBACK_ALARM_SUFFIXES)


def deployment_context(context: PipelineContext) -> PipelineContext:
    """The training context renamed: the deployment pipeline and its S3 prefix."""
    return dataclasses.replace(context, pipeline_name=f"{endpoint_name(context)}-deployment")


def get_pipeline(context: PipelineContext, model: ModelSettings) -> Pipeline:
    """The deployment pipeline of one model in one environment (context: the model's
    training context, as `context_for_stack` gives it)."""
    if model.deployment is None:
        raise NotDeployed(f"model {context.model_name!r} has no deployment settings")
    offline_sdk(context.region)
    return _Builder(context, model, model.deployment).pipeline()


def definition_json(context: PipelineContext, model: ModelSettings) -> str:
    return quiet_definition(lambda: get_pipeline(context, model))


class _Builder(JobSteps):
    def __init__(
        self, context: PipelineContext, model: ModelSettings, deployment: DeploymentSettings
    ) -> None:
        from sagemaker.core.workflow.parameters import (  # type: ignore[import-untyped]
            ParameterInteger,
            ParameterString,
        )

        self.endpoint = endpoint_name(context)
        super().__init__(deployment_context(context), model)
        self.deployment = deployment
        self.package = ParameterString(name=PARAMETERS[0], default_value="")
        self.instance_type = ParameterString(
            name=PARAMETERS[1], default_value=deployment.instance_type
        )
        self.instance_count = ParameterInteger(
            name=PARAMETERS[2], default_value=deployment.instance_count
        )
        # The data the monitor's baseline describes: the model's training data.
        self.baseline_data = ParameterString(
            name=PARAMETERS[3],
            default_value=f"s3://{context.datasets_bucket}/{context.model_name}/raw/",
        )

    def pipeline(self) -> Pipeline:
        from sagemaker.mlops.workflow.pipeline import Pipeline

        deploy = self.deploy()
        # Serverless endpoints capture no data: nothing to monitor.
        steps = [deploy] if self.deployment.serverless else [deploy, self.monitor(deploy)]
        return Pipeline(
            name=self.context.pipeline_name,
            parameters=[self.package, self.instance_type, self.instance_count, self.baseline_data],
            steps=steps,
            sagemaker_session=self.session,
            pipeline_experiment_config=None,
        )

    def arguments(self) -> list[Any]:
        """The deploy step's command line (pipelines/steps/deploy.py's flags)."""
        context, deployment = self.context, self.deployment
        flags: dict[str, Any] = {
            "--model-package-arn": self.package,
            "--endpoint-name": self.endpoint,
            "--environment": context.stack,
            "--execution-role-arn": context.role_arn,
            "--kms-key-arn": context.kms_key_arn,
            "--data-capture-s3-uri": (
                f"s3://{context.models_bucket}/data-capture/{context.model_name}/"
            ),
            "--capture-percentage": str(deployment.data_capture_percent),
            "--subnet-ids": ",".join(context.subnet_ids),
            "--security-group-ids": ",".join(context.security_group_ids),
            "--instance-type": self.instance_type,
            "--instance-count": self.instance_count.to_string(),
            "--min-capacity": str(deployment.min_capacity),
            "--max-capacity": str(deployment.max_capacity),
            "--target-invocations-per-instance": str(deployment.target_invocations_per_instance),
            "--rollback-alarm-names": ",".join(rollback_alarm_names(self.endpoint)),
            "--canary-percent": str(deployment.canary_percent),
            "--wait-interval-seconds": str(deployment.canary_wait_seconds),
            "--timeout-seconds": str(
                deployment.canary_wait_seconds + DEPLOY_TIMEOUT_MARGIN_SECONDS
            ),
            "--output": f"{PROCESSING_ROOT}/output/{RESULT_OUTPUT}/result.json",
        }
        if deployment.serverless is not None:
            flags["--serverless-memory-mb"] = str(deployment.serverless.memory_mb)
            flags["--serverless-max-concurrency"] = str(deployment.serverless.max_concurrency)
        return [part for flag, value in flags.items() for part in (flag, value)]

    def deploy(self) -> Any:
        from sagemaker.mlops.workflow.steps import ProcessingStep  # type: ignore[import-untyped]

        return ProcessingStep(
            name=DEPLOY,
            step_args=self.processor("deploy", DEPLOY_INSTANCE, self.context.cpu_image_uri).run(
                inputs=[self.code_input()],
                outputs=[
                    self.processing_output(
                        DEPLOY, RESULT_OUTPUT, f"{PROCESSING_ROOT}/output/{RESULT_OUTPUT}"
                    )
                ],
                arguments=self.arguments(),
            ),
            # Never cached: whether the endpoint already serves the package is the step's
            # own question, answered against the endpoint every time.
            cache_config=None,
            retry_policies=self.job_retries,
        )

    def monitor_arguments(self) -> list[Any]:
        """The monitor step's command line (pipelines/steps/monitor.py's flags)."""
        context = self.context
        flags: dict[str, Any] = {
            "--endpoint-name": self.endpoint,
            # Its model predicts the baseline's prediction column (the captured layout).
            "--model-package-arn": self.package,
            "--baseline-data-uri": self.baseline_data,
            # The models bucket keeps objects: job definitions refer to the baseline for good.
            "--work-s3-uri": f"s3://{context.models_bucket}/monitoring/{context.model_name}/",
            "--execution-role-arn": context.role_arn,
            "--kms-key-arn": context.kms_key_arn,
            "--subnet-ids": ",".join(context.subnet_ids),
            "--security-group-ids": ",".join(context.security_group_ids),
            "--region": context.region,
            "--output": f"{PROCESSING_ROOT}/output/{MONITOR_OUTPUT}/result.json",
        }
        return [part for flag, value in flags.items() for part in (flag, value)]

    def monitor(self, deploy: Any) -> Any:
        """An hourly data-quality monitoring schedule on the endpoint, against a baseline of
        the training data (pipelines/steps/monitor.py)."""
        from sagemaker.mlops.workflow.steps import ProcessingStep

        return ProcessingStep(
            name=MONITOR,
            step_args=self.processor("monitor", DEPLOY_INSTANCE, self.context.cpu_image_uri).run(
                inputs=[self.code_input()],
                outputs=[
                    self.processing_output(
                        MONITOR, MONITOR_OUTPUT, f"{PROCESSING_ROOT}/output/{MONITOR_OUTPUT}"
                    )
                ],
                arguments=self.monitor_arguments(),
            ),
            depends_on=[deploy],
            cache_config=None,
            retry_policies=self.job_retries,
        )
