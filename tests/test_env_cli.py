"""`python -m stacks env ...`: arguments, exit codes and messages (an in-memory backend)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest

from stacks.__main__ import main
from stacks.env_backend import TAG_BASE, TAG_EXPIRES, BackendError, StackInfo
from stacks.env_cli import add_env_commands, run_env
from tests.test_env_commands import FakeBackend, on_demand


def run(argv: list[str], backend: FakeBackend | None = None) -> int:
    parser = argparse.ArgumentParser()
    add_env_commands(parser.add_subparsers(dest="command", required=True))
    return run_env(parser.parse_args(argv), backend)


def test_list_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    backend = FakeBackend(infos={"dev-a": on_demand("dev-a", later)})
    assert run(["env", "list", "--json"], backend) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["stack"] == "dev-a"
    assert row["state"] == "active"
    assert row["expires_at"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert row["resource_count"] == 106


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["env", "create", "alice", "--from", "prod", "--dry-run"], "--from prod: on-demand"),
        (["env", "create", "alice", "--from", "dev", "--ttl", "2w", "--dry-run"], "--ttl '2w'"),
        (["env", "create", "Alice", "--from", "dev", "--dry-run"], "name 'Alice': use lowercase"),
        (
            ["env", "create", "a", "--from", "dev", "--set", "models.digits=3", "--dry-run"],
            "mlops-platform:models.digits",
        ),
        (["env", "extend", "dev-a", "--ttl", "0m"], "--ttl '0m': shorter than the minimum"),
        (["env", "destroy", "prod"], "a long-lived stack"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FakeBackend(infos={"dev-a": on_demand("dev-a", datetime.now(UTC))})
    assert run(argv, backend) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err
    assert backend.calls == []


def test_backend_failures_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    class Refusing(FakeBackend):
        def stacks(self) -> list[StackInfo]:
            raise BackendError("pulumi stack ls failed: not logged in")

    assert run(["env", "reap"], Refusing()) == 1
    assert capsys.readouterr().err == "error: pulumi stack ls failed: not logged in\n"


def test_reap_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    expired = datetime.now(UTC) - timedelta(hours=1)
    backend = FakeBackend(infos={"test-b": on_demand("test-b", expired)})
    assert run(["env", "reap", "--dry-run"], backend) == 0
    assert backend.calls == []
    assert run(["env", "reap"], backend) == 0
    assert backend.calls == [("destroy", "test-b"), ("remove", "test-b")]


def test_create_dry_run_from_the_module_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["env", "create", "bob", "--from", "test", "--owner", "bob", "--dry-run"]
    argv += ["--set", "budget.monthly_limit_usd=150", "--endpoints", "off"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test-bob from test" in out
    assert "--set mlops-platform:budget.monthly_limit_usd=150" in out
    assert "models.digits: endpoint off" in out


def test_reap_and_list_can_be_limited_to_one_base(capsys: pytest.CaptureFixture[str]) -> None:
    expired = datetime.now(UTC) - timedelta(hours=1)
    copy_of_test = on_demand("test-c", expired)
    copy_of_test = StackInfo("test-c", {**copy_of_test.tags, TAG_BASE: "test"}, 5, False, None)
    backend = FakeBackend(infos={"dev-b": on_demand("dev-b", expired), "test-c": copy_of_test})
    assert run(["env", "list", "--json", "--base", "test"], backend) == 0
    assert [row["stack"] for row in json.loads(capsys.readouterr().out)] == ["test-c"]
    assert run(["env", "reap", "--base", "dev"], backend) == 0
    assert backend.calls == [("destroy", "dev-b"), ("remove", "dev-b")]


def test_a_stack_tagged_by_hand_without_a_base_tag_is_not_listed() -> None:
    backend = FakeBackend(
        infos={"dev-x": StackInfo("dev-x", {TAG_EXPIRES: "2020-01-01T00:00:00Z"}, 3, False, None)}
    )
    assert run(["env", "reap"], backend) == 0
    assert backend.calls == []
    assert TAG_BASE not in backend.infos["dev-x"].tags
