"""The stack as the rules see it: resources with their properties, parents, options and the
property dependencies between them, plus the environment tier and the rules it relaxes.

Built from the offline harness's recording in the tests and from pulumi-policy's
`StackValidationArgs` in the pack, so both run the same rule code. Property names are the
wire names (camelCase). A value that is unknown during a preview is `None`; rules treat an
unknown value as "cannot tell yet", not as a violation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENVIRONMENT_TYPE = "mlops:environment:MlopsEnvironment"


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    # property -> URNs of the resources whose outputs feed it
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # properties of the explicit provider that manages this resource, if any
    provider_props: Mapping[str, Any] | None = None
    protect: bool = False
    # pulumi-policy does not expose retainOnDelete; None means "not known here".
    retain_on_delete: bool | None = None

    def prop(self, *path: str | int) -> Any:
        """A nested property, or None where any step is missing or unknown."""
        value: Any = self.props
        for step in path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and len(value) > step else None
            else:
                value = value.get(step) if isinstance(value, Mapping) else None
            if value is None:
                return None
        return value

    def json_prop(self, name: str) -> Any:
        """A property holding a JSON document (IAM and bucket policies), parsed."""
        return parse_json(self.props.get(name))


def parse_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def statements_of(document: Any) -> list[dict[str, Any]]:
    """A policy document's statements (a lone statement counts as a list of one); nothing
    for a document that is unknown (preview) or not a policy."""
    if not isinstance(document, Mapping):
        return []
    found = document.get("Statement")
    found = found if isinstance(found, list) else [found]
    return [statement for statement in found if isinstance(statement, dict)]


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str | None
    message: str


class StackView:
    """All resources of one stack, with the lookups rules need."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.resources = list(resources)
        self.by_urn = {r.urn: r for r in self.resources}
        environment = next((r for r in self.resources if r.type == ENVIRONMENT_TYPE), None)
        props = environment.props if environment else {}
        # Tier of the environment; unknown (no MlopsEnvironment) counts as the strictest.
        self.tier: str = props.get("environment") or "prod"
        self.advisory_rules: frozenset[str] = frozenset(props.get("advisoryRules") or ())
        # Where the stack runs (None outside an MlopsEnvironment): rules that rebuild the
        # requests AWS services make need the ARNs they carry.
        self.region: str | None = props.get("region")
        self.account_id: str | None = props.get("accountId")

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]

    def dependents(self, target: Resource, prop: str, type_: str) -> list[Resource]:
        """Resources of `type_` whose property `prop` is fed by `target` (e.g. the policy of
        a bucket: `dependents(bucket, "bucket", "aws:s3/bucketPolicy:BucketPolicy")`)."""
        return [
            r for r in self.of_type(type_) if target.urn in r.property_dependencies.get(prop, ())
        ]

    @property
    def is_prod(self) -> bool:
        return self.tier == "prod"
