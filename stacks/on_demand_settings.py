"""The `on_demand` stack-file key: marks a stack as an on-demand copy of a long-lived one.

`python -m stacks env create` writes it; nobody edits it by hand. The environment carries
`expires-at` and `on-demand-base` tags on every resource, and `env reap` destroys it once
`expires_at` has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

from stacks.settings_base import StrictModel, matching

# Long-lived stacks an on-demand environment may copy: plain names (dev, test), no hyphen,
# so `<base>-<name>` always shows which base a copy came from.
BaseStack = Annotated[str, matching(r"[a-z][a-z0-9]*", "a long-lived stack name (dev, test)")]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (write it in UTC: 2026-12-01T18:00:00Z)")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


def tag_time(value: datetime) -> str:
    """A UTC time as tags and messages show it: 2026-12-01T18:00:00Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OnDemandSettings(StrictModel):
    # The stack whose file this one's config was derived from, and whose VPC, cluster and
    # MLflow server it uses.
    base: BaseStack
    expires_at: UtcTime
