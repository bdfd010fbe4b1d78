"""Two real `run-local`s at the same time: in different homes they never mix (each store holds
its own run's one version, each `champion` alias its own), and a second one on a home in use
is refused at once while the first finishes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow

from pipelines.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[2]


def _run_local(home: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pipelines", "run-local", "training"]
    return subprocess.Popen(
        [*command, "--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _versions(home: Path) -> list[str]:
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    return [str(v.version) for v in client.search_model_versions("name='digits'")]


def test_concurrent_runs_keep_to_their_own_homes(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    runs = [_run_local(first, free_port()), _run_local(second, free_port())]
    time.sleep(1)  # the first holds its home by now
    refused = _run_local(first, free_port())
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2, err
    assert f"{first} is in use by another local run" in err
    assert "Traceback" not in err
    for run in runs:
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
    # Each store has its own run's single version: nothing landed in the other.
    assert _versions(first) == ["1"]
    assert _versions(second) == ["1"]
