"""`python -m stacks plan`: the resource tree and counts, as text and JSON, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from policy.mlops_rules import RULES
from stacks.__main__ import main
from tests.conftest import recorded

ROOT = Path(__file__).resolve().parent.parent


def test_json_plan_matches_the_recording(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "prod", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    recording = recorded("prod")
    assert plan["stack"] == "prod" and plan["environment"] == "prod"
    assert plan["resource_count"] == len(recording.custom_resources)
    assert plan["counts_by_type"]["aws:ec2/subnet:Subnet"] == 3
    assert plan["counts_by_type"]["aws:s3/bucket:Bucket"] == 4
    assert sum(plan["counts_by_type"].values()) == plan["resource_count"]
    key = next(r for r in plan["resources"] if r["name"] == "mlops-encryption-data-key")
    assert key["protect"] and key["retain_on_delete"]
    assert key["properties"] == {"rotation": True, "rotation days": 365, "deletion window": 30}
    subnets = [r for r in plan["resources"] if r["type"] == "aws:ec2/subnet:Subnet"]
    assert {s["properties"]["cidr"] for s in subnets} == {
        "10.30.0.0/19",
        "10.30.32.0/19",
        "10.30.64.0/19",
    }
    assert plan["outputs"]["bucket_names"]["models"].startswith("mlops-prod-models-")


def test_text_plan_shows_tree_properties_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "dev"]) == 0
    text = capsys.readouterr().out
    assert "stack dev (dev, eu-west-1, account 111111111111)" in text
    assert "mlops-network (mlops:network:Network)" in text
    assert "cidr=10.10.0.0/16" in text
    assert "NatGateway" in text
    assert f"{len(recorded('dev').custom_resources)} resources to create" in text
    assert "protected" not in text  # nothing is protected in dev


def test_prod_text_plan_marks_protected_resources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "prod"]) == 0
    assert "protected retained" in capsys.readouterr().out


def test_unknown_stack_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "staging"]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.staging.yaml: no such stack file" in err
    assert "dev, prod, test" in err


def test_cli_error_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stacks", "plan", "staging"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: stacks/Pulumi.staging.yaml: no such stack file")


@pytest.fixture
def dev_without_log_encryption(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan dev` sees a dev stack whose flow-log group lost its KMS key."""
    monkeypatch.setenv("COLUMNS", "200")  # keep table cells on one line
    original = recorded("dev")
    resources = [
        replace(r, inputs={k: v for k, v in r.inputs.items() if k != "kmsKeyId"})
        if r.name == "mlops-network-flow-logs"
        else r
        for r in original.resources
    ]
    broken = replace(original, resources=resources)
    monkeypatch.setattr("stacks.__main__.evaluate_stack", lambda stack: broken)


def test_plan_reports_policy_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "test"]) == 0
    expected = f"policy: {len(RULES)} rules, all passed"
    assert expected in capsys.readouterr().out.replace("\n", " ")


def test_violations_are_listed_with_rule_and_resource(
    dev_without_log_encryption: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "dev"]) == 0  # a report, not a gate, without --strict
    text = capsys.readouterr().out
    assert "1 violations" in text
    assert "e7-log-group-kms-retention" in text
    assert "mlops-network-flow-logs" in text


def test_strict_fails_on_violations(
    dev_without_log_encryption: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "dev", "--json", "--strict"]) == 1
    policy = json.loads(capsys.readouterr().out)["policy"]
    assert [v["rule"] for v in policy["mandatory_violations"]] == ["e7-log-group-kms-retention"]


def test_strict_passes_a_clean_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "prod", "--strict"]) == 0
