"""What a region consumed and carries: its totals, its top consumers, its current load.

Regional figures come from the regional window rows (each the sum over the region's meters);
per-meter figures (active meters, rankings) from the meters' 15-minute windows. Times are given
in the region's own time zone, with their UTC offset. A refused range is named by its meaning
(query_ranges.RANGE_END); the web layer answers with its own name for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain.rollups import covering_range
from segs.domain.rollups import mean
from segs.domain.rollups import range_problem
from segs.errors import NotFoundError
from segs.models import Region
from segs.services.grid.query_ranges import RANGE_END
from segs.services.grid.query_ranges import QueryArgumentError

DEFAULT_STATS_SPAN = timedelta(days=7)
DEFAULT_TOP_SPAN = timedelta(days=30)
# Per-meter sums scan every 15-minute row of the region's meters in the range.
MAX_REGION_SPAN = timedelta(days=31)
ONE_MINUTE = timedelta(minutes=1)

_IN_RANGE = "region = :region AND window_start >= :start AND window_start < :end"
_REGION_TOTALS_SQL = text(
    "SELECT coalesce(sum(energy_kwh_sum), 0) FROM regional_aggregates_15m "  # noqa: S608
    f"WHERE {_IN_RANGE}"
)
_PEAK_SQL = text(
    "SELECT window_start, total_power_kw, load_percentage FROM regional_aggregates_15m "  # noqa: S608
    f"WHERE {_IN_RANGE} ORDER BY total_power_kw DESC, window_start LIMIT 1"
)
_ACTIVE_METERS_SQL = text(
    f"SELECT count(DISTINCT meter_id) FROM aggregates_15m WHERE {_IN_RANGE}"  # noqa: S608
)
_TOP_SQL = text(
    "SELECT meter_id, sum(energy_kwh_sum) AS energy, sum(power_sum_kw), "  # noqa: S608
    f"sum(reading_count)::int FROM aggregates_15m WHERE {_IN_RANGE} "
    "GROUP BY meter_id ORDER BY energy DESC, meter_id LIMIT :limit"
)
# The newest window that has ended: the open one (still filling) is not a load figure.
_LOAD_SQL = text(
    "SELECT window_start, total_power_kw, capacity_kw, load_percentage, meter_count, "
    "reading_count FROM regional_aggregates_1m "
    "WHERE region = :region AND window_start <= :latest_start "
    "ORDER BY window_start DESC LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class RegionStats:
    region: str
    start: datetime
    end: datetime
    energy_kwh: Decimal
    active_meters: int
    avg_energy_per_meter_kwh: Decimal | None
    peak_load_kw: Decimal | None
    peak_load_percentage: Decimal | None
    peak_window_start: datetime | None


@dataclass(frozen=True, slots=True)
class Consumer:
    rank: int
    meter_id: str
    energy_kwh: Decimal
    avg_power_kw: Decimal | None
    reading_count: int


@dataclass(frozen=True, slots=True)
class TopConsumers:
    region: str
    start: datetime
    end: datetime
    limit: int
    consumers: list[Consumer]


@dataclass(frozen=True, slots=True)
class RegionLoad:
    """The load of the newest complete 1-minute window (all None before the first one)."""

    region: str
    capacity_kw: Decimal
    window_start: datetime | None
    window_end: datetime | None
    total_power_kw: Decimal | None
    load_percentage: Decimal | None
    meter_count: int | None
    reading_count: int | None


def list_regions(session: Session, *, page: int, page_size: int) -> tuple[list[Region], int]:
    """Return a page of the regions, by name, and how many there are."""
    total = session.execute(select(func.count()).select_from(Region)).scalar_one()
    regions = session.scalars(
        select(Region).order_by(Region.name).limit(page_size).offset((page - 1) * page_size)
    )
    return list(regions), total


def get_region(session: Session, name: str) -> Region:
    """One region by name: its time zone and capacity."""
    region = session.get(Region, name)
    if region is None:
        raise NotFoundError(f"region {name} not found")
    return region


def _range(
    start: datetime | None, end: datetime | None, default: timedelta, now: datetime
) -> tuple[datetime, datetime]:
    end = end or now
    start = start or end - default
    problem = range_problem(start, end, MAX_REGION_SPAN)
    if problem is not None:
        raise QueryArgumentError("the request is not valid", RANGE_END, problem)
    # Whole 15-minute windows, aligned to UTC.
    return covering_range(start, end, "15m", UTC)


def region_stats(
    session: Session, name: str, *, start: datetime | None, end: datetime | None, now: datetime
) -> RegionStats:
    """Return the region's energy, active meters, energy per meter and peak 15-minute load."""
    first, last = _range(start, end, DEFAULT_STATS_SPAN, now)
    zone = ZoneInfo(get_region(session, name).timezone)
    params = {"region": name, "start": first, "end": last}
    energy = session.execute(_REGION_TOTALS_SQL, params).scalar_one()
    active = session.execute(_ACTIVE_METERS_SQL, params).scalar_one()
    peak = session.execute(_PEAK_SQL, params).first()
    return RegionStats(
        region=name,
        start=first.astimezone(zone),
        end=last.astimezone(zone),
        energy_kwh=energy,
        active_meters=active,
        avg_energy_per_meter_kwh=mean(energy, active),
        peak_load_kw=None if peak is None else peak[1],
        peak_load_percentage=None if peak is None else peak[2],
        peak_window_start=None if peak is None else peak[0].astimezone(zone),
    )


def top_consumers(
    session: Session,
    name: str,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    now: datetime,
) -> TopConsumers:
    """Return the region's meters that used the most energy, most first (ties by meter id)."""
    first, last = _range(start, end, DEFAULT_TOP_SPAN, now)
    zone = ZoneInfo(get_region(session, name).timezone)
    rows = session.execute(
        _TOP_SQL, {"region": name, "start": first, "end": last, "limit": limit}
    ).all()
    consumers = [
        Consumer(rank, row[0], row[1], mean(row[2], row[3]), row[3])
        for rank, row in enumerate(rows, start=1)
    ]
    return TopConsumers(name, first.astimezone(zone), last.astimezone(zone), limit, consumers)


def region_load(session: Session, name: str, *, now: datetime) -> RegionLoad:
    """Return the region's load in its newest complete 1-minute window.

    One window only: the earlier system summed the last five minutes of windows and so
    reported about five times the load.
    """
    region = get_region(session, name)
    zone = ZoneInfo(region.timezone)
    row = session.execute(_LOAD_SQL, {"region": name, "latest_start": now - ONE_MINUTE}).first()
    if row is None:
        return RegionLoad(name, region.capacity_kw, None, None, None, None, None, None)
    return RegionLoad(
        region=name,
        capacity_kw=row[2],
        window_start=row[0].astimezone(zone),
        window_end=(row[0] + ONE_MINUTE).astimezone(zone),
        total_power_kw=row[1],
        load_percentage=row[3],
        meter_count=row[4],
        reading_count=row[5],
    )
