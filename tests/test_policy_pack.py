"""The pack users run (policy/pack.py in policy/venv) applies exactly the rules the tests run."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from policy.mlops_rules import RULES, StackView, evaluate
from stacks.policy_check import stack_view
from tests.conftest import recorded

ROOT = Path(__file__).resolve().parent.parent
POLICY_PYTHON = ROOT / "policy" / "venv" / "bin" / "python"


def _run_pack(view: StackView) -> dict[str, Any]:
    if not POLICY_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail("policy/venv is missing: `make test` creates it")
        pytest.skip("policy/venv not created yet; `make test` creates it")
    rows = [
        {
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "props": r.props,
            "parent": r.parent,
            "property_dependencies": r.property_dependencies,
            "provider_props": r.provider_props,
            "protect": r.protect,
        }
        for r in view.resources
    ]
    result = subprocess.run(
        [str(POLICY_PYTHON), str(ROOT / "tests" / "pack_probe.py")],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout)


def _broken(view: StackView) -> StackView:
    """prod with three rules broken: key rotation off, a log group unencrypted, no budget."""
    resources = []
    for r in view.resources:
        if r.type == "aws:budgets/budget:Budget":
            continue
        if r.type == "aws:kms/key:Key":
            r = replace(r, props={**r.props, "enableKeyRotation": False})
        if r.type == "aws:cloudwatch/logGroup:LogGroup":
            r = replace(r, props={k: v for k, v in r.props.items() if k != "kmsKeyId"})
        resources.append(r)
    return StackView(resources)


def test_pack_has_one_mandatory_policy_per_rule_and_one_advisory() -> None:
    levels = _run_pack(stack_view(recorded("prod")))["levels"]
    assert levels == {
        **{rule.policy_name: "mandatory" for rule in RULES},
        "dev-advisory-rules": "advisory",
    }


def test_pack_passes_the_committed_prod_stack() -> None:
    assert _run_pack(stack_view(recorded("prod")))["reported"] == []


def test_pack_reports_what_the_rules_report() -> None:
    view = _broken(stack_view(recorded("prod")))
    expected = {(v.rule, v.urn, v.message) for v in evaluate(view).mandatory}
    assert {v[0] for v in expected} == {
        "e1-kms-rotation-explicit-policy",
        "e7-log-group-kms-retention",
        "r8-budget-alerts",
    }
    reported = {tuple(v) for v in _run_pack(view)["reported"]}
    assert reported == expected
