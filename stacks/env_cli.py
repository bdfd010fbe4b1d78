"""The `env` command group of `python -m stacks`: argument parsing and error reporting for
the on-demand environment commands in `stacks/env_commands.py`."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from datetime import UTC, datetime

from rich.console import Console

from stacks.env_backend import BackendError, EnvBackend
from stacks.env_commands import (
    EnvRow,
    create,
    destroy,
    extend,
    list_rows,
    on_demand_rows,
    reap,
)
from stacks.env_config import EnvError, EnvRequest
from stacks.lifetime import DEFAULT_TTL, MAX_TTL, LifetimeError, describe, parse_ttl
from stacks.on_demand_settings import tag_time


def add_env_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = commands.add_parser("env", help="on-demand dev/test environments with a time to live")
    actions = env.add_subparsers(dest="action", required=True)

    new = actions.add_parser("create", help="create <base>-<name> from a long-lived stack, up")
    new.add_argument("name", help="short name; the stack is <base>-<name> (dev-alice)")
    new.add_argument("--from", dest="base", required=True, help="base stack: dev or test")
    new.add_argument(
        "--ttl",
        default=DEFAULT_TTL,
        help=f"time to live, e.g. 8h, 90m, 1d12h (default {DEFAULT_TTL}, max {describe(MAX_TTL)})",
    )
    new.add_argument("--owner", default=None, help="owner tag (default: your user name)")
    new.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a stack-file key (models.digits.auto_approve=false); repeatable",
    )
    new.add_argument(
        "--endpoints",
        choices=("serverless", "off"),
        default="serverless",
        help="what the base's model endpoints become (default serverless)",
    )
    new.add_argument(
        "--org", default=None, help="Pulumi organization of the base stack (default: yours)"
    )
    new.add_argument(
        "--dry-run",
        action="store_true",
        help="derive and plan offline, create nothing (needs no Pulumi CLI)",
    )

    listing = actions.add_parser("list", help="on-demand environments: owner, age, expiry")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--base", help="only the copies of this base stack")

    more = actions.add_parser("extend", help="add time to an environment's TTL")
    more.add_argument("stack", help="the environment's stack (dev-alice)")
    more.add_argument("--ttl", required=True, help="time to add, e.g. 4h")

    gone = actions.add_parser("destroy", help="destroy an environment and remove its stack")
    gone.add_argument("stack", help="the environment's stack (dev-alice)")

    sweep = actions.add_parser("reap", help="destroy every expired environment")
    sweep.add_argument("--dry-run", action="store_true", help="only say what would go")
    sweep.add_argument(
        "--base", help="only the copies of this base stack (its account's credentials)"
    )


def run_env(args: argparse.Namespace, backend: EnvBackend | None = None) -> int:
    """Run one `env` action; errors are printed as one message, exit code 2 (1: a backend
    operation failed)."""
    console = Console()
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        if args.action == "create" and args.dry_run:
            return create(None, _request(args, organization=args.org), console, now, True)
        backend = backend or _pulumi_backend()
        if args.action == "create":
            org = args.org or backend.organization()
            return create(backend, _request(args, organization=org), console, now)
        if args.action == "list":
            rows = [r for r in on_demand_rows(backend.stacks(), now) if args.base in (None, r.base)]
            if args.json:
                print(json.dumps([_as_json(row) for row in rows], indent=2))
            else:
                console.print(list_rows(rows, now))
            return 0
        if args.action == "extend":
            return extend(backend, args.stack, parse_ttl(args.ttl), console, now)
        if args.action == "destroy":
            return destroy(backend, args.stack, console, now)
        return reap(backend, console, now, dry_run=args.dry_run, base=args.base)
    except (EnvError, LifetimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _request(args: argparse.Namespace, organization: str | None) -> EnvRequest:
    from stacks.automation import DIY_ORGANIZATION

    return EnvRequest(
        name=args.name,
        base=args.base,
        owner=args.owner or getpass.getuser(),
        ttl=parse_ttl(args.ttl),
        organization=organization or DIY_ORGANIZATION,
        overrides=tuple(args.overrides),
        endpoints=args.endpoints,
    )


def _pulumi_backend() -> EnvBackend:
    from stacks.automation import PulumiBackend  # imports the Automation API only when used

    return PulumiBackend()


def _as_json(row: EnvRow) -> dict[str, object]:
    data: dict[str, object] = dataclasses.asdict(row)
    for key in ("created_at", "expires_at"):
        value = data[key]
        data[key] = tag_time(value) if isinstance(value, datetime) else None
    return data
