"""The Kubernetes provider for a cluster, from its name, endpoint and CA."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def kubeconfig(*, cluster_name: str, endpoint: str, ca_data: str, region: str) -> dict[str, Any]:
    """Authenticates with `aws eks get-token` as whoever runs Pulumi: the deployer's own
    role, which the cluster's access entries (or its creator bootstrap) admit."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


def cluster_provider(
    name: str,
    *,
    cluster_name: pulumi.Input[str],
    endpoint: pulumi.Input[str],
    ca_data: pulumi.Input[str],
    region: str,
    opts: pulumi.ResourceOptions,
) -> k8s.Provider:
    config = pulumi.Output.all(cluster_name, endpoint, ca_data).apply(
        lambda values: json.dumps(
            kubeconfig(cluster_name=values[0], endpoint=values[1], ca_data=values[2], region=region)
        )
    )
    return k8s.Provider(name, kubeconfig=config, opts=opts)
