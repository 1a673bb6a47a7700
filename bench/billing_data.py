"""Data for the billing benchmarks: their own database, customer meters, a month of data and
a tariff history with a mid-month change and an override (shared by bench.billing_run and
bench.billing_accuracy)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from zoneinfo import ZoneInfo

import psycopg

DEFAULT_DATABASE_URL = "postgresql+psycopg:///segs_bench_billing"
DEFAULT_REDIS_URL = "redis://localhost:6379/8"
DEFAULT_BROKER_URL = "redis://localhost:6379/9"


def configure(database_url: str, redis_url: str, broker_url: str) -> None:
    """Point the settings at the benchmark's own stores; call before segs reads them."""
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "SEGS_ENV": "testing",
        }
    )


def prepare_database(period_end: datetime) -> None:
    """Migrate, empty the data tables, and make the partitions the month needs."""
    from segs.config import get_settings
    from segs.db import raw_connection
    from segs.services.spine.partitions import ensure_partitions
    from segs.web.cli import migrate_database

    migrate_database(get_settings())
    settings = replace(get_settings(), max_reading_age_s=45 * 86400, raw_retention_days=45)
    with raw_connection() as conn:
        conn.execute(
            "TRUNCATE invoice_payments, invoice_line_items, invoices, tariffs, tariff_overrides, "
            "raw_readings, aggregates_1m, aggregates_15m, regional_aggregates_1m, "
            "regional_aggregates_15m, meters, users CASCADE"
        )
        conn.commit()
        ensure_partitions(conn, settings, period_end + timedelta(days=1))


def month_bounds(period: str, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def add_customers(conn: psycopg.Connection, region: str, prefix: str, meters: int) -> list[str]:
    """One customer account of *region* owning *meters* meters named PREFIX-000001..."""
    owner = uuid.uuid4()
    conn.execute(
        "INSERT INTO users (id, email, name, role, region) VALUES (%s, %s, 'Bench', 'USER', %s)",
        (owner, f"{prefix.lower()}@bench.test", region),
    )
    ids = [f"{prefix}-{number:06d}" for number in range(1, meters + 1)]
    # Owned since long before the billed month: the run bills each owner's own interval.
    since = datetime(2000, 1, 1, tzinfo=UTC)
    with conn.cursor().copy(
        "COPY meters (meter_id, region, owner_id, assigned_at) FROM STDIN"
    ) as copy:
        for meter_id in ids:
            copy.write_row((meter_id, region, owner, since))
    return ids


def add_history(conn: psycopg.Connection, region: str, start: datetime, end: datetime) -> None:
    """Automatic prices, a change in the middle of an interval a third into the month, an
    override over two days in the middle, automatic again after it."""
    span = end - start
    change = start + span / 3 + timedelta(minutes=7)
    override_from = start + span / 2
    override_to = override_from + timedelta(days=2)
    override_id = conn.execute(
        "INSERT INTO tariff_overrides (region, price_per_kwh, valid_from, valid_to, reason) "
        "VALUES (%s, 3.5, %s, %s, 'bench override') RETURNING id",
        (region, override_from, override_to),
    ).fetchone()
    assert override_id is not None
    conn.execute(
        """
        INSERT INTO tariffs (region, price_per_kwh, effective_from, effective_to, reason,
                             triggered_by, override_id)
        VALUES (%(region)s, 5.400000, %(before)s, %(change)s, 'bench', 'initial', NULL),
               (%(region)s, 6.600000, %(change)s, %(o_from)s, 'bench', 'load', NULL),
               (%(region)s, 3.500000, %(o_from)s, %(o_to)s, 'bench', 'override', %(override)s),
               (%(region)s, 7.500000, %(o_to)s, NULL, 'bench', 'override_end', NULL)
        """,
        {
            "region": region,
            "before": start - timedelta(days=1),
            "change": change,
            "o_from": override_from,
            "o_to": override_to,
            "override": override_id[0],
        },
    )


# One row per meter and 15-minute window, with the flush's own columns and rounding.
FILL_AGGREGATES_15M = """
INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count, power_sum_kw,
    avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count,
    voltage_avg, last_reading_at, flush_count, updated_at)
SELECT meter_id, w, region, 1, p, p, p, p, e, 0, 0, NULL, w, 1, now()
FROM (SELECT m.meter_id, m.region, w, round((random() * 9)::numeric, 6) AS p,
             round((random() * 2.5)::numeric, 6) AS e
      FROM meters m
      CROSS JOIN generate_series(%(start)s::timestamptz, %(last)s::timestamptz,
                                 interval '15 minutes') AS w
      WHERE m.region = %(region)s AND m.meter_id LIKE %(prefix)s) AS generated
"""
