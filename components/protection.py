"""Resource options for stateful resources (keys, buckets, repositories)."""

from __future__ import annotations

import pulumi

from stacks.settings import ProtectionSettings


def stateful(parent: pulumi.Resource, protection: ProtectionSettings) -> pulumi.ResourceOptions:
    """Child options that keep data safe where the stack asks (always in prod)."""
    return pulumi.ResourceOptions(
        parent=parent,
        protect=protection.protect,
        retain_on_delete=protection.retain_on_delete,
    )
