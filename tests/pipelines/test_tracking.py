"""MLflow tracking of the steps, against a real SQLite-backed store (no server needed): step
runs of one execution nest under one parent run; without a tracking URI nothing is logged."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import xgboost
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from pipelines.data import write_raw_dataset
from pipelines.steps import evaluate, preprocess, train
from pipelines.steps.tracking import (
    EXECUTION_TAG,
    STEP_TAG,
    current_execution_id,
    find_or_create_parent_run,
    step_run,
)

EXPERIMENT = "tracking-tests"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite store, made once: creating the schema takes seconds, copying
    the file milliseconds."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(
    empty_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowClient]:
    """A fresh SQLite store per test; the working directory is the test's, so the store's
    default artifact root (./mlruns) lands there too."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    monkeypatch.delenv("MLOPS_PIPELINE_EXECUTION_ID", raising=False)
    yield MlflowClient(uri)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # mlflow's global, back to unset


def _experiment_id(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return str(experiment.experiment_id)


def _runs(client: MlflowClient, filter_string: str = "") -> list[Run]:
    return list(client.search_runs([_experiment_id(client)], filter_string))


def _parents(client: MlflowClient, execution_id: str) -> list[Run]:
    return _runs(client, f"tags.`{EXECUTION_TAG}` = '{execution_id}'")


def _children(client: MlflowClient, parent: Run) -> dict[str, Run]:
    runs = _runs(client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {run.info.run_name: run for run in runs}


def test_two_steps_of_one_execution_nest_under_one_parent(
    tracking: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "exec-123")
    with step_run("preprocess", {"seed": 42}) as run:
        assert run is not None
        mlflow.log_metric("rows", 1797)
    with step_run("train"):
        pass

    (parent,) = _parents(tracking, "exec-123")
    assert parent.info.run_name == "exec-123"
    assert parent.data.tags["mlops.model_name"] == "digits"
    assert STEP_TAG not in parent.data.tags
    assert parent.info.status == "FINISHED"
    children = _children(tracking, parent)
    assert set(children) == {"preprocess", "train"}
    assert children["preprocess"].data.tags[STEP_TAG] == "preprocess"
    assert children["preprocess"].data.params == {"seed": "42"}
    assert children["preprocess"].data.metrics == {"rows": 1797}
    assert all(child.info.status == "FINISHED" for child in children.values())
    assert len(_runs(tracking)) == 3


def test_each_execution_gets_its_own_parent(
    tracking: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for execution in ("exec-a", "exec-b"):
        monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", execution)
        with step_run("preprocess"):
            pass
    assert len(_parents(tracking, "exec-a")) == 1
    assert len(_parents(tracking, "exec-b")) == 1


def test_a_failing_step_fails_its_run_and_the_parent(
    tracking: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "exec-fail")
    with pytest.raises(RuntimeError, match="boom"), step_run("train"):
        raise RuntimeError("boom")
    (parent,) = _parents(tracking, "exec-fail")
    assert parent.info.status == "FAILED"
    assert _children(tracking, parent)["train"].info.status == "FAILED"
    assert mlflow.active_run() is None


def test_a_racing_step_converges_on_the_oldest_parent(
    tracking: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with step_run("setup"):  # creates the experiment
        pass
    experiment_id = _experiment_id(tracking)
    real_create = tracking.create_run
    rival: dict[str, str] = {}

    def create_after_a_rival(*args: Any, **kwargs: Any) -> Run:
        # Another step's create lands between this step's search and its own create.
        rival["id"] = real_create(*args, **kwargs).info.run_id
        time.sleep(0.01)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(tracking, "create_run", create_after_a_rival)
    chosen = find_or_create_parent_run(tracking, experiment_id, "exec-race")

    assert chosen == rival["id"]
    assert [run.info.run_id for run in _parents(tracking, "exec-race")] == [rival["id"]]


def test_without_an_execution_id_a_step_run_stands_alone(tracking: MlflowClient) -> None:
    with step_run("evaluate") as run:
        assert run is not None
    (only,) = _runs(tracking)
    assert only.info.run_name == "evaluate"
    assert "mlflow.parentRunId" not in only.data.tags


def test_without_a_tracking_uri_nothing_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "exec-off")
    monkeypatch.chdir(tmp_path)
    with step_run("preprocess", {"seed": 1}) as run:
        assert run is None
        assert mlflow.active_run() is None
    assert list(tmp_path.iterdir()) == []  # no mlruns/ directory, no database


def test_the_three_steps_log_one_execution(
    tracking: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "exec-steps")
    raw = write_raw_dataset(tmp_path / "raw")
    preprocess.run(raw.parent, tmp_path / "splits")
    result = train.run(
        tmp_path / "splits" / "train",
        tmp_path / "splits" / "validation",
        tmp_path / "model",
        {"num_boost_round": 30, "nthread": 1},
    )
    evaluate.run(tmp_path / "model", tmp_path / "splits" / "test", tmp_path / "evaluation")

    (parent,) = _parents(tracking, "exec-steps")
    steps = _children(tracking, parent)
    assert set(steps) == {"preprocess", "train", "evaluate"}
    assert steps["preprocess"].data.metrics["rows_test"] == 360
    assert steps["preprocess"].data.tags["mlops.data_validation"] == "passed"
    trained = steps["train"]
    assert trained.data.params["device"] == "cpu"
    assert trained.data.params["num_boost_round"] == "30"
    history = tracking.get_metric_history(trained.info.run_id, "validation_mlogloss")
    assert [point.step for point in history] == list(range(30))
    assert trained.data.metrics["best_validation_accuracy"] == result.metrics["accuracy"]
    # The logged model loads back and predicts what the saved one predicts.
    assert result.mlflow_model_uri is not None
    loaded = mlflow.pyfunc.load_model(result.mlflow_model_uri)
    test = tmp_path / "splits" / "test" / "data.csv"
    rows = pd.read_csv(test).drop(columns=["label"]).head(5)
    expected = xgboost.Booster(model_file=str(result.model_path)).predict(xgboost.DMatrix(rows))
    assert (loaded.predict(rows).argmax(axis=1) == expected.argmax(axis=1)).all()
    evaluated = steps["evaluate"]
    assert evaluated.data.metrics["test_accuracy"] > 0.9
    artifact = mlflow.artifacts.download_artifacts(
        run_id=evaluated.info.run_id, artifact_path="evaluation.json", dst_path=str(tmp_path / "d")
    )
    assert json.loads(Path(artifact).read_text())[evaluate.METRICS_KEY]["accuracy"]["value"] > 0.9
    # ... and beside it, the confusion matrix as a picture.
    picture = mlflow.artifacts.download_artifacts(
        run_id=evaluated.info.run_id,
        artifact_path="confusion_matrix.png",
        dst_path=str(tmp_path / "p"),
    )
    assert Path(picture).read_bytes().startswith(b"\x89PNG")


def test_execution_id_comes_from_the_pipeline_job_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLOPS_PIPELINE_EXECUTION_ID", raising=False)
    monkeypatch.setenv("MLOPS_PROCESSING_JOB_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.setenv("TRAINING_JOB_NAME", "pipelines-8x2k4lqz0ab1-Train-Xy12AbCdEf")
    assert current_execution_id() == "8x2k4lqz0ab1"

    monkeypatch.delenv("TRAINING_JOB_NAME")
    config = tmp_path / "processingjobconfig.json"
    config.write_text(json.dumps({"ProcessingJobName": "pipelines-q9w8e7r6t5y4-Evaluate-Zz9"}))
    monkeypatch.setenv("MLOPS_PROCESSING_JOB_CONFIG", str(config))
    assert current_execution_id() == "q9w8e7r6t5y4"

    # The local runner's explicit id wins; a job outside a pipeline is a standalone run.
    monkeypatch.setenv("MLOPS_PIPELINE_EXECUTION_ID", "local-1")
    assert current_execution_id() == "local-1"
    monkeypatch.delenv("MLOPS_PIPELINE_EXECUTION_ID")
    config.write_text(json.dumps({"ProcessingJobName": "adhoc-evaluate-2026"}))
    assert current_execution_id() is None
