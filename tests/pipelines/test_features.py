"""Feature group spec: it matches the data set's columns exactly, records carry every feature as
a string plus a deterministic, unique record id and the event time, and the replacement
fingerprint moves exactly when a change would replace the feature group in AWS."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from pipelines.data import FEATURES, LABEL, load_digits_frame
from pipelines.features import (
    FEATURE_SPECS,
    FeatureDefinition,
    FeatureSpec,
    format_event_time,
    record_as_dict,
    records_to_frame,
    replacement_fingerprint,
    to_records,
)

SPEC = FEATURE_SPECS["digits"]
WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return load_digits_frame()


@pytest.fixture(scope="module")
def records(digits: pd.DataFrame) -> list[list[dict[str, str]]]:
    return to_records(digits, SPEC, WHEN)


def test_the_digits_spec_matches_the_data_set_columns_exactly(digits: pd.DataFrame) -> None:
    assert SPEC.feature_names == (*FEATURES, LABEL)
    assert list(digits.columns) == list(SPEC.feature_names)
    assert {feature.type for feature in SPEC.features} == {"Integral"}


def test_identifier_and_event_time_are_string_features_first() -> None:
    definitions = SPEC.aws_feature_definitions()
    assert definitions[:2] == [
        {"FeatureName": "record_id", "FeatureType": "String"},
        {"FeatureName": "event_time", "FeatureType": "String"},
    ]
    assert len(definitions) == 2 + 64 + 1
    assert SPEC.record_identifier == "record_id"
    assert SPEC.event_time == "event_time"


def test_records_hold_every_feature_as_a_string(
    digits: pd.DataFrame, records: list[list[dict[str, str]]]
) -> None:
    assert len(records) == len(digits)
    expected_names = ["record_id", "event_time", *FEATURES, LABEL]
    for record in records[:50]:
        assert [item["FeatureName"] for item in record] == expected_names
        assert all(set(item) == {"FeatureName", "ValueAsString"} for item in record)
        assert all(isinstance(item["ValueAsString"], str) for item in record)
    first = record_as_dict(records[0])
    assert first["event_time"] == "2024-05-06T07:08:09.123Z"
    for name in (*FEATURES, LABEL):
        assert first[name] == str(int(digits[name].iloc[0]))


def test_record_ids_are_deterministic_and_unique(
    digits: pd.DataFrame, records: list[list[dict[str, str]]]
) -> None:
    again = to_records(digits, SPEC, WHEN + timedelta(days=1))
    ids = [record_as_dict(record)["record_id"] for record in records]
    assert ids == [record_as_dict(record)["record_id"] for record in again]
    assert len(set(ids)) == len(ids)


def test_exact_duplicate_rows_get_different_ids(digits: pd.DataFrame) -> None:
    doubled = pd.concat([digits.head(1), digits.head(1)], ignore_index=True)
    first, second = (record_as_dict(r) for r in to_records(doubled, SPEC, WHEN))
    assert first["record_id"] != second["record_id"]
    assert {k: v for k, v in first.items() if k != "record_id"} == {
        k: v for k, v in second.items() if k != "record_id"
    }


def test_a_string_event_time_is_used_as_given(digits: pd.DataFrame) -> None:
    (record,) = to_records(digits.head(1), SPEC, "2020-01-01T00:00:00Z")
    assert record_as_dict(record)["event_time"] == "2020-01-01T00:00:00Z"


def test_event_times_are_formatted_in_utc_and_naive_ones_refused() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_event_time(datetime(2024, 1, 1, 2, 0, tzinfo=plus_two)) == (
        "2024-01-01T00:00:00.000Z"
    )
    with pytest.raises(ValueError, match="no time zone"):
        format_event_time(datetime(2024, 1, 1))  # naive on purpose


def test_a_frame_that_differs_from_the_spec_is_refused(digits: pd.DataFrame) -> None:
    renamed = digits.head(2).rename(columns={"pixel_3": "pixel_x"})
    with pytest.raises(ValueError, match=r"missing columns: pixel_3; unexpected columns: pixel_x"):
        to_records(renamed, SPEC, WHEN)


def test_fractional_values_in_an_integral_feature_are_refused(digits: pd.DataFrame) -> None:
    frame = digits.head(1).astype("float64")
    frame.loc[0, "pixel_5"] = 1.5
    with pytest.raises(ValueError, match="pixel_5"):
        to_records(frame, SPEC, WHEN)


def test_null_values_are_left_out_of_the_record(digits: pd.DataFrame) -> None:
    frame = digits.head(1).astype("float64")
    frame.loc[0, "pixel_5"] = float("nan")
    (record,) = to_records(frame, SPEC, WHEN)
    assert "pixel_5" not in record_as_dict(record)
    assert len(record) == 2 + 64


def test_records_convert_back_to_a_typed_frame(
    digits: pd.DataFrame, records: list[list[dict[str, str]]]
) -> None:
    frame = records_to_frame(records, SPEC)
    assert list(frame.columns) == ["record_id", "event_time", *FEATURES, LABEL]
    assert str(frame["record_id"].dtype) == "string"
    assert str(frame["pixel_0"].dtype) == "Int64"
    pd.testing.assert_frame_equal(
        frame[list(SPEC.feature_names)].astype("int64"), digits, check_dtype=True
    )


def test_fingerprint_is_stable() -> None:
    # A pinned value: if this moves, the feature group would be replaced on the next deploy.
    # Update it only together with a deliberate, announced replacement.
    assert replacement_fingerprint(SPEC) == (
        "78ada17b92169d12be352b98b8a966b69682d05ddbe74850c0174d9a79c42a9d"
    )
    rebuilt = FeatureSpec(
        name="digits",
        record_identifier="record_id",
        event_time="event_time",
        features=tuple(FeatureDefinition(name, "Integral") for name in (*FEATURES, LABEL)),
    )
    assert replacement_fingerprint(rebuilt) == replacement_fingerprint(SPEC)


def _with_feature(index: int, feature: FeatureDefinition) -> FeatureSpec:
    features = list(SPEC.features)
    features[index] = feature
    return dataclasses.replace(SPEC, features=tuple(features))


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(_with_feature(0, FeatureDefinition("pixel_0", "Fractional")), id="type"),
        pytest.param(_with_feature(0, FeatureDefinition("pixel_zero", "Integral")), id="name"),
        pytest.param(dataclasses.replace(SPEC, record_identifier="row_id"), id="identifier"),
        pytest.param(dataclasses.replace(SPEC, event_time="ingested_at"), id="event-time"),
        pytest.param(
            dataclasses.replace(SPEC, features=(*SPEC.features, FeatureDefinition("x", "String"))),
            id="added",
        ),
        pytest.param(dataclasses.replace(SPEC, features=SPEC.features[:-1]), id="removed"),
        pytest.param(dataclasses.replace(SPEC, features=SPEC.features[::-1]), id="reordered"),
    ],
)
def test_fingerprint_changes_with_a_replacing_change(changed: FeatureSpec) -> None:
    assert replacement_fingerprint(changed) != replacement_fingerprint(SPEC)


def test_fingerprint_ignores_name_and_description() -> None:
    changed = dataclasses.replace(SPEC, name="digits-v2", description="something else")
    assert replacement_fingerprint(changed) == replacement_fingerprint(SPEC)


def test_invalid_types_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="not one of Integral, Fractional, String"):
        FeatureDefinition("pixel_0", "Integer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate names pixel_0"):
        dataclasses.replace(SPEC, features=(*SPEC.features, FeatureDefinition("pixel_0", "String")))
    with pytest.raises(ValueError, match="duplicate names record_id"):
        dataclasses.replace(SPEC, event_time="record_id")
