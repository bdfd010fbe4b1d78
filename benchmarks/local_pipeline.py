"""Cost of the local pipeline run and of building the SageMaker definition.

Runs, each in a fresh process as a user would:
  1. `python -m pipelines run-local training` with a new MLflow home (server start included),
  2. `python -m pipelines definition training --env dev` (SDK import + build, no network),
     also timed inside the process, without interpreter start-up and exit,
and prints wall time and peak RSS. Peak RSS of the local run is the largest sum, over time,
of the resident memory of the whole process tree (CLI + MLflow server + its workers).
Targets on a 2-core machine: local run <= 90 s, definition <= 5 s.

    python benchmarks/local_pipeline.py
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.mlflow_server import free_port  # noqa: E402

LOCAL_TARGET_S, DEFINITION_TARGET_S = 90.0, 5.0
_TIMED_BUILD = """
import time
started = time.perf_counter()
from pipelines.context import context_for_stack
from pipelines.training import definition_json
from stacks.loader import load_stack_settings
definition_json(context_for_stack("dev", "digits"), load_stack_settings("dev").models["digits"])
print(time.perf_counter() - started)
"""


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _tree_rss_mb(root: int) -> float:
    total_kb, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
        stack += _children(pid)
    return total_kb / 1024


def run_measured(command: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak tree RSS in MB, exit status)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status = process.wait()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    own_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, max(peak, own_peak), status


def main() -> int:
    python = sys.executable
    with tempfile.TemporaryDirectory() as home:
        local = [python, "-m", "pipelines", "run-local", "training",
                 "--home", home, "--port", str(free_port())]  # fmt: skip
        local_s, local_mb, local_status = run_measured(local)
    definition = [python, "-m", "pipelines", "definition", "training", "--env", "dev"]
    definition_s, definition_mb, definition_status = run_measured(definition)
    build = subprocess.run(  # the same build, timed inside the process (no start-up/exit)
        [python, "-c", _TIMED_BUILD], cwd=ROOT, capture_output=True, text=True, check=True
    )
    build_s = float(build.stdout.strip().splitlines()[-1])

    print(f"{'run':<28} {'wall s':>8} {'peak MB':>8} {'target s':>9}  status")
    print(f"{'local pipeline (+ MLflow)':<28} {local_s:>8.1f} {local_mb:>8.0f} "
          f"{LOCAL_TARGET_S:>9.0f}  {local_status}")  # fmt: skip
    print(f"{'definition CLI (process)':<28} {definition_s:>8.1f} {definition_mb:>8.0f} "
          f"{'':>9}  {definition_status}")  # fmt: skip
    print(f"{'definition import + build':<28} {build_s:>8.1f} {'':>8} "
          f"{DEFINITION_TARGET_S:>9.0f}")  # fmt: skip
    met = local_s <= LOCAL_TARGET_S and build_s <= DEFINITION_TARGET_S
    print(f"targets: {'met' if met else 'MISSED'}")
    return 0 if local_status == 0 and definition_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
