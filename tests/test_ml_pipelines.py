"""MlPipelines: pipelines built from the environment's real outputs, step code by content
hash, a least-privilege execution role, schedules with a dead-letter queue, failure alerts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from components.definition_cache import cached_definition
from components.step_code import step_code
from pipelines.context import context_for_stack
from pipelines.training import definition_json
from stacks import outputs
from stacks.offline import StackRecording, evaluate_config
from tests.conftest import stack_config

PIPELINE = "aws:sagemaker/pipeline:Pipeline"
SCHEDULE = "aws:scheduler/schedule:Schedule"
CODE = "aws:s3/bucketObjectv2:BucketObjectv2"


def test_one_training_pipeline_per_model_built_from_real_outputs(
    recording: StackRecording,
) -> None:
    pipeline = recording.named("mlops-pipelines-digits")
    role = recording.named("mlops-pipelines-execution-role")
    assert pipeline.inputs["pipelineName"] == f"mlops-{recording.stack}-digits-training"
    assert pipeline.inputs["roleArn"] == role.outputs["arn"]
    expected = dataclasses.replace(
        context_for_stack(recording.stack, "digits"),
        role_arn=role.outputs["arn"],
        kms_key_arn=recording.outputs[outputs.DATA_KEY_ARN],
        mlflow_tracking_uri=recording.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN],
        code_uri=(
            f"s3://{recording.outputs[outputs.BUCKET_NAMES]['models']}/code/"
            f"{step_code().short_hash}/pipelines/"
        ),
        security_group_ids=(recording.outputs[outputs.SAGEMAKER_SECURITY_GROUP_ID],),
        subnet_ids=tuple(recording.outputs[outputs.PRIVATE_SUBNET_IDS]),
    )
    assert expected.placeholders() == []
    assert pipeline.inputs["pipelineDefinition"] == definition_json(
        expected, recording.settings.models["digits"]
    )
    assert recording.outputs[outputs.PIPELINE_ARNS] == {"digits": pipeline.outputs["arn"]}


def test_step_code_uploaded_by_content_hash(recording: StackRecording) -> None:
    code = step_code()
    objects = {o.inputs["key"]: o.inputs for o in recording.of_type(CODE)}
    prefix = f"code/{code.short_hash}/pipelines/"
    assert set(objects) == {prefix + relative for relative, _ in code.files}
    assert prefix + "steps/train.py" in objects
    files = dict(code.files)
    assert objects[prefix + "steps/train.py"]["source"] == {
        "fileAsset": str(files["steps/train.py"])
    }
    for uploaded in objects.values():
        assert uploaded["bucket"] == recording.outputs[outputs.BUCKET_NAMES]["models"]
        assert uploaded["serverSideEncryption"] == "aws:kms"
        assert uploaded["kmsKeyId"] == recording.outputs[outputs.DATA_KEY_ARN]


def test_a_code_change_changes_the_hash(tmp_path: Path) -> None:
    package = tmp_path / "pipelines"
    (package / "steps").mkdir(parents=True)
    (package / "steps" / "train.py").write_text("EPOCHS = 1\n")
    (package / "image").mkdir()
    (package / "image" / "build.py").write_text("ignored\n")
    before = step_code(package)
    assert [relative for relative, _ in before.files] == ["steps/train.py"]
    (package / "steps" / "train.py").write_text("EPOCHS = 2\n")
    assert step_code(package).digest != before.digest


def test_execution_role_is_scoped_to_this_environment(recording: StackRecording) -> None:
    role = recording.named("mlops-pipelines-execution-role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = json.loads(recording.named("mlops-pipelines-execution-access").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    pass_role = statements["PassOnlyItselfToSageMaker"]
    assert pass_role["Resource"] == role.outputs["arn"]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    buckets = recording.outputs[outputs.BUCKET_NAMES]
    assert sorted(statements["EnvironmentBuckets"]["Resource"]) == sorted(
        f"arn:aws:s3:::{buckets[p]}" for p in ("datasets", "models", "pipeline")
    )
    assert statements["EnvironmentKey"]["Resource"] == recording.outputs[outputs.DATA_KEY_ARN]
    assert (
        statements["TrackInMlflow"]["Resource"]
        == (recording.outputs[outputs.MLFLOW_TRACKING_SERVER_ARN])
    )
    actions = [a for s in policy["Statement"] for a in json.dumps(s["Action"]).split('"')]
    assert "sagemaker:UpdateModelPackage" not in actions  # builds, never approves (A5)
    pipelines = recording.named("mlops-pipelines")
    attachments = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    assert not [r for r in recording.descendants(pipelines) if r.type == attachments]


def test_schedules_follow_settings(dev: StackRecording, prod: StackRecording) -> None:
    (off,) = dev.of_type(SCHEDULE)
    assert off.inputs["state"] == "DISABLED"
    (weekly,) = prod.of_type(SCHEDULE)
    assert weekly.inputs["scheduleExpression"] == "cron(0 1 ? * SUN *)"
    assert weekly.inputs["scheduleExpressionTimezone"] == "Europe/Dublin"
    assert weekly.inputs["state"] == "ENABLED"
    assert weekly.inputs["flexibleTimeWindow"] == {"mode": "FLEXIBLE", "maximumWindowInMinutes": 60}
    target = weekly.inputs["target"]
    assert target["arn"] == prod.outputs[outputs.PIPELINE_ARNS]["digits"]
    # Outside dev the gate is fixed in the definition: the schedule sets no threshold.
    assert "sagemakerPipelineParameters" not in target
    queue = prod.named("mlops-pipelines-schedule-dlq")
    assert target["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert queue.inputs["kmsMasterKeyId"] == prod.outputs[outputs.DATA_KEY_ARN]
    assert target["retryPolicy"]["maximumRetryAttempts"] == 5
    # A run Scheduler gave up on pages the team (the topic's ARN is fixed by its name).
    depth = prod.named("mlops-pipelines-schedule-dlq-alarm").inputs
    assert depth["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert depth["dimensions"] == {"QueueName": queue.outputs["name"]}
    region, account = prod.settings.aws.region, prod.settings.aws.account_id
    topic = prod.named("mlops-monitoring-alerts").inputs["name"]
    assert depth["alarmActions"] == [f"arn:aws:sns:{region}:{account}:{topic}"]
    scheduler = json.loads(prod.named("mlops-pipelines-scheduler-access").inputs["policy"])
    start = next(s for s in scheduler["Statement"] if s["Sid"] == "StartPipelines")
    assert start["Resource"] == [prod.outputs[outputs.PIPELINE_ARNS]["digits"]]


def test_no_models_no_pipelines() -> None:
    config = stack_config("test")
    del config["mlops-platform:models"]
    recording = evaluate_config("test", config)
    assert recording.of_type(PIPELINE) == [] and recording.of_type(CODE) == []
    assert outputs.PIPELINE_ARNS not in recording.outputs


def test_unknown_schedule_parameter_is_refused() -> None:
    from stacks.loader import SettingsError, settings_from_config

    config = stack_config("prod")
    config["mlops-platform:models"]["digits"]["schedule"]["parameters"] = {"Epochs": 3}
    with pytest.raises(SettingsError, match="unknown pipeline parameters \\['Epochs'\\]"):
        settings_from_config(config, source="stacks/Pulumi.prod.yaml")


def test_definitions_are_reused_until_an_input_changes(tmp_path: Path) -> None:
    context = context_for_stack("dev", "digits")
    model = stack_config("dev")["mlops-platform:models"]["digits"]
    from stacks.settings import ModelSettings

    settings = ModelSettings.model_validate(model)
    builds: list[str] = []

    def build(ctx: object, _model: object) -> str:
        builds.append("built")
        return json.dumps({"built": len(builds)})

    first = cached_definition(context, settings, "code-1", build, tmp_path)
    assert cached_definition(context, settings, "code-1", build, tmp_path) == first
    assert len(builds) == 1
    cached_definition(context, settings, "code-2", build, tmp_path)
    faster = settings.model_copy(update={"cache_expiry": "P1D"})
    cached_definition(context, faster, "code-2", build, tmp_path)
    assert len(builds) == 3

    def another_pipeline(ctx: object, _model: object) -> str:
        builds.append("other")
        return "{}"

    # Same inputs, another pipeline (the deployment one): its own entry.
    assert cached_definition(context, faster, "code-2", another_pipeline, tmp_path) == "{}"
    assert builds[-1] == "other"


def test_a_schedule_passes_its_parameters() -> None:
    config = stack_config("test")
    uri = "s3://mlops-test-datasets-222222222222-eu-west-1/digits/snapshot-2026-12/"
    config["mlops-platform:models"]["digits"]["schedule"]["parameters"] = {"InputDataUri": uri}
    (schedule,) = evaluate_config("test", config).of_type(SCHEDULE)
    assert schedule.inputs["target"]["sagemakerPipelineParameters"] == {
        "pipelineParameters": [{"name": "InputDataUri", "value": uri}]
    }


def test_outside_dev_a_schedule_cannot_set_the_gate() -> None:
    from stacks.loader import SettingsError, settings_from_config

    config = stack_config("prod")
    config["mlops-platform:models"]["digits"]["schedule"]["parameters"] = {"QualityThreshold": 0.5}
    with pytest.raises(SettingsError) as caught:
        settings_from_config(config, source="stacks/Pulumi.prod.yaml")
    assert (
        "mlops-platform:models.digits.schedule.parameters.QualityThreshold: outside dev the gate "
        "is fixed in the definition (set models.digits.quality_gate.threshold)"
    ) in str(caught.value)


def test_jobs_cannot_rewrite_the_step_code_or_leave_the_vpc(prod: StackRecording) -> None:
    """The execution role writes data but never the content-addressed step code; creates
    network interfaces only in the environment's subnets and security group; publishes
    metrics only to SageMaker's namespaces."""
    from policy.mlops_rules.iam_eval import Request, allows

    policy = json.loads(prod.named("mlops-pipelines-execution-access").inputs["policy"])
    statements = policy["Statement"]
    models = f"arn:aws:s3:::{prod.outputs[outputs.BUCKET_NAMES]['models']}"
    assert allows(statements, Request("s3:GetObject", f"{models}/code/0a1b/pipelines/x.py"))
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allows(statements, Request(action, f"{models}/code/0a1b/pipelines/x.py"))
        assert allows(
            statements, Request(action, f"{models}/digits/pipelines-1-Train/model.tar.gz")
        )
    region, account = prod.settings.aws.region, prod.settings.aws.account_id
    subnet = prod.outputs[outputs.PRIVATE_SUBNET_IDS][0]
    own = f"arn:aws:ec2:{region}:{account}:subnet/{subnet}"
    other = f"arn:aws:ec2:{region}:{account}:subnet/subnet-0elsewhere000000"
    assert allows(statements, Request("ec2:CreateNetworkInterface", own))
    assert not allows(statements, Request("ec2:CreateNetworkInterface", other))
    metrics = "cloudwatch:PutMetricData"
    sagemaker = {"cloudwatch:namespace": "aws/sagemaker/Endpoints/data-metrics"}
    assert allows(statements, Request(metrics, "*", context=sagemaker))
    assert not allows(
        statements, Request(metrics, "*", context={"cloudwatch:namespace": "Billing"})
    )
