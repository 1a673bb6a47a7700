"""Dead letters on the wire."""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from segs.services.spine.dead_letters import STATUSES
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema


class DeadLetterSchema(CamelSchema):
    batch_id = fields.UUID(metadata={"description": "the batch's task id, kept by a replay"})
    shard = fields.Integer()
    received_at_us = fields.Integer(metadata={"description": "when the API accepted it (µs)"})
    reading_count = fields.Integer()
    error_type = fields.String()
    error = fields.String(metadata={"description": "the last failure"})
    attempts = fields.Integer()
    status = fields.String(metadata={"description": " | ".join(STATUSES)})
    times_dead = fields.Integer(metadata={"description": "how often it was set aside"})
    dead_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.UUID(allow_none=True)


class DeadLetterDetailSchema(DeadLetterSchema):
    rows = fields.List(
        fields.Raw(),
        metadata={
            "description": "the readings as workers receive them: [meterId, region, readingId, "
            "ts (µs), power, energy, voltage, current, frequency, powerFactor, temperature], "
            "numbers in micro-units"
        },
    )


DeadLetterPageSchema = page_schema(DeadLetterSchema, "DeadLetterPage")


class DeadLetterQueryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
