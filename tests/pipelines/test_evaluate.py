"""Evaluate step: the Model Registry report format, values that agree with scikit-learn, the
training job's model.tar.gz as input, and `metric_value` for the quality gate."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import xgboost
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from pipelines.data import LABEL, read_csv_dir
from pipelines.steps import evaluate, train
from pipelines.steps.evaluate import METRICS_KEY, metric_value

SCALARS = ("accuracy", "macro_f1", "weighted_f1", "weighted_precision", "weighted_recall")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, split_dir: Path) -> Path:
    """The shared splits and a model trained on them (60 rounds, one thread: quick, good)."""
    base = tmp_path_factory.mktemp("evaluate")
    (base / "splits").symlink_to(split_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        train.run(
            split_dir / "train",
            split_dir / "validation",
            base / "model",
            {"num_boost_round": 60, "nthread": 1},
        )
    return base


@pytest.fixture(scope="module")
def booster(workdir: Path) -> xgboost.Booster:
    return xgboost.Booster(model_file=str(workdir / "model" / "model.json"))


@pytest.fixture(scope="module")
def held_out(workdir: Path) -> pd.DataFrame:
    return read_csv_dir(workdir / "splits" / "test")


def test_report_has_the_model_registry_format(
    booster: xgboost.Booster, held_out: pd.DataFrame
) -> None:
    report = evaluate.evaluate(booster, held_out)

    assert list(report) == [METRICS_KEY]
    metrics = report[METRICS_KEY]
    for name in SCALARS:
        assert set(metrics[name]) == {"value", "standard_deviation"}
        assert isinstance(metrics[name]["value"], float)
        assert 0.0 <= metrics[name]["value"] <= 1.0
        assert metrics[name]["standard_deviation"] == "NaN"
    matrix = metrics["confusion_matrix"]
    assert list(matrix) == [str(label) for label in range(10)]
    assert all(list(row) == [str(label) for label in range(10)] for row in matrix.values())
    # Strict JSON: no bare NaN, everything serialisable.
    json.dumps(report, allow_nan=False)


def test_report_values_agree_with_scikit_learn(
    booster: xgboost.Booster, held_out: pd.DataFrame
) -> None:
    report = evaluate.evaluate(booster, held_out)
    actual = held_out[LABEL].to_numpy()
    predicted = booster.predict(train.to_dmatrix(held_out)).argmax(axis=1)

    assert metric_value(report, "accuracy") == pytest.approx(accuracy_score(actual, predicted))
    assert metric_value(report, "macro_f1") == pytest.approx(
        f1_score(actual, predicted, average="macro")
    )
    assert metric_value(report, "weighted_f1") == pytest.approx(
        f1_score(actual, predicted, average="weighted")
    )
    expected = confusion_matrix(actual, predicted, labels=range(10))
    matrix = report[METRICS_KEY]["confusion_matrix"]
    for row in range(10):
        for column in range(10):
            # Rows are the actual label, columns the predicted one.
            assert matrix[str(row)][str(column)] == expected[row, column]
    assert sum(sum(row.values()) for row in matrix.values()) == len(held_out)
    assert metric_value(report, "accuracy") > 0.9


def test_classes_absent_from_the_test_set_still_appear_in_the_matrix(
    booster: xgboost.Booster, held_out: pd.DataFrame
) -> None:
    only_ones = held_out[held_out[LABEL] == 1]
    matrix = evaluate.evaluate(booster, only_ones)[METRICS_KEY]["confusion_matrix"]
    assert set(matrix) == {str(label) for label in range(10)}
    assert sum(matrix["0"].values()) == 0
    assert sum(matrix["1"].values()) == len(only_ones)


def test_run_writes_evaluation_json(workdir: Path, tmp_path: Path) -> None:
    report = evaluate.run(workdir / "model", workdir / "splits" / "test", tmp_path)
    assert json.loads((tmp_path / "evaluation.json").read_text()) == report


def test_run_accepts_the_training_jobs_model_tar_gz(workdir: Path, tmp_path: Path) -> None:
    # SageMaker tars the model directory's contents: model.json sits at the archive's root.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as archive:
        archive.add(workdir / "model" / "model.json", arcname="model.json")

    from_archive = evaluate.run(model_dir, workdir / "splits" / "test", tmp_path / "a")
    from_file = evaluate.run(workdir / "model", workdir / "splits" / "test", tmp_path / "b")

    assert from_archive == from_file
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.tar.gz"]  # extracted elsewhere


def test_a_missing_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no model\.json or model\.ubj or model\.tar\.gz"):
        evaluate.load_booster(tmp_path)


def test_metric_value_reads_a_metric_and_names_the_known_ones(
    booster: xgboost.Booster, held_out: pd.DataFrame
) -> None:
    report = evaluate.evaluate(booster, held_out)
    assert metric_value(report, "macro_f1") == report[METRICS_KEY]["macro_f1"]["value"]
    with pytest.raises(KeyError, match=r"no metric 'auc'.*accuracy, macro_f1"):
        metric_value(report, "auc")
    with pytest.raises(KeyError, match="no metric 'confusion_matrix'"):
        metric_value(report, "confusion_matrix")


def test_main_takes_every_path_from_flags(workdir: Path, tmp_path: Path) -> None:
    args = ["--model-dir", str(workdir / "model"), "--test-dir", str(workdir / "splits" / "test")]
    assert evaluate.main([*args, "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert metric_value(report, "accuracy") > 0.9


def test_a_confusion_matrix_png_lies_beside_the_report(workdir: Path, tmp_path: Path) -> None:
    report = evaluate.run(workdir / "model", workdir / "splits" / "test", tmp_path)
    png = (tmp_path / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # An image of the real matrix: 10 x 10 counts, as large as the figure asks (640 x 560).
    import struct

    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (640, 560)
    assert len(report[evaluate.METRICS_KEY]["confusion_matrix"]) == 10
