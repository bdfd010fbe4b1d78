"""`kill` (SIGTERM) and a closed terminal (SIGHUP) end a local command like Ctrl-C does.

By default either signal ends Python without running `finally` blocks, which would leave the
MLflow and scoring servers running and the open MLflow runs "RUNNING" forever. Raised as
`Stopped` (a KeyboardInterrupt), they unwind the same way Ctrl-C does: the servers stop by
process group, `mlflow.start_run` ends the open runs FAILED, and the command exits with
128 + the signal's number, as a shell reports a process ended by it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within the context, SIGTERM and SIGHUP raise Stopped in the main thread."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {number: signal.signal(number, _stop) for number in HANDLED}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def hold_until_interrupted() -> None:
    """Wait for Ctrl-C (returns) or SIGTERM/SIGHUP (raises Stopped, for its exit code)."""
    import time

    try:
        while True:
            time.sleep(3600)
    except Stopped:
        raise
    except KeyboardInterrupt:
        return
