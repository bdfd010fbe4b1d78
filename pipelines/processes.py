"""Child servers in their own process group, for the local MLflow server and the local scoring
server.

Why one module: both run a uvicorn-based server that may fork workers, so each is started in a
new session (its own process group), waited for until it answers or dies, reported with the tail
of its log, and stopped by group: killing only the parent would leave workers holding the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

Readiness = Literal["ready", "exited", "timed out"]


def start_in_group(
    command: Sequence[str], log_path: Path, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """`command` in its own process group, stdout and stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, stopped as one
        )


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float, interval: float
) -> Readiness:
    """Polls `ready` every `interval` s until it is true ("ready"), the process ends first
    ("exited": its returncode says how) or `timeout` s pass ("timed out")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        if ready():
            return "ready"
        time.sleep(interval)
    return "timed out"


def log_tail(log_path: Path, lines: int) -> str:
    """The last `lines` lines of a server's log, for an error message."""
    try:
        text = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(text[-lines:])


def terminate_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the process's group; SIGKILL to it where the leader has not exited within
    `timeout` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kill_group(pgid: int, timeout: float) -> None:
    """SIGKILL to what is left of the group (workers that outlived their parent), then wait up
    to `timeout` s until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # killed orphans linger until their new parent reaps them


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
