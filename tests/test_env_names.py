"""Names of on-demand environments: the stack-name pattern, and refusing names that would make
a physical name AWS refuses, naming the limit that was hit."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from components.naming import (
    MAX_BUCKET_NAME,
    MAX_EVENT_RULE_NAME,
    MAX_FEATURE_GROUP_NAME,
    MAX_FUNCTION_NAME,
    MAX_MODEL_PACKAGE_GROUP_NAME,
    MAX_NAMESPACE_NAME,
    MAX_ROLE_NAME,
)
from stacks.env_config import EnvRequest, derive
from stacks.env_names import (
    MAX_ENDPOINT_NAME,
    EnvNameError,
    longest_name,
    name_problems,
    stack_name,
)
from stacks.loader import load_stack_settings, settings_from_config
from stacks.offline import StackRecording, evaluate_config
from stacks.settings import PROJECT, Settings
from tests.conftest import stack_config

P = f"{PROJECT}:"
SOURCE = "stacks/Pulumi.x.yaml"
# The longest names the committed stacks allow today (bucket `mlops-<stack>-access-logs-
# <12-digit account>-eu-west-1` at 63 characters binds first). Measured; the tests below check
# them independently of this number where it matters.
LONGEST_DEV, LONGEST_TEST = 18, 17


@functools.cache
def committed(stack: str) -> Settings:
    return load_stack_settings(stack)


def settings_with(stack: str, **changes: Any) -> Settings:
    """A committed stack's settings with some `mlops-platform:` / `aws:` keys replaced."""
    config = stack_config(stack)
    config.update(changes)
    return settings_from_config(config, source=SOURCE)


# --- stack_name ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "exp-42", "a", "a1", "x-1-y", "bob2"])
def test_stack_name_joins_base_and_name(name: str) -> None:
    assert stack_name("dev", name) == f"dev-{name}"


@pytest.mark.parametrize(
    "name",
    ["", "Alice", "42", "1abc", "-a", "a-", "a--b", "a_b", "a.b", "a b", "alice!", "é", "a\n"],
)
def test_stack_name_refuses_names_outside_the_pattern(name: str) -> None:
    with pytest.raises(EnvNameError) as caught:
        stack_name("dev", name)
    message = str(caught.value)
    assert message.startswith(f"name {name!r}: ")
    assert "lowercase letters and digits joined by '-'" in message


# --- name_problems ----------------------------------------------------------------------


@pytest.mark.parametrize("base", ["dev", "test"])
@pytest.mark.parametrize("name", ["alice", "exp-42", "a"])
def test_short_names_have_no_problems(base: str, name: str) -> None:
    assert name_problems(stack_name(base, name), committed(base)) == []


def test_a_long_name_is_refused_naming_the_bucket_limit() -> None:
    stack = stack_name("dev", "a" * (LONGEST_DEV + 1))
    problems = name_problems(stack, committed("dev"))
    assert problems
    bucket = f"mlops-{stack}-access-logs-111111111111-eu-west-1"
    assert (
        f"bucket name {bucket!r} is {len(bucket)} characters, over the limit of "
        f"{MAX_BUCKET_NAME}; use a shorter stack name than {stack!r}"
    ) in problems
    assert all("over the limit of" in p for p in problems)


def test_a_very_long_name_reports_every_limit_it_breaks() -> None:
    settings = committed("test")  # retrain_on_drift: a Lambda and a drift rule too
    stack = stack_name("test", "a" * 60)
    problems = "\n".join(name_problems(stack, settings))
    for what, limit in [
        ("bucket name", MAX_BUCKET_NAME),
        ("EventBridge rule name", MAX_EVENT_RULE_NAME),
        ("feature group name", MAX_FEATURE_GROUP_NAME),
        ("model package group name", MAX_MODEL_PACKAGE_GROUP_NAME),
        ("endpoint name", MAX_ENDPOINT_NAME),
        ("Lambda name", MAX_FUNCTION_NAME),
        ("IAM role name", MAX_ROLE_NAME),
    ]:
        assert f"{what} '" in problems and f"over the limit of {limit}" in problems, what
    # All four buckets, the failed-executions, approved and drift rules.
    assert problems.count("bucket name") == 4
    assert problems.count("EventBridge rule name") == 3
    # A managed cluster's team namespaces are named by the team alone.
    assert "namespace" not in problems


def on_shared_cluster(team: str) -> Settings:
    """dev's settings with one team on another stack's cluster."""
    cluster = {
        "mode": "shared",
        "shared_stack": "acme/mlops-platform/dev",
        "teams": {team: {"gpus": 1}},
    }
    return settings_with("dev", **{f"{P}cluster": cluster})


def test_a_shared_cluster_namespace_is_checked() -> None:
    team = "t" * 24  # TeamName's maximum
    shared = on_shared_cluster(team)
    stack = stack_name("dev", "a" * 40)
    namespace = f"{team}-{stack}"
    assert len(namespace) > MAX_NAMESPACE_NAME
    problems = name_problems(stack, shared)
    assert (
        f"namespace {namespace!r} is {len(namespace)} characters, over the limit of "
        f"{MAX_NAMESPACE_NAME}; use a shorter stack name than {stack!r}"
    ) in problems
    assert any(p.startswith(f"IAM role name 'mlops-{stack}-team-{team}'") for p in problems)


def test_a_stack_name_naming_refuses_is_one_problem() -> None:
    assert name_problems("Dev-Alice", committed("dev")) == [
        "stack name 'Dev-Alice' must be lowercase letters and digits joined by '-'"
    ]


# --- longest_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "longest"), [("dev", LONGEST_DEV), ("test", LONGEST_TEST)])
def test_longest_name_passes_and_one_more_fails(base: str, longest: int) -> None:
    settings = committed(base)
    assert longest_name(base, settings) == longest
    assert name_problems(stack_name(base, "a" * longest), settings) == []
    assert name_problems(stack_name(base, "a" * (longest + 1)), settings) != []


def test_longest_name_is_what_the_bucket_limit_leaves() -> None:
    settings = committed("dev")
    # mlops-dev-<name>-access-logs-<account>-<region>: everything but the name, at 63.
    fixed = len("mlops-dev--access-logs-") + len(settings.aws.account_id) + 1
    fixed += len(settings.aws.region)
    assert longest_name("dev", settings) == MAX_BUCKET_NAME - fixed


def test_a_longer_region_lowers_the_longest_name() -> None:
    sydney = settings_with("dev", **{"aws:region": "ap-southeast-2"})
    longest = longest_name("dev", sydney)
    assert longest == LONGEST_DEV - (len("ap-southeast-2") - len("eu-west-1"))
    assert name_problems(stack_name("dev", "a" * longest), sydney) == []
    problems = name_problems(stack_name("dev", "a" * (longest + 1)), sydney)
    assert problems
    assert all("ap-southeast-2" in p and "limit of 63" in p for p in problems)


def _with_spec(monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    """A feature spec for `model` (settings refuse a model without one)."""
    from pipelines.features import FEATURE_SPECS

    monkeypatch.setitem(FEATURE_SPECS, model, FEATURE_SPECS["digits"])


def test_a_long_model_name_lowers_the_longest_name_through_the_feature_group_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = stack_config("dev")
    model = "m" * 31  # ModelName's maximum
    _with_spec(monkeypatch, model)
    config[f"{P}models"] = {model: config[f"{P}models"]["digits"]}
    settings = settings_from_config(config, source=SOURCE)
    longest = longest_name("dev", settings)
    # mlops-dev-<name>-<model>-features at 64.
    assert longest == MAX_FEATURE_GROUP_NAME - len(f"mlops-dev--{model}-features")
    assert longest < LONGEST_DEV
    problems = name_problems(stack_name("dev", "a" * (longest + 1)), settings)
    assert any(p.startswith("feature group name") for p in problems)


def test_a_team_name_at_its_limit_does_not_bind_before_the_buckets() -> None:
    # TeamName allows 24 characters: mlops-dev-<name>-team-<24> fits 64 up to a 24-character
    # name, and <team>-dev-<name> fits 63 up to 34; the buckets bind first, at 18.
    team = "t" * 24
    shared = on_shared_cluster(team)
    assert longest_name("dev", shared) == LONGEST_DEV


def test_a_team_role_longer_than_the_bucket_names_lowers_the_longest_name() -> None:
    # Longer than the schema allows (24), to show longest_name follows the team role limit
    # when it is the one that binds: mlops-dev-<name>-team-<40> at 64 leaves 8.
    base = on_shared_cluster("research")
    team = "t" * 40
    cluster = base.cluster.model_copy(update={"teams": {team: base.cluster.teams["research"]}})
    settings = base.model_copy(update={"cluster": cluster})
    longest = longest_name("dev", settings)
    assert longest == MAX_ROLE_NAME - len(f"mlops-dev--team-{team}") == 8
    problems = name_problems(stack_name("dev", "a" * (longest + 1)), settings)
    assert [p.split(" '")[0] for p in problems] == ["IAM role name"]


def test_longest_name_is_zero_when_no_name_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config("dev")
    model = "m" * 31
    _with_spec(monkeypatch, model)
    config[f"{P}models"] = {model: config[f"{P}models"]["digits"]}
    settings = settings_from_config(config, source=SOURCE)
    # A base so long that even a one-letter name breaks the feature group limit.
    base = "b" * 20
    assert name_problems(stack_name(base, "a"), settings) != []
    assert longest_name(base, settings) == 0


# --- the longest name, evaluated: every physical name the program makes fits -----------------

NOW = datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC)
# (type, input) -> AWS's limit, for names that carry the stack name.
NAME_LIMITS = {
    ("aws:s3/bucket:Bucket", "bucket"): 63,
    ("aws:iam/role:Role", "name"): 64,
    ("aws:cloudwatch/eventRule:EventRule", "name"): 64,
    ("aws:scheduler/schedule:Schedule", "name"): 64,
    ("aws:lambda/function:Function", "name"): 64,
    ("aws:sagemaker/featureGroup:FeatureGroup", "featureGroupName"): 64,
    ("aws:sagemaker/modelPackageGroup:ModelPackageGroup", "modelPackageGroupName"): 63,
    ("aws:sagemaker/pipeline:Pipeline", "pipelineName"): 256,
    ("aws:sns/topic:Topic", "name"): 256,
    ("aws:budgets/budget:Budget", "name"): 100,
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "name"): 255,
    ("aws:ecr/repository:Repository", "name"): 256,
    ("aws:kms/alias:Alias", "name"): 256,
}


@functools.cache
def longest_dev_env() -> StackRecording:
    name = "n" * longest_name("dev", committed("dev"))
    request = EnvRequest(
        name=name, base="dev", owner="alice", ttl=timedelta(hours=8), organization="acme"
    )
    derived = derive(request, stack_config("dev"), NOW)
    return evaluate_config(derived.stack, derived.config)


def test_the_longest_allowed_name_makes_only_names_aws_accepts() -> None:
    recording = longest_dev_env()
    stack = recording.stack
    assert len(stack) == len("dev-") + LONGEST_DEV
    checked = []
    for resource in recording.custom_resources:
        for (kind, key), limit in NAME_LIMITS.items():
            if resource.type == kind and key in resource.inputs:
                value = resource.inputs[key]
                checked.append((kind, value))
                assert len(value) <= limit, (kind, value, len(value))
        if resource.type == "kubernetes:core/v1:Namespace":
            name = resource.inputs["metadata"]["name"]
            checked.append((resource.type, name))
            assert len(name) <= MAX_NAMESPACE_NAME, name
    for alarm in recording.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        endpoint = (alarm.inputs.get("dimensions") or {}).get("EndpointName")
        if endpoint:
            assert len(endpoint) <= MAX_ENDPOINT_NAME, endpoint
    # The names that carry the stack were found, and the bucket one is exactly at its limit.
    assert sum(stack in value for _, value in checked) >= 15
    assert max(len(r.inputs["bucket"]) for r in recording.of_type("aws:s3/bucket:Bucket")) == 63
