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

# Jobs run on the default queue (their decorators say so too; the name travels with each message
# beat sends) and expire after one period, so a stalled worker does not pile them up.
_HOUR_S = 3600


def _job(task: str, schedule: timedelta | crontab, expires_s: float) -> dict[str, Any]:
    return {
        "task": task,
        "schedule": schedule,
        "options": {"expires": expires_s, "queue": "default"},
    }


def _every(task: str, period_s: float) -> dict[str, Any]:
    return _job(task, timedelta(seconds=period_s), period_s)


# One table per settings, so celeryconfig's schedule and BEAT_SCHEDULE are the same object.
@lru_cache(maxsize=2)
def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic jobs run by ``celery -A segs beat`` (one at a time: RedBeat)."""
    return {
        # Every SEGS_FLUSH_INTERVAL_S (5 s).
        "flush-closed-windows": _every(
            "segs.tasks.windows.flush_closed_windows", settings.flush_interval_s
        ),
        # Notices a Redis that lost its memory, and rebuilds what it held.
        "heal-after-redis-loss": _every("segs.tasks.windows.heal_after_redis_loss", 15),
        "sample-queue-depths": _every("segs.tasks.windows.sample_queue_depths", 5),
        # The Redis broker's safety net (segs.services.spine.pending).
        "requeue-stalled-batches": _every("segs.tasks.readings.requeue_stalled_batches", 15),
        # Every SEGS_SILENT_SWEEP_INTERVAL_S (10 s): meters that stopped reporting.
        "sweep-silent-meters": _every(
            "segs.tasks.alerts.sweep_silent_meters", settings.silent_sweep_interval_s
        ),
        # Create the coming days' partitions, drop expired ones.
        "maintain-partitions": _every("segs.tasks.maintenance.maintain_partitions", _HOUR_S),
        # Meters silent for SEGS_DETECTION_STATE_TTL_DAYS forget their state.
        "expire-detection-states": _every("segs.tasks.alerts.expire_detection_states", _HOUR_S),
        # Every SEGS_TARIFF_REFRESH_INTERVAL_S (60 s): time-of-use hours and override windows
        # change prices even when no flush runs.
        "recalculate-prices": _every(
            "segs.tasks.tariffs.recalculate_prices", settings.tariff_refresh_interval_s
        ),
        # 06:00 UTC on the 1st and 2nd of each month: every region's local month has ended; the
        # second run picks up late readings' meters (re-runs are idempotent).
        "generate-invoices": _job(
            "segs.tasks.billing.generate_invoices",
            crontab(minute=0, hour=6, day_of_month="1,2"),
            _HOUR_S,
        ),
        # Pending invoices past their due date become overdue.
        "mark-overdue-invoices": _every("segs.tasks.billing.mark_overdue", _HOUR_S),
        # Every SEGS_DISPATCH_SWEEP_INTERVAL_S (15 s): the alert notifications' outbox.
        "redispatch-stale-transitions": _every(
            "segs.tasks.notifications.redispatch_stale_transitions",
            settings.dispatch_sweep_interval_s,
        ),
        # A recipient's digest goes out at most 30 s after SEGS_NOTIFY_DIGEST_S.
        "send-due-digests": _every("segs.tasks.notifications.send_due_digests", 30),
    }


def __getattr__(name: str) -> Any:
    # BEAT_SCHEDULE is built when asked for, so importing beat_schedule() reads no environment.
    if name == "BEAT_SCHEDULE":
        return beat_schedule(get_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
