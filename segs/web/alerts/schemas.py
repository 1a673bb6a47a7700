"""Alerts on the wire."""

from __future__ import annotations

from datetime import UTC

from marshmallow import fields
from marshmallow import validate

from segs.domain import alerts as rules
from segs.domain.identifiers import ID_MAX_LENGTH
from segs.domain.readings import REGION_MAX_LENGTH
from segs.models.base import BIGINT_MAX
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema

MAX_NOTE = 2000
MAX_BULK = 500


class CustomerAlertSchema(CamelSchema):
    """An alert as its customer sees it: what happened and where it stands, not who on the
    staff handled it or their notes."""

    id = fields.Integer()
    type = fields.String(metadata={"description": " | ".join(rules.ALERT_TYPES)})
    severity = fields.String(metadata={"description": " | ".join(rules.SEVERITIES)})
    status = fields.String(metadata={"description": " | ".join(rules.STATUSES)})
    region = fields.String()
    meter_id = fields.String(allow_none=True, metadata={"description": "null for regional alerts"})
    message = fields.String()
    occurrence_count = fields.Integer(
        metadata={"description": "how often the condition was seen while the alert was open"}
    )
    created_at = fields.DateTime()
    last_seen_at = fields.DateTime()
    acknowledged_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    auto_resolved = fields.Boolean(
        metadata={"description": "resolved because the condition cleared"}
    )
    incident_id = fields.Integer(
        allow_none=True,
        metadata={"description": "the regional incident this meter alert is grouped under"},
    )
    meter_count = fields.Integer(
        allow_none=True,
        metadata={"description": "on a regional incident: the meters it groups; else null"},
    )


class AlertSchema(CustomerAlertSchema):
    """An alert as staff see it, with who acknowledged and resolved it and their notes."""

    acknowledged_by = fields.UUID(allow_none=True)
    acknowledgement_note = fields.String(allow_none=True)
    resolved_by = fields.UUID(allow_none=True)
    resolution_note = fields.String(allow_none=True)


class TransitionSchema(CamelSchema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": " | ".join(rules.TRANSITIONS)})
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    severity = fields.String()
    actor_id = fields.UUID(allow_none=True, metadata={"description": "null when automatic"})
    note = fields.String(allow_none=True)
    at = fields.DateTime()


class AlertDetailSchema(AlertSchema):
    transitions = fields.List(fields.Nested(TransitionSchema))


AlertPageSchema = page_schema(AlertSchema, "AlertPage")
CustomerAlertPageSchema = page_schema(CustomerAlertSchema, "CustomerAlertPage")


class AlertQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(rules.STATUSES))
    severity = fields.String(validate=validate.OneOf(rules.SEVERITIES))
    type = fields.String(validate=validate.OneOf(rules.ALERT_TYPES))
    region = fields.String(validate=validate.Length(max=REGION_MAX_LENGTH))
    meter_id = fields.String(validate=validate.Length(max=ID_MAX_LENGTH))
    since = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "created at or after; UTC if no offset"}
    )
    until = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "created before; UTC if no offset"}
    )
    incident_id = fields.Integer(
        validate=validate.Range(min=1, max=BIGINT_MAX),
        metadata={"description": "the alerts grouped under this regional incident"},
    )


class AlertMeterSchema(CamelSchema):
    """A meter an alert is about: an incident's grouped meter, or a meter alert's own."""

    meter_id = fields.String()
    alert_types = fields.List(
        fields.String(), metadata={"description": "the types of its alerts there"}
    )
    first_raised_at = fields.DateTime(metadata={"description": "when its first one was raised"})
    is_open = fields.Boolean(metadata={"description": "whether one of them is still open"})


AlertMeterPageSchema = page_schema(AlertMeterSchema, "AlertMeterPage")


class MyAlertQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(rules.STATUSES))
    meter_id = fields.String(validate=validate.Length(max=ID_MAX_LENGTH))


class NoteSchema(CamelSchema):
    note = fields.String(validate=validate.Length(max=MAX_NOTE), allow_none=True)


class BulkResolveSchema(CamelSchema):
    ids = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=BIGINT_MAX)),
        required=True,
        validate=validate.Length(min=1, max=MAX_BULK),
    )
    note = fields.String(validate=validate.Length(max=MAX_NOTE), allow_none=True)


class BulkResolveResultSchema(CamelSchema):
    resolved = fields.List(fields.Integer())
    skipped = fields.List(fields.Integer(), metadata={"description": "unknown or already resolved"})


class StatsArgsSchema(CamelSchema):
    since = fields.AwareDateTime(default_timezone=UTC)
    until = fields.AwareDateTime(default_timezone=UTC)


class AlertStatsSchema(CamelSchema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_type = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_region = fields.Dict(keys=fields.String(), values=fields.Integer())
    mean_time_to_acknowledge_s = fields.Float(
        allow_none=True, metadata={"description": "over acknowledged alerts; null if none"}
    )
    mean_time_to_resolve_s = fields.Float(
        allow_none=True, metadata={"description": "over resolved alerts; null if none"}
    )
