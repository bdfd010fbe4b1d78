"""The inference server (pipelines/inference/server.py) as SageMaker hosting calls it: started
with the `serve` argument, a model in its model directory, /ping and /invocations over HTTP
on 127.0.0.1; CSV and JSON rows scored like the booster scores them; malformed rows a 400
naming the row, other media types a 415; one log line per request, no payload in it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost

from pipelines.data import FEATURES, LABEL, read_csv_dir
from pipelines.inference.scoring import BadRequest, parse_rows, predict
from pipelines.inference.server import PORT, build_server
from pipelines.steps import train

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# SageMaker's hosting health check gives a container a few minutes, and each ping 2 s.
PING_TIMEOUT_SECONDS = 2.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, split_dir: Path) -> Path:
    """/opt/ml/model as a training job leaves it: model.json."""
    base = tmp_path_factory.mktemp("inference")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        train.run(
            split_dir / "train",
            split_dir / "validation",
            base / "model",
            {"num_boost_round": 30, "nthread": 1},
        )
    return base / "model"


@pytest.fixture(scope="module")
def held_out(split_dir: Path) -> pd.DataFrame:
    return read_csv_dir(split_dir / "test").head(20)


@pytest.fixture(scope="module")
def url(model_dir: Path) -> Iterator[str]:
    server = build_server(model_dir, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes, content_type: str, accept: str = "") -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(f"{url}/invocations", data=body, headers=headers)
    try:
        with LOOPBACK.open(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def _csv(frame: pd.DataFrame) -> bytes:
    return frame[list(FEATURES)].to_csv(header=False, index=False).encode()


def test_rows_are_scored_as_the_booster_scores_them(
    url: str, model_dir: Path, held_out: pd.DataFrame
) -> None:
    booster = xgboost.Booster(model_file=str(model_dir / "model.json"))
    expected = np.argmax(booster.predict(xgboost.DMatrix(held_out[list(FEATURES)])), axis=1)
    status, media, body = _post(url, _csv(held_out), "text/csv")
    assert (status, media) == (200, "text/csv")
    assert [int(line) for line in body.decode().split()] == expected.tolist()
    # The model is good: the answers are mostly the true digits.
    assert (expected == held_out[LABEL].to_numpy()).mean() > 0.8


def test_json_in_json_out_with_probabilities(url: str, held_out: pd.DataFrame) -> None:
    rows = held_out[list(FEATURES)].head(3).to_numpy().tolist()
    status, media, body = _post(url, json.dumps({"instances": rows}).encode(), "application/json")
    assert (status, media) == (200, "application/json")
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 3
    for prediction in predictions:
        assert len(prediction["probabilities"]) == 10
        assert abs(sum(prediction["probabilities"]) - 1) < 1e-3
        assert prediction["label"] == int(np.argmax(prediction["probabilities"]))
    # Accept decides the answer's type: CSV rows, JSON answer.
    status, media, _ = _post(url, _csv(held_out.head(2)), "text/csv", accept="application/json")
    assert (status, media) == (200, "application/json")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"1,2,3\n", "text/csv", 400, "row 1: expected 64 values, got 3"),
        (b"0," * 63 + b"x\n", "text/csv", 400, "row 1, column 64: 'x' is not a number"),
        (b'{"instances": [[0]]}', "application/json", 400, "row 1: expected 64 values, got 1"),
        (b"{not json", "application/json", 400, "not JSON"),
        (b"", "text/csv", 400, "no rows to score"),
        (b"<rows/>", "application/xml", 415, "'application/xml' is not one of text/csv"),
    ],
)
def test_bad_requests_are_client_errors_that_name_the_problem(
    url: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    answer, _, text = _post(url, body, content_type)
    assert answer == status
    assert message in text.decode()


def test_a_bad_row_among_good_ones_is_named(url: str, held_out: pd.DataFrame) -> None:
    body = _csv(held_out.head(2)) + b"1,2\n"
    status, _, text = _post(url, body, "text/csv")
    assert status == 400 and "row 3: expected 64 values, got 2" in text.decode()


def test_parse_rows_refuses_non_finite_values() -> None:
    with pytest.raises(BadRequest, match="row 2, column 1: 'nan' is not a finite number"):
        parse_rows(b"1,2\nnan,3\n", "text/csv", 2)


def test_a_binary_model_answers_both_classes() -> None:
    data = np.array([[0.0], [1.0]] * 10)
    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1, "eta": 1, "min_child_weight": 0},
        xgboost.DMatrix(data, label=[0, 1] * 10),
        num_boost_round=5,
    )
    (low, high) = predict(booster, np.array([[0.0], [1.0]], dtype=np.float32))
    assert (low.label, high.label) == (0, 1)
    assert len(low.probabilities) == 2


# --- as SageMaker starts it ------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for_ping(url: str, process: subprocess.Popen[Any], deadline: float) -> float:
    started = time.monotonic()
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            with LOOPBACK.open(f"{url}/ping", timeout=PING_TIMEOUT_SECONDS) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"{url}/ping did not answer")


def test_serve_on_port_8080_as_sagemaker_starts_it(model_dir: Path, held_out: pd.DataFrame) -> None:
    if not _port_free(PORT):
        pytest.skip(f"port {PORT} is taken on this machine")
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.inference.server",
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{PORT}"
    try:
        _wait_for_ping(url, process, time.monotonic() + 60)
        status, _, body = _post(url, _csv(held_out.head(2)), "text/csv")
        assert status == 200 and len(body.split()) == 2
        status, _, _ = _post(url, b"1\n", "text/csv")
        assert status == 400
    finally:
        process.terminate()  # SageMaker stops containers with SIGTERM
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    log = output.decode()
    lines = [line for line in log.splitlines() if "POST /invocations" in line]
    assert len(lines) == 2  # one line per request ...
    assert " 200 " in lines[0] and " 400 " in lines[1]
    first_row = ",".join(str(v) for v in held_out[list(FEATURES)].iloc[0])
    assert first_row not in log  # ... and never the payload
    assert "SIGTERM: stopping" in log


def test_without_a_model_the_server_does_not_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.inference.server",
            "serve",
            "--model-dir",
            str(tmp_path),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot serve: no model.json or model.ubj or model.tar.gz in" in result.stdout
