"""The data-quality baseline as the endpoint's captured data looks: prediction first, then the
features in request order.

An endpoint with data capture records each request's input (the feature row) and output (the
inference server's answer, the predicted label). Model Monitor merges the two into one row,
the output columns first (the analyzer's `dataset_format` says where they are:
`output_columns_position: START`, as the SageMaker SDK's DatasetFormat.csv writes it), and
compares those rows with the baseline column by column. A features-only baseline is one
column short and shifted by one, and every hourly run reports violations. So the baseline is
the training data's features with the deployed model's own prediction in front, scored with
the inference server's code (pipelines/inference/scoring.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.inference.scoring import MODEL_ARCHIVE, load_booster, predict

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

PREDICTION_COLUMN = "prediction"
# Rows -> the label the endpoint would answer for each.
Predictor = Callable[["pd.DataFrame"], list[int]]


def with_predictions(features: pd.DataFrame, predictor: Predictor) -> pd.DataFrame:
    """The captured layout: the prediction column, then the features as they are."""
    frame = features.copy()
    frame.insert(0, PREDICTION_COLUMN, predictor(features))
    return frame


def package_model_uri(sagemaker: Any, package_arn: str) -> str:
    """The model artifact (model.tar.gz) the package's inference container serves."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    (container, *_) = package["InferenceSpecification"]["Containers"]
    return str(container["ModelDataUrl"])


def predictor_from_archive(s3: Any, model_uri: str) -> Predictor:
    """Downloads model.tar.gz and scores rows with it, as the inference server does."""
    bucket, _, key = model_uri.removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / MODEL_ARCHIVE).write_bytes(body)
        booster = load_booster(Path(scratch))

    def predictor(features: pd.DataFrame) -> list[int]:
        matrix = features.to_numpy(dtype=np.float32)
        return [p.label for p in predict(booster, matrix)]

    return predictor
