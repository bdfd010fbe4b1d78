"""A moto server on loopback for tests that call AWS APIs over real HTTP, and boto3 clients that
talk to it with dummy credentials.

Why a server rather than moto's in-process mock: the clients then go through botocore's whole
stack (signing, serialising, HTTP, parsing), as in a SageMaker job, and the server holds its
state in one place for the whole session; `moto_url` resets it before each test.

Import the fixtures into a test module to use them (`from tests.pipelines.moto_server import
moto_server, moto_url`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"
#: One try per call: a call moto does not implement fails at once instead of being retried.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 at a free port, for the session; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_url(moto_server: str) -> str:
    """The session's moto server, emptied of everything earlier tests created."""
    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10) as answer:
        assert answer.status == 200
    return moto_server


def moto_client(url: str, service: str) -> Any:
    """A boto3 client for `service` that talks to the moto server at `url`."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES,
    )
