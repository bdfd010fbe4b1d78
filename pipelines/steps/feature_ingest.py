"""Feature ingestion: write the data set's rows into the model's SageMaker feature group, or, for
a local run, into a Parquet file with the same columns.

Why `put_record` one record at a time: it is the Feature Store runtime's only write call, and it
writes the online and the offline store together. Its failures fall in two kinds that need
opposite handling: throttling and transient service errors pass if the call is tried again a
little later (exponential backoff), while a validation error (a name or type that disagrees with
the group's definitions) fails the same way on every try, so it stops the ingestion at once,
naming the record, instead of burning retries and hiding the cause.

The botocore client's own retries are switched off for the client built here, so `max_attempts`
means what it says and the report's retry count is the real one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from pipelines.environment_variables import AWS_DEFAULT_REGION, MLOPS_FEATURE_GROUP_NAME
from pipelines.features import FeatureSpec, Record, records_to_frame, to_records

logger = logging.getLogger(__name__)

#: Both stores: the online store serves the latest record per id, the offline store keeps history.
TARGET_STORES = ("OnlineStore", "OfflineStore")
#: Error codes that pass when the call is tried again later.
RETRYABLE_CODES = frozenset({"ThrottlingException", "ServiceUnavailable", "InternalFailure"})
#: Records per batch: progress is logged once per batch.
DEFAULT_BATCH_SIZE = 100
#: The first retry waits this long (seconds); each later one twice as long, up to the cap.
DEFAULT_BASE_DELAY = 0.2
DEFAULT_MAX_DELAY = 10.0
#: The local run's output file name.
PARQUET_FILE_NAME = "features.parquet"


class FeatureStoreRuntimeClient(Protocol):
    """The one call used of a boto3 `sagemaker-featurestore-runtime` client."""

    def put_record(self, **kwargs: Any) -> Any: ...


class FeatureIngestError(RuntimeError):
    """A record could not be written; the message names the group, the record and the cause."""

    def __init__(self, message: str, record_id: str, code: str | None) -> None:
        super().__init__(message)
        self.record_id = record_id
        self.code = code


@dataclass(frozen=True)
class IngestReport:
    """What an ingestion did: where it wrote, how many records, in how many batches, and how
    many calls had to be tried again (0 for a local run)."""

    destination: str
    records: int
    batches: int
    retries: int


def _record_id(record: Record, record_identifier: str, position: int) -> str:
    for item in record:
        if item.get("FeatureName") == record_identifier:
            return item.get("ValueAsString", f"#{position}")
    return f"#{position}"


def _error_code(error: Exception) -> str | None:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _error_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


def backoff_delay(retry: int, base_delay: float, max_delay: float) -> float:
    """Seconds to wait before retry number `retry` (1-based): doubling from `base_delay`."""
    return float(min(max_delay, base_delay * 2 ** (retry - 1)))


def _put_with_retries(
    client: FeatureStoreRuntimeClient,
    feature_group_name: str,
    record: Record,
    record_id: str,
    max_attempts: int,
    sleep: Callable[[float], None],
    base_delay: float,
    max_delay: float,
) -> int:
    """Writes one record; returns how many retries it took."""
    for attempt in range(1, max_attempts + 1):
        try:
            client.put_record(
                FeatureGroupName=feature_group_name,
                Record=record,
                TargetStores=list(TARGET_STORES),
            )
        except (ClientError, BotocoreConnectionError) as error:
            code = _error_code(error)
            retryable = code in RETRYABLE_CODES or isinstance(error, BotocoreConnectionError)
            cause = f"{code or type(error).__name__}: {_error_message(error)}"
            if not retryable:
                raise FeatureIngestError(
                    f"feature group {feature_group_name}: record {record_id} was rejected"
                    f" ({cause}); not retried, the record or the group's definitions need fixing",
                    record_id,
                    code,
                ) from error
            if attempt == max_attempts:
                raise FeatureIngestError(
                    f"feature group {feature_group_name}: gave up on record {record_id} after"
                    f" {max_attempts} attempts ({cause})",
                    record_id,
                    code,
                ) from error
            delay = backoff_delay(attempt, base_delay, max_delay)
            logger.warning(
                "record %s: %s; retry %d of %d in %.2fs",
                record_id,
                cause,
                attempt,
                max_attempts - 1,
                delay,
            )
            sleep(delay)
        else:
            return attempt - 1
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def ingest(
    client: FeatureStoreRuntimeClient,
    feature_group_name: str,
    records: Sequence[Record],
    max_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    *,
    record_identifier: str = "record_id",
    batch_size: int = DEFAULT_BATCH_SIZE,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
) -> IngestReport:
    """Puts every record into both stores of the feature group, in order, in batches.

    Throttling and transient service errors (`RETRYABLE_CODES`, connection failures) are retried
    up to `max_attempts` calls per record, waiting `backoff_delay` between them; any other error
    (a `ValidationError` above all) stops at once. Both raise FeatureIngestError naming the record
    (its `record_identifier` value); records before it are already written, and since record ids
    are deterministic, running the ingestion again overwrites them rather than duplicating them.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    retries = 0
    batches = 0
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        for offset, record in enumerate(batch):
            position = start + offset
            retries += _put_with_retries(
                client,
                feature_group_name,
                record,
                _record_id(record, record_identifier, position),
                max_attempts,
                sleep,
                base_delay,
                max_delay,
            )
        batches += 1
        logger.info(
            "feature group %s: %d of %d records written (%d retries so far)",
            feature_group_name,
            start + len(batch),
            len(records),
            retries,
        )
    return IngestReport(
        destination=feature_group_name, records=len(records), batches=batches, retries=retries
    )


def write_parquet(
    records_or_frame: pd.DataFrame | Sequence[Record],
    path: Path,
    spec: FeatureSpec | None = None,
) -> Path:
    """Writes a frame, or records (as `records_to_frame` lays them out, typed when a spec is
    given), to a Parquet file at `path` (parent directories created); returns the path."""
    if isinstance(records_or_frame, pd.DataFrame):
        frame = records_or_frame
    else:
        frame = records_to_frame(list(records_or_frame), spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def make_client(region: str | None = None) -> FeatureStoreRuntimeClient:
    """A `sagemaker-featurestore-runtime` client for `region` (default: AWS_DEFAULT_REGION), with
    botocore's own retries off: `ingest` does the retrying."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    region_name = region or AWS_DEFAULT_REGION.get()
    if not region_name:
        raise ValueError(
            f"{MLOPS_FEATURE_GROUP_NAME.name} is set but {AWS_DEFAULT_REGION.name} is not: the"
            " feature group's region is unknown"
        )
    client: FeatureStoreRuntimeClient = boto3.client(
        "sagemaker-featurestore-runtime",
        region_name=region_name,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    return client


def ingest_frame(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    local_dir: Path,
    *,
    event_time: datetime | str | None = None,
    client: FeatureStoreRuntimeClient | None = None,
    max_attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> IngestReport:
    """Turns the frame into records (event time: now, unless given) and writes them: into the
    feature group named by MLOPS_FEATURE_GROUP_NAME when that is set (with `client`, or one made
    by `make_client`), else into `<local_dir>/features.parquet`, typed per the spec."""
    when = datetime.now(UTC) if event_time is None else event_time
    records = to_records(frame, spec, when)
    group = MLOPS_FEATURE_GROUP_NAME.get()
    if group is None:
        path = write_parquet(records, local_dir / PARQUET_FILE_NAME, spec)
        logger.info(
            "%s unset: wrote %d records to %s", MLOPS_FEATURE_GROUP_NAME.name, len(records), path
        )
        return IngestReport(destination=str(path), records=len(records), batches=1, retries=0)
    return ingest(
        client if client is not None else make_client(),
        group,
        records,
        max_attempts=max_attempts,
        sleep=sleep,
        record_identifier=spec.record_identifier,
    )
