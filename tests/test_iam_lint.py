"""Every IAM policy document the stacks create passes parliament (AWS IAM linter); the few
findings on resource policies are accepted next to the code that writes them, with reasons."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string

from components import bucket_policies, key_policies, pipeline_policies
from policy.mlops_rules.iam import identity_documents
from stacks.offline import StackRecording
from stacks.policy_check import stack_view

RESOURCE_POLICIES = {
    "aws:kms/key:Key": key_policies.PARLIAMENT_ACCEPTED,
    "aws:s3/bucketPolicy:BucketPolicy": bucket_policies.PARLIAMENT_ACCEPTED,
}


def _issues(document: object) -> set[str]:
    return {f.issue for f in analyze_policy_string(json.dumps(document)).findings}


# Modules whose identity policies have justified findings, each for one service's actions.
JUSTIFIED = (pipeline_policies,)


def _action(detail: object) -> str:
    if isinstance(detail, dict):
        return str(detail["action"])
    # UNKNOWN_ACTION's detail is the sentence "Unknown action <action>".
    return str(detail).removeprefix("Unknown action ")


def _justified(issue: str, details: list[object] | str) -> bool:
    if isinstance(details, str):
        details = [details]
    return any(
        issue in module.PARLIAMENT_ACCEPTED
        and all(_action(d).startswith(module.ACCEPTED_SERVICE) for d in details)
        for module in JUSTIFIED
    )


def _unexplained(document: object) -> list[tuple[str, object]]:
    """Findings on an identity policy, less the justified ones."""
    return [
        (f.issue, f.detail)
        for f in analyze_policy_string(json.dumps(document)).findings
        if not _justified(f.issue, f.detail)
    ]


def test_identity_policies_have_no_findings(recording: StackRecording) -> None:
    documents = list(identity_documents(stack_view(recording)))
    assert documents, "the stack creates identity policies"
    for holder, document in documents:
        assert _unexplained(document) == [], holder.name


@pytest.mark.parametrize("resource_type", sorted(RESOURCE_POLICIES))
def test_resource_policy_findings_are_all_justified(
    recording: StackRecording, resource_type: str
) -> None:
    accepted = RESOURCE_POLICIES[resource_type]
    holders = recording.of_type(resource_type)
    assert holders
    for holder in holders:
        unexplained = _issues(json.loads(holder.inputs["policy"])) - set(accepted)
        assert unexplained == set(), holder.name


def test_parliament_catches_a_bad_identity_policy() -> None:
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b"}
    ]}  # fmt: skip
    assert "RESOURCE_MISMATCH" in _issues(bad)


def test_cluster_training_policies_have_no_findings() -> None:
    """The launcher's, the teams' callback and the pipelines' queue policies (a stack with a
    cluster-backed model; no committed stack has one)."""
    from tests.test_cluster_training import cluster_backed

    documents = [
        (holder, document)
        for holder, document in identity_documents(stack_view(cluster_backed()))
        if "cluster-training" in holder.name or holder.name.endswith("-callbacks")
    ]
    assert len(documents) == 3
    for holder, document in documents:
        assert _unexplained(document) == [], holder.name
