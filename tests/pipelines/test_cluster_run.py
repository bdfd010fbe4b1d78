"""The cluster Train job's two programs: stage_code (an S3 prefix into a directory, also run as
`python -c <source>`) and cluster_run (channels down, train.py, model.tar.gz and metrics.json
up, the outcome reported through the callback token).

S3 is a moto server on loopback; SageMaker's SendPipelineExecutionStep* calls, which moto does
not implement, are answered by botocore's Stubber, which checks each request against AWS's
model. MLflow tracking is off (the conftest unsets MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import xgboost
from botocore.stub import ANY, Stubber

from pipelines.data import FEATURES, read_csv_dir
from pipelines.steps import cluster_run, stage_code
from pipelines.steps.cluster_request import (
    ARGUMENTS,
    FAILURE_REASON_LIMIT,
    METRICS_FILE,
    MODEL_ARCHIVE,
    OUTPUT_URI,
    parse_message,
    success_parameters,
)
from pipelines.steps.cluster_run import (
    EXIT_NO_TOKEN,
    EXIT_NOT_WAITING,
    EXIT_REPORTED_FAILURE,
    EXIT_SUCCEEDED,
    EXIT_UNREPORTED,
)
from pipelines.steps.stage_code import StagingError, download_prefix, local_path
from pipelines.steps.train import MODEL_FILE
from tests.pipelines.aws_stubs import (  # noqa: F401
    loopback_only,
    replace_clients,
    sagemaker_arn,
    stubbed_client,
)
from tests.pipelines.moto_server import REGION, moto_client, moto_server, moto_url  # noqa: F401

TOKEN = "AbCdEf1234"
DATA, ARTIFACTS = "mlops-dev-data", "mlops-dev-artifacts"
TRAIN_URI = f"s3://{DATA}/digits/splits/train/"
VALIDATION_URI = f"s3://{DATA}/digits/splits/validation/"
OUTPUT = f"s3://{ARTIFACTS}/teams/vision/digits/train/abc123/"
EXECUTION = sagemaker_arn("pipeline", "mlops-dev-digits-training/execution/abc123")
#: Small and quick: five rounds on one OpenMP thread (see test_train.ONE_THREAD).
HYPERPARAMETERS = ["--num_boost_round", "5", "--nthread", "1"]


def _bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def _keys(s3: Any, uri: str) -> list[str]:
    bucket, prefix = stage_code.split_s3_uri(uri)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def _body(s3: Any, uri: str) -> bytes:
    bucket, key = stage_code.split_s3_uri(uri)
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


# --- stage_code -------------------------------------------------------------------------------

CODE = {
    "code/pipelines/__init__.py": b"",
    "code/pipelines/steps/train.py": b"print('train')\n",
    "code/pipelines/empty-folder/": b"",  # a console "folder": skipped
    "code-old/stale.py": b"# shares the prefix's text, not its folder\n",
}


@pytest.fixture
def code_bucket(moto_url: str) -> Any:  # noqa: F811
    s3 = moto_client(moto_url, "s3")
    _bucket(s3, DATA)
    for key, body in CODE.items():
        s3.put_object(Bucket=DATA, Key=key, Body=body)
    return s3


def _tree(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


STAGED = {
    "pipelines/__init__.py": b"",
    "pipelines/steps/train.py": b"print('train')\n",
}


@pytest.mark.parametrize("uri", [f"s3://{DATA}/code/", f"s3://{DATA}/code"])
def test_download_prefix_keeps_relative_paths(code_bucket: Any, tmp_path: Path, uri: str) -> None:
    written = download_prefix(code_bucket, uri, tmp_path / "staged")
    assert _tree(tmp_path / "staged") == STAGED
    assert sorted(written) == sorted(tmp_path / "staged" / name for name in STAGED)


def test_download_prefix_copies_a_single_object_by_its_name(
    code_bucket: Any, tmp_path: Path
) -> None:
    download_prefix(code_bucket, f"s3://{DATA}/code-old/stale.py", tmp_path)
    assert _tree(tmp_path) == {"stale.py": CODE["code-old/stale.py"]}


@pytest.mark.parametrize("uri", [f"s3://{DATA}/nothing/", "s3://mlops-dev-missing/code/"])
def test_download_prefix_fails_naming_the_uri(code_bucket: Any, tmp_path: Path, uri: str) -> None:
    with pytest.raises(StagingError, match=uri.split("/")[2]):
        download_prefix(code_bucket, uri, tmp_path / "staged")
    assert not (tmp_path / "staged").exists()


@pytest.mark.parametrize(
    "bad_key",
    ["code/../evil.py", "code/pipelines/../../evil.py", "code//etc/cron.d/evil"],
)
def test_download_prefix_refuses_keys_escaping_the_directory(
    code_bucket: Any, tmp_path: Path, bad_key: str
) -> None:
    code_bucket.put_object(Bucket=DATA, Key=bad_key, Body=b"evil")
    with pytest.raises(StagingError, match="refusing key") as refused:
        download_prefix(code_bucket, f"s3://{DATA}/code/", tmp_path / "staged")
    assert bad_key in str(refused.value)
    # Every key is checked before anything is written.
    assert not (tmp_path / "staged").exists()
    assert not (tmp_path / "evil.py").exists()


def test_local_path_refuses_a_symbolic_link_leading_out(tmp_path: Path) -> None:
    (tmp_path / "staged").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "staged" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StagingError, match="leads outside"):
        local_path(tmp_path / "staged", "link/evil.py", "code/link/evil.py")
    assert local_path(tmp_path / "staged", "a/./b.py", "code/a/./b.py") == (
        tmp_path / "staged" / "a" / "b.py"
    )


def test_stage_code_main_exit_codes(
    code_bucket: Any,
    moto_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    assert stage_code.main([f"s3://{DATA}/code/", str(tmp_path / "ok")]) == 0
    assert _tree(tmp_path / "ok") == STAGED
    assert stage_code.main([f"s3://{DATA}/nothing/", str(tmp_path / "none")]) == 1
    assert f"no objects under s3://{DATA}/nothing/" in caplog.text
    assert stage_code.main(["not-a-uri", str(tmp_path / "bad")]) == 1
    assert stage_code.main([]) == 2


def _python_c(source: str, args: list[str], moto_url: str, home: Path) -> Any:  # noqa: F811
    """`python -I -c <source> <args>` as the init container runs it, against the moto server:
    isolated (-I: no current directory or PYTHONPATH on sys.path, so `pipelines` cannot be
    imported), with dummy credentials and a HOME without AWS configuration."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [sys.executable, "-I", "-c", source, *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_stage_code_runs_as_python_c_source(
    code_bucket: Any,
    moto_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    source = Path(stage_code.__file__).read_text(encoding="utf-8")
    done = _python_c(source, [f"s3://{DATA}/code/", str(tmp_path / "code")], moto_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert _tree(tmp_path / "code") == STAGED

    missing = _python_c(source, [f"s3://{DATA}/nothing/", str(tmp_path / "x")], moto_url, tmp_path)
    assert missing.returncode == 1
    assert f"no objects under s3://{DATA}/nothing/" in missing.stderr

    usage = _python_c(source, [], moto_url, tmp_path)
    assert usage.returncode == 2
    assert "usage: stage_code" in usage.stderr


# --- cluster_run ------------------------------------------------------------------------------


@dataclass
class Job:
    """A cluster job's world: S3 on moto with the splits uploaded, a stubbed SageMaker client
    whose calls are recorded, and the container's directories under `root`."""

    s3: Any
    stubber: Stubber
    root: Path
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    def expect_success(self) -> None:
        self.stubber.add_response(
            "send_pipeline_execution_step_success",
            {"PipelineExecutionArn": EXECUTION},
            {"CallbackToken": TOKEN, "OutputParameters": ANY},
        )

    def expect_failure(self) -> None:
        self.stubber.add_response(
            "send_pipeline_execution_step_failure",
            {"PipelineExecutionArn": EXECUTION},
            {"CallbackToken": TOKEN, "FailureReason": ANY},
        )

    def reason(self) -> str:
        (failure,) = self.sent("SendPipelineExecutionStepFailure")
        assert not self.sent("SendPipelineExecutionStepSuccess")
        reason: str = failure["FailureReason"]
        assert len(reason) <= FAILURE_REASON_LIMIT
        return reason


@pytest.fixture
def job(
    moto_url: str,  # noqa: F811
    split_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Job]:
    s3 = moto_client(moto_url, "s3")
    _bucket(s3, DATA)
    _bucket(s3, ARTIFACTS)
    for channel, uri in (("train", TRAIN_URI), ("validation", VALIDATION_URI)):
        bucket, prefix = stage_code.split_s3_uri(uri)
        for path in sorted((split_dir / channel).glob("*.csv")):
            s3.upload_file(Filename=str(path), Bucket=bucket, Key=prefix + path.name)
    root = tmp_path / "opt" / "ml"
    environment = {
        "MLOPS_CALLBACK_TOKEN": TOKEN,
        "MLOPS_TRAIN_URI": TRAIN_URI,
        "MLOPS_VALIDATION_URI": VALIDATION_URI,
        "MLOPS_OUTPUT_URI": OUTPUT,
        "SM_CHANNEL_TRAIN": str(root / "input" / "data" / "train"),
        "SM_CHANNEL_VALIDATION": str(root / "input" / "data" / "validation"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_CHECKPOINT_DIR": str(root / "checkpoints"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("SM_HPS", "MLOPS_PIPELINE_EXECUTION_ID", "TRAINING_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    sagemaker = stubbed_client("sagemaker")
    replace_clients(monkeypatch, cluster_run, s3, sagemaker)
    with Stubber(sagemaker) as stubber:
        job = Job(s3, stubber, root)
        sagemaker.meta.events.register("provide-client-params.sagemaker.*", job.record)
        yield job
        stubber.assert_no_pending_responses()


def _request_outputs(output_uri: str) -> list[dict[str, str]]:
    """What the launcher's side of the contract says the outputs are, for `output_uri`."""
    arguments = dict.fromkeys(ARGUMENTS, "1")
    arguments.update(
        {
            "trainUri": TRAIN_URI,
            "validationUri": VALIDATION_URI,
            "codeUri": f"s3://{ARTIFACTS}/code/",
            OUTPUT_URI: output_uri,
            "hyperparameters": "{}",
            "accelerator": "",
        }
    )
    message = {"token": TOKEN, "pipelineExecutionArn": EXECUTION, "arguments": arguments}
    return success_parameters(parse_message(json.dumps(message)).output_uri)


def test_trains_uploads_and_reports_success(job: Job) -> None:
    job.expect_success()
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_SUCCEEDED

    # The channels were staged where train.py reads them.
    assert len(read_csv_dir(job.root / "input" / "data" / "validation")) > 0

    # Success, with exactly the two outputs, as the launcher's side of the contract has them.
    ((_, success),) = job.calls
    assert success["OutputParameters"] == _request_outputs(OUTPUT)
    outputs = {entry["Name"]: entry["Value"] for entry in success["OutputParameters"]}
    assert outputs == {"ModelArtifacts": OUTPUT + MODEL_ARCHIVE, "Metrics": OUTPUT + METRICS_FILE}
    assert sorted(_keys(job.s3, OUTPUT)) == sorted(
        stage_code.split_s3_uri(uri)[1] for uri in outputs.values()
    )

    # model.tar.gz holds what train.py wrote to the model directory, at the archive's root.
    archive = _body(job.s3, outputs["ModelArtifacts"])
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = tar.getmembers()
        written = sorted(path.name for path in job.model_dir.iterdir())
        assert [member.name for member in members] == written == [MODEL_FILE]
        assert all(member.isfile() for member in members)
        packed = tar.extractfile(MODEL_FILE)
        assert packed is not None
        model_bytes = packed.read()
    assert model_bytes == (job.model_dir / MODEL_FILE).read_bytes()
    booster = xgboost.Booster()
    booster.load_model(bytearray(model_bytes))
    assert 1 <= booster.num_boosted_rounds() <= 5
    validation = read_csv_dir(job.root / "input" / "data" / "validation")
    predictions = booster.predict(xgboost.DMatrix(validation[list(FEATURES)]))
    assert predictions.shape == (len(validation), 10)

    # metrics.json is the file train.py wrote.
    metrics = _body(job.s3, outputs["Metrics"])
    assert metrics == (job.output_data_dir / METRICS_FILE).read_bytes()
    assert 0.5 < json.loads(metrics)["accuracy"] <= 1.0


def test_missing_channel_reports_a_download_failure(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"s3://{DATA}/digits/splits/missing/"
    monkeypatch.setenv("MLOPS_VALIDATION_URI", missing)
    job.expect_failure()
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_REPORTED_FAILURE
    assert job.reason() == f"download: nothing to copy: no objects under {missing}"
    assert _keys(job.s3, OUTPUT) == []


def test_training_error_reports_a_train_failure(job: Job) -> None:
    job.expect_failure()
    assert cluster_run.main([*HYPERPARAMETERS, "--max_depth", "2.5"]) == EXIT_REPORTED_FAILURE
    reason = job.reason()
    assert reason.startswith("train: ValueError: hyperparameter max_depth must be a whole")
    assert _keys(job.s3, OUTPUT) == []


def test_upload_error_reports_an_upload_failure(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_OUTPUT_URI", "s3://mlops-dev-no-such-bucket/out/")
    job.expect_failure()
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_REPORTED_FAILURE
    reason = job.reason()
    assert reason.startswith("upload: S3UploadFailedError: ")
    assert "NoSuchBucket" in reason


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MLOPS_TRAIN_URI", "", "configuration: MLOPS_TRAIN_URI not set"),
        ("MLOPS_OUTPUT_URI", OUTPUT.rstrip("/"), "configuration: MLOPS_OUTPUT_URI"),
        ("MLOPS_VALIDATION_URI", "/data/validation", "configuration: MLOPS_VALIDATION_URI"),
    ],
)
def test_bad_configuration_reports_a_configuration_failure(
    job: Job, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    job.expect_failure()
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_REPORTED_FAILURE
    assert job.reason().startswith(expected)
    assert not (job.root / "input").exists()


@pytest.mark.parametrize("code", ["ValidationException", "ResourceNotFound", "ConflictException"])
def test_rerun_after_the_step_was_reported_logs_and_exits(
    job: Job, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The first try reported (failure, say); this rerun trains fine, and SageMaker refuses.
    job.stubber.add_client_error(
        "send_pipeline_execution_step_success",
        service_error_code=code,
        service_message="Step is not waiting for a callback",
        http_status_code=400,
    )
    with caplog.at_level(logging.WARNING):
        assert cluster_run.main(HYPERPARAMETERS) == EXIT_NOT_WAITING
    assert "earlier try of this job already reported" in caplog.text
    assert code in caplog.text


def test_rerun_failure_refused_logs_and_exits(
    job: Job, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLOPS_TRAIN_URI", f"s3://{DATA}/digits/splits/missing/")
    job.stubber.add_client_error(
        "send_pipeline_execution_step_failure",
        service_error_code="ValidationException",
        service_message="Step is not waiting for a callback",
        http_status_code=400,
    )
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_NOT_WAITING
    assert "refused the failure report" in caplog.text
    assert job.reason().startswith("download: ")


def test_a_report_that_cannot_be_sent_allows_a_rerun(
    job: Job, caplog: pytest.LogCaptureFixture
) -> None:
    job.stubber.add_client_error(
        "send_pipeline_execution_step_success",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: sagemaker:SendPipelineExecutionStepSuccess",
        http_status_code=400,
    )
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_UNREPORTED
    assert "could not report success" in caplog.text


@pytest.mark.parametrize(("token", "wording"), [(None, "not set"), ("short", "not a callback")])
def test_no_token_fails_fast_reporting_nothing(
    job: Job,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    token: str | None,
    wording: str,
) -> None:
    if token is None:
        monkeypatch.delenv("MLOPS_CALLBACK_TOKEN")
    else:
        monkeypatch.setenv("MLOPS_CALLBACK_TOKEN", token)
    regions = replace_clients(monkeypatch, cluster_run, job.s3, object())
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_NO_TOKEN
    assert f"MLOPS_CALLBACK_TOKEN is {wording}" in caplog.text
    assert regions == []  # no clients made, nothing downloaded, nothing trained
    assert not job.root.exists()
    assert job.calls == []


def test_model_archive_packs_files_at_the_root(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "code").mkdir(parents=True)
    (model / "model.json").write_text("{}")
    (model / "code" / "inference.py").write_text("")
    archive = cluster_run.pack_model(model, tmp_path / MODEL_ARCHIVE)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["code", "code/inference.py", "model.json"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="saved no model"):
        cluster_run.pack_model(tmp_path / "empty", tmp_path / "other.tar.gz")


def test_only_rank_zero_of_a_multi_node_job_trains_and_reports(
    job: Job, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RANK", "1")
    caplog.set_level("INFO")
    regions = replace_clients(monkeypatch, cluster_run, job.s3, object())
    assert cluster_run.main(HYPERPARAMETERS) == EXIT_SUCCEEDED
    assert "rank 1: only rank 0 trains and reports" in caplog.text
    assert regions == []
    assert not job.root.exists()
    assert job.calls == []
