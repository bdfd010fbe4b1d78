"""EventBridge Scheduler expressions: validation and the next run times (pure; tested).

A schedule's `ScheduleExpression` (CreateSchedule, `aws.scheduler.Schedule`) takes one of
three forms, evaluated in the schedule's IANA time zone:

`rate(value unit)`
    Every `value` units from the moment the schedule starts. `value` is a positive integer;
    `unit` is `minute`, `hour` or `day` when the value is 1 and `minutes`, `hours` or `days`
    otherwise (AWS rejects `rate(1 hours)` and `rate(5 hour)`). A unit is a fixed duration: a
    day is 24 hours even across a daylight-saving change.

`cron(minutes hours day-of-month month day-of-week year)`
    Six fields, all required:

    ============  =================  ===============
    field         values             wildcards
    ============  =================  ===============
    minutes       0-59               , - * /
    hours         0-23               , - * /
    day-of-month  1-31               , - * ? / L W
    month         1-12 or JAN-DEC    , - * /
    day-of-week   1-7 or SUN-SAT     , - * ? L #
    year          1970-2199          , - * /
    ============  =================  ===============

    `,` lists, `a-b` is a range (one that runs past the field's end wraps round, e.g. hours
    `22-2`; not in the year), `*` is every value, `a/n` and `a-b/n` and `*/n` step by `n`.
    Exactly one of day-of-month and day-of-week is `?` ("any"): the other one chooses the
    days. Day-of-month `L` is the month's last day, `15W` the weekday (Mon-Fri) nearest the
    15th within the same month, `LW` the last weekday. Day-of-week 1 is Sunday; `L` alone is
    Saturday, `6L` the month's last Friday, `2#1` its first Monday. `L`, `W` and `#` stand
    alone in their field (no lists or ranges with them, as in Quartz), and day-of-week takes
    no `/` (the AWS table lists none there).

`at(yyyy-mm-ddThh:mm:ss)`
    One run at that wall-clock time.

Daylight saving, following Scheduler's documented behaviour: a cron time that does not exist
on a spring-forward day is skipped, and one that happens twice on a fall-back day runs once.
AWS does not say which of the two; this module takes the first (Python's `fold=0`). The same
`fold=0` reading moves an `at` time inside a spring-forward gap forward by the gap's length
(AWS documents nothing for that case).

Hand-written rather than taken from croniter or the like: AWS cron is Quartz-flavoured (a
year field, `?`, `L`, `W`, `#`, 1 = Sunday), which the Unix-cron libraries do not speak, and
the Pulumi program should not carry a dependency for one validator. Validation runs when the
settings load (`stacks/settings.py`), so a bad expression fails `pulumi preview` with a
message naming the field instead of failing the CreateSchedule call during `pulumi up`.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["InvalidExpression", "next_runs", "validate_expression"]


class InvalidExpression(ValueError):
    """The expression is not one EventBridge Scheduler accepts; the message says why."""


# ----------------------------------------------------------------------------------- parsing

_FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
# (lowest, highest, largest step) per field; the year field takes any step.
_BOUNDS: tuple[tuple[int, int, int | None], ...] = (
    (0, 59, 59),
    (0, 23, 23),
    (1, 31, 31),
    (1, 12, 12),
    (1, 7, 7),
    (1970, 2199, None),
)
_MONTH_NAMES = {
    name: n
    for n, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MONTH, _DAY_OF_MONTH, _DAY_OF_WEEK, _YEAR = 3, 2, 4, 5

_FORM = re.compile(r"(cron|rate|at)\((.*)\)", re.DOTALL)
_DIGITS = re.compile(r"[0-9]+")
_AT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


class _Field:
    """One cron field being parsed: knows its place, so errors can say where."""

    def __init__(self, index: int, text: str) -> None:
        self.index = index
        self.text = text
        self.name = _FIELD_NAMES[index]
        self.lo, self.hi, self.max_step = _BOUNDS[index]
        self.names = {_MONTH: _MONTH_NAMES, _DAY_OF_WEEK: _DAY_NAMES}.get(index, {})

    def error(self, token: str, problem: str) -> InvalidExpression:
        where = f"'{token}'" if token == self.text else f"'{token}' (in '{self.text}')"
        return InvalidExpression(f"cron field {self.index + 1} ({self.name}) {where}: {problem}")

    def value(self, token: str) -> int:
        upper = token.upper()
        if upper in self.names:
            return self.names[upper]
        if not _DIGITS.fullmatch(token):
            hint = " or name" if self.names else ""
            raise self.error(token, f"not a number{hint} (values are {self._values()})")
        value = int(token)
        if not self.lo <= value <= self.hi:
            raise self.error(token, f"value out of range {self.lo}-{self.hi}")
        return value

    def _values(self) -> str:
        named = {_MONTH: " or JAN-DEC", _DAY_OF_WEEK: " or SUN-SAT"}.get(self.index, "")
        return f"{self.lo}-{self.hi}{named}"

    def values(self) -> frozenset[int]:
        """The field's set of values from `,` `-` `*` `/` syntax."""
        result: set[int] = set()
        for item in self.text.split(","):
            if not item:
                raise self.error(self.text, "empty item in the list")
            result.update(self._item(item))
        return frozenset(result)

    def _item(self, item: str) -> list[int]:
        base, slash, step_text = item.partition("/")
        if "?" in item:
            raise self.error(item, "'?' must stand alone")
        step = 1
        if slash:
            if self.index == _DAY_OF_WEEK:
                raise self.error(item, "'/' is not allowed in day-of-week")
            if not _DIGITS.fullmatch(step_text) or int(step_text) == 0:
                raise self.error(item, f"step '{step_text}' must be a positive integer")
            step = int(step_text)
            if self.max_step is not None and step > self.max_step:
                raise self.error(item, f"step {step} is larger than {self.max_step}")
        if base == "*":
            first, last = self.lo, self.hi
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            if not start_text or not end_text:
                raise self.error(item, "a range needs a start and an end, e.g. '1-5'")
            first, last = self.value(start_text), self.value(end_text)
        elif not base:
            raise self.error(item, "a step needs a start, e.g. '0/15' or '*/15'")
        else:
            first = self.value(base)
            last = self.hi if slash else first
        if first <= last:
            span = list(range(first, last + 1))
        elif self.index == _YEAR:
            raise self.error(item, "range start is after its end")
        else:  # wraps round the end of the field, as Quartz does: hours 22-2 is 22,23,0,1,2
            span = list(range(first, self.hi + 1)) + list(range(self.lo, last + 1))
        return span[::step]


class _DayRule(Protocol):
    def days(self, year: int, month: int) -> list[int]:
        """The month's days (ascending) that the rule picks."""
        ...


def _aws_weekday(year: int, month: int, day: int) -> int:
    """1 = Sunday ... 7 = Saturday, as the day-of-week field counts."""
    return (calendar.weekday(year, month, day) + 1) % 7 + 1


def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@dataclass(frozen=True)
class _MonthDays:
    chosen: frozenset[int]

    def days(self, year: int, month: int) -> list[int]:
        length = _month_length(year, month)
        return sorted(d for d in self.chosen if d <= length)


@dataclass(frozen=True)
class _LastDay:
    def days(self, year: int, month: int) -> list[int]:
        return [_month_length(year, month)]


@dataclass(frozen=True)
class _LastWeekday:
    def days(self, year: int, month: int) -> list[int]:
        day = _month_length(year, month)
        while calendar.weekday(year, month, day) >= calendar.SATURDAY:
            day -= 1
        return [day]


@dataclass(frozen=True)
class _NearestWeekday:
    day: int

    def days(self, year: int, month: int) -> list[int]:
        length = _month_length(year, month)
        if self.day > length:  # e.g. 31W in April: no run that month
            return []
        weekday = calendar.weekday(year, month, self.day)
        if weekday == calendar.SATURDAY:
            return [self.day - 1 if self.day > 1 else self.day + 2]
        if weekday == calendar.SUNDAY:
            return [self.day + 1 if self.day < length else self.day - 2]
        return [self.day]


@dataclass(frozen=True)
class _Weekdays:
    chosen: frozenset[int]  # 1 = Sunday

    def days(self, year: int, month: int) -> list[int]:
        length = _month_length(year, month)
        return [d for d in range(1, length + 1) if _aws_weekday(year, month, d) in self.chosen]


@dataclass(frozen=True)
class _LastOfWeekday:
    weekday: int

    def days(self, year: int, month: int) -> list[int]:
        length = _month_length(year, month)
        back = (_aws_weekday(year, month, length) - self.weekday) % 7
        return [length - back]


@dataclass(frozen=True)
class _NthWeekday:
    weekday: int
    nth: int

    def days(self, year: int, month: int) -> list[int]:
        first = 1 + (self.weekday - _aws_weekday(year, month, 1)) % 7
        day = first + 7 * (self.nth - 1)
        return [day] if day <= _month_length(year, month) else []


_W_DAY = re.compile(r"([0-9]+)W", re.IGNORECASE)
_L_WEEKDAY = re.compile(r"([0-9]+|[A-Z]{3})L", re.IGNORECASE)
_NTH_WEEKDAY = re.compile(r"([0-9]+|[A-Z]{3})#(.+)", re.IGNORECASE)


def _day_of_month(field: _Field) -> _DayRule | None:
    text = field.text.upper()
    if text == "?":
        return None
    if text == "L":
        return _LastDay()
    if text == "LW":
        return _LastWeekday()
    if "#" in text:
        raise field.error(field.text, "'#' is only allowed in day-of-week")
    if match := _W_DAY.fullmatch(field.text):
        return _NearestWeekday(field.value(match.group(1)))
    if "W" in text:
        raise field.error(field.text, "'W' takes one day on its own, e.g. '15W' or 'LW'")
    if "L" in text:
        raise field.error(field.text, "'L' stands alone ('L' or 'LW'); no lists or offsets")
    return _MonthDays(field.values())


def _day_of_week(field: _Field) -> _DayRule | None:
    text = field.text.upper()
    if text == "?":
        return None
    if text == "L":
        return _Weekdays(frozenset({_DAY_NAMES["SAT"]}))
    if "W" in text.replace("WED", ""):
        raise field.error(field.text, "'W' is only allowed in day-of-month")
    if match := _L_WEEKDAY.fullmatch(field.text):
        return _LastOfWeekday(field.value(match.group(1)))
    if "L" in text:
        raise field.error(field.text, "'L' takes one day on its own, e.g. '6L' (last Friday)")
    if "#" in text and any(char in text for char in ",-/*"):
        raise field.error(field.text, "'#' takes one day on its own, e.g. '2#1' (first Monday)")
    if match := _NTH_WEEKDAY.fullmatch(field.text):
        nth = match.group(2)
        if nth not in {"1", "2", "3", "4", "5"}:
            raise field.error(field.text, f"'#{nth}': the week in the month must be 1-5")
        return _NthWeekday(field.value(match.group(1)), int(nth))
    if "#" in text:
        raise field.error(field.text, "'#' takes one day on its own, e.g. '2#1' (first Monday)")
    return _Weekdays(field.values())


def _plain(field: _Field) -> tuple[int, ...]:
    upper = field.text.upper()
    both, dom, dow = "day-of-month or day-of-week", "day-of-month", "day-of-week"
    for char, where in (("?", both), ("L", both), ("W", dom), ("#", dow)):
        # Month names may hold these letters (JUL, NOV): a name is no wildcard.
        if char in upper and not any(char in name for name in field.names if name in upper):
            raise field.error(field.text, f"'{char}' is only allowed in {where}")
    return tuple(sorted(field.values()))


@dataclass(frozen=True)
class _Cron:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: _DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]


@dataclass(frozen=True)
class _Rate:
    interval: timedelta


@dataclass(frozen=True)
class _At:
    wall: datetime


def _parse_cron(body: str) -> _Cron:
    texts = body.split()
    if len(texts) != len(_FIELD_NAMES):
        raise InvalidExpression(
            f"cron expression needs 6 fields ({' '.join(_FIELD_NAMES)}), got {len(texts)}"
            + (": the year field is required (use '*')" if len(texts) == 5 else "")
        )
    fields = [_Field(i, text) for i, text in enumerate(texts)]
    minutes, hours, months, years = (_plain(fields[i]) for i in (0, 1, _MONTH, _YEAR))
    by_month = _day_of_month(fields[_DAY_OF_MONTH])
    by_week = _day_of_week(fields[_DAY_OF_WEEK])
    if by_month is None and by_week is None:
        raise InvalidExpression(
            "day-of-month and day-of-week: only one of them may be '?'; the other picks the days"
        )
    if by_month is not None and by_week is not None:
        raise InvalidExpression("day-of-month and day-of-week: one of them must be '?'")
    days = by_month if by_month is not None else by_week
    assert days is not None  # for mypy: exactly one is set
    return _Cron(minutes, hours, days, months, years)


def _parse_rate(body: str) -> _Rate:
    parts = body.split()
    if len(parts) != 2:
        raise InvalidExpression(
            f"rate expression 'rate({body})' needs 'value unit', e.g. rate(5 minutes)"
        )
    value_text, unit = parts
    if not _DIGITS.fullmatch(value_text) or int(value_text) == 0:
        raise InvalidExpression(f"rate value '{value_text}' must be a positive integer")
    value = int(value_text)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise InvalidExpression(
            f"rate unit '{unit}' must be one of minute, minutes, hour, hours, day, days"
        )
    if value == 1 and unit != singular:
        raise InvalidExpression(f"rate unit '{unit}' needs a value above 1; use '{singular}'")
    if value != 1 and unit == singular:
        raise InvalidExpression(f"rate unit '{unit}' needs the value 1; use '{singular}s'")
    return _Rate(timedelta(seconds=value * _RATE_UNITS[singular]))


def _parse_at(body: str) -> _At:
    match = _AT.fullmatch(body)
    if match is None:
        raise InvalidExpression(f"at expression 'at({body})' must be at(yyyy-mm-ddThh:mm:ss)")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        wall = datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise InvalidExpression(f"at expression 'at({body})': {error}") from None
    return _At(wall)


def _parse(expression: str) -> _Cron | _Rate | _At:
    if not isinstance(expression, str):
        raise InvalidExpression(
            f"a schedule expression is a string, not {type(expression).__name__}"
        )
    match = _FORM.fullmatch(expression)
    if match is None:
        raise InvalidExpression(
            f"schedule expression {expression!r} must be cron(...), rate(...) or at(...)"
        )
    kind, body = match.groups()
    if kind == "cron":
        return _parse_cron(body)
    if kind == "rate":
        return _parse_rate(body)
    return _parse_at(body)


def validate_expression(expression: str) -> None:
    """Raise InvalidExpression, saying what is wrong and where, unless Scheduler accepts it."""
    _parse(expression)


# ------------------------------------------------------------------------------ evaluation


def _zone(timezone: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{timezone!r} is not an IANA time zone (e.g. Europe/Dublin)") from None


def _exists(wall: datetime, zone: zoneinfo.ZoneInfo) -> bool:
    """Whether the wall-clock time happens in the zone (False inside a spring-forward gap)."""
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _wall_times(cron: _Cron, start: datetime) -> Iterator[datetime]:
    """The expression's wall-clock times from `start` (naive, whole minute) on, in order.

    Walks the fields from the year down, skipping whole years, months and days that cannot
    match, so a rare or never-again schedule costs at most one step per remaining month.
    """
    first_day = (start.year, start.month, start.day)
    for year in cron.years:
        if year < start.year:
            continue
        for month in cron.months:
            if (year, month) < first_day[:2]:
                continue
            for day in cron.days.days(year, month):
                if (year, month, day) < first_day:
                    continue
                today = (year, month, day) == first_day
                for hour in cron.hours:
                    if today and hour < start.hour:
                        continue
                    this_hour = today and hour == start.hour
                    for minute in cron.minutes:
                        if this_hour and minute < start.minute:
                            continue
                        yield datetime(year, month, day, hour, minute)


def _cron_runs(cron: _Cron, zone: zoneinfo.ZoneInfo, after: datetime, count: int) -> list[datetime]:
    after_utc = after.astimezone(UTC)
    start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    runs: list[datetime] = []
    if count <= 0:
        return runs
    for wall in _wall_times(cron, start):
        # A wall time in a spring-forward gap is skipped; one in a fall-back overlap is read
        # with fold=0, its first occurrence, and its second occurrence is never produced.
        if not _exists(wall, zone):
            continue
        run = wall.replace(tzinfo=zone)
        # Compared in UTC: same-zone comparisons of aware datetimes ignore fold.
        if run.astimezone(UTC) > after_utc:
            runs.append(run)
            if len(runs) == count:
                break
    return runs


def next_runs(expression: str, timezone: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` run times strictly after `after`, as aware datetimes in `timezone`.

    `after` may be naive, read as a wall-clock time in `timezone`. A rate schedule is taken
    to start at `after`, so its runs are `after + n * interval` (fixed durations: a day is
    24 hours across a daylight-saving change). A cron schedule is evaluated in `timezone`;
    see the module docstring for daylight saving. An at schedule gives its one time if that
    is after `after`, else nothing. Fewer than `count` come back when the schedule ends
    (the year field runs out, an impossible date such as 31 February, a past at time).
    Run times share one tzinfo, and Python compares same-zone datetimes by wall clock, so
    compare `.timestamp()` values where a fall-back hour may be involved.
    """
    if count < 0:
        raise ValueError(f"count must be zero or more, not {count}")
    schedule = _parse(expression)
    zone = _zone(timezone)
    if after.tzinfo is None or after.utcoffset() is None:
        after = after.replace(tzinfo=zone)
    if isinstance(schedule, _Rate):
        after_utc = after.astimezone(UTC)
        return [(after_utc + n * schedule.interval).astimezone(zone) for n in range(1, count + 1)]
    if isinstance(schedule, _At):
        # fold=0: a time in a spring-forward gap lands that much later; in an overlap, first.
        run = schedule.wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)
        return [run] if count and run.astimezone(UTC) > after.astimezone(UTC) else []
    return _cron_runs(schedule, zone, after, count)
