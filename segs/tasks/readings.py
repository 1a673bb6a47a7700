"""Reading batches: one task per shard per ingestion request, on queue ``readings.<shard>``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.config import get_settings
from segs.db import own_connection
from segs.domain.readings import ReadingRow
from segs.domain.sharding import queue_for_shard
from segs.services.archive import archive_and_fold
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import store_findings
from segs.tasks.queues import queue_depths
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store

logger = get_task_logger(__name__)


@app.task(
    name="segs.tasks.readings.fold_batch",
    bind=True,
    # Idempotent (see segs.services.archive): safe to run again after a killed worker.
    acks_late=True,
    reject_on_worker_lost=True,
    # Accepted readings must never be dropped: PostgreSQL or Redis being down only delays them.
    autoretry_for=(Exception,),
    max_retries=None,
    retry_backoff=True,
    retry_backoff_max=60,
)
def fold_batch(self: Task, rows: list[ReadingRow] | None, received_at_us: int) -> dict[str, Any]:
    """Archive a shard's readings and fold the new ones into their windows.

    *rows* is None when the batch waits in the pending ledger under this task's id (the Redis
    broker, segs.services.pending). A batch already folded has left the ledger: its run then
    folds nothing and only stores findings a crash may have left behind.
    """
    started = time.perf_counter()
    if rows is None:
        rows = get_pending_ledger().rows_of(self.request.id) or []
    with own_connection() as conn:
        outcome = archive_and_fold(
            conn,
            get_window_store(),
            get_detection_store(),
            get_settings(),
            batch_id=self.request.id,
            rows=rows,
            received_at_us=received_at_us,
            now=datetime.now(UTC),
        )
    if outcome.findings:
        # After the fold: a reading is in its window even if storing an alert fails and retries.
        store_findings(self.request.id, outcome.findings)
    metrics.TASK_DURATION.labels("fold_batch").observe(time.perf_counter() - started)
    if not outcome.folded and outcome.owned:
        logger.info("batch %s was folded before; nothing changed", self.request.id)
    return {"received": outcome.received, "owned": outcome.owned, "folded": outcome.folded}


def publish_batch(shard: int, rows: list[ReadingRow], received_at_us: int) -> None:
    """Enqueue one shard's rows; returns once the broker holds the message (confirms on AMQP)."""
    task_id = str(uuid.uuid4())
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
