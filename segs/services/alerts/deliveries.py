"""One attempt at a delivery, written to the delivery log; and the dead letters, deliveries
given up on after their last attempt."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from segs.config import Settings
from segs.models import DeadLetter
from segs.models import NotificationDelivery
from segs.services.alerts import channels
from segs.services.alerts.planning import Delivery
from segs.services.alerts.webhook_client import Resolver


def deliver(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    attempt: int,
    resolve: Resolver | None = None,
) -> str | None:
    """Make one attempt and write it to the delivery log; return why it failed, or None.

    *resolve* looks webhook hosts up (default: webhook_client.resolver_for the settings).
    """
    # PostgreSQL down: fail here, before sending, not at the log's commit after it (the retry
    # would send the notification again).
    session.connection()
    target = delivery.target
    try:
        target = channels.send(session, settings, delivery, resolve)
    except channels.SEND_FAILURES as exc:
        error = f"{type(exc).__name__}: {exc}"
        _log(session, delivery, target, attempt, "failed", error)
        return error
    _log(session, delivery, target, attempt, "sent", None)
    return None


def dead_letter(session: Session, delivery: Delivery, attempts: int, error: str) -> None:
    """Keep a notification given up on, for a person to look at or replay."""
    session.add(
        DeadLetter(
            channel=delivery.channel,
            user_id=uuid.UUID(delivery.user_id),
            target=delivery.target,
            subject=delivery.subject,
            payload=delivery.payload,
            attempts=attempts,
            last_error=error,
        )
    )


def _log(
    session: Session, delivery: Delivery, target: str, attempt: int, status: str, error: str | None
) -> None:
    session.add(
        NotificationDelivery(
            subject=delivery.subject,
            user_id=uuid.UUID(delivery.user_id),
            channel=delivery.channel,
            target=target,
            attempt=attempt,
            status=status,
            error=error,
        )
    )
