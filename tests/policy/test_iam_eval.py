"""The IAM statement evaluator the reachability-of-permission checks use: AWS's evaluation
order and condition operators, case by case."""

from __future__ import annotations

import pytest

from policy.mlops_rules.iam_eval import Request, allows

ROLE = "arn:aws:iam::111111111111:role/mlops-dev-deployer"
ROOT = "arn:aws:iam::111111111111:root"


def _allow(**condition: dict[str, object]) -> dict[str, object]:
    statement: dict[str, object] = {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return statement


def test_actions_match_case_insensitively_and_resources_by_wildcard() -> None:
    scoped = {"Effect": "Allow", "Action": "S3:GetObject", "Resource": "arn:aws:s3:::b/teams/*"}
    assert allows([scoped], Request("s3:getobject", "arn:aws:s3:::b/teams/x"))
    assert not allows([scoped], Request("s3:GetObject", "arn:aws:s3:::b/other"))
    assert not allows([scoped], Request("s3:PutObject", "arn:aws:s3:::b/teams/x"))


def test_an_explicit_deny_wins() -> None:
    deny = {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
        "Bool": {"aws:SecureTransport": "false"}}}  # fmt: skip
    request = Request("s3:GetObject", "x", context={"aws:SecureTransport": "false"})
    assert not allows([_allow(), deny], request)
    assert allows([_allow(), deny], Request("s3:GetObject", "x", context={
        "aws:SecureTransport": "true"}))  # fmt: skip


def test_the_account_root_stands_for_its_principals() -> None:
    statement = {**_allow(), "Principal": {"AWS": ROOT}}
    assert allows([statement], Request("s3:GetObject", "x", principal={"AWS": ROLE}))
    other = "arn:aws:iam::999999999999:role/x"
    assert not allows([statement], Request("s3:GetObject", "x", principal={"AWS": other}))
    service = {**_allow(), "Principal": {"Service": ["events.amazonaws.com"]}}
    assert allows(
        [service], Request("s3:GetObject", "x", principal={"Service": "events.amazonaws.com"})
    )
    assert not allows([service], Request("s3:GetObject", "x", principal={"AWS": ROLE}))


@pytest.mark.parametrize(
    ("operator", "context", "allowed"),
    [
        ("StringEquals", {"k": "a"}, True),
        ("StringEquals", {"k": "b"}, False),
        ("StringEquals", {}, False),  # a missing key fails a plain operator
        ("StringEqualsIfExists", {}, True),
        ("StringEqualsIfExists", {"k": "b"}, False),
        ("StringNotEquals", {"k": "b"}, True),
        ("StringNotEquals", {}, True),
        ("StringLike", {"k": "a"}, True),
        ("ArnLike", {"k": "a"}, True),
    ],
)
def test_condition_operators(operator: str, context: dict[str, str], allowed: bool) -> None:
    request = Request("s3:GetObject", "x", context=context)
    assert allows([_allow(**{operator: {"K": "a"}})], request) is allowed


def test_multi_valued_context_and_patterns() -> None:
    statement = _allow(StringLike={"kms:ViaService": ["s3.*.amazonaws.com", "sqs.*.amazonaws.com"]})
    ok = Request("s3:GetObject", "x", context={"kms:ViaService": "sqs.eu-west-1.amazonaws.com"})
    assert allows([statement], ok)
    bad = Request("s3:GetObject", "x", context={"kms:ViaService": "ec2.eu-west-1.amazonaws.com"})
    assert not allows([statement], bad)


def test_an_unknown_operator_is_an_error_not_a_pass() -> None:
    statement = _allow(**{"ForAnyValue:StringLike": {"aws:TagKeys": ["a"]}})
    with pytest.raises(ValueError, match="ForAnyValue:StringLike"):
        allows([statement], Request("s3:GetObject", "x", context={"aws:TagKeys": ["a"]}))
