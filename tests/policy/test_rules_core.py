"""Each rule for the resources the stacks create today: the committed stacks pass it, and a
stack with exactly that rule broken fails it at the offending resource."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from policy.mlops_rules import RULES, Resource, StackView, evaluate
from policy.mlops_rules import types as t
from stacks.policy_check import stack_view
from tests.conftest import STACKS, recorded

Mutation = Callable[[Resource], Resource | None]  # None drops the resource


def _view(stack: str) -> StackView:
    return stack_view(recorded(stack))


def _mutated(stack: str, type_: str, mutate: Mutation, name: str | None = None) -> StackView:
    resources = []
    for r in _view(stack).resources:
        if r.type == type_ and (name is None or r.name == name):
            changed = mutate(r)
            if changed is not None:
                resources.append(changed)
        else:
            resources.append(r)
    return StackView(resources)


def _set(**changes: Any) -> Mutation:
    return lambda r: replace(r, props={**r.props, **changes})


def _drop(r: Resource) -> None:
    return None


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _without_bucket_key(r: Resource) -> Resource:
    rule = {**r.props["rules"][0], "bucketKeyEnabled": False}
    return replace(r, props={**r.props, "rules": [rule]})


def _without_statement(sid: str) -> Mutation:
    """The key policy less one statement."""

    def mutate(r: Resource) -> Resource:
        document = json.loads(r.props["policy"])
        kept = [s for s in document["Statement"] if s.get("Sid") != sid]
        assert len(kept) < len(document["Statement"]), sid
        return replace(r, props={**r.props, "policy": _policy(*kept)})

    return mutate


def _with_gate_parameter(r: Resource) -> Resource:
    """A training pipeline whose runs may set the gate's threshold."""
    definition = json.loads(r.props["pipelineDefinition"])
    definition["Parameters"].append(
        {"Name": "QualityThreshold", "Type": "Float", "DefaultValue": 0.9}
    )
    return replace(r, props={**r.props, "pipelineDefinition": json.dumps(definition)})


OPEN_KEY = _policy({"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"})
ANY_OBJECT = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
ANY_ROLE = _policy(
    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/*"}
)
SAGEMAKER_FULL = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"


def _rule(policy_name: str) -> Any:
    return next(rule for rule in RULES if rule.policy_name == policy_name)


CORE_RULES = [
    r.policy_name
    for r in RULES
    if r.check.__module__.rsplit(".", 1)[-1]
    in {"storage", "network", "keys_and_logs", "key_use", "iam", "platform", "approval"}
]

# (rule, stack, type, mutation, resource name or None for all, offending name, message part)
BROKEN = [
    ("e2-s3-sse-kms", "prod", t.BUCKET_SSE, _drop, "mlops-artifacts-models-encryption",
     "mlops-artifacts-models", "no server-side encryption"),
    ("e2-s3-sse-kms", "test", t.BUCKET_SSE, _without_bucket_key,
     "mlops-artifacts-datasets-encryption", "mlops-artifacts-datasets", "bucket key"),
    ("e2-s3-sse-kms", "prod", t.BUCKET_SSE, _set(rules=[{
        "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms",
                                               "kmsMasterKeyId": "arn:aws:kms:key"},
        "bucketKeyEnabled": True}]), "mlops-artifacts-access-logs-encryption",
     "mlops-artifacts-access-logs", "delivers access logs only with SSE-S3"),
    ("e3-ecr-kms", "dev", t.ECR_REPOSITORY,
     _set(encryptionConfigurations=[{"encryptionType": "AES256"}]),
     "mlops-artifacts-training-repo", "mlops-artifacts-training-repo", "not encrypted"),
    ("e9-s3-tls-only", "prod", t.BUCKET_POLICY, _set(policy=_policy()),
     "mlops-artifacts-datasets-policy", "mlops-artifacts-datasets", "SecureTransport"),
    ("a1-s3-public-access-block", "prod", t.BUCKET_PUBLIC_ACCESS,
     _set(restrictPublicBuckets=False), "mlops-artifacts-pipeline-public-access",
     "mlops-artifacts-pipeline", "restrictPublicBuckets"),
    ("a2-s3-no-acls", "test", t.BUCKET_OWNERSHIP, _drop, "mlops-artifacts-models-ownership",
     "mlops-artifacts-models", "BucketOwnerEnforced"),
    ("a2-s3-access-logging", "prod", t.BUCKET_LOGGING, _drop,
     "mlops-artifacts-datasets-access-logs", "mlops-artifacts-datasets", "logging is off"),
    ("a3-ecr-immutable-scanned-private", "prod", t.ECR_REPOSITORY,
     _set(imageTagMutability="MUTABLE"), "mlops-artifacts-inference-repo",
     "mlops-artifacts-inference-repo", "mutable"),
    ("r1-s3-versioning", "dev", t.BUCKET_VERSIONING,
     _set(versioningConfiguration={"status": "Suspended"}),
     "mlops-artifacts-models-versioning", "mlops-artifacts-models", "versioning"),
    ("r1-s3-object-lock-models-prod", "prod", t.BUCKET, _set(objectLockEnabled=False),
     "mlops-artifacts-models", "mlops-artifacts-models", "without Object Lock"),
    ("r2-s3-lifecycle", "test", t.BUCKET_LIFECYCLE, _drop, "mlops-artifacts-pipeline-lifecycle",
     "mlops-artifacts-pipeline", "noncurrent versions"),
    ("n6-no-open-ingress", "prod", t.INGRESS_RULE, _set(cidrIpv4="0.0.0.0/0"),
     "mlops-network-endpoints-https-in", "mlops-network-endpoints-https-in", "internet"),
    ("n6-default-sg-closed", "test", t.DEFAULT_SECURITY_GROUP, _drop, None,
     "mlops-network-vpc", "not managed"),
    ("n6-vpc-flow-logs", "prod", t.FLOW_LOG, _drop, None, "mlops-network-vpc", "no flow logs"),
    ("n7-vpc-endpoints", "prod", t.VPC_ENDPOINT, _drop, "mlops-network-kms-endpoint",
     "mlops-network-vpc", "calls kms (KMS calls of SDK clients"),
    ("n7-vpc-endpoints", "test", t.VPC_ENDPOINT, _drop,
     "mlops-network-sagemaker-experiments-endpoint", "mlops-network-vpc",
     "calls sagemaker.experiments (Preprocess"),
    ("n7-vpc-endpoints", "prod", t.VPC_ENDPOINT, _set(privateDnsEnabled=False),
     "mlops-network-sts-endpoint", "mlops-network-sts-endpoint", "without private DNS"),
    ("e1-kms-rotation-explicit-policy", "prod", t.KMS_KEY, _set(enableKeyRotation=False),
     "mlops-encryption-logs-key", "mlops-encryption-logs-key", "rotation is off"),
    ("e1-kms-rotation-explicit-policy", "dev", t.KMS_KEY, _set(policy=OPEN_KEY),
     "mlops-encryption-data-key", "mlops-encryption-data-key", "'*' without conditions"),
    ("e1-key-use", "prod", t.KMS_KEY,
     _without_statement("EventBridgeDeliversToThisEnvironmentsTopics"),
     "mlops-encryption-data-key", "mlops-monitoring-alerts",
     "does not let service:events call kms:GenerateDataKey"),
    ("e1-key-use", "test", t.KMS_KEY,
     _without_statement("EventBridgeDeliversToThisEnvironmentsQueues"),
     "mlops-encryption-data-key", "mlops-digits-retraining-queue", "service:events"),
    ("e1-key-use", "dev", t.KMS_KEY, _without_statement("CloudWatchLogsOfThisAccount"),
     "mlops-encryption-logs-key", "mlops-network-flow-logs", "service:logs call kms:Encrypt"),
    ("e1-key-use", "prod", t.KMS_KEY, _without_statement("SchedulerExecutionRolesDecryptPayloads"),
     "mlops-encryption-data-key", "mlops-pipelines-digits-schedule", "role:decrypt"),
    ("e1-key-use", "prod", t.KMS_KEY, _without_statement("PublishToEncryptedTopics"),
     "mlops-encryption-data-key", "mlops-monitoring-alerts", "service:cloudwatch"),
    ("a5-registration-pending", "prod", t.IAM_ROLE_POLICY,
     _without_statement("RegisterOnlyPendingVersions"), "mlops-pipelines-execution-access",
     "mlops-pipelines-execution-access", "may sagemaker:CreateModelPackage as Approved"),
    ("a5-registration-pending", "test", "aws:sagemaker/pipeline:Pipeline", _with_gate_parameter,
     "mlops-pipelines-digits", "mlops-pipelines-digits", "Parameter QualityThreshold"),
    ("e7-log-group-kms-retention", "prod", t.LOG_GROUP, _set(retentionInDays=90), None,
     "mlops-network-flow-logs", "prod log retention 90 < 365"),
    ("a4-iam-least-privilege", "test", t.IAM_ROLE_POLICY, _set(policy=ANY_OBJECT), None,
     "mlops-network-flow-logs-write", "Resource '*' for scopable actions: s3:GetObject"),
    ("a4-iam-least-privilege", "dev", t.IAM_ROLE_POLICY, _set(policy=ANY_ROLE), None,
     "mlops-network-flow-logs-write", "iam:PassRole on a wildcard"),
    ("a4-no-aws-full-access", "prod", t.IAM_ROLE, _set(managedPolicyArns=[SAGEMAKER_FULL]),
     None, "mlops-network-flow-logs-role", "AmazonSageMakerFullAccess"),
    ("r3-protect-stateful-prod", "prod", t.KMS_KEY, lambda r: replace(r, protect=False),
     "mlops-encryption-data-key", "mlops-encryption-data-key", "not protected"),
    ("r8-cost-tags", "dev", t.BUCKET, lambda r: replace(r, provider_props=None),
     "mlops-artifacts-datasets", "mlops-artifacts-datasets", "missing cost tags"),
    ("r8-budget-alerts", "test", t.BUDGET, _drop, None, None, "no AWS Budget"),
]  # fmt: skip


@pytest.mark.parametrize("policy_name", CORE_RULES)
@pytest.mark.parametrize("stack", STACKS)
def test_committed_stacks_pass(policy_name: str, stack: str) -> None:
    assert _rule(policy_name).run(_view(stack)) == []


def test_every_core_rule_has_a_breaking_case() -> None:
    assert {case[0] for case in BROKEN} == set(CORE_RULES)


@pytest.mark.parametrize(
    ("policy_name", "stack", "type_", "mutate", "name", "offender", "message"),
    BROKEN,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(BROKEN)],
)
def test_broken_stack_fails_the_rule(
    policy_name: str,
    stack: str,
    type_: str,
    mutate: Mutation,
    name: str | None,
    offender: str | None,
    message: str,
) -> None:
    view = _mutated(stack, type_, mutate, name)
    violations = _rule(policy_name).run(view)
    assert violations, f"{policy_name} found nothing"
    assert all(v.rule == policy_name for v in violations)
    urns = {v.urn.rsplit("::", 1)[-1] if v.urn else None for v in violations}
    assert offender in urns
    assert any(message in v.message for v in violations)


def test_prod_only_rules_do_not_apply_to_dev() -> None:
    view = _mutated("dev", t.LOG_GROUP, _set(retentionInDays=30))
    assert _rule("e7-log-group-kms-retention").run(view) == []
    assert _rule("r3-protect-stateful-prod").run(_view("dev")) == []


def test_unknown_values_are_not_violations() -> None:
    # During a preview a bucket policy computed from the bucket ARN is unknown (None).
    view = _mutated("prod", t.BUCKET_POLICY, _set(policy=None))
    assert _rule("e9-s3-tls-only").run(view) == []


def test_dev_advisory_rules_are_reported_but_do_not_block() -> None:
    def relax(r: Resource) -> Resource:
        return replace(r, props={**r.props, "advisoryRules": ["N7"]})

    resources = [
        relax(r) if r.type == "mlops:environment:MlopsEnvironment" else r
        for r in _view("dev").resources
        if r.type != t.VPC_ENDPOINT
    ]
    report = evaluate(StackView(resources))
    assert report.mandatory == []
    assert {v.rule for v in report.advisory} == {"n7-vpc-endpoints"}


def test_committed_stacks_have_no_violations_at_all() -> None:
    for stack in STACKS:
        report = evaluate(_view(stack))
        assert (report.mandatory, report.advisory) == ([], []), stack
        assert report.rules_run == len(RULES)
