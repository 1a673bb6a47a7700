"""What a meter read covers: its time zone and its range, with their defaults and limits.

A refused argument is named by what it means (``zone``, ``range_start``, ``range_end``,
``period1_end``, ``period2_end``), not by the API's name for it: the web layer answers with
its own field names (segs.web.meter_data.routes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

from segs.domain.accounts import is_timezone
from segs.domain.rollups import MAX_HISTORY_SPAN
from segs.domain.rollups import add_months
from segs.domain.rollups import day_range
from segs.domain.rollups import month_range
from segs.domain.rollups import months_between
from segs.domain.rollups import range_problem
from segs.errors import InvalidInputError

DEFAULT_HISTORY_SPAN = timedelta(hours=24)
DEFAULT_STATS_SPAN = timedelta(days=7)
MAX_STATS_SPAN = timedelta(days=366)
DEFAULT_DAYS = 30
MAX_DAYS = 1096
DEFAULT_MONTHS = 12
MAX_MONTHS = 36

ZONE = "zone"
RANGE_START = "range_start"
RANGE_END = "range_end"
PERIOD1_END = "period1_end"
PERIOD2_END = "period2_end"


class QueryArgumentError(InvalidInputError):
    """A query argument that breaks a rule, named by its meaning (*argument*, e.g. range_end).

    When the argument must not come before another one, *not_before* names that other one and
    the reason is written by whoever knows both names.
    """

    def __init__(
        self, message: str, argument: str, reason: str, *, not_before: str | None = None
    ) -> None:
        super().__init__(message, {"query": {argument: [reason]}})
        self.argument = argument
        self.not_before = not_before


def _invalid(argument: str, reason: str) -> QueryArgumentError:
    return QueryArgumentError("the request is not valid", argument, reason)


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone *name*, or fail naming the zone argument."""
    if not is_timezone(name):
        raise QueryArgumentError("unknown time zone", ZONE, f"not an IANA time zone: {name!r}")
    return ZoneInfo(name)


def check_range(
    start: datetime, end: datetime, max_span: timedelta, end_argument: str = RANGE_END
) -> None:
    """Fail naming *end_argument* unless [start, end) is a range of at most *max_span*."""
    problem = range_problem(start, end, max_span)
    if problem is not None:
        raise _invalid(end_argument, problem)


def history_range(
    resolution: str, start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The range a history covers: by default the 24 hours before *end* (default: now)."""
    end = end or now
    start = start or end - DEFAULT_HISTORY_SPAN
    check_range(start, end, MAX_HISTORY_SPAN[resolution])
    return start, end


def stats_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The range of a period's totals: by default the 7 days before *end* (default: now)."""
    end = end or now
    start = start or end - DEFAULT_STATS_SPAN
    check_range(start, end, MAX_STATS_SPAN)
    return start, end


@dataclass(frozen=True, slots=True)
class CalendarRange:
    """Local days or months, *first* to *last* inclusive, and the UTC instants they span."""

    first: date
    last: date
    start: datetime
    end: datetime


def _check_order(first: date, last: date) -> None:
    if first > last:
        raise QueryArgumentError(
            "the request is not valid",
            RANGE_END,
            f"must not be before {RANGE_START}",
            not_before=RANGE_START,
        )


def day_calendar(
    first: date | None, last: date | None, zone: ZoneInfo, now: datetime
) -> CalendarRange:
    """Local days *first* to *last* (default: the 30 days up to today), at most MAX_DAYS."""
    last = last or now.astimezone(zone).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    _check_order(first, last)
    if (last - first).days + 1 > MAX_DAYS:
        raise _invalid(RANGE_END, f"the range may cover at most {MAX_DAYS} days")
    return CalendarRange(first, last, *day_range(first, last, zone))


def month_calendar(
    first: date | None, last: date | None, zone: ZoneInfo, now: datetime
) -> CalendarRange:
    """Local months of *first* to *last* (default: the 12 up to this one), at most MAX_MONTHS."""
    last = (last or now.astimezone(zone).date()).replace(day=1)
    first = (first or add_months(last, 1 - DEFAULT_MONTHS)).replace(day=1)
    _check_order(first, last)
    if months_between(first, last) > MAX_MONTHS:
        raise _invalid(RANGE_END, f"the range may cover at most {MAX_MONTHS} months")
    return CalendarRange(first, last, *month_range(first, last, zone))
