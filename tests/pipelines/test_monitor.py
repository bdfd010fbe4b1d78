"""The monitor step against AWS APIs without AWS.

S3 (the baseline input: CSVs read, label dropped, one features CSV written with SSE-KMS) runs on a
moto server on 127.0.0.1 over real HTTP, and so do the SageMaker calls moto 5.2.5 implements:
processing jobs (Completed at once; moto drops their Environment) and data quality job
definitions. moto has no monitoring schedules, and its processing jobs never run, fail or wait,
so the exact parameters of every SageMaker call, the waiting, a failed baselining job and the
schedule's create/update/unchanged paths run on real boto3 clients answered by botocore's
Stubber, which checks every request against AWS's API model. No test sleeps, and a guard fails
any connection to anything but loopback.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from botocore.stub import Stubber

from pipelines.steps import monitor as monitor_step
from pipelines.steps.monitor import (
    MonitorRequest,
    MonitorRequestError,
    analyzer_image_uri,
    baseline_job_name_for,
    job_definition_name_for,
    job_definition_spec,
    main,
    prepare_baseline_input,
    put_under_monitoring,
)
from tests.pipelines.aws_stubs import (
    ACCOUNT,
    RecordsCalls,
    assert_bad_flag_exits,
    loopback_only,  # noqa: F401 - autouse: no test leaves loopback
    replace_clients,
    sagemaker_arn,
    stubbed_client,
)
from tests.pipelines.moto_server import REGION, moto_client, moto_server, moto_url  # noqa: F401

ENDPOINT = "digits"
PACKAGE = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package/digits/3"
MODEL_URI = "s3://mlops-models/digits/pipelines-x-Train/output/model.tar.gz"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-monitor"
KMS = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DATA_BUCKET = "mlops-data"
WORK_BUCKET = "mlops-work"
BASELINE_DATA = f"s3://{DATA_BUCKET}/digits/validation/"
WORK = f"s3://{WORK_BUCKET}/monitor/digits/"
IMAGE = "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SCHEDULE = "digits-data-quality"
HOURLY = "cron(0 * ? * * *)"
VPC = {"SecurityGroupIds": ["sg-monitor"], "Subnets": ["subnet-a", "subnet-b"]}
NETWORK = {"EnableInterContainerTrafficEncryption": True, "VpcConfig": VPC}
CLUSTER = {
    "InstanceCount": 1,
    "InstanceType": "ml.m5.large",
    "VolumeSizeInGB": 20,
    "VolumeKmsKeyId": KMS,
}


def make_request(**overrides: Any) -> MonitorRequest:
    settings: dict[str, Any] = {
        "endpoint_name": ENDPOINT,
        "model_package_arn": PACKAGE,
        "baseline_data_uri": BASELINE_DATA,
        "work_s3_uri": WORK,
        "execution_role_arn": ROLE,
        "kms_key_arn": KMS,
        "subnet_ids": ("subnet-a", "subnet-b"),
        "security_group_ids": ("sg-monitor",),
        "region": REGION,
        "poll_seconds": 60.0,
        "timeout_seconds": 600,
    }
    settings.update(overrides)
    return MonitorRequest(**settings)


def always_seven(features: pd.DataFrame) -> list[int]:
    """A stand-in for the package's model (tests/pipelines/test_monitor_baseline.py scores
    with a real one): the prediction column's values are its answers."""
    return [7] * len(features)


@pytest.fixture(autouse=True)
def package_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's model, without a package: its URI and a predictor."""
    monkeypatch.setattr(monitor_step, "package_model_uri", lambda sagemaker, arn: MODEL_URI)
    monkeypatch.setattr(monitor_step, "predictor_from_archive", lambda s3, uri: always_seven)


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"the step slept {seconds} s")


# --- moto server: S3 ------------------------------------------------------------------------


@dataclass
class Recorded(RecordsCalls):
    """moto-backed clients and every call (operation, parameters) they made."""

    s3: Any
    sagemaker: Any
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def aws(moto_url: str) -> Recorded:  # noqa: F811 - the fixture imported above
    recorded = Recorded(moto_client(moto_url, "s3"), moto_client(moto_url, "sagemaker"))
    recorded.listen(recorded.s3, recorded.sagemaker)
    for bucket in (DATA_BUCKET, WORK_BUCKET):
        recorded.s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
    return recorded


def put_csv(s3: Any, key: str, frame: pd.DataFrame) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=frame.to_csv(index=False).encode())


def digits_parts(s3: Any) -> pd.DataFrame:
    """Two CSV parts with a header and a label column (plus a non-CSV file that is ignored)."""
    first = pd.DataFrame({"pixel_0": [0, 3], "pixel_1": [16, 2], "label": [1, 7]})
    second = pd.DataFrame({"pixel_0": [5], "pixel_1": [9], "label": [4]})
    put_csv(s3, "digits/validation/part-0001.csv", second)
    put_csv(s3, "digits/validation/part-0000.csv", first)
    s3.put_object(Bucket=DATA_BUCKET, Key="digits/validation/_SUCCESS", Body=b"")
    features = pd.concat([first, second], ignore_index=True).drop(columns=["label"])
    # The captured layout: the model's prediction first, then the features.
    features.insert(0, "prediction", always_seven(features))
    return features


def read_features(s3: Any, prefix: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    bucket, _, key = (prefix + "features.csv").removeprefix("s3://").partition("/")
    answer = s3.get_object(Bucket=bucket, Key=key)
    return pd.read_csv(io.BytesIO(answer["Body"].read())), answer


def test_baseline_input_is_the_captured_layout_written_with_the_kms_key(aws: Recorded) -> None:
    expected = digits_parts(aws.s3)

    prefix = prepare_baseline_input(aws.s3, make_request(), always_seven)

    assert re.fullmatch(rf"{WORK}baseline-input/[0-9a-f]{{16}}/", prefix)
    features, answer = read_features(aws.s3, prefix)
    pd.testing.assert_frame_equal(features, expected)
    assert answer["ServerSideEncryption"] == "aws:kms"
    assert answer["SSEKMSKeyId"] == KMS
    [put] = aws.made("PutObject")[-1:]
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", KMS)
    assert put["Bucket"] == WORK_BUCKET


def test_baseline_input_sends_the_sse_kms_headers(aws: Recorded) -> None:
    digits_parts(aws.s3)
    headers: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        headers.append(
            {
                key: value.decode() if isinstance(value, bytes) else value
                for key, value in request.headers.items()
            }
        )

    aws.s3.meta.events.register("before-send.s3.PutObject", capture)

    prepare_baseline_input(aws.s3, make_request(), always_seven)

    [sent] = headers
    assert sent["x-amz-server-side-encryption"] == "aws:kms"
    assert sent["x-amz-server-side-encryption-aws-kms-key-id"] == KMS


def test_the_same_data_again_writes_nothing(aws: Recorded) -> None:
    digits_parts(aws.s3)
    first = prepare_baseline_input(aws.s3, make_request(), always_seven)
    aws.calls.clear()

    again = prepare_baseline_input(aws.s3, make_request(), always_seven)

    assert again == first
    assert aws.made("PutObject") == []


def test_a_missing_label_column_fails_naming_it(aws: Recorded) -> None:
    put_csv(aws.s3, "digits/validation/part.csv", pd.DataFrame({"pixel_0": [1], "y": [2]}))

    result = put_under_monitoring(aws.sagemaker, aws.s3, make_request(), sleep=_never_sleep)

    assert result.outcome == "failed"
    assert "has no label column 'label'" in result.message
    assert "pixel_0, y" in result.message
    assert [call["Bucket"] for call in aws.made("PutObject")] == [DATA_BUCKET]  # the setup's
    assert aws.sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []


def test_no_csv_under_the_baseline_uri_fails(aws: Recorded) -> None:
    aws.s3.put_object(Bucket=DATA_BUCKET, Key="digits/validation/data.parquet", Body=b"x")

    result = put_under_monitoring(aws.sagemaker, aws.s3, make_request(), sleep=_never_sleep)

    assert result.outcome == "failed"
    assert result.message == f"no CSV files under {BASELINE_DATA}"


class _Split:
    """A `sagemaker` client: moto for what moto implements, the stubbed client for schedules."""

    def __init__(self, moto: Any, stubbed: Any) -> None:
        self.moto, self.stubbed = moto, stubbed

    def __getattr__(self, name: str) -> Any:
        client = self.stubbed if "monitoring_schedule" in name else self.moto
        return getattr(client, name)


def test_first_run_on_moto_baselines_defines_and_schedules(aws: Recorded) -> None:
    digits_parts(aws.s3)
    schedules = stubbed_client("sagemaker")
    request = make_request()
    with Stubber(schedules) as stub:
        stub.add_client_error(
            "describe_monitoring_schedule",
            service_error_code="ResourceNotFound",
            service_message="Monitoring Schedule digits-data-quality not found",
            http_status_code=400,
            expected_params={"MonitoringScheduleName": "digits-data-quality"},
        )
        stub.add_response(
            "create_monitoring_schedule",
            {"MonitoringScheduleArn": sagemaker_arn("monitoring-schedule", "digits-data-quality")},
        )
        result = put_under_monitoring(
            _Split(aws.sagemaker, schedules), aws.s3, request, sleep=_never_sleep
        )
        stub.assert_no_pending_responses()

    assert result.outcome == "scheduled", result.message
    job = aws.sagemaker.describe_processing_job(ProcessingJobName=result.baseline_job_name)
    assert re.fullmatch(r"digits-baseline-[0-9a-f]{8}", result.baseline_job_name)
    assert job["AppSpecification"] == {"ImageUri": IMAGE}
    assert job["NetworkConfig"] == NETWORK
    # moto keeps neither ProcessingResources nor Environment: what the step sent is checked.
    [sent] = aws.made("CreateProcessingJob")
    assert sent["ProcessingResources"] == {"ClusterConfig": CLUSTER}
    assert sent["Environment"]["publish_cloudwatch_metrics"] == "Disabled"
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == KMS
    baseline = f"{WORK}baseline/{result.baseline_job_name}/"
    assert result.statistics_uri == baseline + "statistics.json"
    assert result.constraints_uri == baseline + "constraints.json"
    definition = aws.sagemaker.describe_data_quality_job_definition(
        JobDefinitionName=result.job_definition_name
    )
    assert definition["DataQualityBaselineConfig"]["StatisticsResource"] == {
        "S3Uri": result.statistics_uri
    }
    assert definition["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == ENDPOINT
    assert definition["JobResources"] == {"ClusterConfig": CLUSTER}
    [created] = aws.made("CreateDataQualityJobDefinition")
    assert created["NetworkConfig"] == NETWORK
    # The features CSV the job reads is the one prepared above.
    input_uri = job["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    features, _ = read_features(aws.s3, input_uri)
    assert list(features.columns) == ["prediction", "pixel_0", "pixel_1"]


# --- Stubber --------------------------------------------------------------------------------


INPUT = f"{WORK}baseline-input/0123456789abcdef/"


def expected_processing_job(name: str, request: MonitorRequest | None = None) -> dict[str, Any]:
    """CreateProcessingJob's parameters written out, not computed by the step."""
    request = request or make_request()
    return {
        "ProcessingJobName": name,
        "ProcessingInputs": [
            {
                "InputName": "baseline_dataset_input",
                "S3Input": {
                    "S3Uri": INPUT,
                    "LocalPath": "/opt/ml/processing/input/baseline_dataset_input",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "monitoring_output",
                    "S3Output": {
                        "S3Uri": f"{WORK}baseline/{name}/",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": KMS,
        },
        "ProcessingResources": {"ClusterConfig": CLUSTER},
        "StoppingCondition": {"MaxRuntimeInSeconds": request.max_runtime_seconds},
        "AppSpecification": {"ImageUri": IMAGE},
        "Environment": {
            "dataset_format": '{"csv": {"header": true, "output_columns_position": "START"}}',
            "dataset_source": "/opt/ml/processing/input/baseline_dataset_input",
            "output_path": "/opt/ml/processing/output",
            "publish_cloudwatch_metrics": "Disabled",
        },
        "NetworkConfig": NETWORK,
        "RoleArn": ROLE,
    }


def expected_job_definition(name: str, job: str) -> dict[str, Any]:
    baseline = f"{WORK}baseline/{job}/"
    return {
        "JobDefinitionName": name,
        "DataQualityBaselineConfig": {
            "BaseliningJobName": job,
            "ConstraintsResource": {"S3Uri": baseline + "constraints.json"},
            "StatisticsResource": {"S3Uri": baseline + "statistics.json"},
        },
        "DataQualityAppSpecification": {
            "ImageUri": IMAGE,
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": ENDPOINT,
                "LocalPath": "/opt/ml/processing/input/endpoint",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": f"{WORK}reports/",
                        "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ],
            "KmsKeyId": KMS,
        },
        "JobResources": {"ClusterConfig": CLUSTER},
        "NetworkConfig": NETWORK,
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800},
    }


@dataclass
class Stubbed:
    """A real `sagemaker` client whose calls the stubber answers in the expected order; S3 is
    replaced by a fixed baseline input (the moto tests cover its preparation)."""

    sagemaker: Any
    sm: Stubber
    request: MonitorRequest = field(default_factory=make_request)
    sleeps: list[float] = field(default_factory=list)

    def run(self) -> monitor_step.MonitorResult:
        return put_under_monitoring(self.sagemaker, None, self.request, sleep=self.sleeps.append)  # type: ignore[arg-type]

    def job_name(self, attempt: int = 1) -> str:
        return baseline_job_name_for(self.request, INPUT, attempt)

    def definition_name(self, attempt: int = 1) -> str:
        job = self.job_name(attempt)
        return job_definition_name_for(
            self.request, job_definition_spec(self.request, job, f"{WORK}baseline/{job}/")
        )

    def missing(self, operation: str, params: dict[str, Any]) -> None:
        self.sm.add_client_error(
            operation,
            service_error_code="ResourceNotFound",
            service_message=f"Could not find {next(iter(params.values()))}",
            http_status_code=400,
            expected_params=params,
        )

    def job(self, status: str | None, attempt: int = 1, *, reason: str = "") -> None:
        name = self.job_name(attempt)
        if status is None:
            self.missing("describe_processing_job", {"ProcessingJobName": name})
            return
        answer: dict[str, Any] = {
            "ProcessingJobName": name,
            "ProcessingJobArn": sagemaker_arn("processing-job", name),
            "ProcessingJobStatus": status,
            "ProcessingResources": {"ClusterConfig": CLUSTER},
            "AppSpecification": {"ImageUri": IMAGE},
            "CreationTime": NOW,
        }
        if reason:
            answer["FailureReason"] = reason
        self.sm.add_response("describe_processing_job", answer, {"ProcessingJobName": name})

    def create_job(self, attempt: int = 1) -> None:
        name = self.job_name(attempt)
        self.sm.add_response(
            "create_processing_job",
            {"ProcessingJobArn": sagemaker_arn("processing-job", name)},
            expected_processing_job(name, self.request),
        )

    def definition(self, exists: bool, attempt: int = 1) -> None:
        name, job = self.definition_name(attempt), self.job_name(attempt)
        if not exists:
            self.missing("describe_data_quality_job_definition", {"JobDefinitionName": name})
            self.sm.add_response(
                "create_data_quality_job_definition",
                {"JobDefinitionArn": sagemaker_arn("data-quality-job-definition", name)},
                expected_job_definition(name, job),
            )
            return
        spec = expected_job_definition(name, job)
        spec.pop("StoppingCondition")
        self.sm.add_response(
            "describe_data_quality_job_definition",
            {
                **spec,
                "JobDefinitionArn": sagemaker_arn("data-quality-job-definition", name),
                "CreationTime": NOW,
            },
            {"JobDefinitionName": name},
        )

    def schedule(self, current: tuple[str, str] | None, status: str = "Scheduled") -> None:
        if current is None:
            self.missing("describe_monitoring_schedule", {"MonitoringScheduleName": SCHEDULE})
            return
        self.sm.add_response(
            "describe_monitoring_schedule",
            {
                "MonitoringScheduleArn": sagemaker_arn("monitoring-schedule", SCHEDULE),
                "MonitoringScheduleName": SCHEDULE,
                "MonitoringScheduleStatus": status,
                "MonitoringType": "DataQuality",
                "CreationTime": NOW,
                "LastModifiedTime": NOW,
                "MonitoringScheduleConfig": {
                    "ScheduleConfig": {"ScheduleExpression": current[1]},
                    "MonitoringJobDefinitionName": current[0],
                    "MonitoringType": "DataQuality",
                },
                "EndpointName": ENDPOINT,
            },
            {"MonitoringScheduleName": SCHEDULE},
        )

    def put_schedule(self, operation: str, definition: str, expression: str = HOURLY) -> None:
        self.sm.add_response(
            operation,
            {"MonitoringScheduleArn": sagemaker_arn("monitoring-schedule", SCHEDULE)},
            {
                "MonitoringScheduleName": SCHEDULE,
                "MonitoringScheduleConfig": {
                    "ScheduleConfig": {"ScheduleExpression": expression},
                    "MonitoringJobDefinitionName": definition,
                    "MonitoringType": "DataQuality",
                },
            },
        )


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubbed]:
    monkeypatch.setattr(
        monitor_step, "prepare_baseline_input", lambda s3, request, predictor: INPUT
    )
    sagemaker = stubbed_client("sagemaker")
    with Stubber(sagemaker) as sm:
        yield Stubbed(sagemaker, sm)
        sm.assert_no_pending_responses()


def test_a_first_run_baselines_then_schedules_hourly(stubbed: Stubbed) -> None:
    stubbed.job(None)
    stubbed.create_job()
    stubbed.job("InProgress")
    stubbed.job("Completed")
    stubbed.definition(exists=False)
    stubbed.schedule(None)
    stubbed.put_schedule("create_monitoring_schedule", stubbed.definition_name())

    result = stubbed.run()

    assert result.outcome == "scheduled", result.message
    assert re.fullmatch(r"digits-baseline-[0-9a-f]{8}", result.baseline_job_name)
    assert re.fullmatch(r"digits-dq-[0-9a-f]{8}", result.job_definition_name)
    assert result.schedule_name == SCHEDULE
    assert result.statistics_uri == f"{WORK}baseline/{result.baseline_job_name}/statistics.json"
    assert result.constraints_uri == f"{WORK}baseline/{result.baseline_job_name}/constraints.json"
    assert stubbed.sleeps == [60.0]


def test_a_re_run_reuses_the_completed_baseline_and_changes_nothing(stubbed: Stubbed) -> None:
    stubbed.job("Completed")
    stubbed.definition(exists=True)
    stubbed.schedule((stubbed.definition_name(), HOURLY))

    result = stubbed.run()

    assert result.outcome == "unchanged", result.message
    assert result.job_definition_name == stubbed.definition_name()
    assert stubbed.sleeps == []
    # The stubber holds no create_* responses: any create would have raised.


def test_a_baselining_job_in_progress_is_waited_for_not_started_again(stubbed: Stubbed) -> None:
    stubbed.job("InProgress")
    stubbed.job("InProgress")
    stubbed.job("Completed")
    stubbed.definition(exists=True)
    stubbed.schedule((stubbed.definition_name(), HOURLY))

    result = stubbed.run()

    assert result.outcome == "unchanged", result.message
    assert stubbed.sleeps == [60.0]


def test_a_new_baseline_moves_the_schedule_to_a_new_job_definition(stubbed: Stubbed) -> None:
    stubbed.job("Completed")
    stubbed.definition(exists=False)
    stubbed.schedule(("digits-dq-0badc0de", HOURLY))
    stubbed.put_schedule("update_monitoring_schedule", stubbed.definition_name())

    result = stubbed.run()

    assert result.outcome == "updated", result.message
    assert "from digits-dq-0badc0de" in result.message


def test_a_new_schedule_expression_updates_the_schedule(stubbed: Stubbed) -> None:
    daily = "cron(0 3 ? * * *)"
    stubbed.request = make_request(schedule_expression=daily)
    stubbed.job("Completed")
    stubbed.definition(exists=True)
    stubbed.schedule((stubbed.definition_name(), HOURLY))
    stubbed.put_schedule("update_monitoring_schedule", stubbed.definition_name(), daily)

    result = stubbed.run()

    assert result.outcome == "updated", result.message


def test_a_failed_baselining_job_fails_the_step_with_its_reason(stubbed: Stubbed) -> None:
    stubbed.job(None)
    stubbed.create_job()
    stubbed.job("Failed", reason="ClientError: no statistics could be computed")

    result = stubbed.run()

    assert result.outcome == "failed"
    assert result.message == (
        f"baselining job {stubbed.job_name()} ended Failed: ClientError: no statistics could be"
        " computed"
    )
    assert (result.job_definition_name, result.statistics_uri) == ("", "")


def test_after_a_failed_baselining_job_a_re_run_tries_a_new_name(stubbed: Stubbed) -> None:
    stubbed.job("Failed", reason="InternalServerError")
    stubbed.job(None, attempt=2)
    stubbed.create_job(attempt=2)
    stubbed.job("Completed", attempt=2)
    stubbed.definition(exists=False, attempt=2)
    stubbed.schedule(None)
    stubbed.put_schedule("create_monitoring_schedule", stubbed.definition_name(attempt=2))

    result = stubbed.run()

    assert result.outcome == "scheduled", result.message
    assert result.baseline_job_name == stubbed.job_name() + "-r2"


def test_a_baselining_job_that_does_not_end_in_time_is_failed(stubbed: Stubbed) -> None:
    stubbed.request = make_request(poll_seconds=300.0, timeout_seconds=600)
    stubbed.job(None)
    stubbed.create_job()
    for _ in range(3):
        stubbed.job("InProgress")

    result = stubbed.run()

    assert result.outcome == "failed"
    assert "is still InProgress after 600 s" in result.message
    assert stubbed.sleeps == [300.0, 300.0]


def test_an_aws_error_is_a_failed_result_naming_the_call(stubbed: Stubbed) -> None:
    stubbed.job(None)
    stubbed.sm.add_client_error(
        "create_processing_job",
        service_error_code="ResourceLimitExceeded",
        service_message="The account-level service limit for ml.m5.large is 0",
        http_status_code=400,
    )

    result = stubbed.run()

    assert result.outcome == "failed"
    assert result.message == (
        "CreateProcessingJob failed: ResourceLimitExceeded: The account-level service limit for"
        " ml.m5.large is 0"
    )


# --- names, image, request checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "image"),
    [
        ("eu-west-1", IMAGE),
        (
            "us-east-1",
            "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
        ),
        (
            "cn-north-1",
            "453000072557.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-model-monitor-analyzer",
        ),
    ],
)
def test_the_analyzer_image_is_the_regions(region: str, image: str) -> None:
    assert analyzer_image_uri(region) == image


def test_names_stay_within_63_characters() -> None:
    request = make_request(endpoint_name="e" * 63)
    job = baseline_job_name_for(request, INPUT, attempt=3)
    definition = job_definition_name_for(
        request, job_definition_spec(request, job, f"{WORK}baseline/{job}/")
    )
    pattern = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    for name in (job, definition, request.schedule_name):
        assert len(name) <= 63 and re.fullmatch(pattern, name), name
    assert job.endswith("-r3") and request.schedule_name.endswith("-data-quality")
    assert baseline_job_name_for(make_request(instance_type="ml.m5.xlarge"), INPUT) != (
        baseline_job_name_for(make_request(), INPUT)
    )


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"endpoint_name": "-digits"}, "endpoint_name"),
        ({"baseline_data_uri": "/local/dir"}, "baseline_data_uri"),
        ({"work_s3_uri": "s3://"}, "work_s3_uri"),
        ({"region": "mars-north-1"}, "region"),
        ({"security_group_ids": ()}, "security_group_ids"),
        ({"max_runtime_seconds": 3601}, "max_runtime_seconds"),
        ({"kms_key_arn": ""}, "kms_key_arn"),
    ],
)
def test_a_request_that_cannot_work_names_its_field(
    overrides: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(MonitorRequestError) as raised:
        make_request(**overrides)
    assert raised.value.field == field_name


# --- command line ---------------------------------------------------------------------------


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--endpoint-name", ENDPOINT,
        "--model-package-arn", PACKAGE,
        "--baseline-data-uri", BASELINE_DATA,
        "--work-s3-uri", WORK,
        "--execution-role-arn", ROLE,
        "--kms-key-arn", KMS,
        "--subnet-ids", "subnet-a,subnet-b",
        "--security-group-ids", "sg-monitor",
        "--poll-seconds", "60",
        "--timeout-seconds", "600",
        "--output", str(tmp_path / "monitor" / "result.json"),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--max-runtime-seconds", "7200"], "--max-runtime-seconds"),
        (["--volume-size-gb", "big"], "--volume-size-gb"),
        (["--region", "mars-north-1"], "--region"),
        (["--security-group-ids", ""], "--security-group-ids"),
        (["--schedule", "hourly"], "--schedule"),
    ],
)
def test_a_bad_flag_exits_with_a_message_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], flag: str
) -> None:
    assert_bad_flag_exits(main, _argv(tmp_path, *extra), flag, capsys)


def test_main_writes_the_result_and_exits_0_when_scheduled(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stubbed: Stubbed,
) -> None:
    regions = replace_clients(monkeypatch, monitor_step, stubbed.sagemaker, None)
    monkeypatch.setattr(monitor_step.time, "sleep", _never_sleep)
    stubbed.request = make_request(poll_seconds=60.0, timeout_seconds=600)
    stubbed.job("Completed")
    stubbed.definition(exists=False)
    stubbed.schedule(None)
    stubbed.put_schedule("create_monitoring_schedule", stubbed.definition_name())

    code = main(_argv(tmp_path))

    assert code == 0
    assert regions == [REGION]  # from the KMS key ARN: no region in the environment
    written = json.loads((tmp_path / "monitor" / "result.json").read_text())
    assert written["outcome"] == "scheduled"
    assert written["schedule_name"] == SCHEDULE
    assert written["job_definition_name"] == stubbed.definition_name()
    assert written["statistics_uri"].endswith("/statistics.json")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("monitor scheduled: digits-data-quality digits-dq-")


def test_main_exits_1_when_the_baseline_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stubbed: Stubbed
) -> None:
    replace_clients(monkeypatch, monitor_step, stubbed.sagemaker, None)
    stubbed.job("Failed", reason="boom", attempt=1)
    stubbed.job("Failed", reason="boom", attempt=2)
    stubbed.job("Failed", reason="boom", attempt=3)

    code = main(_argv(tmp_path))

    assert code == 1
    written = json.loads((tmp_path / "monitor" / "result.json").read_text())
    assert written["outcome"] == "failed"
    assert "the last 3 baselining jobs" in written["message"]
