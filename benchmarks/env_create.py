"""What `env create` costs before it touches AWS, and what a copy saves, per base stack.

For dev and test: the time to derive the copy's config and check it offline (derivation,
the program under the mocks harness, the policy pack: everything `env create` does before
its first Automation API call), and the resources the copy creates against its base, with
the slow ones it does not create (EKS control plane ~10-16 min, MLflow tracking server
~25-35 min, NAT gateways and VPC endpoints a few minutes). Target: the pre-flight <= 10 s.

    python benchmarks/env_create.py
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 10.0
SLOW_TYPES = {
    "aws:eks/cluster:Cluster": "EKS clusters",
    "aws:eks/nodeGroup:NodeGroup": "node groups",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": "MLflow servers",
    "aws:ec2/natGateway:NatGateway": "NAT gateways",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "VPC endpoints",
}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from stacks.env_commands import plan
    from stacks.env_config import EnvRequest
    from stacks.offline import evaluate_config, evaluate_stack
    from stacks.policy_check import check

    within = True
    print(f"{'base':<5} {'pre-flight s':>12} {'copy':>5} {'base':>5}  slow resources not created")
    for base in ("dev", "test"):
        request = EnvRequest("bench", base, "bench", timedelta(hours=8), "organization")
        started = time.perf_counter()
        derived = plan(request, datetime.now(UTC), ())
        copy = evaluate_config(derived.stack, derived.config)
        violations = check(copy).mandatory
        elapsed = time.perf_counter() - started
        original = evaluate_stack(base)
        base_counts, copy_counts = original.count_by_type(), copy.count_by_type()
        saved = ", ".join(
            f"{base_counts[t] - copy_counts[t]} {label}"
            for t, label in SLOW_TYPES.items()
            if base_counts[t] > copy_counts[t]
        )
        print(
            f"{base:<5} {elapsed:>12.2f} {len(copy.custom_resources):>5} "
            f"{len(original.custom_resources):>5}  {saved}"
            + (f"  ({len(violations)} VIOLATIONS)" if violations else "")
        )
        within &= elapsed <= TARGET_SECONDS and not violations
    verdict = "met" if within else "MISSED"
    print(f"target: pre-flight <= {TARGET_SECONDS:.0f} s, no violations: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
