"""Feature ingestion against a real boto3 Feature Store runtime client whose calls botocore's
Stubber answers (no network): every record is put into both stores, throttling is retried with
growing waits, exhausted retries and validation errors fail with a message naming the record,
and the local run writes a Parquet file that reads back equal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from pipelines.data import load_digits_frame
from pipelines.features import FEATURE_SPECS, record_as_dict, records_to_frame, to_records
from pipelines.steps import feature_ingest
from pipelines.steps.feature_ingest import (
    FeatureIngestError,
    ingest,
    ingest_frame,
    make_client,
    write_parquet,
)

SPEC = FEATURE_SPECS["digits"]
GROUP = "mlops-digits-features"
WHEN = "2024-05-06T07:08:09.000Z"
Records = list[list[dict[str, str]]]


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return load_digits_frame()


@pytest.fixture
def records(digits: pd.DataFrame) -> Records:
    return to_records(digits.head(3), SPEC, WHEN)


@pytest.fixture
def client() -> Any:
    return boto3.client(
        "sagemaker-featurestore-runtime",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture
def stubber(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def _no_feature_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_FEATURE_GROUP_NAME", raising=False)


def _params(record: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "FeatureGroupName": GROUP,
        "Record": record,
        "TargetStores": ["OnlineStore", "OfflineStore"],
    }


def _expect_put(stubber: Stubber, record: list[dict[str, str]]) -> None:
    stubber.add_response("put_record", {}, expected_params=_params(record))


def _expect_error(stubber: Stubber, record: list[dict[str, str]], code: str) -> None:
    stubber.add_client_error(
        "put_record",
        service_error_code=code,
        service_message=f"{code} happened",
        http_status_code=400 if code in {"ValidationError", "ThrottlingException"} else 500,
        expected_params=_params(record),
    )


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_every_record_is_put_into_both_stores(
    client: Any, stubber: Stubber, records: Records
) -> None:
    for record in records:
        _expect_put(stubber, record)
    sleeps = Sleeps()
    report = ingest(client, GROUP, records, sleep=sleeps, batch_size=2)
    assert (report.destination, report.records, report.batches, report.retries) == (
        GROUP,
        3,
        2,
        0,
    )
    assert sleeps.calls == []


@pytest.mark.parametrize("code", ["ThrottlingException", "ServiceUnavailable", "InternalFailure"])
def test_transient_errors_are_retried_with_growing_waits(
    client: Any, stubber: Stubber, records: Records, code: str
) -> None:
    first, *rest = records
    _expect_error(stubber, first, code)
    _expect_error(stubber, first, code)
    _expect_put(stubber, first)
    for record in rest:
        _expect_put(stubber, record)
    sleeps = Sleeps()
    report = ingest(client, GROUP, records, sleep=sleeps)
    assert report.records == 3
    assert report.retries == 2
    assert sleeps.calls == [0.2, 0.4]
    assert sleeps.calls == sorted(sleeps.calls)


def test_waits_are_capped(client: Any, stubber: Stubber, records: Records) -> None:
    first = records[0]
    for _ in range(4):
        _expect_error(stubber, first, "ThrottlingException")
    _expect_put(stubber, first)
    sleeps = Sleeps()
    ingest(client, GROUP, [first], sleep=sleeps, base_delay=1.0, max_delay=3.0)
    assert sleeps.calls == [1.0, 2.0, 3.0, 3.0]


def test_exhausted_retries_raise_naming_the_record(
    client: Any, stubber: Stubber, records: Records
) -> None:
    first = records[0]
    for _ in range(3):
        _expect_error(stubber, first, "ThrottlingException")
    sleeps = Sleeps()
    record_id = record_as_dict(first)["record_id"]
    with pytest.raises(FeatureIngestError) as caught:
        ingest(client, GROUP, records, max_attempts=3, sleep=sleeps)
    message = str(caught.value)
    assert f"gave up on record {record_id} after 3 attempts" in message
    assert "ThrottlingException" in message
    assert GROUP in message
    assert caught.value.record_id == record_id
    assert sleeps.calls == [0.2, 0.4]


def test_a_validation_error_fails_fast_naming_the_record(
    client: Any, stubber: Stubber, records: Records
) -> None:
    _expect_put(stubber, records[0])
    _expect_error(stubber, records[1], "ValidationError")
    sleeps = Sleeps()
    record_id = record_as_dict(records[1])["record_id"]
    with pytest.raises(FeatureIngestError, match=f"record {record_id} was rejected") as caught:
        ingest(client, GROUP, records, sleep=sleeps)
    assert "ValidationError: ValidationError happened" in str(caught.value)
    assert caught.value.code == "ValidationError"
    assert sleeps.calls == []


def test_bad_arguments_are_refused(client: Any, records: Records) -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        ingest(client, GROUP, records, max_attempts=0)
    with pytest.raises(ValueError, match="batch_size"):
        ingest(client, GROUP, records, batch_size=0)


def test_ingest_frame_uses_the_feature_group_when_named(
    monkeypatch: pytest.MonkeyPatch,
    client: Any,
    stubber: Stubber,
    digits: pd.DataFrame,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MLOPS_FEATURE_GROUP_NAME", GROUP)
    frame = digits.head(2)
    for record in to_records(frame, SPEC, WHEN):
        _expect_put(stubber, record)
    report = ingest_frame(frame, SPEC, tmp_path, event_time=WHEN, client=client)
    assert (report.destination, report.records, report.retries) == (GROUP, 2, 0)
    assert not (tmp_path / "features.parquet").exists()


def test_ingest_frame_writes_parquet_locally(digits: pd.DataFrame, tmp_path: Path) -> None:
    report = ingest_frame(digits, SPEC, tmp_path / "out", event_time=WHEN)
    path = tmp_path / "out" / "features.parquet"
    assert report.destination == str(path)
    assert report.records == len(digits)
    written = pd.read_parquet(path)
    expected = records_to_frame(to_records(digits, SPEC, WHEN), SPEC)
    pd.testing.assert_frame_equal(written, expected)
    pd.testing.assert_frame_equal(written[list(SPEC.feature_names)].astype("int64"), digits)


def test_write_parquet_round_trips_a_frame(digits: pd.DataFrame, tmp_path: Path) -> None:
    path = write_parquet(digits, tmp_path / "nested" / "digits.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), digits)


def test_make_client_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ValueError, match="AWS_DEFAULT_REGION"):
        make_client()


def test_make_client_leaves_retrying_to_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client: Any = make_client()
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.service_model.service_name == "sagemaker-featurestore-runtime"
    assert client.meta.config.retries["total_max_attempts"] == 1


def test_the_feature_group_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert feature_ingest.MLOPS_FEATURE_GROUP_NAME.get() is None
    monkeypatch.setenv("MLOPS_FEATURE_GROUP_NAME", "")
    assert feature_ingest.MLOPS_FEATURE_GROUP_NAME.get() is None
    monkeypatch.setenv("MLOPS_FEATURE_GROUP_NAME", GROUP)
    assert feature_ingest.MLOPS_FEATURE_GROUP_NAME.get() == GROUP
