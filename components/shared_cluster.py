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
# Its security group: what reaches the private API endpoint (the cluster training launcher).
CLUSTER_SECURITY_GROUP_OUTPUT = "training_cluster_security_group_id"


@dataclass
class SharedClusterArgs:
    stack: str  # organization/project/stack
    region: str


class SharedCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    kubernetes: k8s.Provider

    def __init__(
        self, name: str, args: SharedClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:cluster:SharedCluster", name, None, opts)
        owner = pulumi.StackReference(
            f"{name}-owner", args.stack, opts=pulumi.ResourceOptions(parent=self)
        )
        self._owner = owner
        self.cluster_name = owner.require_output(CLUSTER_NAME_OUTPUT).apply(str)
        self.endpoint = owner.require_output(CLUSTER_ENDPOINT_OUTPUT).apply(str)
        self.certificate_authority = owner.require_output(CLUSTER_CA_OUTPUT).apply(str)
        self.kubernetes = cluster_provider(
            f"{name}-kubernetes",
            cluster_name=self.cluster_name,
            endpoint=self.endpoint,
            ca_data=self.certificate_authority,
            region=args.region,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"clusterName": self.cluster_name})

    def security_group_id(self) -> pulumi.Output[str]:
        """Read only where needed: owners deployed before it was exported lack it."""
        return self._owner.require_output(CLUSTER_SECURITY_GROUP_OUTPUT).apply(str)
