"""Sending one delivery on its channel: an email (through segs.services.alerts.mail) or a
signed webhook POST (through segs.services.alerts.webhook_client)."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from typing import Any

import httpx
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain import digests
from segs.domain import signatures
from segs.domain import webhooks
from segs.domain.codes import OutgoingMail
from segs.domain.webhooks import WebhookTargetError
from segs.models import Webhook
from segs.services.alerts import mail
from segs.services.alerts import webhook_client
from segs.services.alerts.planning import Delivery
from segs.services.alerts.webhook_client import Resolver


class DeliveryFailedError(Exception):
    """The channel refused the notification (an HTTP error status, a deleted webhook)."""


# What a failed send raises: the attempt is logged as failed and retried, not crashed on.
SEND_FAILURES = (
    OSError,
    smtplib.SMTPException,
    httpx.HTTPError,
    DeliveryFailedError,
    WebhookTargetError,
)


def send(
    session: Session, settings: Settings, delivery: Delivery, resolve: Resolver | None = None
) -> str:
    """Send *delivery*; return where it went (the email address, or the webhook's URL).

    *resolve* looks webhook hosts up (default: webhook_client.resolver_for the settings).

    :raises: one of SEND_FAILURES.
    """
    if delivery.channel == "email":
        _send_email(settings, delivery)
        return delivery.target
    return _post_webhook(
        session, settings, delivery, resolve or webhook_client.resolver_for(settings)
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
