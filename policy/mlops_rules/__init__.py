"""The invariants of SECURITY.md as plain functions over a stack's resources.

No pulumi_policy import here: the tests run these rules over the offline harness's
recordings, and `policy/pack.py` wraps the same functions into the CrossGuard pack that
`pulumi preview --policy-pack policy` runs.
"""

# Importing a rule module registers its rules.
from . import (  # noqa: F401
    approval,
    eks,
    iam,
    key_use,
    keys_and_logs,
    kubernetes,
    messaging,
    network,
    platform,
    sagemaker,
    storage,
)
from .model import Resource, StackView, Violation
from .registry import RULES, Report, Rule, evaluate

__all__ = ["RULES", "Report", "Resource", "Rule", "StackView", "Violation", "evaluate"]
