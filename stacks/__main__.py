"""`python -m stacks plan <stack> [--json] [--strict]`: what `pulumi up` would create, and
the policy rules' verdict on it, offline. `python -m stacks env ...`: on-demand environments
(create, list, extend, destroy, reap)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from components.naming import InvalidName
from stacks.env_cli import add_env_commands, run_env
from stacks.loader import SettingsError, committed_stacks
from stacks.offline import evaluate_stack
from stacks.plan import as_json, render
from stacks.policy_check import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan", help="print the resources a stack would create, without AWS or the Pulumi CLI"
    )
    plan.add_argument("stack", help=f"stack name ({', '.join(committed_stacks())})")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--strict", action="store_true", help="exit 1 on any policy violation (also advisory)"
    )
    add_env_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "env":
        return run_env(args)

    try:
        recording = evaluate_stack(args.stack)
    except (SettingsError, InvalidName) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = check(recording)
    if args.json:
        print(json.dumps(as_json(recording, report), indent=2, default=str))
    else:
        render(recording, report, Console())
    violations = len(report.mandatory) + len(report.advisory)
    return 1 if args.strict and violations else 0


if __name__ == "__main__":
    sys.exit(main())
