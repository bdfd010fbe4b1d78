"""The training pipeline of a cluster-backed model (`training.backend: cluster`): Train is a
CallbackStep whose arguments are the contract of pipelines/steps/cluster_request.py, sent to
the cluster training queue; Evaluate and Register read the model from its output parameter;
the run's S3 outputs live under the team's prefix. SageMaker-backed models keep their
definition (tests/pipelines/test_training_definition.py checks it in full)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from pipelines.context import CLUSTER_TRAINING_QUEUE, PipelineContext, context_for_stack
from pipelines.steps import cluster_request
from pipelines.training import EVALUATE, PREPROCESS, QUALITY_GATE, REGISTER, TRAIN, definition_json
from policy.mlops_rules import RULES, Resource, StackView
from policy.mlops_rules.model import ENVIRONMENT_TYPE
from policy.mlops_rules.pipeline_definitions import PIPELINE, processing_jobs, training_jobs
from stacks.loader import load_stack_settings, read_stack_config, settings_from_config, stack_file
from stacks.settings import ModelSettings, Settings
from tests.pipelines.test_training_definition import steps_of

STACK, MODEL, TEAM = "dev", "digits", "research"
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/111111111111/mlops-dev-cluster-training"
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}
MODEL_ARTIFACTS = {"Get": "Steps.Train.OutputParameters['ModelArtifacts']"}
SECURITY_RULES = ("N1", "N2", "N3", "E5", "R5", "R6")


def cluster_settings() -> Settings:
    """The dev stack with `digits` trained on the cluster, as a stack file would say it."""
    config = copy.deepcopy(read_stack_config(stack_file(STACK)))
    digits = config["mlops-platform:models"][MODEL]
    digits["training"] = {
        **digits["training"],
        "backend": "cluster",
        "cluster": {"team": TEAM, "gpus_per_node": 1, "accelerator": "nvidia-a10g"},
    }
    return settings_from_config(config, source="dev, digits on the cluster")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return cluster_settings()


@pytest.fixture(scope="module")
def model(settings: Settings) -> ModelSettings:
    return settings.models[MODEL]


@pytest.fixture(scope="module")
def context(settings: Settings) -> PipelineContext:
    return context_for_stack(STACK, MODEL, settings=settings)


@pytest.fixture(scope="module")
def text(context: PipelineContext, model: ModelSettings) -> str:
    return definition_json(context, model)


@pytest.fixture(scope="module")
def definition(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@pytest.fixture(scope="module")
def sagemaker_text() -> str:
    """The committed dev stack's definition (digits on SageMaker)."""
    return definition_json(
        context_for_stack(STACK, MODEL), load_stack_settings(STACK).models[MODEL]
    )


def run_prefix(context: PipelineContext, *parts: str) -> dict[str, Any]:
    """The Std:Join of a run's S3 location under the team's prefix."""
    values = ["s3:/", context.bucket, "teams", TEAM, context.pipeline_name, EXECUTION_ID, *parts]
    return {"Std:Join": {"On": "/", "Values": values}}


# -- the context -----------------------------------------------------------------------------


def test_the_queue_url_is_the_real_one() -> None:
    assert CLUSTER_TRAINING_QUEUE == "cluster-training"
    # Known from the names alone, for every stack's context: no placeholder.
    assert context_for_stack(STACK, MODEL).callback_queue_url == QUEUE_URL


def test_a_cluster_backed_model_needs_a_queue(
    context: PipelineContext, model: ModelSettings
) -> None:
    with pytest.raises(ValueError, match="callback_queue_url"):
        definition_json(dataclasses.replace(context, callback_queue_url=""), model)


# -- the Train step --------------------------------------------------------------------------


def test_train_is_a_callback_to_the_cluster_queue(definition: dict[str, Any]) -> None:
    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [
        (PREPROCESS, "Processing"),
        (TRAIN, "Callback"),
        (EVALUATE, "Processing"),
        (QUALITY_GATE, "Condition"),
    ]
    train = steps_of(definition)[TRAIN]
    assert train["SqsQueueUrl"] == QUEUE_URL
    assert train["OutputParameters"] == [
        {"OutputName": "ModelArtifacts", "OutputType": "String"},
        {"OutputName": "Metrics", "OutputType": "String"},
    ]
    assert [p["OutputName"] for p in train["OutputParameters"]] == list(cluster_request.OUTPUTS)
    # Cached like the other steps; a CallbackStep takes no retry policies.
    assert train["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P7D"}
    assert "RetryPolicies" not in train
    # A SageMaker-backed model's, less the instance type: the cluster picks nodes by GPU.
    assert [p["Name"] for p in definition["Parameters"]] == [
        "InputDataUri",
        "TrainingInstanceCount",
        "QualityThreshold",
        "ModelApprovalStatus",
    ]


def test_train_arguments_are_the_request(
    definition: dict[str, Any], context: PipelineContext, model: ModelSettings
) -> None:
    arguments = steps_of(definition)[TRAIN]["Arguments"]
    assert set(arguments) == set(cluster_request.ARGUMENTS)
    preprocess = "Steps.Preprocess.ProcessingOutputConfig.Outputs['{}'].S3Output.S3Uri"
    assert arguments == {
        "model": MODEL,
        "team": TEAM,
        "image": context.image_uri,
        "gpusPerNode": "1",
        # A run may ask for more nodes: the parameter, not its default.
        "nodes": {"Get": "Parameters.TrainingInstanceCount"},
        "accelerator": "nvidia-a10g",
        "cpu": "4",
        "memory": "16Gi",
        "trainUri": {"Get": preprocess.format("train")},
        "validationUri": {"Get": preprocess.format("validation")},
        "codeUri": context.code_uri,
        "outputUri": {
            "Std:Join": {
                "On": "",
                "Values": [
                    f"s3://{context.models_bucket}/teams/{TEAM}/{MODEL}/",
                    EXECUTION_ID,
                    "/",
                ],
            }
        },
        # The strings a training job's HyperParameters hold (what train.py gets as
        # `--name value`).
        "hyperparameters": json.dumps({"num_boost_round": "200", "max_depth": "6"}),
        "maxRuntimeSeconds": str(model.training.max_runtime_seconds),
        "mlflowTrackingUri": context.mlflow_tracking_uri,
        "mlflowExperimentName": context.mlflow_experiment_name,
    }


def test_the_hyperparameters_are_a_training_jobs(
    definition: dict[str, Any], sagemaker_text: str
) -> None:
    cluster = json.loads(steps_of(definition)[TRAIN]["Arguments"]["hyperparameters"])
    sagemaker = steps_of(json.loads(sagemaker_text))[TRAIN]["Arguments"]["HyperParameters"]
    assert cluster == sagemaker


def resolved(value: Any, values: Mapping[str, str]) -> str:
    """An argument as SageMaker resolves it in a run (`values`: what each `Get` gives)."""
    if isinstance(value, str):
        return value
    if "Get" in value:
        return values[value["Get"]]
    join = value["Std:Join"]
    return str(join["On"]).join(resolved(v, values) for v in join["Values"])


def test_the_launcher_accepts_the_request(
    definition: dict[str, Any], context: PipelineContext
) -> None:
    """The message a run sends, with its expressions resolved, is one the launcher parses
    (cluster_request.parse_message) into the job the settings describe."""
    execution = "abcd1234efgh"
    train_uri = f"s3://{context.bucket}/teams/{TEAM}/{context.pipeline_name}/{execution}/train"
    values = {
        "Execution.PipelineExecutionId": execution,
        "Parameters.TrainingInstanceCount": "1",
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri": train_uri,
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri": (
            train_uri.replace("/train", "/validation")
        ),
    }
    arguments = steps_of(definition)[TRAIN]["Arguments"]
    message = {
        "token": "Ab12Cd34Ef",
        "pipelineExecutionArn": (
            f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/{context.pipeline_name}"
            f"/execution/{execution}"
        ),
        "status": "Executing",
        "arguments": {key: resolved(value, values) for key, value in arguments.items()},
    }
    request = cluster_request.parse_message(json.dumps(message))
    assert (request.team, request.gpus_per_node, request.nodes) == (TEAM, 1, 1)
    assert request.accelerator == "nvidia-a10g"
    assert request.execution_id == execution
    assert request.hyperparameters == {"num_boost_round": "200", "max_depth": "6"}
    assert request.model_artifacts_uri == (
        f"s3://{context.models_bucket}/teams/{TEAM}/{MODEL}/{execution}/model.tar.gz"
    )


# -- the steps around it ---------------------------------------------------------------------


def test_evaluate_and_register_read_the_callback_output(definition: dict[str, Any]) -> None:
    steps = steps_of(definition)
    inputs = {i["InputName"]: i for i in steps[EVALUATE]["Arguments"]["ProcessingInputs"]}
    assert inputs["model"]["S3Input"]["S3Uri"] == MODEL_ARTIFACTS
    (container,) = steps[REGISTER]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == MODEL_ARTIFACTS


def test_outputs_live_under_the_teams_prefix(
    definition: dict[str, Any], context: PipelineContext
) -> None:
    steps = steps_of(definition)
    preprocess = steps[PREPROCESS]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert {o["OutputName"]: o["S3Output"]["S3Uri"] for o in preprocess} == {
        split: run_prefix(context, PREPROCESS, split) for split in ("train", "validation", "test")
    }
    (evaluation,) = steps[EVALUATE]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert evaluation["S3Output"]["S3Uri"] == run_prefix(context, EVALUATE, "evaluation")


def as_if_on_sagemaker(value: Any) -> Any:
    """`value` with the team's prefix taken out of run locations and the callback's model
    output read as a training job's."""
    if value == MODEL_ARTIFACTS:
        return {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    if isinstance(value, Mapping):
        if "Std:Join" in value and value["Std:Join"]["Values"][2:4] == ["teams", TEAM]:
            join = value["Std:Join"]
            return {"Std:Join": {**join, "Values": [*join["Values"][:2], *join["Values"][4:]]}}
        return {k: as_if_on_sagemaker(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_if_on_sagemaker(v) for v in value]
    return value


def test_the_other_steps_are_a_sagemaker_backed_models(
    definition: dict[str, Any], sagemaker_text: str
) -> None:
    """Besides Train, only the run locations and where the model is read from differ: VPC,
    KMS, retries, caching, gate and registration are the SageMaker-backed definition's."""
    ours = steps_of(definition)
    theirs = steps_of(json.loads(sagemaker_text))
    assert set(ours) == set(theirs)
    for name in set(ours) - {TRAIN}:
        assert as_if_on_sagemaker(ours[name]) == theirs[name], name


# -- the SageMaker-backed definition ---------------------------------------------------------


def test_sagemaker_backed_models_are_unchanged(sagemaker_text: str) -> None:
    definition = json.loads(sagemaker_text)
    steps = steps_of(definition)
    assert steps[TRAIN]["Type"] == "Training"
    assert "teams" not in sagemaker_text
    assert "SqsQueueUrl" not in sagemaker_text
    (container,) = steps[REGISTER]["Arguments"]["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    (evaluation,) = steps[EVALUATE]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    context = context_for_stack(STACK, MODEL)
    assert evaluation["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
        "s3:/",
        context.bucket,
        context.pipeline_name,
        EXECUTION_ID,
        EVALUATE,
        "evaluation",
    ]


# -- SECURITY.md rules -----------------------------------------------------------------------


def test_the_security_rules_pass_and_do_not_see_the_callback(text: str) -> None:
    """N1-N3, E5 and R6 read Training (and Tuning) steps, R5 Training, Processing, Transform
    and Tuning ones: a Callback step is none of them, so the rules pass without looking at
    it (its controls are the cluster's: the team's namespace, quota and pod identity)."""
    urn = "urn:pulumi:dev::mlops-platform::{type}::{name}"
    view = StackView(
        [
            Resource(
                urn=urn.format(type=ENVIRONMENT_TYPE, name="env"),
                type=ENVIRONMENT_TYPE,
                name="env",
                props={"environment": "dev"},
            ),
            Resource(
                urn=urn.format(type=PIPELINE, name="training"),
                type=PIPELINE,
                name="training",
                props={"pipelineDefinition": text},
            ),
        ]
    )
    assert list(training_jobs(view)) == []
    assert [j.name for j in processing_jobs(view)] == [PREPROCESS, EVALUATE]
    rules = [r for r in RULES if r.id in SECURITY_RULES]
    assert {r.id for r in rules} == set(SECURITY_RULES)
    assert [v for rule in rules for v in rule.run(view)] == []
