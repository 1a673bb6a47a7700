"""Each task declares its queue and its retry policy in its decorator. It lands on the queue it
landed on when celeryconfig.task_routes chose it."""

from __future__ import annotations

import importlib
from unittest import mock

import psycopg
import pytest

import celeryconfig
from beat_schedule import BEAT_SCHEDULE
from segs.celery_app import app
from segs.services.shared.outages import OUTAGES

# The queue each task was sent to, with no queue given, under the routes this replaces.
QUEUE_UNDER_THE_OLD_ROUTES = {
    # No route: the default queue; publish_batches always names a shard queue instead.
    "segs.tasks.readings.fold_batch": "default",
    "segs.tasks.readings.requeue_stalled_batches": "default",
    "segs.tasks.windows.flush_closed_windows": "default",
    "segs.tasks.windows.heal_after_redis_loss": "default",
    "segs.tasks.windows.sample_queue_depths": "default",
    "segs.tasks.maintenance.maintain_partitions": "default",
    "segs.tasks.mail.send_email": "default",
    "segs.tasks.alerts.evaluate_overloads": "default",
    "segs.tasks.alerts.sweep_silent_meters": "default",
    "segs.tasks.alerts.expire_detection_states": "default",
    "segs.tasks.tariffs.recalculate_prices": "default",
    "segs.tasks.billing.generate_invoices": "default",
    "segs.tasks.billing.mark_overdue": "default",
    "segs.tasks.notifications.dispatch_transition": "notifications",
    "segs.tasks.notifications.announce_tariff_change": "notifications",
    "segs.tasks.notifications.deliver_notification": "notifications",
    "segs.tasks.notifications.deliver_digest": "notifications",
}

# Routed to "notifications" by the module's pattern, but only ever sent by beat, whose entry
# names "default": that is where they ran, and where their decorators now put them.
SENT_BY_BEAT_TO_DEFAULT = {
    "segs.tasks.notifications.redispatch_stale_transitions": "default",
    "segs.tasks.notifications.send_due_digests": "default",
}

EXPECTED_QUEUES = {**QUEUE_UNDER_THE_OLD_ROUTES, **SENT_BY_BEAT_TO_DEFAULT}


@pytest.fixture(scope="module", autouse=True)
def registered_tasks():
    for module in celeryconfig.imports:
        importlib.import_module(module)


def queue_sent_to(name: str, **options: object) -> str:
    """The queue Celery publishes task *name* to, through its router, without a broker."""
    task = app.tasks[name]
    # typing off: the test sends no arguments, and only the queue matters.
    with (
        mock.patch.object(task, "typing", False),
        mock.patch.object(app.amqp, "send_task_message") as send,
    ):
        task.apply_async(producer=mock.MagicMock(), **options)
    return str(send.call_args.kwargs["queue"].name)


def test_every_task_has_an_expected_queue():
    assert {name for name in app.tasks if name.startswith("segs.")} == set(EXPECTED_QUEUES)


def test_no_routes_override_the_decorators():
    assert not hasattr(celeryconfig, "task_routes")


@pytest.mark.parametrize("name", sorted(EXPECTED_QUEUES))
def test_each_task_lands_on_its_queue_as_before(name):
    assert queue_sent_to(name) == EXPECTED_QUEUES[name]


@pytest.mark.parametrize("name", sorted(set(EXPECTED_QUEUES) - {"segs.tasks.readings.fold_batch"}))
def test_each_task_declares_its_queue(name):
    assert app.tasks[name].queue == EXPECTED_QUEUES[name]


def test_reading_batches_go_to_the_shard_queue_named_when_sent():
    assert getattr(app.tasks["segs.tasks.readings.fold_batch"], "queue", None) is None
    assert queue_sent_to("segs.tasks.readings.fold_batch", queue="readings.1") == "readings.1"


@pytest.mark.parametrize("entry", sorted(BEAT_SCHEDULE))
def test_beat_sends_each_task_to_its_declared_queue(entry):
    spec = BEAT_SCHEDULE[entry]
    assert spec["options"]["queue"] == app.tasks[spec["task"]].queue


RETRIED_THROUGH_SHORT_OUTAGES = [
    "segs.tasks.alerts.evaluate_overloads",
    "segs.tasks.alerts.sweep_silent_meters",
    "segs.tasks.alerts.expire_detection_states",
    "segs.tasks.tariffs.recalculate_prices",
    "segs.tasks.billing.generate_invoices",
    "segs.tasks.billing.mark_overdue",
    "segs.tasks.maintenance.maintain_partitions",
]

RETRIED_UNTIL_OUTAGES_END = [
    "segs.tasks.notifications.dispatch_transition",
    "segs.tasks.notifications.announce_tariff_change",
    "segs.tasks.notifications.deliver_notification",
    "segs.tasks.notifications.deliver_digest",
]


@pytest.mark.parametrize("name", RETRIED_THROUGH_SHORT_OUTAGES)
def test_outages_are_retried_with_backoff_a_bounded_number_of_times(name):
    task = app.tasks[name]
    assert task.autoretry_for == OUTAGES
    assert task.retry_backoff is True
    assert task.max_retries is not None and task.max_retries > 0


@pytest.mark.parametrize("name", RETRIED_UNTIL_OUTAGES_END)
def test_notifications_are_retried_for_as_long_as_an_outage_lasts(name):
    task = app.tasks[name]
    assert task.autoretry_for == OUTAGES
    assert task.retry_backoff is True
    assert task.max_retries is None


def test_an_outage_is_retried_a_bounded_number_of_times_then_the_run_fails():
    task = app.tasks["segs.tasks.maintenance.maintain_partitions"]
    outage = psycopg.OperationalError("the server closed the connection")
    # Run eagerly: each retry runs at once, without its backoff.
    with mock.patch("segs.tasks.maintenance.raw_connection", side_effect=outage) as connect:
        result = task.apply()
    assert connect.call_count == 1 + task.max_retries
    assert result.failed() and result.result is outage
