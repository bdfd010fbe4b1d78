"""The loopback MLflow server: starts healthy, stops by process group, fails clearly."""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from pipelines.mlflow_server import MlflowServer, MlflowServerError, free_port
from pipelines.processes import group_alive


def _fake(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Replace `mlflow server` with a script, to make it crash or hang."""
    monkeypatch.setattr(MlflowServer, "command", lambda self: [sys.executable, "-c", script])


def test_real_server_answers_and_stops_with_its_workers(mlflow_server: MlflowServer) -> None:
    with urllib.request.urlopen(f"{mlflow_server.url}/health", timeout=5) as response:
        assert response.status == 200
    assert (mlflow_server.home / "mlflow.db").exists()


def test_stop_leaves_no_process_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A parent that forks a child which ignores SIGTERM, like a stuck worker.
    port = free_port()
    monkeypatch.setattr(
        MlflowServer,
        "command",
        lambda self: [sys.executable, "-c", _SERVE, str(port)],
    )
    server = MlflowServer(home=tmp_path, port=port, start_timeout=20)
    server.start()
    pgid = server.pid
    assert pgid is not None and group_alive(pgid)
    server.stop()
    assert not group_alive(pgid)


_SERVE = (
    "import os, signal, time, http.server, sys\n"
    "if os.fork() == 0:\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "    time.sleep(60)\n"
    "    sys.exit(0)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


def test_busy_port_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MlflowServer(home=tmp_path, port=port)
        with pytest.raises(MlflowServerError, match=f"port {port} on 127.0.0.1 is busy"):
            server.start()
    assert server.pid is None


def test_invalid_port_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(MlflowServerError, match="--port 70000: not a TCP port"):
        MlflowServer(home=tmp_path, port=70000).start()


def test_crash_at_start_reports_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(monkeypatch, "import sys; print('backend store is broken'); sys.exit(3)")
    server = MlflowServer(home=tmp_path, port=free_port())
    with pytest.raises(MlflowServerError, match="exited with status 3") as raised:
        server.start()
    assert "backend store is broken" in str(raised.value)
    assert server.pid is None


def test_server_that_never_answers_times_out_and_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(monkeypatch, "import time; time.sleep(60)")
    server = MlflowServer(home=tmp_path, port=free_port(), start_timeout=1.5)
    started = []
    original = os.killpg
    monkeypatch.setattr(os, "killpg", lambda pid, sig: (started.append(pid), original(pid, sig)))
    with pytest.raises(MlflowServerError, match=r"did not answer .* within 2 s"):
        server.start()
    assert started and not group_alive(started[0])


def test_unusable_home_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a directory")
    with pytest.raises(MlflowServerError, match=r"cannot use .*a-file for MLflow data"):
        MlflowServer(home=home, port=free_port()).start()


_HEALTHY = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


def test_a_server_that_is_not_ours_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run took the port between the free-port check and our server's start: it
    answers /health, but this run must not send it anything."""
    import subprocess
    import time

    from pipelines import mlflow_server as module

    port = free_port()
    other = subprocess.Popen([sys.executable, "-c", _HEALTHY, str(port)])
    try:
        deadline = time.monotonic() + 20
        while module.port_holder(port) != other.pid and time.monotonic() < deadline:
            time.sleep(0.1)
        assert module.port_holder(port) == other.pid
        # Our "server" never binds: the one answering is the other process.
        monkeypatch.setattr(module, "port_is_free", lambda port, host="127.0.0.1": True)
        _fake(monkeypatch, "import time; time.sleep(60)")
        server = MlflowServer(home=tmp_path, port=port, start_timeout=20)
        with pytest.raises(MlflowServerError) as refused:
            server.start()
        message = str(refused.value)
        assert f"port {port} on 127.0.0.1 answers" in message
        assert f"pid {other.pid}" in message
        assert "is not the MLflow server this run started" in message
        assert server.pid is None  # ours was stopped
    finally:
        other.terminate()
        other.wait(timeout=10)


def test_our_own_server_holds_its_port(mlflow_server: MlflowServer) -> None:
    from pipelines.mlflow_server import port_holder

    holder = port_holder(mlflow_server.port)
    assert holder is not None and os.getpgid(holder) == mlflow_server.pid


def test_a_leftover_server_of_this_home_is_stopped(tmp_path: Path) -> None:
    """A runner killed outright (SIGKILL) leaves its server and pidfile: the next start stops
    that server, and only because it is an MLflow server of this home."""
    from pipelines.mlflow_server import PID_FILE

    leftover = MlflowServer(home=tmp_path, port=free_port())
    leftover.start()  # ... and never stopped: its runner died
    group = leftover.pid
    assert group is not None and (tmp_path / PID_FILE).read_text().strip() == str(group)
    fresh = MlflowServer(home=tmp_path, port=free_port())
    fresh.start()
    try:
        assert fresh.cleaned == group
        # Killed: at most a zombie until its parent (this test, here) reaps it.
        import contextlib

        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(group).status() == psutil.STATUS_ZOMBIE
        assert (tmp_path / PID_FILE).read_text().strip() == str(fresh.pid)
    finally:
        fresh.stop()
    assert not (tmp_path / PID_FILE).exists()


def test_a_pidfile_naming_someone_elses_process_is_left_alone(tmp_path: Path) -> None:
    import subprocess

    from pipelines.mlflow_server import PID_FILE

    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        (tmp_path / PID_FILE).write_text(f"{other.pid}\n")
        server = MlflowServer(home=tmp_path, port=free_port())
        server.start()
        server.stop()
        assert server.cleaned is None
        assert other.poll() is None  # not ours: untouched
    finally:
        other.kill()
        other.wait(timeout=10)
