"""Audit entries on the wire."""

from __future__ import annotations

from datetime import UTC

from marshmallow import fields

from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema


class AuditEntrySchema(CamelSchema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.UUID(
        allow_none=True, metadata={"description": "null for the system (CLI, seeding)"}
    )
    actor_email = fields.String(allow_none=True)
    actor_role = fields.String(allow_none=True)
    action = fields.String(metadata={"description": "e.g. user.suspend, meter.assign"})
    entity_type = fields.String(metadata={"description": "user | meter | ..."})
    entity_id = fields.String()
    details = fields.Dict(allow_none=True)
    ip_address = fields.String(allow_none=True)


AuditEntryPageSchema = page_schema(AuditEntrySchema, "AuditEntryPage")


class AuditQueryArgsSchema(PageArgsSchema):
    actor_id = fields.UUID()
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    since = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "entries at or after; UTC if no offset"}
    )
    until = fields.AwareDateTime(
        default_timezone=UTC, metadata={"description": "entries before; UTC if no offset"}
    )
