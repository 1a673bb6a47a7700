"""Native PostgreSQL range partitions: create them ahead of the data, drop them whole on expiry.

Retention never deletes rows from the big tables (DELETE + VACUUM does not give space back,
ThingsBoard #647); it drops the partitions whose whole range is past the retention period.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import psycopg
from psycopg import sql

from segs.config import Settings

logger = logging.getLogger(__name__)

_SUFFIX = re.compile(r"_p(?P<stamp>\d{6}|\d{8})$")
_LOCK_ID = 0x5E65  # serialises partition DDL between workers, beat and the CLI


@dataclass(frozen=True)
class PartitionedTable:
    name: str
    granularity: str  # "day" or "month"
    retention_days: int


def partitioned_tables(settings: Settings) -> list[PartitionedTable]:
    return [
        PartitionedTable("raw_readings", "day", settings.raw_retention_days),
        PartitionedTable("aggregates_1m", "day", settings.agg_1m_retention_days),
        PartitionedTable("aggregates_15m", "month", settings.agg_15m_retention_days),
    ]


def _floor(moment: datetime, granularity: str) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.replace(day=1) if granularity == "month" else day


def _next(start: datetime, granularity: str) -> datetime:
    if granularity == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def _suffix(start: datetime, granularity: str) -> str:
    return start.strftime("%Y%m" if granularity == "month" else "%Y%m%d")


def _parse_suffix(partition: str) -> tuple[datetime, str] | None:
    match = _SUFFIX.search(partition)
    if not match:
        return None
    stamp = match.group("stamp")
    if len(stamp) == 6:
        return datetime.strptime(stamp + "01", "%Y%m%d").replace(tzinfo=UTC), "month"
    return datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=UTC), "day"


def ensure_partitions(conn: psycopg.Connection, settings: Settings, now: datetime) -> int:
    """Create every partition from the oldest accepted reading to a few days ahead.

    Returns how many partitions were created. Safe to run concurrently and repeatedly.
    """
    created = 0
    # From the oldest reading the API accepts; no earlier, or the retention drop (the horizon
    # is at least as old, see Settings) and this would drop and re-create a partition forever.
    oldest = now - timedelta(seconds=settings.max_reading_age_s)
    newest = now + timedelta(days=settings.partition_premake_days)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for table in partitioned_tables(settings):
            start = _floor(oldest, table.granularity)
            while start <= newest:
                end = _next(start, table.granularity)
                partition = f"{table.name}_p{_suffix(start, table.granularity)}"
                exists = conn.execute("SELECT to_regclass(%s)", (partition,)).fetchone()
                if exists is None or exists[0] is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                        ).format(
                            sql.Identifier(partition),
                            sql.Identifier(table.name),
                            sql.Literal(start),
                            sql.Literal(end),
                        )
                    )
                    created += 1
                start = end
    if created:
        logger.info("created %d partitions", created)
    return created


def drop_expired_partitions(
    conn: psycopg.Connection, settings: Settings, now: datetime
) -> list[str]:
    """Drop partitions whose whole range lies before the table's retention horizon."""
    dropped: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for table in partitioned_tables(settings):
            horizon = now - timedelta(days=table.retention_days)
            rows = conn.execute(
                """
                SELECT child.relname FROM pg_inherits
                JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
                JOIN pg_class child ON child.oid = pg_inherits.inhrelid
                WHERE parent.relname = %s
                """,
                (table.name,),
            ).fetchall()
            for (partition,) in rows:
                parsed = _parse_suffix(partition)
                if parsed is None:
                    continue
                start, granularity = parsed
                if _next(start, granularity) <= horizon:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))
                    dropped.append(partition)
    if dropped:
        logger.info("dropped expired partitions: %s", ", ".join(dropped))
    return dropped


def delete_expired_rows(conn: psycopg.Connection, settings: Settings, now: datetime) -> int:
    """Trim the small per-region tables, the flush log and old failed logins, which are not
    partitioned."""
    deleted = 0
    with conn.transaction():
        for table, days in (
            ("regional_aggregates_1m", settings.agg_1m_retention_days),
            ("regional_aggregates_15m", settings.agg_15m_retention_days),
        ):
            cursor = conn.execute(
                sql.SQL("DELETE FROM {} WHERE window_start < %s").format(sql.Identifier(table)),
                (now - timedelta(days=days),),
            )
            deleted += cursor.rowcount
        # A flush key only guards retries of a flush, which happen within seconds.
        cursor = conn.execute(
            "DELETE FROM window_flushes WHERE flushed_at < %s", (now - timedelta(days=1),)
        )
        deleted += cursor.rowcount
        # Failures count only within their window (segs.services.accounts.login_guard).
        cursor = conn.execute(
            "DELETE FROM login_failures WHERE last_at < %s",
            (now - timedelta(seconds=settings.login_failure_window_s),),
        )
        deleted += cursor.rowcount
    return deleted
