"""The program reads its settings from the engine's config and stops cleanly on bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

from stacks.offline import engine_config
from stacks.runtime_config import current_settings
from tests.conftest import stack_config


@pytest.fixture
def prod_runtime() -> Iterator[None]:
    pulumi_settings.reset_options(project="mlops-platform", stack="prod")
    yield
    pulumi.runtime.set_all_config({})


def test_reads_every_key_the_engine_passes(prod_runtime: None) -> None:
    pulumi.runtime.set_all_config(engine_config(stack_config("prod")))
    settings = current_settings()
    assert settings.environment == "prod"
    assert settings.network.az_count == 3
    assert settings.aws.allowed_account_ids == ["333333333333"]


def test_bad_value_stops_the_program_with_one_message(prod_runtime: None) -> None:
    config = stack_config("prod")
    config["mlops-platform:network"]["az_count"] = 9
    config["mlops-platform:netwrok"] = {}
    pulumi.runtime.set_all_config(engine_config(config))
    with pytest.raises(pulumi.RunError) as raised:
        current_settings()
    message = str(raised.value)
    assert message.startswith("stacks/Pulumi.prod.yaml: invalid settings:")
    assert "mlops-platform:network.az_count" in message
    assert "mlops-platform:netwrok: unknown key" in message
    assert raised.value.__cause__ is None  # printed alone, no chained traceback


def test_engine_config_encodes_like_the_engine() -> None:
    encoded = engine_config({"a:b": {"x": 1}, "a:c": True, "a:d": 3, "a:e": "text"})
    assert encoded == {"a:b": json.dumps({"x": 1}), "a:c": "true", "a:d": "3", "a:e": "text"}
