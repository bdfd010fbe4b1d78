"""Shared fixtures: each committed stack evaluated once per session under the offline harness."""

from __future__ import annotations

import copy
import functools
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from stacks.loader import committed_stacks, read_stack_config, stack_file
from stacks.offline import StackRecording, evaluate_stack

STACKS = committed_stacks()


@functools.cache
def recorded(stack: str) -> StackRecording:
    return evaluate_stack(stack)


def stack_config(stack: str) -> dict[str, Any]:
    """A fresh, mutable copy of a committed stack file's config map."""
    return copy.deepcopy(read_stack_config(stack_file(stack)))


@pytest.fixture(params=STACKS)
def recording(request: pytest.FixtureRequest) -> StackRecording:
    """Every committed stack in turn."""
    return recorded(request.param)


@pytest.fixture
def dev() -> StackRecording:
    return recorded("dev")


@pytest.fixture
def test_stack() -> StackRecording:
    return recorded("test")


@pytest.fixture
def prod() -> StackRecording:
    return recorded("prod")


def cloud_unavailable() -> str | None:
    """Why `cloud` tests cannot run here, or None. Looks only at the local machine: no
    credential provider that would call out (instance metadata) is consulted."""
    if shutil.which("pulumi") is None:
        return "needs the Pulumi CLI"
    credential_sources = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")
    if (
        not any(os.environ.get(v) for v in credential_sources)
        and not (Path.home() / ".aws" / "credentials").exists()
    ):
        return "needs AWS credentials"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = cloud_unavailable()
    if reason is None:
        return
    for item in items:
        if "cloud" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
