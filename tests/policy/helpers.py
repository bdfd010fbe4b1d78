"""Building blocks for rule tests: synthetic resources and one rule's verdict on them."""

from __future__ import annotations

from typing import Any

from policy.mlops_rules import RULES, Resource, StackView, Violation
from policy.mlops_rules.model import ENVIRONMENT_TYPE

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def resource(
    type_: str,
    name: str,
    props: dict[str, Any] | None = None,
    deps: dict[str, tuple[str, ...]] | None = None,
) -> Resource:
    return Resource(
        urn=f"urn:pulumi:prod::mlops-platform::{type_}::{name}",
        type=type_,
        name=name,
        props=props or {},
        property_dependencies=deps or {},
    )


def run(policy_name: str, *resources: Resource, tier: str = "prod") -> list[Violation]:
    """The violations of one rule over `resources` in an environment of `tier`."""
    environment = resource(ENVIRONMENT_TYPE, "env", {"environment": tier})
    (found,) = [r for r in RULES if r.policy_name == policy_name]
    return found.run(StackView([environment, *resources]))
