"""Flushing closed windows from Redis into PostgreSQL: closing time, crash recovery, Lua fold."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal as D

import pytest

from segs.db import raw_connection
from segs.domain.readings import from_epoch_us
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.redis_client import get_redis
from segs.services.shared.keyspace import shard_keys
from segs.services.spine import flush
from segs.services.spine.windows_store import FoldResult
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from tests import support
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import flush_now
from tests.support import fold_one
from tests.support import keys_of
from tests.support import meter_rows
from tests.support import now_us
from tests.support import open_window_count
from tests.support import past_15m_window
from tests.support import query
from tests.support import reading
from tests.support import region_rows
from tests.support import shard_of
from tests.support import to_rows
from tests.support import window_store

# No window counts as late here (they are old test windows, flushed on their end).
NEVER_LATE = LateWindows(cutoff_us=0, hold_us=0)

pytestmark = pytest.mark.integration

REGION = "Bangalore-East"  # capacity 3900 kW
GRACE = 1 * MICRO


@pytest.fixture
def window(clean_state) -> int:
    return past_15m_window(45)


def fold(readings) -> dict:
    return fold_one(to_rows(readings), now_us(), task_id=str(uuid.uuid4()))


def fold_each_meter(readings) -> None:
    """One batch per meter, each from its shard's queue, as the API sends them."""
    by_meter: dict[str, list] = {}
    for item in readings:
        by_meter.setdefault(item["meterId"], []).append(item)
    for listed in by_meter.values():
        assert fold(listed)["folded"]


def two_meters(window: int) -> list[dict]:
    return [
        reading("F-1", REGION, window + 5 * MICRO, 2.0, energy=0.5, voltage=230.0),
        reading("F-1", REGION, window + 6 * MICRO, 4.0, energy=0.25),
        reading("F-2", REGION, window + 7 * MICRO, 1.5, voltage=240.0),
    ]


def assert_flushed_once(window: int) -> None:
    for size in ("1m", "15m"):
        assert meter_rows(size) == {
            ("F-1", dt(window)): (REGION, 2, D("6"), D("3"), D("2"), D("4"), D("0.75"), D("230"),
                                  1, D("230"), dt(window + 6 * MICRO), 1),
            ("F-2", dt(window)): (REGION, 1, D("1.5"), D("1.5"), D("1.5"), D("1.5"), D("0"),
                                  D("240"), 1, D("240"), dt(window + 7 * MICRO), 1),
        }  # fmt: skip
        assert region_rows(size) == {
            (REGION, dt(window)): (2, 3, D("4.5"), D("3900"), D("0.1154"), D("0.75")),
        }
    assert_stored_equals_recomputed()


def test_flush_rerun_after_commit_but_before_redis_delete_merges_nothing_twice(window):
    # F-1 and F-2 are meters of two shards: the window has a hash in each.
    assert shard_of("F-1") != shard_of("F-2")
    fold_each_meter(two_meters(window))
    store = window_store()
    now = datetime.now(UTC)
    # Readings fold into the 1-minute window only; the 15-minute one is rolled up at forget().
    assert store.move_due("1m", now_us() - GRACE, token="crashed") == 2
    minute = WindowKey("1m", REGION, window)
    names = sorted(keys_of(meter).flushing_window("crashed", minute) for meter in ("F-1", "F-2"))
    assert store.flushing("1m") == {minute: names}
    # The crashed flush committed the window to PostgreSQL, then died before forget().
    with raw_connection() as conn:
        report = flush.FlushReport()
        parts = {name: store.read(name) for name in names}
        flush._merge_window(conn, minute, parts, report, now)
        assert report.windows == 1
    assert query("SELECT flush_key FROM window_flushes ORDER BY 1") == [(name,) for name in names]

    # The next flush finds the leftovers, sees they were merged, and only rolls them up and
    # deletes them; the 15-minute window they complete is flushed in the same run.
    with raw_connection() as conn:
        report = flush.flush_closed_windows(conn, store, support.settings(), datetime.now(UTC))
    assert (report.windows, report.rows, report.skipped_already_flushed) == (1, 2, 2)
    assert report.flushed == [WindowKey("15m", REGION, window)]
    assert store.flushing("1m") == store.flushing("15m") == {}
    assert not any(get_redis().exists(name) for name in names)
    assert_flushed_once(window)


def test_flush_that_died_before_merging_is_completed_by_the_next(window):
    fold_each_meter(two_meters(window))
    store = window_store()
    assert store.move_due("1m", now_us() - GRACE, token="died") == 2
    assert open_window_count() == 0
    assert flush_now() == {"windows": 2, "rows": 4, "late_readings": 0, "quarantined": 0}
    assert store.flushing("1m") == store.flushing("15m") == {}
    assert_flushed_once(window)


def test_flush_twice_is_a_no_op(window):
    fold(two_meters(window))
    assert flush_now() == {"windows": 2, "rows": 4, "late_readings": 0, "quarantined": 0}
    assert flush_now() == {"windows": 0, "rows": 0, "late_readings": 0, "quarantined": 0}
    assert_flushed_once(window)


def test_window_closes_exactly_at_end_plus_grace(clean_state):
    # The next 15-minute window: folded before it ends, as current readings are.
    window = past_15m_window(0) + 900 * MICRO
    fold([reading("F-1", REGION, window + 30 * MICRO, 1.0)])
    store = window_store()
    settings = support.settings()
    assert settings.window_grace_s == 1

    def flush_at(instant_us: int) -> list[WindowKey]:
        with raw_connection() as conn:
            return flush.flush_closed_windows(
                conn, store, settings, from_epoch_us(instant_us)
            ).flushed

    minute_end, quarter_end = window + 60 * MICRO, window + 900 * MICRO
    assert flush_at(minute_end + GRACE - 1) == []
    assert flush_at(minute_end + GRACE) == [WindowKey("1m", REGION, window)]
    assert query("SELECT count(*) FROM aggregates_1m") == [(1,)]
    assert query("SELECT count(*) FROM aggregates_15m") == [(0,)]
    assert flush_at(quarter_end + GRACE - 1) == []
    assert flush_at(quarter_end + GRACE) == [WindowKey("15m", REGION, window)]
    assert query("SELECT count(*) FROM aggregates_15m") == [(1,)]
    assert open_window_count() == 0


def test_open_window_is_not_flushed(clean_state):
    # 30 s ahead (within the allowed clock skew): its windows end in the future.
    moment = now_us() + 30 * MICRO
    fold([reading("F-1", REGION, moment, 1.0)])
    assert flush_now() == {"windows": 0, "rows": 0, "late_readings": 0, "quarantined": 0}
    assert query("SELECT count(*) FROM aggregates_1m") == [(0,)]
    assert query("SELECT count(*) FROM aggregates_15m") == [(0,)]
    assert window_store().open_windows_by_size() == {"1m": 1}


def test_a_running_flush_makes_the_next_one_skip(window):
    fold(two_meters(window))
    lock = get_redis().lock("segs:flush:lock", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert flush_now() == {"skipped": 1}
    finally:
        lock.release()
    assert flush_now() == {"windows": 2, "rows": 4, "late_readings": 0, "quarantined": 0}


def test_lua_fold_merges_like_window_stats(clean_state):
    store = window_store()
    names = shard_keys(2)
    key = WindowKey("1m", REGION, 1_767_225_600 * MICRO)
    big = WindowStats(
        count=1_000_000,
        power_sum=2**52,
        power_min=0,
        power_max=1_000_000 * MICRO,
        energy_sum=123_456_789_012,
        voltage_sum=250 * MICRO * 1_000_000,
        voltage_count=1_000_000,
        last_ts_us=key.start_us + 59_999_999,
    )
    small = WindowStats(3, 7_000_001, 1, 5_000_000, 0, 0, 0, key.start_us + 1)
    other = WindowStats(1, 5, 5, 5, 5, 5, 1, key.start_us)
    quarter = WindowKey("15m", REGION, key.start_us)
    nothing = Judged(b"", 0, 3, 30)
    folds = {key: {"m1": big, "m2": other}, quarter: {"m3": other}}
    assert store.fold(2, ["b1"], folds, nothing, 60, NEVER_LATE) == FoldResult(set(), b"")
    assert store.fold(2, ["b2"], {key: {"m1": small}}, nothing, 60, NEVER_LATE) == FoldResult(
        set(), b""
    )
    # A group holding a batch folded before changes nothing and names it.
    assert store.fold(2, ["b3", "b2"], {key: {"m1": small}}, nothing, 60, NEVER_LATE) == FoldResult(
        {"b2"}, b""
    )
    assert not get_redis().exists(names.applied("b3"))
    assert store.read(names.window(key)) == {"m1": big.merge(small), "m2": other}
    assert store.read(names.window(quarter)) == {"m3": other}
    assert get_redis().zscore(names.open_windows, names.window(key)) == key.end_us
    assert get_redis().zscore(names.open_windows, names.window(quarter)) == quarter.end_us
    assert 0 < get_redis().ttl(names.applied("b1")) <= 60
    # Nothing of it is in another shard.
    assert store.open_windows_by_size() == {"1m": 1, "15m": 1}


def test_forgetting_a_minute_folds_it_into_its_quarter_hour_once(clean_state):
    store = window_store()
    names = shard_keys(1)
    first = WindowKey("1m", REGION, 1_767_225_600 * MICRO)
    second = first._replace(start_us=first.start_us + 60 * MICRO)
    quarter = WindowKey("15m", REGION, first.start_us)
    a = WindowStats(2, 3_000_000, 1_000_000, 2_000_000, 7, 460, 2, first.start_us + 5)
    b = WindowStats(1, 9_000_000, 9_000_000, 9_000_000, 1, 0, 0, second.start_us + 1)
    c = WindowStats(1, 4, 4, 4, 4, 4, 1, first.start_us + 9)
    nothing_to_judge = Judged(b"", 0, 3, 30)
    store.fold(
        1, ["r1"], {first: {"m1": a, "m2": c}, second: {"m1": b}}, nothing_to_judge, 60, NEVER_LATE
    )
    assert store.move_due("15m", second.end_us, "t") == 0  # only 1-minute windows are open
    assert store.move_due("1m", second.end_us, "t") == 2
    for listed in store.flushing("1m").values():
        for name in listed:
            store.forget(name, NEVER_LATE)
            store.forget(name, NEVER_LATE)  # a second forget finds nothing left to fold
    assert store.read(names.window(quarter)) == {"m1": a.merge(b), "m2": c}
    assert get_redis().zscore(names.open_windows, names.window(quarter)) == quarter.end_us
    assert store.flushing("1m") == {}
