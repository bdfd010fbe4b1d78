"""`python -m stacks plan <stack> [--json]`: what `pulumi up` would create, offline."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from components.naming import InvalidName
from stacks.loader import SettingsError, committed_stacks
from stacks.offline import evaluate_stack
from stacks.plan import as_json, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan", help="print the resources a stack would create, without AWS or the Pulumi CLI"
    )
    plan.add_argument("stack", help=f"stack name ({', '.join(committed_stacks())})")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    try:
        recording = evaluate_stack(args.stack)
    except (SettingsError, InvalidName) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(recording), indent=2, default=str))
    else:
        render(recording, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
