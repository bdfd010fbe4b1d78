"""`run-local --keep` keeps the MLflow UI up and `serve-local --keep` keeps the scoring server
up for curl, each until Ctrl-C, which then ends them cleanly (exit 0, servers gone)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.data import FEATURES
from pipelines.mlflow_server import free_port
from pipelines.serve_local import sample_rows

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )


def _line_with(process: subprocess.Popen[str], text: str, timeout: float = 300) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.5)[0]:
            line = process.stdout.readline()
            if text in line:
                return line
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"{text!r} never came (exit {process.poll()})")


def _interrupt(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    return process.returncode


def test_keep_holds_the_ui_and_the_scoring_server_until_ctrl_c(tmp_path: Path) -> None:
    port = str(free_port())
    run = _start("run-local", "training", "--home", str(tmp_path), "--port", port, "--keep")
    try:
        _line_with(run, "MLflow UI stays up")
        with LOOPBACK.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        assert _interrupt(run) == 0
    finally:
        if run.poll() is None:
            run.kill()

    serve = _start("serve-local", "digits", "--home", str(tmp_path), "--port", port, "--keep")
    try:
        line = _line_with(serve, "serving until Ctrl-C")
        url = re.search(r"(http://127\.0\.0\.1:\d+)/invocations", line)
        assert url is not None, line
        rows = sample_rows(2)[list(FEATURES)].to_csv(header=False, index=False).encode()
        request = urllib.request.Request(
            f"{url.group(1)}/invocations", data=rows, headers={"Content-Type": "text/csv"}
        )
        with LOOPBACK.open(request, timeout=10) as response:
            assert len(response.read().split()) == 2
        assert _interrupt(serve) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
