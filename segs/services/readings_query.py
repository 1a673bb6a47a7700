"""What a meter measured: its latest reading, its history, and its totals per period, day, month.

Every read checks scope first (services.access.visible_meter): a USER reads only their own
meters. Figures are exact: PostgreSQL adds the windows' sums and counts, and each mean is the
summed power over the summed reading count (segs.domain.rollups), never a mean of means.
Timestamps come back in the requested time zone, each with its UTC offset.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from typing import NamedTuple
from zoneinfo import ZoneInfo
from zoneinfo import available_timezones

from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain.rollups import MAX_HISTORY_SPAN
from segs.domain.rollups import EnergyChange
from segs.domain.rollups import WindowTotals
from segs.domain.rollups import add_months
from segs.domain.rollups import compare_energy
from segs.domain.rollups import covering_range
from segs.domain.rollups import day_range
from segs.domain.rollups import month_range
from segs.domain.rollups import months_between
from segs.domain.rollups import next_bucket_start
from segs.domain.rollups import range_problem
from segs.errors import InvalidInputError
from segs.services.access import visible_meter

DEFAULT_HISTORY_SPAN = timedelta(hours=24)
DEFAULT_STATS_SPAN = timedelta(days=7)
MAX_STATS_SPAN = timedelta(days=366)
DEFAULT_DAYS = 30
MAX_DAYS = 1096
DEFAULT_MONTHS = 12
MAX_MONTHS = 36

_TOTALS = (
    "reading_count, power_sum_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, "
    "voltage_count"
)
_SUMMED = (
    "coalesce(sum(reading_count), 0)::int, coalesce(sum(power_sum_kw), 0), min(min_power_kw), "
    "max(max_power_kw), coalesce(sum(energy_kwh_sum), 0), coalesce(sum(voltage_sum), 0), "
    "coalesce(sum(voltage_count), 0)::int"
)
_IN_RANGE = "meter_id = :meter_id AND window_start >= :start AND window_start < :end"

# One row per stored window (1m, 15m), read through the (meter_id, window_start) key. The means
# are the stored ones: the flush rounds sum / count to 6 places, as rollups.mean does.
WINDOW_HISTORY_SQL = {
    size: text(
        "SELECT window_start, reading_count, energy_kwh_sum, avg_power_kw, "  # noqa: S608
        f"min_power_kw, max_power_kw, voltage_avg FROM aggregates_{size} "
        f"WHERE {_IN_RANGE} ORDER BY window_start"
    )
    for size in ("1m", "15m")
}
_WINDOW_SIZES = {"1m": timedelta(minutes=1), "15m": timedelta(minutes=15)}

# 15-minute windows summed per local hour, day or month. date_trunc with a zone keeps the two
# hours of a fall-back night apart and starts Asia/Kolkata's hours at hh:30 UTC.
_LOCAL_BUCKETS_SQL = text(
    f"SELECT date_trunc(:unit, window_start, :zone), {_SUMMED} FROM aggregates_15m "  # noqa: S608
    f"WHERE {_IN_RANGE} GROUP BY 1 ORDER BY 1"
)
_PERIOD_TOTALS_SQL = text(f"SELECT {_SUMMED} FROM aggregates_15m WHERE {_IN_RANGE}")  # noqa: S608

_READING_COLUMNS = (
    "ts, reading_id, power_kw, energy_kwh, voltage, current, frequency, power_factor, "
    "temperature, received_at"
)
_LATEST_SQL = text(
    f"SELECT {_READING_COLUMNS} FROM raw_readings "  # noqa: S608
    "WHERE meter_id = :meter_id ORDER BY ts DESC LIMIT 1"
)
_OWNED_LATEST_SQL = text(
    f"SELECT m.meter_id, m.region, r.* FROM meters m "  # noqa: S608
    f"LEFT JOIN LATERAL (SELECT {_READING_COLUMNS} FROM raw_readings "
    "WHERE meter_id = m.meter_id ORDER BY ts DESC LIMIT 1) r ON true "
    "WHERE m.owner_id = :owner_id ORDER BY m.meter_id LIMIT :limit OFFSET :offset"
)
_OWNED_COUNT_SQL = text("SELECT count(*) FROM meters WHERE owner_id = :owner_id")

_UNITS = {"1h": "hour", "1d": "day"}


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored reading, as the meter sent it."""

    ts: datetime
    reading_id: str
    power_kw: Decimal
    energy_kwh: Decimal | None
    voltage: Decimal | None
    current: Decimal | None
    frequency: Decimal | None
    power_factor: Decimal | None
    temperature: Decimal | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MeterLatest:
    meter_id: str
    region: str
    reading: Reading | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """One history point, day or month: its interval and the totals of the windows inside."""

    start: datetime
    end: datetime
    totals: WindowTotals


class HistoryPoint(NamedTuple):
    """One history bucket, flat: a day of 1-minute points is 1,440 of these per request."""

    start: datetime
    end: datetime
    reading_count: int
    energy_kwh: Decimal
    avg_power_kw: Decimal | None
    min_power_kw: Decimal | None
    max_power_kw: Decimal | None
    voltage_avg: Decimal | None


@dataclass(frozen=True, slots=True)
class History:
    meter_id: str
    resolution: str
    timezone: str
    start: datetime
    end: datetime
    points: list[HistoryPoint]


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    start: datetime
    end: datetime
    totals: WindowTotals


@dataclass(frozen=True, slots=True)
class MeterStats:
    meter_id: str
    start: datetime
    end: datetime
    totals: WindowTotals


@dataclass(frozen=True, slots=True)
class Calendar:
    """Totals per local day or month, labelled YYYY-MM-DD or YYYY-MM."""

    meter_id: str
    timezone: str
    first: str
    last: str
    items: list[CalendarItem]


@dataclass(frozen=True, slots=True)
class CalendarItem:
    label: str
    start: datetime
    end: datetime
    totals: WindowTotals


@dataclass(frozen=True, slots=True)
class Comparison:
    meter_id: str
    period1: PeriodTotals
    period2: PeriodTotals
    change: EnergyChange


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is whatever the host is set to, which PostgreSQL and Python may not agree on.
    return frozenset(available_timezones() - {"localtime"})


def is_time_zone(name: str) -> bool:
    """Is *name* an IANA time zone (such as Europe/Berlin) that days and hours can be cut in?"""
    return name in _zone_names()


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone *name*, or fail with a 422 naming the timezone field."""
    if not is_time_zone(name):
        raise InvalidInputError(
            "unknown time zone", {"query": {"timezone": [f"not an IANA time zone: {name!r}"]}}
        )
    return ZoneInfo(name)


def _invalid(field: str, reason: str) -> InvalidInputError:
    return InvalidInputError("the request is not valid", {"query": {field: [reason]}})


def _check_range(
    start: datetime, end: datetime, max_span: timedelta, end_field: str = "end"
) -> None:
    problem = range_problem(start, end, max_span)
    if problem is not None:
        raise _invalid(end_field, problem)


def _totals(row: Any) -> WindowTotals:
    return WindowTotals(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def _reading(row: Any) -> Reading | None:
    return None if row is None or row[0] is None else Reading(*row)


def owned_meters_latest(
    session: Session, account_id: uuid.UUID, *, page: int, page_size: int
) -> tuple[list[MeterLatest], int]:
    """Return the latest reading of each meter assigned to the account (a page, and the total)."""
    total = session.execute(_OWNED_COUNT_SQL, {"owner_id": account_id}).scalar_one()
    rows = session.execute(
        _OWNED_LATEST_SQL,
        {"owner_id": account_id, "limit": page_size, "offset": (page - 1) * page_size},
    ).all()
    return [MeterLatest(row[0], row[1], _reading(row[2:])) for row in rows], total


def meter_latest(session: Session, account_id: uuid.UUID, role: str, meter_id: str) -> MeterLatest:
    """Return the meter's newest stored reading (None when none is kept)."""
    meter = visible_meter(session, account_id, role, meter_id)
    row = session.execute(_LATEST_SQL, {"meter_id": meter_id}).first()
    return MeterLatest(meter.meter_id, meter.region, _reading(row))


def meter_history(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    resolution: str,
    start: datetime | None,
    end: datetime | None,
    zone_name: str,
    now: datetime,
) -> History:
    """Return the meter's history at *resolution* over [start, end), widened to whole buckets.

    1m and 15m points are the stored windows; 1h and 1d points roll up 15-minute windows per
    local hour or day. Buckets without readings are left out. The range defaults to the 24
    hours before *end* (default: now).
    """
    zone = load_zone(zone_name)
    end = end or now
    start = start or end - DEFAULT_HISTORY_SPAN
    _check_range(start, end, MAX_HISTORY_SPAN[resolution])
    visible_meter(session, account_id, role, meter_id)
    first, last = covering_range(start, end, resolution, zone)
    params = {"meter_id": meter_id, "start": first, "end": last}
    if resolution in WINDOW_HISTORY_SQL:
        rows = session.execute(WINDOW_HISTORY_SQL[resolution], params).all()
        size = _WINDOW_SIZES[resolution]
        points = [
            HistoryPoint(
                row[0].astimezone(zone),
                (row[0] + size).astimezone(zone),
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
            )
            for row in rows
        ]
    else:
        points = [
            HistoryPoint(
                bucket.start,
                bucket.end,
                bucket.totals.reading_count,
                bucket.totals.energy_kwh,
                bucket.totals.avg_power_kw,
                bucket.totals.min_power_kw,
                bucket.totals.max_power_kw,
                bucket.totals.voltage_avg,
            )
            for bucket in _local_buckets(session, params, _UNITS[resolution], resolution, zone)
        ]
    return History(
        meter_id, resolution, zone.key, first.astimezone(zone), last.astimezone(zone), points
    )


def _local_buckets(
    session: Session, params: dict[str, Any], unit: str, resolution: str, zone: ZoneInfo
) -> list[Bucket]:
    rows = session.execute(_LOCAL_BUCKETS_SQL, {**params, "unit": unit, "zone": zone.key}).all()
    return [
        Bucket(
            row[0].astimezone(zone),
            next_bucket_start(row[0], resolution, zone).astimezone(zone),
            _totals(row[1:]),
        )
        for row in rows
    ]


def _period_totals(
    session: Session, meter_id: str, start: datetime, end: datetime, zone: ZoneInfo
) -> PeriodTotals:
    # Whole 15-minute windows: the stored ones that start inside the widened range.
    first, last = covering_range(start, end, "15m", zone)
    row = session.execute(
        _PERIOD_TOTALS_SQL, {"meter_id": meter_id, "start": first, "end": last}
    ).one()
    return PeriodTotals(first.astimezone(zone), last.astimezone(zone), _totals(row))


def meter_stats(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    zone_name: str,
    now: datetime,
) -> MeterStats:
    """Return the meter's totals over [start, end) (default: the 7 days before now)."""
    zone = load_zone(zone_name)
    end = end or now
    start = start or end - DEFAULT_STATS_SPAN
    _check_range(start, end, MAX_STATS_SPAN)
    visible_meter(session, account_id, role, meter_id)
    period = _period_totals(session, meter_id, start, end, zone)
    return MeterStats(meter_id, period.start, period.end, period.totals)


def meter_daily(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    first: date | None,
    last: date | None,
    zone_name: str,
    now: datetime,
) -> Calendar:
    """Return the meter's totals per local day, *first* to *last* inclusive (default: 30 days)."""
    zone = load_zone(zone_name)
    last = last or now.astimezone(zone).date()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise _invalid("endDate", "must not be before startDate")
    if (last - first).days + 1 > MAX_DAYS:
        raise _invalid("endDate", f"the range may cover at most {MAX_DAYS} days")
    visible_meter(session, account_id, role, meter_id)
    start, end = day_range(first, last, zone)
    items = [
        CalendarItem(bucket.start.date().isoformat(), bucket.start, bucket.end, bucket.totals)
        for bucket in _local_buckets(
            session, {"meter_id": meter_id, "start": start, "end": end}, "day", "1d", zone
        )
    ]
    return Calendar(meter_id, zone.key, first.isoformat(), last.isoformat(), items)


def meter_monthly(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    first: date | None,
    last: date | None,
    zone_name: str,
    now: datetime,
) -> Calendar:
    """Return the meter's totals per local month, *first* to *last* inclusive (default: 12)."""
    zone = load_zone(zone_name)
    last = (last or now.astimezone(zone).date()).replace(day=1)
    first = (first or add_months(last, 1 - DEFAULT_MONTHS)).replace(day=1)
    if first > last:
        raise _invalid("endMonth", "must not be before startMonth")
    if months_between(first, last) > MAX_MONTHS:
        raise _invalid("endMonth", f"the range may cover at most {MAX_MONTHS} months")
    visible_meter(session, account_id, role, meter_id)
    start, end = month_range(first, last, zone)
    rows = session.execute(
        _LOCAL_BUCKETS_SQL,
        {"meter_id": meter_id, "start": start, "end": end, "unit": "month", "zone": zone.key},
    ).all()
    items = []
    for row in rows:
        local_start = row[0].astimezone(zone)
        month = local_start.date()
        month_end = month_range(month, month, zone)[1].astimezone(zone)
        items.append(
            CalendarItem(month.strftime("%Y-%m"), local_start, month_end, _totals(row[1:]))
        )
    return Calendar(meter_id, zone.key, first.strftime("%Y-%m"), last.strftime("%Y-%m"), items)


def compare_periods(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    period1: tuple[datetime, datetime],
    period2: tuple[datetime, datetime],
    zone_name: str,
) -> Comparison:
    """Return the meter's totals over two periods and how the second's energy differs."""
    zone = load_zone(zone_name)
    _check_range(*period1, MAX_STATS_SPAN, "period1End")
    _check_range(*period2, MAX_STATS_SPAN, "period2End")
    visible_meter(session, account_id, role, meter_id)
    first = _period_totals(session, meter_id, *period1, zone)
    second = _period_totals(session, meter_id, *period2, zone)
    return Comparison(
        meter_id,
        first,
        second,
        compare_energy(first.totals.energy_kwh, second.totals.energy_kwh),
    )
