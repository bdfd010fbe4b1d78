"""The EKS rules (policy/mlops_rules/eks.py): N5, E4, A6 fail on a cluster that breaks them and
pass on one that keeps them."""

from __future__ import annotations

from typing import Any

from policy.mlops_rules import Resource
from tests.policy.helpers import KEY, resource, run

ALL_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


def cluster(name: str = "training", **props: Any) -> Resource:
    """A cluster that keeps every EKS rule; `props` override its inputs."""
    good = {
        "name": name,
        "roleArn": "arn:aws:iam::111122223333:role/eks-cluster",
        "version": "1.33",
        "vpcConfig": {
            "subnetIds": ["subnet-0a", "subnet-0b"],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": False,
        },
        "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY}},
        "enabledClusterLogTypes": ALL_LOGS,
    }
    return resource("aws:eks/cluster:Cluster", name, {**good, **props})


def node_group(template: Resource | None = None, **props: Any) -> Resource:
    spec = {"launchTemplate": {"id": "lt-0abc", "version": "1"}} if template else {}
    return resource(
        "aws:eks/nodeGroup:NodeGroup",
        "gpu-nodes",
        {"clusterName": "training", "scalingConfig": {"minSize": 0, "maxSize": 4}, **spec, **props},
        {"launchTemplate": (template.urn,)} if template else None,
    )


def launch_template(name: str, **props: Any) -> Resource:
    good = {"name": name, "metadataOptions": {"httpTokens": "required"}}
    return resource("aws:ec2/launchTemplate:LaunchTemplate", name, {**good, **props})


def test_n5_flags_public_endpoints_open_to_the_internet() -> None:
    # endpointPublicAccess defaults to true and publicAccessCidrs to 0.0.0.0/0
    default = cluster("default", vpcConfig={"subnetIds": ["subnet-0a"]})
    anywhere = cluster(
        "anywhere",
        vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]},
    )
    found = run("n5-eks-private-endpoint", default, anywhere)
    assert [(v.rule, v.urn) for v in found] == [
        ("n5-eks-private-endpoint", default.urn),
        ("n5-eks-private-endpoint", anywhere.urn),
    ]
    assert "no publicAccessCidrs" in found[0].message
    assert "includes 0.0.0.0/0" in found[1].message


def test_n5_passes_private_or_allow_listed_endpoints_and_unknowns() -> None:
    allow_listed = cluster(
        "allow-listed",
        vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]},
    )
    unknown = cluster(
        "unknown", vpcConfig={"endpointPublicAccess": True, "publicAccessCidrs": None}
    )
    assert run("n5-eks-private-endpoint", cluster(), allow_listed, unknown) == []


def test_e4_flags_clusters_without_secrets_encryption() -> None:
    plain = cluster("plain", encryptionConfig={})
    keyless = cluster("keyless", encryptionConfig={"resources": ["secrets"], "provider": {}})
    found = run("e4-eks-secrets-encryption", plain, keyless)
    assert [(v.rule, v.urn) for v in found] == [
        ("e4-eks-secrets-encryption", plain.urn),
        ("e4-eks-secrets-encryption", keyless.urn),
    ]
    assert "no encryptionConfig" in found[0].message
    assert "provider.keyArn" in found[1].message


def test_e4_passes_encrypted_secrets_and_a_key_unknown_in_a_preview() -> None:
    preview = cluster(
        "preview", encryptionConfig={"resources": ["secrets"], "provider": {"keyArn": None}}
    )
    assert run("e4-eks-secrets-encryption", cluster(), preview) == []


def test_a6_flags_missing_logs_old_versions_and_ssh_to_nodes() -> None:
    quiet = cluster("quiet", enabledClusterLogTypes=["api", "audit"], version="1.29")
    with_key = launch_template("gpu-nodes", keyName="ops-laptop")
    group = node_group(with_key, remoteAccess={"ec2SshKey": "ops-laptop"})
    found = run("a6-eks-logs-version-no-ssh", quiet, group, with_key)
    messages = {(v.rule, v.urn, v.message) for v in found}
    assert messages == {
        (
            "a6-eks-logs-version-no-ssh",
            quiet.urn,
            "control-plane log types not enabled: authenticator, controllerManager, scheduler",
        ),
        (
            "a6-eks-logs-version-no-ssh",
            quiet.urn,
            "Kubernetes version 1.29 not in standard support (1.31, 1.32, 1.33, 1.34)",
        ),
        ("a6-eks-logs-version-no-ssh", group.urn, "node group allows SSH (remoteAccess)"),
        (
            "a6-eks-logs-version-no-ssh",
            with_key.urn,
            "launch template of node group gpu-nodes sets an SSH key",
        ),
    }


def test_a6_passes_logged_supported_clusters_without_ssh() -> None:
    template = launch_template("gpu-nodes")
    # A template no node group uses is not this rule's business.
    unrelated = launch_template("bastion", keyName="ops-laptop")
    resources = (cluster(), node_group(template), template, unrelated)
    assert run("a6-eks-logs-version-no-ssh", *resources) == []


# --- N5 eks-api-reachable: a private API someone can reach, entries that cannot conflict ---

REACHABLE = "n5-eks-api-reachable"
OFF = {
    "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
}


def api_ingress(target: Resource, port: int = 443) -> Resource:
    return resource(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        f"api-from-vpn-{port}",
        {"ipProtocol": "tcp", "fromPort": port, "toPort": port, "cidrIpv4": "10.251.0.0/16"},
        {"securityGroupId": (target.urn,)},
    )


def access_entry(target: Resource, name: str, principal: str) -> Resource:
    return resource(
        "aws:eks/accessEntry:AccessEntry",
        name,
        {"clusterName": "training", "principalArn": principal, "type": "STANDARD"},
        {"clusterName": (target.urn,)},
    )


def test_a_private_api_without_a_path_in_fails() -> None:
    private = cluster(**OFF)
    assert [v.message for v in run(REACHABLE, private)] == [
        "private API endpoint and no 443 ingress on the cluster security group: nothing "
        "outside the cluster (the deployer included) can reach the API"
    ]
    # Another port is no path to the API.
    assert run(REACHABLE, private, api_ingress(private, port=22))
    assert run(REACHABLE, private, api_ingress(private)) == []


def test_two_entries_for_one_principal_fail() -> None:
    private = cluster(**OFF)
    role = "arn:aws:iam::111122223333:role/deployer"
    found = run(
        REACHABLE,
        private,
        api_ingress(private),
        access_entry(private, "deployer", role),
        access_entry(private, "admins", role),
    )
    assert [v.urn.rsplit("::", 1)[-1] for v in found if v.urn] == ["admins"]
    assert "409 conflict" in found[0].message


def test_the_creator_bootstrap_entry_is_refused() -> None:
    # The provider's default bootstraps the creator's entry: it collides with an explicit one.
    private = cluster()
    found = [v.message for v in run(REACHABLE, private, api_ingress(private))]
    assert found == [
        "bootstrapClusterCreatorAdminPermissions is not off: EKS then creates an access entry "
        "for the deployer itself, and the stack's own entry for it conflicts"
    ]
