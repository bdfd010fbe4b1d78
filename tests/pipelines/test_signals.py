"""SIGTERM and SIGHUP end a real `run-local` as Ctrl-C does: exit 128 + the signal, the MLflow
server's whole process group gone, and no run left RUNNING in the store."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from pipelines.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[2]


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout: float) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if text in line:
                return
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"{text!r} never came (exit {process.poll()})")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_servers_and_fails_the_open_runs(
    tmp_path: Path, signum: signal.Signals
) -> None:
    home = tmp_path / "home"
    command = [sys.executable, "-m", "pipelines", "run-local", "training"]
    process = subprocess.Popen(
        [*command, "--home", str(home), "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )
    try:
        # Preprocess has finished and Train (about 2 s) has opened its run.
        _wait_for_line(process, "Preprocess", timeout=300)
        time.sleep(0.8)
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert descendants, "the MLflow server runs"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, err[-2000:]
    assert f"stopped by {signum.name}" in err and "Traceback" not in err
    assert not [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    client = mlflow.MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert runs, "the run had started"
    assert {run.info.status for run in runs} <= {"FAILED", "FINISHED"}
    assert "FAILED" in {run.info.status for run in runs}
