"""Rebuild a time range's aggregates from raw_readings, exactly, while the spine runs.

For operators after an incident (a window quarantined and dropped, rows damaged by hand, a Redis
that lost open windows): ``flask --app segs.web recompute-aggregates --since ... --until ...``.

The four aggregate tables normally grow by the flush merging Redis windows into them. A rebuild
replaces their rows with what raw_readings says, so it must not count what a later flush will
add, nor race a flush:
- it holds the flush lock while it works (no flush moves or merges windows meanwhile);
- a quarter-hour with a window still in Redis (open, or being flushed) is left alone and named
  in the report: its readings are counted when that window is flushed; run it again after;
- readings of batches not yet folded (still in the pending ledger, segs.services.spine.pending) are
  left out: the flush adds them once they are folded.
Everything else of the quarter-hour is rewritten from raw_readings in one transaction, with the
flush's rounding rules, so a rebuild changes nothing where nothing was wrong and running it twice
is the same as once.

After Redis lost its memory, segs.services.spine.healing runs this by itself over the quarter-hours
that may have lost windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta

import psycopg
import redis
from psycopg import sql

from segs.domain.readings import from_epoch_us
from segs.domain.readings import to_epoch_us
from segs.domain.windows import WINDOW_SIZES
from segs.services.shared.keyspace import FLUSH_LOCK
from segs.services.spine.flush import METER_TABLES
from segs.services.spine.flush import REGION_TABLES
from segs.services.spine.flush import region_rows
from segs.services.spine.pending import PendingLedger
from segs.services.spine.windows_store import WindowStore

QUARTER = timedelta(minutes=15)

# A window's meter rows from raw_readings, as the flush would have merged them (its rounding).
_METER_ROWS = """
INSERT INTO {table} (meter_id, window_start, region, reading_count, power_sum_kw, avg_power_kw,
    min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count, voltage_avg,
    last_reading_at, flush_count, updated_at)
SELECT meter_id, date_bin(make_interval(secs => %(seconds)s), ts, timestamptz 'epoch'), region,
       count(*), sum(power_kw), round(sum(power_kw) / count(*), 6), min(power_kw),
       max(power_kw), coalesce(sum(energy_kwh), 0), coalesce(sum(voltage), 0), count(voltage),
       CASE WHEN count(voltage) > 0 THEN round(sum(voltage) / count(voltage), 6) END,
       max(ts), 1, now()
FROM raw_readings
WHERE ts >= %(start)s AND ts < %(end)s AND NOT (batch_id = ANY(%(unfolded)s::uuid[]))
GROUP BY 1, 2, 3
"""

# The quarter's meter rows, as the region rows are derived from them.
_QUARTER = sql.SQL("window_start >= %(start)s AND window_start < %(end)s")


@dataclass
class RecomputeReport:
    quarters: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    # Quarter-hours left alone: a window of theirs is still in Redis.
    busy: list[datetime] = field(default_factory=list)
    # Readings left out: their batches are not folded yet.
    unfolded_batches: int = 0


class FlushRunningError(Exception):
    """The flush lock could not be taken in time."""


def recompute_aggregates(
    conn: psycopg.Connection,
    client: redis.Redis,
    store: WindowStore,
    ledger: PendingLedger,
    since: datetime,
    until: datetime,
    *,
    lock_wait_s: float = 60.0,
) -> RecomputeReport:
    """Rewrite the aggregates of every quarter-hour that overlaps [since, until) from
    raw_readings (see the module's docstring).

    :raises FlushRunningError: a flush held the lock for longer than *lock_wait_s*.
    """
    quarters = []
    quarter = quarter_start(since)
    while quarter < until:
        quarters.append(quarter)
        quarter += QUARTER
    return recompute_quarters(conn, client, store, ledger, quarters, lock_wait_s=lock_wait_s)


def recompute_quarters(
    conn: psycopg.Connection,
    client: redis.Redis,
    store: WindowStore,
    ledger: PendingLedger,
    quarters: list[datetime],
    *,
    lock_wait_s: float = 60.0,
) -> RecomputeReport:
    """Rewrite these quarter-hours (their starts) from raw_readings; those with a window still
    in Redis are left alone and named in the report's ``busy``."""
    lock = client.lock(FLUSH_LOCK, timeout=600, blocking_timeout=lock_wait_s)
    if not lock.acquire():
        raise FlushRunningError(f"a flush held {FLUSH_LOCK} for over {lock_wait_s:g} s")
    try:
        busy = _quarters_in_redis(store)
        unfolded = ledger.pending_ids()
        report = RecomputeReport(unfolded_batches=len(unfolded))
        for quarter in sorted(quarters):
            if quarter in busy:
                report.busy.append(quarter)
            else:
                _rebuild_quarter(conn, quarter, unfolded, report)
                report.quarters += 1
    finally:
        lock.release()
    return report


def quarter_start(moment: datetime) -> datetime:
    return from_epoch_us(to_epoch_us(moment) // (900 * 1_000_000) * (900 * 1_000_000))


def _quarters_in_redis(store: WindowStore) -> set[datetime]:
    """The quarter-hours holding a window in Redis, open or being flushed."""
    return {quarter_start(from_epoch_us(window.start_us)) for window in store.windows_in_redis()}


def _rebuild_quarter(
    conn: psycopg.Connection, quarter: datetime, unfolded: list[str], report: RecomputeReport
) -> None:
    params = {"start": quarter, "end": quarter + QUARTER, "unfolded": unfolded}
    with conn.transaction(), conn.cursor() as cursor:
        for size, meter_table in METER_TABLES.items():
            region_table = REGION_TABLES[size]
            for table in (region_table, meter_table):
                cursor.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE window_start >= %(start)s AND window_start < %(end)s"
                    ).format(sql.Identifier(table)),
                    params,
                )
            cursor.execute(
                sql.SQL(_METER_ROWS).format(table=sql.Identifier(meter_table)),
                {**params, "seconds": WINDOW_SIZES[size]},
            )
            report.rows[meter_table] = report.rows.get(meter_table, 0) + cursor.rowcount
            cursor.execute(region_rows(size, _QUARTER), params)
            report.rows[region_table] = report.rows.get(region_table, 0) + cursor.rowcount
