"""Shared fixtures: each committed stack evaluated once per session under the offline harness."""

from __future__ import annotations

import copy
import functools
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
