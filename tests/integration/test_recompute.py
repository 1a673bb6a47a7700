"""Rebuilding aggregates from raw_readings (segs.services.spine.recompute): exact, idempotent, and
safe beside windows still in Redis and batches not yet folded."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from segs.db import raw_connection
from segs.redis_client import get_redis
from segs.services.shared.keyspace import FLUSH_LOCK
from segs.services.spine import recompute
from segs.services.spine.archive import Batch
from segs.services.spine.archive import _insert
from segs.tasks.stores import get_pending_ledger
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import execute
from tests.support import flush_now
from tests.support import fold_one
from tests.support import now_us
from tests.support import past_15m_window
from tests.support import query
from tests.support import reading
from tests.support import recompute_from_raw
from tests.support import shard_of
from tests.support import stored_aggregates
from tests.support import to_rows
from tests.support import window_store

pytestmark = pytest.mark.integration

REGION = "Delhi-North"


@pytest.fixture
def window(clean_state) -> int:
    return past_15m_window(45)


def readings(window: int, meters=("RC-1", "RC-2", "RC-3"), second: int = 10) -> list[list]:
    return to_rows(
        [
            reading(meter, REGION, window + (second + i) * MICRO, 1.5 + i, energy=0.01, voltage=230)
            for i, meter in enumerate(meters)
        ]
    )


def fold_each_meter(rows: list[list]) -> None:
    for row in rows:
        assert fold_one([row], now_us())["folded"]


def rebuild(window: int, minutes: int = 15, **options) -> recompute.RecomputeReport:
    with raw_connection() as conn:
        return recompute.recompute_aggregates(
            conn,
            get_redis(),
            window_store(),
            get_pending_ledger(),
            dt(window),
            dt(window) + timedelta(minutes=minutes),
            **options,
        )


def test_damaged_rows_are_rebuilt_exactly_and_a_second_run_changes_nothing(window):
    fold_each_meter(readings(window) + readings(window + 60 * MICRO))
    assert flush_now()["windows"] == 3
    before = stored_aggregates()
    # An incident: a meter row lost, another miscounted, a region row gone.
    execute("DELETE FROM aggregates_1m WHERE meter_id = 'RC-1'")
    execute("UPDATE aggregates_15m SET reading_count = 7, power_sum_kw = 0 WHERE meter_id = 'RC-2'")
    execute("DELETE FROM regional_aggregates_15m")
    assert stored_aggregates() != before

    report = rebuild(window)
    assert (report.quarters, report.busy, report.unfolded_batches) == (1, [], 0)
    assert report.rows == {
        "aggregates_1m": 6,
        "regional_aggregates_1m": 2,
        "aggregates_15m": 3,
        "regional_aggregates_15m": 1,
    }
    assert stored_aggregates() == before == recompute_from_raw()
    rebuild(window)
    assert stored_aggregates() == before


def test_a_quarter_with_a_window_in_redis_is_left_for_its_flush(window):
    fold_each_meter(readings(window))
    report = rebuild(window, minutes=30)
    # The first quarter's windows are open in Redis: rebuilt, they would be counted twice.
    assert report.busy == [dt(window)]
    assert report.quarters == 1  # the next, empty one
    assert query("SELECT count(*) FROM aggregates_1m") == [(0,)]
    flush_now()
    assert_stored_equals_recomputed()


def test_readings_of_a_batch_not_folded_yet_are_left_for_its_fold(window):
    folded = readings(window)
    fold_each_meter(folded)
    flush_now()
    # Another batch committed its rows and waits to be folded (a retry, a slow worker).
    waiting = readings(window, meters=("RC-4",), second=30)
    batch_id = str(uuid.uuid4())
    get_pending_ledger().record([(batch_id, shard_of("RC-4"), waiting)], now_us(), time.time())
    with raw_connection() as conn:
        _insert(conn, [Batch(batch_id, waiting, now_us(), shard_of("RC-4"))], [waiting])

    report = rebuild(window)
    assert report.unfolded_batches == 1
    assert query("SELECT meter_id FROM aggregates_1m ORDER BY 1") == [
        ("RC-1",),
        ("RC-2",),
        ("RC-3",),
    ]
    # Its fold and flush then add it once: the tables equal raw_readings.
    assert fold_one(None, now_us(), task_id=batch_id, shard=shard_of("RC-4"))["folded"]
    flush_now()
    assert_stored_equals_recomputed()


def test_a_running_flush_holds_the_rebuild_off(window):
    lock = get_redis().lock(FLUSH_LOCK, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        with pytest.raises(recompute.FlushRunningError):
            rebuild(window, lock_wait_s=0.2)
    finally:
        lock.release()


def test_the_command_names_what_it_did(window, app):
    fold_each_meter(readings(window))
    flush_now()
    execute("DELETE FROM aggregates_15m")
    since = dt(window).strftime("%Y-%m-%dT%H:%M")
    until = (dt(window) + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
    result = app.test_cli_runner().invoke(
        args=["recompute-aggregates", "--since", since, "--until", until]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "rebuilt 1 quarter-hour(s) from raw_readings: aggregates_15m 3, aggregates_1m 3, "
        "regional_aggregates_15m 1, regional_aggregates_1m 1"
    ]
    assert_stored_equals_recomputed()
    backwards = app.test_cli_runner().invoke(
        args=["recompute-aggregates", "--since", until, "--until", since]
    )
    assert backwards.exit_code == 2
    assert "must be after --since" in backwards.output
