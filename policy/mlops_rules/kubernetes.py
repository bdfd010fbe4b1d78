"""Kubernetes rules: A7 (the namespaces the stack creates keep their guardrails, and their
pods can still do their work).

checkov scans every object the stack creates in the tests (tests/test_kubernetes_objects.py);
these rules check at preview time what makes a namespace safe to hand to a team (a quota, a
default-deny NetworkPolicy, service accounts that do not mount API tokens) and that its
NetworkPolicies still let a pod reach what it needs (pod_egress.team_pod_needs).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from . import types as t
from .model import Resource, StackView
from .pod_egress import allows, team_pod_needs
from .registry import Finding, rule

NAMESPACE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
BOTH_DIRECTIONS = {"Ingress", "Egress"}
TEAM_LABEL = "mlops.platform/team"
# Stands for the VPC endpoints' interfaces when the VPC's range is not in the view.
DEFAULT_VPC_ADDRESS = "10.0.0.10"


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


def _vpc_address(view: StackView) -> str:
    for vpc in view.of_type(t.VPC):
        cidr = vpc.props.get("cidrBlock")
        if isinstance(cidr, str):
            return str(ipaddress.ip_network(cidr, strict=False).network_address + 10)
    return DEFAULT_VPC_ADDRESS


@rule("A7", "pod-egress", "Team namespaces' policies let pods reach DNS, credentials, AWS APIs")
def pod_egress(view: StackView) -> Iterator[Finding]:
    address = _vpc_address(view)
    for namespace in view.of_type(NAMESPACE):
        name, labels = _metadata(namespace, "name"), _metadata(namespace, "labels") or {}
        if name is None or TEAM_LABEL not in labels:
            continue
        specs = [p.props.get("spec") or {} for p in _in(view, NETWORK_POLICY, name)]
        for need in team_pod_needs(name, address):
            if not allows(specs, name, need):
                where = need.ip or f"pods in {need.namespace}"
                yield (
                    namespace,
                    f"pods of namespace {name} cannot reach {need.what} ({where}, "
                    f"{need.protocol} {need.port}): no NetworkPolicy egress rule allows it",
                )
