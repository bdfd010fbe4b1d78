"""The Automation API module against a real Pulumi CLI with a throwaway file backend: the
stack's life (create with config and tags, list, extend, destroy, remove) without AWS
resources. Marked `cloud`: skipped where the Pulumi CLI is missing."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from stacks import env_commands
from stacks.automation import DIY_ORGANIZATION, PulumiBackend
from stacks.env_backend import TAG_BASE, TAG_EXPIRES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PulumiBackend:
    # A copy of the project: the stack file env create writes lands in the copy.
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(".venv", "venv", ".git", ".*"))
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{state}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "throwaway")
    return PulumiBackend(root=project)


@pytest.mark.cloud
def test_stack_life_through_the_cli(backend: PulumiBackend) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    assert backend.organization() == DIY_ORGANIZATION
    config = {"mlops-platform:owner": "alice", "mlops-platform:on_demand": {"base": "dev"}}
    tags = {TAG_BASE: "dev", TAG_EXPIRES: (now + timedelta(hours=1)).isoformat()}
    backend.create("dev-cli", config, tags)

    written = yaml.safe_load((backend.root / "stacks" / "Pulumi.dev-cli.yaml").read_text())
    assert written["config"] == config
    assert backend.read_config("dev-cli") == config
    [info] = [s for s in backend.stacks() if s.name == "dev-cli"]
    assert info.tags[TAG_BASE] == "dev"

    out = io.StringIO()
    rows = env_commands.on_demand_rows(backend.stacks(), now)
    assert [r.stack for r in rows] == ["dev-cli"]
    backend.set_tags("dev-cli", {TAG_EXPIRES: (now - timedelta(minutes=1)).isoformat()})
    assert env_commands.reap(backend, Console(file=out), now) == 0
    assert "destroying dev-cli" in out.getvalue()
    assert [s.name for s in backend.stacks()] == []
    assert not (backend.root / "stacks" / "Pulumi.dev-cli.yaml").exists()
