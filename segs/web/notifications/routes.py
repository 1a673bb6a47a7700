"""The caller's own alerts, notification preferences and webhooks."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app

from segs.db import session_scope
from segs.models import Webhook
from segs.services.alerts import preferences
from segs.services.alerts import queries
from segs.services.alerts import webhook_client
from segs.services.alerts import webhooks
from segs.web.actor import current_actor
from segs.web.alerts.schemas import CustomerAlertPageSchema
from segs.web.alerts.schemas import MyAlertQueryArgsSchema
from segs.web.notifications.schemas import NewWebhookSchema
from segs.web.notifications.schemas import PreferencesSchema
from segs.web.notifications.schemas import PreferencesViewSchema
from segs.web.notifications.schemas import WebhookCreateSchema
from segs.web.notifications.schemas import WebhookSchema
from segs.web.parsing import Blueprint
from segs.web.schemas import page_body
from segs.web.security import current_account
from segs.web.security import roles_required

bp = Blueprint(
    "my_notifications",
    __name__,
    url_prefix="/users/me",
    description="The caller's own alerts (those on their meters), how they want to be "
    "notified, and their webhooks.",
)


@bp.get("/alerts")
@roles_required()
@bp.arguments(MyAlertQueryArgsSchema, location="query")
@bp.response(200, CustomerAlertPageSchema)
def my_alerts(args: dict[str, Any]) -> dict[str, Any]:
    """Alerts raised on the caller's meters while they owned them, newest first (without
    staff's names and notes)."""
    filters = queries.AlertFilters(
        status=args.get("status"), meter_id=args.get("meter_id"), owner_id=current_account().id
    )
    with session_scope() as session:
        page = queries.list_alerts(session, filters, page=args["page"], page_size=args["page_size"])
    return page_body(page.items, page.total, args)


@bp.get("/notification-preferences")
@roles_required()
@bp.response(200, PreferencesViewSchema)
def get_preferences() -> preferences.PreferencesView:
    """The caller's preferences (the defaults until they set theirs)."""
    with session_scope() as session:
        return preferences.get_preferences(session, current_account().id)


@bp.put("/notification-preferences")
@roles_required()
@bp.arguments(PreferencesSchema)
@bp.response(200, PreferencesViewSchema)
def set_preferences(body: dict[str, Any]) -> preferences.PreferencesView:
    """Replace the caller's preferences: channels, kinds and the minimum severity."""
    with session_scope() as session:
        return preferences.set_preferences(
            session, current_actor(), body["channels"], body["kinds"], body["min_severity"]
        )


@bp.get("/webhooks")
@roles_required()
@bp.response(200, WebhookSchema(many=True))
def list_webhooks() -> list[Webhook]:
    """The caller's webhooks (their secrets are not shown again)."""
    with session_scope() as session:
        return webhooks.list_webhooks(session, current_account().id)


@bp.post("/webhooks")
@roles_required()
@bp.arguments(WebhookCreateSchema)
@bp.response(201, NewWebhookSchema)
@bp.alt_response(409, response="CONFLICT")
@bp.alt_response(422, response="UNPROCESSABLE_ENTITY")
def create_webhook(body: dict[str, Any]) -> Webhook:
    """Register an endpoint for JSON notifications signed with the returned secret.

    Only https URLs on an allowed port whose host resolves to public addresses are taken
    (422 WEBHOOK_URL_REFUSED says why); each delivery checks again."""
    settings = current_app.config["SEGS_SETTINGS"]
    with session_scope() as session:
        return webhooks.create_webhook(
            session,
            current_actor(),
            body["url"],
            settings,
            webhook_client.resolver_for(settings),
        )


@bp.delete("/webhooks/<uuid:webhook_id>")
@roles_required()
@bp.response(204)
@bp.alt_response(404, response="NOT_FOUND")
def delete_webhook(webhook_id: uuid.UUID) -> None:
    """Remove one of the caller's webhooks."""
    with session_scope() as session:
        webhooks.delete_webhook(session, current_actor(), webhook_id)
