"""Per-recipient limits: email and webhooks over a recipient's allowance are held in
PostgreSQL and go out later as one digest (segs.domain.digests holds the rule). The live feed
is not limited.

The delivery log counts what a recipient was sent; a PostgreSQL advisory lock per recipient
makes counting, deciding and sending (or holding) one step.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain import digests
from segs.models import DigestItem
from segs.models import NotificationDelivery
from segs.models import Webhook
from segs.services.alerts.planning import Delivery


def _lock_recipient(session: Session, channel: str, target: str) -> None:
    """One delivery or digest to a recipient at a time, until the transaction ends: counting
    what it was sent, deciding, and sending (with its log row) or holding are one step, so two
    workers never both take the last place of its allowance."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"segs:recipient:{channel}:{target}"},
    )


def hold_for_digest(session: Session, settings: Settings, delivery: Delivery) -> bool:
    """Whether *delivery* waits for its recipient's digest (held now, or by a copy before)
    rather than being sent now.

    Takes the recipient's lock for the rest of the transaction: the caller sends and logs in
    it, so the next delivery to the recipient counts this one.
    """
    _lock_recipient(session, delivery.channel, delivery.target)
    of_recipient = (DigestItem.channel == delivery.channel, DigestItem.target == delivery.target)
    held_before = select(DigestItem.id).where(*of_recipient, DigestItem.subject == delivery.subject)
    if session.scalar(held_before.exists().select()):
        return True
    still_held = select(DigestItem.id).where(*of_recipient, DigestItem.digest_subject.is_(None))
    digest_open = bool(session.scalar(still_held.exists().select()))
    sent = _sent_in_last_period(session, delivery)
    if not digests.should_hold(settings.digest_rule, sent, digest_open):
        return False
    session.add(
        DigestItem(
            channel=delivery.channel,
            target=delivery.target,
            user_id=uuid.UUID(delivery.user_id),
            subject=delivery.subject,
            title=delivery.title,
            payload=delivery.payload,
        )
    )
    return True


def _sent_in_last_period(session: Session, delivery: Delivery) -> int:
    """What the delivery log shows sent to the recipient one by one (not in a digest) within
    the limit's period. A webhook's log rows name its URL."""
    logged_target = delivery.target
    if delivery.channel == "webhook":
        hook = session.get(Webhook, uuid.UUID(delivery.target))
        if hook is None:
            return 0  # deleted: its delivery fails, whatever the count
        logged_target = hook.url
    return (
        session.scalar(
            select(func.count())
            .select_from(NotificationDelivery)
            .where(
                NotificationDelivery.target == logged_target,
                NotificationDelivery.channel == delivery.channel,
                NotificationDelivery.user_id == uuid.UUID(delivery.user_id),
                NotificationDelivery.status == "sent",
                NotificationDelivery.at > func.now() - timedelta(seconds=digests.LIMIT_PERIOD_S),
                ~NotificationDelivery.subject.startswith(digests.DIGEST_PREFIX),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class Recipient:
    """One channel of one account: an email address, or a webhook id."""

    channel: str
    target: str
    user_id: str

    def as_task_args(self) -> dict[str, Any]:
        return {"channel": self.channel, "target": self.target, "user_id": self.user_id}


def recipients_with_due_digests(session: Session, rule: digests.DigestRule) -> list[Recipient]:
    """The recipients whose first held notification waited the digest period; the database's
    clock judges, as it stamped them."""
    rows = session.execute(
        select(
            DigestItem.channel,
            DigestItem.target,
            DigestItem.user_id,
            func.extract("epoch", func.now() - func.min(DigestItem.held_at)),
        )
        .where(DigestItem.digest_subject.is_(None))
        .group_by(DigestItem.channel, DigestItem.target, DigestItem.user_id)
    )
    return [
        Recipient(channel, target, str(user_id))
        for channel, target, user_id, waited_s in rows
        if digests.digest_due(rule, float(waited_s))
    ]


@dataclass(frozen=True)
class HeldDigest:
    """A recipient's held notifications as one delivery, and which rows it carries."""

    delivery: Delivery
    item_ids: list[int]


def take_digest(session: Session, recipient: Recipient) -> HeldDigest | None:
    """Everything still held for *recipient*, as one delivery (None when nothing is: another
    copy of the digest sent it).

    Takes the recipient's lock for the rest of the transaction: the caller sends the digest and
    settles it in it, so a copy run again waits, then finds nothing held.
    """
    _lock_recipient(session, recipient.channel, recipient.target)
    items = list(
        session.scalars(
            select(DigestItem)
            .where(
                DigestItem.channel == recipient.channel,
                DigestItem.target == recipient.target,
                DigestItem.digest_subject.is_(None),
            )
            .order_by(DigestItem.id)
        )
    )
    if not items:
        return None
    entries = digests.digest_entries(_as_held(item) for item in items)
    delivery = Delivery(
        subject=digests.digest_subject(items[0].id),
        channel=recipient.channel,
        user_id=recipient.user_id,
        target=recipient.target,
        title=digests.digest_title(entries),
        payload=digests.digest_payload(entries),
    )
    return HeldDigest(delivery, [item.id for item in items])


def _as_held(item: DigestItem) -> digests.HeldNotification:
    transition = item.payload.get("transition")
    alert = item.payload.get("alert")
    return digests.HeldNotification(
        title=item.title,
        event=item.payload.get("event", ""),
        at=transition["at"] if transition else item.held_at.isoformat(),
        payload=item.payload,
        alert_id=alert["id"] if alert else None,
        transition_id=transition["id"] if transition else None,
    )


def settle_digest(session: Session, digest: HeldDigest) -> None:
    """Its notifications are no longer held: the digest was sent, or given up on."""
    session.execute(
        update(DigestItem)
        .where(DigestItem.id.in_(digest.item_ids))
        .values(digest_subject=digest.delivery.subject)
    )
