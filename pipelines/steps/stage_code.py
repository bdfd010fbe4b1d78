"""Copy every object under an S3 prefix into a directory, keeping the keys' relative paths.

Two users:

- The cluster Train job's init container stages the step code with it, before the `pipelines`
  package exists on disk. That is why this file is self-contained (the standard library and
  boto3, both in the step image) and imports nothing from `pipelines`. The launcher's manifest
  runs its source text directly:

      python -c "<this file's source>" s3://<bucket>/<code prefix>/ /opt/ml/code

  With `python -c`, `__name__` is "__main__" and `sys.argv[0]` is "-c", so the arguments are
  `sys.argv[1:]` exactly as with `python stage_code.py <uri> <directory>`; `__file__` is not
  defined there, so nothing here reads it, and the program name in messages is fixed.
- `pipelines/steps/cluster_run.py` imports `download_prefix` to fetch the train and validation
  channels, as SageMaker copies a training job's channels.

What is copied: `s3://bucket/p/` (or `s3://bucket/p`) copies the keys under `p/` to the same
relative paths in the directory, so `p/pipelines/steps/train.py` becomes
`<directory>/pipelines/steps/train.py`. Unlike a SageMaker S3Prefix, `s3://bucket/p` does not
also match `p-old/...`. Where nothing lies under `p/` but an object named exactly `p` exists,
that one object is copied as `<directory>/<its base name>`. Zero-byte "folder" keys ending in `/`
are skipped. Every key is checked before anything is written: a key whose relative path would
land outside the directory (`..`, a leading `/`, a symbolic link already there that leads out)
fails the whole copy, naming the key.

Exit codes: 0 copied, 1 nothing copied or a copy failed (the message says which and why),
2 wrong arguments. The bucket policies want only TLS and no foreign encryption headers;
reading needs neither.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

logger = logging.getLogger("stage_code")

EXIT_COPIED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class StagingError(Exception):
    """The copy cannot happen or did not finish; the message says why, naming the URI or key."""


class S3Reader(Protocol):
    """The calls used of a boto3 `s3` client."""

    def get_paginator(self, operation_name: str) -> Any: ...
    def download_file(self, *args: Any, **kwargs: Any) -> Any: ...


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` as (bucket, key); StagingError for anything else."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise StagingError(f"{uri!r} is not an S3 URI (s3://bucket/prefix)")
    return bucket, key


def local_path(directory: Path, relative: str, key: str) -> Path:
    """Where the object `key` (`relative` once its prefix is removed) goes in `directory`;
    StagingError where that would be outside `directory` or name no file."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if relative.startswith("/") or ".." in parts:
        raise StagingError(f"refusing key {key!r}: it would be written outside {directory}")
    if not parts:
        raise StagingError(f"refusing key {key!r}: it names no file below its prefix")
    target = directory.joinpath(*parts)
    if not target.resolve().is_relative_to(directory.resolve()):
        raise StagingError(f"refusing key {key!r}: {target} leads outside {directory}")
    return target


def _list_keys(s3: S3Reader, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(str(item["Key"]) for item in page.get("Contents", []))
    return keys


def plan(s3: S3Reader, uri: str, directory: Path) -> list[tuple[str, Path]]:
    """(key, local path) for every object to copy from `uri`, every key already checked."""
    bucket, prefix = split_s3_uri(uri)
    under = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
    try:
        keys = _list_keys(s3, bucket, prefix)
    except (BotoCoreError, ClientError) as error:
        raise StagingError(f"could not list {uri}: {error}") from error
    inside = [key for key in keys if key.startswith(under) and not key.endswith("/")]
    if inside:
        return [(key, local_path(directory, key[len(under) :], key)) for key in sorted(inside)]
    if prefix and prefix in keys and not prefix.endswith("/"):
        return [(prefix, local_path(directory, PurePosixPath(prefix).name, prefix))]
    raise StagingError(f"nothing to copy: no objects under {uri}")


def download_prefix(s3: S3Reader, uri: str, directory: Path) -> list[Path]:
    """Copies every object under `uri` into `directory` (created if missing), keeping the keys'
    paths relative to the prefix; returns the files written. Raises StagingError, naming the
    URI or the key, when there is nothing to copy, a key would escape `directory` (checked for
    all keys before anything is written), or a listing or download fails."""
    bucket, _ = split_s3_uri(uri)
    copies = plan(s3, uri, directory)
    written: list[Path] = []
    for key, target in copies:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # download_file writes a temporary file and renames it when complete.
            s3.download_file(Bucket=bucket, Key=key, Filename=str(target))
        except (BotoCoreError, ClientError, OSError) as error:
            raise StagingError(
                f"could not copy s3://{bucket}/{key} to {target}: {error}"
            ) from error
        written.append(target)
    logger.info("copied %d objects from %s to %s", len(written), uri, directory)
    return written


def s3_client() -> Any:
    """A boto3 `s3` client from the environment (credentials, region, AWS_ENDPOINT_URL), with
    botocore's standard retry mode."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def main(argv: Sequence[str] | None = None) -> int:
    """`<s3 uri> <directory>`; returns the exit code. `argv` excludes the program name (pass
    `sys.argv[1:]`, which is right both for a file and for `python -c`)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="stage_code",  # not sys.argv[0]: that is "-c" under `python -c`
        description="Copy every object under an S3 prefix into a directory.",
    )
    parser.add_argument("uri", help="s3://bucket/prefix/")
    parser.add_argument("directory", type=Path, help="where the objects go (created if missing)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exited:  # argparse has printed the usage error
        return EXIT_USAGE if exited.code else EXIT_COPIED
    try:
        download_prefix(s3_client(), args.uri, args.directory)
    except (StagingError, BotoCoreError) as error:  # BotoCoreError: no credentials, no region
        logger.error("staging %s into %s failed: %s", args.uri, args.directory, error)
        return EXIT_FAILED
    return EXIT_COPIED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
