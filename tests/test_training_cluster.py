"""TrainingCluster and TeamNamespaces under the offline harness: a private, encrypted,
logged EKS control plane; GPU pools that scale from and to zero; hardened launch templates;
managed add-ons and pinned Helm charts; per-team namespaces with quotas, default deny and an
identity scoped to the team's prefix; and the `shared` and `disabled` modes."""

from __future__ import annotations

import functools
import json
from typing import Any

from components.cluster_charts import (
    AUTOSCALER_IMAGE_TAGS,
    CHARTS,
    CLUSTER_AUTOSCALER,
)
from components.environment import cost_tags
from policy.mlops_rules import reachability
from policy.mlops_rules.eks import CONTROL_PLANE_LOGS
from stacks import outputs
from stacks.cluster_settings import MANAGED_ADDONS
from stacks.offline import FAKE_ADDON_VERSION, StackRecording, evaluate_config
from stacks.policy_check import check
from tests.conftest import stack_config

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ADDON = "aws:eks/addon:Addon"
ASG_TAG = "aws:autoscaling/tag:Tag"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
POD_IDENTITY = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
RELEASE = "kubernetes:helm.sh/v3:Release"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
KEY = "mlops-platform:cluster"
NODE_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"
PUBLIC_CIDR = "203.0.113.0/24"
PINNED_VPC_CNI = "v1.19.2-eksbuild.1"
SHARED_STACK = "acme/mlops-platform/dev"
SHARED_TEAMS = {"research": {"gpus": 2}, "vision": {"gpus": 1, "memory": "64Gi"}}
# What only a cluster's nodes call (the pipelines' jobs need the rest too).
CLUSTER_ENDPOINT_SERVICES = reachability.services_for(
    {reachability.CLUSTER_NODES}
) - reachability.services_for({reachability.SAGEMAKER_JOBS})


@functools.cache
def public_endpoint() -> StackRecording:
    """test with an allow-listed public endpoint and the VPC CNI pinned."""
    config = stack_config("test")
    config[KEY].update(
        public_access_cidrs=[PUBLIC_CIDR], addon_versions={"vpc-cni": PINNED_VPC_CNI}
    )
    return evaluate_config("test", config)


@functools.cache
def shared() -> StackRecording:
    """dev attached to another stack's cluster: only its teams' namespaces there."""
    config = stack_config("dev")
    config[KEY] = {"mode": "shared", "shared_stack": SHARED_STACK, "teams": SHARED_TEAMS}
    return evaluate_config("dev", config)


@functools.cache
def disabled() -> StackRecording:
    config = stack_config("dev")
    del config[KEY]
    return evaluate_config("dev", config)


def _cluster(recording: StackRecording) -> dict[str, Any]:
    (cluster,) = recording.of_type(CLUSTER)
    return cluster.inputs


def _node_groups(recording: StackRecording) -> dict[str, Any]:
    """Node groups by their name without the cluster prefix (`system`, `gpu-a10g`)."""
    prefix = f"mlops-{recording.stack}-"
    return {
        g.inputs["nodeGroupName"].removeprefix(prefix): g for g in recording.of_type(NODE_GROUP)
    }


def _addons(recording: StackRecording) -> dict[str, Any]:
    return {a.inputs["addonName"]: a for a in recording.of_type(ADDON)}


def _releases(recording: StackRecording) -> dict[str, Any]:
    return {r.inputs["name"]: r for r in recording.of_type(RELEASE)}


def _statements(recording: StackRecording, policy_name: str) -> dict[str, dict[str, Any]]:
    policy = json.loads(recording.named(policy_name).inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


# --- control plane -------------------------------------------------------------------------


def test_cluster_is_private_encrypted_and_fully_logged(recording: StackRecording) -> None:
    cluster = _cluster(recording)
    assert cluster["name"] == f"mlops-{recording.stack}"
    assert cluster["version"] == recording.settings.cluster.version
    assert cluster["vpcConfig"] == {
        "endpointPrivateAccess": True,
        "endpointPublicAccess": False,
        "subnetIds": recording.outputs[outputs.PRIVATE_SUBNET_IDS],
    }
    assert cluster["encryptionConfig"] == {
        "resources": ["secrets"],
        "provider": {"keyArn": recording.outputs[outputs.DATA_KEY_ARN]},
    }
    assert sorted(cluster["enabledClusterLogTypes"]) == sorted(CONTROL_PLANE_LOGS)
    assert len(CONTROL_PLANE_LOGS) == 5
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}
    assert cluster["bootstrapSelfManagedAddons"] is False


def test_deletion_protection_where_the_stack_is_protected(recording: StackRecording) -> None:
    protect = recording.settings.protection.protect
    assert _cluster(recording)["deletionProtection"] is protect
    assert protect is (recording.stack == "prod")


def test_control_plane_logs_go_to_an_encrypted_group_created_first(
    recording: StackRecording,
) -> None:
    (cluster,) = recording.of_type(CLUSTER)
    group = recording.named("mlops-cluster-control-plane-logs")
    assert group.inputs["name"] == f"/aws/eks/mlops-{recording.stack}/cluster"
    assert group.inputs["kmsKeyId"] == recording.outputs[outputs.LOGS_KEY_ARN]
    assert group.inputs["retentionInDays"] == recording.settings.logging.retention_days
    # EKS creates the group itself (unencrypted, kept forever) unless ours exists first.
    assert group.urn in cluster.depends_on


def test_public_endpoint_only_to_the_allow_list() -> None:
    vpc_config = _cluster(public_endpoint())["vpcConfig"]
    assert vpc_config["endpointPublicAccess"] is True
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["publicAccessCidrs"] == [PUBLIC_CIDR]


def test_access_entries_follow_the_stack_file(recording: StackRecording) -> None:
    config = stack_config(recording.stack)
    deployer = {
        "principal_arn": config["mlops-platform:deployer_role_arn"],
        "policy": "cluster-admin",
    }
    access = [deployer, *config[KEY]["access"]]
    cluster = recording.named("mlops-cluster")
    # The cluster's own entries (the managed Prometheus scraper's is tested with GpuMetrics,
    # the cluster training launcher's with ClusterTraining).
    entries = {
        e.inputs["principalArn"]: e.inputs
        for e in recording.descendants(cluster)
        if e.type == ACCESS_ENTRY
    }
    associations = {
        a.inputs["principalArn"]: a.inputs
        for a in recording.descendants(cluster)
        if a.type == ACCESS_POLICY
    }
    assert set(entries) == set(associations) == {a["principal_arn"] for a in access}
    assert len(entries) == len(access)
    suffixes = {
        "cluster-admin": "AmazonEKSClusterAdminPolicy",
        "admin": "AmazonEKSAdminPolicy",
        "edit": "AmazonEKSEditPolicy",
        "view": "AmazonEKSViewPolicy",
    }
    for wanted in access:
        entry, association = entries[wanted["principal_arn"]], associations[wanted["principal_arn"]]
        assert entry["clusterName"] == association["clusterName"] == f"mlops-{recording.stack}"
        assert entry["type"] == "STANDARD"
        assert association["policyArn"] == (
            f"arn:aws:eks::aws:cluster-access-policy/{suffixes[wanted['policy']]}"
        )
        namespaces = wanted.get("namespaces")
        if namespaces:
            assert association["accessScope"] == {"type": "namespace", "namespaces": namespaces}
        else:
            assert association["accessScope"] == {"type": "cluster"}


def test_dev_grants_edit_in_one_namespace_only(dev: StackRecording) -> None:
    scopes = {
        a.inputs["principalArn"].rsplit("/", 1)[-1]: a.inputs["accessScope"]
        for a in dev.of_type(ACCESS_POLICY)
    }
    assert scopes == {
        "mlops-deployer": {"type": "cluster"},
        "ml-platform-admins": {"type": "cluster"},
        "data-scientists": {"type": "namespace", "namespaces": ["research"]},
    }


def test_the_creator_gets_no_implicit_entry(recording: StackRecording) -> None:
    # EKS's creator bootstrap would make an entry for the deployer that collides (409) with
    # its explicit one.
    access_config = _cluster(recording)["accessConfig"]
    assert access_config == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }


def test_kubernetes_objects_wait_for_the_deployers_access(recording: StackRecording) -> None:
    (provider,) = [
        p for p in recording.of_type(K8S_PROVIDER) if p.name == "mlops-cluster-kubernetes"
    ]
    deployer_entries = {
        r.urn for r in recording.resources if r.name.startswith("mlops-cluster-deployer-access")
    }
    assert len(deployer_entries) == 2  # the entry and its cluster-admin association
    assert deployer_entries <= set(provider.depends_on)


def test_the_deployers_networks_reach_the_private_api(recording: StackRecording) -> None:
    api_access = recording.settings.cluster.api_access
    cluster = recording.named("mlops-cluster-eks")
    rules = [
        r
        for r in recording.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("mlops-cluster-api-from-")
    ]
    assert sorted(r.inputs.get("cidrIpv4") for r in rules) == sorted(
        str(c) for c in api_access.cidrs
    )
    for rule in rules:
        assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
            "tcp",
            443,
            443,
        )
        # On the security group EKS made for this cluster.
        assert cluster.urn in rule.property_dependencies["securityGroupId"]


def test_a_runner_security_group_gets_its_own_rule() -> None:
    config = stack_config("prod")
    config[KEY]["api_access"] = {"security_group_ids": ["sg-0123456789abcdef0"]}
    recording = evaluate_config("prod", config)
    (rule,) = [
        r
        for r in recording.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.name.startswith("mlops-cluster-api-from-")
    ]
    assert rule.inputs["referencedSecurityGroupId"] == "sg-0123456789abcdef0"
    assert rule.inputs["fromPort"] == 443


# --- node groups and launch templates ------------------------------------------------------


def test_system_group_is_on_demand_and_sized_by_settings(recording: StackRecording) -> None:
    system_settings = recording.settings.cluster.system_nodes
    system = _node_groups(recording)["system"]
    assert system.inputs["capacityType"] == "ON_DEMAND"
    assert system.inputs["instanceTypes"] == [system_settings.instance_type]
    assert system.inputs["scalingConfig"] == {
        "minSize": system_settings.min_size,
        "desiredSize": system_settings.min_size,
        "maxSize": system_settings.max_size,
    }
    assert system.inputs["labels"] == {"mlops.platform/node-role": "system"}
    assert "taints" not in system.inputs


def test_every_gpu_pool_scales_from_zero(recording: StackRecording) -> None:
    pools = recording.settings.cluster.gpu_pools
    groups = _node_groups(recording)
    assert set(groups) == {"system", *(f"gpu-{pool}" for pool in pools)}
    for pool, settings in pools.items():
        group = groups[f"gpu-{pool}"].inputs
        assert group["amiType"] == "AL2023_x86_64_NVIDIA"
        assert group["instanceTypes"] == settings.instance_types
        assert group["scalingConfig"] == {
            "minSize": 0,
            "desiredSize": 0,
            "maxSize": settings.max_size,
        }
        expected_capacity = "SPOT" if settings.capacity == "spot" else "ON_DEMAND"
        assert group["capacityType"] == expected_capacity
        assert group["taints"] == [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
        ]
        assert group["labels"]["nvidia.com/gpu.present"] == "true"
        assert group["labels"]["k8s.amazonaws.com/accelerator"] == settings.accelerator
        assert group["labels"]["mlops.platform/gpu-pool"] == pool


def test_pool_capacity_and_accelerators_per_stack(
    dev: StackRecording, test_stack: StackRecording, prod: StackRecording
) -> None:
    def pools(recording: StackRecording) -> dict[str, tuple[str, str]]:
        return {
            name: (g.inputs["capacityType"], g.inputs["labels"]["k8s.amazonaws.com/accelerator"])
            for name, g in _node_groups(recording).items()
            if name != "system"
        }

    assert pools(dev) == {"gpu-a10g": ("SPOT", "nvidia-a10g")}
    assert pools(test_stack) == {"gpu-a10g": ("ON_DEMAND", "nvidia-a10g")}
    assert pools(prod) == {
        "gpu-l40s": ("ON_DEMAND", "nvidia-l40s"),
        "gpu-l40s-x4": ("ON_DEMAND", "nvidia-l40s"),
        "gpu-h100": ("ON_DEMAND", "nvidia-h100"),
    }


def test_node_groups_keep_the_autoscalers_size_and_allow_no_ssh(
    recording: StackRecording,
) -> None:
    for group in recording.of_type(NODE_GROUP):
        assert "scalingConfig.desiredSize" in group.ignore_changes, group.name
        assert "remoteAccess" not in group.inputs, group.name
        assert group.inputs["subnetIds"] == recording.outputs[outputs.PRIVATE_SUBNET_IDS]


def test_launch_templates_enforce_imdsv2_and_encrypted_roots(recording: StackRecording) -> None:
    templates = recording.of_type(LAUNCH_TEMPLATE)
    assert len(templates) == len(recording.of_type(NODE_GROUP))
    tags = cost_tags(recording.stack, recording.settings)
    assert tags["environment"] == recording.stack
    for template in templates:
        inputs = template.inputs
        assert inputs["metadataOptions"]["httpTokens"] == "required"
        assert inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert "keyName" not in inputs
        (root,) = inputs["blockDeviceMappings"]
        assert root["ebs"]["encrypted"] == "true"
        assert root["ebs"]["kmsKeyId"] == recording.outputs[outputs.DATA_KEY_ARN]
        kinds = {spec["resourceType"] for spec in inputs["tagSpecifications"]}
        assert kinds == {"instance", "volume", "network-interface"}
        for spec in inputs["tagSpecifications"]:
            assert spec["tags"] == {**tags, "Name": inputs["name"]}


def test_launch_template_disk_sizes_follow_settings(prod: StackRecording) -> None:
    cluster = prod.settings.cluster
    sizes = {
        t.inputs["name"]: t.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"]
        for t in prod.of_type(LAUNCH_TEMPLATE)
    }
    assert sizes == {
        "mlops-prod-system": cluster.system_nodes.disk_size_gb,
        "mlops-prod-gpu-l40s": cluster.gpu_pools["l40s"].disk_size_gb,
        "mlops-prod-gpu-l40s-x4": cluster.gpu_pools["l40s-x4"].disk_size_gb,
        "mlops-prod-gpu-h100": 1000,
    }


def test_each_node_group_launches_from_its_own_template(recording: StackRecording) -> None:
    templates = {t.urn: t for t in recording.of_type(LAUNCH_TEMPLATE)}
    for group in recording.of_type(NODE_GROUP):
        (template_urn,) = group.property_dependencies["launchTemplate"]
        template = templates[template_urn]
        assert template.inputs["name"] == group.inputs["nodeGroupName"]
        assert group.inputs["launchTemplate"]["id"].startswith("lt-")
        assert group.inputs["launchTemplate"]["version"] == str(template.outputs["latestVersion"])


def test_gpu_pools_tag_their_auto_scaling_groups_for_scale_from_zero(
    recording: StackRecording,
) -> None:
    groups = _node_groups(recording)
    tags = recording.of_type(ASG_TAG)
    pools = recording.settings.cluster.gpu_pools
    # Three labels and one taint per pool.
    assert len(tags) == 4 * len(pools)
    for pool, settings in pools.items():
        group = groups[f"gpu-{pool}"]
        asg = group.outputs["resources"][0]["autoscalingGroups"][0]["name"]
        on_group = {
            t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
            for t in tags
            if t.inputs["autoscalingGroupName"] == asg
        }
        assert on_group == {
            f"{NODE_TEMPLATE}/label/nvidia.com/gpu.present": "true",
            f"{NODE_TEMPLATE}/label/k8s.amazonaws.com/accelerator": settings.accelerator,
            f"{NODE_TEMPLATE}/label/mlops.platform/gpu-pool": pool,
            f"{NODE_TEMPLATE}/taint/nvidia.com/gpu": "true:NoSchedule",
        }
    assert all(t.inputs["tag"]["propagateAtLaunch"] is False for t in tags)


# --- add-ons ------------------------------------------------------------------------------


def test_five_managed_addons_at_the_newest_version(recording: StackRecording) -> None:
    addons = _addons(recording)
    assert set(addons) == set(MANAGED_ADDONS)
    assert len(MANAGED_ADDONS) == 5
    for addon in addons.values():
        assert addon.inputs["addonVersion"] == FAKE_ADDON_VERSION
        assert addon.inputs["clusterName"] == f"mlops-{recording.stack}"


def test_pinned_addon_version_wins() -> None:
    versions = {name: a.inputs["addonVersion"] for name, a in _addons(public_endpoint()).items()}
    assert versions == {
        **dict.fromkeys(MANAGED_ADDONS, FAKE_ADDON_VERSION),
        "vpc-cni": PINNED_VPC_CNI,
    }


def test_vpc_cni_enforces_network_policies(recording: StackRecording) -> None:
    addons = _addons(recording)
    assert json.loads(addons["vpc-cni"].inputs["configurationValues"]) == {
        "enableNetworkPolicy": "true"
    }
    assert all(
        "configurationValues" not in a.inputs for name, a in addons.items() if name != "vpc-cni"
    )


def test_ebs_csi_driver_runs_as_its_own_pod_identity(recording: StackRecording) -> None:
    addons = _addons(recording)
    role = recording.named("mlops-cluster-ebs-csi-role")
    assert addons["aws-ebs-csi-driver"].inputs["podIdentityAssociations"] == [
        {"serviceAccount": "ebs-csi-controller-sa", "roleArn": role.outputs["arn"]}
    ]
    assert all(
        "podIdentityAssociations" not in a.inputs
        for name, a in addons.items()
        if name != "aws-ebs-csi-driver"
    )


def test_addons_and_node_groups_come_up_in_order(recording: StackRecording) -> None:
    addons = _addons(recording)
    groups = _node_groups(recording)
    system = groups["system"]
    # Pods of these add-ons need a node to run on.
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert system.urn in addons[name].depends_on, name
    # Nodes need networking, service routing and pod credentials to become Ready.
    for group in groups.values():
        for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
            assert addons[name].urn in group.depends_on, (group.name, name)
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert system.urn not in addons[name].depends_on, name


# --- Helm charts and the autoscaler ---------------------------------------------------------


def test_exactly_the_pinned_charts_in_kube_system(recording: StackRecording) -> None:
    releases = _releases(recording)
    assert {
        name: (r.inputs["chart"], r.inputs["version"], r.inputs["repositoryOpts"]["repo"])
        for name, r in releases.items()
    } == {c.release: (c.chart, c.version, c.repository) for c in CHARTS}
    for release in releases.values():
        assert release.inputs["namespace"] == "kube-system"
        assert release.inputs["atomic"] is True


def test_autoscaler_targets_this_cluster_with_a_matching_image(recording: StackRecording) -> None:
    values = _releases(recording)[CLUSTER_AUTOSCALER.release].inputs["values"]
    assert values["cloudProvider"] == "aws"
    assert values["autoDiscovery"] == {"clusterName": f"mlops-{recording.stack}"}
    assert values["awsRegion"] == recording.settings.aws.region
    assert values["image"]["tag"] == AUTOSCALER_IMAGE_TAGS[recording.settings.cluster.version]
    assert values["image"]["tag"].startswith(f"v{recording.settings.cluster.version}.")
    assert values["rbac"]["serviceAccount"]["name"] == "cluster-autoscaler"


def _image(values: dict[str, Any]) -> str:
    """A chart's image: one `repository` value, or `registry` and `repository` apart."""
    image = values["image"]
    return (
        f"{image['registry']}/{image['repository']}" if "registry" in image else image["repository"]
    )


def test_images_come_from_the_mirror_without_internet_egress(
    dev: StackRecording, test_stack: StackRecording, prod: StackRecording
) -> None:
    upstream = {c.release: f"{c.upstream_registry}/{c.image_path}" for c in CHARTS}
    dev_images = {n: _image(r.inputs["values"]) for n, r in _releases(dev).items()}
    assert dev_images == upstream
    for recording in (test_stack, prod):
        mirror = recording.settings.cluster.image_registry
        assert mirror is not None
        images = {n: _image(r.inputs["values"]) for n, r in _releases(recording).items()}
        assert images == {c.release: f"{mirror}/{c.image_path}" for c in CHARTS}
        assert all(image.startswith(f"{mirror}/") for image in images.values())


def test_charts_use_the_clusters_kubernetes_provider(recording: StackRecording) -> None:
    provider = recording.named("mlops-cluster-kubernetes")
    assert provider.type == K8S_PROVIDER
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["current-context"] == f"mlops-{recording.stack}"
    kubernetes_objects = [r for r in recording.resources if r.type.startswith("kubernetes:")]
    assert len(kubernetes_objects) > len(CHARTS)
    for resource in kubernetes_objects:
        assert resource.provider is not None, resource.name
        # A provider reference is "<provider URN>::<provider id>".
        assert resource.provider.rsplit("::", 1)[0] == provider.urn, resource.name


def test_autoscaler_identity_resizes_only_this_clusters_groups(recording: StackRecording) -> None:
    cluster_name = f"mlops-{recording.stack}"
    role = recording.named("mlops-cluster-autoscaler-role")
    (association,) = [
        a for a in recording.of_type(POD_IDENTITY) if a.inputs["namespace"] == "kube-system"
    ]
    assert association.inputs == {
        "clusterName": cluster_name,
        "namespace": "kube-system",
        "serviceAccount": "cluster-autoscaler",
        "roleArn": role.outputs["arn"],
    }
    resize = _statements(recording, "mlops-cluster-autoscaler-policy")["ResizeThisClustersGroups"]
    assert set(resize["Action"]) == {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    assert resize["Resource"] != "*"
    assert resize["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
        }
    }
    # Every action that changes something is under that condition.
    policy = json.loads(recording.named("mlops-cluster-autoscaler-policy").inputs["policy"])
    for statement in policy["Statement"]:
        if statement["Resource"] == "*":
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in actions)


# --- team namespaces ----------------------------------------------------------------------


def _team_objects(recording: StackRecording, namespace: str) -> dict[str, dict[str, Any]]:
    """The namespaced objects of one namespace by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for resource in recording.resources:
        metadata = (
            resource.inputs.get("metadata") if resource.type.startswith("kubernetes:") else None
        )
        if isinstance(metadata, dict) and metadata.get("namespace") == namespace:
            key = f"{resource.inputs['kind']}/{metadata['name']}"
            assert key not in found
            found[key] = resource.inputs
    return found


def test_each_team_gets_a_guarded_namespace(recording: StackRecording) -> None:
    teams = recording.settings.cluster.teams
    namespaces = {n.inputs["metadata"]["name"]: n.inputs for n in recording.of_type(NAMESPACE)}
    assert set(namespaces) == set(teams)
    for team, settings in teams.items():
        labels = namespaces[team]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["mlops.platform/team"] == team
        objects = _team_objects(recording, team)
        assert set(objects) == {
            "ResourceQuota/team-quota",
            "LimitRange/container-defaults",
            "NetworkPolicy/default-deny",
            "NetworkPolicy/allow-training-traffic",
            "ServiceAccount/training",
        }
        hard = objects["ResourceQuota/team-quota"]["spec"]["hard"]
        assert hard["requests.nvidia.com/gpu"] == str(settings.gpus)
        assert hard["requests.cpu"] == settings.cpu
        assert hard["requests.memory"] == settings.memory
        # Requests only: a quota on limits would refuse every container without limits.
        assert not [key for key in hard if key.startswith("limits.")]
        (defaults,) = objects["LimitRange/container-defaults"]["spec"]["limits"]
        # No default limit: one would refuse a container asking for more without a limit.
        assert set(defaults) == {"type", "defaultRequest"}
        deny = objects["NetworkPolicy/default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert objects["ServiceAccount/training"]["automountServiceAccountToken"] is False


def test_quotas_per_stack(dev: StackRecording, prod: StackRecording) -> None:
    def gpus(recording: StackRecording) -> dict[str, str]:
        return {
            q.inputs["metadata"]["namespace"]: q.inputs["spec"]["hard"]["requests.nvidia.com/gpu"]
            for q in recording.of_type("kubernetes:core/v1:ResourceQuota")
        }

    assert gpus(dev) == {"research": "4"}
    assert gpus(prod) == {"research": "16", "forecasting": "8"}


def _assert_team_identity(recording: StackRecording, namespaces: dict[str, str]) -> None:
    """Each team's `training` account maps to a role that reaches only teams/<team>/."""
    buckets = recording.outputs[outputs.BUCKET_NAMES]
    associations = {
        a.inputs["namespace"]: a.inputs
        for a in recording.of_type(POD_IDENTITY)
        if a.inputs["namespace"] != "kube-system"
    }
    assert set(associations) == set(namespaces.values())
    for team, namespace in namespaces.items():
        association = associations[namespace]
        assert association["serviceAccount"] == "training"
        assert association["roleArn"] == recording.outputs[outputs.TEAM_ROLE_ARNS][team]
        statements = _statements(recording, f"mlops-teams-{team}-artifacts")
        objects = statements["ReadWriteOwnPrefix"]["Resource"]
        # The pipeline bucket too: a cluster-backed Train step's channels are there.
        team_buckets = ("datasets", "models", "pipeline")
        assert objects == [
            f"arn:aws:s3:::{buckets[purpose]}/teams/{team}/*" for purpose in team_buckets
        ]
        assert statements["ListOwnPrefix"]["Condition"] == {
            "StringLike": {"s3:prefix": [f"teams/{team}/*"]}
        }
        assert (
            statements["UseDataKeyThroughS3"]["Resource"]
            == (recording.outputs[outputs.DATA_KEY_ARN])
        )
        for statement in statements.values():
            assert statement["Effect"] == "Allow"
            assert statement["Resource"] != "*"
            resources = statement["Resource"]
            resources = [resources] if isinstance(resources, str) else resources
            for arn in resources:
                if arn.startswith("arn:aws:s3:::"):
                    bucket = arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]
                    assert bucket in [buckets[purpose] for purpose in team_buckets], arn
        callbacks = _statements(recording, f"mlops-teams-{team}-callbacks")
        assert set(callbacks) == {"CompleteCallbackSteps"}


def test_team_identities_are_scoped_to_their_prefix(recording: StackRecording) -> None:
    teams = recording.settings.cluster.teams
    _assert_team_identity(recording, {team: team for team in teams})
    for association in recording.of_type(POD_IDENTITY):
        assert association.inputs["clusterName"] == f"mlops-{recording.stack}"


def test_cluster_and_team_outputs(recording: StackRecording) -> None:
    teams = recording.settings.cluster.teams
    assert recording.outputs[outputs.TRAINING_CLUSTER_NAME] == f"mlops-{recording.stack}"
    (cluster,) = recording.of_type(CLUSTER)
    assert recording.outputs[outputs.TRAINING_CLUSTER_ENDPOINT] == cluster.outputs["endpoint"]
    assert (
        recording.outputs[outputs.TRAINING_CLUSTER_CA]
        == (cluster.outputs["certificateAuthority"]["data"])
    )
    assert recording.outputs[outputs.TEAM_NAMESPACES] == {team: team for team in teams}
    assert recording.outputs[outputs.TEAM_ROLE_ARNS] == {
        team: recording.named(f"mlops-teams-{team}-role").outputs["arn"] for team in teams
    }


# --- network -----------------------------------------------------------------------------


def _endpoint_services(recording: StackRecording) -> set[str]:
    prefix = f"com.amazonaws.{recording.settings.aws.region}."
    return {e.inputs["serviceName"].removeprefix(prefix) for e in recording.of_type(ENDPOINT)}


def test_nodes_reach_eks_and_autoscaling_through_endpoints(recording: StackRecording) -> None:
    assert set(CLUSTER_ENDPOINT_SERVICES) == {"ec2", "eks", "eks-auth", "autoscaling"}
    assert set(CLUSTER_ENDPOINT_SERVICES) <= _endpoint_services(recording)
    region = recording.settings.aws.region
    for endpoint in recording.of_type(ENDPOINT):
        service = endpoint.inputs["serviceName"].removeprefix(f"com.amazonaws.{region}.")
        if service in CLUSTER_ENDPOINT_SERVICES:
            assert endpoint.inputs["vpcEndpointType"] == "Interface"
            assert endpoint.inputs["privateDnsEnabled"] is True


# --- shared and disabled modes ------------------------------------------------------------


def test_shared_mode_creates_no_cluster() -> None:
    recording = shared()
    for resource_type in (CLUSTER, NODE_GROUP, ADDON, RELEASE, LAUNCH_TEMPLATE, ASG_TAG):
        assert recording.of_type(resource_type) == [], resource_type
    (reference,) = recording.of_type(STACK_REFERENCE)
    assert reference.inputs["name"] == SHARED_STACK
    assert not set(CLUSTER_ENDPOINT_SERVICES) & _endpoint_services(recording)
    assert outputs.TRAINING_CLUSTER_NAME not in recording.outputs


def test_shared_mode_namespaces_carry_the_stack_name() -> None:
    recording = shared()
    namespaces = {team: f"{team}-dev" for team in SHARED_TEAMS}
    assert {n.inputs["metadata"]["name"] for n in recording.of_type(NAMESPACE)} == set(
        namespaces.values()
    )
    assert recording.outputs[outputs.TEAM_NAMESPACES] == namespaces
    _assert_team_identity(recording, namespaces)
    associations = recording.of_type(POD_IDENTITY)
    assert len(associations) == len(SHARED_TEAMS)
    assert {a.inputs["clusterName"] for a in associations} == {"mlops-shared"}
    quotas = {
        q.inputs["metadata"]["namespace"]: q.inputs["spec"]["hard"]
        for q in recording.of_type("kubernetes:core/v1:ResourceQuota")
    }
    assert quotas["vision-dev"]["requests.nvidia.com/gpu"] == "1"
    assert quotas["vision-dev"]["requests.memory"] == "64Gi"


def test_shared_mode_objects_go_to_the_shared_clusters_api() -> None:
    recording = shared()
    (provider,) = recording.of_type(K8S_PROVIDER)
    assert provider.parent_name == "mlops-shared-cluster"
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["name"] == "mlops-shared"
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://SHARED.")
    for resource in recording.resources:
        if resource.type.startswith("kubernetes:"):
            assert resource.provider is not None
            assert resource.provider.rsplit("::", 1)[0] == provider.urn, resource.name


def test_disabled_mode_creates_nothing_of_a_cluster() -> None:
    recording = disabled()
    assert recording.settings.cluster.mode == "disabled"
    eks = [r for r in recording.resources if r.type.startswith("aws:eks/")]
    assert eks == []
    kubernetes = [
        r
        for r in recording.resources
        if r.type.startswith(("kubernetes:", K8S_PROVIDER, "mlops:cluster:"))
    ]
    assert kubernetes == []
    for resource_type in (LAUNCH_TEMPLATE, ASG_TAG, STACK_REFERENCE):
        assert recording.of_type(resource_type) == [], resource_type
    assert not set(CLUSTER_ENDPOINT_SERVICES) & _endpoint_services(recording)
    for output in (
        outputs.TRAINING_CLUSTER_NAME,
        outputs.TRAINING_CLUSTER_ENDPOINT,
        outputs.TRAINING_CLUSTER_CA,
        outputs.TEAM_NAMESPACES,
        outputs.TEAM_ROLE_ARNS,
    ):
        assert output not in recording.outputs, output


# --- policy rules ----------------------------------------------------------------------------


def test_policy_rules_pass_the_modified_stacks() -> None:
    for recording in (public_endpoint(), shared(), disabled()):
        report = check(recording)
        assert report.rules_run > 0
        assert report.mandatory == [], (recording.stack, report.mandatory)
        assert report.advisory == [], (recording.stack, report.advisory)


def test_policy_rules_pass_the_committed_stacks(recording: StackRecording) -> None:
    report = check(recording)
    assert report.mandatory == []
    assert any(r.type == CLUSTER for r in recording.resources)


def _trust_scope(role: Any) -> dict[str, str]:
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    return dict(statement["Condition"]["StringEquals"])


def test_each_pod_identity_role_trusts_only_its_service_account(
    recording: StackRecording,
) -> None:
    """EKS Pod Identity tags the session with cluster, namespace and service account; each
    role's trust names exactly the association that uses it, so no other pod can."""
    region, account = recording.settings.aws.region, recording.settings.aws.account_id
    cluster_arn = f"arn:aws:eks:{region}:{account}:cluster/mlops-{recording.stack}"
    roles = {r.outputs["arn"]: r for r in recording.of_type("aws:iam/role:Role")}
    uses = [
        (a.inputs["roleArn"], a.inputs["namespace"], a.inputs["serviceAccount"])
        for a in recording.of_type(POD_IDENTITY)
    ]
    ebs = _addons(recording)["aws-ebs-csi-driver"].inputs["podIdentityAssociations"]
    uses += [(a["roleArn"], "kube-system", a["serviceAccount"]) for a in ebs]
    assert len(uses) == 2 + len(recording.settings.cluster.teams)
    for role_arn, namespace, service_account in uses:
        assert _trust_scope(roles[role_arn]) == {
            "aws:SourceAccount": account,
            "aws:RequestTag/eks-cluster-arn": cluster_arn,
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": service_account,
        }
