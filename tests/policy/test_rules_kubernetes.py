"""The Kubernetes rule (policy/mlops_rules/kubernetes.py, A7) fails a namespace without its
guardrails and passes the team namespaces the stack builds."""

from __future__ import annotations

from typing import Any

from components.team_manifests import team_manifests
from policy.mlops_rules import Resource, Violation
from stacks.cluster_settings import TeamSettings
from tests.policy.helpers import resource, run

RULE = "a7-namespace-guardrails"


def team(drop: str | None = None, **changes: Any) -> list[Resource]:
    """A team namespace as the stack creates it, without the object named `drop`."""
    found = []
    for manifest in team_manifests("research", "research", TeamSettings(gpus=4)):
        name = manifest["metadata"]["name"]
        if name == drop:
            continue
        props = {**manifest, **changes.get(name, {})}
        api = manifest["apiVersion"]
        group = "core/v1" if api == "v1" else api
        found.append(resource(f"kubernetes:{group}:{manifest['kind']}", name, props))
    return found


def messages(violations: list[Violation]) -> list[str]:
    return [v.message for v in violations]


def test_the_stacks_team_namespace_passes() -> None:
    assert run(RULE, *team()) == []


def test_a_namespace_without_a_quota_fails() -> None:
    assert messages(run(RULE, *team(drop="team-quota"))) == [
        "namespace research has no ResourceQuota"
    ]


def test_a_namespace_without_default_deny_fails() -> None:
    assert messages(run(RULE, *team(drop="default-deny"))) == [
        "namespace research has no default-deny NetworkPolicy"
    ]


def test_a_deny_policy_that_allows_something_is_not_default_deny() -> None:
    allowing = {"spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}}
    violations = run(RULE, *team(**{"default-deny": allowing}))
    assert messages(violations) == ["namespace research has no default-deny NetworkPolicy"]


def test_a_service_account_that_mounts_its_token_fails() -> None:
    violations = run(RULE, *team(training={"automountServiceAccountToken": True}))
    assert [v.urn.rsplit("::", 1)[-1] for v in violations if v.urn] == ["training"]
    assert messages(violations) == [
        "service account mounts its API token (automountServiceAccountToken)"
    ]


def test_an_unknown_namespace_name_is_not_judged_in_a_preview() -> None:
    unknown = resource("kubernetes:core/v1:Namespace", "ns", {"metadata": {"name": None}})
    assert run(RULE, unknown) == []
