"""One local run per home: a second `run-local` or `serve-local` on a home in use is refused
at once, naming the home and the holder; another home is unaffected."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.__main__ import main
from pipelines.home_lock import LOCK_FILE, HomeBusy, locked_home

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from pipelines.home_lock import locked_home\n"
    "with locked_home(Path(sys.argv[1])):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


@pytest.fixture
def holder(tmp_path: Path) -> subprocess.Popen[str]:
    """Another process holding `tmp_path / "home"`, as a running run-local does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "home")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process
    process.terminate()
    process.wait(timeout=10)


def test_a_home_in_use_is_refused_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(HomeBusy) as busy, locked_home(tmp_path / "home"):
        pass
    assert f"{tmp_path / 'home'} is in use by another local run (pid {holder.pid})" in str(
        busy.value
    )
    # Another home is not affected.
    with locked_home(tmp_path / "other") as other:
        assert (other / LOCK_FILE).read_text().strip().isdigit()


def test_the_lock_goes_with_the_process(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.kill()  # even SIGKILL: the kernel drops the lock with the process
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            with locked_home(tmp_path / "home"):
                break
        except HomeBusy:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_the_cli_refuses_a_busy_home_without_a_traceback(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["run-local", "training"], ["serve-local", "digits"]):
        code = main([*command, "--home", str(tmp_path / "home")])
        err = capsys.readouterr().err
        assert code == 2, command
        assert f"is in use by another local run (pid {holder.pid})" in err
        assert "Traceback" not in err
