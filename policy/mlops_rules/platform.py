"""Environment-wide rules: R3 (stateful resources protected in prod), R8 (cost tags, budget)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import types as t
from .model import Resource, StackView, parse_json
from .registry import Finding, rule

STATEFUL_TYPES = (
    t.KMS_KEY,
    t.BUCKET,
    t.ECR_REPOSITORY,
    "aws:sagemaker/featureGroup:FeatureGroup",
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
)
COST_TAGS = ("environment", "owner", "cost-center", "managed-by")


@rule("R3", "protect-stateful-prod", "Prod keys, buckets, repositories, registries are protected")
def protect_stateful(view: StackView) -> Iterator[Finding]:
    if not view.is_prod:
        return
    for resource in view.of_type(*STATEFUL_TYPES):
        if not resource.protect:
            yield resource, "stateful resource is not protected"
        if resource.retain_on_delete is False:
            yield resource, "stateful resource is not retained on delete"


def _tags(resource: Resource) -> dict[str, Any]:
    default_tags = parse_json((resource.provider_props or {}).get("defaultTags")) or {}
    return {**(default_tags.get("tags") or {}), **(resource.props.get("tags") or {})}


@rule("R8", "cost-tags", "Every AWS resource carries the environment/owner/cost tags")
def cost_tags(view: StackView) -> Iterator[Finding]:
    for resource in view.resources:
        if not resource.type.startswith("aws:"):
            continue
        missing = [tag for tag in COST_TAGS if tag not in _tags(resource)]
        if missing:
            yield resource, f"missing cost tags: {', '.join(missing)}"


@rule("R8", "budget-alerts", "The environment has a cost budget that alerts someone")
def budget_alerts(view: StackView) -> Iterator[Finding]:
    budgets = view.of_type(t.BUDGET)
    if not budgets:
        yield None, "the environment has no AWS Budget"
    for budget in budgets:
        notifications = budget.props.get("notifications") or []
        if not any(
            n.get("subscriberEmailAddresses") or n.get("subscriberSnsTopicArns")
            for n in notifications
        ):
            yield budget, "budget has no alert with a subscriber"
