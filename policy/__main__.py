"""The policy pack Pulumi runs: `pulumi preview --policy-pack policy`."""

import sys
from pathlib import Path

# Pulumi starts the pack from this directory; make its modules importable however it is run.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pack import build_policies
from pulumi_policy import PolicyPack

PolicyPack(name="mlops-platform-security", policies=build_policies())
