"""Daily/monthly range partitions: created ahead and on demand, dropped whole on expiry."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import pytest

from segs.db import raw_connection
from segs.services.spine.partitions import delete_expired_rows
from segs.services.spine.partitions import drop_expired_partitions
from segs.services.spine.partitions import ensure_partitions
from segs.tasks.maintenance import maintain_partitions
from tests import support
from tests.support import MICRO
from tests.support import archive_in_process
from tests.support import db
from tests.support import flush_now
from tests.support import fold_one
from tests.support import now_us
from tests.support import query
from tests.support import reading
from tests.support import to_rows

pytestmark = pytest.mark.integration

TABLES = ("raw_readings", "aggregates_1m", "aggregates_15m")


def partitions(parent: str) -> dict[str, str]:
    """Partition name -> its bound expression, for one partitioned table."""
    return dict(
        query(
            """
            SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
            FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s
            """,
            (parent,),
        )
    )


def bound(start: str, end: str) -> str:
    return f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"


def days(first: datetime, last: datetime) -> list[datetime]:
    out = []
    while first <= last:
        out.append(first)
        first += timedelta(days=1)
    return out


def drop(*names: str) -> None:
    with db() as conn:
        for name in names:
            conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def test_ensure_partitions_covers_max_age_to_premake(database):
    """A month-crossing 'now' far from today, so every partition is new and the count exact."""
    now = datetime(2030, 7, 2, 12, 0, tzinfo=UTC)
    settings = support.settings()
    assert (settings.max_reading_age_s, settings.partition_premake_days) == (7 * 86400, 3)
    # From the oldest accepted reading, now - max age (06-25 12:00), to now + 3 days (07-05).
    expected_days = days(datetime(2030, 6, 25, tzinfo=UTC), datetime(2030, 7, 5, tzinfo=UTC))
    created = [f"{t}_p{d:%Y%m%d}" for t in TABLES[:2] for d in expected_days]
    created += ["aggregates_15m_p203006", "aggregates_15m_p203007"]
    try:
        with raw_connection() as conn:
            assert ensure_partitions(conn, settings, now) == len(created) == 24
            assert ensure_partitions(conn, settings, now) == 0
        for table in TABLES:
            existing = {name for name in partitions(table) if name.startswith(f"{table}_p2030")}
            assert existing == {name for name in created if name.startswith(f"{table}_p")}
        assert partitions("raw_readings")["raw_readings_p20300630"] == bound(
            "2030-06-30", "2030-07-01"
        )
        assert partitions("aggregates_1m")["aggregates_1m_p20300625"] == bound(
            "2030-06-25", "2030-06-26"
        )
        assert partitions("aggregates_15m")["aggregates_15m_p203006"] == bound(
            "2030-06-01", "2030-07-01"
        )
        assert partitions("aggregates_15m")["aggregates_15m_p203007"] == bound(
            "2030-07-01", "2030-08-01"
        )
    finally:
        drop(*created)


def test_current_partitions_exist(database):
    now = datetime.now(UTC)
    with raw_connection() as conn:
        ensure_partitions(conn, support.settings(), now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    oldest = (now - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    expected = days(oldest, today + timedelta(days=3))
    for table in TABLES[:2]:
        names = partitions(table)
        assert {f"{table}_p{d:%Y%m%d}" for d in expected} <= set(names)
        assert names[f"{table}_p{today:%Y%m%d}"] == bound(
            f"{today:%Y-%m-%d}", f"{today + timedelta(days=1):%Y-%m-%d}"
        )
    assert f"aggregates_15m_p{today:%Y%m}" in partitions("aggregates_15m")


def test_drop_expired_partitions(clean_state):
    settings = support.settings()
    now = datetime.now(UTC)
    with raw_connection() as conn:
        drop_expired_partitions(conn, settings, now)  # whatever earlier runs left behind
    with db() as conn:
        for table, suffix, start, end in (
            ("raw_readings", "20200101", "2020-01-01", "2020-01-02"),
            ("aggregates_1m", "20200101", "2020-01-01", "2020-01-02"),
            ("aggregates_15m", "202001", "2020-01-01", "2020-02-01"),
        ):
            conn.execute(
                f"CREATE TABLE {table}_p{suffix} PARTITION OF {table} "
                f"FOR VALUES FROM ('{start} 00:00+00') TO ('{end} 00:00+00')"
            )
        conn.execute(
            "INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, batch_id, "
            "received_at) VALUES ('OLD', '2020-01-01 12:00+00', 'r', 'Pune-West', 1, %s, now())",
            (uuid.uuid4(),),
        )
    with raw_connection() as conn:
        dropped = drop_expired_partitions(conn, settings, now)
    assert sorted(dropped) == [
        "aggregates_15m_p202001",
        "aggregates_1m_p20200101",
        "raw_readings_p20200101",
    ]
    assert query("SELECT count(*) FROM raw_readings WHERE meter_id = 'OLD'") == [(0,)]
    # Everything inside retention stays.
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for table in TABLES[:2]:
        names = partitions(table)
        for day in days(today - timedelta(days=6), today + timedelta(days=3)):
            assert f"{table}_p{day:%Y%m%d}" in names
    assert f"aggregates_15m_p{today:%Y%m}" in partitions("aggregates_15m")
    with raw_connection() as conn:
        assert drop_expired_partitions(conn, settings, now) == []


def test_delete_expired_rows_trims_regional_rows_flush_log_and_old_failed_logins(clean_state):
    now = datetime.now(UTC)
    with db() as conn:
        for table, age_days in (
            ("regional_aggregates_1m", 31),
            ("regional_aggregates_1m", 29),
            ("regional_aggregates_15m", 366),
            ("regional_aggregates_15m", 364),
        ):
            conn.execute(
                f"INSERT INTO {table} (region, window_start, meter_count, reading_count, "
                "total_power_kw, capacity_kw, load_percentage, energy_kwh_sum) "
                "VALUES ('Pune-West', %s, 1, 1, 1, 3400, 0.0294, 0)",
                (now - timedelta(days=age_days),),
            )
        conn.execute(
            "INSERT INTO window_flushes (flush_key, flushed_at) VALUES ('old', %s), ('new', %s)",
            (now - timedelta(days=2), now - timedelta(hours=1)),
        )
        # SEGS_LOGIN_FAILURE_WINDOW_S is 900 s: one failure count outlived it.
        conn.execute(
            "INSERT INTO login_failures (key, count, last_at) "
            "VALUES ('old', 3, %s), ('new', 1, %s)",
            (now - timedelta(seconds=901), now - timedelta(seconds=899)),
        )
    with raw_connection() as conn:
        assert delete_expired_rows(conn, support.settings(), now) == 4
    assert query("SELECT count(*) FROM regional_aggregates_1m") == [(1,)]
    assert query("SELECT count(*) FROM regional_aggregates_15m") == [(1,)]
    assert query("SELECT flush_key FROM window_flushes") == [("new",)]
    assert query("SELECT key FROM login_failures") == [("new",)]


def test_maintenance_run_twice_changes_nothing_the_second_time(clean_state):
    """ensure_partitions must not create a partition that drop_expired_partitions then drops.

    Each CREATE/DROP of a partition locks the parent table exclusively, so hourly churn of
    one raw_readings partition briefly blocks every insert.
    """
    maintain_partitions.run()
    assert maintain_partitions.run() == {"created": 0, "dropped": 0, "deleted_rows": 0}


def test_missing_day_partition_is_created_on_demand(clean_state):
    moment = now_us() - 6 * 86400 * MICRO
    moment -= moment % MICRO
    day = datetime.fromtimestamp(moment // MICRO, tz=UTC)
    raw_part, minute_part = f"raw_readings_p{day:%Y%m%d}", f"aggregates_1m_p{day:%Y%m%d}"
    drop(raw_part, minute_part)
    assert raw_part not in partitions("raw_readings")

    rows = to_rows([reading("P-1", "Pune-East", moment, 2.5, energy=0.1)])
    result = fold_one(rows, now_us(), task_id=str(uuid.uuid4()))
    assert result == {"received": 1, "owned": 1, "folded": True}
    assert raw_part in partitions("raw_readings")
    assert query("SELECT tableoid::regclass::text, power_kw FROM raw_readings") == [
        (raw_part, Decimal("2.5"))
    ]

    # The flush recreates a missing aggregate partition too.
    drop(minute_part)
    assert flush_now() == {"windows": 2, "rows": 2, "late_readings": 0, "quarantined": 0}
    assert query("SELECT tableoid::regclass::text, reading_count FROM aggregates_1m") == [
        (minute_part, 1)
    ]
    assert query("SELECT reading_count FROM aggregates_15m") == [(1,)]


def test_a_reading_whose_day_partition_was_dropped_does_not_block_its_batch(clean_state):
    """A reading accepted just inside the maximum age, processed after midnight passed and the
    retention drop removed its day: the batch's other readings must still be archived (a task
    that raises forever is retried forever, and nothing of the batch ever lands)."""

    now = datetime.now(UTC)
    first_kept_day = (now - timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    expired_day = first_kept_day - timedelta(days=1)
    drop(f"raw_readings_p{expired_day:%Y%m%d}", f"aggregates_1m_p{expired_day:%Y%m%d}")
    stale_us = int(first_kept_day.timestamp()) * MICRO - 1  # 23:59:59.999999 of the dropped day
    fresh_us = now_us() - 60 * MICRO
    rows = to_rows(
        [reading("P-1", "Pune-East", stale_us, 1.0), reading("P-2", "Pune-East", fresh_us, 2.0)]
    )
    outcome = archive_in_process(rows, now)
    assert outcome.received == 2
    assert ("P-2", Decimal("2")) in query("SELECT meter_id, power_kw FROM raw_readings")
