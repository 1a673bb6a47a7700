"""Making each step of a notification safe to repeat.

Every step may run twice (a redelivered task, a transition dispatched again by the outbox
sweep). Alert transitions stay in the outbox (dispatched_at NULL) until their fan-out is
queued; a dispatch is marked once every delivery is queued; and a delivery is sent only by the
copy that holds its claim, and only if it was not delivered before. The marks and claims live
in Redis; the outbox is the alert_transitions table.
"""

from __future__ import annotations

import math
import secrets
from datetime import timedelta

import redis
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.models import Alert
from segs.models import AlertTransition
from segs.services.alerts.planning import Delivery
from segs.services.shared.lua import LuaScript

_DISPATCHED_PREFIX = "segs:notified:"
_REDISPATCHED_PREFIX = "segs:redispatched:"
_DELIVERED_PREFIX = "segs:delivered:"
_CLAIM_PREFIX = "segs:delivering:"

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


_RELEASE = LuaScript(__package__, "outbox.release_claim.lua")


def release_delivery(client: redis.Redis, delivery: Delivery, token: str) -> None:
    _RELEASE.call(client, keys={"claim": _claim_key(delivery)}, args={"token": token})
