"""Rows for the read-side tests, written straight into the window and reading tables.

Each window row is derived from the readings it stands for, with the flush's rounding rules, so a
test states readings and asserts the exact figures the API must derive from them.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal

from tests.support import execute

SIX = Decimal("0.000001")
_GRANULARITY = {
    "raw_readings": "day",
    "aggregates_1m": "day",
    "aggregates_15m": "month",
}


def ensure_partition(table: str, moment: datetime) -> None:
    """Create the partition of *table* holding *moment*, named as spine.partitions does."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if _GRANULARITY[table] == "day":
        start, end, suffix = day, day + timedelta(days=1), day.strftime("%Y%m%d")
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        suffix = start.strftime("%Y%m")
    # DDL takes no parameters; the bounds are timestamps this function formatted itself.
    execute(
        f"CREATE TABLE IF NOT EXISTS {table}_p{suffix} PARTITION OF {table} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def _round(value: Decimal) -> Decimal:
    return value.quantize(SIX, ROUND_HALF_UP)


def insert_window(
    size: str,
    meter_id: str,
    region: str,
    start: datetime,
    powers: list[str],
    energies: list[str] | None = None,
    voltages: list[str] | None = None,
) -> None:
    """Store the *size* window of *meter_id* starting at *start* for readings of *powers* kW."""
    table = f"aggregates_{size}"
    ensure_partition(table, start)
    power = [Decimal(p) for p in powers]
    energy = [Decimal(e) for e in energies or []]
    voltage = [Decimal(v) for v in voltages or []]
    execute(
        f"""
        INSERT INTO {table} (meter_id, window_start, region, reading_count, power_sum_kw,
            avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum,
            voltage_count, voltage_avg, last_reading_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            meter_id,
            start,
            region,
            len(power),
            sum(power),
            _round(sum(power) / len(power)),
            min(power),
            max(power),
            sum(energy, Decimal(0)),
            sum(voltage, Decimal(0)),
            len(voltage),
            _round(sum(voltage) / len(voltage)) if voltage else None,
            start + timedelta(seconds=1),
        ),
    )


def insert_region_window(
    size: str,
    region: str,
    start: datetime,
    *,
    meter_count: int,
    reading_count: int,
    total_power_kw: str,
    capacity_kw: str,
    energy_kwh: str,
) -> None:
    """Store the *size* window of *region* starting at *start*."""
    total = Decimal(total_power_kw)
    capacity = Decimal(capacity_kw)
    execute(
        f"""
        INSERT INTO regional_aggregates_{size} (region, window_start, meter_count, reading_count,
            total_power_kw, capacity_kw, load_percentage, energy_kwh_sum)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            region,
            start,
            meter_count,
            reading_count,
            total,
            capacity,
            (100 * total / capacity).quantize(Decimal("0.0001"), ROUND_HALF_UP),
            Decimal(energy_kwh),
        ),
    )


def insert_reading(
    meter_id: str,
    region: str,
    ts: datetime,
    power_kw: str,
    *,
    energy_kwh: str | None = None,
    voltage: str | None = None,
) -> str:
    """Store one raw reading; returns its reading id."""
    ensure_partition("raw_readings", ts)
    reading_id = str(uuid.uuid4())
    execute(
        """
        INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, energy_kwh,
            voltage, batch_id, received_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            meter_id,
            ts,
            reading_id,
            region,
            Decimal(power_kw),
            None if energy_kwh is None else Decimal(energy_kwh),
            None if voltage is None else Decimal(voltage),
            uuid.uuid4(),
            ts + timedelta(seconds=2),
        ),
    )
    return reading_id


def utc(text: str) -> datetime:
    """An aware datetime from ISO text with an offset or Z."""
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment
