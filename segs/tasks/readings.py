"""Reading batches: one task per shard per ingestion request, on queue ``readings.<shard>``."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.config import get_settings
from segs.db import raw_connection
from segs.domain.readings import ReadingRow
from segs.domain.sharding import queue_for_shard
from segs.redis_client import get_redis
from segs.services.archive import archive_and_fold
from segs.services.windows_store import WindowStore

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
def fold_batch(self: Task, rows: list[ReadingRow], received_at_us: int) -> dict[str, Any]:
    """Archive a shard's readings and fold the new ones into their windows."""
    started = time.perf_counter()
    with raw_connection() as conn:
        outcome = archive_and_fold(
            conn,
            WindowStore(get_redis()),
            get_settings(),
            batch_id=self.request.id,
            rows=rows,
            received_at_us=received_at_us,
            now=datetime.now(UTC),
        )
    metrics.TASK_DURATION.labels("fold_batch").observe(time.perf_counter() - started)
    if not outcome.folded and outcome.owned:
        logger.info("batch %s was folded before; nothing changed", self.request.id)
    return {"received": outcome.received, "owned": outcome.owned, "folded": outcome.folded}


def publish_batch(shard: int, rows: list[ReadingRow], received_at_us: int) -> None:
    """Enqueue one shard's rows; returns once the broker holds the message (confirms on AMQP)."""
    fold_batch.apply_async(
        args=(rows, received_at_us),
        queue=queue_for_shard(shard),
        # Celery would otherwise build a repr of every row for its logs and events.
        argsrepr=f"(<{len(rows)} readings>, {received_at_us})",
        kwargsrepr="{}",
    )
