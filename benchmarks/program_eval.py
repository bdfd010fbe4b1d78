"""Cost of evaluating the whole Pulumi program offline, per committed stack.

Each stack runs in a fresh Python process, as `pulumi up` would: the figures include
importing the Pulumi and AWS SDKs. Prints, per stack, the process wall time, the time spent
in the program itself (after imports), peak RSS and the number of cloud resources.
Targets on a 2-core machine: prod <= 5 s and <= 400 MB, also with 10 models configured.

    python benchmarks/program_eval.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_MB = 5.0, 400


def measure_one(stack: str, models: int) -> None:
    """Child mode: evaluate one stack (with `models` copies of its first model, if > 0) and
    print its figures as JSON."""
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    from stacks.loader import read_stack_config, stack_file
    from stacks.offline import evaluate_config

    imported = time.perf_counter()
    config = read_stack_config(stack_file(stack))
    if models:
        first = next(iter(config["mlops-platform:models"].values()))
        config["mlops-platform:models"] = {f"model-{i}": first for i in range(models)}
    recording = evaluate_config(stack, config)
    finished = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "program_s": finished - imported,
                "peak_mb": peak_kb / 1024,
                "resources": len(recording.custom_resources),
            }
        )
    )


def measure(stack: str, models: int = 0) -> dict[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--one", stack, "--models", str(models)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_s"] = time.perf_counter() - started
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per stack (median shown)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--models", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure_one(args.one, args.models)
        return 0

    sys.path.insert(0, str(ROOT))
    from stacks.loader import committed_stacks

    print(f"{'stack':<6} {'process s':>10} {'program s':>10} {'peak MB':>8} {'resources':>9}")
    within = True
    for stack in committed_stacks():
        runs = [measure(stack) for _ in range(args.repeat)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{stack:<6} {median['process_s']:>10.2f} {median['program_s']:>10.2f} "
            f"{median['peak_mb']:>8.0f} {int(median['resources']):>9}"
        )
        within &= median["process_s"] <= TARGET_SECONDS and median["peak_mb"] <= TARGET_MB
    # Pipeline definitions are cached by their inputs: the first run of a new configuration
    # builds them (SageMaker SDK import included), later runs reuse them.
    print("\ntest stack with N models: first run (builds definitions) / later runs (cached)")
    for count in (1, 10):
        runs = [measure("test", count) for _ in range(args.repeat)]
        later = statistics.median(r["process_s"] for r in runs[1:]) if len(runs) > 1 else 0.0
        peak = max(r["peak_mb"] for r in runs)
        print(
            f"  {count:>2} models: {runs[0]['process_s']:.2f} s / {later:.2f} s, "
            f"peak {peak:.0f} MB, {int(runs[0]['resources'])} resources"
        )
        within &= later <= TARGET_SECONDS and peak <= TARGET_MB
    print(
        f"target: <= {TARGET_SECONDS:.0f} s and <= {TARGET_MB} MB per stack: "
        f"{'met' if within else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
