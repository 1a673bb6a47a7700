"""Periodic window work: flush closed windows, sample queue depths and open windows."""

from __future__ import annotations

import time
from datetime import UTC
from datetime import datetime

from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.db import raw_connection
from segs.redis_client import get_redis
from segs.services.alerts import rules as alerting
from segs.services.shared.keyspace import FLUSH_LOCK
from segs.services.spine import flush
from segs.services.spine import healing
from segs.tasks.alerts import evaluate_overloads
from segs.tasks.alerts import get_detection_store
from segs.tasks.queues import queue_depths
from segs.tasks.retries import RETRIED_BY_NEXT_RUN
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store

logger = get_task_logger(__name__)


@app.task(
    name="segs.tasks.windows.flush_closed_windows",
    queue="default",
    acks_late=True,
    **RETRIED_BY_NEXT_RUN,
)
def flush_closed_windows() -> dict[str, int]:
    """Merge every closed window into PostgreSQL.

    Safe twice: one run at a time holds the flush lock (another skips), and the flush log
    keeps a window moved out of Redis from being merged twice (segs.services.spine.flush).
    """
    client = get_redis()
    # One flush at a time: a slow run must not race the next beat tick over the same windows.
    lock = client.lock(FLUSH_LOCK, timeout=300, blocking=False)
    if not lock.acquire():
        return {"skipped": 1}
    started = time.perf_counter()
    try:
        with raw_connection() as conn:
            report = flush.flush_closed_windows(
                conn, get_window_store(), app.segs_settings, datetime.now(UTC)
            )
    finally:
        lock.release()
    metrics.TASK_DURATION.labels("flush_closed_windows").observe(time.perf_counter() - started)
    regional = alerting.newest_regional_windows(report.flushed)
    if regional:
        evaluate_overloads.delay(regional)
    regions = sorted({window.region for window in report.flushed if window.size == "1m"})
    if regions:
        # Prices follow the load the flush just wrote (segs.tasks.tariffs).
        app.send_task("segs.tasks.tariffs.recalculate_prices", args=[regions], queue="default")
    if report.windows:
        logger.info(
            "flushed %d windows (%d meter rows, %d late readings merged)",
            report.windows,
            report.rows,
            report.late_readings,
        )
    return {
        "windows": report.windows,
        "rows": report.rows,
        "late_readings": report.late_readings,
        "quarantined": len(report.quarantined),
    }


@app.task(
    name="segs.tasks.windows.heal_after_redis_loss",
    queue="default",
    acks_late=True,
    **RETRIED_BY_NEXT_RUN,
)
def heal_after_redis_loss() -> dict[str, int]:
    """Notice a Redis that lost its memory, and rebuild the aggregates its windows held once the
    batches from before the loss have settled (segs.services.spine.healing).

    Safe twice: a loss is recorded by one run only, the one whose SET NX puts the generation
    marker back, and a rebuild rewrites a quarter-hour from raw_readings, so doing it again
    gives the same rows.
    """
    with raw_connection() as conn:
        report = healing.heal(
            conn,
            get_redis(),
            get_window_store(),
            get_pending_ledger(),
            get_detection_store(),
            app.segs_settings,
            datetime.now(UTC),
        )
    if report.lost:
        logger.warning(
            "Redis holds no generation marker (it is new, or lost its memory): put back %d "
            "silence deadlines; the aggregates its windows may have held are rebuilt",
            report.deadlines,
        )
    if report.healed:
        logger.warning("rebuilt what Redis lost (%d quarter-hours)", report.rebuilt)
    return {"rebuilt": report.rebuilt, "waiting": report.waiting, "healed": report.healed}


@app.task(
    name="segs.tasks.windows.sample_queue_depths",
    queue="default",
    ignore_result=True,
    **RETRIED_BY_NEXT_RUN,
)
def sample_queue_depths() -> None:
    """Publish queue depths and open-window counts as gauges (safe twice: it only sets them)."""
    settings = app.segs_settings
    for queue, depth in queue_depths(
        ["default", "notifications", *settings.reading_queues]
    ).items():
        metrics.QUEUE_DEPTH.labels(queue).set(depth)
    open_windows = get_window_store().open_windows_by_size()
    for size in ("1m", "15m"):
        metrics.OPEN_WINDOWS.labels(size).set(open_windows.get(size, 0))
