"""What a meter measured: its latest reading, its history, and its totals per period, day, month.

Every read checks scope (services.access.readable_meter): a USER reads only the meters they own
or owned, and only for the time they owned them.
Figures are exact: PostgreSQL adds the windows' sums and counts, and each mean is the summed
power over the summed reading count, rounded half away from zero to 6 places (the rule of
segs.domain.rollups.mean and of the flush), never a mean of means. Timestamps come back in the
requested time zone, each with its UTC offset.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
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
from segs.domain.rollups import range_problem
from segs.errors import InvalidInputError
from segs.services.accounts import readable_meter

DEFAULT_HISTORY_SPAN = timedelta(hours=24)
DEFAULT_STATS_SPAN = timedelta(days=7)
MAX_STATS_SPAN = timedelta(days=366)
DEFAULT_DAYS = 30
MAX_DAYS = 1096
DEFAULT_MONTHS = 12
MAX_MONTHS = 36

_SUMMED = (
    "coalesce(sum(reading_count), 0)::int, coalesce(sum(power_sum_kw), 0), min(min_power_kw), "
    "max(max_power_kw), coalesce(sum(energy_kwh_sum), 0), coalesce(sum(voltage_sum), 0), "
    "coalesce(sum(voltage_count), 0)::int"
)
# :owned is the time the caller may read (segs.services.accounts.access.readable_meter).
_IN_RANGE = (
    "meter_id = :meter_id AND window_start >= :start AND window_start < :end "
    "AND CAST(:owned AS tstzmultirange) @> window_start"
)

# A bucket row has the fields of Bucket: bucket_start, bucket_end, reading_count, energy_kwh,
# avg_power_kw, min_power_kw, max_power_kw, voltage_avg. The stored windows (1m, 15m) are read
# through their (meter_id, window_start) key, with the means the flush stored: round(sum / count,
# 6).
_WINDOW_BUCKETS = {
    size: (
        "SELECT window_start AS bucket_start, "  # noqa: S608 - fixed names, no input
        f"window_start + interval '{length}' AS bucket_end, reading_count, "
        "energy_kwh_sum AS energy_kwh, avg_power_kw, min_power_kw, max_power_kw, voltage_avg "
        f"FROM aggregates_{size} WHERE {_IN_RANGE}"
    )
    for size, length in (("1m", "1 minute"), ("15m", "15 minutes"))
}
# Local hours, days and months sum the 15-minute windows. date_trunc with a zone keeps the two
# hours of a fall-back night apart and starts Asia/Kolkata's hours at hh:30 UTC; a bucket ends
# where the bucket after it starts (a step into the next bucket, truncated again). The means are
# rounded like the flush's and segs.domain.rollups.mean: half away from zero, 6 places.
_LOCAL_BUCKETS = (
    "SELECT bucket_start, "  # noqa: S608 - fixed names, no input
    "date_trunc(:unit, bucket_start + :step, :zone) AS bucket_end, "
    "reading_count, energy_kwh, round(power_sum_kw / reading_count, 6) AS avg_power_kw, "
    "min_power_kw, max_power_kw, "
    "round(voltage_sum / nullif(voltage_count, 0), 6) AS voltage_avg "
    "FROM (SELECT date_trunc(:unit, window_start, :zone) AS bucket_start, "
    "sum(reading_count) AS reading_count, sum(power_sum_kw) AS power_sum_kw, "
    "min(min_power_kw) AS min_power_kw, max(max_power_kw) AS max_power_kw, "
    "sum(energy_kwh_sum) AS energy_kwh, sum(voltage_sum) AS voltage_sum, "
    "sum(voltage_count) AS voltage_count "
    f"FROM aggregates_15m WHERE {_IN_RANGE} GROUP BY 1) AS b"
)
# unit and a step that lands inside the next bucket, for the local resolutions.
_LOCAL_UNITS = {
    "1h": ("hour", timedelta(hours=1)),
    "1d": ("day", timedelta(hours=25)),
    "month": ("month", timedelta(days=32)),
}
# The buckets as one JSON array's items, written by PostgreSQL. A day of 1-minute points is
# 1,440 objects; building them in Python (Decimal and datetime objects, then JSON) took about
# three times as long. to_json prints an instant in the session's TimeZone with its offset,
# exactly as datetime.isoformat() does; numbers print with their stored digits.
POINT_JSON = (
    '{"windowStart":%s,"windowEnd":%s,"readingCount":%s,"energyKwh":%s,"avgPowerKw":%s,'
    '"minPowerKw":%s,"maxPowerKw":%s,"voltageAvg":%s}'
)
_POINTS_JSON = (
    "SELECT coalesce(string_agg(format(:point, to_json(bucket_start), to_json(bucket_end), "
    "reading_count, energy_kwh, avg_power_kw, min_power_kw, max_power_kw, "
    "coalesce(voltage_avg::text, 'null')), ',' ORDER BY bucket_start), '') FROM ({rows}) AS p"
)
_SET_ZONE = text("SELECT set_config('TimeZone', :zone, true)")
_PERIOD_TOTALS_SQL = text(f"SELECT {_SUMMED} FROM aggregates_15m WHERE {_IN_RANGE}")  # noqa: S608


def _bucket_rows(kind: str) -> str:
    return _WINDOW_BUCKETS[kind] if kind in _WINDOW_BUCKETS else _LOCAL_BUCKETS


def history_sql(kind: str) -> str:
    """The query for the bucket rows of *kind* (1m, 15m, 1h, 1d or month), oldest first."""
    return f"{_bucket_rows(kind)} ORDER BY bucket_start"


def history_json_sql(kind: str) -> str:
    """The query for the same buckets as JSON array items (the :point parameter is POINT_JSON)."""
    return _POINTS_JSON.format(rows=_bucket_rows(kind))


_READING_COLUMNS = (
    "ts, reading_id, power_kw, energy_kwh, voltage, current, frequency, power_factor, "
    "temperature, received_at"
)
_LATEST_SQL = text(
    f"SELECT {_READING_COLUMNS} FROM raw_readings "  # noqa: S608
    "WHERE meter_id = :meter_id AND CAST(:owned AS tstzmultirange) @> ts "
    "ORDER BY ts DESC LIMIT 1"
)
_OWNED_LATEST_SQL = text(
    f"SELECT m.meter_id, m.region, r.* FROM meters m "  # noqa: S608
    f"LEFT JOIN LATERAL (SELECT {_READING_COLUMNS} FROM raw_readings "
    "WHERE meter_id = m.meter_id AND ts >= (SELECT max(o.assigned_from) FROM meter_assignments o "
    "WHERE o.meter_id = m.meter_id AND o.user_id = :owner_id) "
    "ORDER BY ts DESC LIMIT 1) r ON true "
    "WHERE m.owner_id = :owner_id ORDER BY m.meter_id LIMIT :limit OFFSET :offset"
)
_OWNED_COUNT_SQL = text("SELECT count(*) FROM meters WHERE owner_id = :owner_id")


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


class Bucket(NamedTuple):
    """A history point, a day, a month or a period: its interval and figures, in local time."""

    start: datetime
    end: datetime
    reading_count: int
    energy_kwh: Decimal
    avg_power_kw: Decimal | None
    min_power_kw: Decimal | None
    max_power_kw: Decimal | None
    voltage_avg: Decimal | None


@dataclass(frozen=True, slots=True)
class HistoryRange:
    """What a history request covers: its buckets, its zone, its range widened to them."""

    meter_id: str
    resolution: str
    zone: ZoneInfo
    start: datetime
    end: datetime
    owned: str

    @property
    def timezone(self) -> str:
        return self.zone.key

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "meter_id": self.meter_id,
            "start": self.start,
            "end": self.end,
            "owned": self.owned,
        }
        if self.resolution in _LOCAL_UNITS:
            unit, step = _LOCAL_UNITS[self.resolution]
            params.update(unit=unit, step=step, zone=self.zone.key)
        return params


@dataclass(frozen=True, slots=True)
class History:
    """The history with its points as Bucket rows (for the CSV export)."""

    range: HistoryRange
    points: list[Bucket]


@dataclass(frozen=True, slots=True)
class HistoryJson:
    """The history with its points already written as JSON array items, comma-separated."""

    range: HistoryRange
    points_json: str


@dataclass(frozen=True, slots=True)
class MeterStats:
    meter_id: str
    period: Bucket


@dataclass(frozen=True, slots=True)
class Calendar:
    """Totals per local day or per local month, first to last inclusive (YYYY-MM-DD, YYYY-MM)."""

    meter_id: str
    timezone: str
    first: str
    last: str
    items: list[Bucket]


@dataclass(frozen=True, slots=True)
class Comparison:
    meter_id: str
    period1: Bucket
    period2: Bucket
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


def _reading(row: Any) -> Reading | None:
    if row is None or row[0] is None:
        return None
    # In UTC whatever the server's TimeZone: a reading belongs to no local day here.
    ts, reading_id, power, energy, voltage, current, frequency, factor, temperature, received = row
    return Reading(
        ts.astimezone(UTC),
        reading_id,
        power,
        energy,
        voltage,
        current,
        frequency,
        factor,
        temperature,
        received.astimezone(UTC),
    )


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
    meter, owned = readable_meter(session, account_id, role, meter_id)
    row = session.execute(_LATEST_SQL, {"meter_id": meter_id, "owned": owned}).first()
    return MeterLatest(meter.meter_id, meter.region, _reading(row))


def _history_range(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    resolution: str,
    start: datetime | None,
    end: datetime | None,
    zone_name: str,
    now: datetime,
) -> HistoryRange:
    zone = load_zone(zone_name)
    end = end or now
    start = start or end - DEFAULT_HISTORY_SPAN
    _check_range(start, end, MAX_HISTORY_SPAN[resolution])
    _, owned = readable_meter(session, account_id, role, meter_id)
    first, last = covering_range(start, end, resolution, zone)
    return HistoryRange(
        meter_id, resolution, zone, first.astimezone(zone), last.astimezone(zone), owned
    )


def _buckets(session: Session, kind: str, params: dict[str, Any], zone: ZoneInfo) -> list[Bucket]:
    rows = session.execute(text(history_sql(kind)), params).all()
    return [
        Bucket(
            row[0].astimezone(zone),
            row[1].astimezone(zone),
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
        )
        for row in rows
    ]


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

    1m and 15m buckets are the stored windows; 1h and 1d buckets roll up 15-minute windows
    per local hour or day. Empty buckets are left out. The range defaults to the 24 hours
    before *end* (default: now).
    """
    covered = _history_range(
        session, account_id, role, meter_id, resolution, start, end, zone_name, now
    )
    return History(covered, _buckets(session, resolution, covered.params, covered.zone))


def meter_history_json(
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
) -> HistoryJson:
    """Return what meter_history returns, with the buckets written as JSON by PostgreSQL."""
    covered = _history_range(
        session, account_id, role, meter_id, resolution, start, end, zone_name, now
    )
    session.execute(_SET_ZONE, {"zone": covered.zone.key})  # for this transaction only
    query = text(history_json_sql(resolution))
    points = session.execute(query, {**covered.params, "point": POINT_JSON}).scalar_one()
    return HistoryJson(covered, points)


def _period_totals(
    session: Session, meter_id: str, owned: str, start: datetime, end: datetime, zone: ZoneInfo
) -> Bucket:
    # Whole 15-minute windows: the stored ones that start inside the widened range.
    first, last = covering_range(start, end, "15m", zone)
    row = session.execute(
        _PERIOD_TOTALS_SQL, {"meter_id": meter_id, "start": first, "end": last, "owned": owned}
    ).one()
    totals = WindowTotals(row[0], row[1], row[2], row[3], row[4], row[5], row[6])
    return Bucket(
        first.astimezone(zone),
        last.astimezone(zone),
        totals.reading_count,
        totals.energy_kwh,
        totals.avg_power_kw,
        totals.min_power_kw,
        totals.max_power_kw,
        totals.voltage_avg,
    )


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
    _, owned = readable_meter(session, account_id, role, meter_id)
    return MeterStats(meter_id, _period_totals(session, meter_id, owned, start, end, zone))


def _calendar_params(
    meter_id: str, owned: str, start: datetime, end: datetime, kind: str, zone: ZoneInfo
) -> dict[str, Any]:
    unit, step = _LOCAL_UNITS[kind]
    return {
        "meter_id": meter_id,
        "owned": owned,
        "start": start,
        "end": end,
        "unit": unit,
        "step": step,
        "zone": zone.key,
    }


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
    _, owned = readable_meter(session, account_id, role, meter_id)
    start, end = day_range(first, last, zone)
    days = _buckets(session, "1d", _calendar_params(meter_id, owned, start, end, "1d", zone), zone)
    return Calendar(meter_id, zone.key, first.isoformat(), last.isoformat(), days)


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
    _, owned = readable_meter(session, account_id, role, meter_id)
    start, end = month_range(first, last, zone)
    months = _buckets(
        session, "month", _calendar_params(meter_id, owned, start, end, "month", zone), zone
    )
    return Calendar(meter_id, zone.key, first.strftime("%Y-%m"), last.strftime("%Y-%m"), months)


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
    _, owned = readable_meter(session, account_id, role, meter_id)
    first = _period_totals(session, meter_id, owned, *period1, zone)
    second = _period_totals(session, meter_id, owned, *period2, zone)
    return Comparison(meter_id, first, second, compare_energy(first.energy_kwh, second.energy_kwh))
