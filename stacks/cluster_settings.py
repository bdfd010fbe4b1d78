"""The `cluster` stack-file key: the environment's EKS GPU training cluster.

Three modes. `managed`: this stack creates the cluster (control plane, system and GPU node
groups, add-ons, autoscaler, team namespaces). `shared`: the cluster belongs to another stack,
read through a StackReference; this stack creates only its team namespaces there, so an
on-demand environment never waits ~15 minutes for a control plane. `disabled`: no cluster.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from policy.mlops_rules.eks import SUPPORTED_EKS_VERSIONS
from stacks.gpu_instances import NodeShape, node_shape
from stacks.settings_base import InvalidKeys, StackName, StrictModel, matching

# GPU instance families EKS's AL2023 NVIDIA AMI runs on (x86_64), and the GPU each carries:
# the `k8s.amazonaws.com/accelerator` node label cluster-autoscaler reads. Add a family when
# AWS launches one and the AMI supports it.
GPU_ACCELERATORS = {
    "g4dn": "nvidia-tesla-t4",
    "g5": "nvidia-a10g",
    "g6": "nvidia-l4",
    "gr6": "nvidia-l4",
    "g6e": "nvidia-l40s",
    "p4d": "nvidia-a100",
    "p4de": "nvidia-a100",
    "p5": "nvidia-h100",
    "p5e": "nvidia-h200",
    "p5en": "nvidia-h200",
    "p6-b200": "nvidia-b200",
}
AddonName = Literal[
    "vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver"
]
MANAGED_ADDONS: tuple[str, ...] = get_args(AddonName)


def _supported_version(value: str) -> str:
    if value not in SUPPORTED_EKS_VERSIONS:
        supported = ", ".join(SUPPORTED_EKS_VERSIONS)
        raise ValueError(f"EKS version {value!r} is not in standard support ({supported})")
    return value


def _gpu_instance_type(value: str) -> str:
    family, _, size = value.partition(".")
    if family not in GPU_ACCELERATORS or not re.fullmatch(r"[0-9a-z]+", size):
        families = ", ".join(GPU_ACCELERATORS)
        raise ValueError(f"{value!r} is not a GPU instance type (families: {families})")
    if node_shape(value) is None:
        raise ValueError(
            f"{value!r}: its vCPUs, memory and GPUs are not in stacks/gpu_instances.py "
            "(add them from the EC2 accelerated computing specifications)"
        )
    return value


def _allow_listed_cidr(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    # SECURITY.md N5: a public endpoint only to named networks, never to the internet.
    if value.prefixlen == 0:
        raise ValueError(f"{value} opens the API endpoint to the internet; name your networks")
    return value


def _named_network(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    # SECURITY.md N6: no ingress from anywhere.
    if value.prefixlen == 0:
        raise ValueError(f"{value} lets anyone reach the API; name the deployer's networks")
    return value


EksVersion = Annotated[str, AfterValidator(_supported_version)]
GpuInstanceType = Annotated[str, AfterValidator(_gpu_instance_type)]
PublicCidr = Annotated[ipaddress.IPv4Network, AfterValidator(_allow_listed_cidr)]
NamedNetwork = Annotated[ipaddress.IPv4Network, AfterValidator(_named_network)]
SecurityGroupId = Annotated[str, matching(r"sg-[0-9a-f]{8,17}", "sg-0123456789abcdef0")]
Ec2InstanceType = Annotated[str, matching(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "m6i.large")]
# Kubernetes DNS labels; team namespaces and node group names are made from them.
PoolName = Annotated[str, matching(r"[a-z]([a-z0-9-]{0,18}[a-z0-9])?", "gpu-a10g (<= 20 chars)")]
TeamName = Annotated[str, matching(r"[a-z]([a-z0-9-]{0,22}[a-z0-9])?", "research (<= 24 chars)")]
# Kubernetes resource quantities: CPU cores ("64", "500m"), memory ("512Gi").
CpuQuantity = Annotated[str, matching(r"\d+(\.\d+)?m?", "64 or 500m")]
MemoryQuantity = Annotated[str, matching(r"\d+(Ki|Mi|Gi|Ti)", "512Gi")]
RoleArn = Annotated[
    str, matching(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", "arn:aws:iam::<id>:role/name")
]
EcrPath = Annotated[
    str,
    matching(
        r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?(/[a-z0-9._-]+)*",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror",
    ),
]
AddonVersion = Annotated[str, matching(r"v\d+\.\d+\.\d+-eksbuild\.\d+", "v1.19.2-eksbuild.1")]


class SystemNodesSettings(StrictModel):
    """The small on-demand group that runs CoreDNS, the autoscaler and the add-ons."""

    instance_type: Ec2InstanceType = "m6i.large"
    # Two nodes keep CoreDNS and the autoscaler available through a node replacement.
    min_size: int = Field(default=2, ge=1, le=10)
    max_size: int = Field(default=4, ge=1, le=20)
    disk_size_gb: int = Field(default=50, ge=20, le=1000)

    @model_validator(mode="after")
    def _sizes_ordered(self) -> SystemNodesSettings:
        if self.max_size < self.min_size:
            raise InvalidKeys([("max_size", f"must be >= min_size ({self.min_size})")])
        return self


class GpuPoolSettings(StrictModel):
    """One GPU node group. It always has min 0 nodes: an idle pool costs nothing."""

    instance_types: list[GpuInstanceType] = Field(min_length=1, max_length=10)
    capacity: Literal["on_demand", "spot"] = "on_demand"
    max_size: int = Field(ge=1, le=200)
    disk_size_gb: int = Field(default=200, ge=50, le=16384)

    @model_validator(mode="after")
    def _one_gpu_model(self) -> GpuPoolSettings:
        # Jobs select a pool by its GPU; a pool mixing GPUs would make that label a lie.
        gpus = {GPU_ACCELERATORS[t.partition(".")[0]] for t in self.instance_types}
        if len(gpus) > 1:
            raise InvalidKeys(
                [("instance_types", f"mix GPUs ({', '.join(sorted(gpus))}); use one pool per GPU")]
            )
        # cluster-autoscaler builds a pool's node template from its first type only (and EKS
        # launches on-demand types in list order): every type must offer the same node.
        sizes = {(s.vcpus, s.memory_gib, s.gpus): s.instance_type for s in self._shapes()}
        if len(sizes) > 1:
            shown = ", ".join(
                f"{name} ({vcpus} vCPU, {memory} GiB, {gpus} GPU)"
                for (vcpus, memory, gpus), name in sizes.items()
            )
            raise InvalidKeys(
                [
                    (
                        "instance_types",
                        f"differ in size ({shown}); cluster-autoscaler models a pool by its "
                        "first type only: use one pool per size",
                    )
                ]
            )
        return self

    def _shapes(self) -> list[NodeShape]:
        return [shape for t in self.instance_types if (shape := node_shape(t)) is not None]

    @property
    def accelerator(self) -> str:
        return GPU_ACCELERATORS[self.instance_types[0].partition(".")[0]]

    @property
    def node(self) -> NodeShape:
        """What one node of the pool offers (every type offers the same, as checked)."""
        return self._shapes()[0]


class AccessSettings(StrictModel):
    """An EKS access entry: an IAM role and what it may do in the cluster."""

    principal_arn: RoleArn
    policy: Literal["cluster-admin", "admin", "edit", "view"]
    # Namespaces the policy applies to; empty: the whole cluster.
    namespaces: list[TeamName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cluster_admin_is_cluster_wide(self) -> AccessSettings:
        if self.policy == "cluster-admin" and self.namespaces:
            raise InvalidKeys([("namespaces", "cluster-admin applies to the whole cluster")])
        return self


class ApiAccessSettings(StrictModel):
    """Who reaches the private API endpoint: each entry becomes a TCP 443 ingress rule on the
    cluster security group, which otherwise admits only itself (the control plane and nodes).
    The deployer (`pulumi up` installs charts and namespaces through this endpoint) must be
    one of them, or reach the public endpoint through `public_access_cidrs`."""

    # Networks routed to the VPC: a VPN, a peered or transit-gateway-attached CI network.
    cidrs: list[NamedNetwork] = Field(default_factory=list, max_length=20)
    # Security groups in this VPC: a CI runner or bastion in the private subnets.
    security_group_ids: list[SecurityGroupId] = Field(default_factory=list, max_length=5)

    @property
    def empty(self) -> bool:
        return not self.cidrs and not self.security_group_ids


class TeamSettings(StrictModel):
    """A team's namespace and what it may request there at once (a ResourceQuota)."""

    gpus: int = Field(ge=0, le=1024)
    cpu: CpuQuantity = "64"
    memory: MemoryQuantity = "512Gi"


class ClusterSettings(StrictModel):
    mode: Literal["disabled", "managed", "shared"] = "disabled"
    # shared: the stack that owns the cluster (organization/project/stack), same account.
    shared_stack: StackName | None = None
    version: EksVersion = SUPPORTED_EKS_VERSIONS[-1]
    # Who reaches the private API endpoint (see ApiAccessSettings).
    api_access: ApiAccessSettings = Field(default_factory=ApiAccessSettings)
    # Empty: the API endpoint is private only. Otherwise also a public endpoint reachable
    # from these networks only: a first deploy from outside the VPC (README, "Deploying for
    # real"). Prod refuses it unless `public_access_reason` says why.
    public_access_cidrs: list[PublicCidr] = Field(default_factory=list, max_length=40)
    public_access_reason: str | None = Field(default=None, min_length=10, max_length=200)
    access: list[AccessSettings] = Field(default_factory=list)
    system_nodes: SystemNodesSettings = Field(default_factory=SystemNodesSettings)
    gpu_pools: dict[PoolName, GpuPoolSettings] = Field(default_factory=dict)
    # Pinned add-on versions; an add-on not named gets the newest for the cluster version.
    addon_versions: dict[AddonName, AddonVersion] = Field(default_factory=dict)
    # Where nodes pull the add-on images from: None pulls from the upstream registries
    # (needs internet egress); an ECR path (<id>.dkr.ecr.<region>.amazonaws.com/mirror)
    # serves environments whose VPC has no internet path. See README "Image mirror".
    image_registry: EcrPath | None = None
    teams: dict[TeamName, TeamSettings] = Field(default_factory=dict)
    # The Kubeflow training operator runs on the cluster (installed by its owners): cluster-
    # backed training may then span several nodes as a PyTorchJob.
    training_operator: bool = False

    @model_validator(mode="after")
    def _mode_consistent(self) -> ClusterSettings:
        problems = []
        if self.mode == "shared" and self.shared_stack is None:
            problems.append(("shared_stack", "is required when mode is 'shared'"))
        if self.mode != "shared" and self.shared_stack is not None:
            problems.append(("shared_stack", "is only used when mode is 'shared'"))
        if self.mode != "managed":
            managed_only = (
                "gpu_pools",
                "access",
                "public_access_cidrs",
                "public_access_reason",
                "addon_versions",
                "image_registry",
            )
            for key in managed_only:
                if getattr(self, key):
                    problems.append((key, f"is only used when mode is 'managed' ({self.mode})"))
            if not self.api_access.empty:
                problems.append(
                    ("api_access", f"is only used when mode is 'managed' ({self.mode})")
                )
        if self.mode == "disabled" and self.teams:
            problems.append(("teams", "need a cluster: set mode to 'managed' or 'shared'"))
        if self.mode == "managed" and self.api_access.empty and not self.public_access_cidrs:
            problems.append(
                (
                    "api_access",
                    "names no network or security group, and the API endpoint is private: "
                    "nothing outside the cluster could reach it, `pulumi up` included; add "
                    "the deployer's network (api_access.cidrs or security_group_ids) or, for "
                    "a first deploy, public_access_cidrs",
                )
            )
        if self.public_access_reason is not None and not self.public_access_cidrs:
            problems.append(("public_access_reason", "is only used with public_access_cidrs"))
        seen: dict[str, int] = {}
        for index, access in enumerate(self.access):
            if access.principal_arn in seen:
                problems.append(
                    (
                        f"access[{index}].principal_arn",
                        f"is also access[{seen[access.principal_arn]}]: EKS allows one access "
                        "entry per principal (a second fails with a 409 conflict)",
                    )
                )
            seen.setdefault(access.principal_arn, index)
        if problems:
            raise InvalidKeys(problems)
        return self
