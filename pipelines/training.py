"""The training pipeline: Preprocess -> Train -> Evaluate -> QualityGate -> Register | Fail.

`get_pipeline(context, model)` builds it with the SageMaker Python SDK v3;
`definition_json(context, model)` renders the definition JSON that `aws.sagemaker.Pipeline`
takes. Building never calls AWS (see `pipelines.job_steps.offline_sdk`): every S3 location
is explicit, step code is referenced by S3 URI (nothing is uploaded), and the SDK's own calls
(IAM role lookup and validation, config files, telemetry) are avoided or turned off.

Per-run knobs are pipeline Parameters whose defaults come from the model's settings. Two
training settings are fixed when the definition is built instead: managed spot and the
maximum runtime. The SDK's `Compute` / `StoppingCondition` models reject pipeline variables
for both, and spot could not be a run-time switch anyway: MaxWaitTimeInSeconds and the
checkpoint location are only valid with spot on.

Step code: `context.code_uri` holds the `pipelines/` package (`<code_uri>steps/train.py`).
Each job gets that whole prefix as a directory named `pipelines`, put on PYTHONPATH, and runs
`python3 -m pipelines.steps.<step>` (the steps import `pipelines.data` and their siblings):
processing jobs from /opt/ml/processing/code/pipelines, the training job from its `pipelines`
channel, /opt/ml/input/data/pipelines. The training job also gets its hyperparameters as
`--name value` arguments: without SageMaker's training toolkit in the image, nothing else
turns HyperParameters into something the script sees.

Cluster-backed models (`training.backend: cluster`): Train is a CallbackStep of the same
name instead. SageMaker sends its arguments (the contract in pipelines/steps/cluster_request.py)
to the cluster training queue (`context.callback_queue_url`); the launcher Lambda runs the
same image and train.py as a Kubernetes Job in the team's namespace, and the job completes
the step with the `ModelArtifacts` and `Metrics` output parameters, which Evaluate and
Register read where they read a training job's model artifacts (`model_artifacts`). The
team's pods may use only `teams/<team>/` of the artifact buckets, so the run's outputs and
the model live there (`JobSteps.run_prefix`).
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from components.cluster_policies import TEAM_PREFIX
from pipelines.context import PipelineContext
from pipelines.job_steps import (
    CODE_PACKAGE,
    PROCESSING_ROOT,
    JobSteps,
    cluster_team,
    has_local_storage,
    offline_sdk,
    quiet_definition,
)
from pipelines.steps import cluster_request
from stacks.settings import ModelSettings

# The SDK ships no type information (no py.typed): its imports carry
# `# type: ignore[import-untyped]` and its objects are `Any` here.

if TYPE_CHECKING:  # the SDK takes seconds to import: only building a definition pays for it
    from sagemaker.mlops.workflow.pipeline import Pipeline  # type: ignore[import-untyped]

# Step names: the definition's interface (the local runner, alarms and dashboards use them).
PREPROCESS = "Preprocess"
TRAIN = "Train"
EVALUATE = "Evaluate"
QUALITY_GATE = "QualityGate"
REGISTER = "Register"
FAIL = "Fail"

# The pipeline's Parameters: what a run (a schedule, a person) may set; run_parameters says
# which a given pipeline has.
PARAMETERS = (
    "InputDataUri",
    "TrainingInstanceType",
    "TrainingInstanceCount",
    "QualityThreshold",
    "ModelApprovalStatus",
)
# Only dev lets a run lower the gate or register an Approved version: elsewhere anyone
# allowed to start an execution could otherwise put a model below the bar into approval.
DEV_ONLY_PARAMETERS = ("QualityThreshold", "ModelApprovalStatus")
PENDING = "PendingManualApproval"

EVALUATION_OUTPUT = "evaluation"
EVALUATION_REPORT = "EvaluationReport"  # the PropertyFile the gate reads
EVALUATION_FILE = "evaluation.json"
# Where the gate finds the metric in the report (SageMaker's model quality metrics layout).
METRIC_PATH = "multiclass_classification_metrics.{metric}.value"
SPLITS = ("train", "validation", "test")

# Training channels land in /opt/ml/input/data/<channel>: the code channel is named after the
# package.
TRAINING_CODE_ROOT = "/opt/ml/input/data"


def approval_status(model: ModelSettings) -> str:
    """The ModelApprovalStatus a new version gets by default."""
    return "Approved" if model.auto_approve else PENDING


def run_parameters(model: ModelSettings, environment: str) -> tuple[str, ...]:
    """The Parameters the model's training pipeline has in an environment of this tier.
    The instance type only where a SageMaker job runs (the cluster picks nodes by GPU); the
    instance count only on the cluster, whose multi-node jobs are PyTorchJobs (train.py
    trains on one SageMaker instance); the gate's threshold and the approval status only in
    dev."""
    names = [PARAMETERS[0]]
    cluster = model.training.backend == "cluster"
    names.append(PARAMETERS[2] if cluster else PARAMETERS[1])
    if environment == "dev":
        names += DEV_ONLY_PARAMETERS
    return tuple(names)


def get_pipeline(context: PipelineContext, model: ModelSettings) -> Pipeline:
    """The training pipeline of one model in one environment."""
    offline_sdk(context.region)
    return _Builder(context, model).pipeline()


def definition_json(context: PipelineContext, model: ModelSettings) -> str:
    """The pipeline definition JSON (CreatePipeline's PipelineDefinition)."""
    return quiet_definition(lambda: get_pipeline(context, model))


@functools.cache
def _script_training_step() -> type:
    """`TrainingStep` running a module from the code channel (defined on first use: the SDK
    is imported only then)."""
    from sagemaker.mlops.workflow.steps import TrainingStep  # type: ignore[import-untyped]

    class ScriptTrainingStep(TrainingStep):  # type: ignore[misc]  # TrainingStep is untyped
        """A TrainingStep whose container runs `entrypoint` with the hyperparameters as
        `--name value` arguments.

        ModelTrainer sets AlgorithmSpecification.ContainerEntrypoint only along with
        `source_code`, and `source_code` uploads the SDK's driver scripts to S3 while the
        definition is built. The step code comes by S3 URI instead (a channel), so the
        entrypoint and its arguments are added to the request the step renders.
        """

        def __init__(self, *, entrypoint: list[str], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.entrypoint = entrypoint

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            algorithm = request["AlgorithmSpecification"]
            algorithm["ContainerEntrypoint"] = list(self.entrypoint)
            # The values are already strings, as CreateTrainingJob's HyperParameters are.
            hyperparameters = request.get("HyperParameters") or {}
            arguments = [
                part for name, value in hyperparameters.items() for part in (f"--{name}", value)
            ]
            if arguments:
                algorithm["ContainerArguments"] = arguments
            return request

    return ScriptTrainingStep


def model_artifacts(train: Any) -> Any:
    """The S3 URI of model.tar.gz that a Train step produced: a training job's
    ModelArtifacts.S3ModelArtifacts, or a cluster-backed (callback) step's output parameter."""
    from sagemaker.mlops.workflow.callback_step import CallbackStep  # type: ignore[import-untyped]

    if isinstance(train, CallbackStep):
        return train.properties.Outputs[cluster_request.MODEL_ARTIFACTS]
    return train.properties.ModelArtifacts.S3ModelArtifacts


class _Builder(JobSteps):
    """Builds one pipeline: its parameters, then one method per step."""

    def __init__(self, context: PipelineContext, model: ModelSettings) -> None:
        from sagemaker.core.workflow.parameters import (  # type: ignore[import-untyped]
            ParameterFloat,
            ParameterInteger,
            ParameterString,
        )
        from sagemaker.mlops.workflow.steps import CacheConfig

        super().__init__(context, model)

        self.input_data = ParameterString(
            name=PARAMETERS[0],
            # The `datasets` bucket: the `pipeline` bucket expires what it holds.
            default_value=f"s3://{context.datasets_bucket}/{context.model_name}/raw/",
        )
        self.instance_type = ParameterString(
            name=PARAMETERS[1], default_value=model.training.instance_type
        )
        self.instance_count = ParameterInteger(
            name=PARAMETERS[2], default_value=model.training.instance_count
        )
        self.parameter_names = run_parameters(model, context.environment)
        dev = context.environment == "dev"
        # Outside dev: the settings' values, fixed in the definition.
        self.threshold: Any = (
            ParameterFloat(name=PARAMETERS[3], default_value=model.quality_gate.threshold)
            if dev
            else model.quality_gate.threshold
        )
        self.approval: Any = (
            ParameterString(name=PARAMETERS[4], default_value=approval_status(model))
            if dev
            else PENDING
        )

        self.environment = {
            "MLFLOW_TRACKING_URI": context.mlflow_tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": context.mlflow_experiment_name,
            # No execution id here: the environment is part of a step's cache key, so a
            # per-execution value would make every run a cache miss. The step code reads the
            # id from its job's name (pipelines/steps/tracking.py).
            "MLOPS_MODEL_NAME": context.model_name,
            # Preprocess ingests every valid row into the model's feature group.
            "MLOPS_FEATURE_GROUP_NAME": context.feature_group_name,
        }

        self.cache = (
            CacheConfig(enable_caching=True, expire_after=model.cache_expiry)
            if model.cache_expiry is not None
            else None
        )

    def pipeline(self) -> Pipeline:
        from sagemaker.mlops.workflow.pipeline import Pipeline

        preprocess = self.preprocess()
        train = self.train(preprocess)
        evaluate = self.evaluate(preprocess, train)
        gate = self.quality_gate(evaluate, register=self.register(train, evaluate))
        return Pipeline(
            name=self.context.pipeline_name,
            parameters=[
                parameter
                for parameter in (
                    self.input_data,
                    self.instance_type,
                    self.instance_count,
                    self.threshold,
                    self.approval,
                )
                if getattr(parameter, "name", None) in self.parameter_names
            ],
            steps=[preprocess, train, evaluate, gate],
            sagemaker_session=self.session,
            # MLflow tracks experiments: no SageMaker Experiments trial per execution.
            pipeline_experiment_config=None,
        )

    @functools.cached_property
    def report(self) -> Any:
        from sagemaker.core.workflow.properties import PropertyFile  # type: ignore[import-untyped]

        return PropertyFile(
            name=EVALUATION_REPORT, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE
        )

    # -- steps ------------------------------------------------------------------------------

    def preprocess(self) -> Any:
        from sagemaker.mlops.workflow.steps import ProcessingStep

        return ProcessingStep(
            name=PREPROCESS,
            step_args=self.processor("preprocess").run(
                inputs=[
                    self.processing_input("raw", self.input_data, f"{PROCESSING_ROOT}/input"),
                    self.code_input(),
                ],
                outputs=[
                    self.processing_output(PREPROCESS, split, f"{PROCESSING_ROOT}/output/{split}")
                    for split in SPLITS
                ],
            ),
            # Never cached: it reads a prefix whose objects change while its arguments do not,
            # and SageMaker's cache key for a processing step leaves out its outputs
            # (Developer Guide, "Caching pipeline steps"): a cache hit would hand every later
            # run the old splits. Run each time, its outputs land under the execution's own
            # prefix, so Train and Evaluate, keyed by those inputs, miss on new data too.
            cache_config=None,
            retry_policies=self.job_retries,
        )

    def train(self, preprocess: Any) -> Any:
        """The Train step: a SageMaker training job, or a Job on the GPU cluster."""
        if cluster_team(self.model) is not None:
            return self.cluster_train(preprocess)
        return self.sagemaker_train(preprocess)

    def sagemaker_train(self, preprocess: Any) -> Any:
        from sagemaker.core.shapes import StoppingCondition  # type: ignore[import-untyped]
        from sagemaker.core.training.configs import (  # type: ignore[import-untyped]
            CheckpointConfig,
            Compute,
            InputData,
            Networking,
            OutputDataConfig,
        )
        from sagemaker.train.model_trainer import ModelTrainer  # type: ignore[import-untyped]

        context, training = self.context, self.model.training
        spot = training.use_spot
        trainer = ModelTrainer(
            sagemaker_session=self.session,
            role=context.role_arn,
            training_image=context.image_uri,
            base_job_name=f"{context.model_name}-train",
            compute=Compute(
                instance_type=self.instance_type,
                # train.py trains on one instance (settings refuse more): not a Parameter.
                instance_count=training.instance_count,
                volume_size_in_gb=training.volume_size_gb,
                # Decided on the instance type's default: a run that overrides it across the
                # NVMe line gets a volume key that SageMaker rejects, or none.
                volume_kms_key_id=(
                    None if has_local_storage(training.instance_type) else context.kms_key_arn
                ),
                keep_alive_period_in_seconds=training.keep_alive_seconds or None,
                enable_managed_spot_training=spot,
            ),
            networking=Networking(
                subnets=list(context.subnet_ids),
                security_group_ids=list(context.security_group_ids),
                # Training logs to MLflow (MLFLOW_TRACKING_URI), which isolation cuts off.
                enable_network_isolation=False,
                # The instance count is a Parameter: any run may use several instances.
                enable_inter_container_traffic_encryption=True,
            ),
            stopping_condition=StoppingCondition(
                max_runtime_in_seconds=training.max_runtime_seconds,
                max_wait_time_in_seconds=training.spot_max_wait_seconds if spot else None,
            ),
            # The `models` bucket: a registered version points at its artifacts for as long
            # as it lives, so they must not expire with the pipeline's outputs.
            output_data_config=OutputDataConfig(
                s3_output_path=f"s3://{context.models_bucket}/{context.model_name}/",
                kms_key_id=context.kms_key_arn,
            ),
            # Per execution: a retried job resumes its own run's checkpoints, never another's.
            checkpoint_config=(
                CheckpointConfig(s3_uri=self.run_prefix(TRAIN, "checkpoints")) if spot else None
            ),
            environment={**self.environment, "PYTHONPATH": TRAINING_CODE_ROOT},
            hyperparameters=dict(training.hyperparameters),
        )
        outputs = preprocess.properties.ProcessingOutputConfig.Outputs
        step_args = trainer.train(
            input_data_config=[
                InputData(channel_name="train", data_source=outputs["train"].S3Output.S3Uri),
                InputData(
                    channel_name="validation", data_source=outputs["validation"].S3Output.S3Uri
                ),
                # By S3 URI; `source_code=` would upload the SDK's driver scripts.
                InputData(channel_name=CODE_PACKAGE, data_source=self.context.code_uri),
            ]
        )
        return _script_training_step()(
            name=TRAIN,
            step_args=step_args,
            entrypoint=["python3", "-m", f"{CODE_PACKAGE}.steps.train"],
            cache_config=self.cache,
            retry_policies=self.job_retries,
        )

    def cluster_train(self, preprocess: Any) -> Any:
        """A CallbackStep: SageMaker sends the request (pipelines/steps/cluster_request.py)
        to the cluster training queue, the launcher Lambda runs it as a Kubernetes Job in the
        team's namespace, and the job completes the step with its output parameters."""
        from sagemaker.core.workflow.functions import Join  # type: ignore[import-untyped]
        from sagemaker.mlops.workflow.callback_step import (
            CallbackOutput,
            CallbackOutputTypeEnum,
            CallbackStep,
        )

        context, training = self.context, self.model.training
        job = training.cluster
        assert job is not None  # TrainingSettings requires it with backend "cluster"
        if not context.callback_queue_url:
            raise ValueError(
                f"{context.model_name} trains on the cluster: the context needs callback_queue_url"
            )
        outputs = preprocess.properties.ProcessingOutputConfig.Outputs
        arguments: dict[str, Any] = {
            cluster_request.MODEL: context.model_name,
            cluster_request.TEAM: job.team,
            cluster_request.IMAGE: context.image_uri,
            cluster_request.GPUS_PER_NODE: str(job.gpus_per_node),
            # The parameter: a run may ask for more nodes; the launcher checks the quota.
            cluster_request.NODES: self.instance_count,
            cluster_request.ACCELERATOR: job.accelerator or "",
            cluster_request.CPU: job.cpu,
            cluster_request.MEMORY: job.memory,
            cluster_request.TRAIN_URI: outputs["train"].S3Output.S3Uri,
            cluster_request.VALIDATION_URI: outputs["validation"].S3Output.S3Uri,
            cluster_request.CODE_URI: context.code_uri,
            # Under the team's prefix of the `models` bucket (its pods may write nowhere
            # else), per execution; a prefix, so ending in "/".
            cluster_request.OUTPUT_URI: Join(
                on="",
                values=[
                    f"s3://{context.models_bucket}/{TEAM_PREFIX}/{job.team}/{context.model_name}/",
                    self.execution_id,
                    "/",
                ],
            ),
            # The strings a training job's HyperParameters would hold (the SDK keeps strings
            # and JSON-encodes the rest); cluster_run.py passes them as `--name value`.
            cluster_request.HYPERPARAMETERS: json.dumps(
                {
                    name: value if isinstance(value, str) else json.dumps(value)
                    for name, value in training.hyperparameters.items()
                }
            ),
            cluster_request.MAX_RUNTIME_SECONDS: str(training.max_runtime_seconds),
            cluster_request.MLFLOW_TRACKING_URI: context.mlflow_tracking_uri,
            cluster_request.MLFLOW_EXPERIMENT_NAME: context.mlflow_experiment_name,
        }
        assert set(arguments) == set(cluster_request.ARGUMENTS)
        # No retry policies: a CallbackStep takes none. Waiting for capacity (GPU nodes, the
        # team's quota) happens in the cluster's scheduler queue instead.
        return CallbackStep(
            name=TRAIN,
            sqs_queue_url=context.callback_queue_url,
            inputs=arguments,
            outputs=[
                CallbackOutput(output_name=name, output_type=CallbackOutputTypeEnum.String)
                for name in cluster_request.OUTPUTS
            ],
            cache_config=self.cache,
        )

    def evaluate(self, preprocess: Any, train: Any) -> Any:
        from sagemaker.mlops.workflow.steps import ProcessingStep

        test = preprocess.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri
        model = model_artifacts(train)
        return ProcessingStep(
            name=EVALUATE,
            step_args=self.processor("evaluate").run(
                inputs=[
                    self.processing_input("model", model, f"{PROCESSING_ROOT}/model"),
                    self.processing_input("test", test, f"{PROCESSING_ROOT}/test"),
                    self.code_input(),
                ],
                outputs=[
                    self.processing_output(
                        EVALUATE, EVALUATION_OUTPUT, f"{PROCESSING_ROOT}/{EVALUATION_OUTPUT}"
                    )
                ],
            ),
            property_files=[self.report],
            cache_config=self.cache,
            retry_policies=self.job_retries,
        )

    def register(self, train: Any, evaluate: Any) -> Any:
        from sagemaker.core.model_metrics import MetricsSource, ModelMetrics  # type: ignore[import-untyped]
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow.model_step import ModelStep  # type: ignore[import-untyped]
        from sagemaker.serve.model_builder import ModelBuilder  # type: ignore[import-untyped]

        context = self.context
        evaluation = evaluate.properties.ProcessingOutputConfig.Outputs[EVALUATION_OUTPUT]
        builder = ModelBuilder(
            # The inference image: SageMaker runs it as `<image> serve` on port 8080
            # (pipelines/inference/server.py); the step image has no server.
            image_uri=context.inference_image_uri,
            s3_model_data_url=model_artifacts(train),
            role_arn=context.role_arn,
            sagemaker_session=self.session,
            # The default ({"auto": True}) means script mode: ModelBuilder would try to stage
            # inference code and add empty SAGEMAKER_PROGRAM / SAGEMAKER_SUBMIT_DIRECTORY
            # variables. The image serves the model by itself.
            dependencies=None,
        )
        # Where ModelBuilder stages anything; set so that it never asks the session for its
        # default bucket (which checks S3 and creates the bucket when missing).
        builder.bucket = context.bucket
        step_args = builder.register(
            model_package_group_name=context.model_package_group,
            content_types=["text/csv"],
            response_types=["text/csv"],
            approval_status=self.approval,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    content_type="application/json",
                    s3_uri=Join(on="/", values=[evaluation.S3Output.S3Uri, EVALUATION_FILE]),
                )
            ),
        )
        # CreateModelPackage starts no job: SageMakerJobStepRetryPolicy is not allowed here.
        return ModelStep(name=REGISTER, step_args=step_args, retry_policies=self.api_retries)

    def quality_gate(self, evaluate: Any, register: Any) -> Any:
        from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo  # type: ignore[import-untyped]
        from sagemaker.core.workflow.functions import Join, JsonGet
        from sagemaker.mlops.workflow.condition_step import ConditionStep  # type: ignore[import-untyped]
        from sagemaker.mlops.workflow.fail_step import FailStep  # type: ignore[import-untyped]

        metric = self.model.quality_gate.metric
        value = JsonGet(
            step_name=evaluate.name,
            property_file=self.report,
            json_path=METRIC_PATH.format(metric=metric),
        )
        fail = FailStep(
            name=FAIL,
            error_message=Join(
                on="",
                values=[
                    f"Quality gate: {metric} ",
                    value,
                    " is below the threshold ",
                    self.threshold,
                    "; the model is not registered.",
                ],
            ),
        )
        return ConditionStep(
            name=QUALITY_GATE,
            conditions=[ConditionGreaterThanOrEqualTo(left=value, right=self.threshold)],
            if_steps=[register],
            else_steps=[fail],
        )
