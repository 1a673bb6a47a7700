"""An account's webhooks: registering an endpoint (its URL checked, its signing secret made)
and deleting one. Sending to them is segs.services.alerts.channels'."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.webhooks import WebhookTargetError
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Webhook
from segs.services.accounts import Actor
from segs.services.accounts import record_audit
from segs.services.alerts import webhook_client
from segs.services.alerts.webhook_client import Resolver

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
