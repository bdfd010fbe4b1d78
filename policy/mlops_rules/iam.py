"""IAM rules: A4 (no wildcards where scoping is possible, scoped PassRole, no FullAccess)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

from . import types as t
from .model import Resource, StackView, parse_json, statements_of
from .registry import Finding, rule

# Actions that do not support resource-level permissions, so `Resource: "*"` is the only
# choice. Add one here (with the AWS service authorization reference in mind) when a
# component needs it.
UNSCOPABLE_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "logs:DescribeLogGroups",
    "ec2:Describe*",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "autoscaling:Describe*",
    # Writes act on scalable-target ARNs (scoped by tag); only the reads take no resource.
    "application-autoscaling:Describe*",
    "sagemaker:Search",
    "sagemaker:List*",
)
FULL_ACCESS = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/.*FullAccess")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def identity_documents(view: StackView) -> Iterator[tuple[Resource, Any]]:
    """Every identity policy document the stack creates, with the resource holding it."""
    for holder in view.of_type(t.IAM_ROLE_POLICY, t.IAM_POLICY):
        yield holder, holder.json_prop("policy")
    for role in view.of_type(t.IAM_ROLE):
        for inline in role.props.get("inlinePolicies") or []:
            yield role, parse_json(inline.get("policy"))


def _unscopable(action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in UNSCOPABLE_ACTIONS)


@rule(
    "A4", "iam-least-privilege", "IAM: no * actions, no * resources where scopable, scoped PassRole"
)
def least_privilege(view: StackView) -> Iterator[Finding]:
    for holder, document in identity_documents(view):
        if not isinstance(document, dict):
            continue  # computed during a preview
        for statement in statements_of(document):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement or "NotResource" in statement:
                yield holder, "Allow with NotAction/NotResource grants more than it names"
            actions = [str(a) for a in _as_list(statement.get("Action"))]
            resources = _as_list(statement.get("Resource"))
            for action in actions:
                if action == "*" or action.endswith(":*"):
                    yield holder, f"wildcard action {action}"
            if "*" in resources:
                scopable = [a for a in actions if not _unscopable(a)]
                if scopable:
                    yield holder, f"Resource '*' for scopable actions: {', '.join(scopable)}"
            if any(fnmatch.fnmatchcase("iam:PassRole", a) for a in actions) and any(
                "*" in str(r) for r in resources
            ):
                yield holder, "iam:PassRole on a wildcard resource"


@rule("A4", "no-aws-full-access", "No AWS managed *FullAccess policies")
def no_full_access(view: StackView) -> Iterator[Finding]:
    for attachment in view.of_type(t.IAM_ROLE_POLICY_ATTACHMENT):
        if FULL_ACCESS.match(str(attachment.props.get("policyArn") or "")):
            yield attachment, f"attaches {attachment.props['policyArn']}"
    for role in view.of_type(t.IAM_ROLE):
        for arn in role.props.get("managedPolicyArns") or []:
            if FULL_ACCESS.match(str(arn)):
                yield role, f"attaches {arn}"
