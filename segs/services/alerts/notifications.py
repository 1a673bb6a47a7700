"""Who hears about an alert transition or a tariff change, and how: live feed, email, webhooks.

Planning (who gets what, by their preferences) is separate from delivering (one attempt on one
channel, written to the delivery log), so each delivery retries on its own schedule.

Every step may run twice (a redelivered task, a transition dispatched again by the outbox
sweep), so each is made safe to repeat: alert transitions stay in the outbox (dispatched_at
NULL) until their fan-out is queued, the feed event is published once per subject, and a
delivery is sent only by the copy that holds its claim and only if not delivered before.

Email and webhooks are limited per recipient (segs.domain.digests): over the limit, a delivery
is held in PostgreSQL and goes out later in the recipient's digest. The live feed is not limited.

The live feed's streams are described in segs.services.alerts.feed.
"""

from __future__ import annotations

import json
import math
import secrets
import smtplib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any

import httpx
import redis
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain import alerts as rules
from segs.domain import digests
from segs.domain import signatures
from segs.domain import webhooks
from segs.domain.access import USER
from segs.domain.codes import OutgoingMail
from segs.domain.incidents import kinds_that_want
from segs.domain.webhooks import WebhookTargetError
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Alert
from segs.models import AlertTransition
from segs.models import DeadLetter
from segs.models import DigestItem
from segs.models import MeterAssignment
from segs.models import NotificationDelivery
from segs.models import NotificationPreference
from segs.models import User
from segs.models import Webhook
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.alerts import feed
from segs.services.alerts import mail
from segs.services.alerts import webhook_client
from segs.services.alerts.feed import STAFF_FEED
from segs.services.alerts.feed import region_feed
from segs.services.alerts.feed import user_feed
from segs.services.alerts.webhook_client import Resolver
from segs.services.shared.lua import LuaScript

_DISPATCHED_PREFIX = "segs:notified:"
_REDISPATCHED_PREFIX = "segs:redispatched:"
_DELIVERED_PREFIX = "segs:delivered:"
_CLAIM_PREFIX = "segs:delivering:"


@dataclass(frozen=True)
class Delivery:
    """One notification for one account on one channel; target is an address or a webhook id."""

    subject: str
    channel: str
    user_id: str
    target: str
    title: str
    payload: dict[str, Any]

    def as_task_args(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "channel": self.channel,
            "user_id": self.user_id,
            "target": self.target,
            "title": self.title,
            "payload": self.payload,
        }


@dataclass
class Plan:
    """What to publish on the live feed (each stream and the event as its audience sees it)
    and what to deliver to whom."""

    streams: dict[str, dict[str, Any]]
    deliveries: list[Delivery] = field(default_factory=list)


_MARK_TTL_S = 7 * 24 * 3600


def was_dispatched(client: redis.Redis, subject: str) -> bool:
    """Whether *subject* was fanned out already (mark_dispatched)."""
    return bool(client.exists(_DISPATCHED_PREFIX + subject))


def mark_dispatched(client: redis.Redis, subject: str) -> None:
    """Set once every delivery of *subject* is queued, so a dispatch that dies before that is
    done again (at least once), and one that finished is not repeated."""
    client.set(_DISPATCHED_PREFIX + subject, "1", ex=_MARK_TTL_S)


def mark_transition_dispatched(session: Session, transition_id: int) -> None:
    """Take a transition out of the outbox once its fan-out is queued (kept if set before)."""
    session.execute(
        update(AlertTransition)
        .where(AlertTransition.id == transition_id, AlertTransition.dispatched_at.is_(None))
        .values(dispatched_at=func.now())
    )


def stale_transitions(session: Session, stale_after_s: float, limit: int) -> list[int]:
    """Transitions committed over *stale_after_s* ago and still not dispatched, oldest first:
    their dispatch was lost (a crash after the commit) or failed. The database's clock judges
    the age, as it stamped the transitions. Those of an alert held for a regional incident to
    form are not lost: they wait for their release (segs.services.alerts.incidents)."""
    held = select(Alert.id).where(
        Alert.id == AlertTransition.alert_id, Alert.notify_after.is_not(None)
    )
    return list(
        session.scalars(
            select(AlertTransition.id)
            .where(
                AlertTransition.dispatched_at.is_(None),
                AlertTransition.at < func.now() - timedelta(seconds=stale_after_s),
                ~held.exists(),
            )
            .order_by(AlertTransition.at)
            .limit(limit)
        )
    )


def take_for_redispatch(
    client: redis.Redis, transition_ids: list[int], every_s: float
) -> list[int]:
    """Those of *transition_ids* not dispatched again within the last *every_s*: a dispatch
    waiting behind a long notifications queue gets one more copy per period, not one per sweep."""
    with client.pipeline(transaction=False) as pipe:
        for transition_id in transition_ids:
            pipe.set(f"{_REDISPATCHED_PREFIX}{transition_id}", "1", nx=True, px=int(every_s * 1000))
        taken = pipe.execute()
    return [transition_id for transition_id, new in zip(transition_ids, taken, strict=True) if new]


def _delivered_key(delivery: Delivery) -> str:
    return f"{_DELIVERED_PREFIX}{delivery.subject}:{delivery.channel}:{delivery.target}"


def was_delivered(client: redis.Redis, delivery: Delivery) -> bool:
    """Whether this notification reached its channel already: a dispatch done twice queues
    each delivery twice, and the second copy must send nothing."""
    return bool(client.exists(_delivered_key(delivery)))


def mark_delivered(client: redis.Redis, delivery: Delivery) -> None:
    client.set(_delivered_key(delivery), "1", ex=_MARK_TTL_S)


def _claim_key(delivery: Delivery) -> str:
    return f"{_CLAIM_PREFIX}{delivery.subject}:{delivery.channel}:{delivery.target}"


def claim_ttl_s(settings: Settings, channel: str) -> int:
    """How long a claim lasts: past any send that is still going. smtplib and httpx time out
    each step (connect, every read and write), not the whole send, so allow several steps and
    the delivery log's commit; a holder that dies frees the delivery after this long."""
    timeout_s = settings.smtp_timeout_s if channel == "email" else settings.webhook_timeout_s
    return math.ceil(4 * timeout_s) + 10


def claim_delivery(client: redis.Redis, delivery: Delivery, ttl_s: int) -> str | None:
    """Take the right to send *delivery*: a token to release it with, or None while another
    copy holds it. Checking was_delivered and sending are two steps; the claim keeps a second
    copy from taking them at the same moment."""
    token = secrets.token_hex(16)
    if client.set(_claim_key(delivery), token, nx=True, ex=ttl_s):
        return token
    return None


_RELEASE = LuaScript(__package__, "notifications.release_claim.lua")


def release_delivery(client: redis.Redis, delivery: Delivery, token: str) -> None:
    _RELEASE.call(client, keys={"claim": _claim_key(delivery)}, args={"token": token})


def alert_body(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "type": alert.type,
        "severity": alert.severity,
        "status": alert.status,
        "region": alert.region,
        "meterId": alert.meter_id,
        "message": alert.message,
        "occurrenceCount": alert.occurrence_count,
        "createdAt": alert.created_at.isoformat(),
        "lastSeenAt": alert.last_seen_at.isoformat(),
        "incidentId": alert.incident_id,
        "meterCount": alert.meter_count,
    }


def _transition_body(transition: AlertTransition, *, for_staff: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": transition.id,
        "kind": transition.kind,
        "fromStatus": transition.from_status,
        "toStatus": transition.to_status,
        "severity": transition.severity,
        "at": transition.at.isoformat(),
    }
    if for_staff:
        # Who acted and their note are staff's working notes, never shown to customers.
        body["actorId"] = str(transition.actor_id) if transition.actor_id else None
        body["note"] = transition.note
    return body


def owners_when_raised(session: Session, alert: Alert) -> list[User]:
    """Who hears about a meter alert: the account that owned the meter when it was raised (a
    later owner does not learn of the earlier owner's alerts, nor they of the next one's)."""
    return list(
        session.scalars(
            select(User)
            .join(MeterAssignment, MeterAssignment.user_id == User.id)
            .where(
                MeterAssignment.meter_id == alert.meter_id,
                MeterAssignment.assigned_from <= alert.created_at,
                or_(
                    MeterAssignment.assigned_to.is_(None),
                    MeterAssignment.assigned_to > alert.created_at,
                ),
            )
        )
    )


def plan_transition(session: Session, transition_id: int) -> Plan | None:
    """The feed events and the deliveries of one alert transition (None if it is gone, or
    grouped under an incident whose notification stands for it)."""
    transition = session.get(AlertTransition, transition_id)
    if transition is None or transition.grouped_into is not None:
        return None
    alert = session.get(Alert, transition.alert_id)
    assert alert is not None
    name = f"alert.{transition.kind}"
    staff_event = {
        "event": name,
        "transition": _transition_body(transition, for_staff=True),
        "alert": alert_body(alert),
    }
    customer_event = {
        "event": name,
        "transition": _transition_body(transition, for_staff=False),
        "alert": alert_body(alert),
    }
    if alert.meter_id is not None:
        owners = owners_when_raised(session, alert)
    else:
        owners = _customers_of(session, alert.region)
    recipients = [user for user in owners if user.is_usable]
    streams = {STAFF_FEED: staff_event}
    if alert.meter_id is not None:
        streams.update({user_feed(user.id): customer_event for user in recipients})
    title = (
        f"[SEGS] {transition.severity} {alert.type} {transition.kind}: "
        f"{alert.meter_id or alert.region}"
    )
    plan = Plan(streams)
    plan.deliveries = _deliveries(
        session,
        recipients,
        subject=f"transition:{transition.id}",
        kind=alert.type,
        severity=transition.severity,
        title=title,
        payload=customer_event,
    )
    return plan


def plan_tariff_change(
    session: Session,
    *,
    region: str,
    previous_price: str | None,
    price: str,
    effective_from: str,
    reason: str,
) -> Plan:
    """The feed event and the deliveries of a region's tariff change (issue 5 announces it)."""
    event = {
        "event": "tariff.changed",
        "tariff": {
            "region": region,
            "previousPrice": previous_price,
            "price": price,
            "effectiveFrom": effective_from,
            "reason": reason,
        },
    }
    plan = Plan({STAFF_FEED: event, region_feed(region): event})
    plan.deliveries = _deliveries(
        session,
        _customers_of(session, region),
        subject=f"tariff:{region}:{effective_from}",
        kind=rules.TARIFF_CHANGE,
        severity=None,
        title=f"[SEGS] Tariff change in {region}: {price} per kWh from {effective_from}",
        payload=event,
    )
    return plan


def _customers_of(session: Session, region: str) -> list[User]:
    return [
        user
        for user in session.scalars(select(User).where(User.region == region, User.role == USER))
        if user.is_usable
    ]


def preferences_of(
    session: Session, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, rules.Preferences]:
    """Each account's preferences; the defaults for those who never set theirs."""
    stored = {
        row.user_id: rules.Preferences(
            channels=frozenset(row.channels),
            kinds=frozenset(row.kinds),
            min_severity=row.min_severity,
        )
        for row in session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids))
        )
    }
    return {user_id: stored.get(user_id, rules.Preferences()) for user_id in user_ids}


def _deliveries(
    session: Session,
    recipients: list[User],
    *,
    subject: str,
    kind: str,
    severity: str | None,
    title: str,
    payload: dict[str, Any],
) -> list[Delivery]:
    if not recipients:
        return []
    prefs = preferences_of(session, [user.id for user in recipients])
    hooks: dict[uuid.UUID, list[Webhook]] = {}
    for hook in session.scalars(
        select(Webhook).where(Webhook.user_id.in_(list(prefs))).order_by(Webhook.created_at)
    ):
        hooks.setdefault(hook.user_id, []).append(hook)
    deliveries: list[Delivery] = []
    kinds = kinds_that_want(kind)

    def wants(preferences: rules.Preferences, channel: str) -> bool:
        return any(preferences.wants(channel, wanted, severity) for wanted in kinds)

    for user in recipients:
        wanted = prefs[user.id]
        if wants(wanted, "email") and user.email_verified_at is not None:
            deliveries.append(Delivery(subject, "email", str(user.id), user.email, title, payload))
        if wants(wanted, "webhook"):
            deliveries.extend(
                Delivery(subject, "webhook", str(user.id), str(hook.id), title, payload)
                for hook in hooks.get(user.id, [])
            )
    return deliveries


def publish(client: redis.Redis, subject: str, plan: Plan) -> None:
    """Put the event on the live feed, once per *subject*."""
    feed.publish(client, subject, plan.streams)


class DeliveryFailedError(Exception):
    """The channel refused the notification (an HTTP error status, a deleted webhook)."""


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
        if delivery.channel == "email":
            _send_email(settings, delivery)
        else:
            target = _post_webhook(
                session, settings, delivery, resolve or webhook_client.resolver_for(settings)
            )
    except (
        OSError,
        smtplib.SMTPException,
        httpx.HTTPError,
        DeliveryFailedError,
        WebhookTargetError,
    ) as exc:
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


def _send_email(settings: Settings, delivery: Delivery) -> None:
    if delivery.payload.get("event") == digests.DIGEST_EVENT:
        body = digests.digest_text(settings.digest_rule, delivery.payload)
    else:
        details = json.dumps(delivery.payload, indent=2)
        body = f"{delivery.title}\n\n{_summary(delivery.payload)}\n\nDetails:\n{details}\n"
    mail.send_email(settings, OutgoingMail(to=delivery.target, subject=delivery.title, body=body))


def _summary(payload: dict[str, Any]) -> str:
    if "alert" in payload:
        return str(payload["alert"]["message"])
    tariff = payload["tariff"]
    return f"New price {tariff['price']} per kWh from {tariff['effectiveFrom']}: {tariff['reason']}"


def _post_webhook(
    session: Session, settings: Settings, delivery: Delivery, resolve: Resolver
) -> str:
    """POST the payload, signed with the webhook's secret over a timestamp and the body.

    The URL is checked again here (it was when saved): a name may resolve elsewhere now.
    """
    hook = session.get(Webhook, uuid.UUID(delivery.target))
    if hook is None:
        raise DeliveryFailedError("the webhook was deleted")
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    status = webhook_client.post(
        hook.url,
        body,
        {
            "Content-Type": "application/json",
            webhooks.TIMESTAMP_HEADER: str(timestamp),
            webhooks.SIGNATURE_HEADER: signatures.signature(hook.secret, timestamp, body),
            webhooks.DELIVERY_HEADER: delivery.subject,
        },
        settings,
        resolve,
    )
    if status >= 300:
        # 3xx included: redirects are not followed, so a redirect is not a delivery.
        raise DeliveryFailedError(f"{hook.url} answered {status}")
    return hook.url


# --------------------------------------------------------------------------- limits and digests


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


# --------------------------------------------------------------------------- an account's settings


@dataclass(frozen=True)
class PreferencesView:
    channels: list[str]
    kinds: list[str]
    min_severity: str
    is_default: bool


def get_preferences(session: Session, user_id: uuid.UUID) -> PreferencesView:
    row = session.get(NotificationPreference, user_id)
    if row is None:
        default = rules.Preferences()
        return PreferencesView(
            sorted(default.channels), _in_order(default.kinds), default.min_severity, True
        )
    return PreferencesView(sorted(row.channels), _in_order(row.kinds), row.min_severity, False)


def _in_order(kinds: Iterable[str]) -> list[str]:
    return [kind for kind in rules.NOTIFICATION_KINDS if kind in set(kinds)]


def set_preferences(
    session: Session, actor: Actor, channels: list[str], kinds: list[str], min_severity: str
) -> PreferencesView:
    """Replace the caller's preferences (an empty list of channels turns email and webhooks off)."""
    assert actor.id is not None
    values = {
        "user_id": actor.id,
        "channels": sorted(set(channels)),
        "kinds": _in_order(kinds),
        "min_severity": min_severity,
    }
    session.execute(
        insert(NotificationPreference)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[NotificationPreference.user_id],
            set_={
                "channels": values["channels"],
                "kinds": values["kinds"],
                "min_severity": min_severity,
                "updated_at": func.now(),
            },
        )
    )
    record_audit(
        session,
        actor,
        "notifications.preferences",
        "user",
        actor.id,
        {key: value for key, value in values.items() if key != "user_id"},
    )
    session.flush()
    session.expire_all()
    return get_preferences(session, actor.id)


MAX_WEBHOOKS = 10


def list_webhooks(session: Session, user_id: uuid.UUID) -> list[Webhook]:
    return list(
        session.scalars(
            select(Webhook).where(Webhook.user_id == user_id).order_by(Webhook.created_at)
        )
    )


def create_webhook(
    session: Session, actor: Actor, url: str, settings: Settings, resolve: Resolver
) -> Webhook:
    """Register an endpoint; its signing secret is shown only in this answer.

    :raises InvalidInputError: WEBHOOK_URL_REFUSED, the URL breaks a rule of
        segs.domain.webhooks (not https, user info, port, a non-public address...).
    :raises ConflictError: the account has MAX_WEBHOOKS already.
    """
    assert actor.id is not None
    try:
        webhook_client.checked_destination(url, settings, resolve)
    except WebhookTargetError as exc:
        raise InvalidInputError(
            f"this webhook URL is refused: {exc}", {"url": [str(exc)]}, code="WEBHOOK_URL_REFUSED"
        ) from exc
    if len(list_webhooks(session, actor.id)) >= MAX_WEBHOOKS:
        raise ConflictError(
            f"an account has at most {MAX_WEBHOOKS} webhooks", code="TOO_MANY_WEBHOOKS"
        )
    hook = Webhook(user_id=actor.id, url=url, secret=secrets.token_hex(32))
    session.add(hook)
    session.flush()
    record_audit(session, actor, "webhook.create", "webhook", hook.id, {"url": url})
    return hook


def delete_webhook(session: Session, actor: Actor, webhook_id: uuid.UUID) -> None:
    """:raises NotFoundError: no such webhook of the caller's."""
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.user_id != actor.id:
        raise NotFoundError(f"webhook {webhook_id} not found")
    session.delete(hook)
    record_audit(session, actor, "webhook.delete", "webhook", webhook_id, {"url": hook.url})
