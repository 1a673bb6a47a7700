"""System statistics for admins: accounts, meters, readings and the latest load of each region.

Every number comes from a handful of indexed queries: per-region figures use the regional
1-minute aggregates (ten small index lookups), never a scan of raw_readings. Readings are
counted once their 1-minute window has been flushed, so the newest minute or so is not in
``readings_last_24h`` yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from segs.domain.access import ROLES
from segs.domain.accounts import STATUSES

DAY = timedelta(hours=24)


@dataclass
class UserStats:
    """Accounts that are not deleted, by role and by status; deleted ones counted apart."""

    total: int = 0
    by_role: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    unverified: int = 0
    deleted: int = 0


@dataclass
class MeterStats:
    total: int = 0
    assigned: int = 0
    retired: int = 0
    never_seen: int = 0
    seen_last_24h: int = 0

    def add(self, other: MeterStats) -> None:
        self.total += other.total
        self.assigned += other.assigned
        self.retired += other.retired
        self.never_seen += other.never_seen
        self.seen_last_24h += other.seen_last_24h


@dataclass(frozen=True)
class RegionLoad:
    """A region's newest flushed 1-minute window."""

    window_start: datetime
    meter_count: int
    total_power_kw: Decimal
    load_percentage: Decimal


@dataclass
class RegionStats:
    region: str
    capacity_kw: Decimal
    meters: MeterStats
    readings_last_24h: int
    latest_load: RegionLoad | None


@dataclass
class SystemStats:
    generated_at: datetime
    users: UserStats
    meters: MeterStats
    readings_last_24h: int
    regions: list[RegionStats]


_USERS = text(
    """
    SELECT role, status, deleted_at IS NOT NULL AS deleted, count(*) AS accounts,
           count(*) FILTER (WHERE email_verified_at IS NULL) AS unverified
    FROM users
    GROUP BY 1, 2, 3
    """
)

_METERS = text(
    """
    SELECT region, count(*) AS total, count(owner_id) AS assigned,
           count(retired_at) AS retired,
           count(*) FILTER (WHERE last_seen IS NULL) AS never_seen,
           count(*) FILTER (WHERE last_seen >= :since) AS seen_last_24h
    FROM meters
    GROUP BY region
    """
)

# One index lookup per region on the (region, window_start) key for each figure.
_REGIONS = text(
    """
    SELECT r.name, r.capacity_kw, latest.window_start, latest.meter_count,
           latest.total_power_kw, latest.load_percentage, coalesce(day.readings, 0)
    FROM regions r
    LEFT JOIN LATERAL (
        SELECT window_start, meter_count, total_power_kw, load_percentage
        FROM regional_aggregates_1m a
        WHERE a.region = r.name
        ORDER BY a.window_start DESC
        LIMIT 1
    ) latest ON true
    LEFT JOIN LATERAL (
        SELECT sum(reading_count) AS readings
        FROM regional_aggregates_1m a
        WHERE a.region = r.name AND a.window_start >= :since
    ) day ON true
    ORDER BY r.name
    """
)


def system_stats(session: Session, now: datetime) -> SystemStats:
    """Count accounts and meters, and read each region's newest load and last day's readings."""
    since = now - DAY
    users = UserStats()
    for role, status, deleted, accounts, unverified in session.execute(_USERS):
        if deleted:
            users.deleted += accounts
            continue
        users.total += accounts
        users.by_role[role] += accounts
        users.by_status[status] += accounts
        users.unverified += unverified

    meters_by_region: dict[str, MeterStats] = {}
    fleet = MeterStats()
    for row in session.execute(_METERS, {"since": since}):
        counts = MeterStats(row.total, row.assigned, row.retired, row.never_seen, row.seen_last_24h)
        meters_by_region[row.region] = counts
        fleet.add(counts)

    regions = []
    for name, capacity, window_start, meter_count, power, load, readings in session.execute(
        _REGIONS, {"since": since}
    ):
        latest = (
            RegionLoad(window_start, meter_count, power, load) if window_start is not None else None
        )
        meters = meters_by_region.get(name, MeterStats())
        regions.append(RegionStats(name, capacity, meters, int(readings), latest))
    return SystemStats(
        generated_at=now,
        users=users,
        meters=fleet,
        readings_last_24h=sum(region.readings_last_24h for region in regions),
        regions=regions,
    )
