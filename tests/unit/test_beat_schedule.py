"""The beat schedule names registered tasks, declared queues, and expiries within the period."""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import timedelta

import pytest

import celeryconfig
from beat_schedule import BEAT_SCHEDULE
from segs.celery_app import app


@pytest.fixture(scope="module")
def registered_tasks():
    for module in celeryconfig.imports:
        importlib.import_module(module)
    return set(app.tasks)


def test_schedule_entries():
    assert set(BEAT_SCHEDULE) == {
        "flush-closed-windows",
        "heal-after-redis-loss",
        "sample-queue-depths",
        "requeue-stalled-batches",
        "maintain-partitions",
        "sweep-silent-meters",
        "expire-detection-states",
        "recalculate-prices",
        "generate-invoices",
        "mark-overdue-invoices",
        "redispatch-stale-transitions",
        "send-due-digests",
    }
    assert celeryconfig.beat_schedule is BEAT_SCHEDULE


def test_the_task_modules_register_the_tasks(registered_tasks):
    assert {
        "segs.tasks.readings.fold_batch",
        "segs.tasks.windows.flush_closed_windows",
        "segs.tasks.windows.sample_queue_depths",
        "segs.tasks.maintenance.maintain_partitions",
        "segs.tasks.readings.requeue_stalled_batches",
        "segs.tasks.alerts.sweep_silent_meters",
        "segs.tasks.alerts.evaluate_overloads",
        "segs.tasks.alerts.expire_detection_states",
        "segs.tasks.notifications.announce_tariff_change",
        "segs.tasks.tariffs.recalculate_prices",
        "segs.tasks.billing.generate_invoices",
        "segs.tasks.billing.mark_overdue",
        "segs.tasks.notifications.redispatch_stale_transitions",
        "segs.tasks.notifications.send_due_digests",
        "segs.tasks.notifications.deliver_digest",
    } <= registered_tasks


@pytest.mark.parametrize("entry", sorted(BEAT_SCHEDULE))
def test_entry_is_runnable(entry, registered_tasks):
    spec = BEAT_SCHEDULE[entry]
    assert spec["task"] in registered_tasks
    schedule = spec["schedule"]
    # A crontab entry (the monthly billing run) fires at most hourly.
    interval = (
        schedule.total_seconds() if isinstance(schedule, timedelta) else timedelta(hours=1).seconds
    )
    assert interval > 0
    options = spec["options"]
    # A stalled worker must not pile up runs: each expires within its own period.
    assert 0 < options["expires"] <= interval
    declared = {queue.name for queue in celeryconfig.task_queues}
    assert options["queue"] in declared


def test_flush_runs_every_flush_interval():
    from segs.config import get_settings

    spec = BEAT_SCHEDULE["flush-closed-windows"]
    assert spec["schedule"] == timedelta(seconds=get_settings().flush_interval_s)


def test_outbox_sweep_runs_every_dispatch_sweep_interval():
    from segs.config import get_settings

    spec = BEAT_SCHEDULE["redispatch-stale-transitions"]
    assert spec["schedule"] == timedelta(seconds=get_settings().dispatch_sweep_interval_s)


def test_digests_are_sent_every_30_seconds():
    spec = BEAT_SCHEDULE["send-due-digests"]
    assert spec["schedule"] == timedelta(seconds=30)
    assert spec["options"] == {"expires": 30, "queue": "default"}


def test_declared_queues_are_default_notifications_and_one_per_shard():
    from segs.config import get_settings

    shards = get_settings().shards
    assert [queue.name for queue in celeryconfig.task_queues] == ["default", "notifications"] + [
        f"readings.{k}" for k in range(shards)
    ]
    assert celeryconfig.task_default_queue == "default"
    assert celeryconfig.task_acks_late is True
    assert celeryconfig.task_reject_on_worker_lost is True


def test_billing_runs_monthly_and_prices_refresh_every_interval():
    from celery.schedules import crontab

    from segs.config import get_settings

    billing = BEAT_SCHEDULE["generate-invoices"]["schedule"]
    assert isinstance(billing, crontab)
    assert billing.day_of_month == {1, 2}
    assert BEAT_SCHEDULE["recalculate-prices"]["schedule"] == timedelta(
        seconds=get_settings().tariff_refresh_interval_s
    )


def test_broker_transport_options_follow_the_broker():
    from segs.celery_setup import broker_transport_options
    from segs.config import get_settings

    defaults = get_settings()
    amqp = replace(defaults, broker_url="amqp://guest@localhost//", pending_ledger=False)
    assert broker_transport_options(amqp) == {"confirm_publish": True}
    ledger = replace(defaults, broker_url="redis://localhost:6379/1", pending_ledger=True)
    # The ledger keeps each batch until its fold: kombu's unacked bookkeeping is off, and one
    # pop may take a group's worth of messages (segs.broker).
    assert broker_transport_options(ledger) == {
        "priority_steps": [0],
        "pop_count": defaults.fold_group_messages,
        "ack_emulation": False,
    }
    no_ledger = replace(ledger, pending_ledger=False)
    assert broker_transport_options(no_ledger) == {
        "priority_steps": [0],
        "visibility_timeout": defaults.visibility_timeout_s,
    }


def test_a_plain_redis_broker_uses_the_segs_transport():
    from segs.celery_setup import broker_transport
    from segs.config import get_settings

    defaults = get_settings()
    assert broker_transport(replace(defaults, broker_url="redis://h:6379/1")) == (
        "segs.broker:Transport"
    )
    # kombu's own transports by scheme: RabbitMQ, and TLS Redis with kombu's TLS defaults.
    assert broker_transport(replace(defaults, broker_url="amqp://guest@h//")) is None
    assert broker_transport(replace(defaults, broker_url="rediss://h:6380/1")) is None
    expected = "segs.broker:Transport" if defaults.broker_url.startswith("redis://") else None
    assert celeryconfig.broker_transport == expected


def test_notification_tasks_run_on_their_own_queue(registered_tasks):
    for name in ("deliver_notification", "deliver_digest", "dispatch_transition"):
        assert app.tasks[f"segs.tasks.notifications.{name}"].queue == "notifications"
