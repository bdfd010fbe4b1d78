"""Preprocess step: real data passes, each kind of bad data is rejected with a message naming
the problem, splits are stratified and deterministic, and the CLI fails cleanly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pipelines.data import FEATURES, LABEL, load_digits_frame, write_raw_dataset
from pipelines.steps import preprocess
from pipelines.steps.preprocess import (
    DEFAULT_FAILURE_FILE,
    MAX_DUPLICATE_RATIO,
    MIN_PER_CLASS,
    MIN_ROWS,
    DataValidationError,
    split,
    validate,
)


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return load_digits_frame()


def test_the_bundled_data_set_has_the_documented_shape(digits: pd.DataFrame) -> None:
    assert list(digits.columns) == [*FEATURES, LABEL]
    assert len(digits) == 1797
    assert all(dtype == "int64" for dtype in digits.dtypes)
    assert set(digits[LABEL]) == set(range(10))


def test_the_real_data_passes(digits: pd.DataFrame) -> None:
    validate(digits)  # raises on any problem


def _set(frame: pd.DataFrame, rows: list[int], column: str, value: object) -> pd.DataFrame:
    changed = frame.copy()
    if not isinstance(value, int):
        changed[column] = changed[column].astype(object if isinstance(value, str) else "float64")
    changed.loc[rows, column] = value
    return changed


def _shrink_class(frame: pd.DataFrame, label: int, keep: int) -> pd.DataFrame:
    of_label = frame.index[frame[LABEL] == label]
    return frame.drop(index=of_label[keep:]).reset_index(drop=True)


def _with_duplicates(frame: pd.DataFrame, share: float) -> pd.DataFrame:
    copies = frame.sample(frac=share, random_state=0)
    return pd.concat([frame, copies], ignore_index=True)


BAD_DATA: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing column": (
        lambda f: f.drop(columns=["pixel_5", LABEL]),
        ["missing columns: pixel_5, label"],
    ),
    "extra column": (lambda f: f.assign(scanner="b2"), ["unexpected columns: scanner"]),
    "nulls": (
        lambda f: _set(_set(f, [0, 1, 2], "pixel_10", None), [7], LABEL, None),
        ["null values in columns", "pixel_10 (3)", "label (1)"],
    ),
    "non-numeric": (
        lambda f: _set(f, [4], "pixel_7", "dark"),
        ["non-numeric values in column pixel_7: 1 rows, e.g. 'dark'"],
    ),
    "pixel above range": (
        lambda f: _set(f, [0, 1], "pixel_20", 17),
        ["pixel values outside 0..16: 2 values", "pixel_20"],
    ),
    "negative pixel": (
        lambda f: _set(f, [3], "pixel_63", -1),
        ["pixel values outside 0..16: 1 values (seen -1..16)", "pixel_63"],
    ),
    "fractional pixel": (
        lambda f: _set(f, [3], "pixel_33", 3.5),
        ["non-integer pixel values: 1 values in columns pixel_33"],
    ),
    "label out of range": (
        lambda f: _set(f, [0, 9], LABEL, 10),
        ["labels outside 0..9: 2 rows, values 10"],
    ),
    "fractional label": (
        lambda f: _set(f, [5], LABEL, 2.5),
        ["non-integer labels: 1 rows, e.g. 2.5"],
    ),
    "too few rows": (
        lambda f: f.head(MIN_ROWS - 1),
        [f"too few rows: {MIN_ROWS - 1} (need at least {MIN_ROWS})"],
    ),
    "class too small": (
        lambda f: _shrink_class(f, 7, 10),
        [f"classes with fewer than {MIN_PER_CLASS} rows: 7 (10)"],
    ),
    "missing class": (
        lambda f: f[f[LABEL] != 3].reset_index(drop=True),
        [f"classes with fewer than {MIN_PER_CLASS} rows: 3 (0)"],
    ),
    "duplicates": (
        lambda f: _with_duplicates(f, 0.10),
        ["duplicate rows: 180 of 1977", f"limit {MAX_DUPLICATE_RATIO:.0%}"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_rejected_with_a_message_naming_the_problem(
    digits: pd.DataFrame, case: str
) -> None:
    mutate, expected = BAD_DATA[case]
    with pytest.raises(DataValidationError) as caught:
        validate(mutate(digits))
    message = str(caught.value)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_content_problems_are_reported_together(digits: pd.DataFrame) -> None:
    bad = _set(_set(digits, [0], "pixel_1", 40), [1], LABEL, 11)
    with pytest.raises(DataValidationError) as caught:
        validate(bad)
    assert len(caught.value.problems) == 2
    assert "pixel values outside" in caught.value.problems[0]
    assert "labels outside" in caught.value.problems[1]


def test_split_sizes_cover_every_row_once(digits: pd.DataFrame) -> None:
    splits = split(digits, test_fraction=0.2, validation_fraction=0.1, seed=42)
    assert splits.sizes() == {"train": 1257, "validation": 180, "test": 360}
    together = pd.concat([splits.train, splits.validation, splits.test], ignore_index=True)
    columns = list(digits.columns)
    assert (
        together.sort_values(columns)
        .reset_index(drop=True)
        .equals(digits.sort_values(columns).reset_index(drop=True))
    )


def test_split_is_stratified(digits: pd.DataFrame) -> None:
    splits = split(digits)
    whole = digits[LABEL].value_counts(normalize=True)
    for part in (splits.train, splits.validation, splits.test):
        counts = part[LABEL].value_counts()
        for label, share in whole.items():
            # Within one row of the exact proportion, for every class and split.
            assert abs(counts[label] - share * len(part)) <= 1


def test_split_is_deterministic_per_seed(digits: pd.DataFrame) -> None:
    first, again, other = split(digits, seed=7), split(digits, seed=7), split(digits, seed=8)
    assert first.test.equals(again.test) and first.train.equals(again.train)
    assert not first.test.equals(other.test)


@pytest.mark.parametrize(("test", "validation"), [(0.0, 0.1), (0.2, 1.0), (0.6, 0.4)])
def test_split_rejects_impossible_fractions(
    digits: pd.DataFrame, test: float, validation: float
) -> None:
    with pytest.raises(ValueError, match="fraction"):
        split(digits, test_fraction=test, validation_fraction=validation)


def test_run_reads_every_csv_and_writes_the_splits(digits: pd.DataFrame, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "part").mkdir(parents=True)
    digits.iloc[:900].to_csv(raw / "a.csv", index=False)
    digits.iloc[900:].to_csv(raw / "part" / "b.csv", index=False)

    counts = preprocess.run(raw, tmp_path / "out")

    assert counts == {"train": 1257, "validation": 180, "test": 360}
    for name, count in counts.items():
        written = pd.read_csv(tmp_path / "out" / name / "data.csv")
        assert len(written) == count
        assert list(written.columns) == [*FEATURES, LABEL]
        assert all(dtype == "int64" for dtype in written.dtypes)


def test_run_rejects_an_empty_input(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no CSV files"):
        preprocess.run(tmp_path, tmp_path / "out")


def test_main_succeeds_on_the_real_data(tmp_path: Path) -> None:
    raw = write_raw_dataset(tmp_path / "raw")
    assert preprocess.main(["--input-dir", str(raw.parent), "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "test" / "data.csv").exists()


def test_main_exits_1_with_the_reason_and_no_traceback(
    digits: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _set(digits, [0], LABEL, 12).to_csv(raw / "digits.csv", index=False)
    failure = tmp_path / "message"

    code = preprocess.main(
        [
            "--input-dir",
            str(raw),
            "--output-dir",
            str(tmp_path / "out"),
            "--failure-file",
            str(failure),
        ]
    )

    assert code == 1
    stderr = capsys.readouterr().err
    assert "data validation failed: labels outside 0..9: 1 rows, values 12" in stderr
    assert "Traceback" not in stderr
    assert failure.read_text().startswith("data validation failed: labels outside 0..9")
    assert not (tmp_path / "out" / "train").exists()


def test_the_failure_file_defaults_to_sagemakers_exit_message() -> None:
    assert Path("/opt/ml/output/message") == DEFAULT_FAILURE_FILE
    assert preprocess.parse_args([]).failure_file == DEFAULT_FAILURE_FILE


def test_run_keeps_every_valid_row_as_feature_records(tmp_path: Path) -> None:
    raw = write_raw_dataset(tmp_path / "raw")
    sizes = preprocess.run(raw.parent, tmp_path / "out")
    features = pd.read_parquet(tmp_path / "out" / preprocess.FEATURES_DIR / "features.parquet")
    assert len(features) == sum(sizes.values()) == len(load_digits_frame())
    assert {"record_id", "event_time", *FEATURES, LABEL} == set(features.columns)
    assert features["record_id"].is_unique


def test_an_empty_csv_is_a_one_line_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.csv").write_text("")
    failure = tmp_path / "failure"
    code = preprocess.main(
        [
            "--input-dir",
            str(raw),
            "--output-dir",
            str(tmp_path / "out"),
            "--failure-file",
            str(failure),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"data validation failed: {raw / 'data.csv'} is empty: no header, no rows\n"
    assert failure.read_text().startswith("data validation failed:")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--test-fraction", "1.5"], "argument --test-fraction: 1.5 is not in (0, 1)"),
        (["--validation-fraction", "0"], "argument --validation-fraction: 0.0 is not in (0, 1)"),
        (
            ["--test-fraction", "0.6", "--validation-fraction", "0.5"],
            "their sum (1.1) leaves no training rows",
        ),
    ],
)
def test_fractions_outside_their_range_name_the_flag(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        preprocess.main(flags)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
