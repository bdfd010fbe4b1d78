"""What the boto3 step modules (Deploy, Monitor) share: how they name SageMaker resources, read
AWS's errors and report their results.

Why one module: both steps turn every ClientError into a "failed" result worded the same way,
derive bounded, repeatable names for what they create, take their requests from one flag per
request field, and hand their result to the processing job's output channel and the log alike;
one copy keeps those contracts from drifting apart. What each step calls missing stays in the
step: SageMaker answers a missing model differently from a missing processing job.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: SageMaker's limit for model, endpoint-configuration, endpoint, job and schedule names.
MAX_NAME_LENGTH = 63
NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")

Request = TypeVar("Request", bound="DataclassInstance")


class RequestError(ValueError):
    """A request setting that cannot work; `field` names it (the CLI turns it into its flag)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class StepResult(Protocol):
    """A step's result dataclass: `message` says why, `succeeded` gives the exit code."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def message(self) -> str: ...

    @property
    def succeeded(self) -> bool: ...


# --- names ----------------------------------------------------------------------------------


def short_hash(value: Any, length: int = 8) -> str:
    """The first `length` hex digits of the SHA-256 of `value` (a string, or JSON with sorted
    keys)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def bounded_name(base: str, suffix: str) -> str:
    """`base + suffix`, or where that exceeds SageMaker's 63 characters, `base` cut short and
    tagged with a hash of the whole base (so two long bases with one prefix stay apart)."""
    if len(base) + len(suffix) <= MAX_NAME_LENGTH:
        return base + suffix
    tag = "-" + short_hash(base, 6)
    keep = MAX_NAME_LENGTH - len(suffix) - len(tag)
    return base[:keep].rstrip("-") + tag + suffix


def check_name(field: str, name: str, error: type[RequestError]) -> None:
    """Raises `error` naming `field` unless `name` is a valid SageMaker name."""
    if not NAME_PATTERN.fullmatch(name):
        raise error(
            field,
            f"{name!r} is not a SageMaker name (letters, digits and hyphens,"
            f" at most {MAX_NAME_LENGTH} characters, no leading or trailing hyphen)",
        )


def check_vpc(
    subnet_ids: tuple[str, ...], security_group_ids: tuple[str, ...], error: type[RequestError]
) -> None:
    """Raises `error` naming the empty one where only subnets or only security groups are set."""
    if bool(subnet_ids) != bool(security_group_ids):
        raise error(
            "subnet_ids" if not subnet_ids else "security_group_ids",
            "a VPC configuration needs both subnets and security groups",
        )


# --- AWS errors -----------------------------------------------------------------------------


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


def describe_error(error: ClientError) -> str:
    """`<Operation> failed: <code>: <message>`, for results and logs."""
    operation = getattr(error, "operation_name", None) or "an AWS call"
    return f"{operation} failed: {error_code(error)}: {error_message(error)}"


def could_not_find(error: ClientError) -> bool:
    """SageMaker answers a Describe* of many things that do not exist with a
    ValidationException saying "Could not find ..."."""
    return (
        error_code(error) == "ValidationException"
        and "could not find" in error_message(error).lower()
    )


def already_exists(error: ClientError) -> bool:
    return "already exist" in error_message(error).lower()


def describe_or_none(
    call: Callable[..., Any], is_missing: Callable[[ClientError], bool], /, **params: Any
) -> dict[str, Any] | None:
    """A Describe* answer, or None where `is_missing` says the error means it does not exist."""
    try:
        answer: dict[str, Any] = call(**params)
    except ClientError as error:
        if is_missing(error):
            return None
        raise
    return answer


def boto3_client(service: str, region: str | None) -> Any:
    """A boto3 client for `service` in `region`, with botocore's standard retry mode
    (throttling and transient errors retried with backoff)."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return boto3.client(service, region_name=region, config=config)


# --- command line and result ----------------------------------------------------------------


def csv_list(text: str) -> tuple[str, ...]:
    """A comma-separated list; empty items dropped ("" is the empty list)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def region_of(arn: str) -> str | None:
    """The region field of an ARN (`arn:aws:sagemaker:<region>:...`), or None."""
    parts = arn.split(":")
    if len(parts) > 3 and parts[3]:
        return parts[3]
    return None


def request_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, request_type: type[Request]
) -> Request:
    """The request from the parsed flags (one per field); an invalid value exits with an error
    naming its flag."""
    names = {field.name for field in dataclasses.fields(request_type)}
    try:
        return request_type(**{name: getattr(args, name) for name in names})
    except RequestError as error:
        message = str(error).removeprefix(f"{error.field}: ")
        parser.error(f"argument {flag(error.field)}: {message}")


def write_result(result: StepResult, path: Path) -> Path:
    """The result as a JSON object at `path` (parent directories created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n", encoding="utf-8")
    return path


def report(result: StepResult, path: Path, headline: str) -> int:
    """Writes the result to `path`, prints `<headline> - <message>` on one line, and returns
    the exit code: 0 when the step succeeded, 1 when not."""
    write_result(result, path)
    sys.stdout.write(headline.rstrip() + f" - {result.message}\n")
    return 0 if result.succeeded else 1
