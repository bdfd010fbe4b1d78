"""What the tests of the boto3 steps (deploy, monitor) share: the guard that keeps them off the
network, real boto3 clients for botocore's Stubber, a record of the calls made to moto, and the
command-line checks.

Why here rather than in moto_server.py: that module is the moto server; these helpers serve the
Stubber tests as much. Import the `loopback_only` fixture into a test module to guard all its
tests (`from tests.pipelines.aws_stubs import loopback_only`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.pipelines.moto_server import REGION

ACCOUNT = "123456789012"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, no instance metadata, and any connection off loopback fails."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    connect = socket.socket.connect

    def loopback_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            raise AssertionError(f"a test tried to connect to {address!r}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_connect)


def stubbed_client(service: str) -> Any:
    """A real boto3 client for `service` with dummy credentials, for a Stubber to answer."""
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def sagemaker_arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name}"


class RecordsCalls:
    """For a dataclass of moto-backed clients with a `calls` list: records every call
    (operation, parameters) the clients it listens to make."""

    calls: list[tuple[str, dict[str, Any]]]

    def listen(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("provide-client-params", self.record)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, dict(params)))

    def made(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def assert_bad_flag_exits(
    main: Callable[[Sequence[str]], int],
    argv: Sequence[str],
    flag: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The step's `main` exits 2 with an error naming `flag`."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert flag in capsys.readouterr().err


def replace_clients(
    monkeypatch: pytest.MonkeyPatch, step: ModuleType, *clients: Any
) -> list[str | None]:
    """The step's `make_clients` answers `clients`; returns the regions it was asked for."""
    regions: list[str | None] = []

    def make_clients(region: str | None) -> tuple[Any, ...]:
        regions.append(region)
        return clients

    monkeypatch.setattr(step, "make_clients", make_clients)
    return regions
