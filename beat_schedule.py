"""The periodic jobs run by ``celery -A segs beat``, one at a time (RedBeat): the flush of closed
windows, healing after a Redis loss, queue-depth samples, the stalled-batch safety net, the
silent-meter sweep, partitions, detection-state expiry, repricing, billing, overdue invoices,
the notification outbox and digests.

``beat_schedule(settings)`` builds the table for any settings (celeryconfig and the tests use
it); ``BEAT_SCHEDULE`` is the table for the environment's settings, read when first asked for.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery.schedules import crontab

from segs.config import Settings
from segs.config import get_settings


# One table per settings, so celeryconfig's schedule and BEAT_SCHEDULE are the same object.
@lru_cache(maxsize=2)
def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic jobs run by ``celery -A segs beat`` (one at a time: RedBeat)."""
    return {
        "flush-closed-windows": {
            "task": "segs.tasks.windows.flush_closed_windows",
            # Run every SEGS_FLUSH_INTERVAL_S (5 s); expire so a stalled worker does not pile
            # them up
            "schedule": timedelta(seconds=settings.flush_interval_s),
            "options": {"expires": settings.flush_interval_s, "queue": "default"},
        },
        "heal-after-redis-loss": {
            "task": "segs.tasks.windows.heal_after_redis_loss",
            # Every 15 s: notices a Redis that lost its memory, and rebuilds what it held.
            "schedule": timedelta(seconds=15),
            "options": {"expires": 15, "queue": "default"},
        },
        "sample-queue-depths": {
            "task": "segs.tasks.windows.sample_queue_depths",
            # Run every 5 seconds
            "schedule": timedelta(seconds=5),
            "options": {"expires": 5, "queue": "default"},
        },
        "requeue-stalled-batches": {
            "task": "segs.tasks.readings.requeue_stalled_batches",
            # Run every 15 seconds: the Redis broker's safety net (segs.services.spine.pending)
            "schedule": timedelta(seconds=15),
            "options": {"expires": 15, "queue": "default"},
        },
        "sweep-silent-meters": {
            "task": "segs.tasks.alerts.sweep_silent_meters",
            # Run every SEGS_SILENT_SWEEP_INTERVAL_S (10 s): meters that stopped reporting
            "schedule": timedelta(seconds=settings.silent_sweep_interval_s),
            "options": {"expires": settings.silent_sweep_interval_s, "queue": "default"},
        },
        "maintain-partitions": {
            "task": "segs.tasks.maintenance.maintain_partitions",
            # Run every hour: create the coming days' partitions, drop expired ones
            "schedule": timedelta(hours=1),
            "options": {"expires": 3600, "queue": "default"},
        },
        "expire-detection-states": {
            "task": "segs.tasks.alerts.expire_detection_states",
            # Run every hour: meters silent for SEGS_DETECTION_STATE_TTL_DAYS forget their state
            "schedule": timedelta(hours=1),
            "options": {"expires": 3600, "queue": "default"},
        },
        "recalculate-prices": {
            "task": "segs.tasks.tariffs.recalculate_prices",
            # Run every SEGS_TARIFF_REFRESH_INTERVAL_S (60 s): time-of-use hours and override
            # windows change prices even when no flush runs
            "schedule": timedelta(seconds=settings.tariff_refresh_interval_s),
            "options": {"expires": settings.tariff_refresh_interval_s, "queue": "default"},
        },
        "generate-invoices": {
            "task": "segs.tasks.billing.generate_invoices",
            # Run at 06:00 UTC on the 1st and 2nd of each month: every region's local month has
            # ended; the second run picks up late readings' meters (re-runs are idempotent)
            "schedule": crontab(minute=0, hour=6, day_of_month="1,2"),
            "options": {"expires": 3600, "queue": "default"},
        },
        "mark-overdue-invoices": {
            "task": "segs.tasks.billing.mark_overdue",
            # Run every hour: pending invoices past their due date become overdue
            "schedule": timedelta(hours=1),
            "options": {"expires": 3600, "queue": "default"},
        },
        "redispatch-stale-transitions": {
            "task": "segs.tasks.notifications.redispatch_stale_transitions",
            # Run every SEGS_DISPATCH_SWEEP_INTERVAL_S (15 s): the alert notifications' outbox
            "schedule": timedelta(seconds=settings.dispatch_sweep_interval_s),
            "options": {"expires": settings.dispatch_sweep_interval_s, "queue": "default"},
        },
        "send-due-digests": {
            "task": "segs.tasks.notifications.send_due_digests",
            # Run every 30 s: a recipient's digest goes out at most 30 s after SEGS_NOTIFY_DIGEST_S
            "schedule": timedelta(seconds=30),
            "options": {"expires": 30, "queue": "default"},
        },
    }


def __getattr__(name: str) -> Any:
    # BEAT_SCHEDULE is built when asked for, so importing beat_schedule() reads no environment.
    if name == "BEAT_SCHEDULE":
        return beat_schedule(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
