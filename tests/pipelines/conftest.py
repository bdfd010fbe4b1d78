"""A real MLflow server on loopback, shared by the tests that need one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.mlflow_server import MlflowServer, free_port, running_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    home: Path = tmp_path_factory.mktemp("mlflow")
    with running_server(home, free_port()) as server:
        yield server
