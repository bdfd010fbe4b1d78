"""Subnet planning: disjoint subnets inside the VPC, for every allowed VPC size and AZ count."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.subnet_plan import plan_subnets
from stacks.settings import MAX_AZ_COUNT, MAX_VPC_PREFIX, MIN_AZ_COUNT, MIN_VPC_PREFIX


@st.composite
def vpcs(draw: st.DrawFn) -> ipaddress.IPv4Network:
    prefix = draw(st.integers(MIN_VPC_PREFIX, MAX_VPC_PREFIX))
    base = draw(st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]))
    supernet = ipaddress.ip_network(base)
    prefix = max(prefix, supernet.prefixlen)
    count = 2 ** (prefix - supernet.prefixlen)
    index = draw(st.integers(0, count - 1))
    return ipaddress.ip_network(
        (int(supernet.network_address) + index * 2 ** (32 - prefix), prefix)
    )


@given(vpc=vpcs(), az_count=st.integers(MIN_AZ_COUNT, MAX_AZ_COUNT), data=st.data())
def test_subnets_are_disjoint_and_inside_the_vpc(vpc, az_count, data) -> None:
    public_count = data.draw(st.integers(0, az_count))
    plan = plan_subnets(vpc, az_count, public_count)
    subnets = [*plan.private, *plan.public]
    assert len(plan.private) == az_count and len(plan.public) == public_count
    assert all(s.subnet_of(vpc) for s in subnets)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(subnets, 2))
    # AWS allows subnets from /16 to /28.
    assert all(16 <= s.prefixlen <= 28 for s in subnets)


def test_slash16_layout() -> None:
    plan = plan_subnets(ipaddress.ip_network("10.30.0.0/16"), 3, 1)
    assert [str(s) for s in plan.private] == ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"]
    assert [str(s) for s in plan.public] == ["10.30.224.0/22"]


@pytest.mark.parametrize(("azs", "public"), [(0, 0), (7, 0), (2, 3)])
def test_rejects_impossible_plans(azs: int, public: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        plan_subnets(ipaddress.ip_network("10.0.0.0/16"), azs, public)
