"""The feature groups, defined once in code: the infrastructure creates them from these specs and
the ingestion step writes records that follow them.

Why one definition: a SageMaker feature group's schema lives in AWS, and a record whose names or
types disagree with it is rejected at ingestion time (`ValidationError`), long after the code
that built it was reviewed. Defining the schema here, next to the data set it describes, and
deriving both the `FeatureDefinitions` and the records from it, keeps the two from drifting.

Some fields cannot change on a live feature group: changing the record identifier, the event
time feature or the feature definitions replaces the group, which drops its online store and
starts a new offline store. `replacement_fingerprint` hashes exactly those fields: each
feature group carries it as its `spec-fingerprint` tag (which schema version is deployed),
and a test pins it, so a replacing change is a deliberate act, and prod's protection stops
it at deploy time unless the stack allows replacement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from pipelines.data import FEATURES, LABEL

# pandas loads where a frame is handled: the Pulumi program imports the specs only.
if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

#: SageMaker's `FeatureType` values.
FeatureType = Literal["Integral", "Fractional", "String"]
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)

#: One SageMaker `Record`: a list of {"FeatureName": ..., "ValueAsString": ...}.
Record = list[dict[str, str]]

#: Hex digits kept from the SHA-256 of a row (128 bits: collisions are not a concern).
_RECORD_ID_HEX = 32


@dataclass(frozen=True)
class FeatureDefinition:
    """One feature: its name and SageMaker type (`Integral`, `Fractional` or `String`)."""

    name: str
    type: FeatureType

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ValueError(
                f"feature {self.name!r}: type {self.type!r} is not one of"
                f" {', '.join(FEATURE_TYPES)}"
            )
        if not self.name:
            raise ValueError("a feature needs a name")

    def as_aws(self) -> dict[str, str]:
        """The definition as SageMaker's `FeatureDefinitions` entry."""
        return {"FeatureName": self.name, "FeatureType": self.type}


@dataclass(frozen=True)
class FeatureSpec:
    """A feature group's schema.

    `record_identifier` and `event_time` name the two String features every record carries (a
    deterministic row id and an ISO-8601 timestamp); `features` are the data set's columns. The
    `description` is metadata only: changing it does not change the fingerprint.
    """

    name: str
    record_identifier: str
    event_time: str
    features: tuple[FeatureDefinition, ...]
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        names = [self.record_identifier, self.event_time, *self.feature_names]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature spec {self.name!r}: duplicate names {', '.join(duplicates)}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The data features' names, in definition order (without identifier and event time)."""
        return tuple(feature.name for feature in self.features)

    def definitions(self) -> tuple[FeatureDefinition, ...]:
        """Every feature of the group: record identifier, event time (both String), then the
        data features. This is what the feature group is created with."""
        return (
            FeatureDefinition(self.record_identifier, "String"),
            FeatureDefinition(self.event_time, "String"),
            *self.features,
        )

    def aws_feature_definitions(self) -> list[dict[str, str]]:
        """`definitions()` as SageMaker's `FeatureDefinitions` list."""
        return [definition.as_aws() for definition in self.definitions()]


def _digits_spec() -> FeatureSpec:
    return FeatureSpec(
        name="digits",
        record_identifier="record_id",
        event_time="event_time",
        features=tuple(FeatureDefinition(name, "Integral") for name in (*FEATURES, LABEL)),
        description="scikit-learn's 8x8 handwritten digits: 64 pixel intensities and the label",
    )


#: The feature group spec of each model, keyed by model name.
FEATURE_SPECS: dict[str, FeatureSpec] = {"digits": _digits_spec()}


def replacement_fingerprint(spec: FeatureSpec) -> str:
    """A stable SHA-256 (hex) of the fields whose change replaces the feature group in AWS: the
    record identifier's name, the event time feature's name, and every feature's name and type
    in order (a reordered definition list is a changed one to the provider).

    The spec's `name` and `description` are left out: the group's AWS name is chosen by the
    infrastructure (per stack), and a description is metadata.
    """
    payload = {
        "record_identifier": spec.record_identifier,
        "event_time": spec.event_time,
        "features": [[definition.name, definition.type] for definition in spec.definitions()],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def format_event_time(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z` suffix and millisecond precision, one of the formats SageMaker
    accepts for String event times (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`). Naive datetimes are refused:
    guessing their zone would shift every record's event time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"event time {moment.isoformat()} has no time zone")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _as_string(value: Any, feature: FeatureDefinition) -> str:
    if feature.type == "Integral":
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"feature {feature.name}: {value!r} is not a whole number")
        return str(int(number))
    if feature.type == "Fractional":
        return repr(float(value))
    return str(value)


def record_id(position: int, values: tuple[str, ...]) -> str:
    """Deterministic id of a row: a hash of its position and its values as strings. The same
    frame always yields the same ids, so re-ingesting it overwrites records instead of adding
    new ones; the position keeps exact duplicate rows apart."""
    text = json.dumps([position, *values], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_RECORD_ID_HEX]


def _check_columns(frame: pd.DataFrame, spec: FeatureSpec) -> None:
    present = [str(column) for column in frame.columns]
    missing = [name for name in spec.feature_names if name not in present]
    extra = [name for name in present if name not in spec.feature_names]
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected columns: {', '.join(extra)}")
    if problems:
        raise ValueError(f"frame does not match feature spec {spec.name!r}: {'; '.join(problems)}")


def to_records(frame: pd.DataFrame, spec: FeatureSpec, event_time: datetime | str) -> list[Record]:
    """The frame's rows as SageMaker `Record`s, in row order.

    Each record holds the record identifier (see `record_id`), the event time (a datetime is
    formatted with `format_event_time`; a string is used as given) and every feature of the spec
    as a string. A null value is left out of its record (SageMaker allows a missing feature);
    a frame whose columns differ from the spec's features raises ValueError.
    """
    import pandas as pd

    _check_columns(frame, spec)
    when = event_time if isinstance(event_time, str) else format_event_time(event_time)
    rows = frame[list(spec.feature_names)].itertuples(index=False, name=None)
    records: list[Record] = []
    for position, row in enumerate(rows):
        values = tuple(
            None if pd.isna(value) else _as_string(value, feature)
            for value, feature in zip(row, spec.features, strict=True)
        )
        identifier = record_id(position, tuple("" if value is None else value for value in values))
        record: Record = [
            {"FeatureName": spec.record_identifier, "ValueAsString": identifier},
            {"FeatureName": spec.event_time, "ValueAsString": when},
        ]
        record.extend(
            {"FeatureName": feature.name, "ValueAsString": value}
            for feature, value in zip(spec.features, values, strict=True)
            if value is not None
        )
        records.append(record)
    return records


def record_as_dict(record: Record) -> dict[str, str]:
    """A record as {feature name: value}."""
    return {item["FeatureName"]: item["ValueAsString"] for item in record}


def records_to_frame(records: list[Record], spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Records back as a frame. Without a spec every column stays a string; with one, the
    columns follow `spec.definitions()` and get its types (Integral as nullable Int64,
    Fractional as nullable Float64, String as string)."""
    import pandas as pd

    frame = pd.DataFrame([record_as_dict(record) for record in records])
    if spec is None:
        return frame.astype("string")
    dtypes: Mapping[FeatureType, str] = {
        "Integral": "Int64",
        "Fractional": "Float64",
        "String": "string",
    }
    typed = pd.DataFrame(index=frame.index)
    for definition in spec.definitions():
        if definition.name in frame.columns:
            values = frame[definition.name].astype("string")
        else:
            values = pd.Series(pd.NA, index=frame.index, dtype="string")
        if definition.type == "String":
            typed[definition.name] = values
        else:
            typed[definition.name] = pd.to_numeric(values).astype(dtypes[definition.type])
    return typed
