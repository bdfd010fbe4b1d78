"""TrainingCluster: an EKS cluster whose GPU node groups scale from and to zero.

The control plane is private (public only to an allow-list), envelope-encrypts secrets with
the environment's data key and sends all five log types to an encrypted log group. A small
on-demand system group runs CoreDNS, the autoscaler and the add-ons; each GPU pool is a
managed node group with min 0 nodes, tainted so only pods that ask for GPUs land there.
Nodes: encrypted root volumes, IMDSv2 with one hop (pods cannot borrow the node's role; they
get their own through EKS Pod Identity), no SSH.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_context import AwsContext
from components.cluster_charts import (
    AUTOSCALER_SERVICE_ACCOUNT,
    CHART_NAMESPACE,
    CLUSTER_AUTOSCALER,
    DCGM_EXPORTER,
    DEVICE_PLUGIN,
    KUBE_STATE_METRICS,
    ON_SYSTEM_NODES,
    ChartPin,
    autoscaler_values,
    dcgm_exporter_values,
    device_plugin_values,
    gpu_node_labels,
    kube_state_metrics_values,
    scale_from_zero_tags,
)
from components.cluster_policies import (
    CLUSTER_ROLE_POLICIES,
    EBS_CSI_POLICY,
    NODE_ROLE_POLICIES,
    autoscaler_policy,
    ebs_key_policy,
    managed_policy_arn,
    pod_identity_trust_policy,
)
from components.key_policies import AUTOSCALING_SERVICE_ROLE
from components.kubeconfig import cluster_provider
from components.kubernetes_objects import create_object
from components.naming import Names
from components.team_manifests import GPU_TAINT, encrypted_storage_class
from components.trust_policies import service_trust_policy
from policy.mlops_rules.eks import CONTROL_PLANE_LOGS
from stacks.cluster_settings import ClusterSettings, GpuPoolSettings

ACCESS_POLICIES = {
    "cluster-admin": "AmazonEKSClusterAdminPolicy",
    "admin": "AmazonEKSAdminPolicy",
    "edit": "AmazonEKSEditPolicy",
    "view": "AmazonEKSViewPolicy",
}
# Add-ons the nodes need to become Ready (networking, service routing, pod credentials)
# come before the node groups; the rest run on nodes, so they come after the system group.
NODE_PREREQUISITE_ADDONS = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
ADDON_CONFIGURATION = {
    # Enforce NetworkPolicy objects (the team namespaces' default deny) in the VPC CNI.
    "vpc-cni": {"enableNetworkPolicy": "true"},
}
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
VOLUME_KEY_OPERATIONS = [
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "DescribeKey",
    "CreateGrant",
]
ROOT_DEVICE = "/dev/xvda"  # AL2023 EKS AMIs
HTTPS = 443
HELM_TIMEOUT_SECONDS = 600


@dataclass
class TrainingClusterArgs:
    settings: ClusterSettings
    context: AwsContext
    names: Names
    subnet_ids: list[pulumi.Output[str]]
    data_key_arn: pulumi.Input[str]
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    # Protected environments (prod) turn on EKS deletion protection: a destroy, or a
    # replacement forced by a changed immutable property, stops instead of killing jobs.
    deletion_protection: bool
    # Cost tags for what node groups launch (instances, volumes, interfaces): the provider's
    # default tags reach the launch template, not the instances launched from it.
    instance_tags: dict[str, str]
    # The role `pulumi up` runs as: it gets a cluster-admin access entry of its own, and the
    # Kubernetes objects below wait for it.
    deployer_role_arn: str
    # No internet path from the nodes: the autoscaler uses its built-in instance list.
    private_network: bool = False


class TrainingCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    # The security group EKS makes for the control plane and nodes to talk to each other.
    cluster_security_group_id: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    kubernetes: k8s.Provider

    def __init__(
        self, name: str, args: TrainingClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlops:cluster:TrainingCluster", name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        cluster = self._create_control_plane()
        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.cluster_security_group_id = cluster.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id or ""
        )
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self._admit_api_clients()
        deployer_access = self._grant_access()
        prerequisites = [self._addon(addon) for addon in NODE_PREREQUISITE_ADDONS]
        node_role = self._node_role()
        # Managed node groups launch through EC2 Auto Scaling, whose service-linked role must
        # be able to use the key that encrypts the root volumes.
        volume_grant = aws.kms.Grant(
            f"{name}-node-volumes-grant",
            key_id=args.data_key_arn,
            grantee_principal=args.context.arn("iam", AUTOSCALING_SERVICE_ROLE, regional=False),
            operations=VOLUME_KEY_OPERATIONS,
            opts=self._child,
        )
        after_prerequisites = pulumi.ResourceOptions(
            parent=self, depends_on=[*prerequisites, volume_grant]
        )
        system = self._system_nodes(node_role, after_prerequisites)
        for pool, pool_settings in sorted(args.settings.gpu_pools.items()):
            self._gpu_pool(pool, pool_settings, node_role, after_prerequisites)
        on_nodes = pulumi.ResourceOptions(parent=self, depends_on=[system])
        self._addon("coredns", on_nodes)
        ebs_csi = self._addon("aws-ebs-csi-driver", on_nodes, self._ebs_csi_role())
        self.kubernetes = cluster_provider(
            f"{name}-kubernetes",
            cluster_name=cluster.name,
            endpoint=cluster.endpoint,
            ca_data=self.certificate_authority,
            region=args.context.region,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[system, *deployer_access]),
        )
        in_cluster = pulumi.ResourceOptions(
            parent=self, provider=self.kubernetes, depends_on=[ebs_csi]
        )
        create_object(
            f"{name}-storage-class", encrypted_storage_class(args.data_key_arn), in_cluster
        )
        self._install_charts(in_cluster)
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
            }
        )

    def _role(
        self, purpose: str, trust: dict[str, Any], managed: tuple[str, ...], description: str
    ) -> aws.iam.Role:
        ctx = self._args.context
        role = aws.iam.Role(
            f"{self._name}-{purpose}-role",
            name=f"{self._args.names.base}-eks-{purpose}",
            assume_role_policy=json.dumps(trust),
            description=description,
            opts=self._child,
        )
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{purpose}-{policy.rsplit('/', 1)[-1]}",
                role=role.name,
                policy_arn=managed_policy_arn(ctx, policy),
                opts=self._child,
            )
        return role

    def _create_control_plane(self) -> aws.eks.Cluster:
        name, args, settings = self._name, self._args, self._args.settings
        cluster_name = args.names.base
        role = self._role(
            "cluster",
            service_trust_policy(args.context, "eks"),
            CLUSTER_ROLE_POLICIES,
            "EKS control plane of the training cluster",
        )
        # EKS writes to this group by name; creating it first gives it our key and retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{cluster_name}/cluster",
            kms_key_id=args.logs_key_arn,
            retention_in_days=args.log_retention_days,
            opts=self._child,
        )
        public_cidrs = [str(cidr) for cidr in settings.public_access_cidrs]
        return aws.eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=settings.version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(public_cidrs),
                public_access_cidrs=public_cidrs or None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=args.data_key_arn),
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # Off: the creator's implicit entry would collide (409) with an explicit one
                # for the same role; the deployer gets its entry from `_grant_access`.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # The managed add-ons below replace the self-managed defaults.
            bootstrap_self_managed_addons=False,
            deletion_protection=args.deletion_protection,
            # Never slide into extended support (six times the control-plane price).
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )

    def _admit_api_clients(self) -> None:
        """The cluster security group admits only itself; the deployer's networks and
        security groups (settings `cluster.api_access`) get HTTPS to the API endpoint."""
        api_access = self._args.settings.api_access
        # (label, CIDR, security group): one source per rule.
        sources: list[tuple[str, str | None, str | None]] = [
            (f"cidr-{index}", str(cidr), None) for index, cidr in enumerate(api_access.cidrs)
        ] + [
            (f"sg-{index}", None, group)
            for index, group in enumerate(api_access.security_group_ids)
        ]
        for label, cidr, group in sources:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-api-from-{label}",
                security_group_id=self.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=HTTPS,
                to_port=HTTPS,
                cidr_ipv4=cidr,
                referenced_security_group_id=group,
                description="Kubernetes API from the deployer's network (cluster.api_access)",
                opts=self._child,
            )

    def _grant_access(self) -> list[pulumi.Resource]:
        """An access entry per `cluster.access` principal, plus the deployer's own
        cluster-admin entry; returns the deployer's (the Kubernetes provider waits for it)."""
        deployer = self._access_entry(
            f"{self._name}-deployer-access", self._args.deployer_role_arn, "cluster-admin", []
        )
        for index, access in enumerate(self._args.settings.access):
            self._access_entry(
                f"{self._name}-access-{index}",
                access.principal_arn,
                access.policy,
                access.namespaces,
            )
        return deployer

    def _access_entry(
        self, name: str, principal: str, policy: str, namespaces: list[str]
    ) -> list[pulumi.Resource]:
        ctx = self._args.context
        entry = aws.eks.AccessEntry(
            name,
            cluster_name=self.cluster_name,
            principal_arn=principal,
            type="STANDARD",
            opts=self._child,
        )
        association = aws.eks.AccessPolicyAssociation(
            f"{name}-policy",
            cluster_name=self.cluster_name,
            principal_arn=entry.principal_arn,
            policy_arn=(
                f"arn:{ctx.partition}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[policy]}"
            ),
            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                type="namespace" if namespaces else "cluster",
                namespaces=namespaces or None,
            ),
            opts=self._child,
        )
        return [entry, association]

    def _addon(
        self,
        addon: str,
        opts: pulumi.ResourceOptions | None = None,
        pod_role: aws.iam.Role | None = None,
    ) -> aws.eks.Addon:
        settings = self._args.settings
        version: pulumi.Input[str] = settings.addon_versions.get(addon) or (  # type: ignore[call-overload]
            aws.eks.get_addon_version_output(
                addon_name=addon,
                kubernetes_version=settings.version,
                most_recent=True,
                # Through the environment's provider (its region and allowed account).
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).version
        )
        configuration = ADDON_CONFIGURATION.get(addon)
        return aws.eks.Addon(
            f"{self._name}-{addon}",
            cluster_name=self.cluster_name,
            addon_name=addon,
            addon_version=version,
            configuration_values=json.dumps(configuration) if configuration else None,
            pod_identity_associations=(
                [{"role_arn": pod_role.arn, "service_account": EBS_CSI_SERVICE_ACCOUNT}]
                if pod_role is not None
                else None
            ),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            opts=opts or self._child,
        )

    def _node_role(self) -> aws.iam.Role:
        return self._role(
            "node",
            service_trust_policy(self._args.context, "ec2"),
            NODE_ROLE_POLICIES,
            "EKS nodes of the training cluster (join, pull images, pod networking)",
        )

    def _ebs_csi_role(self) -> aws.iam.Role:
        role = self._role(
            "ebs-csi",
            pod_identity_trust_policy(
                self._args.context,
                self._args.names.base,
                CHART_NAMESPACE,
                EBS_CSI_SERVICE_ACCOUNT,
            ),
            (EBS_CSI_POLICY,),
            "EBS CSI driver: volumes for PersistentVolumeClaims",
        )
        aws.iam.RolePolicy(
            f"{self._name}-ebs-csi-key",
            role=role.id,
            policy=pulumi.Output.from_input(self._args.data_key_arn).apply(
                lambda arn: json.dumps(ebs_key_policy(arn))
            ),
            opts=self._child,
        )
        return role

    def _launch_template(self, group: str, disk_size_gb: int) -> aws.ec2.LaunchTemplate:
        args = self._args
        tags = {**args.instance_tags, "Name": f"{args.names.base}-{group}"}
        return aws.ec2.LaunchTemplate(
            f"{self._name}-{group}-nodes",
            name=f"{args.names.base}-{group}",
            description=f"Nodes of {args.names.base} {group}: encrypted, IMDSv2, no SSH",
            update_default_version=True,
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": disk_size_gb,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "kms_key_id": args.data_key_arn,
                        "delete_on_termination": "true",
                    },
                }
            ],
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            tag_specifications=[
                {"resource_type": kind, "tags": tags}
                for kind in ("instance", "volume", "network-interface")
            ],
            opts=self._child,
        )

    def _node_group(
        self,
        group: str,
        node_role: aws.iam.Role,
        opts: pulumi.ResourceOptions,
        **group_args: Any,
    ) -> aws.eks.NodeGroup:
        disk_size_gb = group_args.pop("disk_size_gb")
        template = self._launch_template(group, disk_size_gb)
        return aws.eks.NodeGroup(
            f"{self._name}-{group}",
            cluster_name=self.cluster_name,
            node_group_name=f"{self._args.names.base}-{group}",
            node_role_arn=node_role.arn,
            subnet_ids=self._args.subnet_ids,
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            update_config={"max_unavailable": 1},
            # The autoscaler owns the desired size; an update must not reset it.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["scalingConfig.desiredSize"])
            ),
            **group_args,
        )

    def _system_nodes(
        self, node_role: aws.iam.Role, opts: pulumi.ResourceOptions
    ) -> aws.eks.NodeGroup:
        system = self._args.settings.system_nodes
        return self._node_group(
            "system",
            node_role,
            opts,
            disk_size_gb=system.disk_size_gb,
            ami_type="AL2023_x86_64_STANDARD",
            capacity_type="ON_DEMAND",
            instance_types=[system.instance_type],
            scaling_config={
                "min_size": system.min_size,
                "desired_size": system.min_size,
                "max_size": system.max_size,
            },
            labels=ON_SYSTEM_NODES,
        )

    def _gpu_pool(
        self,
        pool: str,
        settings: GpuPoolSettings,
        node_role: aws.iam.Role,
        opts: pulumi.ResourceOptions,
    ) -> None:
        labels = gpu_node_labels(pool, settings.accelerator)
        group = self._node_group(
            f"gpu-{pool}",
            node_role,
            opts,
            disk_size_gb=settings.disk_size_gb,
            ami_type="AL2023_x86_64_NVIDIA",
            capacity_type="SPOT" if settings.capacity == "spot" else "ON_DEMAND",
            instance_types=settings.instance_types,
            # Zero nodes until a pod asks for a GPU; zero again when the work is done.
            scaling_config={"min_size": 0, "desired_size": 0, "max_size": settings.max_size},
            labels=labels,
            taints=[
                {"key": GPU_TAINT["key"], "value": GPU_TAINT["value"], "effect": "NO_SCHEDULE"}
            ],
        )
        # EKS does not copy node group tags to its Auto Scaling group: tag it directly.
        asg_name = group.resources.apply(_first_autoscaling_group)
        for key, value in sorted(scale_from_zero_tags(labels).items()):
            what = re.sub(r"[^a-z0-9]+", "-", key.rsplit("node-template/", 1)[-1].lower())
            aws.autoscaling.Tag(
                f"{self._name}-gpu-{pool}-{what}",
                autoscaling_group_name=asg_name,
                tag={"key": key, "value": value, "propagate_at_launch": False},
                opts=self._child,
            )

    def _install_charts(self, in_cluster: pulumi.ResourceOptions) -> None:
        args, settings = self._args, self._args.settings
        mirror = settings.image_registry
        autoscaler_role = self._role(
            "autoscaler",
            pod_identity_trust_policy(
                args.context, args.names.base, CHART_NAMESPACE, AUTOSCALER_SERVICE_ACCOUNT
            ),
            (),
            "cluster-autoscaler: resizes this cluster's node groups",
        )
        aws.iam.RolePolicy(
            f"{self._name}-autoscaler-policy",
            role=autoscaler_role.id,
            policy=json.dumps(autoscaler_policy(args.context, args.names.base)),
            opts=self._child,
        )
        identity = aws.eks.PodIdentityAssociation(
            f"{self._name}-autoscaler-identity",
            cluster_name=self.cluster_name,
            namespace=CHART_NAMESPACE,
            service_account=AUTOSCALER_SERVICE_ACCOUNT,
            role_arn=autoscaler_role.arn,
            opts=self._child,
        )
        releases: list[tuple[ChartPin, dict[str, Any]]] = [
            (DEVICE_PLUGIN, device_plugin_values(mirror)),
            (DCGM_EXPORTER, dcgm_exporter_values(mirror)),
            (KUBE_STATE_METRICS, kube_state_metrics_values(mirror)),
            (
                CLUSTER_AUTOSCALER,
                autoscaler_values(
                    cluster_name=self.cluster_name,
                    region=args.context.region,
                    version=settings.version,
                    mirror=mirror,
                    static_instance_list=args.private_network,
                ),
            ),
        ]
        # A pod started before its identity association gets no credentials (and IMDS is
        # out of reach at one hop): the autoscaler's release waits for its association.
        waits_for = {CLUSTER_AUTOSCALER.release: [identity]}
        for chart, values in releases:
            k8s.helm.v3.Release(
                f"{self._name}-{chart.release}",
                name=chart.release,
                chart=chart.chart,
                version=chart.version,
                repository_opts={"repo": chart.repository},
                namespace=CHART_NAMESPACE,
                values=values,
                # A failed install or upgrade rolls back instead of leaving a half release.
                atomic=True,
                cleanup_on_fail=True,
                timeout=HELM_TIMEOUT_SECONDS,
                opts=pulumi.ResourceOptions.merge(
                    in_cluster,
                    pulumi.ResourceOptions(depends_on=waits_for.get(chart.release, [])),
                ),
            )


def _first_autoscaling_group(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    """The Auto Scaling group EKS made for a node group (one per managed node group)."""
    groups = resources[0].autoscaling_groups or []
    return str(groups[0].name)
