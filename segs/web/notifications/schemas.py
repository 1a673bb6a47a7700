"""Notification preferences and webhooks on the wire."""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from segs.domain import alerts as rules
from segs.web.schemas import CamelSchema

MAX_URL = 2000


class PreferencesSchema(CamelSchema):
    channels = fields.List(
        fields.String(validate=validate.OneOf(rules.CHANNELS)),
        required=True,
        validate=validate.Length(max=len(rules.CHANNELS)),
        metadata={"description": "email and/or webhook; the live feed is always on"},
    )
    kinds = fields.List(
        fields.String(validate=validate.OneOf(rules.NOTIFICATION_KINDS)),
        required=True,
        validate=validate.Length(max=len(rules.NOTIFICATION_KINDS)),
        metadata={"description": "alert types and TARIFF_CHANGE to be told about"},
    )
    min_severity = fields.String(
        required=True,
        validate=validate.OneOf(rules.SEVERITIES),
        metadata={"description": "alerts below this severity are not sent"},
    )


class PreferencesViewSchema(PreferencesSchema):
    is_default = fields.Boolean(
        dump_only=True, metadata={"description": "true until the account sets its own"}
    )


class WebhookSchema(CamelSchema):
    id = fields.UUID()
    url = fields.String()
    created_at = fields.DateTime()


class NewWebhookSchema(WebhookSchema):
    secret = fields.String(
        metadata={"description": "HMAC-SHA256 key of the X-SEGS-Signature header; shown only once"}
    )


class WebhookCreateSchema(CamelSchema):
    # Checked by segs.domain.webhooks (scheme, user info, port, public address): 422
    # WEBHOOK_URL_REFUSED names the rule.
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_URL),
        metadata={"description": "https URL of a public host, on port 443 or 8443 by default"},
    )
