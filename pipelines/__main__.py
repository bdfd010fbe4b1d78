"""`python -m pipelines`: print a pipeline's SageMaker definition, or run it locally.

python -m pipelines definition training --env dev [--model digits]
python -m pipelines run-local training [--env dev] [--model digits] [--port 5000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from stacks.loader import SettingsError, committed_stacks, load_stack_settings
from stacks.settings import ModelSettings

if TYPE_CHECKING:
    from pipelines.local import LocalRunResult

PIPELINES = ("training",)
LOCAL_HOME = Path(".local")


class UsageError(Exception):
    """A bad pipeline, environment or model name; the message lists what exists."""


def _model(env: str, pipeline: str, model: str | None) -> tuple[str, ModelSettings]:
    if pipeline not in PIPELINES:
        raise UsageError(f"unknown pipeline {pipeline!r}; pipelines: {', '.join(PIPELINES)}")
    if env not in committed_stacks():
        raise UsageError(f"--env {env!r}: no such stack; stacks: {', '.join(committed_stacks())}")
    models = {
        name: settings
        for name, settings in load_stack_settings(env).models.items()
        if settings.pipeline == pipeline
    }
    if not models:
        raise UsageError(f"stack {env!r} has no model trained by the {pipeline!r} pipeline")
    if model is None:
        model = sorted(models)[0]
    if model not in models:
        raise UsageError(f"--model {model!r}: not in stack {env!r}; models: {', '.join(models)}")
    return model, models[model]


def _definition(args: argparse.Namespace) -> int:
    from pipelines.context import context_for_stack
    from pipelines.training import definition_json

    name, model = _model(args.env, args.pipeline, args.model)
    sys.stdout.write(definition_json(context_for_stack(args.env, name), model) + "\n")
    return 0


def _run_local(args: argparse.Namespace, console: Console) -> int:
    from pipelines.local import GateFailed, run_training
    from pipelines.mlflow_server import MlflowServerError, running_server
    from pipelines.steps.preprocess import DataValidationError

    name, model = _model(args.env, args.pipeline, args.model)
    home: Path = args.home
    console.print(f"MLflow server on 127.0.0.1:{args.port} (data in {home / 'mlflow'}) ...")
    try:
        with running_server(home / "mlflow", args.port) as server:
            console.print(f"[green]✓[/] MLflow     {server.url}")
            result = run_training(
                name, model, server.url, home / "runs", console, threshold=args.threshold
            )
            _summary(console, name, result, server.url)
    except MlflowServerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (GateFailed, DataValidationError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def _summary(console: Console, model_name: str, result: LocalRunResult, url: str) -> None:
    from pipelines.local import pipeline_runs

    table = Table(title=f"{model_name}: local run {result.execution_id}", show_header=False)
    for metric, value in result.metrics.items():
        table.add_row(f"test {metric}", f"{value:.4f}")
    gate = f"{result.gate_metric} {result.gate_value:.4f} >= {result.threshold:.4f}"
    table.add_row("quality gate", f"passed ({gate})")
    table.add_row("registered", f"{model_name} version {result.model_version}")
    promoted = " (this run)" if result.promoted else " (kept: this run did not beat it)"
    table.add_row("champion", f"version {result.champion_version}{promoted}")
    table.add_row("pipeline runs tracked", str(len(pipeline_runs(url))))
    table.add_row("MLflow UI", url)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    definition = commands.add_parser("definition", help="print the SageMaker definition JSON")
    run_local = commands.add_parser("run-local", help="run the pipeline here with MLflow")
    for command in (definition, run_local):
        command.add_argument("pipeline", help=f"pipeline ({', '.join(PIPELINES)})")
        command.add_argument("--env", default="dev", help="stack whose settings to use")
        command.add_argument("--model", help="model in that stack (default: the first)")
    run_local.add_argument("--port", type=int, default=5000, help="MLflow server port")
    run_local.add_argument("--home", type=Path, default=LOCAL_HOME, help="local data folder")
    run_local.add_argument("--threshold", type=float, help="override the quality threshold")
    args = parser.parse_args(argv)

    console = Console()
    try:
        if args.command == "definition":
            return _definition(args)
        return _run_local(args, console)
    except (UsageError, SettingsError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; the MLflow server was stopped\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
