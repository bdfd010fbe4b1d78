"""What a GPU node offers a pod: the instance types' size, and what EKS keeps for itself.

cluster-autoscaler models a node group by one instance type (the first of a mixed group, and
AWS launches managed node group types in list order), so the settings refuse pools whose
types differ in vCPUs, memory or GPUs, and check every cluster-backed job against what one
node of some pool can allocate. Neither AWS nor the mocks say so before a job waits forever
for a node that never comes.
"""

from __future__ import annotations

from dataclasses import dataclass

# vCPUs, memory (GiB), NVIDIA GPUs per instance. Source: Amazon EC2 instance types,
# "Specifications for Amazon EC2 accelerated computing instances"
# (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html). A type not listed is refused with
# a message saying where to add it.
GPU_INSTANCE_SPECS: dict[str, tuple[int, int, int]] = {
    # g4dn: NVIDIA T4
    "g4dn.xlarge": (4, 16, 1),
    "g4dn.2xlarge": (8, 32, 1),
    "g4dn.4xlarge": (16, 64, 1),
    "g4dn.8xlarge": (32, 128, 1),
    "g4dn.12xlarge": (48, 192, 4),
    "g4dn.16xlarge": (64, 256, 1),
    "g4dn.metal": (96, 384, 8),
    # g5: NVIDIA A10G
    "g5.xlarge": (4, 16, 1),
    "g5.2xlarge": (8, 32, 1),
    "g5.4xlarge": (16, 64, 1),
    "g5.8xlarge": (32, 128, 1),
    "g5.12xlarge": (48, 192, 4),
    "g5.16xlarge": (64, 256, 1),
    "g5.24xlarge": (96, 384, 4),
    "g5.48xlarge": (192, 768, 8),
    # g6: NVIDIA L4
    "g6.xlarge": (4, 16, 1),
    "g6.2xlarge": (8, 32, 1),
    "g6.4xlarge": (16, 64, 1),
    "g6.8xlarge": (32, 128, 1),
    "g6.12xlarge": (48, 192, 4),
    "g6.16xlarge": (64, 256, 1),
    "g6.24xlarge": (96, 384, 4),
    "g6.48xlarge": (192, 768, 8),
    # gr6: NVIDIA L4, more memory per vCPU
    "gr6.4xlarge": (16, 128, 1),
    "gr6.8xlarge": (32, 256, 1),
    # g6e: NVIDIA L40S
    "g6e.xlarge": (4, 32, 1),
    "g6e.2xlarge": (8, 64, 1),
    "g6e.4xlarge": (16, 128, 1),
    "g6e.8xlarge": (32, 256, 1),
    "g6e.12xlarge": (48, 384, 4),
    "g6e.16xlarge": (64, 512, 1),
    "g6e.24xlarge": (96, 768, 4),
    "g6e.48xlarge": (192, 1536, 8),
    # p4d / p4de: NVIDIA A100
    "p4d.24xlarge": (96, 1152, 8),
    "p4de.24xlarge": (96, 1152, 8),
    # p5 / p5e / p5en: NVIDIA H100 / H200
    "p5.4xlarge": (16, 256, 1),
    "p5.48xlarge": (192, 2048, 8),
    "p5e.48xlarge": (192, 2048, 8),
    "p5en.48xlarge": (192, 2048, 8),
    # p6: NVIDIA B200
    "p6-b200.48xlarge": (192, 2048, 8),
}

# What the kubelet keeps on an EKS AL2023 node. Source: awslabs/amazon-eks-ami, nodeadm
# `internal/kubelet/config.go` (kube-reserved CPU: 6 % of the first core, 1 % of the second,
# 0.5 % of the third and fourth, 0.25 % of the rest; kube-reserved memory 255 MiB + 11 MiB
# per pod; eviction at memory.available < 100Mi). The pod count is bounded from above by the
# EKS recommendation (110 below 30 vCPUs, 250 from 30), so the memory kept is never
# underestimated whatever the ENI limits of the type.
EVICTION_MEMORY_MIB = 100
RESERVED_MEMORY_BASE_MIB, RESERVED_MEMORY_PER_POD_MIB = 255, 11
MAX_PODS_SMALL, MAX_PODS_LARGE, LARGE_NODE_VCPUS = 110, 250, 30
# The DaemonSets on every GPU node (VPC CNI, kube-proxy, Pod Identity agent, EBS CSI node,
# NVIDIA device plugin, DCGM exporter): cluster-autoscaler subtracts their requests from a
# new node. A margin above their chart defaults, so a job that passes here fits there.
DAEMONSET_MILLICPU, DAEMONSET_MEMORY_MIB = 500, 1024


@dataclass(frozen=True)
class NodeShape:
    """What one node of a pool can give the pods of one job."""

    instance_type: str
    vcpus: int
    memory_gib: int
    gpus: int

    @property
    def allocatable_millicpu(self) -> int:
        return self.vcpus * 1000 - _reserved_millicpu(self.vcpus) - DAEMONSET_MILLICPU

    @property
    def allocatable_memory_mib(self) -> int:
        max_pods = MAX_PODS_LARGE if self.vcpus >= LARGE_NODE_VCPUS else MAX_PODS_SMALL
        reserved = RESERVED_MEMORY_BASE_MIB + RESERVED_MEMORY_PER_POD_MIB * max_pods
        return self.memory_gib * 1024 - reserved - EVICTION_MEMORY_MIB - DAEMONSET_MEMORY_MIB

    def describe(self) -> str:
        return (
            f"{self.instance_type}: {self.gpus} GPU, {self.allocatable_millicpu}m CPU and "
            f"{self.allocatable_memory_mib}Mi allocatable"
        )


def _reserved_millicpu(vcpus: int) -> int:
    # Per core, in thousandths of a core: 60, 10, 5, 5, then 2.5 for each further core.
    steps = [60, 10, 5, 5]
    reserved = sum(steps[: min(vcpus, 4)])
    return int(reserved + max(vcpus - 4, 0) * 2.5)


def node_shape(instance_type: str) -> NodeShape | None:
    spec = GPU_INSTANCE_SPECS.get(instance_type)
    if spec is None:
        return None
    vcpus, memory, gpus = spec
    return NodeShape(instance_type, vcpus, memory, gpus)


def millicpu(quantity: str) -> int:
    """A Kubernetes CPU quantity ("4", "2.5", "500m") in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


def memory_mib(quantity: str) -> int:
    """A Kubernetes memory quantity with a binary suffix ("16Gi", "512Mi") in MiB."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    return int(int(quantity[:-2]) * units[quantity[-2:]])
