"""`python -m pipelines ui` serves the local store until stopped; a damaged store stops a run
with one line naming the file and what to do, and is never written to."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.__main__ import main
from pipelines.mlflow_server import free_port

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_ui_serves_the_store_until_stopped(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "ui", "--home", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        deadline, line = time.monotonic() + 120, ""
        while "MLflow UI" not in line and time.monotonic() < deadline:
            if select.select([process.stdout], [], [], 0.5)[0]:
                line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        with LOOPBACK.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    with pytest.raises(OSError):
        LOOPBACK.open(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.parametrize(
    "damage", [b"this is not a database", b"SQLite format 3\x00" + b"\x00" * 50]
)
def test_a_damaged_store_is_named_and_left_alone(
    tmp_path: Path, damage: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "mlflow" / "mlflow.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(damage)
    code = main(["run-local", "training", "--home", str(tmp_path), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: {store} is not a usable MLflow store (")
    assert "pass another --home, or `make clean-local`" in line
    assert store.read_bytes() == damage  # never written
