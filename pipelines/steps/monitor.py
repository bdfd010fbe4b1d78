"""Monitor step: put a real-time endpoint under hourly SageMaker Model Monitor data-quality checks.

It runs right after Deploy (instance endpoints only; SageMaker does not capture data from
serverless endpoints) and, like Deploy, is safe to run again and again: every name it creates is
derived from what it creates, so a second run with the same data and settings finds everything in
place and changes nothing ("unchanged").

1. Baseline input: the CSVs under `baseline_data_uri` (with a header, label included) are read,
   the label column is dropped (the endpoint receives features only), the deployed package's
   model predicts each row, and one CSV in the captured layout (prediction first, then the
   features; pipelines/steps/monitor_baseline.py) is written with SSE-KMS under
   `<work>baseline-input/<content hash>/features.csv`. The key is addressed by a
   hash of the content, not by the object's ETag: the ETag of an SSE-KMS object is not an MD5 of
   its data and does not identify the content.
2. Baselining job: a processing job with the region's `sagemaker-model-monitor-analyzer` image
   (what the SageMaker Python SDK's DefaultModelMonitor.suggest_baseline runs), named
   `<endpoint>-baseline-<hash of input + settings>`; it writes `statistics.json` and
   `constraints.json` under `<work>baseline/<job name>/`. A Completed job of that name is reused;
   one still running is waited for. Processing job names can never be reused, so after a Failed
   or Stopped job a re-run tries `...-r2`, then `...-r3`.
3. Data quality job definition `<endpoint>-dq-<hash of its settings>`: created if missing. Job
   definitions cannot be changed, so any change (a new baseline included) gives a new name.
4. Monitoring schedule `<endpoint>-data-quality`: created if missing; pointed at the new job
   definition / expression with UpdateMonitoringSchedule otherwise (as the SDK's
   DefaultModelMonitor.update_monitoring_schedule does). An endpoint takes one data-quality
   schedule. Superseded job definitions are left in place (they cost nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from pipelines.data import LABEL
from pipelines.environment_variables import AWS_DEFAULT_REGION
from pipelines.steps.aws_calls import (
    RequestError,
    boto3_client,
    bounded_name,
    check_name,
    check_vpc,
    csv_list,
    describe_error,
    describe_or_none,
    error_code,
    error_message,
    flag,
    region_of,
    report,
    request_from_args,
    short_hash,
)
from pipelines.steps.monitor_baseline import (
    Predictor,
    package_model_uri,
    predictor_from_archive,
    with_predictions,
)

logger = logging.getLogger(__name__)

Outcome = Literal["scheduled", "updated", "unchanged", "failed"]
#: Outcomes after which the endpoint is monitored as requested (exit code 0).
SUCCESSFUL_OUTCOMES = frozenset({"scheduled", "updated", "unchanged"})

#: The account of SageMaker's `sagemaker-model-monitor-analyzer` ECR repository in each region,
#: from the SageMaker Python SDK (sagemaker/core/image_uri_config/model-monitor.json, 3.27.0).
ANALYZER_REGISTRIES: Mapping[str, str] = {
    "af-south-1": "875698925577",
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-northeast-3": "990339680094",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ap-southeast-3": "669540362728",
    "ca-central-1": "536280801234",
    "cn-north-1": "453000072557",
    "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253",
    "eu-central-2": "590183933784",
    "eu-north-1": "895015795356",
    "eu-south-1": "933208885752",
    "eu-south-2": "437450045455",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "il-central-1": "843974653677",
    "me-central-1": "588750061953",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}
ANALYZER_REPOSITORY = "sagemaker-model-monitor-analyzer"

#: The analyzer container's contract (SageMaker Python SDK, model_monitor/model_monitoring.py).
CONTAINER_INPUT = "/opt/ml/processing/input"
BASELINE_INPUT_NAME = "baseline_dataset_input"
BASELINE_INPUT_PATH = f"{CONTAINER_INPUT}/{BASELINE_INPUT_NAME}"
ENDPOINT_INPUT_PATH = f"{CONTAINER_INPUT}/endpoint"
OUTPUT_NAME = "monitoring_output"
OUTPUT_PATH = "/opt/ml/processing/output"
#: DatasetFormat.csv(header=True) of the SDK, as the analyzer's `dataset_format` variable.
CSV_WITH_HEADER = {"csv": {"header": True, "output_columns_position": "START"}}
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
FEATURES_FILE = "features.csv"

HOURLY = "cron(0 * ? * * *)"
#: A job of a schedule must end before the next one starts (SageMaker: at most 1 h for hourly).
MAX_MONITORING_RUNTIME = 3600
#: Baselining attempts per input and settings: the first name, then `-r2`, `-r3`.
MAX_BASELINE_ATTEMPTS = 3
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed", "Stopped"})

DEFAULT_OUTPUT = Path("/opt/ml/processing/output/monitor/result.json")


class SageMakerClient(Protocol):
    """The calls used of a boto3 `sagemaker` client."""

    def describe_processing_job(self, **kwargs: Any) -> Any: ...
    def create_processing_job(self, **kwargs: Any) -> Any: ...
    def describe_data_quality_job_definition(self, **kwargs: Any) -> Any: ...
    def create_data_quality_job_definition(self, **kwargs: Any) -> Any: ...
    def describe_monitoring_schedule(self, **kwargs: Any) -> Any: ...
    def create_monitoring_schedule(self, **kwargs: Any) -> Any: ...
    def update_monitoring_schedule(self, **kwargs: Any) -> Any: ...
    def describe_model_package(self, **kwargs: Any) -> Any: ...


class S3Client(Protocol):
    """The calls used of a boto3 `s3` client."""

    def get_paginator(self, operation_name: str) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def head_object(self, **kwargs: Any) -> Any: ...
    def put_object(self, **kwargs: Any) -> Any: ...


class MonitorRequestError(RequestError):
    """A monitor request setting that cannot work; `field` names it."""


class _Refused(Exception):
    """The step stops; the message says why (becomes a "failed" result)."""


def _prefix(uri: str) -> str:
    """An S3 prefix URI with exactly one trailing slash."""
    return uri.rstrip("/") + "/"


@dataclass(frozen=True, kw_only=True)
class MonitorRequest:
    """What to monitor, and how. Invalid values raise MonitorRequestError naming the field.

    `timeout_seconds` bounds the wait for the baselining job; `max_runtime_seconds` is the
    stopping condition of the baselining job and of each monitoring job.
    """

    endpoint_name: str
    # The package the endpoint serves: its model predicts the baseline's prediction column.
    model_package_arn: str
    baseline_data_uri: str
    work_s3_uri: str
    execution_role_arn: str
    kms_key_arn: str
    region: str
    label_column: str = LABEL
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    instance_type: str = "ml.m5.large"
    volume_size_gb: int = 20
    schedule_expression: str = HOURLY
    max_runtime_seconds: int = 1800
    poll_seconds: float = 30.0
    timeout_seconds: int = 3600

    def __post_init__(self) -> None:
        for name in ("subnet_ids", "security_group_ids"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("baseline_data_uri", "work_s3_uri"):
            value = getattr(self, name)
            if not value.startswith("s3://") or len(value.rstrip("/")) <= len("s3://"):
                raise MonitorRequestError(name, f"must be an s3:// URI, got {value!r}")
            object.__setattr__(self, name, _prefix(value))
        check_name("endpoint_name", self.endpoint_name, MonitorRequestError)
        for name in ("model_package_arn", "execution_role_arn", "kms_key_arn", "label_column"):
            if not getattr(self, name):
                raise MonitorRequestError(name, "must not be empty")
        if self.region not in ANALYZER_REGISTRIES:
            raise MonitorRequestError(
                "region", f"no Model Monitor analyzer image known for {self.region!r}"
            )
        check_vpc(self.subnet_ids, self.security_group_ids, MonitorRequestError)
        self._check_ranges()

    def _check_ranges(self) -> None:
        if not 1 <= self.volume_size_gb <= 16384:
            raise MonitorRequestError("volume_size_gb", "must be between 1 and 16384")
        if not 1 <= self.max_runtime_seconds <= MAX_MONITORING_RUNTIME:
            raise MonitorRequestError(
                "max_runtime_seconds",
                f"must be between 1 and {MAX_MONITORING_RUNTIME} (an hourly job must end"
                " before the next one)",
            )
        if not self.schedule_expression.strip():
            raise MonitorRequestError("schedule_expression", "must not be empty")
        if self.poll_seconds <= 0:
            raise MonitorRequestError("poll_seconds", "must be positive")
        if self.timeout_seconds <= 0:
            raise MonitorRequestError("timeout_seconds", "must be positive")

    @property
    def schedule_name(self) -> str:
        return schedule_name_for(self.endpoint_name)


@dataclass(frozen=True)
class MonitorResult:
    """What the step did. `message` says why, in words a person on call can act on."""

    outcome: Outcome
    endpoint_name: str
    schedule_name: str
    job_definition_name: str
    baseline_job_name: str
    statistics_uri: str
    constraints_uri: str
    message: str

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESSFUL_OUTCOMES


# --- names and specifications ---------------------------------------------------------------


def schedule_name_for(endpoint_name: str) -> str:
    """The endpoint's one data-quality monitoring schedule (the drift rule matches it too)."""
    return bounded_name(endpoint_name, "-data-quality")


def analyzer_registry(region: str) -> str:
    """The account holding the Model Monitor analyzer image in `region`."""
    if region not in ANALYZER_REGISTRIES:
        known = ", ".join(sorted(ANALYZER_REGISTRIES))
        raise ValueError(f"Model Monitor has no analyzer image in {region!r}; regions: {known}")
    return ANALYZER_REGISTRIES[region]


def analyzer_image_uri(region: str) -> str:
    """The Model Monitor analyzer image of `region` (untagged, as the SDK's image_uris)."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{analyzer_registry(region)}.dkr.ecr.{region}.{domain}/{ANALYZER_REPOSITORY}"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _vpc(request: MonitorRequest) -> dict[str, Any]:
    network: dict[str, Any] = {"EnableInterContainerTrafficEncryption": True}
    if request.subnet_ids:
        network["VpcConfig"] = {
            "SecurityGroupIds": list(request.security_group_ids),
            "Subnets": list(request.subnet_ids),
        }
    return network


def _cluster(request: MonitorRequest) -> dict[str, Any]:
    return {
        "InstanceCount": 1,
        "InstanceType": request.instance_type,
        "VolumeSizeInGB": request.volume_size_gb,
        "VolumeKmsKeyId": request.kms_key_arn,
    }


def baseline_job_spec(request: MonitorRequest, input_uri: str) -> dict[str, Any]:
    """CreateProcessingJob's parameters for the baselining job of `input_uri`, without the
    ProcessingJobName and the output S3Uri (both derived from the spec's hash)."""
    return {
        "ProcessingInputs": [
            {
                "InputName": BASELINE_INPUT_NAME,
                "S3Input": {
                    "S3Uri": input_uri,
                    "LocalPath": BASELINE_INPUT_PATH,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": OUTPUT_NAME,
                    "S3Output": {
                        "S3Uri": "",
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            "KmsKeyId": request.kms_key_arn,
        },
        "ProcessingResources": {"ClusterConfig": _cluster(request)},
        "StoppingCondition": {"MaxRuntimeInSeconds": request.max_runtime_seconds},
        "AppSpecification": {"ImageUri": analyzer_image_uri(request.region)},
        "Environment": {
            "dataset_format": json.dumps(CSV_WITH_HEADER),
            "dataset_source": BASELINE_INPUT_PATH,
            "output_path": OUTPUT_PATH,
            "publish_cloudwatch_metrics": "Disabled",
        },
        "NetworkConfig": _vpc(request),
        "RoleArn": request.execution_role_arn,
    }


def baseline_job_name_for(request: MonitorRequest, input_uri: str, attempt: int = 1) -> str:
    """`<endpoint>-baseline-<hash>`, `-r<attempt>` appended from the second attempt on."""
    base = f"-baseline-{short_hash(baseline_job_spec(request, input_uri))}"
    return bounded_name(request.endpoint_name, base + (f"-r{attempt}" if attempt > 1 else ""))


def _with_output(spec: dict[str, Any], job_name: str, output_uri: str) -> dict[str, Any]:
    params: dict[str, Any] = {"ProcessingJobName": job_name, **json.loads(json.dumps(spec))}
    params["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = output_uri
    return params


def job_definition_spec(
    request: MonitorRequest, baseline_job_name: str, baseline_uri: str
) -> dict[str, Any]:
    """CreateDataQualityJobDefinition's parameters, without the JobDefinitionName."""
    return {
        "DataQualityBaselineConfig": {
            "BaseliningJobName": baseline_job_name,
            "ConstraintsResource": {"S3Uri": baseline_uri + CONSTRAINTS_FILE},
            "StatisticsResource": {"S3Uri": baseline_uri + STATISTICS_FILE},
        },
        "DataQualityAppSpecification": {
            "ImageUri": analyzer_image_uri(request.region),
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "DataQualityJobInput": {
            "EndpointInput": {
                "EndpointName": request.endpoint_name,
                "LocalPath": ENDPOINT_INPUT_PATH,
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": request.work_s3_uri + "reports/",
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ],
            "KmsKeyId": request.kms_key_arn,
        },
        "JobResources": {"ClusterConfig": _cluster(request)},
        "NetworkConfig": _vpc(request),
        "RoleArn": request.execution_role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": request.max_runtime_seconds},
    }


def job_definition_name_for(request: MonitorRequest, spec: Mapping[str, Any]) -> str:
    return bounded_name(request.endpoint_name, f"-dq-{short_hash(dict(spec))}")


def schedule_config(request: MonitorRequest, job_definition_name: str) -> dict[str, Any]:
    return {
        "ScheduleConfig": {"ScheduleExpression": request.schedule_expression},
        "MonitoringJobDefinitionName": job_definition_name,
        "MonitoringType": "DataQuality",
    }


# --- AWS helpers ----------------------------------------------------------------------------


def _is_missing(error: ClientError) -> bool:
    """SageMaker's Describe* of something missing: ResourceNotFound (the API model's error for
    DescribeProcessingJob, DescribeDataQualityJobDefinition, DescribeMonitoringSchedule) or a
    ValidationException "Could not find ..." (what SageMaker answers in practice for several)."""
    code = error_code(error)
    message = error_message(error).lower()
    return code in {"ResourceNotFound", "ResourceNotFoundException", "404", "NoSuchKey"} or (
        code == "ValidationException" and ("could not find" in message or "not found" in message)
    )


def _describe(call: Callable[..., Any], **params: Any) -> dict[str, Any] | None:
    """A Describe* (or S3 HeadObject) answer, or None where `_is_missing` says it is missing."""
    return describe_or_none(call, _is_missing, **params)


# --- 1. baseline input ----------------------------------------------------------------------


def _csv_keys(s3: S3Client, uri: str) -> list[str]:
    bucket, prefix = _split_s3(uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return sorted(key for key in keys if key.endswith(".csv"))


def features_csv(s3: S3Client, request: MonitorRequest, predictor: Predictor) -> bytes:
    """The CSVs under `baseline_data_uri`, concatenated in key order, without the label column
    and with the model's prediction in front (the captured layout), as one CSV with a header."""
    import pandas as pd  # type: ignore[import-untyped]

    bucket, _ = _split_s3(request.baseline_data_uri)
    keys = _csv_keys(s3, request.baseline_data_uri)
    if not keys:
        raise _Refused(f"no CSV files under {request.baseline_data_uri}")
    frames = []
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        frame = pd.read_csv(io.BytesIO(body))
        if request.label_column not in frame.columns:
            columns = ", ".join(map(str, frame.columns[:10]))
            more = ", ..." if frame.shape[1] > 10 else ""
            raise _Refused(
                f"s3://{bucket}/{key} has no label column {request.label_column!r}"
                f" (columns: {columns}{more})"
            )
        frames.append(frame.drop(columns=[request.label_column]))
    features = pd.concat(frames, ignore_index=True)
    if features.empty or features.shape[1] == 0:
        raise _Refused(f"the CSVs under {request.baseline_data_uri} hold no feature rows")
    text: str = with_predictions(features, predictor).to_csv(index=False)
    return text.encode("utf-8")


def prepare_baseline_input(s3: S3Client, request: MonitorRequest, predictor: Predictor) -> str:
    """Writes the baseline CSV (SSE-KMS) under `<work>baseline-input/<hash>/` unless it is
    there already; returns that prefix's URI."""
    data = features_csv(s3, request, predictor)
    prefix = f"{request.work_s3_uri}baseline-input/{hashlib.sha256(data).hexdigest()[:16]}/"
    bucket, key = _split_s3(prefix + FEATURES_FILE)
    if _describe(s3.head_object, Bucket=bucket, Key=key) is None:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType="text/csv",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=request.kms_key_arn,
        )
        logger.info("baseline input written to s3://%s/%s", bucket, key)
    return prefix


# --- 2. baselining job ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Baseline:
    job_name: str
    uri: str


def _wait_for_job(
    sagemaker: SageMakerClient, request: MonitorRequest, name: str, sleep: Callable[[float], None]
) -> dict[str, Any]:
    waited = 0.0
    while True:
        job: dict[str, Any] = sagemaker.describe_processing_job(ProcessingJobName=name)
        status = job["ProcessingJobStatus"]
        if status in TERMINAL_JOB_STATES:
            return job
        if waited >= request.timeout_seconds:
            raise _Refused(
                f"baselining job {name} is still {status} after {waited:.0f} s; SageMaker"
                " carries on, and the next run of this step waits for it"
            )
        logger.info("baselining job %s is %s; waiting %.0f s", name, status, request.poll_seconds)
        sleep(request.poll_seconds)
        waited += request.poll_seconds


def run_baseline(
    sagemaker: SageMakerClient,
    request: MonitorRequest,
    input_uri: str,
    sleep: Callable[[float], None],
) -> _Baseline:
    """The Completed baselining job of `input_uri` and the settings: an earlier one reused,
    one in progress waited for, or a new one run. Raises _Refused when it fails."""
    spec = baseline_job_spec(request, input_uri)
    for attempt in range(1, MAX_BASELINE_ATTEMPTS + 1):
        name = baseline_job_name_for(request, input_uri, attempt)
        output = f"{request.work_s3_uri}baseline/{name}/"
        job = _describe(sagemaker.describe_processing_job, ProcessingJobName=name)
        if job is not None and job["ProcessingJobStatus"] in {"Failed", "Stopped"}:
            logger.warning(
                "baselining job %s ended %s (%s); trying again under a new name",
                name,
                job["ProcessingJobStatus"],
                job.get("FailureReason") or job.get("ExitMessage") or "no reason given",
            )
            continue
        if job is not None and job["ProcessingJobStatus"] == "Completed":
            logger.info("baselining job %s already Completed; reused", name)
            return _Baseline(name, output)
        if job is None:
            sagemaker.create_processing_job(**_with_output(spec, name, output))
            logger.info("baselining job %s started", name)
        job = _wait_for_job(sagemaker, request, name, sleep)
        if job["ProcessingJobStatus"] != "Completed":
            reason = job.get("FailureReason") or job.get("ExitMessage") or "no reason given"
            raise _Refused(f"baselining job {name} ended {job['ProcessingJobStatus']}: {reason}")
        return _Baseline(name, output)
    raise _Refused(
        f"the last {MAX_BASELINE_ATTEMPTS} baselining jobs of this input and these settings"
        f" failed (latest {baseline_job_name_for(request, input_uri, MAX_BASELINE_ATTEMPTS)});"
        " see their FailureReason"
    )


# --- 3./4. job definition and schedule ------------------------------------------------------


def ensure_job_definition(
    sagemaker: SageMakerClient, request: MonitorRequest, baseline: _Baseline
) -> str:
    spec = job_definition_spec(request, baseline.job_name, baseline.uri)
    name = job_definition_name_for(request, spec)
    if _describe(sagemaker.describe_data_quality_job_definition, JobDefinitionName=name) is None:
        try:
            sagemaker.create_data_quality_job_definition(JobDefinitionName=name, **spec)
        except ClientError as error:
            if error_code(error) != "ResourceInUse":
                raise
        logger.info("data quality job definition %s created", name)
    return name


def ensure_schedule(
    sagemaker: SageMakerClient, request: MonitorRequest, job_definition_name: str
) -> tuple[Outcome, str]:
    name = request.schedule_name
    wanted = schedule_config(request, job_definition_name)
    existing = _describe(sagemaker.describe_monitoring_schedule, MonitoringScheduleName=name)
    if existing is None:
        sagemaker.create_monitoring_schedule(
            MonitoringScheduleName=name, MonitoringScheduleConfig=wanted
        )
        return "scheduled", (
            f"monitoring schedule {name} created: {request.schedule_expression} data-quality"
            f" checks of endpoint {request.endpoint_name} with {job_definition_name}"
        )
    config = existing.get("MonitoringScheduleConfig", {})
    current = (
        config.get("MonitoringJobDefinitionName"),
        config.get("ScheduleConfig", {}).get("ScheduleExpression"),
    )
    status = existing.get("MonitoringScheduleStatus", "unknown")
    if current == (job_definition_name, request.schedule_expression):
        note = "" if status == "Scheduled" else f"; note: the schedule is {status}"
        if existing.get("FailureReason"):
            note += f" ({existing['FailureReason']})"
        return "unchanged", (
            f"monitoring schedule {name} already runs {job_definition_name} on"
            f" {request.schedule_expression}{note}"
        )
    sagemaker.update_monitoring_schedule(
        MonitoringScheduleName=name, MonitoringScheduleConfig=wanted
    )
    return "updated", (
        f"monitoring schedule {name} moved from {current[0]} ({current[1]}) to"
        f" {job_definition_name} ({request.schedule_expression})"
    )


# --- the step -------------------------------------------------------------------------------


def put_under_monitoring(
    sagemaker: SageMakerClient,
    s3: S3Client,
    request: MonitorRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> MonitorResult:
    """Baselines the data, then creates or updates the endpoint's data-quality schedule.

    Never raises for what AWS answers or for unusable data: those come back as a "failed" result
    naming the cause. Waits poll every `poll_seconds` with `sleep` (injectable for tests).
    """
    state: dict[str, str] = {}

    def result(outcome: Outcome, message: str) -> MonitorResult:
        return MonitorResult(
            outcome,
            request.endpoint_name,
            request.schedule_name,
            state.get("definition", ""),
            state.get("job", ""),
            state.get("statistics", ""),
            state.get("constraints", ""),
            message,
        )

    try:
        model_uri = package_model_uri(sagemaker, request.model_package_arn)
        predictor = predictor_from_archive(s3, model_uri)
        input_uri = prepare_baseline_input(s3, request, predictor)
        baseline = run_baseline(sagemaker, request, input_uri, sleep)
        state["job"] = baseline.job_name
        state["statistics"] = baseline.uri + STATISTICS_FILE
        state["constraints"] = baseline.uri + CONSTRAINTS_FILE
        state["definition"] = ensure_job_definition(sagemaker, request, baseline)
        outcome, message = ensure_schedule(sagemaker, request, state["definition"])
        answer = result(outcome, message)
    except ClientError as error:
        answer = result("failed", describe_error(error))
    except _Refused as stopped:
        answer = result("failed", str(stopped))
    log = logger.info if answer.succeeded else logger.error
    log("monitor %s: %s", answer.outcome, answer.message)
    return answer


# --- command line ---------------------------------------------------------------------------


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(MonitorRequest)}


def build_parser() -> argparse.ArgumentParser:
    """One flag per MonitorRequest field (`--endpoint-name` for `endpoint_name`); lists are
    comma-separated. Defaults are the dataclass's."""
    parser = argparse.ArgumentParser(
        description="Put a SageMaker endpoint under hourly data-quality monitoring.",
        allow_abbrev=False,
    )
    for name in (
        "endpoint_name",
        "model_package_arn",
        "baseline_data_uri",
        "work_s3_uri",
        "execution_role_arn",
        "kms_key_arn",
    ):
        parser.add_argument(flag(name), required=True)
    for name in ("subnet_ids", "security_group_ids"):
        parser.add_argument(flag(name), type=csv_list, default=())
    for name in ("label_column", "instance_type", "schedule_expression"):
        parser.add_argument(flag(name), default=_DEFAULTS[name])
    for name in ("volume_size_gb", "max_runtime_seconds", "timeout_seconds"):
        parser.add_argument(flag(name), type=int, default=_DEFAULTS[name])
    parser.add_argument(flag("poll_seconds"), type=float, default=_DEFAULTS["poll_seconds"])
    parser.add_argument(
        "--region", default=None, help="default: AWS_DEFAULT_REGION, else the KMS key ARN's"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[MonitorRequest, argparse.Namespace]:
    """The request from the command line; an invalid value exits with an error naming its flag."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.region = args.region or AWS_DEFAULT_REGION.get() or region_of(args.kms_key_arn) or ""
    return request_from_args(parser, args, MonitorRequest), args


def make_clients(region: str) -> tuple[SageMakerClient, S3Client]:
    """boto3 `sagemaker` and `s3` clients for `region`, with standard retries."""
    sagemaker: SageMakerClient = boto3_client("sagemaker", region)
    s3: S3Client = boto3_client("s3", region)
    return sagemaker, s3


def main(argv: Sequence[str] | None = None) -> int:
    """The processing container's entry point: 0 when the endpoint is monitored as requested
    (scheduled, updated, unchanged), 1 when not (failed)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request, args = parse_args(argv)
    sagemaker, s3 = make_clients(request.region)
    # time.sleep looked up now, not when put_under_monitoring() was defined: tests replace it.
    result = put_under_monitoring(sagemaker, s3, request, sleep=time.sleep)
    return report(
        result,
        args.output,
        f"monitor {result.outcome}: {result.schedule_name} {result.job_definition_name}",
    )


if __name__ == "__main__":
    sys.exit(main())
