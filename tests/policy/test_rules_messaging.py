"""E8 (policy/mlops_rules/messaging.py): SNS topics and Secrets Manager secrets are encrypted
with a customer-managed key, not none and not the AWS managed one."""

from __future__ import annotations

from tests.policy.helpers import KEY, resource, run

POLICY = "e8-sns-secrets-kms"
TOPIC = "aws:sns/topic:Topic"
SECRET_TYPE = "aws:secretsmanager/secret:Secret"


def test_e8_flags_unencrypted_and_aws_managed_topics_and_secrets() -> None:
    plain_topic = resource(TOPIC, "alerts")
    managed_topic = resource(TOPIC, "drift", {"kmsMasterKeyId": "alias/aws/sns"})
    plain_secret = resource(SECRET_TYPE, "mlflow-db")
    managed_secret = resource(
        SECRET_TYPE,
        "api-token",
        {"kmsKeyId": "arn:aws:kms:eu-west-1:111122223333:alias/aws/secretsmanager"},
    )
    found = run(POLICY, plain_topic, managed_topic, plain_secret, managed_secret)
    assert [(v.rule, v.urn) for v in found] == [
        (POLICY, plain_topic.urn),
        (POLICY, managed_topic.urn),
        (POLICY, plain_secret.urn),
        (POLICY, managed_secret.urn),
    ]
    assert "not encrypted at rest" in found[0].message
    assert "AWS managed key alias/aws/sns" in found[1].message
    assert "uses aws/secretsmanager" in found[2].message
    assert "alias/aws/secretsmanager" in found[3].message


def test_e8_passes_the_environment_key_and_keys_unknown_in_a_preview() -> None:
    resources = (
        resource(TOPIC, "alerts", {"kmsMasterKeyId": KEY}),
        resource(TOPIC, "drift", {"kmsMasterKeyId": "alias/mlops-prod"}),
        resource(SECRET_TYPE, "mlflow-db", {"kmsKeyId": KEY}),
        resource(SECRET_TYPE, "api-token", {"kmsKeyId": None}),
    )
    assert run(POLICY, *resources) == []
