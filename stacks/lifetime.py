"""How long an on-demand environment lives: `--ttl` text, expiry times, reap decisions.

A TTL is written as days, hours and minutes, largest first: `8h`, `90m`, `2d`, `1d12h`.
An environment expires `ttl` after it is created; `env extend` adds to what is left. No
environment may be set to live longer than MAX_TTL from now: a forgotten copy costs at most
a week of its resources.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

DEFAULT_TTL = "8h"
MIN_TTL = timedelta(minutes=30)
MAX_TTL = timedelta(days=7)
_TTL = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?")


class LifetimeError(ValueError):
    """A TTL or expiry the user gave is unusable; the message names the flag."""


def parse_ttl(text: str, flag: str = "--ttl") -> timedelta:
    """`8h`, `90m`, `1d12h`, also as `describe` writes them (`1d 12h`)."""
    compact = "".join(text.split())
    match = _TTL.fullmatch(compact)
    if not compact or match is None:
        raise LifetimeError(
            f"{flag} {text!r}: write days, hours and minutes, largest first (8h, 90m, 1d12h)"
        )
    try:
        ttl = timedelta(
            days=int(match["d"] or 0), hours=int(match["h"] or 0), minutes=int(match["m"] or 0)
        )
    except OverflowError:
        ttl = MAX_TTL + timedelta(days=1)  # beyond what timedelta holds: refused below
    if ttl < MIN_TTL:
        raise LifetimeError(f"{flag} {text!r}: shorter than the minimum of {describe(MIN_TTL)}")
    if ttl > MAX_TTL:
        raise LifetimeError(f"{flag} {text!r}: longer than the maximum of {describe(MAX_TTL)}")
    return ttl


def expiry(now: datetime, ttl: timedelta) -> datetime:
    """When an environment created now with this TTL expires (whole seconds)."""
    return (now + ttl).replace(microsecond=0)


def extended(expires_at: datetime, now: datetime, ttl: timedelta, flag: str = "--ttl") -> datetime:
    """The new expiry after adding `ttl` to what is left (an expired one restarts from now)."""
    new = expiry(max(expires_at, now), ttl)
    if new - now > MAX_TTL:
        raise LifetimeError(
            f"{flag}: the environment would live until {new:%Y-%m-%d %H:%M} UTC, more than "
            f"{describe(MAX_TTL)} from now; the most it can get now is "
            f"{describe(MAX_TTL - (max(expires_at, now) - now))}"
        )
    return new


def is_expired(expires_at: datetime, now: datetime) -> bool:
    return now >= expires_at


def describe(span: timedelta) -> str:
    """`2d 3h`, `45m`: a span as people read it, to the minute."""
    minutes = max(int(span.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    return " ".join(parts) or "0m"


def remaining(expires_at: datetime, now: datetime) -> str:
    """`in 3h 20m` or `expired 2h ago`."""
    if is_expired(expires_at, now):
        return f"expired {describe(now - expires_at)} ago"
    return f"in {describe(expires_at - now)}"
