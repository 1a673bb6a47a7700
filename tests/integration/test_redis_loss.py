"""A Redis that loses its memory heals itself (segs.services.spine.healing): the windows it held and
the double folds its lost marks let through are rebuilt from raw_readings, with no manual step."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from segs.db import raw_connection
from segs.db import session_scope
from segs.services.alerts import rules as alerting
from segs.services.shared.keyspace import FLUSH_LOCK
from segs.services.spine import healing
from segs.tasks.alerts import get_detection_store
from segs.tasks.stores import get_pending_ledger
from tests import support
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import flush_now
from tests.support import fold_one
from tests.support import keys_of
from tests.support import now_us
from tests.support import past_15m_window
from tests.support import query
from tests.support import reading
from tests.support import recompute_from_raw
from tests.support import redis_client
from tests.support import stored_aggregates
from tests.support import to_rows
from tests.support import wait_for
from tests.support import window_store

pytestmark = pytest.mark.integration

REGION = "Delhi-North"
SETTLE_S = 75.0


def heal_pass(after_s: float = 0.0) -> healing.HealingReport:
    with raw_connection() as conn:
        return healing.heal(
            conn,
            redis_client(),
            window_store(),
            get_pending_ledger(),
            get_detection_store(),
            replace(support.settings(), redis_loss_settle_s=SETTLE_S),
            datetime.now(UTC) + timedelta(seconds=after_s),
        )


def batch(window: int, meter: str, second: int) -> list[list]:
    return to_rows([reading(meter, REGION, window + second * MICRO, 2.5, energy=0.02)])


def test_a_starting_worker_looks_for_a_loss_at_once(worker):
    """No beat runs here: the worker itself checks the emptied Redis as it starts, and with
    nothing archived yet, the loss it records is healed at once."""
    losses = wait_for(
        lambda: query(
            "SELECT cardinality(pending_quarters), healed_at IS NOT NULL FROM redis_losses"
        ),
        timeout=20,
        message=lambda: f"no loss recorded:\n{worker.log()}",
    )
    assert losses == [(0, True)]
    assert redis_client().exists(healing.GENERATION) == 1


def test_lost_windows_and_double_folds_are_rebuilt_once_the_batches_settled(clean_state):
    window = past_15m_window(45)
    # Redis starts empty: the first pass records it, and with nothing received, it is healed.
    assert heal_pass() == healing.HealingReport(lost=True, healed=0)
    assert query("SELECT cardinality(pending_quarters), healed_at IS NOT NULL FROM redis_losses")[
        0
    ] == (0, True)

    flushed_rows = batch(window, "RL-1", 10)
    flushed_id = str(uuid.uuid4())
    assert fold_one(flushed_rows, now_us(), task_id=flushed_id)["folded"]
    flush_now()
    # Folded, not flushed yet: only Redis holds it in its windows.
    assert fold_one(batch(window, "RL-2", 20), now_us())["folded"]

    redis_client().flushdb()  # Redis restarts empty
    assert heal_pass() == healing.HealingReport(lost=True, waiting=1)
    # The first batch runs again after the loss (a redelivery): its applied mark is gone.
    assert fold_one(flushed_rows, now_us(), task_id=flushed_id)["folded"]
    flush_now()
    assert stored_aggregates() != recompute_from_raw()  # RL-1 twice, RL-2 not at all

    assert heal_pass(after_s=SETTLE_S / 2) == healing.HealingReport(waiting=1)
    assert heal_pass(after_s=SETTLE_S + 1) == healing.HealingReport(rebuilt=1, healed=1)
    assert_stored_equals_recomputed()
    assert query("SELECT count(*) FROM redis_losses WHERE healed_at IS NULL") == [(0,)]
    assert heal_pass(after_s=SETTLE_S + 2) == healing.HealingReport()


def test_a_quarter_still_in_redis_waits_for_its_flush(clean_state):
    window = past_15m_window(45)
    heal_pass()  # Redis's first start
    assert fold_one(batch(window, "RL-3", 10), now_us())["folded"]
    redis_client().flushdb()
    assert heal_pass().lost
    # A late reading of the quarter is folded after the loss and not flushed yet.
    assert fold_one(batch(window, "RL-4", 30), now_us())["folded"]
    assert heal_pass(after_s=SETTLE_S + 1) == healing.HealingReport()
    assert query("SELECT cardinality(pending_quarters) FROM redis_losses WHERE healed_at IS NULL")
    flush_now()
    assert heal_pass(after_s=SETTLE_S + 2) == healing.HealingReport(rebuilt=1, healed=1)
    assert_stored_equals_recomputed()


def test_a_long_flush_puts_the_rebuild_off_to_the_next_pass(clean_state):
    window = past_15m_window(45)
    heal_pass()  # Redis's first start
    assert fold_one(batch(window, "RL-5", 10), now_us())["folded"]
    redis_client().flushdb()
    heal_pass()
    lock = redis_client().lock(FLUSH_LOCK, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert heal_pass(after_s=SETTLE_S + 1) == healing.HealingReport(waiting=1)
    finally:
        lock.release()
    assert heal_pass(after_s=SETTLE_S + 2) == healing.HealingReport(rebuilt=1, healed=1)
    assert_stored_equals_recomputed()


def test_a_meter_silent_at_the_loss_is_still_reported(clean_state):
    heal_pass()  # Redis's first start
    meter = "RL-SILENT"
    start = now_us() - 30 * MICRO
    rows = to_rows([reading(meter, REGION, start + i * 2 * MICRO, 4.0) for i in (0, 1)])
    received_at_us = now_us()
    assert fold_one(rows, received_at_us)["folded"]
    redis_client().flushdb()  # its state and its deadline are gone

    assert heal_pass().lost
    # Back from raw_readings: its last acceptance plus 3 intervals of 2 s.
    due = redis_client().zscore(keys_of(meter).deadlines, f"{REGION}\n{meter}")
    assert due == pytest.approx(received_at_us / MICRO + 3 * 2)
    with session_scope() as session:
        alerting.sweep_silent_meters(
            session, get_detection_store(), datetime.now(UTC) + timedelta(seconds=30)
        )
    assert query("SELECT type, status FROM alerts WHERE meter_id = %s", (meter,)) == [
        ("METER_OUTAGE", "active")
    ]


def test_a_meter_reporting_twice_an_hour_is_watched_again_after_the_loss(clean_state):
    heal_pass()  # Redis's first start
    meter = "RL-RARE"
    # Its last two readings came 100 and 70 minutes ago, each accepted as it was sent.
    first, last = now_us() - 100 * 60 * MICRO, now_us() - 70 * 60 * MICRO
    for ts in (first, last):
        assert fold_one(to_rows([reading(meter, REGION, ts, 4.0)]), ts)["folded"]
    flush_now()  # its meter row's last_seen is the newest reading
    redis_client().flushdb()

    assert heal_pass() == healing.HealingReport(lost=True, deadlines=1)
    # Its deadline is still 20 minutes ahead: the last acceptance plus 3 gaps of 30 minutes.
    due = redis_client().zscore(keys_of(meter).deadlines, f"{REGION}\n{meter}")
    assert due == pytest.approx(last / MICRO + 3 * 30 * 60)


def test_a_deadline_that_passed_long_before_the_loss_is_not_put_back(clean_state):
    heal_pass()  # Redis's first start
    meter = "RL-GONE"
    # Two readings 10 s apart, 3 hours ago: it fell silent long before the loss.
    first = now_us() - 3 * 3600 * MICRO
    for ts in (first, first + 10 * MICRO):
        assert fold_one(to_rows([reading(meter, REGION, ts, 4.0)]), ts)["folded"]
    redis_client().flushdb()

    assert heal_pass() == healing.HealingReport(lost=True, deadlines=0)
    assert redis_client().zscore(keys_of(meter).deadlines, f"{REGION}\n{meter}") is None
