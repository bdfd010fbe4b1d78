"""Stack settings errors: every bad stack file stops with one message that names the file,
each bad key as it is written there, and what the key allows."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stacks.loader import (
    SettingsError,
    committed_stacks,
    load_stack_settings,
    read_stack_config,
    settings_from_config,
    shown,
    stack_file,
)
from stacks.offline import engine_config
from stacks.settings import Settings
from tests.conftest import stack_config

SOURCE = "stacks/Pulumi.x.yaml"
P = "mlops-platform:"

Config = dict[str, Any]
Mutation = Callable[[Config], None]

EXISTING_VPC = {
    "vpc_id": "vpc-0123456789abcdef0",
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "private_route_table_ids": ["rtb-0123456789abcdef0"],
}
THREE_SUBNETS = [*EXISTING_VPC["private_subnet_ids"], "subnet-0123456789abcdef2"]


def problems_of(config: Config) -> list[str]:
    """The problem lines of the SettingsError the config raises (without the `  - `)."""
    with pytest.raises(SettingsError) as caught:
        settings_from_config(config, source=SOURCE)
    message = str(caught.value)
    header, *lines = message.split("\n")
    assert header == f"{SOURCE}: invalid settings:"
    assert lines, message
    assert all(line.startswith("  - ") for line in lines), message
    return [line.removeprefix("  - ") for line in lines]


# --- mutations of a committed config -----------------------------------------------------


def put(key: str, *path: str | int, value: Any) -> Mutation:
    """Set `config[key][path...] = value` (just `config[key]` without a path)."""

    def mutate(config: Config) -> None:
        if not path:
            config[key] = value
            return
        target = config[key]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def drop(key: str, *path: str) -> Mutation:
    def mutate(config: Config) -> None:
        if not path:
            del config[key]
            return
        target = config[key]
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(config: Config) -> None:
        for mutation in mutations:
            mutation(config)

    return mutate


TOP_LEVEL_KEYS = (
    "allowed keys: environment, owner, cost_center, tags, deployer_role_arn, protection, "
    "network, encryption, "
    "logging, artifact_store"
)

# (id, stack, mutation, key as written in the stack file, what the message must say)
BAD_INPUTS: list[tuple[str, str, Mutation, str, tuple[str, ...]]] = [
    (
        "unknown-top-level-key-did-you-mean",
        "dev",
        put(P + "ownr", value="ml-platform-team"),
        P + "ownr",
        ("unknown key", TOP_LEVEL_KEYS, "(did you mean 'owner'?)"),
    ),
    (
        "unknown-top-level-key-typo-logging",
        "prod",
        put(P + "loging", value={"retention_days": 400}),
        P + "loging",
        ("unknown key", "(did you mean 'logging'?)"),
    ),
    (
        "unknown-nested-key",
        "dev",
        put(P + "network", "zones", value=2),
        P + "network.zones",
        ("unknown key", "allowed keys: cidr, az_count, egress, nat_gateways, existing_vpc"),
    ),
    (
        "unknown-deeply-nested-key",
        "test",
        put(P + "artifact_store", "lifecycle", "expiry_days", value=30),
        P + "artifact_store.lifecycle.expiry_days",
        (
            "allowed keys: noncurrent_version_expiry_days, abort_incomplete_multipart_days, "
            "pipeline_output_expiry_days, access_log_expiry_days",
        ),
    ),
    (
        "unknown-namespace",
        "dev",
        put("mlops-platfrom:owner", value="someone"),
        "mlops-platfrom:owner",
        ("unknown namespace 'mlops-platfrom'", "use one of mlops-platform, aws, pulumi"),
    ),
    (
        "key-without-namespace",
        "dev",
        put("owner", value="someone"),
        "owner",
        ("config keys are written 'namespace:key'",),
    ),
    (
        "key-with-empty-name",
        "test",
        put(P, value="x"),
        P,
        ("config keys are written 'namespace:key'",),
    ),
    (
        "aws-keys-under-project-namespace",
        "dev",
        put(P + "aws", value={"region": "eu-west-1"}),
        P + "aws",
        ("unknown key", TOP_LEVEL_KEYS, "aws:region, aws:allowedAccountIds"),
    ),
    (
        "az-count-wrong-type",
        "prod",
        put(P + "network", "az_count", value="three"),
        P + "network.az_count",
        ("valid integer", "'three'"),
    ),
    (
        "az-count-below-range",
        "dev",
        put(P + "network", "az_count", value=1),
        P + "network.az_count",
        ("greater than or equal to 2", "(got 1)"),
    ),
    (
        "az-count-above-range",
        "prod",
        put(P + "network", "az_count", value=7),
        P + "network.az_count",
        ("less than or equal to 6", "(got 7)"),
    ),
    (
        "cidr-public",
        "dev",
        put(P + "network", "cidr", value="8.8.0.0/16"),
        P + "network.cidr",
        ("8.8.0.0/16 is not a private (RFC 1918) range", "10.0.0.0/8"),
    ),
    (
        "cidr-loopback-is-not-rfc1918",
        "test",
        put(P + "network", "cidr", value="127.0.0.0/16"),
        P + "network.cidr",
        ("not a private (RFC 1918) range", "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"),
    ),
    (
        "cidr-link-local-is-not-rfc1918",
        "prod",
        put(P + "network", "cidr", value="169.254.0.0/16"),
        P + "network.cidr",
        ("not a private (RFC 1918) range",),
    ),
    (
        "cidr-prefix-too-small-a-range",
        "dev",
        put(P + "network", "cidr", value="10.0.0.0/24"),
        P + "network.cidr",
        ("prefix /24 is outside /16../22",),
    ),
    (
        "cidr-prefix-too-large-a-range",
        "dev",
        put(P + "network", "cidr", value="10.0.0.0/8"),
        P + "network.cidr",
        ("prefix /8 is outside /16../22",),
    ),
    (
        "cidr-not-a-cidr",
        "test",
        put(P + "network", "cidr", value="my-vpc"),
        P + "network.cidr",
        ("not a valid IPv4 network", "'my-vpc'"),
    ),
    (
        "tag-key-bad-characters",
        "dev",
        put(P + "tags", "team#1", value="ml"),
        P + "tags.team#1 (the key itself)",
        ("letters, digits, spaces and _ . : / = + - @", "'team#1'"),
    ),
    (
        "tag-key-read-as-number",
        "dev",
        put(P + "tags", 2024, value="budget"),
        P + "tags.2024 (the key itself)",
        ("valid string", "(got 2024)"),
    ),
    (
        "tag-key-too-long",
        "test",
        put(P + "tags", "k" * 129, value="x"),
        P + "tags." + "k" * 129 + " (the key itself)",
        ("at most 128 characters",),
    ),
    (
        "tag-value-bad-characters",
        "prod",
        put(P + "tags", "compliance", value="iso<27001>"),
        P + "tags.compliance",
        ("letters, digits, spaces and _ . : / = + - @",),
    ),
    (
        "tag-value-too-long",
        "dev",
        put(P + "tags", "data-classification", value="x" * 257),
        P + "tags.data-classification",
        ("at most 256 characters",),
    ),
    (
        "tag-key-reserved-owner",
        "dev",
        put(P + "tags", "owner", value="someone-else"),
        P + "tags.owner",
        ("set by the stack itself", "remove it from tags"),
    ),
    (
        "tag-key-reserved-aws-prefix",
        "prod",
        put(P + "tags", "aws:created-by", value="me"),
        P + "tags.aws:created-by",
        ("the 'aws:' prefix is reserved by AWS",),
    ),
    (
        "retention-not-a-cloudwatch-value",
        "dev",
        put(P + "logging", "retention_days", value=100),
        P + "logging.retention_days",
        ("100 is not a CloudWatch Logs retention", "use one of 1, 3, 5, 7, 14, 30, 60, 90, 120"),
    ),
    (
        "prod-retention-below-a-year",
        "prod",
        put(P + "logging", "retention_days", value=180),
        P + "logging.retention_days",
        ("must be >= 365 in prod (got 180)",),
    ),
    (
        "prod-protect-false",
        "prod",
        put(P + "protection", "protect", value=False),
        P + "protection.protect",
        ("must be true in prod",),
    ),
    (
        "prod-retain-on-delete-false",
        "prod",
        put(P + "protection", "retain_on_delete", value=False),
        P + "protection.retain_on_delete",
        ("must be true in prod",),
    ),
    (
        "prod-without-object-lock",
        "prod",
        drop(P + "artifact_store", "object_lock"),
        P + "artifact_store.object_lock",
        ("is required in prod",),
    ),
    (
        "object-lock-mode-unknown",
        "prod",
        put(P + "artifact_store", "object_lock", "mode", value="STRICT"),
        P + "artifact_store.object_lock.mode",
        ("'GOVERNANCE' or 'COMPLIANCE'", "'STRICT'"),
    ),
    (
        "force-destroy-in-test",
        "test",
        put(P + "artifact_store", "force_destroy", value=True),
        P + "artifact_store.force_destroy",
        ("is allowed in dev and on-demand environments only (environment is test)",),
    ),
    (
        "region-not-a-region",
        "dev",
        put("aws:region", value="europe"),
        "aws:region",
        ("an AWS region (eu-west-1)", "'europe'"),
    ),
    (
        "region-missing",
        "prod",
        drop("aws:region"),
        "aws:region",
        ("required key is missing",),
    ),
    (
        "account-id-wrong-length",
        "dev",
        put("aws:allowedAccountIds", value=["1234"]),
        "aws:allowedAccountIds[0]",
        ("a quoted 12-digit account id", "'1234'"),
    ),
    (
        "account-id-unquoted-number",
        "test",
        put("aws:allowedAccountIds", value=[222222222222]),
        "aws:allowedAccountIds[0]",
        ("valid string", "(got 222222222222)"),
    ),
    (
        "two-account-ids",
        "prod",
        put("aws:allowedAccountIds", value=["333333333333", "444444444444"]),
        "aws:allowedAccountIds",
        ("at most 1 item",),
    ),
    (
        "owner-missing",
        "dev",
        drop(P + "owner"),
        P + "owner",
        ("required key is missing",),
    ),
    (
        "owner-empty",
        "test",
        put(P + "owner", value=""),
        P + "owner",
        ("at least 1 character",),
    ),
    (
        "existing-vpc-subnets-differ-from-az-count",
        "test",
        put(
            P + "network",
            "existing_vpc",
            value={**EXISTING_VPC, "private_subnet_ids": THREE_SUBNETS},
        ),
        P + "network.existing_vpc.private_subnet_ids",
        ("lists 3 subnets but az_count is 2", "give one private subnet per AZ"),
    ),
    (
        "existing-vpc-with-nat-egress",
        "dev",
        put(P + "network", "existing_vpc", value=EXISTING_VPC),
        P + "network.egress",
        ("'nat' needs a VPC this stack creates, not existing_vpc",),
    ),
    (
        "existing-vpc-bad-vpc-id",
        "test",
        put(P + "network", "existing_vpc", value={**EXISTING_VPC, "vpc_id": "vpc-xyz"}),
        P + "network.existing_vpc.vpc_id",
        ("must look like vpc-0123456789abcdef0", "'vpc-xyz'"),
    ),
    (
        "existing-vpc-bad-subnet-id",
        "test",
        put(
            P + "network",
            "existing_vpc",
            value={**EXISTING_VPC, "private_subnet_ids": ["subnet-0123456789abcdef0", "sn-1"]},
        ),
        P + "network.existing_vpc.private_subnet_ids[1]",
        ("must look like subnet-0123456789abcdef0", "'sn-1'"),
    ),
    (
        "egress-unknown",
        "test",
        put(P + "network", "egress", value="internet"),
        P + "network.egress",
        ("'none' or 'nat'", "'internet'"),
    ),
    (
        "ecr-duplicate-repositories",
        "dev",
        put(P + "artifact_store", "ecr", "repositories", value=["training", "training"]),
        P + "artifact_store.ecr.repositories",
        ("repository names must be unique",),
    ),
    (
        "ecr-repository-name-uppercase",
        "prod",
        put(P + "artifact_store", "ecr", "repositories", value=["training", "Inference"]),
        P + "artifact_store.ecr.repositories[1]",
        ("lowercase words joined by . _ or -", "'Inference'"),
    ),
    (
        "environment-not-a-tier",
        "dev",
        put(P + "environment", value="staging"),
        P + "environment",
        ("'dev', 'test' or 'prod'", "'staging'"),
    ),
    (
        "kms-deletion-window-too-short",
        "dev",
        put(P + "encryption", "deletion_window_days", value=3),
        P + "encryption.deletion_window_days",
        ("greater than or equal to 7", "(got 3)"),
    ),
    (
        "network-as-json-text-from-engine",
        "dev",
        put(P + "network", value='{"cidr": "10.0.0.0/16", "az_count": 9}'),
        P + "network.az_count",
        ("less than or equal to 6", "(got 9)"),
    ),
    (
        "account-ids-as-json-text-from-engine",
        "prod",
        put("aws:allowedAccountIds", value='["33333333333x"]'),
        "aws:allowedAccountIds[0]",
        ("a quoted 12-digit account id",),
    ),
    (
        "tags-as-json-text-from-engine",
        "prod",
        put(P + "tags", value='{"cost-center": "x"}'),
        P + "tags.cost-center",
        ("set by the stack itself",),
    ),
    (
        "budget-email-not-an-address",
        "dev",
        put(P + "budget", "alert_emails", 0, value="finops"),
        P + "budget.alert_emails[0]",
        ("must look like name@example.com",),
    ),
    (
        "budget-limit-not-positive",
        "test",
        put(P + "budget", "monthly_limit_usd", value=0),
        P + "budget.monthly_limit_usd",
        ("greater than 0",),
    ),
    (
        "advisory-rules-outside-dev",
        "prod",
        put(P + "policy", value={"advisory_rules": ["N7"]}),
        P + "policy.advisory_rules",
        ("only dev may relax rules",),
    ),
    (
        "advisory-rule-unknown",
        "dev",
        put(P + "policy", value={"advisory_rules": ["Z9"]}),
        P + "policy.advisory_rules",
        ("unknown rules ['Z9']", "n7-vpc-endpoints"),
    ),
    (
        "schedule-cron-hour-out-of-range",
        "dev",
        put(P + "models", "digits", "schedule", value={"expression": "cron(0 25 ? * MON *)"}),
        P + "models.digits.schedule.expression",
        ("cron field 2 (hours) '25': value out of range 0-23",),
    ),
    (
        "schedule-unknown-timezone",
        "test",
        put(
            P + "models",
            "digits",
            "schedule",
            value={"expression": "rate(1 day)", "timezone": "Mars/Olympus"},
        ),
        P + "models.digits.schedule.timezone",
        ("'Mars/Olympus' is not an IANA time zone",),
    ),
    (
        "registry-shared-without-stack",
        "dev",
        put(P + "registry", value={"mlflow": {"mode": "shared"}}),
        P + "registry.mlflow.shared_stack",
        ("is required when mode is 'shared'",),
    ),
    (
        "registry-maintenance-window",
        "prod",
        put(P + "registry", "mlflow", "weekly_maintenance_window", value="Sunday 3am"),
        P + "registry.mlflow.weekly_maintenance_window",
        ("must look like Sun:03:00",),
    ),
    (
        "gpu-pool-mixes-sizes",
        "dev",
        put(
            P + "cluster", "gpu_pools", "a10g", "instance_types", value=["g5.2xlarge", "g5.4xlarge"]
        ),
        P + "cluster.gpu_pools.a10g.instance_types",
        ("differ in size", "g5.4xlarge (16 vCPU, 64 GiB, 1 GPU)", "one pool per size"),
    ),
    (
        "gpu-instance-type-without-a-shape",
        "dev",
        put(P + "cluster", "gpu_pools", "a10g", "instance_types", value=["g5.96xlarge"]),
        P + "cluster.gpu_pools.a10g.instance_types[0]",
        ("'g5.96xlarge'", "not in stacks/gpu_instances.py"),
    ),
    (
        "cluster-job-fits-no-node",
        "dev",
        put(
            P + "models",
            "digits",
            "training",
            value={
                "instance_type": "ml.g5.2xlarge",
                "backend": "cluster",
                "cluster": {"team": "research", "cpu": "16", "memory": "64Gi"},
            },
        ),
        P + "models.digits.training.cluster",
        ("fits no node", "a10g: g5.2xlarge: 1 GPU, 7410m CPU and 30179Mi allocatable"),
    ),
    (
        "private-api-without-a-path",
        "prod",
        drop(P + "cluster", "api_access"),
        P + "cluster.api_access",
        ("nothing outside the cluster could reach it, `pulumi up` included",),
    ),
    (
        "api-access-from-anywhere",
        "dev",
        put(P + "cluster", "api_access", value={"cidrs": ["0.0.0.0/0"]}),
        P + "cluster.api_access.cidrs[0]",
        ("lets anyone reach the API",),
    ),
    (
        "access-entry-principal-twice",
        "prod",
        put(
            P + "cluster",
            "access",
            1,
            "principal_arn",
            value="arn:aws:iam::333333333333:role/ml-platform-admins",
        ),
        P + "cluster.access[1].principal_arn",
        ("is also access[0]", "409 conflict"),
    ),
    (
        "access-entry-for-the-deployer",
        "prod",
        put(
            P + "cluster",
            "access",
            1,
            "principal_arn",
            value="arn:aws:iam::333333333333:role/mlops-deployer",
        ),
        P + "cluster.access[1].principal_arn",
        ("is the deployer_role_arn", "remove this one"),
    ),
    (
        "deployer-in-another-account",
        "test",
        put(P + "deployer_role_arn", value="arn:aws:iam::999999999999:role/mlops-deployer"),
        P + "deployer_role_arn",
        ("must be a role in this stack's account (222222222222)",),
    ),
    (
        "deployer-missing",
        "test",
        drop(P + "deployer_role_arn"),
        P + "deployer_role_arn",
        ("required key is missing",),
    ),
    (
        "prod-public-api-without-reason",
        "prod",
        put(P + "cluster", "public_access_cidrs", value=["203.0.113.0/24"]),
        P + "cluster.public_access_cidrs",
        ("opens a public API endpoint in prod", "cluster.public_access_reason"),
    ),
    (
        "public-access-reason-alone",
        "dev",
        put(P + "cluster", "public_access_reason", value="first deploy"),
        P + "cluster.public_access_reason",
        ("is only used with public_access_cidrs",),
    ),
    (
        "key-administrator-not-a-role",
        "prod",
        put(
            P + "encryption",
            "key_administrators",
            value=["arn:aws:iam::333333333333:user/someone"],
        ),
        P + "encryption.key_administrators[0]",
        ("must look like arn:aws:iam::<id>:role/name",),
    ),
    (
        "warm-pool-with-spot",
        "test",
        put(P + "models", "digits", "training", "keep_alive_seconds", value=600),
        P + "models.digits.training.keep_alive_seconds",
        ("cannot be combined with managed spot (use_spot: true)", "set one of them off"),
    ),
    (
        "several-instances-for-single-node-training",
        "prod",
        put(P + "models", "digits", "training", "instance_count", value=2),
        P + "models.digits.training.instance_count",
        ("train.py trains on one instance", "use a larger instance_type"),
    ),
    (
        "auto-approve-outside-dev",
        "test",
        put(P + "models", "digits", "auto_approve", value=True),
        P + "models.digits.auto_approve",
        ("test never auto-approves", "only dev may"),
    ),
    (
        "mlflow-server-unpinned",
        "test",
        drop(P + "registry", "mlflow", "mlflow_version"),
        P + "registry.mlflow.mlflow_version",
        ("is required for a managed server", "the jobs' client is mlflow 3."),
    ),
    (
        "mlflow-server-version-not-offered",
        "prod",
        put(P + "registry", "mlflow", "mlflow_version", value="9.9"),
        P + "registry.mlflow.mlflow_version",
        ("'9.9' is not a version SageMaker offers (2.13.2, 2.16.2, 3.0)",),
    ),
    (
        "mlflow-server-of-another-major-version",
        "dev",
        put(P + "registry", "mlflow", "mlflow_version", value="2.16.2"),
        P + "registry.mlflow.mlflow_version",
        ("server 2.16.2 and the jobs' client mlflow 3.", "differ in major version"),
    ),
    (
        "hyperparameter-misspelt",
        "dev",
        put(P + "models", "digits", "training", "hyperparameters", value={"max_depht": 4}),
        P + "models.digits.training.hyperparameters",
        ("'max_depht' is not a hyperparameter", "(did you mean 'max_depth'?)"),
    ),
    (
        "model-without-a-feature-spec",
        "dev",
        put(
            P + "models",
            "churn",
            value={
                "image_tag": "1",
                "inference_image_tag": "1",
                "quality_gate": {"threshold": 0.8},
            },
        ),
        P + "models.churn",
        ("has no feature spec in pipelines/features.py (FEATURE_SPECS has: digits)",),
    ),
    (
        "network-json-text-that-is-not-json",
        "test",
        put(P + "network", value="{cidr: 10.0.0.0/16"),
        P + "network",
        ("valid dictionary", "'{cidr: 10.0.0.0/16'"),
    ),
]


@pytest.mark.parametrize(
    ("stack", "mutation", "key", "allowed"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_is_reported_at_its_key(
    stack: str, mutation: Mutation, key: str, allowed: tuple[str, ...]
) -> None:
    config = stack_config(stack)
    mutation(config)

    problems = problems_of(config)

    # One mutation, one problem, named by the key exactly as the stack file spells it.
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{key}: "), problem
    for text in allowed:
        assert text in problem, problem


def test_bad_inputs_are_distinct() -> None:
    ids = [case[0] for case in BAD_INPUTS]
    assert len(ids) == len(set(ids))
    assert len({(case[1], case[3], case[4]) for case in BAD_INPUTS}) == len(BAD_INPUTS)


def test_message_starts_with_the_stack_file_it_names() -> None:
    config = stack_config("prod")
    config["aws:region"] = "nowhere"
    with pytest.raises(SettingsError, match=r"^stacks/Pulumi\.prod\.yaml: invalid settings:\n"):
        settings_from_config(config, source="stacks/Pulumi.prod.yaml")


# --- the committed stacks -----------------------------------------------------------------


@pytest.mark.parametrize("stack", committed_stacks())
def test_committed_stack_loads(stack: str) -> None:
    settings = load_stack_settings(stack)
    assert settings.environment == stack


def test_committed_stacks_are_dev_test_prod() -> None:
    assert committed_stacks() == ["dev", "prod", "test"]


def test_committed_values() -> None:
    dev, prod = load_stack_settings("dev"), load_stack_settings("prod")

    assert dev.network.az_count == 2
    assert dev.network.egress == "nat"
    assert dev.artifact_store.force_destroy is True
    assert dev.aws.account_id == "111111111111"
    assert dev.aws.region == "eu-west-1"
    assert prod.network.az_count == 3
    assert prod.network.egress == "none"
    assert prod.protection.protect is True
    assert prod.protection.retain_on_delete is True
    assert prod.artifact_store.object_lock is not None
    assert prod.artifact_store.object_lock.mode == "GOVERNANCE"
    assert prod.logging.retention_days == 400
    assert prod.tags == {"data-classification": "confidential", "compliance": "iso27001"}
    # Defaults the stack files leave out.
    assert dev.artifact_store.ecr.repositories == ["training", "inference"]
    assert dev.encryption.rotation_period_days == 365


@pytest.mark.parametrize("stack", committed_stacks())
def test_engine_text_form_gives_the_same_settings(stack: str) -> None:
    """The engine passes scalars as text and objects as JSON; the result must not change."""
    native = settings_from_config(stack_config(stack), source=SOURCE)
    as_engine = settings_from_config(engine_config(stack_config(stack)), source=SOURCE)
    assert as_engine == native


def test_provider_and_pulumi_keys_pass_through() -> None:
    config = stack_config("test")
    config["aws:profile"] = "ml-test"
    config["aws:skipCredentialsValidation"] = True
    config["pulumi:template"] = "aws-python"
    assert isinstance(settings_from_config(config, source=SOURCE), Settings)


# --- several problems, one message --------------------------------------------------------


def test_field_problems_are_all_reported_in_one_message() -> None:
    config = stack_config("dev")
    config["mlops-platfrom:owner"] = "x"
    config["region"] = "eu-west-1"
    config["aws:region"] = "europe"
    config[P + "network"]["az_count"] = 9
    config[P + "logging"]["retention_days"] = 100
    config[P + "tags"]["owner"] = "x"
    del config[P + "cost_center"]

    problems = problems_of(config)

    assert len(problems) == 7, problems
    assert {problem.split(": ", 1)[0] for problem in problems} == {
        "mlops-platfrom:owner",
        "region",
        "aws:region",
        P + "network.az_count",
        P + "logging.retention_days",
        P + "tags.owner",
        P + "cost_center",
    }


def test_tier_problems_are_all_reported_in_one_message() -> None:
    config = stack_config("prod")
    config[P + "protection"] = {"protect": False, "retain_on_delete": False}
    config[P + "logging"]["retention_days"] = 30
    config[P + "artifact_store"]["force_destroy"] = True
    del config[P + "artifact_store"]["object_lock"]

    problems = problems_of(config)

    assert problems == [
        f"{P}protection.protect: must be true in prod",
        f"{P}protection.retain_on_delete: must be true in prod",
        f"{P}logging.retention_days: must be >= 365 in prod (got 30)",
        f"{P}artifact_store.object_lock: is required in prod (Object Lock on model artifacts)",
        f"{P}artifact_store.force_destroy: is allowed in dev and on-demand environments only "
        "(environment is prod)",
    ]


def test_every_reserved_tag_is_reported() -> None:
    config = stack_config("test")
    config[P + "tags"].update({"managed-by": "me", "AWS:thing": "x", "environment": "t"})

    problems = problems_of(config)

    assert [problem.split(": tag key", 1)[0] for problem in problems] == [
        f"{P}tags.managed-by",
        f"{P}tags.AWS:thing",
        f"{P}tags.environment",
    ]


def test_network_cross_checks_are_reported_together() -> None:
    config = stack_config("dev")
    config[P + "network"]["existing_vpc"] = {**EXISTING_VPC, "private_subnet_ids": THREE_SUBNETS}

    assert problems_of(config) == [
        f"{P}network.existing_vpc.private_subnet_ids: lists 3 subnets but az_count is 2; "
        "give one private subnet per AZ",
        f"{P}network.egress: 'nat' needs a VPC this stack creates, not existing_vpc",
    ]


def test_existing_vpc_that_matches_is_accepted() -> None:
    config = stack_config("test")
    config[P + "network"]["existing_vpc"] = EXISTING_VPC
    settings = settings_from_config(config, source=SOURCE)
    assert settings.network.existing_vpc is not None
    assert settings.network.existing_vpc.vpc_id == "vpc-0123456789abcdef0"


# --- file-level errors ----------------------------------------------------------------------


def write_stack(directory: Path, stack: str, text: str | bytes) -> Path:
    path = stack_file(stack, directory)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_missing_stack_file_lists_known_stacks(tmp_path: Path) -> None:
    for stack in ("prod", "dev"):
        shutil.copy(stack_file(stack), stack_file(stack, tmp_path))

    with pytest.raises(SettingsError) as caught:
        load_stack_settings("staging", stacks_dir=tmp_path)

    assert str(caught.value) == (
        f"{tmp_path / 'Pulumi.staging.yaml'}: no such stack file (stacks with a file: dev, prod)"
    )


def test_missing_stack_file_in_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"no such stack file \(stacks with a file: none\)$"):
        read_stack_config(stack_file("dev", tmp_path))


def test_missing_committed_stack_names_the_committed_ones() -> None:
    with pytest.raises(SettingsError) as caught:
        load_stack_settings("staging")
    assert str(caught.value) == (
        f"{shown(stack_file('staging'))}: no such stack file (stacks with a file: dev, prod, test)"
    )


def test_copied_stack_file_loads_from_another_directory(tmp_path: Path) -> None:
    shutil.copy(stack_file("prod"), stack_file("prod", tmp_path))
    assert load_stack_settings("prod", stacks_dir=tmp_path) == load_stack_settings("prod")


def test_bad_settings_in_a_file_name_that_file(tmp_path: Path) -> None:
    text = stack_file("dev").read_text(encoding="utf-8").replace("az_count: 2", "az_count: 9")
    path = write_stack(tmp_path, "dev", text)

    with pytest.raises(SettingsError) as caught:
        load_stack_settings("dev", stacks_dir=tmp_path)

    assert str(caught.value) == (
        f"{path}: invalid settings:\n"
        f"  - {P}network.az_count: Input should be less than or equal to 6 (got 9)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("config: [unclosed\n", "not valid YAML: ", id="unclosed-flow-sequence"),
        pytest.param("config:\n  a: 1\n b: 2\n", "not valid YAML: ", id="bad-indentation"),
        pytest.param(
            "config:\n  x: !!python/name:os.system\n", "not valid YAML: ", id="unsafe-tag"
        ),
        pytest.param(
            "config:\n  aws:region: 2001-13-01\n",
            "not valid YAML: month must be in 1..12",
            id="bad-date",
        ),
        pytest.param(
            "config:\n  a:b: !!int x\n", "not valid YAML: invalid literal", id="bad-int-tag"
        ),
        pytest.param("config:\n  a:b: !!int\n", "not valid YAML: ", id="empty-int-tag"),
        pytest.param("config:\n  a:b: !!timestamp x\n", "not valid YAML: ", id="bad-timestamp-tag"),
        pytest.param("config:\n  a:b: !!bool\n", "not valid YAML: ", id="empty-bool-tag"),
        pytest.param("config: " + "[" * 5000, "not valid YAML: nested too deeply", id="too-deep"),
        pytest.param(b"config:\n  a:b: \xff\xfe\n", "not UTF-8 text: ", id="not-utf8"),
        pytest.param("", "expected a mapping with a 'config:' mapping at the top", id="empty-file"),
        pytest.param("- config\n", "expected a mapping with a 'config:' mapping", id="a-list"),
        pytest.param("plain text\n", "expected a mapping with a 'config:' mapping", id="a-scalar"),
        pytest.param(
            "aws:region: eu-west-1\n", "expected a mapping with a 'config:' mapping", id="no-config"
        ),
        pytest.param("config:\n", "expected a mapping with a 'config:' mapping", id="config-null"),
        pytest.param(
            "config:\n  - aws:region\n",
            "expected a mapping with a 'config:' mapping",
            id="config-list",
        ),
    ],
)
def test_unreadable_stack_file(tmp_path: Path, text: str | bytes, expected: str) -> None:
    path = write_stack(tmp_path, "broken", text)

    for load in (lambda: read_stack_config(path), lambda: load_stack_settings("broken", tmp_path)):
        with pytest.raises(SettingsError) as caught:
            load()
        message = str(caught.value)
        assert message.startswith(f"{path}: {expected}"), message


def test_stack_file_config_goes_through_the_same_checks(tmp_path: Path) -> None:
    config = stack_config("test")
    config[P + "network"]["cidr"] = "192.168.0.0/24"
    path = write_stack(tmp_path, "test", json.dumps({"config": config}))

    with pytest.raises(SettingsError) as caught:
        load_stack_settings("test", stacks_dir=tmp_path)

    assert str(caught.value) == (
        f"{path}: invalid settings:\n"
        f"  - {P}network.cidr: prefix /24 is outside /16../22 (got '192.168.0.0/24')"
    )


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    """YAML would keep the second silently; Pulumi's parser refuses the file."""
    text = stack_file("dev").read_text()
    doubled = text.replace(
        "  mlops-platform:owner:",
        "  mlops-platform:owner: someone-else\n  mlops-platform:owner:",
        1,
    )
    assert doubled != text
    path = write_stack(tmp_path, "dev", doubled)
    line = doubled.splitlines().index("  mlops-platform:owner: someone-else") + 1
    with pytest.raises(SettingsError) as caught:
        load_stack_settings("dev", stacks_dir=tmp_path)
    assert str(caught.value) == (
        f"{path}: key 'mlops-platform:owner' appears twice, on lines {line} and {line + 1} "
        "(Pulumi refuses duplicate keys)"
    )


def test_a_nested_key_given_twice_is_refused(tmp_path: Path) -> None:
    text = stack_file("prod").read_text()
    doubled = text.replace("      size: Medium\n", "      size: Medium\n      size: Large\n", 1)
    assert doubled != text
    write_stack(tmp_path, "prod", doubled)
    with pytest.raises(SettingsError, match=r"key 'size' appears twice, on lines \d+ and \d+"):
        load_stack_settings("prod", stacks_dir=tmp_path)


def test_the_trainers_own_defaults_are_known_hyperparameters() -> None:
    from pipelines.hyperparameters import KNOWN
    from pipelines.steps.train import DEFAULT_HYPERPARAMETERS, INT_KEYS

    assert set(DEFAULT_HYPERPARAMETERS) | INT_KEYS <= KNOWN


def test_a_path_where_a_stack_name_belongs_is_named() -> None:
    for given, hint in (
        ("stacks/Pulumi.dev.yaml", "; name the stack: dev"),
        ("Pulumi.prod.yaml", "; name the stack: prod"),
        ("../elsewhere/config.yaml", ""),
    ):
        with pytest.raises(SettingsError) as caught:
            stack_file(given)
        assert str(caught.value) == f"{given!r} is a path, not a stack name{hint}"


def test_plan_of_a_path_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from stacks.__main__ import main as stacks_main

    assert stacks_main(["plan", "stacks/Pulumi.dev.yaml"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "error: 'stacks/Pulumi.dev.yaml' is a path, not a stack name; name the stack: dev"
    )
