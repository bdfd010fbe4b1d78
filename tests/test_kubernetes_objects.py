"""SECURITY.md A7: every Kubernetes object the stack creates directly (not through Helm) is
valid for its cluster version's schema, and checkov's Kubernetes checks find nothing in them
but what components/team_manifests.py accepts, with its reason. The example GPU job users
copy (examples/gpu-job.yaml) is held to the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.team_manifests import CHECKOV_ACCEPTED, GPU_TOLERATION, TRAINING_SERVICE_ACCOUNT
from policy.mlops_rules.eks import SUPPORTED_EKS_VERSIONS
from tests.conftest import STACKS, recorded
from tests.kubernetes_checks import checkov_findings, created_manifests, schema_errors

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_JOB = ROOT / "examples" / "gpu-job.yaml"
EXAMPLE_STACK = "dev"
# What the stack creates directly: per team namespace, and the cluster's StorageClass.
EXPECTED_KINDS = {
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ServiceAccount",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
}
# checkov findings accepted in the example, check id -> why.
EXAMPLE_ACCEPTED = {
    "CKV_K8S_43": "image by tag, not digest: the stack's ECR repositories have immutable tags, "
    "so the tag names one image for good and stays readable for users",
}
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
PRIVILEGED_CONTAINER = "CKV_K8S_16"
DEFAULT_NAMESPACE_USED = "CKV_K8S_21"


def _example_job() -> dict[str, Any]:
    job: dict[str, Any] = yaml.safe_load(EXAMPLE_JOB.read_text())
    return job


@pytest.mark.parametrize("stack", STACKS)
def test_created_objects_match_the_cluster_versions_schema(stack: str) -> None:
    recording = recorded(stack)
    version = recording.settings.cluster.version
    manifests = created_manifests(recording)
    errors = [error for m in manifests for error in schema_errors(m, version)]
    assert not errors, f"{stack} (Kubernetes {version}):\n" + "\n".join(errors)
    # Not vacuous: every kind the stack creates was seen, and nothing else.
    assert {m["kind"] for m in manifests} == EXPECTED_KINDS


def test_checkov_finds_nothing_but_the_accepted_in_any_stack() -> None:
    assert all(reason.strip() for reason in CHECKOV_ACCEPTED.values())
    # One scan of the distinct manifests of every stack (checkov takes seconds to start).
    distinct: dict[str, dict[str, Any]] = {}
    for stack in STACKS:
        for manifest in created_manifests(recorded(stack)):
            distinct.setdefault(json.dumps(manifest, sort_keys=True), manifest)
    findings = checkov_findings(list(distinct.values()), skip=CHECKOV_ACCEPTED)
    assert not findings, "accept them with a reason in CHECKOV_ACCEPTED, or fix them:\n" + (
        "\n".join(f"{f.check_id} {f.resource} ({f.file})" for f in findings)
    )


def test_checkov_flags_a_privileged_pod_in_the_default_namespace() -> None:
    """The scan runs its checks: a plainly bad manifest fails them."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad"},
        "spec": {
            "containers": [
                {"name": "bad", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    found = {f.check_id for f in checkov_findings([pod], skip={})}
    assert {PRIVILEGED_CONTAINER, DEFAULT_NAMESPACE_USED} <= found


def test_schema_validation_rejects_a_misspelled_field() -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "typo", "namespace": "research"},
        "spec": {"podSelecter": {}, "policyTypes": ["Ingress"]},
    }
    errors = schema_errors(policy, SUPPORTED_EKS_VERSIONS[-1])
    assert len(errors) == 1
    assert "podSelecter" in errors[0]


def test_schema_validation_refuses_a_version_it_has_no_schema_for() -> None:
    """No silent fallback to an older schema."""
    manifest = created_manifests(recorded(EXAMPLE_STACK))[0]
    assert "has no schema for Kubernetes 9.99" in schema_errors(manifest, "9.99")[0]


@pytest.mark.parametrize("version", SUPPORTED_EKS_VERSIONS)
def test_example_gpu_job_matches_the_schema(version: str) -> None:
    assert schema_errors(_example_job(), version) == []


def test_example_gpu_job_passes_checkov() -> None:
    assert all(reason.strip() for reason in EXAMPLE_ACCEPTED.values())
    assert checkov_findings([_example_job()], skip=EXAMPLE_ACCEPTED) == []


def test_example_gpu_job_fits_the_dev_stack() -> None:
    """Its namespace, service account, GPU label, toleration and image are dev's."""
    recording = recorded(EXAMPLE_STACK)
    cluster = recording.settings.cluster
    job = _example_job()
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["namespace"] in cluster.teams
    assert pod["serviceAccountName"] == TRAINING_SERVICE_ACCOUNT
    assert GPU_TOLERATION in pod["tolerations"]
    accelerators = {pool.accelerator for pool in cluster.gpu_pools.values()}
    assert pod["nodeSelector"][ACCELERATOR_LABEL] in accelerators
    image, _, _tag = pod["containers"][0]["image"].rpartition(":")
    repositories = recording.of_type("aws:ecr/repository:Repository")
    assert image in {r.outputs["repositoryUrl"] for r in repositories}
