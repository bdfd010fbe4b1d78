"""SharedCluster: another stack's training cluster, read through a StackReference.

On-demand environments attach to their base environment's cluster instead of waiting for a
control plane of their own; they create only their team namespaces there. The owning stack
must be in the same account (EKS Pod Identity maps roles of the cluster's account).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.kubeconfig import cluster_provider

# The outputs a cluster-owning stack exports and a `shared` environment reads.
CLUSTER_NAME_OUTPUT = "training_cluster_name"
CLUSTER_ENDPOINT_OUTPUT = "training_cluster_endpoint"
CLUSTER_CA_OUTPUT = "training_cluster_certificate_authority"


@dataclass
class SharedClusterArgs:
    stack: str  # organization/project/stack
    region: str


class SharedCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    kubernetes: k8s.Provider

    def __init__(
        self, name: str, args: SharedClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:cluster:SharedCluster", name, None, opts)
        owner = pulumi.StackReference(
            f"{name}-owner", args.stack, opts=pulumi.ResourceOptions(parent=self)
        )
        self.cluster_name = owner.require_output(CLUSTER_NAME_OUTPUT).apply(str)
        self.kubernetes = cluster_provider(
            f"{name}-kubernetes",
            cluster_name=self.cluster_name,
            endpoint=owner.require_output(CLUSTER_ENDPOINT_OUTPUT).apply(str),
            ca_data=owner.require_output(CLUSTER_CA_OUTPUT).apply(str),
            region=args.region,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"clusterName": self.cluster_name})
