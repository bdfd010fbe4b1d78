"""Encryption: customer-managed keys with rotation, explicit policies, aliases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws_context import AwsContext
from components.key_policies import ADMIN_ACTIONS, data_key_policy, logs_key_policy
from stacks.offline import StackRecording

CTX = AwsContext(account_id="123456789012", region="eu-west-1")


def _statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_two_rotating_keys_per_environment(recording: StackRecording) -> None:
    keys = {k.name: k for k in recording.of_type("aws:kms/key:Key")}
    assert set(keys) == {"mlops-encryption-data-key", "mlops-encryption-logs-key"}
    encryption = recording.settings.encryption
    for key in keys.values():
        assert key.inputs["enableKeyRotation"] is True
        assert key.inputs["rotationPeriodInDays"] == encryption.rotation_period_days
        assert key.inputs["deletionWindowInDays"] == encryption.deletion_window_days
        assert key.inputs["bypassPolicyLockoutSafetyCheck"] is False
        assert key.parent_name == "mlops-encryption"


def test_aliases_name_the_environment(recording: StackRecording) -> None:
    aliases = sorted(a.inputs["name"] for a in recording.of_type("aws:kms/alias:Alias"))
    stack = recording.stack
    assert aliases == [f"alias/mlops-{stack}/data", f"alias/mlops-{stack}/logs"]


def test_key_policies_on_the_keys_are_the_documented_ones(recording: StackRecording) -> None:
    ctx = AwsContext(recording.settings.aws.account_id, recording.settings.aws.region)
    data = recording.named("mlops-encryption-data-key")
    logs = recording.named("mlops-encryption-logs-key")
    assert json.loads(data.inputs["policy"]) == data_key_policy(ctx)
    assert json.loads(logs.inputs["policy"]) == logs_key_policy(ctx)


@pytest.mark.parametrize("policy", [data_key_policy(CTX), logs_key_policy(CTX)])
def test_no_wildcard_principal_or_action(policy: dict[str, Any]) -> None:
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] != "*"
        assert "*" not in json.dumps(statement["Principal"])
        actions = statement["Action"]
        assert "kms:*" not in actions and "*" not in actions


@pytest.mark.parametrize("policy", [data_key_policy(CTX), logs_key_policy(CTX)])
def test_account_root_administers_without_kms_star(policy: dict[str, Any]) -> None:
    admin = _statements(policy)["KeyAdministrationByAccount"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert admin["Action"] == ADMIN_ACTIONS
    assert "kms:ScheduleKeyDeletion" in admin["Action"]
    assert not any(a in admin["Action"] for a in ("kms:Encrypt", "kms:Decrypt"))


def test_data_key_use_only_through_listed_services() -> None:
    use = _statements(data_key_policy(CTX))["KeyUseThroughAwsServices"]
    condition = use["Condition"]["StringEquals"]
    assert condition["kms:CallerAccount"] == "123456789012"
    via = condition["kms:ViaService"]
    for service in ("s3", "sagemaker", "ecr", "eks", "sns"):
        assert f"{service}.eu-west-1.amazonaws.com" in via
    grants = _statements(data_key_policy(CTX))["GrantsForAwsResources"]
    assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_logs_key_lets_cloudwatch_logs_of_this_account_only() -> None:
    logs = _statements(logs_key_policy(CTX))["CloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*"
    }
    delivery = _statements(logs_key_policy(CTX))["S3ServerAccessLogDelivery"]
    assert delivery["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_partition_follows_region() -> None:
    china = AwsContext(account_id="123456789012", region="cn-north-1")
    admin = _statements(data_key_policy(china))["KeyAdministrationByAccount"]
    assert admin["Principal"] == {"AWS": "arn:aws-cn:iam::123456789012:root"}
