"""Celery's configuration as a function of the settings: the worker's, beat's and flower's
(celeryconfig, from the environment) or the tests' own (segs.celery_app.SegsCelery). The
periodic jobs are in beat_schedule.py."""

from __future__ import annotations

from typing import Any

from kombu import Queue

from beat_schedule import beat_schedule
from segs.config import Settings
from segs.redis_client import cluster_mode

TASK_MODULES = (
    "segs.tasks.readings",
    "segs.tasks.windows",
    "segs.tasks.maintenance",
    "segs.tasks.mail",
    "segs.tasks.alerts",
    "segs.tasks.notifications",
    "segs.tasks.worker_signals",
    "segs.tasks.tariffs",
    "segs.tasks.billing",
)

# Give up publishing quickly: the API answers 503 and the client retries.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}


def broker_transport(settings: Settings) -> str | None:
    """kombu's transport for the broker URL: SEGS's own Redis transport (segs.broker) for
    redis://, kombu's choice by scheme otherwise (a rediss:// URL keeps kombu's TLS defaults)."""
    return "segs.broker:Transport" if settings.broker_url.startswith("redis://") else None


def broker_transport_options(settings: Settings) -> dict[str, object]:
    if settings.broker_url.startswith(("amqp", "pyamqp")):
        # RabbitMQ: basic_publish returns only once the broker confirms it holds the message.
        return {"confirm_publish": True}
    # Redis: SEGS sends no task priorities, so each queue is one list; kombu's default of four
    # lists per queue made every BRPOP name 40 keys instead of 10.
    options: dict[str, object] = {"priority_steps": [0]}
    if settings.pending_ledger:
        # One pop takes up to a group's worth of messages (segs.broker).
        options["pop_count"] = settings.fold_group_messages
        # The pending ledger keeps every batch until the fold that settles it, and beat sends a
        # stalled one again (segs.services.spine.pending), so kombu's own bookkeeping of
        # unacknowledged messages, two round trips per message in the worker's single consuming
        # thread, is not needed and is off (BENCHMARKS.md, "Issue 16").
        return {**options, "ack_emulation": False}
    # Without the ledger: an unacknowledged message returns to its queue after this long.
    return {**options, "visibility_timeout": settings.visibility_timeout_s}


def celery_settings(settings: Settings) -> dict[str, Any]:
    """Celery's settings (lowercase, Celery 4+ style) for SEGS *settings*."""
    return dict(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport=broker_transport(settings),
        broker_transport_options=broker_transport_options(settings),
        task_serializer="orjson",  # registered in segs.celery_app
        accept_content=["orjson", "json"],
        timezone="UTC",
        enable_utc=True,
        task_ignore_result=True,
        imports=TASK_MODULES,
        task_default_queue="default",
        # "notifications" is its own queue so a slow SMTP server or webhook never delays
        # readings.
        task_queues=[Queue("default"), Queue("notifications")]
        + [Queue(name) for name in settings.reading_queues],
        task_create_missing_queues=False,
        # No task_routes: each task names its queue in its decorator (segs.tasks), and reading
        # batches name their shard queue when sent. app.send_task, which sends by name only,
        # names the queue too.
        # A killed worker's task runs again: each task's docstring says why that is safe (or
        # what a second run does).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Reading batch messages wait unacknowledged in the worker's main process until their
        # group is folded (segs.tasks.batched): room for a few groups per pool process.
        worker_prefetch_multiplier=2 * settings.fold_group_messages,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        beat_schedule=beat_schedule(settings),
        # Beat runs once: RedBeat keeps the schedule in Redis under a lock, so a second
        # `celery -A segs beat` (a standby on another host) waits, and takes over within
        # redbeat_lock_timeout when the first one dies. Its keys share one hash tag (Redis
        # Cluster). segs.tasks.beat keeps beat alive through a Redis outage or a Redis that lost
        # its memory.
        beat_scheduler="segs.tasks.beat:SegsBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_redis_options={"cluster": cluster_mode(settings.redis_url, settings.redis_cluster)},
        redbeat_key_prefix="segs:{beat}:",
        redbeat_lock_key="segs:{beat}:lock",
        redbeat_lock_timeout=settings.beat_lock_timeout_s,
        # The lock is renewed at each wake-up, so beat wakes well within its timeout.
        beat_max_loop_interval=min(5, settings.beat_lock_timeout_s / 3),
    )
