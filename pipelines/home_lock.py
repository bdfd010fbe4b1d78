"""One local run per home folder at a time.

Two `run-local`s on the same home would share one MLflow store and one set of registered
models: their versions and aliases would interleave. So each command holds an exclusive lock
on `<home>/.lock` (flock: the kernel releases it when the process ends, however it ends) and
writes its pid there; a second one is refused at once, naming the home and the holder.
Runs in different homes never share anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"


class HomeBusy(RuntimeError):
    """Another local run holds the home."""


@contextlib.contextmanager
def locked_home(home: Path) -> Iterator[Path]:
    """Hold `home` for this process until the context exits."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise HomeBusy(
                f"{home} is in use by another local run (pid {holder}); wait for it, or "
                "pass another --home"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield home
    finally:
        handle.close()
