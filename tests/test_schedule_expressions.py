"""EventBridge Scheduler expressions: what validates, what each rejection says, and when the
schedule runs next (known dates, daylight saving, and properties over random cron fields)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.schedule_expressions import InvalidExpression, next_runs, validate_expression

DUBLIN = ZoneInfo("Europe/Dublin")
NEW_YORK = ZoneInfo("America/New_York")


def at(
    zone: tzinfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


def walls(runs: list[datetime]) -> list[str]:
    return [run.isoformat() for run in runs]


# ------------------------------------------------------------------------------ validation

VALID = {
    "every-5-minutes": "rate(5 minutes)",
    "rate-1-minute": "rate(1 minute)",
    "rate-1-hour": "rate(1 hour)",
    "rate-12-hours": "rate(12 hours)",
    "rate-1-day": "rate(1 day)",
    "rate-30-days": "rate(30 days)",
    "weekdays-3am": "cron(0 3 ? * MON-FRI *)",
    "daily-8pm": "cron(0 20 * * ? *)",
    "every-minute": "cron(* * * * ? *)",
    "quarter-hours-in-hours-list": "cron(0/15 9,12,18 * * ? *)",
    "star-steps": "cron(*/10 */2 */3 */2 ? */5)",
    "range-step": "cron(0 11-23/2 * * ? *)",
    "last-day": "cron(0 12 L * ? *)",
    "last-weekday": "cron(0 12 LW * ? *)",
    "nearest-weekday": "cron(0 0 15W * ? *)",
    "last-friday": "cron(0 18 ? * 6L *)",
    "last-friday-by-name": "cron(0 18 ? * FRIL *)",
    "first-monday": "cron(0 9 ? * 2#1 *)",
    "first-monday-by-name": "cron(0 9 ? * MON#1 *)",
    "saturday-as-L": "cron(0 9 ? * L *)",
    "month-names": "cron(0 0 1 JAN,APR,JUL,OCT ? *)",
    "lowercase-names": "cron(0 0 ? jan-mar mon,wed,fri *)",
    "year-range": "cron(0 0 1 1 ? 2025-2030)",
    "year-list": "cron(30 6 ? * SUN 2025,2027)",
    "wrapping-hours": "cron(0 22-2 * * ? *)",
    "wrapping-days": "cron(0 8 ? * FRI-MON *)",
    "leading-zeros": "cron(05 09 01 01 ? 2030)",
    "extra-spaces": "cron(0  3 ? *  MON *)",
    "at-future": "at(2030-01-15T09:30:00)",
    "at-leap-day": "at(2028-02-29T00:00:00)",
}

INVALID = {
    # form
    "empty": ("", "must be cron(...), rate(...) or at(...)"),
    "unix-cron": ("0 3 * * *", "must be cron(...), rate(...) or at(...)"),
    "uppercase-kind": ("CRON(0 3 * * ? *)", "must be cron(...), rate(...) or at(...)"),
    "trailing-space": ("rate(5 minutes) ", "must be cron(...), rate(...) or at(...)"),
    # rate
    "rate-singular-unit": ("rate(5 minute)", "rate unit 'minute' needs the value 1; use 'minutes'"),
    "rate-plural-unit": ("rate(1 hours)", "rate unit 'hours' needs a value above 1; use 'hour'"),
    "rate-zero": ("rate(0 minutes)", "rate value '0' must be a positive integer"),
    "rate-negative": ("rate(-5 minutes)", "rate value '-5' must be a positive integer"),
    "rate-fraction": ("rate(1.5 hours)", "rate value '1.5' must be a positive integer"),
    "rate-seconds": ("rate(30 seconds)", "rate unit 'seconds' must be one of minute, minutes"),
    "rate-weeks": ("rate(2 weeks)", "rate unit 'weeks' must be one of"),
    "rate-no-unit": ("rate(5)", "needs 'value unit', e.g. rate(5 minutes)"),
    # cron: shape
    "unix-five-fields": ("cron(0 3 * * ?)", "needs 6 fields (minutes hours day-of-month"),
    "five-fields-hint": ("cron(0 3 * * ?)", "the year field is required"),
    "seven-fields": ("cron(0 0 3 * * ? *)", "needs 6 fields"),
    # cron: values
    "hour-25": ("cron(0 25 * * ? *)", "cron field 2 (hours) '25': value out of range 0-23"),
    "minute-60": ("cron(60 0 * * ? *)", "cron field 1 (minutes) '60': value out of range 0-59"),
    "hour-in-list": ("cron(0 1,25 * * ? *)", "cron field 2 (hours) '25' (in '1,25'): value out"),
    "hour-in-range": ("cron(0 9-24 * * ? *)", "'24' (in '9-24'): value out of range 0-23"),
    "day-0": ("cron(0 0 0 * ? *)", "cron field 3 (day-of-month) '0': value out of range 1-31"),
    "month-13": ("cron(0 0 1 13 ? *)", "cron field 4 (month) '13': value out of range 1-12"),
    "month-long-name": ("cron(0 0 1 JULY ? *)", "'JULY': not a number or name"),
    "weekday-0": ("cron(0 0 ? * 0 *)", "cron field 5 (day-of-week) '0': value out of range 1-7"),
    "weekday-name": ("cron(0 0 ? * MONDAY *)", "(day-of-week) 'MONDAY': not a number or name"),
    "year-1969": ("cron(0 0 1 1 ? 1969)", "cron field 6 (year) '1969': value out of range"),
    "year-2200": ("cron(0 0 1 1 ? 2200)", "value out of range 1970-2199"),
    "year-backwards": ("cron(0 0 1 1 ? 2030-2025)", "range start is after its end"),
    "not-a-number": ("cron(x 0 * * ? *)", "cron field 1 (minutes) 'x': not a number"),
    "empty-list-item": ("cron(0 1,,2 * * ? *)", "empty item in the list"),
    "half-range": ("cron(0 5- * * ? *)", "a range needs a start and an end"),
    # cron: steps
    "step-zero": ("cron(0/0 * * * ? *)", "step '0' must be a positive integer"),
    "step-too-big": ("cron(0/60 * * * ? *)", "step 60 is larger than 59"),
    "step-no-start": ("cron(/5 * * * ? *)", "a step needs a start"),
    "step-in-day-of-week": ("cron(0 0 ? * 1/2 *)", "'/' is not allowed in day-of-week"),
    # cron: day-of-month / day-of-week
    "both-days-given": (
        "cron(0 12 * * * *)",
        "day-of-month and day-of-week: one of them must be '?'",
    ),
    "both-days-set": ("cron(0 12 1 * MON *)", "one of them must be '?'"),
    "both-days-any": ("cron(0 12 ? * ? *)", "only one of them may be '?'"),
    "question-in-hours": (
        "cron(0 ? * * ? *)",
        "'?' is only allowed in day-of-month or day-of-week",
    ),
    "question-in-list": ("cron(0 0 1,? * ? *)", "'?' must stand alone"),
    "L-in-minutes": ("cron(L 0 * * ? *)", "'L' is only allowed in day-of-month or day-of-week"),
    "W-in-hours": ("cron(0 5W * * ? *)", "'W' is only allowed in day-of-month"),
    "hash-in-month": ("cron(0 0 1 1#2 ? *)", "'#' is only allowed in day-of-week"),
    "L-offset": ("cron(0 0 L-3 * ? *)", "'L' stands alone ('L' or 'LW')"),
    "L-in-list": ("cron(0 0 1,L * ? *)", "'L' stands alone"),
    "W-range": ("cron(0 0 1-5W * ? *)", "'W' takes one day on its own"),
    "W-day-32": ("cron(0 0 32W * ? *)", "'32' (in '32W'): value out of range 1-31"),
    "W-in-day-of-week": ("cron(0 0 ? * 2W *)", "'W' is only allowed in day-of-month"),
    "hash-in-day-of-month": ("cron(0 0 2#1 * ? *)", "'#' is only allowed in day-of-week"),
    "hash-week-6": ("cron(0 0 ? * 2#6 *)", "'#6': the week in the month must be 1-5"),
    "hash-weekday-8": ("cron(0 0 ? * 8#1 *)", "'8' (in '8#1'): value out of range 1-7"),
    "hash-in-list": ("cron(0 0 ? * 2#1,3#1 *)", "'#' takes one day on its own"),
    "hash-range": ("cron(0 0 ? * 2-3#1 *)", "'#' takes one day on its own"),
    "L-weekday-in-list": ("cron(0 0 ? * MON,2L *)", "'L' takes one day on its own"),
    "W-in-list": ("cron(0 0 1,15W * ? *)", "'W' takes one day on its own"),
    # at
    "at-date-only": ("at(2030-01-15)", "must be at(yyyy-mm-ddThh:mm:ss)"),
    "at-space": ("at(2030-01-15 09:30:00)", "must be at(yyyy-mm-ddThh:mm:ss)"),
    "at-offset": ("at(2030-01-15T09:30:00Z)", "must be at(yyyy-mm-ddThh:mm:ss)"),
    "at-feb-30": ("at(2030-02-30T00:00:00)", "day is out of range for month"),
    "at-hour-24": ("at(2030-01-15T24:00:00)", "hour must be in 0..23"),
}


@pytest.mark.parametrize("expression", VALID.values(), ids=VALID.keys())
def test_valid_expressions_are_accepted(expression: str) -> None:
    validate_expression(expression)


@pytest.mark.parametrize(("expression", "fragment"), INVALID.values(), ids=INVALID.keys())
def test_invalid_expressions_say_what_and_where(expression: str, fragment: str) -> None:
    with pytest.raises(InvalidExpression) as raised:
        validate_expression(expression)
    assert fragment in str(raised.value)


def test_invalid_expression_is_a_value_error_for_pydantic() -> None:
    from pydantic import ValidationError

    from stacks.settings import ScheduleSettings

    with pytest.raises(ValidationError, match=r"cron field 2 \(hours\) '25'"):
        ScheduleSettings(expression="cron(0 25 * * ? *)")
    assert issubclass(InvalidExpression, ValueError)


# ------------------------------------------------------------------------------- next runs


@dataclass(frozen=True)
class Case:
    expression: str
    timezone: str
    after: datetime
    expected: list[str]
    count: int = 3


CASES = {
    "weekdays-after-friday-evening": Case(
        "cron(0 3 ? * MON-FRI *)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 5, 10, 19, 0),  # a Friday
        ["2024-05-13T03:00:00+01:00", "2024-05-14T03:00:00+01:00", "2024-05-15T03:00:00+01:00"],
    ),
    "last-day-leap-february": Case(
        "cron(0 12 L * ? *)",
        "UTC",
        at(UTC, 2024, 1, 15),
        ["2024-01-31T12:00:00+00:00", "2024-02-29T12:00:00+00:00", "2024-03-31T12:00:00+00:00"],
    ),
    "last-day-common-february": Case(
        "cron(0 12 L * ? *)",
        "UTC",
        at(UTC, 2023, 1, 31, 12, 0),  # exactly at a run: strictly after skips it
        ["2023-02-28T12:00:00+00:00", "2023-03-31T12:00:00+00:00", "2023-04-30T12:00:00+00:00"],
    ),
    "first-monday": Case(
        "cron(0 9 ? * 2#1 *)",
        "UTC",
        at(UTC, 2024, 1, 1),  # itself a Monday
        ["2024-01-01T09:00:00+00:00", "2024-02-05T09:00:00+00:00", "2024-03-04T09:00:00+00:00"],
    ),
    "fifth-friday-skips-months-without-one": Case(
        "cron(0 9 ? * 6#5 *)",
        "UTC",
        at(UTC, 2024, 1, 1),
        ["2024-03-29T09:00:00+00:00", "2024-05-31T09:00:00+00:00", "2024-08-30T09:00:00+00:00"],
    ),
    "nearest-weekday-15th": Case(
        "cron(0 0 15W * ? *)",
        "UTC",
        at(UTC, 2024, 5, 20),
        [
            "2024-06-14T00:00:00+00:00",  # 15 June is a Saturday: the Friday before
            "2024-07-15T00:00:00+00:00",  # a Monday: itself
            "2024-08-15T00:00:00+00:00",
            "2024-09-16T00:00:00+00:00",  # 15 September is a Sunday: the Monday after
        ],
        count=4,
    ),
    "nearest-weekday-stays-in-month": Case(
        "cron(0 0 1W * ? *)",
        "UTC",
        at(UTC, 2024, 5, 20),
        ["2024-06-03T00:00:00+00:00", "2024-07-01T00:00:00+00:00", "2024-08-01T00:00:00+00:00"],
    ),  # 1 June 2024 is a Saturday: Monday the 3rd, not Friday 31 May
    "last-weekday": Case(
        "cron(0 17 LW * ? *)",
        "UTC",
        at(UTC, 2024, 8, 1),
        ["2024-08-30T17:00:00+00:00", "2024-09-30T17:00:00+00:00", "2024-10-31T17:00:00+00:00"],
    ),
    "last-friday": Case(
        "cron(0 18 ? * 6L *)",
        "UTC",
        at(UTC, 2024, 7, 1),
        ["2024-07-26T18:00:00+00:00", "2024-08-30T18:00:00+00:00", "2024-09-27T18:00:00+00:00"],
    ),
    "steps-and-ranges": Case(
        "cron(10/20 9-17/4 * * ? *)",
        "UTC",
        at(UTC, 2024, 1, 1, 13, 30),
        ["2024-01-01T13:50:00+00:00", "2024-01-01T17:10:00+00:00", "2024-01-01T17:30:00+00:00"],
    ),
    "wrapping-hour-range": Case(
        "cron(0 22-1 * * ? *)",
        "UTC",
        at(UTC, 2024, 12, 31, 21, 0),
        ["2024-12-31T22:00:00+00:00", "2024-12-31T23:00:00+00:00", "2025-01-01T00:00:00+00:00"],
        count=3,
    ),
    "names-and-year": Case(
        "cron(30 6 1 JAN,JUL ? 2025-2026)",
        "UTC",
        at(UTC, 2024, 6, 1),
        [
            "2025-01-01T06:30:00+00:00",
            "2025-07-01T06:30:00+00:00",
            "2026-01-01T06:30:00+00:00",
            "2026-07-01T06:30:00+00:00",
        ],
        count=10,  # the year field runs out after four
    ),
    "past-year-never-again": Case("cron(0 0 1 1 ? 2020)", "UTC", at(UTC, 2024, 1, 1), []),
    "february-30-never": Case("cron(0 0 30 FEB ? *)", "UTC", at(UTC, 2024, 1, 1), []),
    "leap-day-in-common-years-never": Case(
        "cron(0 0 29 2 ? 2025-2027)", "UTC", at(UTC, 2024, 3, 1), []
    ),
    "leap-day-every-four-years": Case(
        "cron(0 0 29 2 ? *)",
        "UTC",
        at(UTC, 2024, 3, 1),
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00"],
    ),
    "evaluated-in-the-zone": Case(
        "cron(0 9 * * ? *)",
        "America/New_York",
        at(UTC, 2024, 6, 1, 12, 0),  # 08:00 in New York
        ["2024-06-01T09:00:00-04:00", "2024-06-02T09:00:00-04:00", "2024-06-03T09:00:00-04:00"],
    ),
    # Daylight saving: Dublin springs forward 01:00 -> 02:00 on 31 March 2024 and falls back
    # 02:00 -> 01:00 on 27 October 2024; New York springs forward 02:00 -> 03:00 on 10 March.
    "spring-forward-skips-missing-time": Case(
        "cron(30 1 * * ? *)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 3, 29, 12, 0),
        ["2024-03-30T01:30:00+00:00", "2024-04-01T01:30:00+01:00", "2024-04-02T01:30:00+01:00"],
    ),
    "spring-forward-new-york": Case(
        "cron(30 2 * * ? *)",
        "America/New_York",
        at(NEW_YORK, 2024, 3, 9, 3, 0),
        ["2024-03-11T02:30:00-04:00", "2024-03-12T02:30:00-04:00"],
        count=2,
    ),
    "spring-forward-hourly": Case(
        "cron(0 * * * ? *)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 3, 31, 0, 30),
        ["2024-03-31T02:00:00+01:00", "2024-03-31T03:00:00+01:00"],
        count=2,
    ),
    "fall-back-runs-once": Case(
        "cron(30 1 * * ? *)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 10, 26, 12, 0),
        ["2024-10-27T01:30:00+01:00", "2024-10-28T01:30:00+00:00"],  # first 01:30 only
        count=2,
    ),
    "fall-back-hourly": Case(
        "cron(0 * * * ? *)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 10, 26, 23, 30),
        [
            "2024-10-27T00:00:00+01:00",
            "2024-10-27T01:00:00+01:00",
            "2024-10-27T02:00:00+00:00",  # two hours of real time after 01:00 IST
            "2024-10-27T03:00:00+00:00",
        ],
        count=4,
    ),
    "after-in-the-repeated-hour": Case(
        "cron(*/20 * * * ? *)",
        "Europe/Dublin",
        datetime(2024, 10, 27, 1, 10, tzinfo=DUBLIN, fold=1),  # 01:10 GMT, the second pass
        ["2024-10-27T02:00:00+00:00", "2024-10-27T02:20:00+00:00"],
        count=2,
    ),
    "rate-6-hours": Case(
        "rate(6 hours)",
        "UTC",
        at(UTC, 2024, 5, 1, 10, 15),
        ["2024-05-01T16:15:00+00:00", "2024-05-01T22:15:00+00:00", "2024-05-02T04:15:00+00:00"],
    ),
    "rate-1-minute": Case(
        "rate(1 minute)",
        "UTC",
        at(UTC, 2024, 5, 1, 10, 15, 30),
        ["2024-05-01T10:16:30+00:00", "2024-05-01T10:17:30+00:00"],
        count=2,
    ),
    "rate-days-are-24-hours-across-dst": Case(
        "rate(1 day)",
        "Europe/Dublin",
        at(DUBLIN, 2024, 3, 30, 12, 0),
        ["2024-03-31T13:00:00+01:00", "2024-04-01T13:00:00+01:00"],
        count=2,
    ),
    "at-future": Case(
        "at(2030-01-15T09:30:00)",
        "Europe/Dublin",
        at(UTC, 2024, 1, 1),
        ["2030-01-15T09:30:00+00:00"],
    ),
    "at-future-summer-time": Case(
        "at(2030-07-15T09:30:00)",
        "Europe/Dublin",
        at(UTC, 2024, 1, 1),
        ["2030-07-15T09:30:00+01:00"],
    ),
    "at-past": Case("at(2020-01-15T09:30:00)", "UTC", at(UTC, 2024, 1, 1), []),
    "at-exactly-now": Case("at(2024-01-01T00:00:00)", "UTC", at(UTC, 2024, 1, 1), []),
    "at-in-spring-gap-moves-forward": Case(
        "at(2024-03-31T01:30:00)",
        "Europe/Dublin",
        at(UTC, 2024, 1, 1),
        ["2024-03-31T02:30:00+01:00"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_next_runs(case: Case) -> None:
    runs = next_runs(case.expression, case.timezone, case.after, case.count)
    assert walls(runs) == case.expected
    assert all(run.tzinfo == ZoneInfo(case.timezone) for run in runs)


def test_naive_after_is_read_in_the_schedule_zone() -> None:
    runs = next_runs("cron(0 9 * * ? *)", "Europe/Dublin", datetime(2024, 6, 1, 8, 0), 1)
    assert walls(runs) == ["2024-06-01T09:00:00+01:00"]


def test_count_zero_and_negative() -> None:
    assert next_runs("cron(* * * * ? *)", "UTC", at(UTC, 2024, 1, 1), 0) == []
    assert next_runs("rate(1 minute)", "UTC", at(UTC, 2024, 1, 1), 0) == []
    with pytest.raises(ValueError, match="count"):
        next_runs("rate(1 minute)", "UTC", at(UTC, 2024, 1, 1), -1)


def test_unknown_timezone_and_bad_expression() -> None:
    with pytest.raises(ValueError, match="IANA time zone"):
        next_runs("rate(1 minute)", "Mars/Olympus", at(UTC, 2024, 1, 1))
    with pytest.raises(InvalidExpression, match="value out of range 0-23"):
        next_runs("cron(0 24 * * ? *)", "UTC", at(UTC, 2024, 1, 1))


def test_far_future_and_impossible_schedules_end_quickly() -> None:
    assert next_runs("cron(0 0 31 2 ? *)", "UTC", at(UTC, 1970, 1, 1), 3) == []
    assert next_runs("cron(* * * * ? *)", "UTC", at(UTC, 2199, 12, 31, 23, 58), 5) == [
        at(UTC, 2199, 12, 31, 23, 59)
    ]


# ------------------------------------------------------------------- properties (hypothesis)

MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
ZONES = ["UTC", "Europe/Dublin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]

Field = tuple[str, frozenset[int]]
DayPredicate = Callable[[date], bool]


def numeric_field(
    lo: int, hi: int, names: list[str] | None = None, *, steps: bool = True
) -> st.SearchStrategy[Field]:
    """A field in `,` `-` `*` `/` syntax and the set of values it means (computed plainly)."""

    def text(value: int) -> str:
        return names[value - lo] if names and value % 2 else str(value)

    value = st.integers(lo, hi)
    single = value.map(lambda v: (text(v), frozenset({v})))
    ascending = st.tuples(value, value).map(sorted)
    span = ascending.map(
        lambda ab: (f"{text(ab[0])}-{text(ab[1])}", frozenset(range(ab[0], ab[1] + 1)))
    )
    step = st.integers(1, max(1, (hi - lo) // 2))
    stepped = st.tuples(value, step).map(
        lambda vs: (f"{text(vs[0])}/{vs[1]}", frozenset(range(vs[0], hi + 1, vs[1])))
    )
    star_step = step.map(lambda s: (f"*/{s}", frozenset(range(lo, hi + 1, s))))
    span_step = st.tuples(ascending, step).map(
        lambda abs_: (
            f"{text(abs_[0][0])}-{text(abs_[0][1])}/{abs_[1]}",
            frozenset(range(abs_[0][0], abs_[0][1] + 1, abs_[1])),
        )
    )
    item = st.one_of(single, span, stepped, star_step, span_step) if steps else single | span
    listed = st.lists(item, min_size=2, max_size=3).map(
        lambda items: (",".join(t for t, _ in items), frozenset().union(*(s for _, s in items)))
    )
    return st.one_of(st.just(("*", frozenset(range(lo, hi + 1)))), item, listed)


def aws_weekday(day: date) -> int:
    return day.isoweekday() % 7 + 1  # 1 = Sunday


def month_length(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def is_weekday(day: date) -> bool:
    return day.weekday() < 5


def nearest_weekday(n: int) -> DayPredicate:
    def matches(day: date) -> bool:
        length = month_length(day)
        if n > length or not is_weekday(day):
            return False
        others = [day.replace(day=d) for d in range(1, length + 1)]
        closest = min((abs(d.day - n), d.day) for d in others if is_weekday(d))
        return day.day == closest[1]

    return matches


def day_fields() -> st.SearchStrategy[tuple[str, str, DayPredicate]]:
    """(day-of-month, day-of-week, predicate): one of them is '?'."""
    by_month_set = numeric_field(1, 31).map(lambda f: (f[0], "?", lambda d, s=f[1]: d.day in s))
    last = st.just(("L", "?", lambda d: d.day == month_length(d)))
    last_weekday = st.just(
        (
            "LW",
            "?",
            lambda d: (
                is_weekday(d)
                and all(
                    not is_weekday(d + timedelta(k)) for k in range(1, month_length(d) - d.day + 1)
                )
            ),
        )
    )
    nearest = st.integers(1, 31).map(lambda n: (f"{n}W", "?", nearest_weekday(n)))
    by_week_set = numeric_field(1, 7, DAY_NAMES, steps=False).map(
        lambda f: ("?", f[0], lambda d, s=f[1]: aws_weekday(d) in s)
    )
    last_of = st.integers(1, 7).map(
        lambda w: ("?", f"{w}L", lambda d: aws_weekday(d) == w and d.day + 7 > month_length(d))
    )
    nth = st.tuples(st.integers(1, 7), st.integers(1, 5)).map(
        lambda wk: (
            "?",
            f"{wk[0]}#{wk[1]}",
            lambda d: aws_weekday(d) == wk[0] and (d.day - 1) // 7 + 1 == wk[1],
        )
    )
    return st.one_of(by_month_set, last, last_weekday, nearest, by_week_set, last_of, nth)


@dataclass(frozen=True)
class RandomCron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    day: DayPredicate

    def matches_wall(self, wall: datetime) -> bool:
        return (
            wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and wall.year in self.years
            and self.day(wall.date())
            and wall.second == 0
            and wall.microsecond == 0
        )


@st.composite
def random_crons(draw: st.DrawFn) -> RandomCron:
    minutes = draw(numeric_field(0, 59))
    hours = draw(numeric_field(0, 23))
    months = draw(numeric_field(1, 12, MONTH_NAMES))
    years = draw(
        st.one_of(
            st.just(("*", frozenset(range(1970, 2200)))),
            st.tuples(st.integers(2018, 2035), st.integers(0, 6)).map(
                lambda ys: (f"{ys[0]}-{ys[0] + ys[1]}", frozenset(range(ys[0], ys[0] + ys[1] + 1)))
            ),
        )
    )
    dom, dow, day = draw(day_fields())
    expression = f"cron({minutes[0]} {hours[0]} {dom} {months[0]} {dow} {years[0]})"
    return RandomCron(expression, minutes[1], hours[1], months[1], years[1], day)


def exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


# Daylight-saving changes (UTC) in the zones above, so `after` often lands near one.
TRANSITIONS = [
    datetime(2024, 3, 31, 1, 0, tzinfo=UTC),  # Dublin forward
    datetime(2024, 10, 27, 1, 0, tzinfo=UTC),  # Dublin back
    datetime(2024, 3, 10, 7, 0, tzinfo=UTC),  # New York forward
    datetime(2024, 11, 3, 6, 0, tzinfo=UTC),  # New York back
    datetime(2024, 4, 6, 15, 0, tzinfo=UTC),  # Lord Howe back half an hour
    datetime(2024, 10, 5, 15, 30, tzinfo=UTC),  # Lord Howe forward half an hour
]
AFTER = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)).map(lambda d: d.replace(tzinfo=UTC)),
    st.tuples(st.sampled_from(TRANSITIONS), st.integers(-180, 180)).map(
        lambda tm: tm[0] + timedelta(minutes=tm[1])
    ),
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(cron=random_crons(), zone_name=st.sampled_from(ZONES), after=AFTER)
def test_random_cron_runs_match_their_fields_in_order(
    cron: RandomCron, zone_name: str, after: datetime
) -> None:
    validate_expression(cron.expression)
    zone = ZoneInfo(zone_name)
    runs = next_runs(cron.expression, zone_name, after, 5)
    assert len(runs) <= 5
    stamps = [run.timestamp() for run in runs]
    assert stamps == sorted(set(stamps)), "strictly increasing"
    for run in runs:
        assert run.tzinfo is zone
        wall = run.replace(tzinfo=None)
        assert cron.matches_wall(wall), f"{run} does not match {cron.expression}"
        assert exists(wall, zone), f"{run} is inside a daylight-saving gap"
        assert run.timestamp() > after.timestamp()


@PROPERTY_SETTINGS
@given(cron=random_crons(), zone_name=st.sampled_from(ZONES), after=AFTER)
def test_random_cron_misses_no_run_before_the_first(
    cron: RandomCron, zone_name: str, after: datetime
) -> None:
    """Brute force by day (then by minute on matching days): nothing matches between `after`
    and the first run. Checks the field-by-field walk against a plain scan."""
    zone = ZoneInfo(zone_name)
    runs = next_runs(cron.expression, zone_name, after, 1)
    if not runs:
        return
    first = runs[0]
    day = after.astimezone(zone).date()
    while day <= first.date():
        if day.month in cron.months and day.year in cron.years and cron.day(day):
            for hour in sorted(cron.hours):
                for minute in sorted(cron.minutes):
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    if not exists(wall, zone):
                        continue
                    stamp = wall.replace(tzinfo=zone).timestamp()
                    assert not after.timestamp() < stamp < first.timestamp(), (
                        f"{cron.expression} in {zone_name}: {wall} comes before {first}"
                    )
        day += timedelta(days=1)


@settings(max_examples=50, deadline=None)
@given(
    value=st.integers(1, 500),
    unit=st.sampled_from(["minute", "hour", "day"]),
    zone_name=st.sampled_from(ZONES),
    after=AFTER,
)
def test_rate_runs_are_fixed_intervals(
    value: int, unit: str, zone_name: str, after: datetime
) -> None:
    expression = f"rate({value} {unit}{'' if value == 1 else 's'})"
    validate_expression(expression)
    runs = next_runs(expression, zone_name, after, 4)
    seconds = value * {"minute": 60, "hour": 3600, "day": 86400}[unit]
    assert [run.timestamp() - after.timestamp() for run in runs] == [
        seconds * n for n in range(1, 5)
    ]
