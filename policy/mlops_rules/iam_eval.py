"""A small evaluator of IAM policy statements: does this document allow this request?

Enough of AWS's policy evaluation logic for the checks that ask "would AWS let this call
through": explicit deny wins, then any allow; actions and resources match with `*` and `?`
wildcards (case-insensitive actions); a principal matches by ARN, by service, or through its
account's root (in a key policy, `:root` delegates to the account's IAM policies); condition
operators as the IAM User Guide defines them, `...IfExists` included. An operator it does not
know raises, so a check never passes on a condition it cannot read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Statement = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it: who, what, on which resource, with which context keys
    (`aws:SourceAccount`, `kms:ViaService`, `aws:RequestTag/<key>`, ...)."""

    action: str
    resource: str
    # {"AWS": <role or account ARN>} or {"Service": <service principal>}; None for identity
    # policies, whose holder is the caller.
    principal: Mapping[str, str] | None = None
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _matches(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else arn


def _principal_matches(wanted: Any, principal: Mapping[str, str] | None) -> bool:
    if principal is None or wanted == "*" or wanted == {"AWS": "*"}:
        return True
    for kind, who in principal.items():
        for allowed in _listed(wanted.get(kind, [])) if isinstance(wanted, dict) else []:
            if allowed == who:
                return True
            # An account's root stands for every principal of that account.
            if (
                kind == "AWS"
                and allowed.endswith(":root")
                and _account_of(allowed) == (_account_of(who))
            ):
                return True
    return False


def _string_test(operator: str) -> tuple[bool, bool, str]:
    """(negated, if-exists, base operator) of a condition operator."""
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    negated = "Not" in base
    return negated, if_exists, base.replace("Not", "")


def _equals(pattern: str, value: str) -> bool:
    return pattern == value


def _equals_ignoring_case(pattern: str, value: str) -> bool:
    return pattern.lower() == value.lower()


COMPARATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": _equals,
    "StringEqualsIgnoreCase": _equals_ignoring_case,
    "StringLike": _matches,
    "ArnEquals": _equals,
    "ArnLike": _matches,
    "Bool": _equals_ignoring_case,
}


def _condition_holds(operator: str, key: str, expected: Any, request: Request) -> bool:
    negated, if_exists, base = _string_test(operator)
    if base not in COMPARATORS:
        raise ValueError(f"condition operator {operator!r} is not understood")
    context = {k.lower(): v for k, v in request.context.items()}
    if key.lower() not in context:
        # Absent key: ...IfExists and negated operators hold, the others fail.
        return if_exists or negated
    values = [str(v) for v in _listed(context[key.lower()])]
    compare = COMPARATORS[base]
    hit = any(compare(str(e), v) for e in _listed(expected) for v in values)
    return not hit if negated else hit


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]], request: Request) -> bool:
    return all(
        _condition_holds(operator, key, expected, request)
        for operator, pairs in conditions.items()
        for key, expected in pairs.items()
    )


def statement_applies(statement: Statement, request: Request) -> bool:
    """The statement covers the request (its effect aside)."""
    actions = _listed(statement.get("Action", []))
    if not any(_matches(a, request.action, case=False) for a in actions):
        return False
    if not any(_matches(r, request.resource) for r in _listed(statement.get("Resource", []))):
        return False
    if "Principal" in statement and not _principal_matches(
        statement["Principal"], request.principal
    ):
        return False
    return _conditions_hold(statement.get("Condition") or {}, request)


def allows(statements: Iterable[Statement], request: Request) -> bool:
    """An explicit deny wins; otherwise one allow that applies is enough."""
    applying = [s for s in statements if statement_applies(s, request)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return False
    return any(s.get("Effect") == "Allow" for s in applying)
