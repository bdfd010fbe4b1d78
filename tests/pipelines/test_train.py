"""Train step: real training on CPU, device choice, hyperparameter coercion, spot-checkpoint
resume, and the container entry point reading SageMaker's variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import xgboost

from pipelines.data import LABEL, read_csv_dir
from pipelines.steps import train
from pipelines.steps.train import (
    load_latest_checkpoint,
    pick_device,
    resolve_hyperparameters,
)

# One OpenMP thread: on a small shared machine, two xgboost threads competing with another busy
# process slow training a hundredfold (spin-waiting); one thread is as fast on this tiny set.
ONE_THREAD = {"nthread": 1}


@pytest.fixture(scope="module")
def frames(split_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_csv_dir(split_dir / "train"), read_csv_dir(split_dir / "validation")


def _max_depth(booster: xgboost.Booster) -> int:
    def depth(node: dict[str, Any]) -> int:
        return 1 + max((depth(child) for child in node.get("children", [])), default=-1)

    return max(depth(json.loads(tree)) for tree in booster.get_dump(dump_format="json"))


def test_device_is_cpu_with_the_cpu_only_build() -> None:
    assert not xgboost.build_info().get("USE_CUDA")
    assert pick_device() == "cpu"


def test_device_is_cuda_with_a_cuda_build_and_a_visible_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(train, "_cuda_build", lambda: True)
    monkeypatch.setattr(train, "_gpu_visible", lambda: True)
    assert pick_device() == "cuda"
    monkeypatch.setattr(train, "_gpu_visible", lambda: False)
    assert pick_device() == "cpu"


@pytest.mark.parametrize("value", ["", "-1"])
def test_gpus_hidden_on_purpose_are_not_visible(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    monkeypatch.setattr(train.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert not train._gpu_visible()


def test_string_hyperparameters_are_coerced() -> None:
    resolved = resolve_hyperparameters(
        {
            "num_boost_round": "50",
            "max_depth": "4.0",
            "eta": "0.1",
            "subsample": "0.8",
            "eval_metric": "merror, mlogloss",
            "validate_parameters": "True",
            "objective": '"multi:softprob"',
            "sagemaker_program": "train.py",
        }
    )
    assert resolved["num_boost_round"] == 50 and isinstance(resolved["num_boost_round"], int)
    assert resolved["max_depth"] == 4 and isinstance(resolved["max_depth"], int)
    assert resolved["eta"] == 0.1
    assert resolved["subsample"] == 0.8
    assert resolved["eval_metric"] == ["merror", "mlogloss"]
    assert resolved["validate_parameters"] is True
    assert "sagemaker_program" not in resolved
    assert resolved["objective"] == "multi:softprob" and resolved["tree_method"] == "hist"


@pytest.mark.parametrize("value", ["deep", "4.5"])
def test_a_non_integer_count_names_the_hyperparameter(value: str) -> None:
    with pytest.raises(ValueError, match="hyperparameter max_depth must be a whole number"):
        resolve_hyperparameters({"max_depth": value})


def test_trains_on_the_real_splits_on_cpu(split_dir: Path, tmp_path: Path) -> None:
    result = train.run(
        split_dir / "train", split_dir / "validation", tmp_path / "model", ONE_THREAD
    )

    assert result.device == "cpu"
    assert result.metrics["accuracy"] > 0.9
    assert 0 < result.metrics["mlogloss"] < 0.3
    assert result.mlflow_model_uri is None  # tracking is off
    saved = xgboost.Booster(model_file=str(result.model_path))
    assert result.model_path == tmp_path / "model" / "model.json"
    # The saved model ends at the best iteration early stopping found.
    assert saved.num_boosted_rounds() == int(result.metrics["best_iteration"]) + 1
    validation = read_csv_dir(split_dir / "validation")
    predicted = saved.predict(train.to_dmatrix(validation)).argmax(axis=1)
    assert (predicted == validation[LABEL]).mean() == pytest.approx(result.metrics["accuracy"])


def test_early_stopping_watches_the_validation_set(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    booster = train.train(*frames, {**ONE_THREAD, "early_stopping_rounds": 5}, "cpu")
    best = int(booster.attr("best_iteration") or -1)
    assert booster.num_boosted_rounds() < 200
    assert booster.num_boosted_rounds() == best + 1 + 5


def test_resumes_from_the_newest_checkpoint(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = tmp_path / "checkpoints"
    settings = {**ONE_THREAD, "checkpoint_interval": 5, "early_stopping_rounds": 100}
    first = train.train(*frames, {**settings, "num_boost_round": 20}, "cpu", checkpoints)
    assert first.num_boosted_rounds() == 20
    # Every 5 rounds, the newest three kept, no partial files left behind.
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "checkpoint_10.ubj",
        "checkpoint_15.ubj",
        "checkpoint_20.ubj",
    ]

    calls: list[tuple[int, int]] = []
    real_train = xgboost.train

    def spy(*args: Any, **kwargs: Any) -> xgboost.Booster:
        start = kwargs["xgb_model"].num_boosted_rounds() if kwargs["xgb_model"] else 0
        calls.append((start, kwargs["num_boost_round"]))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(xgboost, "train", spy)
    second = train.train(*frames, {**settings, "num_boost_round": 40}, "cpu", checkpoints)

    assert calls == [(20, 20)]  # started from the 20-round checkpoint, trained only 20 more
    assert second.num_boosted_rounds() == 40
    assert second[:20].get_dump() == first.get_dump()
    assert (checkpoints / "checkpoint_40.ubj").exists()


def test_an_unreadable_checkpoint_is_skipped(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    settings = {**ONE_THREAD, "num_boost_round": 10, "checkpoint_interval": 5}
    train.train(*frames, settings, "cpu", tmp_path)
    (tmp_path / "checkpoint_99.ubj").write_bytes(b"torn by a spot interruption")
    resumed = load_latest_checkpoint(tmp_path)
    assert resumed is not None and resumed.num_boosted_rounds() == 10


def test_a_checkpoint_that_stopped_early_is_not_trained_further(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {**ONE_THREAD, "early_stopping_rounds": 3, "checkpoint_interval": 50}
    first = train.train(*frames, settings, "cpu", tmp_path)
    assert first.num_boosted_rounds() < 200

    def must_not_train(*args: Any, **kwargs: Any) -> xgboost.Booster:
        raise AssertionError("training restarted after early stopping had finished it")

    monkeypatch.setattr(xgboost, "train", must_not_train)
    again = train.train(*frames, settings, "cpu", tmp_path)
    assert again.num_boosted_rounds() == first.num_boosted_rounds()


def test_hyperparameter_pairs_from_the_command_line() -> None:
    pairs = train._hyperparameter_pairs(
        ["--max_depth", "4", "--eta=0.1", "--early-stopping-rounds", "5"]
    )
    assert pairs == {"max_depth": "4", "eta": "0.1", "early_stopping_rounds": "5"}
    with pytest.raises(ValueError, match="--eta has no value"):
        train._hyperparameter_pairs(["--eta"])
    # A hyperparameter is never mistaken for an abbreviated flag (`--model` of `--model-dir`).
    args, hyperparameters = train.parse_args(["--model", "x", "--model-dir", "/tmp/m"])
    assert hyperparameters["model"] == "x" and args.model_dir == Path("/tmp/m")


def test_main_reads_the_sagemaker_variables(
    split_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(split_dir / "train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(split_dir / "validation"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("SM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv(
        "SM_HPS",
        json.dumps({"num_boost_round": "30", "max_depth": "6", "nthread": "1"}),
    )

    # SageMaker's hyperparameters.json < SM_HPS < the command line.
    hyperparameters_file = tmp_path / "hyperparameters.json"
    hyperparameters_file.write_text(json.dumps({"num_boost_round": "500", "eta": "0.5"}))
    argv = ["--hyperparameters-file", str(hyperparameters_file), "--max_depth", "3"]
    assert train.main([*argv, "--checkpoint_interval", "10"]) == 0

    model = xgboost.Booster(model_file=str(tmp_path / "model" / "model.json"))
    assert model.num_boosted_rounds() <= 30
    assert _max_depth(model) <= 3
    assert (tmp_path / "checkpoints" / "checkpoint_30.ubj").exists()
    metrics = json.loads((tmp_path / "output" / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["accuracy"] > 0.8
