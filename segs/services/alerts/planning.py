"""Who hears about an alert transition or a tariff change, and how: the live feed's streams
and one delivery per account and channel, as their preferences ask.

Planning (who gets what) is separate from delivering (one attempt on one channel,
segs.services.alerts.deliveries), so each delivery retries on its own schedule. The live
feed's streams are described in segs.services.alerts.feed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import redis
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain import alerts as rules
from segs.domain.access import USER
from segs.domain.incidents import kinds_that_want
from segs.models import Alert
from segs.models import AlertTransition
from segs.models import MeterAssignment
from segs.models import User
from segs.models import Webhook
from segs.services.alerts import feed
from segs.services.alerts.feed import STAFF_FEED
from segs.services.alerts.feed import region_feed
from segs.services.alerts.feed import user_feed
from segs.services.alerts.preferences import preferences_of


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
