"""Evaluate step: score the trained model on the held-out test split.

Why this report shape: `evaluation.json` follows the SageMaker Model Registry's model-quality
format (`multiclass_classification_metrics` -> metric -> `value` / `standard_deviation`, and the
confusion matrix as actual label -> predicted label -> count). The Register step attaches it to
the model package as ModelQuality statistics, so Studio shows it next to the version, and the
quality gate reads its figures through `metric_value`.

In SageMaker this runs as a processing job that receives the training job's `model.tar.gz`;
locally it receives the model directory with `model.json`. Both are accepted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd  # type: ignore[import-untyped]
import xgboost
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from pipelines.data import LABEL, read_csv_dir
from pipelines.inference.scoring import load_booster
from pipelines.steps.report_figures import CONFUSION_MATRIX_PNG, confusion_matrix_png
from pipelines.steps.tracking import step_run
from pipelines.steps.train import to_dmatrix

logger = logging.getLogger(__name__)

#: The report's top-level key for a multiclass classifier.
METRICS_KEY = "multiclass_classification_metrics"
#: What the registry format expects where no standard deviation was estimated.
NO_DEVIATION = "NaN"
#: The file the pipeline's property file and the registry's ModelQuality point at.
REPORT_FILE = "evaluation.json"
#: The archive a SageMaker training job makes of its model directory.


def _metric(value: float) -> dict[str, Any]:
    return {"value": float(value), "standard_deviation": NO_DEVIATION}


def confusion_matrix_dict(
    actual: Sequence[int], predicted: Sequence[int], labels: Sequence[int]
) -> dict[str, dict[str, int]]:
    """The registry's nested form: `{actual: {predicted: count}}`, every label in both levels
    (zeros included, so the matrix is square whatever the test set holds)."""
    matrix = confusion_matrix(actual, predicted, labels=list(labels))
    return {
        str(row_label): {
            str(column_label): int(matrix[row, column])
            for column, column_label in enumerate(labels)
        }
        for row, row_label in enumerate(labels)
    }


def evaluate(booster: xgboost.Booster, test: pd.DataFrame) -> dict[str, Any]:
    """The model-quality report for `booster` on `test` (which holds features and `label`)."""
    probabilities = booster.predict(to_dmatrix(test))
    predicted = probabilities.argmax(axis=1).tolist()
    actual = test[LABEL].astype(int).tolist()
    labels = list(range(probabilities.shape[1]))
    average = {"labels": labels, "zero_division": 0}
    return {
        METRICS_KEY: {
            "accuracy": _metric(accuracy_score(actual, predicted)),
            "macro_f1": _metric(f1_score(actual, predicted, average="macro", **average)),
            "weighted_f1": _metric(f1_score(actual, predicted, average="weighted", **average)),
            "weighted_precision": _metric(
                precision_score(actual, predicted, average="weighted", **average)
            ),
            "weighted_recall": _metric(
                recall_score(actual, predicted, average="weighted", **average)
            ),
            "confusion_matrix": confusion_matrix_dict(actual, predicted, labels),
        }
    }


def metric_value(report: dict[str, Any], name: str) -> float:
    """One metric's value from a report (what the quality gate compares with its threshold).
    An unknown name raises a KeyError that lists the metrics the report has."""
    metrics = report.get(METRICS_KEY, {})
    entry = metrics.get(name)
    if not isinstance(entry, dict) or "value" not in entry:
        known = sorted(key for key, value in metrics.items() if isinstance(value, dict))
        scalar = [key for key in known if "value" in metrics[key]]
        raise KeyError(f"no metric {name!r} in the evaluation report; it has: {', '.join(scalar)}")
    return float(entry["value"])


def _flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics, as MLflow metrics named `test_<metric>`."""
    return {
        f"test_{name}": float(entry["value"])
        for name, entry in report[METRICS_KEY].items()
        if isinstance(entry, dict) and "value" in entry
    }


def run(model_dir: Path, test_dir: Path, output_dir: Path) -> dict[str, Any]:
    """Loads the model, scores the test split, writes `output_dir/evaluation.json` and, when
    tracking is on, logs the metrics and the report to MLflow. Returns the report."""
    with step_run("evaluate") as active:
        booster = load_booster(model_dir)
        test = read_csv_dir(test_dir)
        report = evaluate(booster, test)
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / REPORT_FILE
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        metrics = _flat_metrics(report)
        logger.info("test metrics: %s", metrics)
        # A picture beside the JSON: the confusion matrix a reviewer reads at a glance.
        figure = confusion_matrix_png(
            report[METRICS_KEY]["confusion_matrix"],
            output_dir / CONFUSION_MATRIX_PNG,
            f"test split: accuracy {report[METRICS_KEY]['accuracy']['value']:.4f}",
        )
        if active is not None:
            mlflow.log_metric("test_rows", float(len(test)))
            mlflow.log_metrics(metrics)
            mlflow.log_artifact(os.fspath(path))
            mlflow.log_artifact(os.fspath(figure))
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The processing container's command line; defaults follow SageMaker's paths."""
    parser = argparse.ArgumentParser(description="Evaluate the digits classifier.")
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """The processing container's entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    run(args.model_dir, args.test_dir, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
