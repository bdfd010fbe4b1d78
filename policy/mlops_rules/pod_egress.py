"""What a training pod must reach, and a reader of NetworkPolicy egress that says if it can.

A mock accepts any NetworkPolicy; the VPC CNI's network policy agent enforces it, and a pod
whose policies leave out the Pod Identity agent gets no AWS credentials (every SDK call
fails), one that leaves out DNS resolves nothing. The table below is what a team pod needs,
with its source; `allows` reads the Kubernetes NetworkPolicy semantics (a pod's egress is
allowed if no policy selects it for Egress, or if one selecting it has a rule whose peers
and ports both match) so rule A7 can check each team namespace against the table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KUBE_SYSTEM = "kube-system"
# The EKS Pod Identity agent, a host-network DaemonSet answering on link-local addresses
# (EKS User Guide, "Set up the Amazon EKS Pod Identity Agent": 169.254.170.23 and
# [fd00:ec2::23], port 80). The VPC CNI's policy agent denies link-local traffic a policy
# does not allow (aws/aws-network-policy-agent#120).
POD_IDENTITY_AGENT_IPV4 = "169.254.170.23"
POD_IDENTITY_AGENT_IPV6 = "fd00:ec2::23"
POD_IDENTITY_AGENT_PORT = 80


@dataclass(frozen=True)
class Destination:
    """One thing a pod connects to: an address (hosts, VPC endpoint interfaces) or a pod
    (by its namespace and labels; selectors match pods only, never host-network agents)."""

    what: str
    port: int
    protocol: str = "TCP"
    ip: str | None = None
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def team_pod_needs(namespace: str, vpc_address: str) -> tuple[Destination, ...]:
    """What a pod of a team namespace connects to. `vpc_address`: any private address of
    the VPC, standing for the interface endpoints' network interfaces."""
    dns = {"k8s-app": "kube-dns"}
    return (
        Destination("cluster DNS (UDP)", 53, "UDP", namespace=KUBE_SYSTEM, labels=dns),
        Destination("cluster DNS (TCP)", 53, "TCP", namespace=KUBE_SYSTEM, labels=dns),
        Destination(
            "the Pod Identity agent (IPv4)",
            POD_IDENTITY_AGENT_PORT,
            ip=POD_IDENTITY_AGENT_IPV4,
        ),
        Destination(
            "the Pod Identity agent (IPv6)",
            POD_IDENTITY_AGENT_PORT,
            ip=POD_IDENTITY_AGENT_IPV6,
        ),
        Destination("AWS APIs through the VPC endpoints (HTTPS)", 443, ip=vpc_address),
        # Distributed training: workers of one job talk to each other on any port.
        Destination("the namespace's own pods", 29500, namespace=namespace),
    )


def _labels_match(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A label selector; matchExpressions In/NotIn/Exists/DoesNotExist as Kubernetes does."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(peer: dict[str, Any], source_namespace: str, to: Destination) -> bool:
    block = peer.get("ipBlock")
    if block is not None:
        if to.ip is None:
            return False
        address = ipaddress.ip_address(to.ip)
        network = ipaddress.ip_network(block["cidr"], strict=False)
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(excluded, strict=False)
            for excluded in block.get("except") or []
            if ipaddress.ip_network(excluded, strict=False).version == address.version
        )
    if to.namespace is None:
        return False  # selectors select pods; an address outside the cluster is no pod
    namespace_labels = {"kubernetes.io/metadata.name": to.namespace}
    if "namespaceSelector" in peer:
        if not _labels_match(peer["namespaceSelector"], namespace_labels):
            return False
    elif to.namespace != source_namespace:
        return False  # a podSelector alone selects in the policy's own namespace
    return "podSelector" not in peer or _labels_match(peer["podSelector"], to.labels)


def _port_matches(port: dict[str, Any], to: Destination) -> bool:
    if port.get("protocol", "TCP") != to.protocol:
        return False
    number = port.get("port")
    if number is None:
        return True
    if not isinstance(number, int):
        return False  # a named port: only the destination pod's spec could say
    end = port.get("endPort", number)
    return bool(number <= to.port <= end)


def _rule_matches(egress: dict[str, Any], namespace: str, to: Destination) -> bool:
    peers, ports = egress.get("to"), egress.get("ports")
    peer_ok = not peers or any(_peer_matches(p, namespace, to) for p in peers)
    port_ok = not ports or any(_port_matches(p, to) for p in ports)
    return peer_ok and port_ok


def _selects_for_egress(spec: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else [])
    return "Egress" in types and _labels_match(spec.get("podSelector"), pod_labels)


def allows(
    policies: Iterable[dict[str, Any]],
    namespace: str,
    to: Destination,
    pod_labels: dict[str, str] | None = None,
) -> bool:
    """Whether a pod of `namespace` with `pod_labels` may open a connection to `to` under
    these NetworkPolicy specs (those of its namespace)."""
    labels = pod_labels or {}
    selecting = [spec for spec in policies if _selects_for_egress(spec, labels)]
    if not selecting:
        return True
    return any(
        _rule_matches(egress, namespace, to)
        for spec in selecting
        for egress in spec.get("egress") or []
    )
