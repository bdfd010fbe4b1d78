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


# --- A7 pod-egress: what a team pod must reach (policy/mlops_rules/pod_egress.py) ---------

EGRESS_RULE = "a7-pod-egress"
AGENT = "169.254.170.23"


def _stack_egress() -> list[dict[str, Any]]:
    (allow,) = [
        m
        for m in team_manifests("research", "research", TeamSettings(gpus=4))
        if m["metadata"]["name"] == "allow-training-traffic"
    ]
    return list(allow["spec"]["egress"])


def _with_egress(egress: list[dict[str, Any]]) -> list[Resource]:
    """The team namespace with its allow policy's egress rules replaced."""
    (allow,) = [
        m
        for m in team_manifests("research", "research", TeamSettings(gpus=4))
        if m["metadata"]["name"] == "allow-training-traffic"
    ]
    return team(**{"allow-training-traffic": {"spec": {**allow["spec"], "egress": egress}}})


def test_the_stacks_team_pods_reach_everything_they_need() -> None:
    assert run(EGRESS_RULE, *team()) == []


def test_pods_without_the_pod_identity_agent_get_no_credentials() -> None:
    # The first wave's policy: same namespace, DNS and 443 only.
    without_agent = [e for e in _stack_egress() if "ipBlock" not in str(e)]
    assert messages(run(EGRESS_RULE, *_with_egress(without_agent))) == [
        "pods of namespace research cannot reach the Pod Identity agent (IPv4) "
        f"({AGENT}, TCP 80): no NetworkPolicy egress rule allows it",
        "pods of namespace research cannot reach the Pod Identity agent (IPv6) "
        "(fd00:ec2::23, TCP 80): no NetworkPolicy egress rule allows it",
    ]


def test_pods_without_dns_fail_and_name_the_port() -> None:
    only_https = [{"ports": [{"protocol": "TCP", "port": 443}]}]
    found = messages(run(EGRESS_RULE, *_with_egress(only_https)))
    assert found[0].startswith(
        "pods of namespace research cannot reach cluster DNS (UDP) (pods in kube-system, UDP 53)"
    )
    assert len(found) == 5  # everything but the HTTPS endpoints


def test_default_deny_alone_blocks_every_need() -> None:
    violations = run(EGRESS_RULE, *team(drop="allow-training-traffic"))
    assert len(violations) == 6


def test_a_namespace_without_policies_lets_everything_out() -> None:
    # Not a team namespace's state (A7 namespace-guardrails fails it), but the semantics hold.
    others = [r for r in team() if not r.type.endswith("NetworkPolicy")]
    assert len(others) < len(team())
    assert run(EGRESS_RULE, *others) == []


def test_non_team_namespaces_are_not_judged() -> None:
    system = resource(
        "kubernetes:core/v1:Namespace", "ops", {"metadata": {"name": "ops", "labels": {}}}
    )
    deny = resource(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "deny",
        {
            "metadata": {"name": "deny", "namespace": "ops"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]},
        },
    )
    assert run(EGRESS_RULE, system, deny) == []
