"""`python -m pipelines`: print a pipeline's SageMaker definition, run it locally, or serve
the locally registered champion and send it a few requests.

python -m pipelines definition training|deployment --env dev [--model digits]
python -m pipelines run-local training [--env dev] [--model digits] [--port 5000]
python -m pipelines serve-local [digits] [--port 5000] [--rows 5]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from pipelines.signals import Stopped, hold_until_interrupted, signals_as_interrupts
from stacks.loader import SettingsError, committed_stacks, load_stack_settings
from stacks.settings import ModelSettings

if TYPE_CHECKING:
    from pipelines.local import LocalRunResult
    from pipelines.mlflow_server import MlflowServer

PIPELINES = ("training", "deployment")
LOCAL_PIPELINES = ("training",)
LOCAL_HOME = Path(".local")


class UsageError(Exception):
    """A bad pipeline, environment or model name; the message lists what exists."""


def _model(env: str, pipeline: str, model: str | None) -> tuple[str, ModelSettings]:
    if pipeline not in PIPELINES:
        raise UsageError(f"unknown pipeline {pipeline!r}; pipelines: {', '.join(PIPELINES)}")
    if env not in committed_stacks():
        raise UsageError(f"--env {env!r}: no such stack; stacks: {', '.join(committed_stacks())}")
    # A model is trained by its `pipeline`; the deployment pipeline serves deployed models.
    models = {
        name: settings
        for name, settings in load_stack_settings(env).models.items()
        if (
            settings.deployment is not None
            if pipeline == "deployment"
            else settings.pipeline == pipeline
        )
    }
    everything = load_stack_settings(env).models
    if model is not None and model in everything and model not in models:
        # In the stack, but not this pipeline's: say why, not "not in stack".
        raise UsageError(
            f"--model {model!r}: has no deployment settings in stack {env!r} "
            f"(models.{model}.deployment), so it has no deployment pipeline"
        )
    if not models:
        raise UsageError(f"stack {env!r} has no model that the {pipeline!r} pipeline handles")
    if model is None:
        model = sorted(models)[0]
    if model not in models:
        raise UsageError(f"--model {model!r}: not in stack {env!r}; models: {', '.join(models)}")
    return model, models[model]


def _definition(args: argparse.Namespace) -> int:
    from pipelines import deployment, training
    from pipelines.context import context_for_stack

    name, model = _model(args.env, args.pipeline, args.model)
    build = (
        deployment.definition_json if args.pipeline == "deployment" else training.definition_json
    )
    text = build(context_for_stack(args.env, name), model)
    if args.pretty:
        import json

        text = json.dumps(json.loads(text), indent=2)
    sys.stdout.write(text + "\n")
    return 0


def _run_local(args: argparse.Namespace, console: Console) -> int:
    from pipelines.home_lock import HomeBusy, locked_home
    from pipelines.local import GateFailed, run_training
    from pipelines.mlflow_server import MlflowServerError, running_server
    from pipelines.steps.preprocess import DataValidationError

    if args.pipeline not in LOCAL_PIPELINES:
        raise UsageError(
            f"run-local runs {', '.join(LOCAL_PIPELINES)}; the {args.pipeline!r} pipeline "
            "runs in SageMaker (`make demo` serves the local champion instead)"
        )
    name, model = _model(args.env, args.pipeline, args.model)
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        metric = model.quality_gate.metric
        raise UsageError(f"--threshold {args.threshold}: {metric} lies in [0, 1]")
    home: Path = args.home
    console.print(f"MLflow server on 127.0.0.1:{args.port} (data in {home / 'mlflow'}) ...")
    try:
        with locked_home(home), running_server(home / "mlflow", args.port) as server:
            _started(console, server)
            result = run_training(
                name, model, server.url, home / "runs", console, threshold=args.threshold
            )
            _summary(console, name, result, server.url)
            if args.keep:
                console.print(f"MLflow UI stays up at {server.url}; Ctrl-C stops it")
                hold_until_interrupted()
    except (MlflowServerError, HomeBusy) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except (GateFailed, DataValidationError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def _serve_local(args: argparse.Namespace, console: Console) -> int:
    from pipelines.home_lock import HomeBusy, locked_home
    from pipelines.mlflow_server import MlflowServerError, running_server
    from pipelines.serve_local import (
        NoChampion,
        ScoringServerError,
        serve_and_ask,
    )

    if args.rows < 1:
        raise UsageError(f"--rows {args.rows}: send at least one request")
    home: Path = args.home
    console.print(f"MLflow server on 127.0.0.1:{args.port} (data in {home / 'mlflow'}) ...")
    try:
        with locked_home(home), running_server(home / "mlflow", args.port) as server:
            _started(console, server)
            serve_and_ask(
                args.model,
                server.url,
                console,
                args.rows,
                home / "scoring-server.log",
                hold=_keep_serving(console) if args.keep else None,
            )
    except NoChampion as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except (MlflowServerError, ScoringServerError, HomeBusy) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    console.print(f"[green]✓[/] {'Stopped':<10} MLflow server")
    return 0


def _ui(args: argparse.Namespace, console: Console) -> int:
    """The MLflow UI over the local store, on 127.0.0.1, until Ctrl-C (or SIGTERM/SIGHUP)."""
    from pipelines.home_lock import HomeBusy, locked_home
    from pipelines.mlflow_server import MlflowServerError, running_server

    home: Path = args.home
    try:
        with locked_home(home), running_server(home / "mlflow", args.port) as server:
            console.print(
                f"[green]✓[/] MLflow UI  {server.url} (data in {home / 'mlflow'}); Ctrl-C stops it"
            )
            hold_until_interrupted()
        return 0
    except (MlflowServerError, HomeBusy) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _keep_serving(console: Console) -> Callable[[str], None]:
    def hold(url: str) -> None:
        console.print(
            f"serving until Ctrl-C; try: curl -s -H 'Content-Type: text/csv' "
            f"--data-binary @rows.csv {url}/invocations"
        )
        hold_until_interrupted()

    return hold


def _started(console: Console, server: MlflowServer) -> None:
    if server.cleaned is not None:
        console.print(
            f"[yellow]![/] stopped a leftover MLflow server of {server.home} (process group "
            f"{server.cleaned}) that an earlier run, killed outright, left behind"
        )
    console.print(f"[green]✓[/] MLflow     {server.url}")


def _summary(console: Console, model_name: str, result: LocalRunResult, url: str) -> None:
    from pipelines.local import pipeline_runs

    table = Table(title=f"{model_name}: local run {result.execution_id}", show_header=False)
    for metric, value in result.metrics.items():
        table.add_row(f"test {metric}", f"{value:.4f}")
    gate = f"{result.gate_metric} {result.gate_value:.4f} >= {result.threshold:.4f}"
    table.add_row("quality gate", f"passed ({gate})")
    table.add_row("registered", f"{model_name} version {result.model_version}")
    promoted = " (this run)" if result.promoted else " (kept: this run did not beat it)"
    score = f"{result.gate_metric} {result.champion_value:.4f}"
    table.add_row("champion", f"version {result.champion_version}, {score}{promoted}")
    table.add_row("pipeline runs tracked", str(len(pipeline_runs(url))))
    port = url.rsplit(":", 1)[-1]
    # The run's server stops with the run; this command serves the same store again.
    table.add_row("MLflow UI", f"{url} (after this run: python -m pipelines ui --port {port})")
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
    definition.add_argument(
        "--pretty", action="store_true", help="indent the JSON (CreatePipeline takes it as is)"
    )
    run_local.add_argument("--port", type=int, default=5000, help="MLflow server port")
    run_local.add_argument("--home", type=Path, default=LOCAL_HOME, help="local data folder")
    run_local.add_argument("--threshold", type=float, help="override the quality threshold")
    run_local.add_argument(
        "--keep", action="store_true", help="keep the MLflow server (and its UI) up until Ctrl-C"
    )
    serve_local = commands.add_parser(
        "serve-local", help="serve the local champion on 127.0.0.1 and send it a few requests"
    )
    serve_local.add_argument("model", nargs="?", default="digits", help="registered model")
    serve_local.add_argument("--port", type=int, default=5000, help="MLflow server port")
    serve_local.add_argument("--home", type=Path, default=LOCAL_HOME, help="local data folder")
    serve_local.add_argument("--rows", type=int, default=5, help="held-out digits to send")
    serve_local.add_argument(
        "--keep", action="store_true", help="keep serving after the requests, until Ctrl-C"
    )
    ui = commands.add_parser("ui", help="serve the local MLflow store's UI until Ctrl-C")
    ui.add_argument("--port", type=int, default=5000, help="MLflow server port")
    ui.add_argument("--home", type=Path, default=LOCAL_HOME, help="local data folder")
    args = parser.parse_args(argv)

    console = Console()
    try:
        with signals_as_interrupts():
            if args.command == "definition":
                return _definition(args)
            if args.command == "serve-local":
                return _serve_local(args, console)
            if args.command == "ui":
                return _ui(args, console)
            return _run_local(args, console)
    except (UsageError, SettingsError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Stopped as stopped:
        sys.stderr.write(
            f"stopped by {stopped}; the servers were stopped and open runs marked failed\n"
        )
        return stopped.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; the servers were stopped and open runs marked failed\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
