"""The CrossGuard wrapping of mlops_rules: one mandatory StackValidationPolicy per rule, and
one advisory policy that reports the violations of rules a dev stack names as advisory.

Kept apart from `__main__.py` so the tests can build the same policies without serving them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_rules import RULES, Resource, Rule, StackView, evaluate
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

ADVISORY_POLICY = "dev-advisory-rules"


def _plain(value: Any) -> Any:
    """pulumi-policy's props with every unknown (preview) value turned into None."""
    if isinstance(value, Mapping):
        plain = {}
        for key in value:
            try:
                plain[key] = _plain(value[key])
            except UnknownValueError:
                plain[key] = None
        return plain
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = []
        for index in range(len(value)):
            try:
                items.append(_plain(value[index]))
            except UnknownValueError:
                items.append(None)
        return items
    return value


def _resource(resource: PolicyResource) -> Resource:
    return Resource(
        urn=resource.urn,
        type=resource.resource_type,
        name=resource.name,
        props=_plain(resource.props),
        parent=resource.parent.urn if resource.parent else None,
        property_dependencies={
            prop: tuple(dep.urn for dep in deps)
            for prop, deps in resource.property_dependencies.items()
        },
        provider_props=_plain(resource.provider.props) if resource.provider else None,
        protect=resource.opts.protect,
        retain_on_delete=None,  # not visible to policy packs
    )


def stack_view(args: StackValidationArgs) -> StackView:
    return StackView(_resource(r) for r in args.resources)


def _mandatory(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for violation in evaluate(stack_view(args), [rule]).mandatory:
            report(violation.message, violation.urn)

    return validate


def _advisory(args: StackValidationArgs, report: ReportViolation) -> None:
    for violation in evaluate(stack_view(args)).advisory:
        report(f"[{violation.rule}] {violation.message}", violation.urn)


def build_policies() -> list[StackValidationPolicy]:
    policies = [
        StackValidationPolicy(
            name=rule.policy_name,
            description=f"{rule.id}: {rule.description}",
            enforcement_level=EnforcementLevel.MANDATORY,
            validate=_mandatory(rule),
        )
        for rule in RULES
    ]
    policies.append(
        StackValidationPolicy(
            name=ADVISORY_POLICY,
            description="Violations of the rules a dev stack names in policy.advisory_rules",
            enforcement_level=EnforcementLevel.ADVISORY,
            validate=_advisory,
        )
    )
    return policies
