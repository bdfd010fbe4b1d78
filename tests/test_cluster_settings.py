"""The `cluster` stack-file key: each bad value stops with a SettingsError naming the stack
file and the key as written there; plus the pure helpers of the training cluster (chart pins,
scale-from-zero tags, a team's artifact policy, the kubeconfig)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.aws_context import AwsContext
from components.cluster_charts import (
    AUTOSCALER_IMAGE_TAGS,
    gpu_node_labels,
    scale_from_zero_tags,
)
from components.cluster_policies import autoscaler_policy, team_artifact_policy
from components.kubeconfig import kubeconfig
from policy.mlops_rules.eks import SUPPORTED_EKS_VERSIONS
from stacks.cluster_settings import ClusterSettings
from stacks.loader import (
    SettingsError,
    load_stack_settings,
    settings_from_config,
    shown,
    stack_file,
)
from stacks.offline import engine_config
from tests.conftest import stack_config

KEY = "mlops-platform:cluster"

Config = dict[str, Any]
Mutation = Callable[[Config], None]


def problems_of(stack: str, config: Config) -> list[str]:
    """The problem lines of the SettingsError the config raises, as the loader reports them
    for that stack's file."""
    source = shown(stack_file(stack))
    with pytest.raises(SettingsError) as caught:
        settings_from_config(config, source=source)
    header, *lines = str(caught.value).split("\n")
    assert header == f"{source}: invalid settings:"
    assert lines and all(line.startswith("  - ") for line in lines), lines
    return [line.removeprefix("  - ") for line in lines]


def cluster(**changes: Any) -> Mutation:
    """Update the stack's cluster mapping."""

    def mutate(config: Config) -> None:
        config[KEY].update(changes)

    return mutate


def replace_cluster(value: dict[str, Any]) -> Mutation:
    def mutate(config: Config) -> None:
        config[KEY] = value

    return mutate


def at(*path: str | int, value: Any) -> Mutation:
    """Set `config[cluster][path...] = value`."""

    def mutate(config: Config) -> None:
        target = config[KEY]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


GPU_POOL = {"instance_types": ["g5.xlarge"], "max_size": 2}

# (id, stack, mutation, key as written in the stack file, what the message must say)
BAD_CLUSTERS: list[tuple[str, str, Mutation, str, tuple[str, ...]]] = [
    (
        "version-out-of-standard-support",
        "prod",
        cluster(version="1.29"),
        "version",
        ("EKS version '1.29' is not in standard support", ", ".join(SUPPORTED_EKS_VERSIONS)),
    ),
    (
        "public-endpoint-open-to-the-internet",
        "dev",
        cluster(public_access_cidrs=["198.51.100.0/24", "0.0.0.0/0"]),
        "public_access_cidrs[1]",
        ("0.0.0.0/0 opens the API endpoint to the internet",),
    ),
    (
        "pool-without-a-gpu",
        "dev",
        at("gpu_pools", "a10g", "instance_types", value=["g5.xlarge", "m5.large"]),
        "gpu_pools.a10g.instance_types[1]",
        ("'m5.large' is not a GPU instance type", "g4dn, g5"),
    ),
    (
        "pool-mixing-gpus",
        "prod",
        at("gpu_pools", "l40s", "instance_types", value=["g5.2xlarge", "p5.48xlarge"]),
        "gpu_pools.l40s.instance_types",
        ("mix GPUs (nvidia-a10g, nvidia-h100)", "use one pool per GPU"),
    ),
    (
        "shared-without-shared-stack",
        "dev",
        replace_cluster({"mode": "shared", "teams": {"research": {"gpus": 1}}}),
        "shared_stack",
        ("is required when mode is 'shared'",),
    ),
    (
        "shared-stack-with-managed",
        "test",
        cluster(shared_stack="acme/mlops-platform/prod"),
        "shared_stack",
        ("is only used when mode is 'shared'",),
    ),
    (
        "gpu-pools-with-shared",
        "dev",
        replace_cluster(
            {
                "mode": "shared",
                "shared_stack": "acme/mlops-platform/dev",
                "gpu_pools": {"a": GPU_POOL},
            }
        ),
        "gpu_pools",
        ("is only used when mode is 'managed' (shared)",),
    ),
    (
        "teams-with-disabled",
        "dev",
        replace_cluster({"teams": {"research": {"gpus": 1}}}),
        "teams",
        ("need a cluster", "'managed' or 'shared'"),
    ),
    (
        "cluster-admin-in-namespaces",
        "prod",
        at("access", 0, "namespaces", value=["research"]),
        "access[0].namespaces",
        ("cluster-admin applies to the whole cluster",),
    ),
    (
        "system-max-below-min",
        "prod",
        at("system_nodes", "max_size", value=2),
        "system_nodes.max_size",
        ("must be >= min_size (3)",),
    ),
    (
        "team-name-not-a-dns-label",
        "dev",
        at("teams", "Research", value={"gpus": 1}),
        "teams.Research (the key itself)",
        ("must look like research", "(got 'Research')"),
    ),
    (
        "team-memory-not-a-quantity",
        "test",
        at("teams", "research", "memory", value="512GB"),
        "teams.research.memory",
        ("must look like 512Gi", "(got '512GB')"),
    ),
    (
        "addon-version-not-an-eks-build",
        "dev",
        cluster(addon_versions={"coredns": "latest"}),
        "addon_versions.coredns",
        ("must look like v1.19.2-eksbuild.1", "(got 'latest')"),
    ),
    (
        "addon-unknown",
        "prod",
        cluster(addon_versions={"cilium": "v1.16.0-eksbuild.1"}),
        "addon_versions.cilium (the key itself)",
        ("'vpc-cni'", "'aws-ebs-csi-driver'", "(got 'cilium')"),
    ),
    (
        "gpu-pool-max-zero",
        "dev",
        at("gpu_pools", "a10g", "max_size", value=0),
        "gpu_pools.a10g.max_size",
        ("greater than or equal to 1",),
    ),
    (
        "mode-unknown",
        "test",
        cluster(mode="eks"),
        "mode",
        ("'disabled', 'managed' or 'shared'", "'eks'"),
    ),
    (
        "image-registry-with-shared",
        "dev",
        replace_cluster(
            {
                "mode": "shared",
                "shared_stack": "acme/mlops-platform/dev",
                "image_registry": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mirror",
            }
        ),
        "image_registry",
        ("is only used when mode is 'managed' (shared)",),
    ),
    (
        "image-registry-not-ecr",
        "prod",
        cluster(image_registry="docker.io/mirror"),
        "image_registry",
        ("must look like 123456789012.dkr.ecr.",),
    ),
]


@pytest.mark.parametrize(
    ("stack", "mutation", "key", "says"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CLUSTERS],
)
def test_bad_cluster_is_reported_at_its_key(
    stack: str, mutation: Mutation, key: str, says: tuple[str, ...]
) -> None:
    config = stack_config(stack)
    mutation(config)

    problems = problems_of(stack, config)

    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{KEY}.{key}: "), problem
    for text in says:
        assert text in problem, problem


@pytest.mark.parametrize("stack", ["test", "prod"])
def test_managed_without_egress_needs_the_image_mirror(stack: str) -> None:
    config = stack_config(stack)
    assert config["mlops-platform:network"]["egress"] == "none"
    del config[KEY]["image_registry"]

    problems = problems_of(stack, config)

    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{KEY}.image_registry: "), problem
    assert "is required when network.egress is 'none'" in problem


def test_mirror_is_optional_with_nat_egress() -> None:
    config = stack_config("dev")
    assert config["mlops-platform:network"]["egress"] == "nat"
    assert "image_registry" not in config[KEY]
    settings = settings_from_config(config, source="dev")
    assert settings.cluster.mode == "managed"
    assert settings.cluster.image_registry is None


def test_every_cluster_problem_is_reported_at_once() -> None:
    config = stack_config("dev")
    config[KEY] = {
        "mode": "shared",
        "shared_stack": "acme/mlops-platform/dev",
        "gpu_pools": {"a": GPU_POOL},
        "public_access_cidrs": ["198.51.100.0/24"],
    }
    problems = problems_of("dev", config)
    assert sorted(p.split(":", 2)[1] for p in problems) == [
        "cluster.gpu_pools",
        "cluster.public_access_cidrs",
    ]


def test_stack_file_on_disk_names_itself_and_the_key(tmp_path: Path) -> None:
    config = stack_config("prod")
    config[KEY]["version"] = "1.29"
    path = stack_file("prod", tmp_path)
    path.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")

    with pytest.raises(SettingsError) as caught:
        load_stack_settings("prod", tmp_path)

    assert str(caught.value).startswith(f"{shown(path)}: invalid settings:\n")
    assert f"  - {KEY}.version: EKS version '1.29'" in str(caught.value)


def test_engine_text_form_reports_the_same_key() -> None:
    """The engine passes the cluster mapping as JSON text."""
    config = stack_config("dev")
    config[KEY]["teams"]["research"]["memory"] = "512GB"
    text = engine_config(config)
    assert isinstance(text[KEY], str)
    (problem,) = problems_of("dev", text)
    assert problem.startswith(f"{KEY}.teams.research.memory: ")


def test_cluster_defaults_to_disabled() -> None:
    config = stack_config("dev")
    del config[KEY]
    settings = settings_from_config(config, source="dev")
    assert settings.cluster == ClusterSettings()
    assert settings.cluster.mode == "disabled"
    assert settings.cluster.teams == {}
    assert ClusterSettings().version == SUPPORTED_EKS_VERSIONS[-1]


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_committed_stacks_run_a_managed_cluster(stack: str) -> None:
    settings = load_stack_settings(stack)
    assert settings.cluster.mode == "managed"
    assert settings.cluster.version in SUPPORTED_EKS_VERSIONS
    assert settings.cluster.gpu_pools and settings.cluster.teams
    assert settings.cluster.public_access_cidrs == []


# --- pure helpers --------------------------------------------------------------------------


def test_one_autoscaler_image_per_supported_eks_version() -> None:
    assert sorted(AUTOSCALER_IMAGE_TAGS) == sorted(SUPPORTED_EKS_VERSIONS)
    for version, tag in AUTOSCALER_IMAGE_TAGS.items():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", tag)
        assert match is not None, tag
        # cluster-autoscaler's minor version must be the cluster's.
        assert f"{match[1]}.{match[2]}" == version, (version, tag)


def test_scale_from_zero_tags_describe_labels_and_the_gpu_taint() -> None:
    labels = gpu_node_labels("h100", "nvidia-h100")
    prefix = "k8s.io/cluster-autoscaler/node-template"
    assert scale_from_zero_tags(labels) == {
        f"{prefix}/label/nvidia.com/gpu.present": "true",
        f"{prefix}/label/k8s.amazonaws.com/accelerator": "nvidia-h100",
        f"{prefix}/label/mlops.platform/gpu-pool": "h100",
        f"{prefix}/taint/nvidia.com/gpu": "true:NoSchedule",
    }
    assert scale_from_zero_tags({}) == {f"{prefix}/taint/nvidia.com/gpu": "true:NoSchedule"}


DATASETS = "arn:aws:s3:::mlops-dev-datasets"
MODELS = "arn:aws:s3:::mlops-dev-models"
KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/abc"


def _allowed_objects(team: str) -> list[str]:
    policy = team_artifact_policy(team, bucket_arns=[DATASETS, MODELS], key_arn=KEY_ARN)
    (objects,) = [s for s in policy["Statement"] if "s3:GetObject" in s["Action"]]
    return list(objects["Resource"])


def test_team_artifact_policy_is_scoped_to_the_team_prefix() -> None:
    policy = team_artifact_policy("research", bucket_arns=[DATASETS, MODELS], key_arn=KEY_ARN)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadWriteOwnPrefix"]["Resource"] == [
        f"{DATASETS}/teams/research/*",
        f"{MODELS}/teams/research/*",
    ]
    assert statements["ListOwnPrefix"]["Resource"] == [DATASETS, MODELS]
    assert statements["ListOwnPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["teams/research/*"]}
    }
    assert statements["UseDataKeyThroughS3"]["Resource"] == KEY_ARN
    assert statements["UseDataKeyThroughS3"]["Condition"] == {
        "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}
    }
    assert all(s["Effect"] == "Allow" and s["Resource"] != "*" for s in policy["Statement"])


def test_team_prefixes_do_not_overlap() -> None:
    """research may not touch research-2's objects (or the reverse), nor anything outside
    its prefix."""
    research, research_2 = _allowed_objects("research"), _allowed_objects("research-2")

    def allowed(patterns: list[str], arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns)

    for bucket in (DATASETS, MODELS):
        assert allowed(research, f"{bucket}/teams/research/run-1/model.tar.gz")
        assert not allowed(research, f"{bucket}/teams/research-2/x")
        assert not allowed(research, f"{bucket}/teams/researchers/x")
        assert not allowed(research, f"{bucket}/feature-store/x")
        assert not allowed(research, f"{bucket}/research/x")
        assert allowed(research_2, f"{bucket}/teams/research-2/x")
        assert not allowed(research_2, f"{bucket}/teams/research/x")
    assert not allowed(research, "arn:aws:s3:::other-bucket/teams/research/x")


def test_autoscaler_policy_names_the_cluster() -> None:
    ctx = AwsContext(account_id="111111111111", region="eu-west-1")
    statements = {s["Sid"]: s for s in autoscaler_policy(ctx, "mlops-dev")["Statement"]}
    assert statements["ReadNodeGroupTemplates"]["Resource"] == (
        "arn:aws:eks:eu-west-1:111111111111:nodegroup/mlops-dev/*/*"
    )
    condition = statements["ResizeThisClustersGroups"]["Condition"]["StringEquals"]
    assert condition["aws:ResourceTag/k8s.io/cluster-autoscaler/mlops-dev"] == "owned"


def test_kubeconfig_gets_a_token_from_the_aws_cli() -> None:
    config = kubeconfig(
        cluster_name="mlops-test",
        endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        ca_data="Q0E=",
        region="eu-west-1",
    )
    (cluster_entry,) = config["clusters"]
    assert cluster_entry["cluster"] == {
        "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificate-authority-data": "Q0E=",
    }
    (context,) = config["contexts"]
    assert config["current-context"] == context["name"] == "mlops-test"
    (user,) = config["users"]
    assert context["context"] == {"cluster": "mlops-test", "user": user["name"]}
    command = user["user"]["exec"]
    assert command["command"] == "aws"
    args = command["args"]
    assert args[:2] == ["eks", "get-token"]
    assert args[args.index("--cluster-name") + 1] == "mlops-test"
    assert args[args.index("--region") + 1] == "eu-west-1"
    assert command["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert command["interactiveMode"] == "Never"
