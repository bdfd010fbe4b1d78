"""The NetworkPolicy egress reader rule A7 relies on: Kubernetes semantics, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from policy.mlops_rules.pod_egress import Destination, allows

AGENT = Destination("agent", 80, ip="169.254.170.23")
ENDPOINT = Destination("endpoint", 443, ip="10.0.1.20")
DNS = Destination("dns", 53, "UDP", namespace="kube-system", labels={"k8s-app": "kube-dns"})
PEER = Destination("peer", 29500, namespace="research", labels={"job": "a"})
DENY_ALL: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def egress(*rules: dict[str, Any], selector: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"podSelector": selector or {}, "policyTypes": ["Egress"], "egress": list(rules)}


def test_no_policy_selecting_the_pod_allows_everything() -> None:
    assert allows([], "research", AGENT)
    only_web = egress(selector={"matchLabels": {"app": "web"}})
    assert allows([only_web], "research", AGENT, pod_labels={"app": "train"})
    assert not allows([only_web], "research", AGENT, pod_labels={"app": "web"})


def test_default_deny_denies_and_a_second_policy_adds_to_it() -> None:
    assert not allows([DENY_ALL], "research", ENDPOINT)
    https = egress({"ports": [{"protocol": "TCP", "port": 443}]})
    assert allows([DENY_ALL, https], "research", ENDPOINT)
    # A port rule with no peers matches every address, but not another port.
    assert not allows([DENY_ALL, https], "research", AGENT)


@pytest.mark.parametrize(
    ("block", "allowed"),
    [
        ({"cidr": "169.254.170.23/32"}, True),
        ({"cidr": "169.254.0.0/16", "except": ["169.254.170.0/24"]}, False),
        ({"cidr": "10.0.0.0/8"}, False),
        ({"cidr": "fd00:ec2::23/128"}, False),  # the IPv6 address is another destination
    ],
)
def test_ip_blocks(block: dict[str, Any], allowed: bool) -> None:
    rule = {"to": [{"ipBlock": block}], "ports": [{"protocol": "TCP", "port": 80}]}
    assert allows([DENY_ALL, egress(rule)], "research", AGENT) is allowed


def test_protocol_and_port_ranges() -> None:
    udp = egress({"ports": [{"protocol": "UDP", "port": 80}]})
    assert not allows([udp], "research", AGENT)
    ranged = egress({"ports": [{"protocol": "TCP", "port": 1, "endPort": 1024}]})
    assert allows([ranged], "research", AGENT)
    named = egress({"ports": [{"protocol": "TCP", "port": "http"}]})
    assert not allows([named], "research", AGENT)


def test_selectors_pick_pods_never_addresses() -> None:
    dns_rule = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ]
    }
    assert allows([egress(dns_rule)], "research", DNS)
    # The host-network agent is no pod: a selector for every pod everywhere misses it.
    everywhere = {"to": [{"namespaceSelector": {}}]}
    assert not allows([egress(everywhere)], "research", AGENT)
    assert allows([egress(everywhere)], "research", DNS)


def test_a_pod_selector_alone_stays_in_its_namespace() -> None:
    same = {"to": [{"podSelector": {}}]}
    assert allows([egress(same)], "research", PEER)
    assert not allows([egress(same)], "forecasting", PEER)
    assert not allows([egress(same)], "research", DNS)


def test_match_expressions() -> None:
    def peer(operator: str, *values: str) -> dict[str, Any]:
        expression: dict[str, Any] = {"key": "job", "operator": operator}
        if values:
            expression["values"] = list(values)
        return egress({"to": [{"podSelector": {"matchExpressions": [expression]}}]})

    assert allows([peer("In", "a", "b")], "research", PEER)
    assert not allows([peer("NotIn", "a")], "research", PEER)
    assert allows([peer("Exists")], "research", PEER)
    assert not allows([peer("DoesNotExist")], "research", PEER)
