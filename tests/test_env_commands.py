"""The env commands' decisions, against an in-memory backend that records what it was asked
(the Pulumi one, stacks/automation.py, is exercised by the `cloud` tests)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from stacks import env_commands
from stacks.env_backend import (
    TAG_BASE,
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_OWNER,
    BackendError,
    Progress,
    StackInfo,
    UpdateEvent,
)
from stacks.env_config import EnvError, EnvRequest
from stacks.offline import evaluate_config

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
P = "mlops-platform:"


@dataclass
class FakeBackend:
    """Stacks in memory; each call is logged as (operation, stack)."""

    infos: dict[str, StackInfo] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    fail_destroy: set[str] = field(default_factory=set)
    retained: list[str] = field(default_factory=list)

    def organization(self) -> str:
        return "acme"

    def stacks(self) -> list[StackInfo]:
        return list(self.infos.values())

    def create(self, stack: str, config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.calls.append(("create", stack))
        self.infos[stack] = StackInfo(stack, dict(tags), None, False, None)
        self.configs[stack] = dict(config)

    def has_config(self, stack: str) -> bool:
        return stack in self.configs

    def read_config(self, stack: str) -> dict[str, Any]:
        return dict(self.configs[stack])

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        self.calls.append(("write_config", stack))
        self.configs[stack] = dict(config)

    def set_tags(self, stack: str, tags: Mapping[str, str]) -> None:
        self.calls.append(("set_tags", stack))
        info = self.infos[stack]
        self.infos[stack] = StackInfo(
            stack, {**info.tags, **tags}, info.resource_count, False, None
        )

    def up(self, stack: str, progress: Progress) -> dict[str, int]:
        self.calls.append(("up", stack))
        progress(UpdateEvent("started", "aws:s3/bucket:Bucket::b", "create"))
        progress(UpdateEvent("done", "aws:s3/bucket:Bucket::b", "create"))
        progress(UpdateEvent("diagnostic", message="slow", severity="warning"))
        info = self.infos[stack]
        self.infos[stack] = StackInfo(stack, info.tags, 106, False, NOW)
        return {"create": 106}

    def destroy(self, stack: str, progress: Progress) -> list[str]:
        self.calls.append(("destroy", stack))
        if stack in self.fail_destroy:
            raise BackendError(f"pulumi destroy {stack} failed: BucketNotEmpty")
        return list(self.retained)

    def remove(self, stack: str) -> None:
        self.calls.append(("remove", stack))
        del self.infos[stack]


def on_demand(name: str, expires: datetime | str, updating: bool = False) -> StackInfo:
    text = expires if isinstance(expires, str) else expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    tags = {
        TAG_BASE: "dev",
        TAG_OWNER: "alice",
        TAG_CREATED: "2026-11-30T08:00:00Z",
        TAG_EXPIRES: text,
    }
    return StackInfo(name, tags, 106, updating, NOW)


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False), out


def request(name: str = "alice", **changes: Any) -> EnvRequest:
    fields: dict[str, Any] = {
        "name": name,
        "base": "dev",
        "owner": "alice@example.com",
        "ttl": timedelta(hours=8),
        "organization": "acme",
        **changes,
    }
    return EnvRequest(**fields)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(
        infos={
            "dev": StackInfo("dev", {}, 189, False, NOW),
            # A long-lived stack someone tagged by hand is never reaped.
            "test": StackInfo(
                "test", {TAG_BASE: "dev", TAG_EXPIRES: "2020-01-01T00:00:00Z"}, 1, False, None
            ),
            "dev-old": on_demand("dev-old", NOW - timedelta(hours=2)),
            "dev-busy": on_demand("dev-busy", NOW - timedelta(hours=1), updating=True),
            "dev-fresh": on_demand("dev-fresh", NOW + timedelta(hours=3)),
            "dev-odd": on_demand("dev-odd", "next tuesday"),
        }
    )


def test_list_shows_only_on_demand_stacks_with_their_state(backend: FakeBackend) -> None:
    rows = {row.stack: row for row in env_commands.on_demand_rows(backend.stacks(), NOW)}
    assert set(rows) == {"dev-old", "dev-busy", "dev-fresh", "dev-odd"}
    assert rows["dev-old"].state == "expired"
    assert rows["dev-busy"].state == "updating"
    assert rows["dev-fresh"].state == "active"
    assert rows["dev-odd"].state == "unknown expiry"
    assert rows["dev-fresh"].owner == "alice"
    assert rows["dev-fresh"].resource_count == 106
    out = console()
    out[0].print(env_commands.list_rows(list(rows.values()), NOW))
    text = out[1].getvalue()
    assert "dev-fresh" in text
    assert "in 3h" in text
    assert "expired 2h ago" in text
    assert "4h" in text  # age of each: created 08:00, now 12:00


def test_reap_destroys_only_expired_environments_and_removes_their_stacks(
    backend: FakeBackend,
) -> None:
    out = console()
    assert env_commands.reap(backend, out[0], NOW) == 0
    assert backend.calls == [("destroy", "dev-old"), ("remove", "dev-old")]
    text = out[1].getvalue()
    assert "skipped dev-busy: an update is running" in text
    assert "skipped dev-odd: its expires-at tag is missing or unreadable" in text
    assert "dev-fresh" not in text


def test_reap_dry_run_changes_nothing(backend: FakeBackend) -> None:
    out = console()
    assert env_commands.reap(backend, out[0], NOW, dry_run=True) == 0
    assert backend.calls == []
    assert "would destroy dev-old (owner alice, expired 2h ago)" in out[1].getvalue()


def test_reap_goes_on_past_a_failure_and_fails_at_the_end(backend: FakeBackend) -> None:
    backend.infos["dev-older"] = on_demand("dev-older", NOW - timedelta(days=1))
    backend.fail_destroy = {"dev-old"}
    out = console()
    assert env_commands.reap(backend, out[0], NOW) == 1
    assert ("remove", "dev-older") in backend.calls
    assert ("remove", "dev-old") not in backend.calls  # a failed destroy keeps its stack
    assert "dev-old was not reaped: pulumi destroy dev-old failed: BucketNotEmpty" in (
        out[1].getvalue()
    )


def test_destroy_reports_retained_resources(backend: FakeBackend) -> None:
    backend.retained = ["urn:pulumi:dev-fresh::mlops-platform::aws:s3/bucket:Bucket::data"]
    out = console()
    assert env_commands.destroy(backend, "dev-fresh", out[0], NOW) == 0
    assert backend.calls == [("destroy", "dev-fresh"), ("remove", "dev-fresh")]
    text = out[1].getvalue()
    assert "1 resources were retained in AWS" in text
    assert "aws:s3/bucket:Bucket::data" in text


@pytest.mark.parametrize(
    ("stack", "message"),
    [
        ("dev", "env destroy 'dev': a long-lived stack, not an on-demand environment"),
        ("test", "env destroy 'test': a long-lived stack"),
        ("dev-nope", "env destroy 'dev-nope': no such on-demand environment (there are: dev-busy"),
    ],
)
def test_destroy_refuses_what_is_not_an_on_demand_environment(
    backend: FakeBackend, stack: str, message: str
) -> None:
    with pytest.raises(EnvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        env_commands.destroy(backend, stack, console()[0], NOW)
    assert backend.calls == []


def test_extend_moves_the_tag_and_the_resource_tags(backend: FakeBackend) -> None:
    backend.configs["dev-fresh"] = {P + "on_demand": {"base": "dev", "expires_at": "x"}}
    out = console()
    assert env_commands.extend(backend, "dev-fresh", timedelta(hours=4), out[0], NOW) == 0
    assert backend.infos["dev-fresh"].tags[TAG_EXPIRES] == "2026-11-30T19:00:00Z"
    assert backend.configs["dev-fresh"][P + "on_demand"] == {
        "base": "dev",
        "expires_at": "2026-11-30T19:00:00Z",
    }
    assert backend.calls == [
        ("set_tags", "dev-fresh"),
        ("write_config", "dev-fresh"),
        ("up", "dev-fresh"),
    ]


def test_extend_without_the_stack_file_moves_only_the_stack_tag(backend: FakeBackend) -> None:
    out = console()
    env_commands.extend(backend, "dev-old", timedelta(hours=4), out[0], NOW)
    # Expired two hours ago: the four hours count from now.
    assert backend.infos["dev-old"].tags[TAG_EXPIRES] == "2026-11-30T16:00:00Z"
    assert backend.calls == [("set_tags", "dev-old")]
    assert "its stack file is not in this checkout" in out[1].getvalue()


def test_extend_refuses_beyond_the_maximum(backend: FakeBackend) -> None:
    with pytest.raises(ValueError, match="more than 7d from now"):
        env_commands.extend(backend, "dev-fresh", timedelta(days=7), console()[0], NOW)
    assert backend.calls == []


def test_create_derives_plans_then_creates_tags_and_deploys(backend: FakeBackend) -> None:
    out = console()
    assert env_commands.create(backend, request(), out[0], NOW) == 0
    assert backend.calls == [("create", "dev-alice"), ("up", "dev-alice")]
    tags = backend.infos["dev-alice"].tags
    assert tags == {
        TAG_BASE: "dev",
        TAG_OWNER: "alice@example.com",
        TAG_CREATED: "2026-11-30T12:00:00Z",
        TAG_EXPIRES: "2026-11-30T20:00:00Z",
    }
    config = backend.configs["dev-alice"]
    assert config[P + "network"]["shared_stack"] == "acme/mlops-platform/dev"
    assert config[P + "on_demand"] == {"base": "dev", "expires_at": "2026-11-30T20:00:00Z"}
    text = out[1].getvalue()
    # The count is the offline plan's (it grows with the step code files uploaded).
    planned = len(evaluate_config("dev-alice", config).custom_resources)
    assert f"dev-alice from dev: {planned} resources, expires 2026-11-30T20:00:00Z (in 8h)" in text
    assert "warning: slow" in text
    assert "dev-alice is up: 106 create" in text


def test_create_refuses_a_taken_name_before_touching_the_backend(backend: FakeBackend) -> None:
    with pytest.raises(EnvError, match="stack 'dev-old' already exists"):
        env_commands.create(backend, request("old"), console()[0], NOW)
    assert backend.calls == []


def test_create_dry_run_needs_no_backend() -> None:
    out = console()
    assert env_commands.create(None, request(), out[0], NOW, dry_run=True) == 0
    text = out[1].getvalue()
    assert "stack dev-alice (dev, eu-west-1" in text  # the offline plan
    assert "dry run: nothing was created" in text


def test_create_refuses_a_missing_base_naming_the_flag() -> None:
    with pytest.raises(EnvError, match=r"--from staging: .*no such stack file"):
        env_commands.create(None, request(base="staging"), console()[0], NOW, dry_run=True)


def test_a_failed_up_says_how_to_finish_or_clean_up(backend: FakeBackend) -> None:
    def broken_up(stack: str, progress: Progress) -> dict[str, int]:
        raise BackendError(f"pulumi up {stack} failed: AccessDenied")

    backend.up = broken_up  # type: ignore[method-assign]
    out = console()
    with pytest.raises(BackendError, match="AccessDenied"):
        env_commands.create(backend, request(), out[0], NOW)
    assert "env destroy dev-alice" in out[1].getvalue()
