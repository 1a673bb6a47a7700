"""A test region in a DST zone, a month of readings through the real archive and flush path,
and a tariff history with a mid-month change and an override. Shared by the billing tests."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

from segs.db import raw_connection
from segs.domain.readings import MICRO
from segs.domain.readings import to_epoch_us
from segs.redis_client import get_redis
from segs.services.spine.archive import archive_and_fold
from segs.services.spine.partitions import drop_expired_partitions
from segs.services.spine.partitions import ensure_partitions
from segs.services.spine.windows_store import WindowStore
from segs.tasks.alerts import get_detection_store
from tests import support
from tests.support import execute
from tests.support import flush_now

REGION = "Test-London"
PERIOD = "2026-10"
# October 2026 in London: BST until 25 October (a 25-hour day), then GMT.
MONTH_START = datetime(2026, 9, 30, 23, tzinfo=UTC)
MONTH_END = datetime(2026, 11, 1, tzinfo=UTC)
DST_DAY = (datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC))
CHANGE_AT = datetime(2026, 10, 10, 11, 7, tzinfo=UTC)  # mid-interval: 11:00-11:15 keeps 6.00
OVERRIDE = (datetime(2026, 10, 20, 8, tzinfo=UTC), datetime(2026, 10, 21, 20, tzinfo=UTC))
DEMAND_RATE = Decimal("50.000000")
# The settings of a run "just after" October: readings of the whole month are accepted.
PAST_NOW = datetime(2026, 11, 2, tzinfo=UTC)


def add_region() -> None:
    execute(
        """
        INSERT INTO regions (name, timezone, capacity_kw, demand_charge_per_kw)
        VALUES (%s, 'Europe/London', 100, %s)
        ON CONFLICT (name) DO UPDATE SET demand_charge_per_kw = EXCLUDED.demand_charge_per_kw
        """,
        (REGION, DEMAND_RATE),
    )


def drop_region() -> None:
    execute("DELETE FROM regions WHERE name = %s", (REGION,))


def add_history() -> None:
    """6.00 (initial) -> 6.60 (load, mid-interval) -> 3.50 (override) -> 7.50 (override end)."""
    execute(
        """
        INSERT INTO tariff_overrides (id, region, price_per_kwh, valid_from, valid_to, reason)
        VALUES (9001, %(region)s, 3.5, %(o_from)s, %(o_to)s, 'grid event')
        """,
        {"region": REGION, "o_from": OVERRIDE[0], "o_to": OVERRIDE[1]},
    )
    execute(
        """
        INSERT INTO tariffs (id, region, price_per_kwh, effective_from, effective_to, reason,
                             triggered_by, override_id)
        VALUES (9001, %(region)s, 6.000000, '2026-09-01T00:00Z', %(change)s, 'first', 'initial',
                NULL),
               (9002, %(region)s, 6.600000, %(change)s, %(o_from)s, 'load', 'load', NULL),
               (9003, %(region)s, 3.500000, %(o_from)s, %(o_to)s, 'override', 'override', 9001),
               (9004, %(region)s, 7.500000, %(o_to)s, NULL, 'back', 'override_end', NULL)
        """,
        {"region": REGION, "change": CHANGE_AT, "o_from": OVERRIDE[0], "o_to": OVERRIDE[1]},
    )


def _row(meter: str, ts: datetime, power: Decimal, energy: Decimal) -> list:
    return [
        meter,
        REGION,
        str(uuid.uuid4()),
        to_epoch_us(ts),
        int(power * MICRO),
        int(energy * MICRO),
        None,
        None,
        None,
        None,
        None,
    ]


def month_readings(meters: list[str], seed: int = 5) -> list[list]:
    """One or two readings in every 7th 15-minute window of the local month, plus one just
    before it. Every 7th window steps 1 h 45 min, so every local hour is read; every window
    would make flushing the windows the slowest part of the suite."""
    rng = random.Random(seed)
    rows = []
    for meter in meters:
        moment = MONTH_START
        while moment < MONTH_END:
            for offset in (60, 600)[: rng.randint(1, 2)]:
                power = Decimal(rng.randint(0, 9_000_000)) / MICRO
                energy = Decimal(rng.randint(0, 2_500_000)) / MICRO
                rows.append(_row(meter, moment + timedelta(seconds=offset), power, energy))
            moment += timedelta(minutes=15 * 7)
        # 23:50 on 30 September, London time: September's, not October's.
        rows.append(_row(meter, MONTH_START - timedelta(minutes=10), Decimal(5), Decimal(9)))
    return rows


def dst_day_readings(meter: str) -> list[list]:
    """1 kWh in every 15-minute window of the 25-hour local day 25 October."""
    rows = []
    moment = DST_DAY[0]
    while moment < DST_DAY[1]:
        rows.append(_row(meter, moment + timedelta(minutes=1), Decimal(4), Decimal(1)))
        moment += timedelta(minutes=15)
    return rows


def drop_old_partitions() -> None:
    """Drop the October partitions made for the test, as retention would (they slow TRUNCATE)."""
    with raw_connection() as conn:
        drop_expired_partitions(conn, support.settings(), datetime.now(UTC))


def load_through_pipeline(rows: list[list]) -> None:
    """Archive and fold the rows as a worker would, then flush them into the aggregates."""
    settings = replace(support.settings(), max_reading_age_s=45 * 86400, raw_retention_days=45)
    with raw_connection() as conn:
        ensure_partitions(conn, settings, PAST_NOW)
        for start in range(0, len(rows), 5000):
            archive_and_fold(
                conn,
                WindowStore(get_redis(), settings.shards),
                get_detection_store(),
                settings,
                batch_id=str(uuid.uuid4()),
                rows=rows[start : start + 5000],
                received_at_us=to_epoch_us(PAST_NOW),
                now=PAST_NOW,
            )
    # Each flush moves at most 1,000 windows; a month of them takes several.
    while flush_now().get("windows"):
        pass
