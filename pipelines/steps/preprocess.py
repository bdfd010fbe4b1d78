"""Preprocess step: read the raw CSVs, validate them, split them into train/validation/test.

Why validation lives here: this is the first step that sees the data, and a bad input (a
schema change upstream, a truncated export, a corrupted column) must stop the pipeline with a
message that says what is wrong, before GPU time is spent training on it. Problems are
collected and reported together, so one run shows everything that needs fixing.

In SageMaker this runs as a processing job: inputs under /opt/ml/processing/input, outputs under
/opt/ml/processing/output/{train,validation,test}, and on a validation failure the reason goes
to /opt/ml/output/message, which SageMaker shows as the job's ExitMessage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

from pipelines.data import FEATURES, LABEL, EmptyCsv, read_csv_dir
from pipelines.environment_variables import MLOPS_MODEL_NAME
from pipelines.features import FEATURE_SPECS
from pipelines.steps.feature_ingest import ingest_frame
from pipelines.steps.tracking import step_run

# Beside the splits: where a local run keeps the ingested feature records.
FEATURES_DIR = "features"

logger = logging.getLogger(__name__)

#: Fewer rows than this cannot give stable splits and metrics (the full set has 1,797).
MIN_ROWS = 500
#: Each digit needs this many rows, so every split holds each class (the smallest has 174).
MIN_PER_CLASS = 50
#: A larger share of exact duplicate rows points at a broken export or a double-appended file
#: (the real data set has none) and would leak rows between the splits.
MAX_DUPLICATE_RATIO = 0.05
#: Pixel intensities are 4-bit counts: whole numbers in this range.
PIXEL_MIN, PIXEL_MAX = 0, 16
#: The digits.
CLASSES = tuple(range(10))
#: Columns every input must have, in order.
COLUMNS = (*FEATURES, LABEL)
#: Where SageMaker processing jobs look for a message to show as the job's ExitMessage.
DEFAULT_FAILURE_FILE = Path("/opt/ml/output/message")
#: Names of the split directories (and of the pipeline's processing outputs).
SPLIT_NAMES = ("train", "validation", "test")
#: At most this many column names are listed in one message.
_MAX_LISTED = 10


class DataValidationError(ValueError):
    """The input data breaks a rule; `problems` lists each broken rule in words."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Splits:
    """The three disjoint parts of the data set."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        """Row count per split, keyed by split name."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}


def _listed(names: Sequence[str]) -> str:
    """Names joined for a message, shortened when there are many."""
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return f"{shown} (and {more} more)" if more > 0 else shown


def _schema_problems(frame: pd.DataFrame) -> list[str]:
    expected = set(COLUMNS)
    present = [str(column) for column in frame.columns]
    missing = [column for column in COLUMNS if column not in present]
    extra = [column for column in present if column not in expected]
    problems = []
    if missing:
        problems.append(f"missing columns: {_listed(missing)}")
    if extra:
        problems.append(f"unexpected columns: {_listed(extra)}")
    return problems


def _null_problems(frame: pd.DataFrame) -> list[str]:
    counts = frame.isna().sum()
    with_nulls = [f"{column} ({int(count)})" for column, count in counts.items() if count > 0]
    return [f"null values in columns: {_listed(with_nulls)}"] if with_nulls else []


def _non_numeric_problems(frame: pd.DataFrame) -> list[str]:
    problems = []
    for column in frame.columns:
        values = frame[column]
        coerced = pd.to_numeric(values, errors="coerce")
        bad = values[coerced.isna() & values.notna()]
        if len(bad) > 0:
            problems.append(
                f"non-numeric values in column {column}: {len(bad)} rows, e.g. {bad.iloc[0]!r}"
            )
    return problems


def _pixel_problems(frame: pd.DataFrame) -> list[str]:
    pixels = frame[list(FEATURES)].astype("float64")
    out_of_range = (pixels < PIXEL_MIN) | (pixels > PIXEL_MAX)
    fractional = pixels != pixels.round()
    problems = []
    if out_of_range.to_numpy().any():
        columns = [str(c) for c in pixels.columns[out_of_range.any()]]
        problems.append(
            f"pixel values outside {PIXEL_MIN}..{PIXEL_MAX}: {int(out_of_range.to_numpy().sum())}"
            f" values (seen {pixels.min().min():g}..{pixels.max().max():g}) in columns"
            f" {_listed(columns)}"
        )
    if fractional.to_numpy().any():
        columns = [str(c) for c in pixels.columns[fractional.any()]]
        problems.append(
            f"non-integer pixel values: {int(fractional.to_numpy().sum())} values in columns"
            f" {_listed(columns)}"
        )
    return problems


def _label_problems(frame: pd.DataFrame) -> list[str]:
    labels = frame[LABEL].astype("float64")
    problems = []
    fractional = labels[labels != labels.round()]
    if len(fractional) > 0:
        problems.append(f"non-integer labels: {len(fractional)} rows, e.g. {fractional.iloc[0]:g}")
    outside = labels[~labels.isin([float(c) for c in CLASSES]) & (labels == labels.round())]
    if len(outside) > 0:
        seen = sorted({f"{value:g}" for value in outside})
        problems.append(
            f"labels outside {CLASSES[0]}..{CLASSES[-1]}: {len(outside)} rows, values"
            f" {_listed(seen)}"
        )
    return problems


def _size_problems(frame: pd.DataFrame) -> list[str]:
    if len(frame) < MIN_ROWS:
        return [f"too few rows: {len(frame)} (need at least {MIN_ROWS})"]
    return []


def _class_problems(frame: pd.DataFrame) -> list[str]:
    counts = frame[LABEL].astype("float64").value_counts()
    small = [
        f"{label} ({int(counts.get(float(label), 0))})"
        for label in CLASSES
        if counts.get(float(label), 0) < MIN_PER_CLASS
    ]
    if small:
        return [f"classes with fewer than {MIN_PER_CLASS} rows: {_listed(small)}"]
    return []


def duplicate_ratio(frame: pd.DataFrame) -> float:
    """Share of rows that exactly repeat an earlier row (features and label)."""
    return float(frame.duplicated().mean()) if len(frame) else 0.0


def _duplicate_problems(frame: pd.DataFrame) -> list[str]:
    ratio = duplicate_ratio(frame)
    if ratio > MAX_DUPLICATE_RATIO:
        count = int(frame.duplicated().sum())
        return [
            f"duplicate rows: {count} of {len(frame)} ({ratio:.1%}, limit"
            f" {MAX_DUPLICATE_RATIO:.0%})"
        ]
    return []


def validate(frame: pd.DataFrame) -> None:
    """Raises DataValidationError naming every problem found; returns None for good data.

    Checks run in stages, because later checks only make sense once earlier ones pass: the
    columns first, then nulls and non-numeric values, then the content rules (value ranges,
    size, duplicates), which are reported together, and last the class balance, which only
    means something once the labels are known to be digits and the frame big enough.
    """
    for stage in (
        (_schema_problems,),
        (_null_problems, _non_numeric_problems),
        (_pixel_problems, _label_problems, _size_problems, _duplicate_problems),
    ):
        problems = [problem for check in stage for problem in check(frame)]
        if problems:
            raise DataValidationError(problems)
    class_problems = _class_problems(frame)
    if class_problems:
        raise DataValidationError(class_problems)


def data_checks(frame: pd.DataFrame) -> dict[str, float]:
    """Figures worth tracking run over run (logged to MLflow even when validation fails)."""
    labels = frame[LABEL] if LABEL in frame.columns else pd.Series(dtype="float64")
    class_counts = labels.value_counts()
    return {
        "rows": float(len(frame)),
        "columns": float(len(frame.columns)),
        "null_values": float(frame.isna().to_numpy().sum()),
        "duplicate_ratio": duplicate_ratio(frame),
        "min_class_rows": float(class_counts.min()) if len(class_counts) else 0.0,
        "max_class_rows": float(class_counts.max()) if len(class_counts) else 0.0,
    }


def _check_fractions(test_fraction: float, validation_fraction: float) -> None:
    if not 0 < test_fraction < 1 or not 0 < validation_fraction < 1:
        raise ValueError(
            f"test_fraction ({test_fraction}) and validation_fraction ({validation_fraction})"
            " must each be between 0 and 1"
        )
    if test_fraction + validation_fraction >= 1:
        raise ValueError(
            f"test_fraction + validation_fraction ({test_fraction + validation_fraction}) must be"
            " below 1, leaving rows to train on"
        )


def split(
    frame: pd.DataFrame,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> Splits:
    """Stratified, deterministic split; both fractions are of the whole frame.

    Stratified so every split holds each digit in the same proportion (metrics per class stay
    comparable); seeded so a re-run of the same execution yields the same rows.
    """
    _check_fractions(test_fraction, validation_fraction)
    rest, test = train_test_split(
        frame, test_size=test_fraction, stratify=frame[LABEL], random_state=seed
    )
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=rest[LABEL],
        random_state=seed,
    )
    return Splits(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
    )


def write_splits(splits: Splits, output_dir: Path) -> None:
    """Writes `<output_dir>/<split>/data.csv` for each split (with a header row)."""
    for name in SPLIT_NAMES:
        directory = output_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        getattr(splits, name).to_csv(directory / "data.csv", index=False)


def run(
    input_dir: Path,
    output_dir: Path,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    seed: int = 42,
) -> dict[str, int]:
    """Reads, validates, splits and writes the data set; returns the row count per split.

    The data checks are logged before validation, so a failed run in MLflow still shows what
    the data looked like; the failure reason goes into the `mlops.data_validation` tag.
    """
    params = {"test_fraction": test_fraction, "validation_fraction": validation_fraction}
    with step_run("preprocess", {**params, "seed": seed}) as active:
        try:
            frame = read_csv_dir(input_dir)
        except (FileNotFoundError, EmptyCsv) as error:
            raise DataValidationError([str(error)]) from error
        checks = data_checks(frame)
        if active is not None:
            mlflow.log_metrics({f"input_{name}": value for name, value in checks.items()})
        try:
            validate(frame)
        except DataValidationError as error:
            if active is not None:
                mlflow.set_tag("mlops.data_validation", f"failed: {error}"[:5000])
            raise
        columns = list(COLUMNS)
        validated = frame[columns].astype("int64")
        splits = split(validated, test_fraction, validation_fraction, seed)
        write_splits(splits, output_dir)
        # The feature group (in SageMaker) or features.parquet (locally) gets every valid row.
        ingested = ingest_frame(
            validated, FEATURE_SPECS[MLOPS_MODEL_NAME.get()], output_dir / FEATURES_DIR
        )
        logger.info("features: %d records to %s", ingested.records, ingested.destination)
        sizes = splits.sizes()
        logger.info("rows per split: %s", sizes)
        if active is not None:
            mlflow.set_tag("mlops.data_validation", "passed")
            mlflow.log_metrics({f"rows_{name}": float(count) for name, count in sizes.items()})
        return sizes


def write_failure(path: Path, message: str) -> None:
    """Best effort: the message file helps whoever reads the job's description, but failing to
    write it (no /opt/ml on a laptop) must not hide the real error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message + "\n", encoding="utf-8")
    except OSError as error:
        logger.warning("could not write the failure reason to %s: %s", path, error)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The processing container's command line; defaults follow SageMaker's paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--failure-file",
        type=Path,
        default=DEFAULT_FAILURE_FILE,
        help="where the reason of a validation failure is written (SageMaker's ExitMessage)",
    )
    args = parser.parse_args(argv)
    for flag, value in (
        ("--test-fraction", args.test_fraction),
        ("--validation-fraction", args.validation_fraction),
    ):
        if not 0 < value < 1:
            parser.error(f"argument {flag}: {value} is not in (0, 1)")
    if args.test_fraction + args.validation_fraction >= 1:
        parser.error(
            "arguments --test-fraction and --validation-fraction: their sum "
            f"({args.test_fraction + args.validation_fraction}) leaves no training rows"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the step; returns the process exit code. Bad data is an expected outcome, not a
    crash: it exits 1 with a one-line reason and no traceback."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        run(
            args.input_dir,
            args.output_dir,
            test_fraction=args.test_fraction,
            validation_fraction=args.validation_fraction,
            seed=args.seed,
        )
    except DataValidationError as error:
        message = f"data validation failed: {error}"
        sys.stderr.write(message + "\n")
        write_failure(args.failure_file, message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
