"""Train step: an XGBoost multiclass classifier (hist trees) with early stopping.

Why one code path for laptop and cluster: the device is picked at run time (`cuda` when this
xgboost build has CUDA and a GPU is visible, else `cpu`), so the same module trains on two CPU
cores in seconds locally and on a GPU in a SageMaker training job, and logs which one it used.

Why checkpoints: training jobs run on managed spot capacity, which SageMaker may reclaim. The
booster is saved every few rounds to the checkpoint directory, which SageMaker syncs to S3; a
restarted job finds the newest checkpoint there and continues from it instead of starting over.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import mlflow
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import xgboost
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.metrics import log_loss  # type: ignore[import-untyped]

from pipelines.data import FEATURES, LABEL, read_csv_dir
from pipelines.environment_variables import (
    CUDA_VISIBLE_DEVICES,
    SM_CHANNEL_TRAIN,
    SM_CHANNEL_VALIDATION,
    SM_CHECKPOINT_DIR,
    SM_HPS,
    SM_MODEL_DIR,
    SM_OUTPUT_DATA_DIR,
)
from pipelines.hyperparameters import LOOP_KEYS
from pipelines.steps.tracking import step_run

logger = logging.getLogger(__name__)

#: Defaults for every hyperparameter this step knows; a run may override any of them. Early
#: stopping watches the FIRST eval_metric on the validation set.
DEFAULT_HYPERPARAMETERS: Mapping[str, Any] = MappingProxyType(
    {
        "num_boost_round": 200,
        "early_stopping_rounds": 20,
        "checkpoint_interval": 10,
        "max_depth": 6,
        "eta": 0.3,
        "objective": "multi:softprob",
        "num_class": 10,
        "tree_method": "hist",
        "eval_metric": ["mlogloss", "merror"],
        "seed": 0,
    }
)
#: Hyperparameters that must be whole numbers (SageMaker may send "200" or "200.0").
INT_KEYS = LOOP_KEYS | {"max_depth", "num_class", "seed", "max_bin", "nthread"}
#: Names SageMaker or its SDK add to the hyperparameters for their own use.
_RESERVED_PREFIXES = ("sagemaker_", "_")
#: The saved model's file name inside the model directory.
MODEL_FILE = "model.json"
#: Checkpoint files: `checkpoint_<rounds>.ubj`, where <rounds> is how many rounds it holds.
CHECKPOINT_PATTERN = re.compile(r"checkpoint_(\d+)\.ubj")
#: How many checkpoints are kept (older ones are deleted; SageMaker syncs the directory to S3).
CHECKPOINTS_KEPT = 3
#: Booster attribute set on the final checkpoint when early stopping ended the training.
EARLY_STOPPED_ATTR = "mlops_early_stopped"
#: Where SageMaker writes a training job's hyperparameters, in every training container.
HYPERPARAMETERS_FILE = Path("/opt/ml/input/config/hyperparameters.json")


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced. `metrics` are on the validation set, for the saved model:
    `accuracy`, `mlogloss` and `best_iteration`."""

    metrics: dict[str, float]
    device: str
    model_path: Path
    mlflow_model_uri: str | None


# --- device ---------------------------------------------------------------------------------


def _cuda_build() -> bool:
    """Whether this xgboost was compiled with CUDA (the `xgboost-cpu` wheel is not)."""
    return bool(xgboost.build_info().get("USE_CUDA"))


def _gpus_hidden() -> bool:
    """CUDA_VISIBLE_DEVICES set to empty or -1 hides every GPU on purpose."""
    if not CUDA_VISIBLE_DEVICES.defined:
        return False
    return (CUDA_VISIBLE_DEVICES.get_raw() or "").strip() in {"", "-1", "NoDevFiles"}


def _gpu_visible() -> bool:
    """Whether the driver reports at least one GPU. `nvidia-smi` is mounted into GPU containers
    by the NVIDIA runtime; the driver's /proc entries are the fallback where it is not."""
    if _gpus_hidden():
        return False
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listing = subprocess.run(  # noqa: S603 - fixed arguments, binary found on PATH
                [smi, "-L"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return listing.returncode == 0 and "GPU" in listing.stdout
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def pick_device() -> str:
    """`cuda` when this xgboost build has CUDA and a GPU is visible, else `cpu`."""
    cuda_build = _cuda_build()
    device = "cuda" if cuda_build and _gpu_visible() else "cpu"
    logger.info("device: %s (xgboost built with CUDA: %s)", device, cuda_build)
    return device


# --- hyperparameters ------------------------------------------------------------------------


def _coerce(name: str, value: Any) -> Any:
    """Turns SageMaker's string hyperparameters into the numbers, flags and lists they mean."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "eval_metric" and not text.startswith(("[", '"')):
        return [metric.strip() for metric in text.split(",") if metric.strip()]
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if text.startswith(("[", "{", '"')):  # JSON, as some SageMaker SDKs encode values
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        return _coerce(name, decoded) if isinstance(decoded, str) else decoded
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _whole(name: str, value: Any) -> int:
    """An integer-valued hyperparameter as int; a clear error names the key otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"hyperparameter {name} must be a whole number, got {value!r}")
    return int(value)


def resolve_hyperparameters(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults with `overrides` applied, every value coerced to its type; keys SageMaker
    reserves for itself (`sagemaker_*`) are dropped."""
    resolved = dict(DEFAULT_HYPERPARAMETERS)
    for name, value in (overrides or {}).items():
        if name.startswith(_RESERVED_PREFIXES):
            continue
        resolved[name] = _coerce(name, value)
    for name in INT_KEYS & resolved.keys():
        resolved[name] = _whole(name, resolved[name])
    if isinstance(resolved["eval_metric"], str):
        resolved["eval_metric"] = [resolved["eval_metric"]]
    return resolved


# --- checkpoints ----------------------------------------------------------------------------


class SpotCheckpoint(xgboost.callback.TrainingCallback):
    """Saves the booster every `interval` rounds and when training ends.

    Why not xgboost's TrainingCheckPoint: it saves at rounds interval+1, 2*interval+1, ... and
    not at the end, writes in place (a spot interruption mid-write leaves a torn file that the
    S3 sync then uploads), and never prunes. Here each file is named after the number of rounds
    it holds, written to a temporary name and renamed (atomic on one file system), and only the
    newest CHECKPOINTS_KEPT are kept. Single-instance training: every worker would write.
    """

    def __init__(self, directory: Path, interval: int, target_rounds: int) -> None:
        super().__init__()
        self.directory = directory
        self.interval = max(1, interval)
        self.target_rounds = target_rounds

    def _save(self, model: xgboost.Booster) -> None:
        rounds = model.num_boosted_rounds()
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"checkpoint_{rounds}.ubj"
        partial = self.directory / f".checkpoint_{rounds}.partial.ubj"
        model.save_model(os.fspath(partial))
        partial.replace(final)
        for stale in _checkpoints(self.directory)[CHECKPOINTS_KEPT:]:
            stale.unlink(missing_ok=True)

    def after_iteration(
        self, model: xgboost.Booster, epoch: int, evals_log: dict[str, dict[str, Any]]
    ) -> bool:
        if model.num_boosted_rounds() % self.interval == 0:
            self._save(model)
        return False

    def after_training(self, model: xgboost.Booster) -> xgboost.Booster:
        if model.num_boosted_rounds() < self.target_rounds:
            model.set_attr(**{EARLY_STOPPED_ATTR: "true"})
        self._save(model)
        return model


def _checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files in `directory`, newest (most rounds) first."""
    found = []
    for path in directory.glob("checkpoint_*.ubj"):
        match = CHECKPOINT_PATTERN.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found, reverse=True)]


def load_latest_checkpoint(directory: Path) -> xgboost.Booster | None:
    """The booster in the newest readable checkpoint, or None. A file that does not load (a
    partial S3 sync) is skipped in favour of the one before it."""
    if not directory.is_dir():
        return None
    for path in _checkpoints(directory):
        try:
            booster = xgboost.Booster(model_file=os.fspath(path))
        except xgboost.core.XGBoostError as error:
            logger.warning("skipping unreadable checkpoint %s: %s", path, error)
            continue
        logger.info("resuming from %s (%d rounds)", path, booster.num_boosted_rounds())
        return booster
    return None


# --- training -------------------------------------------------------------------------------


def to_dmatrix(frame: pd.DataFrame) -> xgboost.DMatrix:
    """Features in the canonical column order (named, so a model rejects data with other
    columns), labels alongside."""
    return xgboost.DMatrix(frame[list(FEATURES)], label=frame[LABEL])


def train(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    hyperparameters: Mapping[str, Any],
    device: str,
    checkpoint_dir: Path | None = None,
    evals_result: dict[str, Any] | None = None,
) -> xgboost.Booster:
    """Trains up to `num_boost_round` rounds in all, stopping early when the first eval_metric
    on `validation` has not improved for `early_stopping_rounds` rounds.

    With `checkpoint_dir`, checkpoints are written there and training resumes from the newest
    one found: only the missing rounds are trained (early stopping's patience restarts at the
    resume point). A checkpoint that early stopping already ended is returned as it is.
    `evals_result`, when given, receives the per-round metrics of the rounds trained here.
    The returned booster holds every round trained; `best_iteration` marks the best one.
    """
    settings = resolve_hyperparameters(hyperparameters)
    rounds = settings["num_boost_round"]
    params = {name: value for name, value in settings.items() if name not in LOOP_KEYS}
    params["device"] = device
    resumed = load_latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    done = resumed.num_boosted_rounds() if resumed is not None else 0
    if resumed is not None and (done >= rounds or resumed.attr(EARLY_STOPPED_ATTR) == "true"):
        logger.info("checkpoint already complete (%d rounds); nothing to train", done)
        return resumed
    metric = settings["eval_metric"][0]
    callbacks: list[xgboost.callback.TrainingCallback] = [
        xgboost.callback.EarlyStopping(
            rounds=settings["early_stopping_rounds"], metric_name=metric, data_name="validation"
        )
    ]
    if checkpoint_dir is not None:
        callbacks.append(SpotCheckpoint(checkpoint_dir, settings["checkpoint_interval"], rounds))
    dtrain, dvalidation = to_dmatrix(train), to_dmatrix(validation)
    return xgboost.train(
        params,
        dtrain,
        num_boost_round=rounds - done,
        evals=[(dtrain, "train"), (dvalidation, "validation")],
        callbacks=callbacks,
        xgb_model=resumed,
        evals_result=evals_result,
        verbose_eval=False,
    )


def best_model(booster: xgboost.Booster) -> xgboost.Booster:
    """The booster cut after its best iteration (what early stopping found), so whoever loads
    the saved model predicts with the best rounds without knowing about early stopping."""
    best = int(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1)
    if best + 1 >= booster.num_boosted_rounds():
        return booster
    sliced = booster[: best + 1]
    sliced.set_attr(best_iteration=str(best), best_score=booster.attr("best_score"))
    return sliced


def validation_metrics(booster: xgboost.Booster, validation: pd.DataFrame) -> dict[str, float]:
    """Accuracy and multiclass log loss on `validation`, and the best iteration."""
    probabilities = booster.predict(to_dmatrix(validation))
    labels = validation[LABEL].to_numpy()
    classes = list(range(probabilities.shape[1]))
    return {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "mlogloss": float(log_loss(labels, probabilities, labels=classes)),
        "best_iteration": float(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1),
    }


# --- tracking -------------------------------------------------------------------------------


def _log_history(run_id: str, history: Mapping[str, Mapping[str, list[float]]], first: int) -> None:
    """Per-round metrics (`train_mlogloss`, `validation_merror`, ...) in one batch call; `first`
    is the round the history starts at (after a resume, not 0)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{data}_{name}", float(value), now, first + step)
        for data, by_metric in history.items()
        for name, values in by_metric.items()
        for step, value in enumerate(values)
    ]
    if metrics:
        MlflowClient().log_batch(run_id, metrics=metrics)


def _log_model(booster: xgboost.Booster, example: pd.DataFrame) -> str:
    """Logs the model with its signature and a pinned requirement; returns the model's URI.
    Passing pip_requirements spares MLflow a slow subprocess that infers them."""
    prediction = booster.predict(xgboost.DMatrix(example))
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values. Pixels are integers
        # and Preprocess rejects nulls; a float schema would reject the integer rows clients
        # send (MLflow will not convert int64 to float64 on its own).
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer", UserWarning)
        signature = infer_signature(example, prediction)
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=[f"xgboost=={xgboost.__version__}"],
        )
    return str(info.model_uri)


# --- the step -------------------------------------------------------------------------------


def run(
    train_dir: Path,
    validation_dir: Path,
    model_dir: Path,
    hyperparameters: Mapping[str, Any],
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Reads the splits, trains, saves `model_dir/model.json` (the best rounds only) and, when
    tracking is on, logs params, per-round metrics and the model to MLflow."""
    train_frame, validation_frame = read_csv_dir(train_dir), read_csv_dir(validation_dir)
    settings = resolve_hyperparameters(hyperparameters)
    device = pick_device()
    params = {**settings, "device": device, "train_rows": len(train_frame)}
    with step_run("train", params) as active:
        history: dict[str, Any] = {}
        booster = train(train_frame, validation_frame, settings, device, checkpoint_dir, history)
        model = best_model(booster)
        metrics = validation_metrics(model, validation_frame)
        model_dir.mkdir(parents=True, exist_ok=True)
        model_path = model_dir / MODEL_FILE
        model.save_model(os.fspath(model_path))
        for name, value in metrics.items():
            # One line per metric, in a shape SageMaker metric definitions can match.
            logger.info("validation:%s=%s", name, value)
        model_uri = None
        if active is not None:
            rounds_here = len(next(iter(history.get("validation", {}).values()), []))
            _log_history(active.info.run_id, history, booster.num_boosted_rounds() - rounds_here)
            mlflow.log_metrics(
                {
                    "best_validation_accuracy": metrics["accuracy"],
                    "best_validation_mlogloss": metrics["mlogloss"],
                    "best_iteration": metrics["best_iteration"],
                }
            )
            model_uri = _log_model(model, validation_frame[list(FEATURES)].head(5))
    return TrainResult(metrics, device, model_path, model_uri)


def _hyperparameter_pairs(tokens: Sequence[str]) -> dict[str, str]:
    """`--name value` and `--name=value` pairs (how SageMaker passes hyperparameters on the
    command line) as a dict; dashes in names become underscores."""
    pairs: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise ValueError(f"expected --name value, got {token!r}")
        name, has_value, value = token[2:].partition("=")
        if not has_value:
            if index + 1 >= len(tokens):
                raise ValueError(f"hyperparameter --{name} has no value")
            index += 1
            value = tokens[index]
        pairs[name.replace("-", "_")] = value
        index += 1
    return pairs


def _default_checkpoint_dir() -> Path | None:
    """SageMaker creates the checkpoint directory only for jobs with a CheckpointConfig; use it
    when it exists or the variable names one, else do not checkpoint."""
    if SM_CHECKPOINT_DIR.is_set() or SM_CHECKPOINT_DIR.get().is_dir():
        return SM_CHECKPOINT_DIR.get()
    return None


def _hyperparameters_file(path: Path) -> dict[str, Any]:
    """The training job's hyperparameters as SageMaker writes them into every training
    container (string values), or {} where there is no such file (a laptop, a test)."""
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return loaded


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Paths (defaults from the SM_* variables) and the hyperparameters, later sources winning:
    SageMaker's hyperparameters.json, SM_HPS (set by SageMaker's training toolkit, where an
    image has it), then `--name value` pairs on the command line.

    Abbreviated flags are off: a hyperparameter such as `--model` must not be taken for a
    prefix of `--model-dir`.
    """
    parser = argparse.ArgumentParser(description="Train the digits classifier.", allow_abbrev=False)
    parser.add_argument("--train-dir", type=Path, default=SM_CHANNEL_TRAIN.get())
    parser.add_argument("--validation-dir", type=Path, default=SM_CHANNEL_VALIDATION.get())
    parser.add_argument("--model-dir", "--model_dir", type=Path, default=SM_MODEL_DIR.get())
    parser.add_argument("--output-data-dir", type=Path, default=SM_OUTPUT_DATA_DIR.get())
    parser.add_argument("--checkpoint-dir", type=Path, default=_default_checkpoint_dir())
    parser.add_argument("--hyperparameters-file", type=Path, default=HYPERPARAMETERS_FILE)
    args, rest = parser.parse_known_args(argv)
    hyperparameters: dict[str, Any] = {
        **_hyperparameters_file(args.hyperparameters_file),
        **SM_HPS.get(),
        **_hyperparameter_pairs(rest),
    }
    return args, hyperparameters


def _write_metrics(output_data_dir: Path, result: TrainResult) -> None:
    """metrics.json into the job's output data (best effort: not every host has /opt/ml)."""
    try:
        output_data_dir.mkdir(parents=True, exist_ok=True)
        payload = {"device": result.device, **result.metrics}
        (output_data_dir / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as error:
        logger.warning("could not write metrics.json to %s: %s", output_data_dir, error)


def main(argv: Sequence[str] | None = None) -> int:
    """The training container's entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args, hyperparameters = parse_args(argv)
    result = run(
        args.train_dir,
        args.validation_dir,
        args.model_dir,
        hyperparameters,
        checkpoint_dir=args.checkpoint_dir,
    )
    _write_metrics(args.output_data_dir, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
