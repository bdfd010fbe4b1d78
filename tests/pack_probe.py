"""Run by the policy pack's own interpreter (policy/venv) from tests/test_policy_pack.py:
reads a stack's resources as JSON on stdin, feeds them to every policy that
`policy/pack.py` builds, exactly as CrossGuard would, and prints what each one reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "policy"))

from pack import build_policies
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)


def main() -> None:
    rows = json.load(sys.stdin)
    resources = {
        row["urn"]: PolicyResource(
            resource_type=row["type"],
            props=row["props"],
            urn=row["urn"],
            name=row["name"],
            opts=PolicyResourceOptions(
                row["protect"], [], None, [], PolicyCustomTimeouts(0, 0, 0), [], row["parent"]
            ),
            provider=(
                PolicyProviderResource("pulumi:providers:aws", row["provider_props"], "", "")
                if row["provider_props"] is not None
                else None
            ),
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
        for row in rows
    }
    for row in rows:
        resource = resources[row["urn"]]
        resource.parent = resources.get(row["parent"])
        resource.property_dependencies = {
            prop: [resources[urn] for urn in urns if urn in resources]
            for prop, urns in row["property_dependencies"].items()
        }
    args = StackValidationArgs(list(resources.values()))
    reported = []
    policies = build_policies()
    for policy in policies:
        policy.validate(
            args,
            lambda message, urn=None, name=policy.name: reported.append([name, urn, message]),
        )
    levels = {p.name: p.enforcement_level.value for p in policies}
    sys.stdout.write(json.dumps({"levels": levels, "reported": reported}))


if __name__ == "__main__":
    main()
