"""A real MLflow tracking server on loopback for local runs and tests.

sqlite backend and artifacts under a home directory, job execution off, started in its own
process group and always stopped by group: `mlflow server` forks uvicorn workers, and killing
only the parent would leave them holding the port.

A server that answers `/health` is not trusted for being there: the port is checked free
before the start, but another run may take it in between, and its server answers just as
well. So once the port answers, the process listening on it must be in this server's own
process group; otherwise the start fails naming the port and the process that holds it, and
nothing of this run reaches the other server's store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.processes import (
    kill_group,
    log_tail,
    start_in_group,
    terminate_group,
    wait_until_ready,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 5000
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 10.0


STORE_FILE = "mlflow.db"
# The running server's process group, so the next start can find one a SIGKILL left behind.
PID_FILE = "server.pid"
RESET_HINT = "pass another --home, or `make clean-local` to start afresh (it deletes .local/)"


class MlflowServerError(RuntimeError):
    """The server could not start (busy port, bad home, crashed); the message says why."""


def check_store(path: Path) -> None:
    """A store that exists must be a sound sqlite database: MLflow would otherwise fail deep
    inside its migrations, or start over it. Opened read-only, so nothing is ever written."""
    import sqlite3

    if not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise MlflowServerError(f"{path} is not a usable MLflow store ({verdict}); {RESET_HINT}")


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen there now. SO_REUSEADDR, as uvicorn sets it, so that
    connections of a previous run lingering in TIME_WAIT do not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_holder(port: int, host: str = HOST) -> int | None:
    """The pid of the process listening on host:port, or None when it cannot be told (no
    listener, or one of another user's)."""
    import psutil  # type: ignore[import-untyped]

    for connection in psutil.net_connections(kind="tcp"):
        address = connection.laddr
        if (
            connection.status == psutil.CONN_LISTEN
            and address
            and address.port == port
            and address.ip in (host, "0.0.0.0", "::")  # noqa: S104 - comparing, not binding
        ):
            return int(connection.pid) if connection.pid is not None else None
    return None


def _in_group(pid: int, group: int) -> bool:
    try:
        return os.getpgid(pid) == group
    except OSError:
        return False


def _describe(pid: int | None) -> str:
    if pid is None:
        return "a process this user cannot see"
    import psutil

    try:
        return f"pid {pid}, {' '.join(psutil.Process(pid).cmdline())[:120]}"
    except psutil.Error:
        return f"pid {pid}"


@dataclass
class MlflowServer:
    home: Path
    port: int = DEFAULT_PORT
    host: str = HOST
    start_timeout: float = START_TIMEOUT_SECONDS
    # The process group of a leftover server of this home that start() stopped, if any.
    cleaned: int | None = field(default=None, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.home / STORE_FILE}",
            "--artifacts-destination", str(self.home / "artifacts"),
            "--host", self.host,
            "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip

    def start(self) -> None:
        if not 1 <= self.port <= 65535:
            raise MlflowServerError(f"--port {self.port}: not a TCP port (1-65535)")
        if not port_is_free(self.port, self.host):
            raise MlflowServerError(
                f"port {self.port} on {self.host} is busy (another MLflow server?); "
                "stop it or pass --port"
            )
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlflowServerError(f"cannot use {self.home} for MLflow data: {exc}") from None
        check_store(self.home / STORE_FILE)
        self.cleaned = self._stop_leftover()
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        process = self._process = start_in_group(self.command(), self.log_path, env)
        (self.home / PID_FILE).write_text(f"{process.pid}\n")
        try:
            self._wait_until_healthy(process)
        except BaseException:
            self.stop()
            raise

    def _stop_leftover(self) -> int | None:
        """A server whose runner was killed outright (SIGKILL ran no `finally`) still holds
        this home's store. Its pidfile names its process group: stop it, only if that group
        is still an MLflow server of this home (a reused pid of someone else's is left
        alone). Returns the group stopped, or None."""
        import psutil

        path = self.home / PID_FILE
        try:
            group = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        path.unlink(missing_ok=True)
        try:
            command = " ".join(psutil.Process(group).cmdline())
        except psutil.Error:
            return None  # gone already
        if "mlflow" not in command or str(self.home / STORE_FILE) not in command:
            return None
        kill_group(group, STOP_TIMEOUT_SECONDS)
        return group

    def _wait_until_healthy(self, process: subprocess.Popen[bytes]) -> None:
        readiness = wait_until_ready(process, self._healthy, self.start_timeout, 0.25)
        if readiness == "exited":
            raise MlflowServerError(
                f"MLflow server exited with status {process.returncode} while "
                f"starting:\n{self._log_tail()}"
            )
        if readiness == "timed out":
            raise MlflowServerError(
                f"MLflow server did not answer {self.url}/health within"
                f" {self.start_timeout:.0f} s:\n{self._log_tail()}"
            )
        holder = port_holder(self.port, self.host)
        if holder is None or not _in_group(holder, process.pid):
            raise MlflowServerError(
                f"port {self.port} on {self.host} answers, but the process listening there "
                f"({_describe(holder)}) is not the MLflow server this run started; another "
                "run or server took the port: stop it or pass --port"
            )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            terminate_group(process, STOP_TIMEOUT_SECONDS)
            kill_group(process.pid, STOP_TIMEOUT_SECONDS)
        (self.home / PID_FILE).unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None


@contextlib.contextmanager
def running_server(home: Path, port: int = DEFAULT_PORT) -> Iterator[MlflowServer]:
    """A started server, stopped on exit whatever happens (errors, Ctrl-C)."""
    server = MlflowServer(home=home, port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
