"""Encryption: customer-managed keys with rotation, explicit policies, aliases."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.aws_context import AwsContext
from components.key_policies import (
    ADMIN_ACTIONS,
    KeyOwners,
    data_key_policy,
    logs_key_policy,
)
from stacks.offline import StackRecording

CTX = AwsContext(account_id="123456789012", region="eu-west-1")
DEPLOYER = "arn:aws:iam::123456789012:role/mlops-deployer"
BREAK_GLASS = "arn:aws:iam::123456789012:role/break-glass"
OWNERS = KeyOwners(administrators=(DEPLOYER, BREAK_GLASS), base="mlops-dev")
POLICIES = [data_key_policy(CTX, OWNERS), logs_key_policy(CTX, OWNERS)]


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
    settings = recording.settings
    ctx = AwsContext(settings.aws.account_id, settings.aws.region)
    owners = KeyOwners(
        administrators=(settings.deployer_role_arn, *settings.encryption.key_administrators),
        base=f"mlops-{recording.stack}",
    )
    data = recording.named("mlops-encryption-data-key")
    logs = recording.named("mlops-encryption-logs-key")
    assert json.loads(data.inputs["policy"]) == data_key_policy(ctx, owners)
    assert json.loads(logs.inputs["policy"]) == logs_key_policy(ctx, owners)


@pytest.mark.parametrize("policy", POLICIES)
def test_no_wildcard_principal_or_action(policy: dict[str, Any]) -> None:
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert statement["Principal"] != "*"
        assert "*" not in json.dumps(statement["Principal"])
        actions = statement["Action"]
        assert "kms:*" not in actions and "*" not in actions


@pytest.mark.parametrize("policy", POLICIES)
def test_named_roles_administer_without_create_or_put_wildcards(policy: dict[str, Any]) -> None:
    admin = _statements(policy)["KeyAdministrationByNamedRoles"]
    # Never the whole account: a principal allowed kms:CreateGrant could grant itself Decrypt.
    assert admin["Principal"] == {"AWS": [DEPLOYER, BREAK_GLASS]}
    assert admin["Action"] == ADMIN_ACTIONS
    assert "kms:ScheduleKeyDeletion" in admin["Action"]
    # KMS's lockout check: the creator must keep PutKeyPolicy.
    assert "kms:PutKeyPolicy" in admin["Action"]
    for wildcard in ("kms:Create*", "kms:Put*", "kms:CreateGrant"):
        assert wildcard not in admin["Action"]
    assert not any(a in admin["Action"] for a in ("kms:Encrypt", "kms:Decrypt"))


def test_grants_only_for_aws_resources_or_the_node_volume_role() -> None:
    policy = data_key_policy(CTX, OWNERS)
    for statement in policy["Statement"]:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        if "kms:CreateGrant" not in actions:
            continue
        condition = statement["Condition"]
        if statement["Sid"] == "GrantsForAwsResources":
            assert condition["Bool"] == {"kms:GrantIsForAWSResource": "true"}
        else:
            assert statement["Principal"] == {"AWS": DEPLOYER}
            assert condition == {
                "StringEquals": {
                    "kms:GranteePrincipal": "arn:aws:iam::123456789012:role/aws-service-role/"
                    "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
                }
            }


def test_data_key_use_only_through_listed_services() -> None:
    use = _statements(data_key_policy(CTX, OWNERS))["KeyUseThroughAwsServices"]
    condition = use["Condition"]["StringEquals"]
    assert condition["kms:CallerAccount"] == "123456789012"
    via = condition["kms:ViaService"]
    for service in ("s3", "sagemaker", "ecr", "eks", "sns", "scheduler"):
        assert f"{service}.eu-west-1.amazonaws.com" in via


def test_eventbridge_is_scoped_by_encryption_context_not_source() -> None:
    statements = _statements(data_key_policy(CTX, OWNERS))
    topics = statements["EventBridgeDeliversToThisEnvironmentsTopics"]
    queues = statements["EventBridgeDeliversToThisEnvironmentsQueues"]
    for statement in (topics, queues):
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        # EventBridge sends none of these to KMS: a condition on them drops every delivery.
        assert "aws:Source" not in json.dumps(statement["Condition"])
    assert topics["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:sns:topicArn": "arn:aws:sns:eu-west-1:123456789012:mlops-dev-*"
    }
    assert queues["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:sqs:arn": "arn:aws:sqs:eu-west-1:123456789012:mlops-dev-*"
    }
    publishers = statements["PublishToEncryptedTopics"]
    assert "events.amazonaws.com" not in publishers["Principal"]["Service"]


def test_logs_key_lets_cloudwatch_logs_of_this_account_only() -> None:
    statements = _statements(logs_key_policy(CTX, OWNERS))
    logs = statements["CloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"] == {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:123456789012:log-group:*"
    }
    # The access-log bucket uses SSE-S3: nothing reads this key through S3.
    assert set(statements) == {"KeyAdministrationByNamedRoles", "CloudWatchLogsOfThisAccount"}


def test_partition_follows_region() -> None:
    china = AwsContext(account_id="123456789012", region="cn-north-1")
    use = _statements(data_key_policy(china, OWNERS))["KeyUseThroughAwsServices"]
    assert use["Principal"] == {"AWS": "arn:aws-cn:iam::123456789012:root"}
