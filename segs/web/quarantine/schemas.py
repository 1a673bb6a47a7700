"""Quarantined windows on the wire."""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from segs.services.spine.quarantine import STATUSES
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema


class QuarantinedWindowSchema(CamelSchema):
    id = fields.Integer()
    size = fields.String(metadata={"description": "1m | 15m"})
    region = fields.String()
    window_start = fields.DateTime()
    meter_count = fields.Integer()
    reading_count = fields.Integer()
    error_type = fields.String()
    error = fields.String(metadata={"description": "why PostgreSQL refused it"})
    status = fields.String(metadata={"description": " | ".join(STATUSES)})
    times_quarantined = fields.Integer()
    quarantined_at = fields.DateTime()
    released_at = fields.DateTime(allow_none=True)
    released_by = fields.UUID(allow_none=True)


QuarantinedWindowPageSchema = page_schema(QuarantinedWindowSchema, "QuarantinedWindowPage")


class QuarantineQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
