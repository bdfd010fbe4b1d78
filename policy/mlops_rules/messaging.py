"""SNS and Secrets Manager rules: E8 (encrypted with the environment's customer-managed key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import StackView
from .registry import Finding, rule

TOPIC = "aws:sns/topic:Topic"
SECRETS_MANAGER_RESOURCE = "aws:secretsmanager/secret:Secret"


def _key_problem(key: Any, when_unset: str) -> str | None:
    """Why a KMS key reference is not a customer-managed key; None where it is (or unknown)."""
    if key is None:
        return None  # computed during a preview
    if key == "":
        return f"no KMS key ({when_unset})"
    # `alias/aws/<service>` or its ARN form `arn:aws:kms:<region>:<account>:alias/aws/...`
    if str(key).startswith("alias/aws/") or ":alias/aws/" in str(key):
        return f"uses the AWS managed key {key}, not the environment key"
    return None


@rule("E8", "sns-secrets-kms", "SNS topics and secrets use the environment's KMS key")
def sns_secrets_kms(view: StackView) -> Iterator[Finding]:
    for topic in view.of_type(TOPIC):
        problem = _key_problem(topic.props.get("kmsMasterKeyId", ""), "not encrypted at rest")
        if problem:
            yield topic, f"SNS topic: {problem}"
    for secret in view.of_type(SECRETS_MANAGER_RESOURCE):
        problem = _key_problem(secret.props.get("kmsKeyId", ""), "uses aws/secretsmanager")
        if problem:
            yield secret, f"secret: {problem}"
