"""Notifications, on their own queue ``notifications`` so a slow SMTP server or webhook never
holds up the reading path: fan a transition or a tariff change out, then deliver each copy.

Email and webhooks over a recipient's limit are held, and beat sends each recipient's held ones
as one digest when its period ends (segs.domain.digests).

Alert transitions are an outbox (segs.services.alerts.outbox): beat dispatches again those
whose dispatch never finished, so a crash between a transition's commit and enqueue_transitions
delays its notifications instead of losing them.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.utils.log import get_task_logger

from segs import metrics
from segs.celery_app import app
from segs.db import session_scope
from segs.domain.alerts import backoff_s
from segs.redis_client import get_redis
from segs.services.alerts import deliveries
from segs.services.alerts import digests
from segs.services.alerts import outbox
from segs.services.alerts import planning
from segs.services.alerts.digests import Recipient
from segs.services.alerts.planning import Delivery
from segs.services.alerts.planning import Plan
from segs.tasks.retries import RETRIED_BY_NEXT_RUN
from segs.tasks.retries import RETRY_UNTIL_OUTAGE_ENDS

logger = get_task_logger(__name__)

QUEUE = "notifications"


# Undispatched transitions re-enqueued per sweep at most; the rest wait for the next sweeps.
REDISPATCH_BATCH = 1000


def enqueue_transitions(transition_ids: list[int]) -> None:
    """Hand committed alert transitions to the notification queue."""
    for transition_id in transition_ids:
        dispatch_transition.apply_async(args=(transition_id,), queue=QUEUE)


@app.task(
    name="segs.tasks.notifications.dispatch_transition",
    queue=QUEUE,
    acks_late=True,
    **RETRY_UNTIL_OUTAGE_ENDS,
)
def dispatch_transition(transition_id: int) -> int:
    """Publish one alert transition on the live feed, queue its deliveries, then take it out
    of the outbox. Safe twice: a fan-out done already is not repeated (see _fan_out), and a
    transition out of the outbox stays out."""
    with session_scope() as session:
        plan = planning.plan_transition(session, transition_id)
    if plan is None:
        return 0
    queued = _fan_out(f"transition:{transition_id}", plan)
    with session_scope() as session:
        outbox.mark_transition_dispatched(session, transition_id)
    return queued


@app.task(
    # A sweep of the outbox, not a delivery: it runs with the other periodic work.
    name="segs.tasks.notifications.redispatch_stale_transitions",
    queue="default",
    acks_late=True,
    **RETRIED_BY_NEXT_RUN,
)
def redispatch_stale_transitions() -> int:
    """Dispatch again the transitions still in the outbox SEGS_DISPATCH_STALE_AFTER_S after
    their commit: a crash or a failed dispatch left them there.

    Safe twice: each transition is taken for a new dispatch at most once per
    SEGS_DISPATCH_STALE_AFTER_S (a Redis SET NX), and a dispatch that runs twice is harmless.
    """
    settings = app.segs_settings
    with session_scope() as session:
        stale = outbox.stale_transitions(session, settings.dispatch_stale_after_s, REDISPATCH_BATCH)
    taken = outbox.take_for_redispatch(get_redis(), stale, settings.dispatch_stale_after_s)
    enqueue_transitions(taken)
    if taken:
        logger.warning("dispatching %d stale alert transitions again", len(taken))
    return len(taken)


@app.task(
    name="segs.tasks.notifications.announce_tariff_change",
    queue=QUEUE,
    acks_late=True,
    **RETRY_UNTIL_OUTAGE_ENDS,
)
def announce_tariff_change(
    region: str, previous_price: str | None, price: str, effective_from: str, reason: str
) -> int:
    """Tell a region's customers (and staff) about a tariff change; sent by issue 5's tariffs.
    Safe twice: the change is dispatched once per region and effective time (see _fan_out)."""
    with session_scope() as session:
        plan = planning.plan_tariff_change(
            session,
            region=region,
            previous_price=previous_price,
            price=price,
            effective_from=effective_from,
            reason=reason,
        )
    return _fan_out(f"tariff:{region}:{effective_from}", plan)


def _fan_out(subject: str, plan: Plan) -> int:
    """At least once: the dispatch is marked done only after every delivery is queued. A
    dispatch redelivered after a crash queues them again, and each copy whose notification was
    delivered sends nothing; the live feed shows the event once whatever happens."""
    client = get_redis()
    if outbox.was_dispatched(client, subject):
        return 0
    planning.publish(client, subject, plan)
    for delivery in plan.deliveries:
        deliver_notification.apply_async(kwargs=delivery.as_task_args(), queue=QUEUE)
        metrics.NOTIFICATIONS_QUEUED.labels(delivery.channel).inc()
    outbox.mark_dispatched(client, subject)
    return len(plan.deliveries)


@app.task(
    name="segs.tasks.notifications.deliver_notification",
    queue=QUEUE,
    bind=True,
    acks_late=True,
    # Channel failures are bounded by *attempt* below; waits for another copy's claim and
    # outages of PostgreSQL or Redis are not attempts.
    **RETRY_UNTIL_OUTAGE_ENDS,
)
def deliver_notification(self: Task, attempt: int = 1, **fields: Any) -> str:
    """One attempt on one channel; retried with exponential backoff, then dead-lettered.

    Only the copy holding the delivery's claim sends; another copy of the same delivery running
    meanwhile looks again later, and then finds it delivered (or the claim of a holder that
    died expired, so it is still delivered once).
    """
    settings = app.segs_settings
    delivery = Delivery(**fields)
    client = get_redis()
    token = outbox.claim_delivery(client, delivery, outbox.claim_ttl_s(settings, delivery.channel))
    if token is None:
        metrics.NOTIFICATIONS.labels(delivery.channel, "busy").inc()
        raise self.retry(countdown=settings.delivery_backoff_s)
    try:
        if outbox.was_delivered(client, delivery):
            metrics.NOTIFICATIONS.labels(delivery.channel, "duplicate").inc()
            return "already sent"
        with session_scope() as session:
            held = digests.hold_for_digest(session, settings, delivery)
            error = None if held else deliveries.deliver(session, settings, delivery, attempt)
        if error is None:
            # Before the release: the next holder of the claim finds it delivered (or held).
            outbox.mark_delivered(client, delivery)
    finally:
        outbox.release_delivery(client, delivery, token)
    if held:
        metrics.NOTIFICATIONS.labels(delivery.channel, "held").inc()
        return "held"
    if error is None:
        metrics.NOTIFICATIONS.labels(delivery.channel, "sent").inc()
        return "sent"
    metrics.NOTIFICATIONS.labels(delivery.channel, "failed").inc()
    if attempt < settings.delivery_attempts:
        raise self.retry(
            countdown=backoff_s(attempt, settings.delivery_backoff_s),
            kwargs={**fields, "attempt": attempt + 1},
        )
    with session_scope() as session:
        deliveries.dead_letter(session, delivery, attempt, error)
    metrics.NOTIFICATIONS.labels(delivery.channel, "dead").inc()
    logger.warning(
        "gave up on %s %s after %d attempts: %s", delivery.channel, delivery.subject, attempt, error
    )
    return "dead"


@app.task(
    # A sweep, not a delivery: it runs with the other periodic work.
    name="segs.tasks.notifications.send_due_digests",
    queue="default",
    acks_late=True,
    **RETRIED_BY_NEXT_RUN,
)
def send_due_digests() -> int:
    """Queue the digest of every recipient whose first held notification waited
    SEGS_NOTIFY_DIGEST_S. A digest still queued when this runs again gets another copy, which
    finds nothing held once the first has sent it."""
    with session_scope() as session:
        due = digests.recipients_with_due_digests(session, app.segs_settings.digest_rule)
    for recipient in due:
        deliver_digest.apply_async(kwargs=recipient.as_task_args(), queue=QUEUE)
    return len(due)


@app.task(
    name="segs.tasks.notifications.deliver_digest",
    queue=QUEUE,
    bind=True,
    acks_late=True,
    **RETRY_UNTIL_OUTAGE_ENDS,
)
def deliver_digest(self: Task, attempt: int = 1, **fields: Any) -> str:
    """One attempt at a recipient's digest: everything held for them, as one email or one
    webhook POST; retried and dead-lettered as a single delivery is.

    Once: the digest is sent and its notifications settled in one transaction under the
    recipient's lock, so a copy run again (a redelivery, beat's next run) finds nothing held;
    notifications held meanwhile wait for the recipient's next digest. A failed attempt leaves
    them held, and the retry carries them with any held since.
    """
    settings = app.segs_settings
    recipient = Recipient(**fields)
    with session_scope() as session:
        digest = digests.take_digest(session, recipient)
        if digest is None:
            return "nothing held"
        error = deliveries.deliver(session, settings, digest.delivery, attempt)
        gave_up = error is not None and attempt >= settings.delivery_attempts
        if error is None or gave_up:
            digests.settle_digest(session, digest)
        if error is not None and gave_up:
            deliveries.dead_letter(session, digest.delivery, attempt, error)
    if error is None:
        metrics.NOTIFICATIONS.labels(recipient.channel, "sent").inc()
        return "sent"
    metrics.NOTIFICATIONS.labels(recipient.channel, "failed").inc()
    if not gave_up:
        raise self.retry(
            countdown=backoff_s(attempt, settings.delivery_backoff_s),
            kwargs={**fields, "attempt": attempt + 1},
        )
    metrics.NOTIFICATIONS.labels(recipient.channel, "dead").inc()
    logger.warning(
        "gave up on the digest %s after %d attempts: %s", digest.delivery.subject, attempt, error
    )
    return "dead"
