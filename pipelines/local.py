"""The training pipeline, run locally: the same step code as in SageMaker, in order, on the
bundled data set, tracked in a real MLflow server on loopback.

Preprocess -> Train -> Evaluate -> quality gate -> Register in the MLflow model registry
(alias `challenger`; promoted to `champion` when it beats the current champion on the gate's
metric) -> the registered model loaded back to predict a few held-out rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from pipelines import environment_variables as env
from pipelines.data import LABEL, write_raw_dataset
from pipelines.steps import evaluate, preprocess, train
from stacks.settings import ModelSettings

T = TypeVar("T")
# The sagemaker-mlflow plugin's request-header provider assumes the tracking URI is a
# SageMaker tracking server ARN and logs an IndexError on every request to any other server.
logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
# The step lines say what happened; MLflow's per-run INFO lines would bury them.
logging.getLogger("mlflow").setLevel(logging.WARNING)
CHALLENGER, CHAMPION = "challenger", "champion"
GATE_TAG = "mlops.quality_gate"
HEADLINE_METRICS = ("accuracy", "macro_f1")


class GateFailed(RuntimeError):
    """The model's metric is below the quality gate's threshold; nothing was registered."""

    def __init__(self, metric: str, value: float, threshold: float) -> None:
        super().__init__(
            f"quality gate failed: {metric} {value:.4f} < threshold {threshold:.4f}; "
            "the model was not registered"
        )
        self.metric, self.value, self.threshold = metric, value, threshold


@dataclass
class LocalRunResult:
    execution_id: str
    metrics: dict[str, float]
    gate_metric: str
    gate_value: float
    threshold: float
    model_version: str
    champion_version: str
    # The champion's gate metric once this run registered (this run's when it was promoted).
    champion_value: float
    promoted: bool
    predictions: list[tuple[int, int]]  # (actual, predicted) for a few held-out rows


@contextlib.contextmanager
def scoped_environment(values: dict[str, str]) -> Iterator[None]:
    """Step code reads MLflow settings from the environment, as in its container."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Steps:
    """Runs steps with a rich status line each, saying how long each took."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def run(self, name: str, action: Callable[[], T], detail: Callable[[T], str]) -> T:
        started = time.perf_counter()
        with self.console.status(f"[bold]{name}[/] ..."):
            result = action()
        elapsed = time.perf_counter() - started
        self.console.print(f"[green]✓[/] {name:<10} {elapsed:6.1f} s  {detail(result)}")
        return result


def run_training(
    model_name: str,
    model: ModelSettings,
    tracking_uri: str,
    workdir: Path,
    console: Console,
    threshold: float | None = None,
    registered_name: str | None = None,
) -> LocalRunResult:
    """Run the whole pipeline once; raise GateFailed when the gate stops it.

    The model registers under `registered_name` (default: the model's name), so runs that
    must not compete for the same champion can share a server.
    """
    import mlflow  # imported here: the CLI's other commands do not pay for it

    execution_id = f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = workdir / execution_id
    gate = model.quality_gate
    threshold = gate.threshold if threshold is None else threshold
    registry_name = registered_name or model_name
    steps = _Steps(console)
    variables = {
        # Per-file download bars and per-run URLs would bury the step lines; the summary
        # gives the UI's URL.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        # OpenMP threads spin while waiting by default; beside the MLflow server on 2 cores
        # that made XGBoost training 10-100x slower.
        "OMP_WAIT_POLICY": "PASSIVE",
        env.MLFLOW_TRACKING_URI.name: tracking_uri,
        env.MLOPS_PIPELINE_EXECUTION_ID.name: execution_id,
        env.MLOPS_MODEL_NAME.name: model_name,
    }
    with scoped_environment(variables):
        raw = write_raw_dataset(run_dir / "raw")
        steps.run(
            "Preprocess",
            lambda: preprocess.run(raw.parent, run_dir / "preprocess"),
            lambda c: ", ".join(f"{k} {v}" for k, v in c.items()),
        )
        trained = steps.run(
            "Train",
            lambda: train.run(
                run_dir / "preprocess" / "train",
                run_dir / "preprocess" / "validation",
                run_dir / "model",
                model.training.hyperparameters,
                checkpoint_dir=run_dir / "checkpoints",
            ),
            lambda t: f"device {t.device}, validation accuracy {t.metrics['accuracy']:.4f}",
        )
        report = steps.run(
            "Evaluate",
            lambda: evaluate.run(
                run_dir / "model", run_dir / "preprocess" / "test", run_dir / "evaluation"
            ),
            lambda r: f"test {gate.metric} {evaluate.metric_value(r, gate.metric):.4f}",
        )
        value = evaluate.metric_value(report, gate.metric)
        client = mlflow.MlflowClient(tracking_uri)
        headline = {name: evaluate.metric_value(report, name) for name in HEADLINE_METRICS}
        passed = value >= threshold
        _record_on_parent(client, execution_id, headline, passed, gate.metric, threshold)
        if not passed:
            console.print(f"[red]✗[/] QualityGate {gate.metric} {value:.4f} < {threshold:.4f}")
            raise GateFailed(gate.metric, value, threshold)
        console.print(f"[green]✓[/] QualityGate {gate.metric} {value:.4f} >= {threshold:.4f}")

        registration = steps.run(
            "Register",
            lambda: _register(client, registry_name, trained.mlflow_model_uri, gate.metric, value),
            lambda r: f"{registry_name} v{r[0]} ({'champion' if r[3] else 'challenger'})",
        )
        version, champion, champion_value, promoted = registration
        predictions = steps.run(
            "Predict",
            lambda: _predict_held_out(tracking_uri, registry_name, version, run_dir),
            lambda p: " ".join(f"{actual}->{guess}" for actual, guess in p),
        )
    return LocalRunResult(
        execution_id=execution_id,
        metrics=headline,
        gate_metric=gate.metric,
        gate_value=value,
        threshold=threshold,
        model_version=version,
        champion_version=champion,
        champion_value=champion_value,
        promoted=promoted,
        predictions=predictions,
    )


def _record_on_parent(
    client: Any,
    execution_id: str,
    metrics: dict[str, float],
    passed: bool,
    gate_metric: str,
    threshold: float,
) -> None:
    """The execution's parent run carries the headline metrics and the gate's verdict, so
    executions compare side by side in MLflow's experiment table."""
    from pipelines.steps.tracking import EXECUTION_TAG, STEP_TAG

    experiment = client.get_experiment_by_name(env.MLFLOW_EXPERIMENT_NAME.get())
    if experiment is None:
        return
    query = f"tags.`{EXECUTION_TAG}` = '{execution_id}' AND tags.`{STEP_TAG}` IS NULL"
    for parent in client.search_runs([experiment.experiment_id], query):
        run_id = parent.info.run_id
        for name, value in metrics.items():
            client.log_metric(run_id, f"test_{name}", value)
        client.set_tag(run_id, GATE_TAG, "passed" if passed else "failed")
        client.set_tag(run_id, f"{GATE_TAG}.rule", f"{gate_metric} >= {threshold}")


def _register(
    client: Any, model_name: str, model_uri: str | None, metric: str, value: float
) -> tuple[str, str, float, bool]:
    """Register the trained model; make it challenger, and champion if it beats the current one.

    Returns (new version, champion version, champion's metric, promoted).
    """
    import mlflow

    if model_uri is None:
        raise RuntimeError("the Train step logged no model to MLflow")
    version = str(mlflow.register_model(model_uri, model_name).version)
    client.set_model_version_tag(model_name, version, metric, str(value))
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    try:
        champion = client.get_model_version_by_alias(model_name, CHAMPION)
        best = float(champion.tags.get(metric, "-inf"))
    except mlflow.exceptions.MlflowException:
        champion, best = None, float("-inf")
    if value > best:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        return version, version, value, True
    assert champion is not None
    return version, str(champion.version), best, False


def _predict_held_out(
    tracking_uri: str, model_name: str, version: str, run_dir: Path, rows: int = 5
) -> list[tuple[int, int]]:
    """Load the registered version back from the registry and predict a few test rows."""
    import mlflow
    import pandas  # type: ignore[import-untyped]

    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    test = pandas.read_csv(run_dir / "preprocess" / "test" / "data.csv").head(rows)
    predicted = loaded.predict(test.drop(columns=[LABEL]))
    guesses = [int(p.argmax()) if hasattr(p, "argmax") else int(p) for p in predicted]
    return list(zip(test[LABEL].astype(int).tolist(), guesses, strict=True))


def pipeline_runs(tracking_uri: str) -> list[Any]:
    """The parent runs (one per pipeline execution) in the experiment, newest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(env.MLFLOW_EXPERIMENT_NAME.get())
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], "tags.`mlops.step` IS NULL"))
