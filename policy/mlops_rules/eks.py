"""EKS rules: N5 (private API endpoint, and a path to it for the deployer; access entries
that cannot conflict), E4 (secrets envelope encryption), A6 (control-plane logs, supported
version, no SSH to nodes).

A value present but None is unknown during a preview and never a violation; an absent value
takes the provider default (e.g. `endpointPublicAccess` defaults to true).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import Resource, StackView
from .network import ANYWHERE
from .registry import Finding, rule

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"

CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# Kubernetes versions in EKS standard support. Update with the EKS release calendar
# (https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html): add each new
# version when EKS releases it, drop each one when its standard support ends.
SUPPORTED_EKS_VERSIONS = ("1.31", "1.32", "1.33", "1.34")


@rule("N5", "eks-private-endpoint", "EKS API endpoint private, or public only to an allow-list")
def eks_private_endpoint(view: StackView) -> Iterator[Finding]:
    for cluster in view.of_type(CLUSTER):
        vpc_config = cluster.props.get("vpcConfig")
        if not isinstance(vpc_config, dict):
            continue  # required by the provider: None is unknown during a preview
        public = vpc_config.get("endpointPublicAccess", True)  # the provider default
        if public is not True:
            continue
        cidrs = vpc_config.get("publicAccessCidrs", [])
        if cidrs is None:
            continue
        if not cidrs:
            yield cluster, "public API endpoint open to 0.0.0.0/0 (no publicAccessCidrs)"
        elif any(cidr in ANYWHERE for cidr in cidrs):
            yield cluster, "public API endpoint allow-list includes 0.0.0.0/0"


@rule("E4", "eks-secrets-encryption", "EKS envelope-encrypts Kubernetes secrets with a KMS key")
def eks_secrets_encryption(view: StackView) -> Iterator[Finding]:
    for cluster in view.of_type(CLUSTER):
        encryption = cluster.props.get("encryptionConfig", {})
        if encryption is None:
            continue
        if not encryption:
            yield cluster, "secrets are not envelope-encrypted (no encryptionConfig)"
            continue
        resources = encryption.get("resources", [])
        if resources is not None and "secrets" not in resources:
            yield cluster, "secrets are not envelope-encrypted (encryptionConfig.resources)"
        provider = encryption.get("provider", {})
        if provider is not None and provider.get("keyArn", "") == "":
            yield cluster, "no KMS key for secrets encryption (encryptionConfig.provider.keyArn)"


def _templates_of(view: StackView, group: Resource) -> list[Resource]:
    """The launch templates a node group uses: by property dependency, else by name."""
    spec: Any = group.props.get("launchTemplate")
    if not isinstance(spec, dict):
        return []
    used = set(group.property_dependencies.get("launchTemplate", ()))
    return [
        template
        for template in view.of_type(LAUNCH_TEMPLATE)
        if template.urn in used
        or (isinstance(spec.get("name"), str) and template.props.get("name") == spec["name"])
    ]


@rule("A6", "eks-logs-version-no-ssh", "EKS: all control-plane logs, supported version, no SSH")
def eks_logs_version_no_ssh(view: StackView) -> Iterator[Finding]:
    for cluster in view.of_type(CLUSTER):
        logs = cluster.props.get("enabledClusterLogTypes", [])
        if logs is not None:
            missing = [kind for kind in CONTROL_PLANE_LOGS if kind not in logs]
            if missing:
                yield cluster, f"control-plane log types not enabled: {', '.join(missing)}"
        version = cluster.props.get("version", "")
        if version == "":
            yield cluster, "Kubernetes version not pinned (EKS picks the default)"
        elif version is not None and version not in SUPPORTED_EKS_VERSIONS:
            supported = ", ".join(SUPPORTED_EKS_VERSIONS)
            yield cluster, f"Kubernetes version {version} not in standard support ({supported})"
    for group in view.of_type(NODE_GROUP):
        if group.props.get("remoteAccess"):
            yield group, "node group allows SSH (remoteAccess)"
        for template in _templates_of(view, group):
            if template.props.get("keyName"):
                yield template, f"launch template of node group {group.name} sets an SSH key"


INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
HTTPS = 443


def _admits_api_clients(view: StackView, cluster: Resource) -> bool:
    """Some 443 ingress rule on the cluster's own security group (EKS creates it; it admits
    only itself) lets a caller from outside the cluster in."""
    for ingress in view.dependents(cluster, "securityGroupId", INGRESS_RULE):
        props = ingress.props
        low, high = props.get("fromPort"), props.get("toPort")
        if low is None or high is None or props.get("ipProtocol") in ("-1", None):
            return True  # unknown during a preview, or every port
        if int(low) <= HTTPS <= int(high):
            return True
    return False


@rule(
    "N5",
    "eks-api-reachable",
    "A private EKS API endpoint admits the deployer on 443; one access entry per principal",
)
def eks_api_reachable(view: StackView) -> Iterator[Finding]:
    for cluster in view.of_type(CLUSTER):
        vpc_config = cluster.props.get("vpcConfig")
        if not isinstance(vpc_config, dict):
            continue
        if vpc_config.get("endpointPublicAccess", True) is False and not _admits_api_clients(
            view, cluster
        ):
            yield (
                cluster,
                "private API endpoint and no 443 ingress on the cluster security group: "
                "nothing outside the cluster (the deployer included) can reach the API",
            )
        seen: dict[str, str] = {}
        for entry in view.dependents(cluster, "clusterName", ACCESS_ENTRY):
            principal = entry.props.get("principalArn")
            if not isinstance(principal, str):
                continue  # unknown during a preview
            if principal in seen:
                yield (
                    entry,
                    f"a second access entry for {principal} (also {seen[principal]}): EKS "
                    "refuses it with a 409 conflict",
                )
            seen.setdefault(principal, entry.name)
        access = cluster.props.get("accessConfig") or {}
        # The provider's default is true.
        if access.get("bootstrapClusterCreatorAdminPermissions", True) is True:
            yield (
                cluster,
                "bootstrapClusterCreatorAdminPermissions is not off: EKS then creates an access "
                "entry for the deployer itself, and the stack's own entry for it conflicts",
            )
