"""SIGKILL the worker mid-load: every accepted reading is counted exactly once after recovery.

With the Redis broker (kombu's ack emulation off) a killed worker's batches come back through the
pending ledger, which beat's re-publisher sends again after SEGS_REQUEUE_AFTER_S (3 s in the
tests); with RabbitMQ its unacknowledged messages come back as soon as its connection drops.
"""

from __future__ import annotations

import os
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

from tests import support
from tests.support import MICRO
from tests.support import WorkerProcess
from tests.support import assert_stored_equals_recomputed
from tests.support import broker_unacked
from tests.support import flush_now
from tests.support import now_us
from tests.support import past_15m_window
from tests.support import post_batch
from tests.support import query
from tests.support import queue_depths
from tests.support import raw_count
from tests.support import reading
from tests.support import wait_folded
from tests.support import wait_for
from tests.support import wait_recovered
from tests.support import wait_unacked_expired

pytestmark = pytest.mark.integration

METERS = 1000
MINUTES = 20
BATCH = 500
REGIONS = ("Mumbai-South", "Hyderabad-Central")


def make_batches(start_us: int) -> list[list[dict]]:
    """40 batches of 500: each batch is half the meters at one minute, minutes in mixed order."""
    batches = []
    for minute in [*range(0, MINUTES, 2), *reversed(range(1, MINUTES, 2))]:
        for half in range(2):
            batch = []
            for i in range(half * BATCH, (half + 1) * BATCH):
                power = ((i * 37 + minute * 101) % 2000) / 1000
                ts = start_us + (minute * 60 + i % 60) * MICRO + i
                batch.append(
                    reading(
                        f"K-{i:04d}",
                        REGIONS[i % 2],
                        ts,
                        power,
                        energy=round(power / 360, 6) if (i + minute) % 3 else None,
                        voltage=220 + (i % 200) / 10 if (i + minute) % 4 else None,
                    )
                )
            batches.append(batch)
    return batches


def lost_tasks_report(worker, tasks: list[str]) -> str:
    """Which published tasks never inserted a row, and what the worker's log says of them."""
    inserted = {
        batch_id for (batch_id,) in query("SELECT DISTINCT batch_id::text FROM raw_readings")
    }
    log = worker.log()
    lines = [
        f"task {task}: received {log.count(task)} time(s) per the worker log"
        for task in tasks
        if task not in inserted
    ]
    lines.append(f"queue depths: {queue_depths()}; {broker_unacked()}")
    return "\n".join(lines) + "\n" + log[-3000:]


def settled_so_far(worker: WorkerProcess) -> int:
    """The worker's settled count while it runs: a metrics file it is creating reads as none."""
    try:
        return worker.fold_runs()
    except struct.error:
        return 0


@pytest.mark.slow
def test_worker_killed_mid_load(app, worker, published):
    start = past_15m_window(45)
    batches = make_batches(start)
    assert sum(map(len, batches)) == METERS * MINUTES == 20_000
    answers: list[tuple[int, dict]] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            with app.test_client() as client:
                for batch in batches:
                    answers.append(post_batch(client, batch))
                    # Paced, so the load outlasts the worker's first groups: each waits up to
                    # SEGS_FOLD_GROUP_WAIT_S to fill, and the kill must come in mid-load.
                    time.sleep(0.05)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    sender = threading.Thread(target=send, name="load")
    sender.start()
    try:
        # Kill once the worker is demonstrably busy with the load and the load is still coming.
        # Rows are committed before their batch is counted settled: wait for both.
        wait_for(
            lambda: len(answers) >= 4 and raw_count() >= 250 and settled_so_far(worker) > 0,
            timeout=60,
            message=worker.log,
        )
        worker.kill()
        rows_before_kill = raw_count()
        assert len(answers) < len(batches), "the load ended before the kill"
        assert worker.fold_runs() > 0, "the worker had settled no batch before the kill"
        # The replacement worker comes up once the dead one's messages are due for redelivery.
        wait_unacked_expired()
        worker.start()
    finally:
        sender.join(timeout=120)
    assert not sender.is_alive()
    assert failures == []

    assert [status for status, _ in answers] == [202] * len(batches)
    accepted = sum(body["accepted"] for _, body in answers)
    assert accepted == 20_000
    assert sum(body["duplicates"] + body["rejected"] for _, body in answers) == 0
    tasks = published.snapshot()
    assert len(tasks) == len(set(tasks)) == 4 * len(batches)  # one task per shard and batch
    assert 0 < rows_before_kill < accepted

    wait_recovered(accepted, timeout=90, log=lambda: lost_tasks_report(worker, tasks))
    # What is left are copies the ledger re-published while the replacement worker caught up
    # (SEGS_REQUEUE_AFTER_S is 3 s here); each folds nothing, but the flush must wait for them.
    wait_for(lambda: sum(queue_depths().values()) == 0, timeout=60, message=queue_depths)
    # Two 15-minute windows and twenty 1-minute windows per region.
    assert flush_now() == {"windows": 44, "rows": 22_000, "late_readings": 0, "quarantined": 0}

    assert query("SELECT count(*), count(DISTINCT (meter_id, ts)) FROM raw_readings") == [
        (20_000, 20_000)
    ]
    assert query("SELECT count(*), sum(reading_count) FROM aggregates_1m") == [(20_000, 20_000)]
    assert query("SELECT count(*), sum(reading_count) FROM aggregates_15m") == [(2_000, 20_000)]
    assert query("SELECT max(flush_count) FROM aggregates_1m") == [(1,)]
    assert query(
        "SELECT count(*), sum(reading_count), sum(meter_count) FROM regional_aggregates_1m"
    ) == [(40, 20_000, 20_000)]
    assert query(
        "SELECT count(*), sum(reading_count), sum(meter_count) FROM regional_aggregates_15m"
    ) == [(4, 20_000, 2_000)]
    assert_stored_equals_recomputed()


def test_batch_in_flight_to_a_killed_worker_is_not_lost(client, worker):
    """The worker dies after the broker handed it a message but before it recorded it.

    The worker is frozen (SIGSTOP) while it waits for messages, a batch is posted, and once the
    broker has handed the message over (its queue is empty again) the worker is SIGKILLed. An
    accepted batch must still be processed by the next worker. RabbitMQ requeues the unacked
    delivery when the connection drops. The Redis transport's BRPOP removes the message from
    the list before the worker copies it to its ``unacked`` hash, so it must not depend on that.
    """
    from segs.domain.sharding import shard_for

    meter = "INFLIGHT-1"
    queue = f"readings.{shard_for(meter, support.settings().shards)}"
    moment = now_us() - 600 * MICRO
    accepted = 0
    for attempt in range(10):
        os.killpg(worker.pid, signal.SIGSTOP)
        batch = [
            reading(meter, REGIONS[0], moment + (attempt * 10 + k) * MICRO, 1.0) for k in range(10)
        ]
        assert post_batch(client, batch)[1]["accepted"] == 10
        accepted += 10
        try:
            # Handed to the frozen worker's pending BRPOP (or, on RabbitMQ, pushed to it).
            wait_for(lambda: queue_depths()[queue] == 0, timeout=1.5)
            break
        except AssertionError:
            # Its BRPOP had timed out before we froze it: let it take this one and try again.
            os.killpg(worker.pid, signal.SIGCONT)
            wait_folded(accepted, timeout=30, log=worker.log)
    else:
        pytest.fail("could not catch the worker waiting for a message")
    worker.kill()
    wait_unacked_expired()
    worker.start()
    wait_recovered(
        accepted,
        timeout=30,
        log=lambda: f"{queue_depths()}; {broker_unacked()}\n{worker.log()[-2000:]}",
    )
    assert query("SELECT count(*) FROM raw_readings WHERE meter_id = %s", (meter,)) == [(accepted,)]


@pytest.mark.slow
def test_killed_pool_processes_send_their_groups_back(app, worker):
    """SIGKILL the worker's pool processes (not the worker) mid-load: the groups they held go
    back to their queues and are folded by the pool processes that replace them, once."""
    start = past_15m_window(45)
    batches = make_batches(start)[:16]
    answers: list[tuple[int, dict]] = []

    def send() -> None:
        with app.test_client() as client:
            for batch in batches:
                answers.append(post_batch(client, batch))

    sender = threading.Thread(target=send, name="load")
    sender.start()
    try:
        wait_for(lambda: raw_count() >= 500, timeout=60, message=worker.log)
        listed = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text()
        children = [int(pid) for pid in listed.split()]
        assert children
        for pid in children:
            os.kill(pid, signal.SIGKILL)
    finally:
        sender.join(timeout=120)
    accepted = sum(body["accepted"] for _, body in answers)
    assert accepted == 16 * BATCH
    # The same worker, never restarted, gets every batch folded.
    wait_recovered(accepted, timeout=90, log=worker.log)
    wait_for(lambda: sum(queue_depths().values()) == 0, timeout=60, message=queue_depths)
    flush_now()
    assert query("SELECT sum(reading_count) FROM aggregates_1m") == [(accepted,)]
    assert_stored_equals_recomputed()
