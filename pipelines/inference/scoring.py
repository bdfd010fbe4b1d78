"""The scoring contract: how a model directory is loaded, how request rows are read, and what
an answer holds. One module for the SageMaker endpoint's server, local serving and batch, so
the three answer the same rows the same way.

A model directory holds the booster as SageMaker's training job leaves it (`model.json`, or
`model.tar.gz` around it) or as MLflow logs it (`model.ubj`). Rows are the model's features in
its training order, as `text/csv` (one row per line, no header) or JSON
(`{"instances": [[...], ...]}`, or a bare list of rows). A row that is not the model's number of
finite numbers is refused with its position, never scored.

Only numpy, xgboost and the standard library: this runs in the slim inference image too.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost

# What a training job writes to /opt/ml/model, what MLflow's xgboost flavour writes, and the
# archive SageMaker makes of /opt/ml/model.
MODEL_FILES = ("model.json", "model.ubj")
MODEL_ARCHIVE = "model.tar.gz"
CSV = "text/csv"
JSON = "application/json"
CONTENT_TYPES = (CSV, JSON)
# SageMaker's own limit on an invocation payload is 6 MB (real-time) / 100 MB (batch).
MAX_ROWS = 10_000


class BadRequest(ValueError):
    """Rows the model cannot score; the message names the row and what is wrong with it."""


class UnsupportedMediaType(BadRequest):
    """A content type other than text/csv or application/json."""


@dataclass(frozen=True)
class Prediction:
    label: int
    probabilities: tuple[float, ...]


def _model_file(directory: Path) -> Path | None:
    for name in MODEL_FILES:
        direct = directory / name
        if direct.is_file():
            return direct
    for name in MODEL_FILES:
        nested = next(iter(sorted(directory.rglob(name))), None)
        if nested is not None:
            return nested
    return None


def load_booster(model_dir: Path) -> xgboost.Booster:
    """The booster in `model_dir` (see the module docstring); FileNotFoundError if none."""
    found = _model_file(model_dir)
    if found is not None:
        return xgboost.Booster(model_file=os.fspath(found))
    archive = model_dir / MODEL_ARCHIVE
    if not archive.is_file():
        names = " or ".join((*MODEL_FILES, MODEL_ARCHIVE))
        raise FileNotFoundError(f"no {names} in {model_dir}")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(archive) as tar:
        # filter="data" refuses absolute paths, links out of the tree and device files.
        tar.extractall(scratch, filter="data")
        inner = _model_file(Path(scratch))
        if inner is None:
            raise FileNotFoundError(f"no {' or '.join(MODEL_FILES)} inside {archive}")
        return xgboost.Booster(model_file=os.fspath(inner))


def _number(value: Any, row: int, column: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRequest(
            f"row {row}, column {column}: {str(value)[:40]!r} is not a number"
        ) from None
    if not math.isfinite(number):
        raise BadRequest(f"row {row}, column {column}: {value!r} is not a finite number")
    return number


def _matrix(rows: Sequence[Sequence[Any]], features: int) -> np.ndarray:
    if not rows:
        raise BadRequest("no rows to score")
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"{len(rows)} rows in one request; at most {MAX_ROWS}")
    values = []
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, list | tuple) or len(row) != features:
            got = len(row) if isinstance(row, list | tuple) else type(row).__name__
            raise BadRequest(f"row {index}: expected {features} values, got {got}")
        values.append([_number(v, index, column) for column, v in enumerate(row, start=1)])
    return np.asarray(values, dtype=np.float32)


def parse_rows(body: bytes, content_type: str, features: int) -> np.ndarray:
    """The request body as a (rows, features) matrix; BadRequest naming the bad row."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == CSV:
        text = body.decode("utf-8", errors="replace")
        lines = [row for row in csv.reader(io.StringIO(text)) if row]
        return _matrix(lines, features)
    if media == JSON:
        try:
            document = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"not JSON: {exc.msg} at line {exc.lineno}") from None
        rows: Any = document.get("instances") if isinstance(document, dict) else document
        if not isinstance(rows, list):
            raise BadRequest('JSON must be {"instances": [[...], ...]} or a list of rows')
        return _matrix(rows, features)
    raise UnsupportedMediaType(
        f"content type {content_type!r} is not one of {', '.join(CONTENT_TYPES)}"
    )


def predict(booster: xgboost.Booster, matrix: np.ndarray) -> list[Prediction]:
    """Each row's likeliest class and the class probabilities (multi:softprob)."""
    # In the model's own feature order and names (training named the columns).
    rows = xgboost.DMatrix(matrix, feature_names=booster.feature_names)
    scores = np.asarray(booster.predict(rows))
    if scores.ndim == 1:  # a binary model: the positive class's probability
        scores = np.stack([1 - scores, scores], axis=1)
    return [
        Prediction(int(np.argmax(row)), tuple(round(float(p), 6) for p in row)) for row in scores
    ]


def render(predictions: list[Prediction], accept: str) -> tuple[bytes, str]:
    """The answer in the media type asked for: CSV (one label per line) or JSON."""
    media = (accept or CSV).split(";", 1)[0].split(",", 1)[0].strip().lower()
    if media in (JSON, "application/*"):
        document = {
            "predictions": [
                {"label": p.label, "probabilities": list(p.probabilities)} for p in predictions
            ]
        }
        return json.dumps(document).encode(), JSON
    if media not in (CSV, "text/*"):
        raise UnsupportedMediaType(f"accept {accept!r} is not one of {', '.join(CONTENT_TYPES)}")
    return "".join(f"{p.label}\n" for p in predictions).encode(), CSV


def score(
    booster: xgboost.Booster, body: bytes, content_type: str, accept: str
) -> tuple[bytes, str]:
    """One invocation: the body's rows scored and rendered."""
    matrix = parse_rows(body, content_type, booster.num_features())
    wanted = accept.strip()
    # No preference: answer in the request's own media type.
    if wanted in ("", "*/*"):
        wanted = content_type
    return render(predict(booster, matrix), wanted)
