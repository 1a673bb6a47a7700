"""A reading batch task run twice (redelivery, retry) changes nothing the second time.

The batch id is the Celery task id: raw_readings rows carry it, and the Redis fold sets a
applied mark (``segs:{s<k>}:applied:<id>``) in the same script, so the batch is folded exactly once.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal as D

import pytest

from segs.db import raw_connection
from segs.services.spine.archive import Batch
from segs.services.spine.archive import _insert
from segs.tasks.readings import _fold
from segs.tasks.readings import fold_batch
from segs.tasks.stores import get_pending_ledger
from tests.support import MICRO
from tests.support import applied_marks
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import flush_now
from tests.support import fold_one
from tests.support import meter_rows
from tests.support import now_us
from tests.support import open_window_count
from tests.support import past_15m_window
from tests.support import query
from tests.support import raw_count
from tests.support import reading
from tests.support import region_rows
from tests.support import shard_of
from tests.support import to_rows
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = "Delhi-North"  # capacity 4200 kW


@pytest.fixture
def window(clean_state) -> int:
    return past_15m_window(45)


def batch(window: int, meters=("R-1", "R-2", "R-3")) -> list[list]:
    values = {"R-1": 1.25, "R-2": 0.0, "R-3": 3.5, "R-4": 2.0}
    return to_rows(
        [
            reading(meter, REGION, window + (10 + i) * MICRO, values[meter], energy=0.01)
            for i, meter in enumerate(meters)
        ]
    )


def assert_counted_once(window: int, meters=("R-1", "R-2", "R-3")) -> None:
    """Each reading of the batch is in every table exactly once."""
    assert raw_count() == len(meters)
    powers = {"R-1": D("1.25"), "R-2": D("0"), "R-3": D("3.5"), "R-4": D("2")}
    for size in ("1m", "15m"):
        rows = meter_rows(size)
        assert sorted(rows) == [(meter, dt(window)) for meter in meters]
        for meter in meters:
            region, count, power_sum, *_, flush_count = rows[(meter, dt(window))]
            assert (region, count, power_sum, flush_count) == (REGION, 1, powers[meter], 1)
        total = sum(powers[meter] for meter in meters)
        [(meter_count, reading_count, total_power, *_)] = region_rows(size).values()
        assert (meter_count, reading_count, total_power) == (len(meters), len(meters), total)
    assert_stored_equals_recomputed()


def test_same_task_id_twice_through_the_worker(worker, window):
    rows = batch(window)
    task_id = str(uuid.uuid4())
    for _ in range(2):
        fold_batch.apply_async(args=(rows, now_us()), task_id=task_id, queue="readings.0")
    wait_for(lambda: worker.fold_runs() == 2, timeout=30, message=worker.log)
    # Both runs owned the 3 rows; only one folded them.
    assert worker.metric("segs_readings_archived_total") == 3
    assert worker.metric("segs_readings_duplicate_total", stage="archive") == 0
    assert applied_marks(task_id) == 1
    assert flush_now() == {"windows": 2, "rows": 6, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window)


def test_same_task_id_twice_in_process(window):
    rows = batch(window)
    task_id = str(uuid.uuid4())
    received_at = now_us()
    first = fold_one(rows, received_at, task_id=task_id)
    second = fold_one(rows, received_at, task_id=task_id)
    assert first == {"received": 3, "owned": 3, "folded": True}
    assert second == {"received": 3, "owned": 3, "folded": False}
    assert applied_marks(task_id) == 1
    assert flush_now() == {"windows": 2, "rows": 6, "late_readings": 0, "quarantined": 0}
    # A third run after the flush must not re-open the windows either.
    third = fold_one(rows, received_at, task_id=task_id)
    assert third == {"received": 3, "owned": 3, "folded": False}
    assert flush_now() == {"windows": 0, "rows": 0, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window)
    assert query("SELECT DISTINCT batch_id::text FROM raw_readings") == [(task_id,)]


def test_crash_between_commit_and_fold_is_folded_by_the_rerun(window):
    rows = batch(window)
    task_id = str(uuid.uuid4())
    received_at = now_us()
    # The first run committed its rows, then died before the Redis fold.
    with raw_connection() as conn:
        [owned] = _insert(conn, [as_batch(task_id, rows, received_at)], [rows])
    assert owned == rows
    assert raw_count() == 3
    assert open_window_count() == 0
    assert flush_now() == {"windows": 0, "rows": 0, "late_readings": 0, "quarantined": 0}

    # The redelivered task finds the rows it owns by batch id and folds them, once.
    rerun = fold_one(rows, received_at, task_id=task_id)
    assert rerun == {"received": 3, "owned": 3, "folded": True}
    again = fold_one(rows, received_at, task_id=task_id)
    assert again == {"received": 3, "owned": 3, "folded": False}
    assert flush_now() == {"windows": 2, "rows": 6, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window)


def test_another_batch_with_the_same_readings_owns_nothing(window):
    rows = batch(window)
    first = fold_one(rows, now_us(), task_id=str(uuid.uuid4()))
    assert first == {"received": 3, "owned": 3, "folded": True}
    # The same readings in a new request (their API marks expired): new task id.
    other = fold_one(rows, now_us(), task_id=str(uuid.uuid4()))
    assert other == {"received": 3, "owned": 0, "folded": False}
    assert flush_now() == {"windows": 2, "rows": 6, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window)


def test_rerun_after_another_batch_took_some_of_the_readings(window):
    """Batch 1 commits R-1..R-3 and dies; batch 2 (R-3, R-4) runs; batch 1 is redelivered."""
    first_rows = batch(window)
    second_rows = batch(window, meters=("R-3", "R-4"))
    second_rows[0] = first_rows[2]  # exactly the same R-3 reading
    first_id, second_id = str(uuid.uuid4()), str(uuid.uuid4())
    with raw_connection() as conn:
        _insert(conn, [as_batch(first_id, first_rows, now_us())], [first_rows])
    second = fold_one(second_rows, now_us(), task_id=second_id)
    assert second == {"received": 2, "owned": 1, "folded": True}
    rerun = fold_one(first_rows, now_us(), task_id=first_id)
    assert rerun == {"received": 3, "owned": 3, "folded": True}
    assert flush_now() == {"windows": 2, "rows": 8, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window, meters=("R-1", "R-2", "R-3", "R-4"))
    assert query("SELECT meter_id, batch_id::text FROM raw_readings ORDER BY 1") == [
        ("R-1", first_id),
        ("R-2", first_id),
        ("R-3", first_id),
        ("R-4", second_id),
    ]


def test_batch_named_by_the_ledger_twice_through_the_worker(worker, window):
    """The Redis broker's message names the batch; its rows wait in the pending ledger."""
    rows = batch(window)
    task_id = str(uuid.uuid4())
    received_at = now_us()
    get_pending_ledger().record([(task_id, 0, rows)], received_at, time.time())
    for _ in range(2):
        fold_batch.apply_async(args=(None, received_at), task_id=task_id, queue="readings.0")
    wait_for(lambda: worker.fold_runs() == 2, timeout=30, message=worker.log)
    # The first run folded the ledger's rows and settled the batch; the second found none.
    assert worker.metric("segs_readings_archived_total") == 3
    assert get_pending_ledger().rows_of_many([(0, task_id)]) == {}
    assert get_pending_ledger().size() == 0
    assert flush_now() == {"windows": 2, "rows": 6, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window)


def as_batch(batch_id: str, rows: list[list], received_at_us: int) -> Batch:
    """A batch as its meters' shard queue carries it (the first meter's shard)."""
    return Batch(batch_id, rows, received_at_us, shard_of(rows[0][0]))


def fold_group(batches: list[Batch]) -> dict[str, tuple[int, bool]]:
    """Archive and fold *batches* in one go, as a worker folds a group of messages."""
    outcome = _fold(batches)
    return {batch_id: (done.owned, done.folded) for batch_id, done in outcome.batches.items()}


def test_a_group_with_a_batch_folded_before_folds_the_others_once(window):
    """A redelivered message meets new ones in a group: it folds nothing, they fold."""
    first_rows = batch(window)
    first_id, second_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert fold_one(first_rows, now_us(), task_id=first_id)["folded"]
    second_rows = batch(window, meters=("R-4",))
    second = as_batch(second_id, second_rows, now_us())
    assert fold_group([as_batch(first_id, first_rows, now_us()), second]) == {
        first_id: (3, False),
        second_id: (1, True),
    }
    assert flush_now() == {"windows": 2, "rows": 8, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window, meters=("R-1", "R-2", "R-3", "R-4"))


def test_a_reading_twice_in_one_group_is_owned_and_counted_once(window):
    rows = batch(window)
    first_id, second_id = str(uuid.uuid4()), str(uuid.uuid4())
    # The second batch repeats R-3 (and repeats it within itself: a hand-made batch).
    second_rows = batch(window, meters=("R-3", "R-4")) + batch(window, meters=("R-3",))
    second_rows[0] = second_rows[2] = rows[2]
    assert fold_group(
        [as_batch(first_id, rows, now_us()), as_batch(second_id, second_rows, now_us())]
    ) == {
        first_id: (3, True),
        second_id: (1, True),
    }
    assert flush_now() == {"windows": 2, "rows": 8, "late_readings": 0, "quarantined": 0}
    assert_counted_once(window, meters=("R-1", "R-2", "R-3", "R-4"))
