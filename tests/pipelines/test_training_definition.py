"""The training pipeline definition (pipelines/training.py) of every committed stack.

The definitions are built once, in a fresh interpreter whose sockets refuse to connect (and
with fake AWS credentials, so that any AWS call would get as far as the network): building
must need no AWS. The tests then read the JSON the way SageMaker and the policy pack do:
step graph, parameters, the settings each environment's jobs carry, each job step's
arguments against botocore's model of the API call the step makes, and the SECURITY.md
rules over a pipeline resource holding the definition.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session  # type: ignore[import-untyped]  # botocore ships no types
import pytest
import yaml
from botocore.model import (  # type: ignore[import-untyped]
    ListShape,
    MapShape,
    OperationModel,
    Shape,
    StructureShape,
)
from botocore.validate import ParamValidator  # type: ignore[import-untyped]

from pipelines.context import (
    PLACEHOLDER,
    PipelineContext,
    UnknownModel,
    context_for_stack,
)
from pipelines.training import (
    EVALUATE,
    FAIL,
    PREPROCESS,
    QUALITY_GATE,
    REGISTER,
    TRAIN,
    approval_status,
)
from policy.mlops_rules import RULES, Resource, StackView, Violation
from policy.mlops_rules.model import ENVIRONMENT_TYPE
from policy.mlops_rules.pipeline_definitions import (
    PIPELINE,
    is_expression,
    processing_jobs,
    training_jobs,
)
from stacks.loader import STACKS_DIR, load_stack_settings, read_stack_config, stack_file
from stacks.settings import ModelSettings

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "test", "prod")
MODEL = "digits"
JOB_STEPS = (PREPROCESS, TRAIN, EVALUATE)
EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}

# Runs in a fresh interpreter: sockets are disabled before anything is imported, so the SDK's
# import-time setup counts too. Connection attempts are recorded (and refused), not just
# failed, so that one swallowed by the SDK still fails the test.
BUILD_SCRIPT = """
import json, socket, sys

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args))
    raise OSError("network access while building a pipeline definition")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import pipelines.training as training

sdk_imported_on_import = any(m == "sagemaker" or m.startswith("sagemaker.") for m in sys.modules)

from pipelines.context import context_for_stack
from stacks.loader import load_stack_settings

output, model, *stacks = sys.argv[1:]
definitions = {
    stack: training.definition_json(
        context_for_stack(stack, model), load_stack_settings(stack).models[model]
    )
    for stack in stacks
}
with open(output, "w") as file:
    json.dump(
        {
            "definitions": definitions,
            "attempts": attempts,
            "sdk_imported_on_import": sdk_imported_on_import,
        },
        file,
    )
"""


def _build_environment() -> dict[str, str]:
    """This process's environment without AWS settings, plus fake credentials: a real AWS
    call would then try to connect instead of stopping at "no credentials"."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(
        AWS_ACCESS_KEY_ID="AKIAFAKEFAKEFAKEFAKE",
        AWS_SECRET_ACCESS_KEY="fake",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PYTHONPATH=str(REPO),
    )
    return environment


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("definitions") / "build.json"
    result = subprocess.run(
        [sys.executable, "-c", BUILD_SCRIPT, str(output), MODEL, *ENVIRONMENTS],
        cwd=REPO,
        env=_build_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    built: dict[str, Any] = json.loads(output.read_text())
    return built


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def text(build: dict[str, Any], env: str) -> str:
    definition: str = build["definitions"][env]
    return definition


@pytest.fixture
def definition(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@pytest.fixture
def context(env: str) -> PipelineContext:
    return context_for_stack(env, MODEL)


@pytest.fixture
def model(env: str) -> ModelSettings:
    return load_stack_settings(env).models[MODEL]


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, condition branches included."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"].get("IfSteps", []))
            yield from all_steps(step["Arguments"].get("ElseSteps", []))


def steps_of(definition: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for step in all_steps(definition["Steps"])}


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps whose properties `value` reads (`{"Get": "Steps.<name>...."}`)."""
    if isinstance(value, Mapping):
        found = {
            get.split(".")[1]
            for key, get in value.items()
            if key == "Get" and isinstance(get, str) and get.startswith("Steps.")
        }
        return found.union(*(referenced_steps(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced_steps(v) for v in value))
    return set()


# -- building --------------------------------------------------------------------------------


def test_building_opens_no_connection(build: dict[str, Any]) -> None:
    assert build["attempts"] == []
    assert set(build["definitions"]) == set(ENVIRONMENTS)


def test_importing_the_module_does_not_import_the_sdk(build: dict[str, Any]) -> None:
    assert build["sdk_imported_on_import"] is False


def test_nothing_local_leaks_into_the_definition(text: str) -> None:
    # A local path in a definition means the SDK meant to upload it (or did).
    assert "file://" not in text
    assert "/tmp/" not in text
    assert str(REPO) not in text


def test_placeholders_are_the_contexts_own(text: str, context: PipelineContext) -> None:
    # Filling the context's placeholders in leaves a definition with none.
    assert set(PLACEHOLDER.findall(text)) == set(context.placeholders())


# -- graph ----------------------------------------------------------------------------------


def test_steps_and_their_order(definition: dict[str, Any]) -> None:
    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [
        (PREPROCESS, "Processing"),
        (TRAIN, "Training"),
        (EVALUATE, "Processing"),
        (QUALITY_GATE, "Condition"),
    ]
    gate = definition["Steps"][-1]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [(REGISTER, "RegisterModel")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [(FAIL, "Fail")]


def own_arguments(step: Mapping[str, Any]) -> Any:
    """A step's arguments without the steps nested in them (a condition's branches)."""
    arguments: Mapping[str, Any] = step["Arguments"]
    return arguments["Conditions"] if step["Type"] == "Condition" else arguments


def test_dependencies(definition: dict[str, Any]) -> None:
    depends = {
        name: referenced_steps(own_arguments(step)) | set(step.get("DependsOn", []))
        for name, step in steps_of(definition).items()
    }
    assert depends == {
        PREPROCESS: set(),
        TRAIN: {PREPROCESS},
        EVALUATE: {PREPROCESS, TRAIN},
        QUALITY_GATE: {EVALUATE},
        REGISTER: {TRAIN, EVALUATE},
        FAIL: {EVALUATE},
    }


# -- parameters ------------------------------------------------------------------------------


def test_parameters_default_to_the_settings(
    definition: dict[str, Any], context: PipelineContext, model: ModelSettings, env: str
) -> None:
    expected = [
        {
            "Name": "InputDataUri",
            "Type": "String",
            "DefaultValue": f"s3://{context.datasets_bucket}/{MODEL}/raw/",
        },
        {
            "Name": "TrainingInstanceType",
            "Type": "String",
            "DefaultValue": model.training.instance_type,
        },
    ]
    if env == "dev":
        expected += [
            {
                "Name": "QualityThreshold",
                "Type": "Float",
                "DefaultValue": model.quality_gate.threshold,
            },
            {
                "Name": "ModelApprovalStatus",
                "Type": "String",
                "DefaultValue": approval_status(model),
            },
        ]
    assert definition["Parameters"] == expected


@pytest.mark.parametrize(
    ("stack", "status", "threshold"),
    [
        ("dev", "Approved", 0.9),
        ("test", "PendingManualApproval", 0.93),
        ("prod", "PendingManualApproval", 0.96),
    ],
)
def test_outside_dev_the_gate_and_the_approval_are_fixed(
    build: dict[str, Any], stack: str, status: str, threshold: float
) -> None:
    """Anyone who may start an execution sets its Parameters: outside dev neither the gate's
    threshold nor the approval status is one."""
    definition = json.loads(build["definitions"][stack])
    steps = steps_of(definition)
    defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    (condition,) = steps[QUALITY_GATE]["Arguments"]["Conditions"]
    register = steps[REGISTER]["Arguments"]
    if stack == "dev":
        assert defaults["ModelApprovalStatus"] == status
        assert defaults["QualityThreshold"] == threshold
        assert condition["RightValue"] == {"Get": "Parameters.QualityThreshold"}
        assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    else:
        assert not {"ModelApprovalStatus", "QualityThreshold"} & set(defaults)
        assert condition["RightValue"] == threshold
        assert register["ModelApprovalStatus"] == status


def test_parameters_are_used(definition: dict[str, Any], model: ModelSettings) -> None:
    train = steps_of(definition)[TRAIN]["Arguments"]
    preprocess = steps_of(definition)[PREPROCESS]["Arguments"]
    assert train["ResourceConfig"]["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    # train.py trains on one instance: the count is fixed, not a Parameter.
    assert train["ResourceConfig"]["InstanceCount"] == model.training.instance_count == 1
    raw = next(i for i in preprocess["ProcessingInputs"] if i["InputName"] == "raw")
    assert raw["S3Input"]["S3Uri"] == {"Get": "Parameters.InputDataUri"}


# -- job settings ----------------------------------------------------------------------------

REQUIRED_RETRIES = {
    "SageMaker.CAPACITY_ERROR",
    "SageMaker.JOB_INTERNAL_ERROR",
    "SageMaker.RESOURCE_LIMIT",
    "Step.THROTTLING",
    "Step.SERVICE_FAULT",
}


def test_job_steps_retry_every_transient_error(definition: dict[str, Any]) -> None:
    steps = steps_of(definition)
    for name in JOB_STEPS:
        policies = steps[name]["RetryPolicies"]
        assert {e for p in policies for e in p["ExceptionType"]} == REQUIRED_RETRIES, name
        for policy in policies:
            # Bounded: by attempts or by time, exactly one of them.
            assert ("MaxAttempts" in policy) != ("ExpireAfterMin" in policy), policy
            assert policy["IntervalSeconds"] > 0 and policy["BackoffRate"] >= 1
    # CreateModelPackage is no job: only the step exceptions apply.
    register = steps[REGISTER]["RetryPolicies"]
    assert {e for p in register for e in p["ExceptionType"]} == {
        "Step.THROTTLING",
        "Step.SERVICE_FAULT",
    }


@pytest.mark.parametrize(("stack", "runtime", "wait"), [("dev", 1800, 3600), ("test", 3600, 7200)])
def test_spot_training_checkpoints_and_waits(
    build: dict[str, Any], stack: str, runtime: int, wait: int
) -> None:
    train = steps_of(json.loads(build["definitions"][stack]))[TRAIN]["Arguments"]
    assert train["EnableManagedSpotTraining"] is True
    assert train["StoppingCondition"] == {
        "MaxRuntimeInSeconds": runtime,
        "MaxWaitTimeInSeconds": wait,
    }
    checkpoints = train["CheckpointConfig"]["S3Uri"]["Std:Join"]
    context = context_for_stack(stack, MODEL)
    assert checkpoints["On"] == "/"
    assert checkpoints["Values"] == [
        "s3:/",
        context.bucket,
        context.pipeline_name,
        EXECUTION_ID,
        TRAIN,
        "checkpoints",
    ]


def test_prod_trains_on_demand(build: dict[str, Any]) -> None:
    train = steps_of(json.loads(build["definitions"]["prod"]))[TRAIN]["Arguments"]
    assert train["EnableManagedSpotTraining"] is False
    assert train["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert "CheckpointConfig" not in train


def test_no_spot_job_asks_for_a_warm_pool(definition: dict[str, Any]) -> None:
    # SageMaker keeps no warm pool for managed spot; settings refuse the combination.
    train = steps_of(definition)[TRAIN]["Arguments"]
    if train.get("EnableManagedSpotTraining"):
        assert "KeepAlivePeriodInSeconds" not in train["ResourceConfig"]


def test_jobs_run_in_the_vpc_with_kms(
    definition: dict[str, Any], context: PipelineContext, model: ModelSettings
) -> None:
    steps = steps_of(definition)
    vpc = {
        "Subnets": list(context.subnet_ids),
        "SecurityGroupIds": list(context.security_group_ids),
    }
    key = context.kms_key_arn
    for name in (PREPROCESS, EVALUATE):
        job = steps[name]["Arguments"]
        assert job["NetworkConfig"]["VpcConfig"] == vpc
        assert job["ProcessingOutputConfig"]["KmsKeyId"] == key
        cluster = job["ProcessingResources"]["ClusterConfig"]
        assert cluster["InstanceType"] == model.processing.instance_type
        assert cluster["VolumeKmsKeyId"] == key  # ml.m5: EBS volumes
    train = steps[TRAIN]["Arguments"]
    assert train["VpcConfig"] == vpc
    assert train["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{context.models_bucket}/{MODEL}/",
        "KmsKeyId": key,
        "CompressionType": "GZIP",
    }
    # ml.g5 has NVMe instance storage, which takes no volume key.
    assert model.training.instance_type.startswith("ml.g5.")
    assert "VolumeKmsKeyId" not in train["ResourceConfig"]
    assert train["ResourceConfig"]["VolumeSizeInGB"] == model.training.volume_size_gb
    # The instance count is a parameter: encryption between instances is always on.
    assert train["EnableInterContainerTrafficEncryption"] is True
    # Training reaches MLflow: not isolated (policy N2's documented exception).
    assert train["EnableNetworkIsolation"] is False


def test_jobs_track_to_mlflow(definition: dict[str, Any], context: PipelineContext) -> None:
    steps = steps_of(definition)
    for name in JOB_STEPS:
        environment = steps[name]["Arguments"]["Environment"]
        assert environment["MLFLOW_TRACKING_URI"] == context.mlflow_tracking_uri, name
        assert environment["MLFLOW_EXPERIMENT_NAME"] == context.mlflow_experiment_name, name
        # Nothing per execution: the environment is part of the step's cache key.
        assert "MLOPS_PIPELINE_EXECUTION_ID" not in environment, name
        assert "Execution." not in json.dumps(environment), name
        assert environment["MLOPS_MODEL_NAME"] == MODEL, name


def test_caching_follows_the_settings(definition: dict[str, Any], model: ModelSettings) -> None:
    steps = steps_of(definition)
    assert model.cache_expiry is not None
    for name in JOB_STEPS:
        if name == PREPROCESS:
            continue
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": model.cache_expiry}
    assert "CacheConfig" not in steps[REGISTER]


def test_new_data_is_a_cache_miss(definition: dict[str, Any]) -> None:
    """Preprocess reads a prefix whose objects change under the same arguments, and SageMaker
    keys a processing step without its outputs: it is never cached. Its outputs live under
    the execution's id, and Train reads them from there, so Train's key changes with every
    Preprocess run and a run on changed data trains on the new splits."""
    steps = steps_of(definition)
    assert "CacheConfig" not in steps[PREPROCESS]
    outputs = steps[PREPROCESS]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    for output in outputs:
        values = output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
        assert {"Get": "Execution.PipelineExecutionId"} in values
    channels = steps[TRAIN]["Arguments"]["InputDataConfig"]
    sources = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels]
    assert any(
        isinstance(uri, dict) and str(uri.get("Get", "")).startswith("Steps.Preprocess.")
        for uri in sources
    )


def test_cache_expiry_per_environment(build: dict[str, Any]) -> None:
    expiry = {
        stack: steps_of(json.loads(text))[TRAIN]["CacheConfig"]["ExpireAfter"]
        for stack, text in build["definitions"].items()
    }
    assert expiry == {"dev": "P7D", "test": "P30D", "prod": "P30D"}


def test_step_code_comes_from_the_code_prefix(
    definition: dict[str, Any], context: PipelineContext, model: ModelSettings
) -> None:
    steps = steps_of(definition)
    for name, module in ((PREPROCESS, "preprocess"), (EVALUATE, "evaluate")):
        job = steps[name]["Arguments"]
        assert job["AppSpecification"]["ContainerEntrypoint"] == [
            "python3",
            "-m",
            f"pipelines.steps.{module}",
        ]
        code = next(i for i in job["ProcessingInputs"] if i["InputName"] == "code")
        assert code["S3Input"]["S3Uri"] == context.code_uri
        assert code["S3Input"]["LocalPath"] == "/opt/ml/processing/code/pipelines"
        assert job["Environment"]["PYTHONPATH"] == "/opt/ml/processing/code"
        assert job["AppSpecification"]["ImageUri"] == context.image_uri
    train = steps[TRAIN]["Arguments"]
    algorithm = train["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == context.image_uri
    assert algorithm["ContainerEntrypoint"] == ["python3", "-m", "pipelines.steps.train"]
    hyperparameters = {k: str(v) for k, v in model.training.hyperparameters.items()}
    assert train["HyperParameters"] == hyperparameters
    # Without the training toolkit in the image, the script sees them only as arguments.
    arguments = algorithm.get("ContainerArguments", [])
    assert dict(zip(arguments[::2], arguments[1::2], strict=True)) == {
        f"--{k}": v for k, v in hyperparameters.items()
    }
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train["InputDataConfig"]
    }
    assert channels["pipelines"] == context.code_uri
    assert train["Environment"]["PYTHONPATH"] == "/opt/ml/input/data"
    # The modules the entrypoints run exist.
    for module in ("preprocess", "train", "evaluate"):
        assert (REPO / "pipelines" / "steps" / f"{module}.py").is_file()


def test_step_paths_match_the_step_code(definition: dict[str, Any]) -> None:
    """The container paths are the defaults of the step scripts' command lines."""
    steps = steps_of(definition)
    preprocess = steps[PREPROCESS]["Arguments"]
    assert {
        o["OutputName"]: o["S3Output"]["LocalPath"]
        for o in preprocess["ProcessingOutputConfig"]["Outputs"]
    } == {split: f"/opt/ml/processing/output/{split}" for split in ("train", "validation", "test")}
    evaluate = steps[EVALUATE]["Arguments"]
    assert {i["InputName"]: i["S3Input"]["LocalPath"] for i in evaluate["ProcessingInputs"]} == {
        "model": "/opt/ml/processing/model",
        "test": "/opt/ml/processing/test",
        "code": "/opt/ml/processing/code/pipelines",
    }
    (evaluation,) = evaluate["ProcessingOutputConfig"]["Outputs"]
    assert evaluation["S3Output"]["LocalPath"] == "/opt/ml/processing/evaluation"
    train = steps[TRAIN]["Arguments"]
    assert [c["ChannelName"] for c in train["InputDataConfig"]] == [
        "train",
        "validation",
        "pipelines",
    ]


# -- gate and registration -------------------------------------------------------------------


def test_quality_gate(definition: dict[str, Any], model: ModelSettings, env: str) -> None:
    steps = steps_of(definition)
    assert steps[EVALUATE]["PropertyFiles"] == [
        {
            "PropertyFileName": "EvaluationReport",
            "OutputName": "evaluation",
            "FilePath": "evaluation.json",
        }
    ]
    metric = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
            "Path": f"multiclass_classification_metrics.{model.quality_gate.metric}.value",
        }
    }
    threshold: Any = (
        {"Get": "Parameters.QualityThreshold"} if env == "dev" else model.quality_gate.threshold
    )
    assert steps[QUALITY_GATE]["Arguments"]["Conditions"] == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": metric, "RightValue": threshold}
    ]
    message = steps[FAIL]["Arguments"]["ErrorMessage"]["Std:Join"]
    assert message["On"] == ""
    assert metric in message["Values"]
    assert threshold in message["Values"]
    assert any(isinstance(v, str) and model.quality_gate.metric in v for v in message["Values"])


def test_registration(definition: dict[str, Any], context: PipelineContext) -> None:
    register = steps_of(definition)[REGISTER]["Arguments"]
    assert register["ModelPackageGroupName"] == context.model_package_group
    (container,) = register["InferenceSpecification"]["Containers"]
    # The inference image serves (`serve`, /ping, /invocations); the step image cannot.
    assert container["Image"] == context.inference_image_uri
    assert context.inference_image_uri.split("/", 1)[1].startswith(
        f"mlops-{context.stack}/inference:"
    )
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    # No script-mode variables: the image serves the model by itself.
    assert not container.get("Environment")
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"] == {
        "Std:Join": {
            "On": "/",
            "Values": [
                {
                    "Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation']"
                    ".S3Output.S3Uri"
                },
                "evaluation.json",
            ],
        }
    }


# -- the API calls the steps make ------------------------------------------------------------

SAGEMAKER_API = botocore.session.get_session().get_service_model("sagemaker")
# Step type -> the API call the pipeline makes, and the name it gives the job itself.
STEP_API = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "Training": ("CreateTrainingJob", "TrainingJobName"),
    "RegisterModel": ("CreateModelPackage", None),
}
# Where a `{{name}}` placeholder stands, a value that fits the usual ID and name patterns.
PLACEHOLDER_STAND_IN = "0123abcd"


def stand_in(shape: Shape) -> Any:
    """A value of `shape`'s type for a run-time expression."""
    kind = shape.type_name
    if kind == "string":
        return shape.enum[0] if shape.enum else "x" * max(1, shape.metadata.get("min", 1))
    if kind in ("integer", "long"):
        return shape.metadata.get("min", 1)
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 0))
    if kind == "boolean":
        return True
    raise AssertionError(f"an expression stands for a whole {kind} {shape.name}")


def resolved(shape: Shape, value: Any) -> Any:
    """`value` with each run-time expression replaced by a stand-in of the type the API
    expects there (walking the shape and the value together)."""
    if is_expression(value):
        return stand_in(shape)
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        members = shape.members
        return {k: resolved(members[k], v) if k in members else v for k, v in value.items()}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [resolved(shape.member, v) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        return {k: resolved(shape.value, v) for k, v in value.items()}
    return value


def pattern_errors(shape: Shape, value: Any, path: str = "") -> Iterator[str]:
    """Strings that break the API's `pattern` (botocore checks types and lengths only);
    run-time expressions are SageMaker's to resolve and are skipped."""
    if is_expression(value):
        return
    if isinstance(shape, StructureShape) and isinstance(value, Mapping):
        for key, member in value.items():
            if key in shape.members:
                yield from pattern_errors(shape.members[key], member, f"{path}.{key}")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for i, member in enumerate(value):
            yield from pattern_errors(shape.member, member, f"{path}[{i}]")
    elif isinstance(shape, MapShape) and isinstance(value, Mapping):
        for key, member in value.items():
            yield from pattern_errors(shape.value, member, f"{path}.{key}")
    elif isinstance(value, str) and "pattern" in shape.metadata:
        text = PLACEHOLDER.sub(PLACEHOLDER_STAND_IN, value)
        try:
            matched = re.fullmatch(shape.metadata["pattern"], text, re.DOTALL)
        except re.error:  # a Java-only construct: leave that one to AWS
            return
        if matched is None:
            yield f"{path}: {value!r} does not match {shape.metadata['pattern']!r}"


def api_request(step: Mapping[str, Any]) -> tuple[OperationModel, dict[str, Any]]:
    """The API call a step makes, and its request with the job name SageMaker adds."""
    operation_name, job_name = STEP_API[step["Type"]]
    arguments = copy.deepcopy(dict(step["Arguments"]))
    if job_name is not None:
        assert job_name not in arguments  # the pipeline names its jobs
        arguments[job_name] = "mlops-job"
    return SAGEMAKER_API.operation_model(operation_name), arguments


def api_problems(operation: OperationModel, request: dict[str, Any]) -> list[str]:
    shape = operation.input_shape
    report = ParamValidator().validate(resolved(shape, request), shape)
    problems = [report.generate_report()] if report.has_errors() else []
    return problems + list(pattern_errors(shape, request))


@pytest.mark.parametrize("step_name", [*JOB_STEPS, REGISTER])
def test_step_arguments_are_valid_api_requests(definition: dict[str, Any], step_name: str) -> None:
    assert api_problems(*api_request(steps_of(definition)[step_name])) == []


def test_api_check_catches_a_bad_request(definition: dict[str, Any]) -> None:
    """The check above is not vacuous: a wrong type, an unknown key, a bad pattern fail."""
    operation, request = api_request(steps_of(definition)[TRAIN])
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = "one hour"
    request["ResourceConfig"]["Bogus"] = 1
    request["RoleArn"] = "not-an-arn-but-long-enough"
    problems = "\n".join(api_problems(operation, request))
    for field in ("MaxRuntimeInSeconds", "Bogus", "RoleArn"):
        assert field in problems


# -- SECURITY.md rules -----------------------------------------------------------------------

SECURITY_RULES = ("N1", "N2", "N3", "E5", "R5", "R6")


def security_view(definition_text: str, tier: str) -> StackView:
    """The stack as the policy pack sees it: the environment and one pipeline resource."""
    urn = "urn:pulumi:{tier}::mlops-platform::{type}::{name}"
    return StackView(
        [
            Resource(
                urn=urn.format(tier=tier, type=ENVIRONMENT_TYPE, name="env"),
                type=ENVIRONMENT_TYPE,
                name="env",
                props={"environment": tier},
            ),
            Resource(
                urn=urn.format(tier=tier, type=PIPELINE, name="training"),
                type=PIPELINE,
                name="training",
                props={"pipelineDefinition": definition_text},
            ),
        ]
    )


def security_violations(view: StackView) -> list[Violation]:
    rules = [r for r in RULES if r.id in SECURITY_RULES]
    assert {r.id for r in rules} == set(SECURITY_RULES)
    return [violation for rule in rules for violation in rule.run(view)]


def test_definition_keeps_the_security_rules(text: str, env: str) -> None:
    tier = load_stack_settings(env).environment
    view = security_view(text, tier)
    # The rules see the jobs (a misnamed prop would make them pass vacuously).
    assert [j.name for j in training_jobs(view)] == [TRAIN]
    assert [j.name for j in processing_jobs(view)] == [PREPROCESS, EVALUATE]
    assert security_violations(view) == []


def test_security_rules_catch_a_broken_definition(definition: dict[str, Any]) -> None:
    """The check above is not vacuous: the rules do fail a definition that breaks them."""
    broken = copy.deepcopy(definition)
    steps = steps_of(broken)
    train = steps[TRAIN]["Arguments"]
    del train["VpcConfig"]
    del steps[PREPROCESS]["RetryPolicies"]
    train["EnableManagedSpotTraining"] = True
    train["StoppingCondition"].pop("MaxWaitTimeInSeconds", None)
    view = security_view(json.dumps(broken), "prod")
    assert {v.rule.split("-")[0] for v in security_violations(view)} == {"n1", "r5", "r6"}


# -- context ---------------------------------------------------------------------------------


def test_context_names(env: str, context: PipelineContext) -> None:
    settings = load_stack_settings(env)
    account, region = settings.aws.account_id, settings.aws.region
    assert context.bucket == f"mlops-{env}-pipeline-{account}-{region}"
    assert context.datasets_bucket == f"mlops-{env}-datasets-{account}-{region}"
    assert context.models_bucket == f"mlops-{env}-models-{account}-{region}"
    assert context.model_package_group == f"mlops-{env}-{MODEL}"
    assert context.pipeline_name == f"mlops-{env}-{MODEL}-training"
    tag = settings.models[MODEL].image_tag
    assert context.image_uri == (
        f"{account}.dkr.ecr.{region}.amazonaws.com/mlops-{env}/training:{tag}"
    )
    assert context.code_uri == f"s3://{context.models_bucket}/code/{{{{code_hash}}}}/"
    assert context.role_arn == f"arn:aws:iam::{account}:role/{{{{role_name}}}}"
    assert len(context.subnet_ids) == settings.network.az_count
    assert sorted(context.placeholders()) == sorted(
        [
            "{{role_name}}",
            "{{data_key_id}}",
            *(f"{{{{subnet_id_{i}}}}}" for i in range(settings.network.az_count)),
            "{{security_group_id}}",
            "{{tracking_server_name}}",
            "{{code_hash}}",
        ]
    )


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(
        UnknownModel, match=r"stack 'dev' has no model 'churn' \(its models: digits\)"
    ):
        context_for_stack("dev", "churn")


def test_existing_vpc_subnets_are_real(tmp_path: Path) -> None:
    config = read_stack_config(stack_file("test", STACKS_DIR))
    subnets = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    config["mlops-platform:network"] = {
        **config["mlops-platform:network"],
        "existing_vpc": {
            "vpc_id": "vpc-0123456789abcdef0",
            "private_subnet_ids": subnets,
            "private_route_table_ids": ["rtb-0123456789abcdef0"],
        },
    }
    (tmp_path / "Pulumi.shared.yaml").write_text(yaml.safe_dump({"config": config}))
    context = context_for_stack("shared", MODEL, stacks_dir=tmp_path)
    assert context.subnet_ids == tuple(subnets)
    assert not any("subnet" in p for p in context.placeholders())
