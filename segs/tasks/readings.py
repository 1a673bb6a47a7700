"""Reading batches: one task per shard per ingestion request, on queue ``readings.<shard>``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

import redis
from celery import Task
from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.config import get_settings
from segs.db import own_connection
from segs.domain.readings import ReadingRow
from segs.domain.sharding import queue_for_shard
from segs.services import dead_letters
from segs.services.archive import archive_and_fold
from segs.services.outages import is_outage
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import store_findings
from segs.tasks.queues import queue_depths
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store

logger = get_task_logger(__name__)

# Longest wait between two tries of a batch.
_BACKOFF_MAX_S = 60


@app.task(
    name="segs.tasks.readings.fold_batch",
    bind=True,
    # Idempotent (see segs.services.archive): safe to run again after a killed worker.
    acks_late=True,
    reject_on_worker_lost=True,
)
def fold_batch(
    self: Task, rows: list[ReadingRow] | None, received_at_us: int, data_failures: int = 0
) -> dict[str, Any]:
    """Archive a shard's readings and fold the new ones into their windows.

    *rows* is None when the batch waits in the pending ledger under this task's id (the Redis
    broker, segs.services.pending). A batch already folded has left the ledger: its run then
    folds nothing and only stores findings a crash may have left behind.

    Accepted readings are never dropped: an outage (segs.services.outages) is retried with
    backoff for as long as it lasts. Any other failure is retried SEGS_DATA_ERROR_ATTEMPTS times
    in all (*data_failures* counts them), then the batch becomes a dead letter.
    """
    started = time.perf_counter()
    batch_id = self.request.id
    if rows is None:
        rows = get_pending_ledger().rows_of(batch_id) or []
    try:
        outcome = _fold(batch_id, rows, received_at_us)
    except Exception as exc:
        if not is_outage(exc):
            data_failures += 1
            if data_failures >= get_settings().data_error_attempts:
                return _set_aside(self, rows, received_at_us, exc, data_failures)
        raise _retry_later(self, exc, data_failures) from exc
    metrics.TASK_DURATION.labels("fold_batch").observe(time.perf_counter() - started)
    if not outcome["folded"] and outcome["owned"]:
        logger.info("batch %s was folded before; nothing changed", batch_id)
    return outcome


def _fold(batch_id: str, rows: list[ReadingRow], received_at_us: int) -> dict[str, Any]:
    with own_connection() as conn:
        outcome = archive_and_fold(
            conn,
            get_window_store(),
            get_detection_store(),
            get_settings(),
            batch_id=batch_id,
            rows=rows,
            received_at_us=received_at_us,
            now=datetime.now(UTC),
        )
    if outcome.findings:
        # After the fold: a reading is in its window even if storing an alert fails and retries.
        store_findings(batch_id, outcome.findings)
    return {"received": outcome.received, "owned": outcome.owned, "folded": outcome.folded}


def _retry_later(task: Task, exc: Exception, data_failures: int) -> Exception:
    """The retry to raise: with backoff, counting the data failures so far."""
    countdown = min(2**task.request.retries, _BACKOFF_MAX_S)
    try:
        # Until the retry runs, the stalled-batch re-publisher must not add a copy of its own.
        get_pending_ledger().hold(task.request.id, time.time() + countdown)
    except redis.RedisError:
        # Redis itself is out: the retry must happen all the same (with RabbitMQ nothing else
        # keeps the batch); at worst the re-publisher sends a copy, which folds nothing twice.
        logger.warning("could not hold batch %s in the ledger during its retry", task.request.id)
    logger.warning("batch %s failed (%r); trying again in %d s", task.request.id, exc, countdown)
    return task.retry(
        exc=exc, countdown=countdown, max_retries=None, kwargs={"data_failures": data_failures}
    )


def _set_aside(
    task: Task, rows: list[ReadingRow], received_at_us: int, exc: Exception, attempts: int
) -> dict[str, Any]:
    """Make the batch a dead letter and let it go (an outage meanwhile retries, as ever)."""
    batch_id = task.request.id
    shard = _shard_of(task)
    try:
        with own_connection() as conn:
            dead_letters.set_aside(
                conn,
                batch_id=batch_id,
                shard=shard,
                received_at_us=received_at_us,
                rows=rows,
                error=exc,
                attempts=attempts,
                folded=get_window_store().was_folded(batch_id),
            )
        # Out of the ledger: the re-publisher must never send it again by itself.
        get_pending_ledger().settle(batch_id)
    except Exception as outage:
        if not is_outage(outage):
            raise
        raise _retry_later(task, outage, attempts) from outage
    metrics.DEAD_LETTERS.inc()
    logger.error(
        "batch %s (%d readings) failed %d times and is now a dead letter: %r",
        batch_id,
        len(rows),
        attempts,
        exc,
    )
    return {"received": len(rows), "owned": 0, "folded": False, "dead_letter": True}


def _shard_of(task: Task) -> int:
    """The shard whose queue delivered the task (0 if that cannot be told)."""
    queue = str((task.request.delivery_info or {}).get("routing_key") or "")
    prefix = queue_for_shard(0)[:-1]
    suffix = queue.removeprefix(prefix)
    return int(suffix) if queue.startswith(prefix) and suffix.isdigit() else 0


def publish_batch(
    shard: int, rows: list[ReadingRow], received_at_us: int, task_id: str | None = None
) -> None:
    """Enqueue one shard's rows; returns once the broker holds the message (confirms on AMQP).

    *task_id* names the batch; a replayed dead letter keeps its own.
    """
    task_id = task_id or str(uuid.uuid4())
    ledger = get_pending_ledger()
    if get_settings().pending_ledger:
        # The ledger keeps the rows; the message only names the batch.
        ledger.record(task_id, shard, rows, received_at_us, time.time())
        sent: list[ReadingRow] | None = None
    else:
        # RabbitMQ keeps the message itself; the ledger only times it (ingestion watermark).
        ledger.record(task_id, shard, None, received_at_us, time.time())
        sent = rows
    try:
        _send(task_id, shard, sent, received_at_us)
    except BaseException:
        ledger.settle(task_id)
        raise


def _send(task_id: str, shard: int, rows: list[ReadingRow] | None, received_at_us: int) -> None:
    fold_batch.apply_async(
        args=(rows, received_at_us),
        task_id=task_id,
        queue=queue_for_shard(shard),
        # Celery would otherwise build a repr of every row for its logs and events.
        argsrepr=(
            f"(<{len(rows)} readings>, {received_at_us})"
            if rows is not None
            else f"(<rows in the pending ledger>, {received_at_us})"
        ),
        kwargsrepr="{}",
    )


@app.task(name="segs.tasks.readings.requeue_stalled_batches", acks_late=True)
def requeue_stalled_batches() -> int:
    """Re-publish batches published SEGS_REQUEUE_AFTER_S ago and still not folded."""
    settings = get_settings()
    if not settings.pending_ledger:
        return 0  # RabbitMQ keeps unacknowledged messages itself; the ledger holds no rows
    ledger = get_pending_ledger()
    now = time.time()
    # A batch can still be waiting in its queue only if that queue holds messages: re-publishing
    # it then would only add a copy to a backlog (and copies feed the backlog). So only the
    # batches of empty queues count as stalled; the others' turn comes once theirs drain.
    depths = queue_depths(settings.reading_queues)
    idle_shards = {shard for shard in range(settings.shards) if depths[queue_for_shard(shard)] == 0}
    stalled = ledger.claim_stalled(now - settings.requeue_after_s, now, idle_shards)
    for batch in stalled:
        _send(batch.task_id, batch.shard, None, batch.received_at_us)
    metrics.PENDING_BATCHES.set(ledger.size())
    if stalled:
        metrics.BATCHES_REQUEUED.inc(len(stalled))
        logger.warning("re-published %d stalled reading batches", len(stalled))
    return len(stalled)
