"""The Kubernetes objects of a team namespace and of the cluster's storage (pure data).

Each function returns a manifest (apiVersion, kind, metadata, ...) exactly as the API server
takes it; `components/kubernetes_objects.py` creates them through the stack's Kubernetes
provider, and the tests validate the same manifests against the cluster version's schema
and scan them with checkov.
"""

from __future__ import annotations

from typing import Any

from policy.mlops_rules.pod_egress import (
    POD_IDENTITY_AGENT_IPV4,
    POD_IDENTITY_AGENT_IPV6,
    POD_IDENTITY_AGENT_PORT,
)
from stacks.cluster_settings import TeamSettings

Manifest = dict[str, Any]

MANAGED_BY = {"app.kubernetes.io/managed-by": "pulumi"}
GPU_RESOURCE = "nvidia.com/gpu"
# The taint every GPU pool carries, and the toleration a GPU job adds to land there.
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
# Pod Security admission: `baseline` refuses privileged pods and host namespaces; training
# images often run as root, so `restricted` is warned about and audited, not enforced.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}
# What a container requests when its spec names no requests (LimitRange defaultRequest):
# enough for a data loader, small enough that forgetting `resources` cannot hog the quota.
# No default limit: Kubernetes rejects a container whose request exceeds the default limit
# it did not ask for (a job asking for 8 CPUs without a limit would fail against a 2-CPU
# default), and the quota caps requests, which is what the scheduler reserves.
DEFAULT_REQUEST = {"cpu": "500m", "memory": "1Gi"}
DNS_PORT = 53
HTTPS_PORT = 443
TRAINING_SERVICE_ACCOUNT = "training"
DEFAULT_STORAGE_CLASS = "gp3-encrypted"


def _metadata(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **labels}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def namespace(name: str, team: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(name, **{"mlops.platform/team": team}, **POD_SECURITY),
    }


def resource_quota(namespace: str, team: TeamSettings) -> Manifest:
    """What the team's pods may request at once; GPUs are the scarce part. Requests only: a
    quota on limits would make every container state limits or be refused."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _metadata("team-quota", namespace),
        "spec": {
            "hard": {
                f"requests.{GPU_RESOURCE}": str(team.gpus),
                "requests.cpu": team.cpu,
                "requests.memory": team.memory,
            }
        },
    }


def limit_range(namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _metadata("container-defaults", namespace),
        "spec": {"limits": [{"type": "Container", "defaultRequest": DEFAULT_REQUEST}]},
    }


def default_deny(namespace: str) -> Manifest:
    """No traffic in or out unless another policy allows it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata("default-deny", namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def allow_training_traffic(namespace: str) -> Manifest:
    """What a training job needs (policy/mlops_rules/pod_egress.py, checked by rule A7): its
    own pods talk to each other (distributed training), DNS, the Pod Identity agent on the
    node (its credentials; link-local, so no other rule covers it), and HTTPS out (S3, ECR,
    STS and MLflow through the VPC endpoints)."""
    same_namespace: list[dict[str, Any]] = [{"podSelector": {}}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata("allow-training-traffic", namespace),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": same_namespace}],
            "egress": [
                {"to": same_namespace},
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [
                        {"protocol": "UDP", "port": DNS_PORT},
                        {"protocol": "TCP", "port": DNS_PORT},
                    ],
                },
                {
                    "to": [
                        {"ipBlock": {"cidr": f"{POD_IDENTITY_AGENT_IPV4}/32"}},
                        {"ipBlock": {"cidr": f"{POD_IDENTITY_AGENT_IPV6}/128"}},
                    ],
                    "ports": [{"protocol": "TCP", "port": POD_IDENTITY_AGENT_PORT}],
                },
                {"ports": [{"protocol": "TCP", "port": HTTPS_PORT}]},
            ],
        },
    }


def training_service_account(namespace: str) -> Manifest:
    """The identity the team's jobs run as; EKS Pod Identity maps it to the team's IAM role.
    The pod identity webhook mounts its own token, so the API token is not mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(TRAINING_SERVICE_ACCOUNT, namespace),
        "automountServiceAccountToken": False,
    }


def team_manifests(namespace_name: str, team_name: str, team: TeamSettings) -> list[Manifest]:
    """Every object of one team namespace, the namespace first."""
    return [
        namespace(namespace_name, team_name),
        resource_quota(namespace_name, team),
        limit_range(namespace_name),
        default_deny(namespace_name),
        allow_training_traffic(namespace_name),
        training_service_account(namespace_name),
    ]


def encrypted_storage_class(key_arn: Any) -> Manifest:
    """The default StorageClass: gp3 volumes encrypted with the environment key (its ARN, or
    the Output that will hold it), created in the zone of the pod that claims them."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            **_metadata(DEFAULT_STORAGE_CLASS),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": key_arn},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


# checkov findings on the manifests above that are accepted (SECURITY.md A7), check id -> why;
# tests/test_kubernetes_objects.py skips exactly these. None today: checkov's Kubernetes checks
# target workloads and service accounts, and the service accounts pass them.
CHECKOV_ACCEPTED: dict[str, str] = {}
