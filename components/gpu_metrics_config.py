"""What the training cluster's managed Prometheus scrapes, alerts on and tells (pure data).

Amazon Managed Service for Prometheus scrapes the DCGM exporter (GPU utilisation, memory,
health) and kube-state-metrics; the rules below turn the GPU series into alerts, and the
workspace's Alertmanager sends them to the environment's alert topic.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.team_manifests import MANAGED_BY, Manifest

SCRAPE_INTERVAL = "30s"
SCRAPED_SERVICES = ("dcgm-exporter", "kube-state-metrics")
# The Kubernetes user the managed scraper's role maps to (AWS's documented name).
SCRAPER_USER = "aps-collector-user"
SCRAPER_ROLE = "aps-collector-role"
# A GPU node idle this long outlives the autoscaler's 10-minute scale-down: something holds
# it (a pod that asked for GPUs and does not use them) and it costs money.
IDLE_GPU_MINUTES = 30
GPU_MEMORY_FULL = 0.95
XID_WINDOW = "10m"


def scrape_configuration() -> str:
    """Prometheus scrape configuration: the endpoints of the two exporters' services."""
    jobs = [
        {
            "job_name": service,
            "kubernetes_sd_configs": [{"role": "endpoints"}],
            "relabel_configs": [
                {
                    "source_labels": ["__meta_kubernetes_service_name"],
                    "regex": service,
                    "action": "keep",
                },
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
            ],
        }
        for service in SCRAPED_SERVICES
    ]
    config = {"global": {"scrape_interval": SCRAPE_INTERVAL}, "scrape_configs": jobs}
    return yaml.safe_dump(config, sort_keys=False)


def gpu_alert_rules() -> str:
    """Prometheus alerting rules over the DCGM exporter's series."""
    rules = [
        {
            "alert": "GpuNodeIdle",
            "expr": "max by (node) (DCGM_FI_DEV_GPU_UTIL) == 0",
            "for": f"{IDLE_GPU_MINUTES}m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "GPU node {{ $labels.node }} has run with idle GPUs for "
                f"{IDLE_GPU_MINUTES} minutes",
                "description": "A pod holds the GPUs without using them, or the node is not "
                "being scaled down; it is billed all the same.",
            },
        },
        {
            "alert": "GpuMemoryNearlyFull",
            "expr": "max by (node, gpu) (DCGM_FI_DEV_FB_USED / "
            f"(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)) > {GPU_MEMORY_FULL}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "GPU {{ $labels.gpu }} on {{ $labels.node }} is over "
                f"{GPU_MEMORY_FULL:.0%} of its memory",
                "description": "The next allocation may fail with out-of-memory; lower the "
                "batch size or move the job to a larger GPU.",
            },
        },
        {
            "alert": "GpuXidErrors",
            # DCGM_FI_DEV_XID_ERRORS holds the last XID code seen, not a count (dcgm-exporter
            # default-counters.csv): a new error is a change of that value, and the alert
            # clears once no new one arrives for the window.
            "expr": f"max by (node, gpu) (changes(DCGM_FI_DEV_XID_ERRORS[{XID_WINDOW}])) > 0",
            "for": "0m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "GPU {{ $labels.gpu }} on {{ $labels.node }} reported "
                f"{{{{ $value }}}} new XID error(s) in the last {XID_WINDOW}",
                "description": "A driver or hardware fault: drain the node and let the "
                "autoscaler replace it.",
            },
        },
    ]
    return yaml.safe_dump({"groups": [{"name": "gpu", "rules": rules}]}, sort_keys=False)


def alertmanager_definition(topic_arn: str, region: str) -> str:
    """Every alert to the environment's SNS alert topic, grouped per alert and node."""
    config: dict[str, Any] = {
        "alertmanager_config": yaml.safe_dump(
            {
                "route": {
                    "receiver": "alert-topic",
                    "group_by": ["alertname", "node"],
                    "repeat_interval": "4h",
                },
                "receivers": [
                    {
                        "name": "alert-topic",
                        "sns_configs": [
                            {
                                "topic_arn": topic_arn,
                                "sigv4": {"region": region},
                                "attributes": {"source": "prometheus"},
                            }
                        ],
                    }
                ],
            },
            sort_keys=False,
        )
    }
    return yaml.safe_dump(config, sort_keys=False)


def scraper_access_manifests() -> list[Manifest]:
    """Read-only discovery and metrics access for the managed scraper's Kubernetes user."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": SCRAPER_ROLE, "labels": MANAGED_BY},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": [
                        "nodes",
                        "nodes/proxy",
                        "nodes/metrics",
                        "services",
                        "endpoints",
                        "pods",
                    ],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                },
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": SCRAPER_ROLE, "labels": MANAGED_BY},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": SCRAPER_ROLE,
            },
            "subjects": [
                {"kind": "User", "name": SCRAPER_USER, "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    ]
