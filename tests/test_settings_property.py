"""Property tests of the settings loader: whatever a stack file or the engine hands it, the
loader returns Settings or raises SettingsError naming the source, never anything else."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stacks.loader import (
    SettingsError,
    committed_stacks,
    load_stack_settings,
    settings_from_config,
    shown,
    stack_file,
)
from stacks.settings import PROJECT, Settings
from tests.conftest import stack_config

SOURCE = "stacks/Pulumi.fuzz.yaml"
STACKS = committed_stacks()
P = f"{PROJECT}:"
FAST = settings(max_examples=200, deadline=None)


@functools.cache
def _committed_config(stack: str) -> dict[str, Any]:
    return stack_config(stack)


def fresh_config(stack: str) -> dict[str, Any]:
    """`stack_config(stack)` without reading the file again for every example."""
    return copy.deepcopy(_committed_config(stack))


# Key names the models know, so random mappings sometimes reach the nested validators.
FIELD_NAMES = sorted(
    {
        key
        for stack in STACKS
        for value in fresh_config(stack).values()
        if isinstance(value, dict)
        for key in value
    }
    | {"existing_vpc", "vpc_id", "private_subnet_ids", "private_route_table_ids", "mode"}
    | {"repositories", "object_lock", "create_endpoints", "region", "allowed_account_ids"}
)
REAL_KEYS = [
    *sorted({key for stack in STACKS for key in fresh_config(stack)}),
    P + "aws",
    P + "ownr",
    "aws:profile",
    "pulumi:template",
    "mlops-platfrom:owner",
    "owner",
    P,
    "aws:",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-10, max_value=4000),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["10.0.0.0/16", "eu-west-1", "111111111111", "dev", "prod", "nat", "1"]),
)
dict_keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10), st.integers())
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(dict_keys, inner, max_size=5)
    ),
    max_leaves=8,
)
# The engine passes objects (and scalars) as text; JSON text of anything is fair game.
values = st.one_of(json_like, json_like.map(json.dumps))
config_keys = st.one_of(
    st.sampled_from(REAL_KEYS),
    st.builds(
        "{}:{}".format,
        st.sampled_from([PROJECT, "aws", "pulumi", "mlops", ""]) | st.text(max_size=8),
        st.sampled_from(FIELD_NAMES) | st.text(max_size=12),
    ),
    st.text(max_size=20),
)
configs = st.dictionaries(config_keys, values, max_size=8)


def outcome(config: Any, source: str = SOURCE) -> Settings | str:
    """Settings, or the SettingsError message; any other exception fails the test."""
    try:
        return settings_from_config(config, source=source)
    except SettingsError as exc:
        message = str(exc)
        assert message.startswith(f"{source}: invalid settings:\n  - "), message
        return message


@FAST
@given(configs)
@example({P + "aws": "x", "aws:region": "eu-west-1"})
@example({P + "network": "[" * 100_000})
def test_arbitrary_config_maps_give_settings_or_settings_error(config: dict[str, Any]) -> None:
    result = outcome(config)
    if isinstance(result, Settings):
        return
    # Keys the loader rejects before validating are each named in the message.
    for key in config:
        namespace, sep, name = key.partition(":")
        if not sep or not name:
            assert f"  - {key}: config keys are written 'namespace:key'" in result
        elif namespace not in (PROJECT, "aws", "pulumi"):
            assert f"  - {key}: unknown namespace {namespace!r}" in result


@FAST
@given(st.sampled_from(STACKS), st.dictionaries(config_keys, values, max_size=3))
def test_extra_keys_on_a_valid_config(stack: str, extra: dict[str, Any]) -> None:
    config = fresh_config(stack)
    config.update(extra)
    outcome(config)


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in leaf_paths(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in leaf_paths(item, (*path, i))]
    return [path]


def written_key(path: tuple[Any, ...]) -> str:
    """A leaf's key as the loader's messages write it: `mlops-platform:network.cidr`."""
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


LEAVES = [(stack, path) for stack in STACKS for path in leaf_paths(fresh_config(stack))]


@FAST
@given(st.sampled_from(LEAVES), values)
def test_one_mutated_leaf_is_reported_at_that_leaf(
    leaf: tuple[str, tuple[Any, ...]], value: Any
) -> None:
    stack, path = leaf
    config = fresh_config(stack)
    target: Any = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value

    result = outcome(config)

    # Changing the environment moves the tier floors onto other keys; any other single leaf,
    # when rejected, is the only key the message names.
    if isinstance(result, str) and path[0] != P + "environment":
        lines = result.split("\n")[1:]
        key = written_key(path)
        assert all(line.startswith(f"  - {key}") for line in lines), (key, result)


# Stack files: text that YAML reads in many ways, including constructors that fail.
YAML_FRAGMENTS = [
    "config:",
    "\n",
    "  ",
    "    ",
    f"{P}network:",
    "aws:region:",
    "aws:allowedAccountIds:",
    "cidr: ",
    "az_count: ",
    " ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "&a ",
    "*a",
    "!!int ",
    "!!float ",
    "!!binary ",
    "!!timestamp ",
    "!!str ",
    "!!map ",
    "!!set ",
    "!!python/name:os.system ",
    "<<: ",
    "? ",
    "2001-13-01",
    "2001-01-01 25:00:00",
    "10.0.0.0/16",
    "eu-west-1",
    "'",
    '"',
    "#",
    "|",
    ">",
    "~",
    ".nan",
    "0x1F",
    "1e400",
    "x",
    "3",
    "\t",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
]
stack_texts = st.one_of(
    st.text(),
    st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=30).map("".join),
    st.builds(
        lambda header, body: header + body,
        st.sampled_from(["config:\n  ", f"config:\n  {P}network:\n    ", "config: "]),
        st.lists(st.sampled_from(YAML_FRAGMENTS) | st.text(max_size=5), max_size=20).map("".join),
    ),
    st.builds(lambda config: yaml.safe_dump({"config": config}), configs),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stacks")


def check_stack_file(fuzz_dir: Path, content: str | bytes) -> None:
    path = stack_file("fuzz", fuzz_dir)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        load_stack_settings("fuzz", stacks_dir=fuzz_dir)
    except SettingsError as exc:
        assert str(exc).startswith(f"{shown(path)}: "), str(exc)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=stack_texts)
@example(text="config:\n  aws:region: 2001-13-01\n")
@example(text="config:\n  a:b: !!float x\n")
@example(text="config: " + "[" * 5000)
@example(text="!!int")
@example(text="config:\n  x: !!timestamp\n")
def test_arbitrary_stack_file_text(fuzz_dir: Path, text: str) -> None:
    check_stack_file(fuzz_dir, text)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=200))
@example(content=b"config:\n  a:b: \xff\n")
def test_arbitrary_stack_file_bytes(fuzz_dir: Path, content: bytes) -> None:
    check_stack_file(fuzz_dir, content)


RFC1918 = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


@st.composite
def private_vpc_cidrs(draw: st.DrawFn) -> ipaddress.IPv4Network:
    block = draw(st.sampled_from(RFC1918))
    prefix = draw(st.integers(min_value=max(16, block.prefixlen), max_value=22))
    index = draw(st.integers(min_value=0, max_value=2 ** (prefix - block.prefixlen) - 1))
    address = block.network_address + index * 2 ** (32 - prefix)
    return ipaddress.IPv4Network(f"{address}/{prefix}")


def hex_ids(prefix: str) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdef", min_size=8, max_size=17).map(f"{prefix}-{{}}".format)


def without_cluster(config: dict[str, Any]) -> None:
    """No cluster, so no model may train on one."""
    config.pop(P + "cluster")
    for model in config[P + "models"].values():
        model.get("training", {}).pop("backend", None)
        model.get("training", {}).pop("cluster", None)


@FAST
@given(
    stack=st.sampled_from(STACKS),
    cidr=private_vpc_cidrs(),
    az_count=st.integers(min_value=2, max_value=6),
    nat_gateways=st.sampled_from(["single", "per_az"]),
    as_engine_text=st.booleans(),
)
def test_valid_network_settings_are_accepted(
    stack: str,
    cidr: ipaddress.IPv4Network,
    az_count: int,
    nat_gateways: str,
    as_engine_text: bool,
) -> None:
    config = fresh_config(stack)
    without_cluster(config)  # egress 'none' needs the cluster's image mirror; not tested here
    network = {"cidr": str(cidr), "az_count": az_count, "nat_gateways": nat_gateways}
    config[P + "network"] = json.dumps(network) if as_engine_text else network

    loaded = settings_from_config(config, source=SOURCE).network

    assert loaded.cidr == cidr
    assert loaded.az_count == az_count
    assert loaded.nat_gateways == nat_gateways
    assert loaded.egress == "none"


@FAST
@given(
    stack=st.sampled_from(STACKS),
    cidr=private_vpc_cidrs(),
    data=st.data(),
)
def test_matching_existing_vpc_is_accepted(
    stack: str, cidr: ipaddress.IPv4Network, data: st.DataObject
) -> None:
    az_count = data.draw(st.integers(min_value=2, max_value=6))
    existing = {
        "vpc_id": data.draw(hex_ids("vpc")),
        "private_subnet_ids": data.draw(
            st.lists(hex_ids("subnet"), min_size=az_count, max_size=az_count)
        ),
        "private_route_table_ids": data.draw(st.lists(hex_ids("rtb"), min_size=1, max_size=6)),
    }
    config = fresh_config(stack)
    without_cluster(config)  # egress 'none' needs the cluster's image mirror; not tested here
    config[P + "network"] = {"cidr": str(cidr), "az_count": az_count, "existing_vpc": existing}

    loaded = settings_from_config(config, source=SOURCE).network

    assert loaded.existing_vpc is not None
    assert loaded.existing_vpc.private_subnet_ids == existing["private_subnet_ids"]


@FAST
@given(
    network=st.builds(
        ipaddress.IPv4Network,
        st.tuples(st.integers(min_value=0, max_value=2**32 - 1), st.integers(16, 22)),
        strict=st.just(False),
    )
)
def test_only_rfc1918_vpc_ranges_are_accepted(network: ipaddress.IPv4Network) -> None:
    config = fresh_config("test")
    config[P + "network"]["cidr"] = str(network)

    result = outcome(config)

    if any(network.subnet_of(block) for block in RFC1918):
        assert isinstance(result, Settings)
    else:
        assert result == (
            f"{SOURCE}: invalid settings:\n  - {P}network.cidr: {network} is not a private "
            "(RFC 1918) range; use one within 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
        )
