"""Shared pipeline-test fixtures: no ambient MLflow tracking, the real data set preprocessed
once, and a real MLflow server on loopback for the tests that need one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.data import write_raw_dataset
from pipelines.mlflow_server import MlflowServer, free_port, running_server
from pipelines.steps import preprocess


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step code tracks only where a test sets MLFLOW_TRACKING_URI itself."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real data set, preprocessed once: train/, validation/ and test/ below."""
    base = tmp_path_factory.mktemp("splits")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        raw = write_raw_dataset(base / "raw")
        preprocess.run(raw.parent, base / "splits")
    return base / "splits"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    home: Path = tmp_path_factory.mktemp("mlflow")
    with running_server(home, free_port()) as server:
        yield server
