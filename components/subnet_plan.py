"""How a VPC's CIDR is cut into subnets (pure; property-tested).

The VPC is split into eight equal blocks. Private subnets take one block per AZ (up to six),
block 6 is left free for growth (EKS pod subnets, say), and block 7 is split eight ways for
the small public subnets that only hold NAT gateways. A /16 gives /19 private subnets
(8,187 usable addresses each) and /22 public ones.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_AZS = 6
PUBLIC_BLOCK = 7


@dataclass(frozen=True)
class SubnetPlan:
    private: tuple[ipaddress.IPv4Network, ...]
    public: tuple[ipaddress.IPv4Network, ...]


def plan_subnets(vpc_cidr: ipaddress.IPv4Network, az_count: int, public_count: int) -> SubnetPlan:
    """`az_count` private subnets and `public_count` (0..az_count) public ones."""
    if not 1 <= az_count <= MAX_AZS:
        raise ValueError(f"az_count must be 1..{MAX_AZS}, got {az_count}")
    if not 0 <= public_count <= az_count:
        raise ValueError(f"public_count must be 0..{az_count}, got {public_count}")
    blocks = list(vpc_cidr.subnets(prefixlen_diff=3))
    public_blocks = list(blocks[PUBLIC_BLOCK].subnets(prefixlen_diff=3))
    return SubnetPlan(private=tuple(blocks[:az_count]), public=tuple(public_blocks[:public_count]))
