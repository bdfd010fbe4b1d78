"""Create a manifest (components/team_manifests.py, components/gpu_metrics_config.py) as
its typed pulumi-kubernetes resource.

Typed resources, not `yaml.v2.ConfigGroup`: each object is its own resource in the plan, with
its own diff, and the offline harness records it (ConfigGroup renders in the provider).
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.team_manifests import Manifest

RESOURCE_CLASSES: dict[str, Any] = {
    "Namespace": k8s.core.v1.Namespace,
    "ResourceQuota": k8s.core.v1.ResourceQuota,
    "LimitRange": k8s.core.v1.LimitRange,
    "ServiceAccount": k8s.core.v1.ServiceAccount,
    "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
    "StorageClass": k8s.storage.v1.StorageClass,
    "ClusterRole": k8s.rbac.v1.ClusterRole,
    "ClusterRoleBinding": k8s.rbac.v1.ClusterRoleBinding,
    "Role": k8s.rbac.v1.Role,
    "RoleBinding": k8s.rbac.v1.RoleBinding,
}


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def create_object(
    name: str, manifest: Manifest, opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    """`name` is the Pulumi logical name; the object's own name is in its metadata."""
    kind = manifest["kind"]
    if kind not in RESOURCE_CLASSES:
        raise ValueError(f"no resource class for kind {kind!r}; add it to RESOURCE_CLASSES")
    # Top-level fields become keyword arguments; nested fields keep their API (camelCase)
    # names, which the provider takes as they are.
    fields = {_snake(k): v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    resource: pulumi.CustomResource = RESOURCE_CLASSES[kind](name, opts=opts, **fields)
    return resource
