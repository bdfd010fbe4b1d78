"""The Helm charts every managed training cluster runs, pinned, and their values (pure data).

cluster-autoscaler, not Karpenter, scales the GPU pools: the pools are EKS managed node
groups (EKS rolls their AMIs, the console and `aws eks` show them, their max size caps
spend), and cluster-autoscaler scales exactly those groups from and to zero, reading each
group's labels and taints from EKS. Karpenter would launch instances outside the node groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.team_manifests import GPU_RESOURCE, GPU_TOLERATION


@dataclass(frozen=True)
class ChartPin:
    release: str  # the Helm release name in the cluster
    chart: str
    version: str
    repository: str
    # The chart's main image without its registry host: a mirror serves the same path.
    image_path: str
    upstream_registry: str


DEVICE_PLUGIN = ChartPin(
    release="nvidia-device-plugin",
    chart="nvidia-device-plugin",
    version="0.18.2",
    repository="https://nvidia.github.io/k8s-device-plugin",
    image_path="nvidia/k8s-device-plugin",
    upstream_registry="nvcr.io",
)
DCGM_EXPORTER = ChartPin(
    release="dcgm-exporter",
    chart="dcgm-exporter",
    version="4.8.3",
    repository="https://nvidia.github.io/dcgm-exporter/helm-charts",
    image_path="nvidia/k8s/dcgm-exporter",
    upstream_registry="nvcr.io",
)
CLUSTER_AUTOSCALER = ChartPin(
    release="cluster-autoscaler",
    chart="cluster-autoscaler",
    version="9.50.1",
    repository="https://kubernetes.github.io/autoscaler",
    image_path="autoscaling/cluster-autoscaler",
    upstream_registry="registry.k8s.io",
)
KUBE_STATE_METRICS = ChartPin(
    release="kube-state-metrics",
    chart="kube-state-metrics",
    version="7.2.0",
    repository="https://prometheus-community.github.io/helm-charts",
    image_path="kube-state-metrics/kube-state-metrics",
    upstream_registry="registry.k8s.io",
)
CHARTS = (DEVICE_PLUGIN, DCGM_EXPORTER, KUBE_STATE_METRICS, CLUSTER_AUTOSCALER)
CHART_NAMESPACE = "kube-system"
# cluster-autoscaler's minor version must match the cluster's; one per supported version
# (policy/mlops_rules/eks.py SUPPORTED_EKS_VERSIONS; a test keeps the two in step).
AUTOSCALER_IMAGE_TAGS = {
    "1.31": "v1.31.5",
    "1.32": "v1.32.7",
    "1.33": "v1.33.5",
    "1.34": "v1.34.4",
}
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
# Node labels. The GPU pools carry `nvidia.com/gpu.present` (the device plugin's affinity
# needs it and no feature discovery runs) and cluster-autoscaler's accelerator label (it
# waits for the device plugin instead of scaling up twice); system nodes carry a role.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
POOL_LABEL = "mlops.platform/gpu-pool"
NODE_ROLE_LABEL = "mlops.platform/node-role"
SYSTEM_ROLE = "system"
ON_GPU_NODES = {GPU_PRESENT_LABEL: "true"}
ON_SYSTEM_NODES = {NODE_ROLE_LABEL: SYSTEM_ROLE}


def image_repository(chart: ChartPin, mirror: str | None) -> str:
    """Where nodes pull the chart's image: its upstream registry, or the mirror's copy."""
    return f"{mirror or chart.upstream_registry}/{chart.image_path}"


def device_plugin_values(mirror: str | None) -> dict[str, Any]:
    """Advertises each node's GPUs as `nvidia.com/gpu`; a DaemonSet on GPU nodes only."""
    return {
        "image": {"repository": image_repository(DEVICE_PLUGIN, mirror)},
        "nodeSelector": ON_GPU_NODES,
        "tolerations": [GPU_TOLERATION],
    }


def dcgm_exporter_values(mirror: str | None) -> dict[str, Any]:
    """GPU utilisation, memory and health metrics on :9400 of every GPU node. No
    ServiceMonitor: Amazon Managed Prometheus's scraper reads the service directly."""
    return {
        "image": {"repository": image_repository(DCGM_EXPORTER, mirror)},
        "nodeSelector": ON_GPU_NODES,
        "tolerations": [GPU_TOLERATION],
        "serviceMonitor": {"enabled": False},
    }


def kube_state_metrics_values(mirror: str | None) -> dict[str, Any]:
    """Pod, job and node state as metrics (the managed Prometheus scraper reads them)."""
    return {
        "image": {
            "registry": mirror or KUBE_STATE_METRICS.upstream_registry,
            "repository": KUBE_STATE_METRICS.image_path,
        },
        "nodeSelector": ON_SYSTEM_NODES,
    }


def autoscaler_values(
    *,
    cluster_name: Any,
    region: str,
    version: str,
    mirror: str | None,
    static_instance_list: bool = False,
) -> dict[str, Any]:
    """`static_instance_list`: nodes without internet egress. AWS's guide "Deploy private
    clusters with limited internet access" asks for `--aws-use-static-instance-list=true`
    there (with the sts and autoscaling endpoints, which the network creates)."""
    extra = {"aws-use-static-instance-list": True} if static_instance_list else {}
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {
            "repository": image_repository(CLUSTER_AUTOSCALER, mirror),
            "tag": AUTOSCALER_IMAGE_TAGS[version],
        },
        # EKS Pod Identity gives the service account its role; no IRSA annotation.
        "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_SERVICE_ACCOUNT}},
        "nodeSelector": ON_SYSTEM_NODES,
        "extraArgs": {
            # Spread a burst across pools of the same GPU (spot capacity comes per type).
            "balance-similar-node-groups": True,
            # Pick the pool that wastes the fewest GPUs and CPUs for the pending pods.
            "expander": "least-waste",
            # A GPU node with only DaemonSets on it is idle: give it back after 10 minutes.
            "skip-nodes-with-system-pods": False,
            "scale-down-unneeded-time": "10m",
            "scale-down-delay-after-add": "10m",
            **extra,
        },
    }


def gpu_node_labels(pool: str, accelerator: str) -> dict[str, str]:
    return {GPU_PRESENT_LABEL: "true", ACCELERATOR_LABEL: accelerator, POOL_LABEL: pool}


def scale_from_zero_tags(labels: dict[str, str]) -> dict[str, str]:
    """Auto Scaling group tags that describe an empty GPU pool's future nodes to
    cluster-autoscaler. It also reads them from EKS (eks:DescribeNodegroup), but the tags
    survive its known taint-format bug (kubernetes/autoscaler#6481)."""
    prefix = "k8s.io/cluster-autoscaler/node-template"
    tags = {f"{prefix}/label/{key}": value for key, value in labels.items()}
    tags[f"{prefix}/taint/{GPU_RESOURCE}"] = "true:NoSchedule"
    return tags
