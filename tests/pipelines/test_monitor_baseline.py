"""The data-quality baseline matches what the endpoint captures: the local inference server
answers rows as the endpoint does, those answers and requests are written as SageMaker data
capture records, and merging them as Model Monitor does (the output first, then the input's
columns) gives exactly the baseline's columns and values, scored by the package's own model
fetched from S3."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from pipelines.data import FEATURES, read_csv_dir
from pipelines.inference.server import build_server
from pipelines.steps import train
from pipelines.steps.monitor_baseline import (
    PREDICTION_COLUMN,
    package_model_uri,
    predictor_from_archive,
    with_predictions,
)
from tests.pipelines.moto_server import REGION, moto_client, moto_server, moto_url  # noqa: F401

PACKAGE = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-digits/4"
MODELS = "mlops-models"
MODEL_KEY = "digits/pipelines-x-Train/output/model.tar.gz"
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, split_dir: Path) -> Path:
    base = tmp_path_factory.mktemp("monitor-baseline")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        train.run(
            split_dir / "train",
            split_dir / "validation",
            base / "model",
            {"num_boost_round": 20, "nthread": 1},
        )
    return base / "model"


@pytest.fixture(scope="module")
def rows(split_dir: Path) -> pd.DataFrame:
    return read_csv_dir(split_dir / "validation")[list(FEATURES)].head(12)


@pytest.fixture
def s3_with_model(moto_url: str, model_dir: Path) -> Any:  # noqa: F811 - moto fixture
    """The models bucket with the training job's model.tar.gz, as SageMaker leaves it."""
    s3 = moto_client(moto_url, "s3")
    s3.create_bucket(Bucket=MODELS, CreateBucketConfiguration={"LocationConstraint": REGION})
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(model_dir / "model.json", arcname="model.json")
    s3.put_object(Bucket=MODELS, Key=MODEL_KEY, Body=archive.getvalue())
    return s3


@pytest.fixture(scope="module")
def endpoint(model_dir: Path) -> Iterator[str]:
    server = build_server(model_dir, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _invoke(url: str, row: list[float]) -> str:
    body = ",".join(str(v) for v in row).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "text/csv"}
    )
    with LOOPBACK.open(request, timeout=10) as response:
        return str(response.read().decode())


def _capture_record(request_csv: str, response_csv: str) -> dict[str, Any]:
    """One line of a data capture file (SageMaker Developer Guide, "Capture data from
    real-time endpoint": captureData.endpointInput / endpointOutput)."""

    def part(mode: str, text: str) -> dict[str, str]:
        return {
            "observedContentType": "text/csv",
            "mode": mode,
            "data": base64.b64encode(text.encode()).decode(),
            "encoding": "BASE64",
        }

    return {
        "captureData": {
            "endpointInput": part("INPUT", request_csv),
            "endpointOutput": part("OUTPUT", response_csv),
        },
        "eventMetadata": {"eventId": "0", "inferenceTime": "2026-12-04T00:00:00Z"},
        "eventVersion": "0",
    }


def _merged(record: dict[str, Any]) -> list[str]:
    """The row Model Monitor analyses: the output's columns, then the input's."""
    data = record["captureData"]

    def columns(part: dict[str, str]) -> list[str]:
        return base64.b64decode(part["data"]).decode().strip().split(",")

    return columns(data["endpointOutput"]) + columns(data["endpointInput"])


def test_the_package_names_its_model_artifact() -> None:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    uri = f"s3://{MODELS}/{MODEL_KEY}"
    with Stubber(client) as stub:
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "mlops-dev-digits",
                "ModelPackageArn": PACKAGE,
                "CreationTime": "2026-12-04T00:00:00Z",
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
                "InferenceSpecification": {
                    "Containers": [{"Image": "x.dkr.ecr/inference:1", "ModelDataUrl": uri}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            },
            {"ModelPackageName": PACKAGE},
        )
        assert package_model_uri(client, PACKAGE) == uri


def test_the_baseline_is_what_the_endpoint_captures(
    s3_with_model: Any, rows: pd.DataFrame, endpoint: str
) -> None:
    predictor = predictor_from_archive(s3_with_model, f"s3://{MODELS}/{MODEL_KEY}")
    baseline = with_predictions(rows, predictor)
    assert list(baseline.columns) == [PREDICTION_COLUMN, *FEATURES]

    captured = []
    for row in rows.to_numpy().tolist():
        request_csv = ",".join(str(v) for v in row)
        record = _capture_record(request_csv, _invoke(endpoint, row))
        captured.append(_merged(json.loads(json.dumps(record))))

    # Same number of columns, the prediction first, and the same values row by row.
    assert {len(row) for row in captured} == {len(baseline.columns)}
    for merged, (_, expected) in zip(captured, baseline.iterrows(), strict=True):
        assert int(merged[0]) == int(expected[PREDICTION_COLUMN])
        assert [float(v) for v in merged[1:]] == [float(v) for v in expected[list(FEATURES)]]
    # The model is real: its predictions vary across the rows.
    assert baseline[PREDICTION_COLUMN].nunique() > 1
