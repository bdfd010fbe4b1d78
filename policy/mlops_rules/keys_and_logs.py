"""KMS key and CloudWatch Logs rules: E1, E7."""

from __future__ import annotations

from collections.abc import Iterator

from . import types as t
from .model import StackView, statements_of
from .registry import Finding, rule

PROD_MIN_LOG_RETENTION_DAYS = 365


def _is_anyone(principal: object) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        values = principal.get("AWS")
        values = values if isinstance(values, list) else [values]
        return "*" in values
    return False


@rule("E1", "kms-rotation-explicit-policy", "KMS keys rotate and have explicit, safe key policies")
def kms_keys(view: StackView) -> Iterator[Finding]:
    for key in view.of_type(t.KMS_KEY):
        if key.props.get("enableKeyRotation") is not True:
            yield key, "automatic key rotation is off"
        if key.props.get("bypassPolicyLockoutSafetyCheck") is True:
            yield key, "key policy bypasses the lockout safety check"
        if not key.props.get("policy"):
            yield key, "no explicit key policy (the default grants the whole account)"
            continue
        for statement in statements_of(key.json_prop("policy")):
            if (
                statement.get("Effect") == "Allow"
                and _is_anyone(statement.get("Principal"))
                and not statement.get("Condition")
            ):
                yield key, f"statement {statement.get('Sid', '?')} allows '*' without conditions"


@rule(
    "E7", "log-group-kms-retention", "Log groups use a KMS key and a retention (>= 365 d in prod)"
)
def log_groups(view: StackView) -> Iterator[Finding]:
    for group in view.of_type(t.LOG_GROUP):
        if not group.props.get("kmsKeyId"):
            yield group, "log group is not encrypted with a KMS key"
        retention = group.props.get("retentionInDays")
        if not retention:
            yield group, "log group keeps logs forever (no retention)"
        elif view.is_prod and retention < PROD_MIN_LOG_RETENTION_DAYS:
            yield group, f"prod log retention {retention} < {PROD_MIN_LOG_RETENTION_DAYS} days"
