"""`python -m stacks env ...`: create, list, extend, destroy and reap on-demand environments.

Each command decides from the backend's stack records (tags, resource counts) and the
derivation in `stacks/env_config.py`, and acts through an `EnvBackend`; the Pulumi one is
`stacks/automation.py`. Every refusal is an `EnvError` raised before anything changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stacks.env_backend import (
    TAG_BASE,
    TAG_CREATED,
    TAG_EXPIRES,
    TAG_OWNER,
    BackendError,
    EnvBackend,
    StackInfo,
    UpdateEvent,
)
from stacks.env_backend import Progress as OnEvent
from stacks.env_config import DerivedEnv, EnvError, EnvRequest, derive
from stacks.lifetime import describe, extended, is_expired, remaining
from stacks.loader import SettingsError, committed_stacks, read_stack_config, stack_file
from stacks.offline import evaluate_config
from stacks.on_demand_settings import tag_time
from stacks.plan import render
from stacks.policy_check import check
from stacks.settings import PROJECT

T = TypeVar("T")


@dataclass(frozen=True)
class EnvRow:
    """One on-demand environment as `env list` shows it."""

    stack: str
    base: str
    owner: str
    created_at: datetime | None
    expires_at: datetime | None  # None: the tag is missing or unreadable
    resource_count: int
    state: str  # active, expired, updating, empty, unknown expiry


def parse_tag_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def on_demand_rows(stacks: Iterable[StackInfo], now: datetime) -> list[EnvRow]:
    """The on-demand environments among a backend's stacks (those with an on-demand tag),
    never a long-lived one even if someone tagged it."""
    long_lived = set(committed_stacks())
    rows = []
    for info in stacks:
        if TAG_BASE not in info.tags or info.name in long_lived:
            continue
        expires_at = parse_tag_time(info.tags.get(TAG_EXPIRES))
        if info.updating:
            state = "updating"
        elif expires_at is None:
            state = "unknown expiry"
        elif is_expired(expires_at, now):
            state = "expired"
        elif not info.resource_count:
            state = "empty"
        else:
            state = "active"
        rows.append(
            EnvRow(
                stack=info.name,
                base=info.tags[TAG_BASE],
                owner=info.tags.get(TAG_OWNER, "?"),
                created_at=parse_tag_time(info.tags.get(TAG_CREATED)),
                expires_at=expires_at,
                resource_count=info.resource_count or 0,
                state=state,
            )
        )
    return sorted(rows, key=lambda r: r.stack)


def to_reap(rows: Iterable[EnvRow]) -> tuple[list[EnvRow], list[tuple[EnvRow, str]]]:
    """(expired environments to destroy, those left alone with why)."""
    due, skipped = [], []
    for row in rows:
        if row.state == "expired":
            due.append(row)
        elif row.state == "updating" and row.expires_at is not None:
            skipped.append((row, "an update is running; the next reap takes it"))
        elif row.state == "unknown expiry":
            skipped.append((row, f"its {TAG_EXPIRES} tag is missing or unreadable"))
    return due, skipped


def find(backend: EnvBackend, stack: str, now: datetime, argument: str) -> EnvRow:
    rows = {row.stack: row for row in on_demand_rows(backend.stacks(), now)}
    if stack in rows:
        return rows[stack]
    if stack in committed_stacks():
        raise EnvError(f"{argument} {stack!r}: a long-lived stack, not an on-demand environment")
    known = ", ".join(rows) or "none"
    raise EnvError(f"{argument} {stack!r}: no such on-demand environment (there are: {known})")


def plan(request: EnvRequest, now: datetime, existing: Iterable[str]) -> DerivedEnv:
    """Derive the environment's config and check it offline: policy first, AWS later."""
    try:
        base_config = read_stack_config(stack_file(request.base))
    except SettingsError as exc:
        raise EnvError(f"--from {request.base}: {exc}") from None
    return derive(request, base_config, now, {*existing, *committed_stacks()})


def create(
    backend: EnvBackend | None,
    request: EnvRequest,
    console: Console,
    now: datetime,
    dry_run: bool = False,
) -> int:
    existing = [] if backend is None else [info.name for info in backend.stacks()]
    derived = plan(request, now, existing)
    recording = evaluate_config(derived.stack, derived.config)
    report = check(recording)
    if report.mandatory:
        listing = "\n".join(f"  - {v.rule}: {v.message}" for v in report.mandatory)
        raise EnvError(f"{derived.stack} would violate the policy pack:\n{listing}")
    assert derived.settings.on_demand is not None  # derive sets it
    expires_at = derived.settings.on_demand.expires_at
    console.print(
        f"[bold]{derived.stack}[/] from {request.base}: "
        f"{len(recording.custom_resources)} resources, expires {tag_time(expires_at)} "
        f"({remaining(expires_at, now)})"
    )
    for change in derived.changes:
        console.print(f"  - {change}")
    if dry_run or backend is None:
        render(recording, report, console)
        console.print("dry run: nothing was created")
        return 0
    tags = {
        TAG_BASE: request.base,
        TAG_OWNER: request.owner,
        TAG_CREATED: tag_time(now),
        TAG_EXPIRES: tag_time(expires_at),
    }
    backend.create(derived.stack, derived.config, tags)
    try:
        changes = _with_progress(
            console,
            f"pulumi up {derived.stack}",
            len(recording.resources),
            lambda progress: backend.up(derived.stack, progress),
        )
    except BackendError:
        console.print(
            f"[red]{derived.stack} is only partly created[/]: fix the cause and run "
            f"`pulumi up -s {derived.stack}`, or remove it with `env destroy {derived.stack}`"
        )
        raise
    console.print(f"{derived.stack} is up: {_counts(changes)}")
    return 0


def extend(backend: EnvBackend, stack: str, ttl: timedelta, console: Console, now: datetime) -> int:
    row = find(backend, stack, now, "env extend")
    new = extended(row.expires_at or now, now, ttl)
    backend.set_tags(stack, {TAG_EXPIRES: tag_time(new)})
    console.print(f"{stack} now expires {tag_time(new)} ({remaining(new, now)})")
    if not backend.has_config(stack):
        console.print(
            f"[yellow]its stack file is not in this checkout[/]: resources keep their old "
            f"expires-at tag until the next `pulumi up -s {stack}` from where it was created"
        )
        return 0
    config = backend.read_config(stack)
    key = f"{PROJECT}:on_demand"
    config[key] = {**(config.get(key) or {}), "expires_at": tag_time(new)}
    backend.write_config(stack, config)
    _with_progress(
        console,
        f"retagging {stack}",
        row.resource_count,
        lambda progress: backend.up(stack, progress),
    )
    return 0


def destroy(backend: EnvBackend, stack: str, console: Console, now: datetime) -> int:
    row = find(backend, stack, now, "env destroy")
    _destroy(backend, row, console)
    return 0


def reap(
    backend: EnvBackend,
    console: Console,
    now: datetime,
    dry_run: bool = False,
    base: str | None = None,
) -> int:
    """Destroy expired environments (of one base only, where given: each base's account is
    reaped with that account's credentials)."""
    rows = [r for r in on_demand_rows(backend.stacks(), now) if base in (None, r.base)]
    due, skipped = to_reap(rows)
    for row, why in skipped:
        console.print(f"skipped {row.stack}: {why}")
    if not due:
        console.print("nothing has expired")
        return 0
    failed = []
    for row in due:
        assert row.expires_at is not None  # expired rows have one
        late = describe(now - row.expires_at)
        if dry_run:
            console.print(f"would destroy {row.stack} (owner {row.owner}, expired {late} ago)")
            continue
        console.print(f"destroying {row.stack} (owner {row.owner}, expired {late} ago)")
        try:
            _destroy(backend, row, console)
        except BackendError as exc:
            console.print(f"[red]{row.stack} was not reaped[/]: {exc}")
            failed.append(row.stack)
    if failed:
        console.print(f"[red]{len(failed)} of {len(due)} not reaped[/]: {', '.join(failed)}")
        return 1
    return 0


def list_rows(rows: list[EnvRow], now: datetime) -> Table:
    table = Table(title="On-demand environments")
    for column in ("stack", "base", "owner", "age", "expires", "resources", "state"):
        table.add_column(column)
    for row in rows:
        age = describe(now - row.created_at) if row.created_at else "?"
        expires = remaining(row.expires_at, now) if row.expires_at else "?"
        table.add_row(
            row.stack, row.base, row.owner, age, expires, str(row.resource_count), row.state
        )
    return table


def _destroy(backend: EnvBackend, row: EnvRow, console: Console) -> None:
    retained = _with_progress(
        console,
        f"pulumi destroy {row.stack}",
        row.resource_count,
        lambda progress: backend.destroy(row.stack, progress),
    )
    backend.remove(row.stack)
    console.print(f"{row.stack} is destroyed and its stack removed")
    if retained:
        console.print(f"[yellow]{len(retained)} resources were retained in AWS[/]:")
        for urn in retained:
            console.print(f"  - {urn}")


def _counts(changes: dict[str, int]) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(changes.items()) if n) or "no changes"


def _with_progress(console: Console, title: str, total: int, action: Callable[[OnEvent], T]) -> T:
    """Run a backend update, showing one bar of resources done and each failure."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(title, total=total or None)

        def on_event(event: UpdateEvent) -> None:
            if event.kind == "done":
                bar.advance(task)
            elif event.kind == "failed":
                console.print(f"[red]failed[/] {event.operation} {event.resource}")
            elif event.kind == "diagnostic":
                colour = "red" if event.severity == "error" else "yellow"
                console.print(f"[{colour}]{event.severity}[/]: {event.message}")

        return action(on_event)
