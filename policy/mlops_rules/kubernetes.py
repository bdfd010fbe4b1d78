"""Kubernetes rules: A7 (the namespaces the stack creates keep their guardrails).

checkov scans every object the stack creates in the tests (tests/test_kubernetes_objects.py);
this rule checks at preview time what makes a namespace safe to hand to a team: a quota, a
default-deny NetworkPolicy, and service accounts that do not mount API tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import Resource, StackView
from .registry import Finding, rule

NAMESPACE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
BOTH_DIRECTIONS = {"Ingress", "Egress"}


def _metadata(resource: Resource, key: str) -> Any:
    metadata = resource.props.get("metadata")
    return metadata.get(key) if isinstance(metadata, dict) else None


def _in(view: StackView, type_: str, namespace: str) -> list[Resource]:
    return [r for r in view.of_type(type_) if _metadata(r, "namespace") == namespace]


def _denies_all(policy: Resource) -> bool:
    spec = policy.props.get("spec") or {}
    return (
        spec.get("podSelector") == {}
        and set(spec.get("policyTypes") or ()) >= BOTH_DIRECTIONS
        and not spec.get("ingress")
        and not spec.get("egress")
    )


@rule("A7", "namespace-guardrails", "Namespaces: a quota, default deny, no mounted API tokens")
def namespace_guardrails(view: StackView) -> Iterator[Finding]:
    for namespace in view.of_type(NAMESPACE):
        name = _metadata(namespace, "name")
        if name is None:
            continue  # unknown during a preview
        if not _in(view, RESOURCE_QUOTA, name):
            yield namespace, f"namespace {name} has no ResourceQuota"
        if not any(_denies_all(p) for p in _in(view, NETWORK_POLICY, name)):
            yield namespace, f"namespace {name} has no default-deny NetworkPolicy"
    for account in view.of_type(SERVICE_ACCOUNT):
        if account.props.get("automountServiceAccountToken") is not False:
            yield account, "service account mounts its API token (automountServiceAccountToken)"
