"""What a meter measured: its latest reading, its history, and its totals per period, day, month.

Every read checks scope (segs.services.accounts.readable_meter): a USER reads only the meters
they own or owned, and only for the time they owned them. Ranges, zones and their limits are
checked in segs.services.grid.query_ranges; the SQL is in segs.services.grid.readings_sql.
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
from decimal import Decimal
from typing import Any
from typing import NamedTuple
from typing import TypedDict
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from segs.domain.rollups import EnergyChange
from segs.domain.rollups import WindowTotals
from segs.domain.rollups import compare_energy
from segs.domain.rollups import covering_range
from segs.services.accounts import readable_meter
from segs.services.grid.query_ranges import MAX_STATS_SPAN
from segs.services.grid.query_ranges import PERIOD1_END
from segs.services.grid.query_ranges import PERIOD2_END
from segs.services.grid.query_ranges import check_range
from segs.services.grid.query_ranges import day_calendar
from segs.services.grid.query_ranges import history_range
from segs.services.grid.query_ranges import load_zone
from segs.services.grid.query_ranges import month_calendar
from segs.services.grid.query_ranges import stats_range
from segs.services.grid.readings_sql import LATEST_SQL
from segs.services.grid.readings_sql import LOCAL_UNITS
from segs.services.grid.readings_sql import OWNED_COUNT_SQL
from segs.services.grid.readings_sql import OWNED_LATEST_SQL
from segs.services.grid.readings_sql import PERIOD_TOTALS_SQL
from segs.services.grid.readings_sql import POINT_JSON
from segs.services.grid.readings_sql import SET_ZONE
from segs.services.grid.readings_sql import history_json_sql
from segs.services.grid.readings_sql import history_sql


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
        if self.resolution in LOCAL_UNITS:
            unit, step = LOCAL_UNITS[self.resolution]
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
    total = session.execute(OWNED_COUNT_SQL, {"owner_id": account_id}).scalar_one()
    rows = session.execute(
        OWNED_LATEST_SQL,
        {"owner_id": account_id, "limit": page_size, "offset": (page - 1) * page_size},
    ).all()
    return [MeterLatest(row[0], row[1], _reading(row[2:])) for row in rows], total


def meter_latest(session: Session, account_id: uuid.UUID, role: str, meter_id: str) -> MeterLatest:
    """Return the meter's newest stored reading (None when none is kept)."""
    meter, owned = readable_meter(session, account_id, role, meter_id)
    row = session.execute(LATEST_SQL, {"meter_id": meter_id, "owned": owned}).first()
    return MeterLatest(meter.meter_id, meter.region, _reading(row))


class HistoryQuery(TypedDict):
    """What a history read asks for: the bucket size, the range (defaults below) and the zone."""

    resolution: str
    start: datetime | None
    end: datetime | None
    zone_name: str
    now: datetime


def _history_range(
    session: Session, account_id: uuid.UUID, role: str, meter_id: str, query: HistoryQuery
) -> HistoryRange:
    zone = load_zone(query["zone_name"])
    resolution = query["resolution"]
    start, end = history_range(resolution, query["start"], query["end"], query["now"])
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
    session: Session, account_id: uuid.UUID, role: str, meter_id: str, **query: Unpack[HistoryQuery]
) -> History:
    """Return the meter's history at *resolution* over [start, end), widened to whole buckets.

    1m and 15m buckets are the stored windows; 1h and 1d buckets roll up 15-minute windows
    per local hour or day. Empty buckets are left out. The range defaults to the 24 hours
    before *end* (default: now).
    """
    covered = _history_range(session, account_id, role, meter_id, query)
    return History(covered, _buckets(session, covered.resolution, covered.params, covered.zone))


def meter_history_json(
    session: Session, account_id: uuid.UUID, role: str, meter_id: str, **query: Unpack[HistoryQuery]
) -> HistoryJson:
    """Return what meter_history returns, with the buckets written as JSON by PostgreSQL."""
    covered = _history_range(session, account_id, role, meter_id, query)
    session.execute(SET_ZONE, {"zone": covered.zone.key})  # for this transaction only
    sql = text(history_json_sql(covered.resolution))
    points = session.execute(sql, {**covered.params, "point": POINT_JSON}).scalar_one()
    return HistoryJson(covered, points)


def _period_totals(
    session: Session, meter_id: str, owned: str, start: datetime, end: datetime, zone: ZoneInfo
) -> Bucket:
    # Whole 15-minute windows: the stored ones that start inside the widened range.
    first, last = covering_range(start, end, "15m", zone)
    row = session.execute(
        PERIOD_TOTALS_SQL, {"meter_id": meter_id, "start": first, "end": last, "owned": owned}
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
    start, end = stats_range(start, end, now)
    _, owned = readable_meter(session, account_id, role, meter_id)
    return MeterStats(meter_id, _period_totals(session, meter_id, owned, start, end, zone))


# The local days or months a calendar covers, and how it names its first and last one.
_CALENDARS = {"1d": (day_calendar, "%Y-%m-%d"), "month": (month_calendar, "%Y-%m")}


def meter_calendar(
    session: Session,
    account_id: uuid.UUID,
    role: str,
    meter_id: str,
    *,
    kind: str,
    first: date | None,
    last: date | None,
    zone_name: str,
    now: datetime,
) -> Calendar:
    """Return the meter's totals per local day (*kind* 1d; default: the last 30 days) or per
    local month (*kind* month; default: the last 12), *first* to *last* inclusive."""
    zone = load_zone(zone_name)
    calendar, label = _CALENDARS[kind]
    covered = calendar(first, last, zone, now)
    _, owned = readable_meter(session, account_id, role, meter_id)
    unit, step = LOCAL_UNITS[kind]
    params = {
        "meter_id": meter_id,
        "owned": owned,
        "start": covered.start,
        "end": covered.end,
        "unit": unit,
        "step": step,
        "zone": zone.key,
    }
    return Calendar(
        meter_id,
        zone.key,
        covered.first.strftime(label),
        covered.last.strftime(label),
        _buckets(session, kind, params, zone),
    )


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
    check_range(*period1, MAX_STATS_SPAN, PERIOD1_END)
    check_range(*period2, MAX_STATS_SPAN, PERIOD2_END)
    _, owned = readable_meter(session, account_id, role, meter_id)
    first = _period_totals(session, meter_id, owned, *period1, zone)
    second = _period_totals(session, meter_id, owned, *period2, zone)
    return Comparison(meter_id, first, second, compare_energy(first.energy_kwh, second.energy_kwh))
