"""The local deployment: the registry's champion served by the endpoint's own inference server
(pipelines/inference/server.py) on loopback, answering like the model itself, stopped with its
whole process group; clear errors."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import mlflow
import numpy as np
import pytest
from rich.console import Console

from pipelines import mlflow_server as mlflow_server_module
from pipelines.__main__ import main
from pipelines.local import CHAMPION, run_training
from pipelines.mlflow_server import MlflowServer, free_port
from pipelines.processes import group_alive
from pipelines.serve_local import (
    NoChampion,
    ScoringServer,
    ScoringServerError,
    ask,
    labels,
    sample_rows,
    score,
    serve_champion,
)
from stacks.loader import load_stack_settings

DIGITS = load_stack_settings("dev").models["digits"]


def test_served_champion_answers_like_the_model_and_stops(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    with (tmp_path / "console.txt").open("w") as output:
        run = run_training(
            "digits", DIGITS, mlflow_server.url, tmp_path / "runs", Console(file=output),
            registered_name="digits-served",
        )  # fmt: skip
    rows = sample_rows(5)
    log = tmp_path / "scoring-server.log"

    with serve_champion("digits-served", mlflow_server.url, log_path=log) as served:
        assert (served.model, served.version) == ("digits-served", run.champion_version)
        assert served.url.startswith("http://127.0.0.1:")
        assert group_alive(served.pgid)
        served_predictions = score(served.url, rows)
        answers = ask(served.url, rows.head(2))

    assert not group_alive(served.pgid)
    mlflow.set_tracking_uri(mlflow_server.url)
    model = mlflow.pyfunc.load_model(f"models:/digits-served/{run.champion_version}")
    own = np.asarray(model.predict(rows.drop(columns=["label"])))
    served_probabilities = np.asarray([p["probabilities"] for p in served_predictions])
    assert np.allclose(served_probabilities, own, atol=1e-5)
    assert labels(served_predictions) == [int(p.argmax()) for p in own]
    # The held-out rows the local run predicted, with the same answers.
    pairs = list(zip(rows["label"].tolist(), labels(served_predictions), strict=True))
    assert pairs == run.predictions
    assert [(a.row, a.actual, a.predicted) for a in answers] == [
        (0, *run.predictions[0]),
        (1, *run.predictions[1]),
    ]
    assert all(a.latency_ms > 0 for a in answers)
    assert "POST /invocations" in log.read_text()


def test_no_champion_is_a_clear_error(mlflow_server: MlflowServer) -> None:
    with (
        pytest.raises(NoChampion, match="no such registered model") as missing,
        serve_champion("digits-never-trained", mlflow_server.url),
    ):
        pass
    assert "run `python -m pipelines run-local training` first" in str(missing.value)

    mlflow.MlflowClient(mlflow_server.url).create_registered_model("digits-unpromoted")
    with (
        pytest.raises(NoChampion, match=f"no version has the '{CHAMPION}' alias"),
        serve_champion("digits-unpromoted", mlflow_server.url),
    ):
        pass


def test_cli_without_champion_exits_with_the_hint(
    mlflow_server: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The session's server stands in for the one the command starts (a fresh one takes ~10 s).
    monkeypatch.setattr(
        mlflow_server_module, "running_server", lambda home, port: nullcontext(mlflow_server)
    )
    assert main(["serve-local", "digits-never-trained"]) == 1
    err = capsys.readouterr().err
    assert "no champion version of model 'digits-never-trained'" in err
    assert "run `python -m pipelines run-local training` first" in err
    assert "Traceback" not in err


def test_server_that_dies_at_start_is_a_clear_error_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "import sys; print('cannot load the model'); sys.exit(3)"
    monkeypatch.setattr(ScoringServer, "command", lambda self: [sys.executable, "-c", script])
    server = ScoringServer(tmp_path, tmp_path / "log", free_port(), "http://127.0.0.1:1")
    with pytest.raises(ScoringServerError, match="exited with status 3") as failed:
        server.start()
    assert "cannot load the model" in str(failed.value)
    assert server.pid is None  # stopped


def test_score_asks_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"only a scoring server on 127\.0\.0\.1"):
        score("http://example.com:8080", sample_rows(1))
