"""On-demand environments' config: derived from dev or test so that the copy is cheap, fast and
disposable; every refusal an EnvError naming the argument; and the derived stack, evaluated
offline, passes every policy rule while creating none of the slow or costly resources."""

from __future__ import annotations

import copy
import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stacks.env_config import DerivedEnv, EnvError, EnvRequest, apply_override, derive
from stacks.offline import StackRecording, evaluate_config
from stacks.policy_check import check
from tests.conftest import recorded, stack_config

P = "mlops-platform:"
ORG = "acme"
NOW = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)
EXPIRES = "2026-11-20T17:30:15Z"  # NOW + 8h, whole seconds


def request(base: str = "dev", **changes: Any) -> EnvRequest:
    fields: dict[str, Any] = {
        "name": "alice",
        "base": base,
        "owner": "alice",
        "ttl": timedelta(hours=8),
        "organization": ORG,
    }
    fields.update(changes)
    return EnvRequest(**fields)


@functools.cache
def _derived(base: str) -> DerivedEnv:
    return derive(request(base), stack_config(base), NOW)


def derived(base: str) -> DerivedEnv:
    """`<base>-alice`, derived once; a deep copy of it for each test."""
    return copy.deepcopy(_derived(base))


def refusal(req: EnvRequest, config: dict[str, Any] | None = None, **kwargs: Any) -> str:
    with pytest.raises(EnvError) as caught:
        derive(req, stack_config(req.base) if config is None else config, NOW, **kwargs)
    return str(caught.value)


# --- derive: what changes ---------------------------------------------------------------


@pytest.mark.parametrize("base", ["dev", "test"])
def test_derived_stack_owner_and_lifetime(base: str) -> None:
    env = derived(base)
    assert env.stack == f"{base}-alice"
    assert env.config[f"{P}owner"] == "alice"
    assert env.config[f"{P}on_demand"] == {"base": base, "expires_at": EXPIRES}
    assert env.settings.owner == "alice"
    assert env.settings.on_demand is not None
    assert env.settings.on_demand.base == base
    assert env.settings.on_demand.expires_at == datetime(2026, 11, 20, 17, 30, 15, tzinfo=UTC)
    # Nothing else about the environment changes: same tier, account, region, cost center.
    base_config = stack_config(base)
    for key in (f"{P}environment", f"{P}cost_center", "aws:region", "aws:allowedAccountIds"):
        assert env.config[key] == base_config[key]


def test_expiry_is_written_in_utc_whatever_the_clock_zone() -> None:
    dublin_summer = timezone(timedelta(hours=1))
    now = datetime(2026, 7, 1, 23, 45, 0, tzinfo=dublin_summer)
    env = derive(request(ttl=timedelta(days=1, hours=12)), stack_config("dev"), now)
    assert env.config[f"{P}on_demand"]["expires_at"] == "2026-07-03T10:45:00Z"


@pytest.mark.parametrize("base", ["dev", "test"])
def test_nothing_is_protected_or_retained_and_buckets_empty_on_destroy(base: str) -> None:
    config = derived(base).config
    assert config[f"{P}protection"] == {"protect": False, "retain_on_delete": False}
    assert config[f"{P}artifact_store"]["force_destroy"] is True
    # The rest of the artifact store settings are the base's.
    base_store = stack_config(base)[f"{P}artifact_store"]
    assert {k: v for k, v in config[f"{P}artifact_store"].items() if k != "force_destroy"} == {
        k: v for k, v in base_store.items() if k != "force_destroy"
    }


@pytest.mark.parametrize("base", ["dev", "test"])
def test_the_network_is_the_base_stacks(base: str) -> None:
    network = derived(base).config[f"{P}network"]
    assert network["shared_stack"] == f"{ORG}/mlops-platform/{base}"
    assert "existing_vpc" not in network
    assert "nat_gateways" not in network
    base_network = stack_config(base)[f"{P}network"]
    for key in ("cidr", "az_count", "egress"):
        assert network[key] == base_network[key]


def test_an_existing_vpc_and_nat_gateways_of_the_base_are_dropped() -> None:
    config = stack_config("test")
    config[f"{P}network"]["existing_vpc"] = {
        "vpc_id": "vpc-0123456789abcdef0",
        "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "private_route_table_ids": ["rtb-0123456789abcdef0"],
    }
    config[f"{P}network"]["nat_gateways"] = "single"
    network = derive(request("test"), config, NOW).config[f"{P}network"]
    assert network == {
        "cidr": "10.20.0.0/16",
        "az_count": 2,
        "egress": "none",
        "shared_stack": f"{ORG}/mlops-platform/test",
    }


@pytest.mark.parametrize("base", ["dev", "test"])
def test_mlflow_and_the_cluster_are_the_base_stacks(base: str) -> None:
    config = derived(base).config
    reference = f"{ORG}/mlops-platform/{base}"
    assert config[f"{P}registry"]["mlflow"] == {"mode": "shared", "shared_stack": reference}
    teams = stack_config(base)[f"{P}cluster"]["teams"]
    assert teams
    assert config[f"{P}cluster"] == {"mode": "shared", "shared_stack": reference, "teams": teams}


def test_a_base_that_shares_mlflow_points_the_copy_at_the_same_server() -> None:
    config = stack_config("dev")
    config[f"{P}registry"]["mlflow"] = {"mode": "shared", "shared_stack": "other/mlflow/hub"}
    env = derive(request(), config, NOW)
    assert env.config[f"{P}registry"]["mlflow"] == {
        "mode": "shared",
        "shared_stack": "other/mlflow/hub",
    }


def test_a_base_without_a_cluster_gets_none() -> None:
    config = stack_config("dev")
    del config[f"{P}cluster"]
    env = derive(request(), config, NOW)
    assert f"{P}cluster" not in env.config
    assert env.settings.cluster.mode == "disabled"


@pytest.mark.parametrize("base", ["dev", "test"])
def test_schedules_are_disabled(base: str) -> None:
    env = derived(base)
    base_models = stack_config(base)[f"{P}models"]
    for name, model in env.config[f"{P}models"].items():
        assert model["schedule"] == {**base_models[name]["schedule"], "enabled": False}
    assert all(
        m.schedule is not None and not m.schedule.enabled for m in env.settings.models.values()
    )


def test_dev_keeps_its_serverless_endpoint_settings() -> None:
    env = derived("dev")
    base_deployment = stack_config("dev")[f"{P}models"]["digits"]["deployment"]
    assert env.config[f"{P}models"]["digits"]["deployment"] == base_deployment
    assert env.config[f"{P}models"]["digits"]["deployment"]["serverless"] == {
        "memory_mb": 2048,
        "max_concurrency": 5,
    }


def test_an_instance_endpoint_becomes_serverless_with_defaults_and_no_drift_retraining() -> None:
    env = derived("test")
    deployment = env.config[f"{P}models"]["digits"]["deployment"]
    assert deployment == {"serverless": {}}
    settings = env.settings.models["digits"].deployment
    assert settings is not None
    assert settings.serverless is not None
    assert (settings.serverless.memory_mb, settings.serverless.max_concurrency) == (2048, 5)
    assert settings.retrain_on_drift is False


def test_the_latency_alarm_threshold_is_kept() -> None:
    config = stack_config("test")
    config[f"{P}models"]["digits"]["deployment"]["latency_p99_ms"] = 250
    env = derive(request("test"), config, NOW)
    assert env.config[f"{P}models"]["digits"]["deployment"] == {
        "latency_p99_ms": 250,
        "serverless": {},
    }


@pytest.mark.parametrize("base", ["dev", "test"])
def test_endpoints_off_removes_deployments(base: str) -> None:
    env = derive(request(base, endpoints="off"), stack_config(base), NOW)
    assert env.config[f"{P}models"]["digits"]["deployment"] is None
    assert env.settings.models["digits"].deployment is None
    assert "models.digits: endpoint off" in env.changes


def test_changes_say_what_differs_from_the_base() -> None:
    assert derived("test").changes == [
        f"owner alice, expires {EXPIRES}; nothing protected or retained",
        f"VPC: {ORG}/mlops-platform/test's",
        f"MLflow tracking server: {ORG}/mlops-platform/test's",
        f"training cluster: {ORG}/mlops-platform/test's (team namespaces only)",
        "models.digits: schedule disabled",
        "models.digits: endpoint serverless",
    ]


@pytest.mark.parametrize("base", ["dev", "test"])
def test_the_base_config_is_not_mutated(base: str) -> None:
    config = stack_config(base)
    before = copy.deepcopy(config)
    derive(request(base, overrides=("models.digits.quality_gate.threshold=0.5",)), config, NOW)
    assert config == before


@pytest.mark.parametrize("base", ["dev", "test"])
def test_derived_config_validates_like_a_stack_file(base: str) -> None:
    env = derived(base)
    assert env.settings.environment == base
    assert env.settings.network.shared_stack == f"{ORG}/mlops-platform/{base}"
    assert env.settings.artifact_store.force_destroy is True


# --- overrides ------------------------------------------------------------------------------


def test_overrides_come_last_and_are_listed() -> None:
    env = derive(
        request(
            overrides=(
                "models.digits.training.instance_type=ml.g5.2xlarge",
                "models.digits.schedule.enabled=true",
            )
        ),
        stack_config("dev"),
        NOW,
    )
    model = env.settings.models["digits"]
    assert model.training.instance_type == "ml.g5.2xlarge"
    assert model.schedule is not None and model.schedule.enabled is True
    assert env.changes[-2:] == [
        "--set mlops-platform:models.digits.training.instance_type=ml.g5.2xlarge",
        "--set mlops-platform:models.digits.schedule.enabled=true",
    ]


def test_an_aws_override_changes_the_region() -> None:
    env = derive(request(overrides=("aws:region=ap-southeast-2",)), stack_config("dev"), NOW)
    assert env.settings.aws.region == "ap-southeast-2"


def test_apply_override_sets_nested_keys_typed_by_yaml() -> None:
    config = stack_config("dev")
    apply_override(config, "models.digits.training.max_runtime_seconds=7200")
    apply_override(config, "models.digits.auto_approve=false")
    apply_override(config, "models.digits.training.hyperparameters.eta=0.3")
    apply_override(config, "models.digits.image_tag=2026.11.2")
    apply_override(config, "monitoring.extra=[1, two]")
    model = config[f"{P}models"]["digits"]
    assert model["training"]["max_runtime_seconds"] == 7200
    assert model["auto_approve"] is False
    assert model["training"]["hyperparameters"] == {
        "num_boost_round": 200,
        "max_depth": 6,
        "eta": 0.3,
    }
    assert model["image_tag"] == "2026.11.2"
    assert config[f"{P}monitoring"]["extra"] == [1, "two"]


def test_apply_override_creates_missing_mappings() -> None:
    config = stack_config("dev")
    apply_override(config, "feature_store.allow_replacement=true")
    apply_override(config, "policy.advisory_rules=[N7]")
    assert config[f"{P}feature_store"] == {"online_ttl_hours": 168, "allow_replacement": True}
    assert config[f"{P}policy"] == {"advisory_rules": ["N7"]}


def test_apply_override_null_removes_the_key() -> None:
    config = stack_config("dev")
    apply_override(config, "models.digits.schedule=null")
    apply_override(config, "tags=null")
    assert "schedule" not in config[f"{P}models"]["digits"]
    assert f"{P}tags" not in config
    apply_override(config, "models.digits.not_there=null")  # removing nothing is fine
    assert "not_there" not in config[f"{P}models"]["digits"]


def test_apply_override_addresses_other_namespaces() -> None:
    config = stack_config("dev")
    text = apply_override(config, "aws:region=ap-southeast-2")
    assert config["aws:region"] == "ap-southeast-2"
    assert f"{P}aws:region" not in config
    assert text == "--set aws:region=ap-southeast-2"
    apply_override(config, "mlops-platform:owner=bob")
    assert config[f"{P}owner"] == "bob"


def test_apply_override_returns_the_full_key() -> None:
    config = stack_config("dev")
    assert apply_override(config, " owner =bob") == "--set mlops-platform:owner=bob"
    assert config[f"{P}owner"] == "bob"


def test_apply_override_keeps_text_values_as_text() -> None:
    config = stack_config("dev")
    apply_override(config, "owner=alice smith")
    apply_override(config, "cost_center=")
    assert config[f"{P}owner"] == "alice smith"
    assert config[f"{P}cost_center"] == ""


# --- refusals -----------------------------------------------------------------------------


def test_prod_is_never_a_base() -> None:
    message = refusal(request("prod"))
    assert message.startswith("--from prod: ")
    assert "never prod" in message


def test_a_prod_tier_under_another_name_is_never_a_base() -> None:
    message = refusal(request("staging"), config=stack_config("prod"))
    assert message.startswith("--from staging: ")
    assert "never prod" in message


def test_an_on_demand_environment_is_never_a_base() -> None:
    message = refusal(request(name="bob"), config=derived("dev").config)
    assert message.startswith("--from dev: ")
    assert "an on-demand environment cannot be a base" in message
    assert "(dev)" in message


def test_an_invalid_base_stack_file_is_refused_naming_it() -> None:
    config = stack_config("dev")
    config[f"{P}network"]["az_count"] = 9
    message = refusal(request(), config=config)
    assert message.startswith("--from dev: the base stack file is invalid:")
    assert "stacks/Pulumi.dev.yaml" in message
    assert "mlops-platform:network.az_count" in message


def test_a_taken_name_is_refused() -> None:
    message = refusal(request(), existing_stacks=["dev", "test", "dev-alice"])
    assert message == "name 'alice': stack 'dev-alice' already exists; pick another name"


def test_the_same_name_from_another_base_is_free() -> None:
    env = derive(request("test"), stack_config("test"), NOW, existing_stacks=["dev-alice"])
    assert env.stack == "test-alice"


@pytest.mark.parametrize("name", ["Alice", "al_ice", "-alice", "alice-", "4lice", ""])
def test_a_bad_name_is_refused(name: str) -> None:
    message = refusal(request(name=name))
    assert message.startswith(f"name {name!r}: ")
    assert "lowercase letters and digits" in message


def test_a_name_too_long_lists_the_limit_and_the_longest_allowed() -> None:
    name = "a" * 19
    message = refusal(request(name=name))
    assert message.startswith(f"name {name!r} makes names AWS refuses:\n")
    assert "bucket name 'mlops-dev-aaaaaaaaaaaaaaaaaaa-access-logs-" in message
    assert "over the limit of 63" in message
    assert message.endswith("names from 'dev' may have at most 18 characters")
    # The longest allowed is accepted.
    assert derive(request(name="a" * 18), stack_config("dev"), NOW).stack == "dev-" + "a" * 18


def test_the_longest_allowed_name_follows_the_overrides() -> None:
    # A region override makes bucket names longer: the limit reported is for the result.
    message = refusal(request(name="a" * 18, overrides=("aws:region=ap-southeast-2",)))
    assert "ap-southeast-2" in message
    assert message.endswith("names from 'dev' may have at most 13 characters")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("owner", "write key=value"),
        ("=bob", "write key=value"),
        ("  =bob", "write key=value"),
        ("owner=[", "the value is not valid YAML"),
        ("owner={a: 1", "the value is not valid YAML"),
        ("owner.name=bob", "mlops-platform:owner is not a mapping; it holds 'alice'"),
        (
            "network.cidr.prefix=16",
            "mlops-platform:network.cidr is not a mapping; it holds '10.10.0.0/16'",
        ),
        ("on_demand.expires_at=2030-01-01T00:00:00Z", "on_demand is set by env create"),
        ("on_demand=null", "on_demand is set by env create"),
        ("mlops-platform:on_demand.base=test", "on_demand is set by env create"),
    ],
)
def test_a_bad_override_is_refused_naming_it(override: str, says: str) -> None:
    message = refusal(request(overrides=(override,)))
    assert message.startswith(f"--set {override!r}: "), message
    assert says in message


def test_apply_override_refuses_on_its_own_too() -> None:
    config = stack_config("dev")
    before = copy.deepcopy(config)
    with pytest.raises(EnvError, match=r"^--set 'on_demand=null': "):
        apply_override(config, "on_demand=null")
    with pytest.raises(EnvError, match=r"^--set 'owner\.x=1': "):
        apply_override(config, "owner.x=1")
    assert config == before


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("network.az_count=9", "mlops-platform:network.az_count"),
        ("models.digits.training.instance_count=0", "mlops-platform:models.digits.training"),
        ("aws:region=mars", "aws:region"),
        ("protection.protect=true", "mlops-platform:protection.protect"),
        ("network.colour=blue", "mlops-platform:network.colour"),
        ("cost_center=", "mlops-platform:cost_center"),
    ],
)
def test_an_override_the_schema_refuses_names_the_stack_file_key(override: str, key: str) -> None:
    message = refusal(request(overrides=(override,)))
    assert message.startswith(
        "stacks/Pulumi.dev-alice.yaml (derived from stacks/Pulumi.dev.yaml): invalid settings:"
    )
    assert key in message


def test_an_override_that_makes_it_prod_is_refused() -> None:
    message = refusal(request(overrides=("environment=prod",)))
    assert "mlops-platform:on_demand: prod has no on-demand copies" in message


def test_the_name_is_checked_before_the_base() -> None:
    message = refusal(request("prod", name="Bad"))
    assert message.startswith("name 'Bad': ")


# --- offline evaluation: the acceptance -------------------------------------------------

BASES = ["dev", "test"]
# Resources that take minutes to create or cost by the hour; the base owns them.
NOT_CREATED = [
    "aws:eks/cluster:Cluster",
    "aws:eks/nodeGroup:NodeGroup",
    "aws:eks/addon:Addon",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/flowLog:FlowLog",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
    "aws:amp/workspace:Workspace",
    "aws:amp/scraper:Scraper",
    "kubernetes:helm.sh/v3:Release",
]
STACK_REFERENCE = "pulumi:pulumi:StackReference"
AWS_PROVIDER = "pulumi:providers:aws"


@functools.cache
def evaluated(base: str) -> StackRecording:
    env = _derived(base)
    return evaluate_config(env.stack, env.config)


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_derived_stack_passes_every_policy_rule(base: str) -> None:
    report = check(evaluated(base))
    assert report.rules_run > 0
    assert report.mandatory == []
    assert report.advisory == []


def test_the_derived_stack_creates_nothing_slow_or_costly(base: str) -> None:
    counts = evaluated(base).count_by_type()
    assert {t: counts[t] for t in NOT_CREATED if counts[t]} == {}
    # The base does create the ones that matter (so the check above is not vacuous).
    base_counts = recorded(base).count_by_type()
    for kind in (
        "aws:eks/cluster:Cluster",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ec2/flowLog:FlowLog",
        "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer",
    ):
        assert base_counts[kind] >= 1, kind
    if base == "dev":
        assert base_counts["aws:ec2/natGateway:NatGateway"] >= 1


def test_the_derived_stack_reads_the_base_through_stack_references(base: str) -> None:
    references = evaluated(base).of_type(STACK_REFERENCE)
    # The VPC, the cluster and the MLflow server: each read from the base.
    assert len(references) == 3
    assert all(r.inputs == {"name": f"{ORG}/mlops-platform/{base}"} for r in references)
    assert {r.name for r in references} == {
        "mlops-network-owner",
        "mlops-shared-cluster-owner",
        "mlops-registry-mlflow-stack",
    }


def test_the_derived_stack_runs_in_the_base_vpc(base: str) -> None:
    recording = evaluated(base)
    groups = recording.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert groups
    # The fake VPC id the mocks answer for the StackReference's vpc_id output.
    assert all(g.inputs["vpcId"] == "vpc-0shared0000000000" for g in groups)


def test_the_derived_stack_schedules_are_disabled(base: str) -> None:
    schedules = evaluated(base).of_type("aws:scheduler/schedule:Schedule")
    assert schedules
    assert all(s.inputs["state"] == "DISABLED" for s in schedules)
    assert all(s.inputs["name"].startswith(f"mlops-{base}-alice-") for s in schedules)


def test_every_resource_is_tagged_with_its_owner_base_and_expiry(base: str) -> None:
    recording = evaluated(base)
    (provider,) = recording.of_type(AWS_PROVIDER)
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags["expires-at"] == EXPIRES
    assert tags["on-demand-base"] == base
    assert tags["owner"] == "alice"
    assert tags["environment"] == f"{base}-alice"
    aws_resources = [r for r in recording.custom_resources if r.type.startswith("aws:")]
    assert aws_resources
    untagged = [r.name for r in aws_resources if not (r.provider or "").startswith(provider.urn)]
    assert untagged == []


def test_the_derived_stack_goes_away_whole(base: str) -> None:
    recording = evaluated(base)
    buckets = recording.of_type("aws:s3/bucket:Bucket")
    assert len(buckets) == 4
    assert all(b.inputs.get("forceDestroy") is True for b in buckets)
    repositories = recording.of_type("aws:ecr/repository:Repository")
    assert repositories
    assert all(r.inputs.get("forceDelete") is True for r in repositories)
    kept = [r.name for r in recording.resources if r.protect or r.retain_on_delete]
    assert kept == []


def test_the_derived_stack_creates_far_fewer_resources_than_its_base(base: str) -> None:
    derived_counts = evaluated(base).count_by_type()
    base_counts = recorded(base).count_by_type()
    # Measured (cloud resources, no components or providers): dev 191 -> dev-alice 107,
    # test 191 -> test-alice 107 (a cluster-backed model adds its launcher and queue to
    # both). The copy adds no kind of resource and no more of any kind.
    grown = {t: (n, base_counts[t]) for t, n in derived_counts.items() if n > base_counts[t]}
    assert grown == {}
    assert sum(derived_counts.values()) <= 0.62 * sum(base_counts.values())


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("protection.retain_on_delete=true", "mlops-platform:protection.retain_on_delete"),
        ("artifact_store.force_destroy=false", "mlops-platform:artifact_store.force_destroy"),
    ],
)
def test_an_override_that_would_leave_resources_behind_is_refused(override: str, key: str) -> None:
    # BUG (stacks/settings.py, _on_demand_floors): only protection.protect is enforced for
    # on-demand environments. Retained resources outlive `env destroy`/`env reap` (orphans
    # that keep costing), and without force_destroy a bucket with objects makes the destroy
    # fail, yet env_config promises "nothing is protected or retained and buckets are emptied
    # on destroy, so it goes away whole".
    message = refusal(request(overrides=(override,)))
    assert key in message


def test_an_override_of_one_copy_does_not_leak_into_the_next() -> None:
    """test's instance endpoint becomes serverless with defaults in every copy, whatever an
    earlier copy in the same process set."""
    config = stack_config("test")
    resized = ("models.digits.deployment.serverless.memory_mb=4096",)
    first = derive(request("test", name="one", overrides=resized), config, NOW)
    second = derive(request("test", name="two"), config, NOW)
    assert first.config[P + "models"]["digits"]["deployment"]["serverless"] == {"memory_mb": 4096}
    assert second.config[P + "models"]["digits"]["deployment"]["serverless"] == {}
