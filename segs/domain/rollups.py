"""Read-side arithmetic: history buckets in a local time zone, local calendar ranges, exact means.

Stored windows are 1 and 15 minutes long and aligned to UTC. Coarser buckets are local: a 1h
bucket is a local clock hour (it starts at hh:30 UTC in Asia/Kolkata, +05:30), a 1d bucket is a
local calendar day (23 or 25 hours long on a daylight-saving change), a month is a local calendar
month. Every time zone in use has a UTC offset that is a multiple of 15 minutes, so a local hour
or day is always a whole number of 15-minute windows, and 1h/1d buckets roll up 15m windows.

Averages are always a total divided by a count (sum of power over sum of readings), never a
mean of means, and are rounded half away from zero to 6 places, as PostgreSQL's round() does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from datetime import tzinfo
from decimal import ROUND_HALF_UP
from decimal import Decimal

RESOLUTIONS = ("1m", "15m", "1h", "1d")

# The longest range one history request may cover, so one response stays a few thousand points.
MAX_HISTORY_SPAN = {
    "1m": timedelta(days=7),
    "15m": timedelta(days=31),
    "1h": timedelta(days=93),
    "1d": timedelta(days=1096),
}

_FIXED_SIZES = {"1m": timedelta(minutes=1), "15m": timedelta(minutes=15)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SIX_PLACES = Decimal("0.000001")
TWO_PLACES = Decimal("0.01")


def bucket_start(moment: datetime, resolution: str, zone: tzinfo) -> datetime:
    """Return (in UTC) the start of the *resolution* bucket that holds *moment*.

    1m and 15m buckets are the stored windows, aligned to UTC whatever the zone; 1h is the
    local clock hour and 1d the local calendar day in *zone*. On a fall-back day the repeated
    local hour is two buckets, one per UTC offset, as it is two hours of real time.
    """
    size = _FIXED_SIZES.get(resolution)
    if size is not None:
        return moment - (moment - _EPOCH) % size
    local = moment.astimezone(zone)
    if resolution == "1h":
        # replace() keeps `fold`, so 02:30 of the second 02:00 hour stays in that hour.
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    if resolution == "1d":
        return local_midnight(local.date(), zone)
    raise ValueError(f"unknown resolution {resolution!r}")


def next_bucket_start(start: datetime, resolution: str, zone: tzinfo) -> datetime:
    """Return the start of the bucket after the one starting at *start*."""
    size = _FIXED_SIZES.get(resolution)
    if size is not None:
        return start + size
    if resolution == "1h":
        return bucket_start(start + timedelta(hours=1), "1h", zone)
    if resolution == "1d":
        return local_midnight(start.astimezone(zone).date() + timedelta(days=1), zone)
    raise ValueError(f"unknown resolution {resolution!r}")


def covering_range(
    start: datetime, end: datetime, resolution: str, zone: tzinfo
) -> tuple[datetime, datetime]:
    """Widen [start, end) to whole buckets: from its first bucket's start to its last's end."""
    first = bucket_start(start, resolution, zone)
    last = bucket_start(end, resolution, zone)
    return first, (end if last == end else next_bucket_start(last, resolution, zone))


def range_problem(start: datetime, end: datetime, max_span: timedelta) -> str | None:
    """Why [start, end) is not an acceptable query range, or None if it is."""
    if start >= end:
        return "must be later than the start"
    if end - start > max_span:
        return f"the range may cover at most {max_span.days} days"
    return None


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """Return (in UTC) the instant *day* begins in *zone*.

    Where the clocks skip midnight, the day begins at the jump (fold=0 takes the offset in
    force before it), so no instant is left out of every day.
    """
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def day_range(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC instants [start, end) of the local days *first* to *last*, inclusive."""
    return local_midnight(first, zone), local_midnight(last + timedelta(days=1), zone)


def add_months(month: date, count: int) -> date:
    """Return the first day of the month *count* months after the month of *month*."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_range(first: date, last: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC instants [start, end) of the local months of *first* to *last*, inclusive."""
    return (
        local_midnight(first.replace(day=1), zone),
        local_midnight(add_months(last, 1), zone),
    )


def months_between(first: date, last: date) -> int:
    """How many calendar months the months of *first* to *last* cover, inclusive."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def mean(total: Decimal, count: int) -> Decimal | None:
    """Return total / count rounded to 6 places, or None when there is nothing to average."""
    if count == 0:
        return None
    return (total / count).quantize(SIX_PLACES, ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Sums over a set of windows, from which every reported figure derives exactly."""

    reading_count: int
    power_sum_kw: Decimal
    min_power_kw: Decimal | None
    max_power_kw: Decimal | None
    energy_kwh: Decimal
    voltage_sum: Decimal
    voltage_count: int

    @property
    def avg_power_kw(self) -> Decimal | None:
        return mean(self.power_sum_kw, self.reading_count)

    @property
    def voltage_avg(self) -> Decimal | None:
        return mean(self.voltage_sum, self.voltage_count)


@dataclass(frozen=True, slots=True)
class EnergyChange:
    """How the energy of a second period compares with a first one."""

    change_kwh: Decimal
    # None when the first period used no energy: no percentage of zero exists.
    change_percent: Decimal | None


def compare_energy(first_kwh: Decimal, second_kwh: Decimal) -> EnergyChange:
    """Return the change from *first_kwh* to *second_kwh*, in kWh and in percent (2 places)."""
    change = second_kwh - first_kwh
    if first_kwh == 0:
        return EnergyChange(change, None)
    return EnergyChange(change, (100 * change / first_kwh).quantize(TWO_PLACES, ROUND_HALF_UP))
