"""Meters on the wire."""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from segs.domain.identifiers import ID_PATTERN
from segs.domain.identifiers import ID_RULE
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema

METER_STATUSES = ("active", "retired")

METER_ID = validate.Regexp(ID_PATTERN, error=ID_RULE)


class MeterSchema(CamelSchema):
    meter_id = fields.String()
    region = fields.String()
    status = fields.String(metadata={"description": " | ".join(METER_STATUSES)})
    owner_id = fields.UUID(
        allow_none=True, metadata={"description": "the account the meter is assigned to"}
    )
    assigned_at = fields.DateTime(allow_none=True)
    retired_at = fields.DateTime(allow_none=True)
    first_seen = fields.DateTime(
        allow_none=True, metadata={"description": "time of its first reading; null until then"}
    )
    last_seen = fields.DateTime(
        allow_none=True, metadata={"description": "time of its newest flushed reading"}
    )


MeterPageSchema = page_schema(MeterSchema, "MeterPage")


class MeterQueryArgsSchema(PageArgsSchema):
    region = fields.String()
    owner_id = fields.UUID(metadata={"description": "staff: meters of this account"})
    status = fields.String(validate=validate.OneOf(METER_STATUSES))
    assigned = fields.Boolean(metadata={"description": "true: with an owner; false: without"})


class MeterCreateSchema(CamelSchema):
    meter_id = fields.String(required=True, validate=METER_ID)
    region = fields.String(required=True, metadata={"description": "a known region"})


class MeterAssignmentSchema(CamelSchema):
    user_id = fields.UUID(
        required=True, metadata={"description": "a USER account of the meter's region"}
    )
    reassign = fields.Boolean(
        load_default=False,
        metadata={"description": "take the meter from its current owner; else 409 if it has one"},
    )


class MeterMoveSchema(CamelSchema):
    region = fields.String(required=True, metadata={"description": "a known region"})
    effective_from = fields.AwareDateTime(
        metadata={
            "description": "a 15-minute boundary (UTC) after every reading already accepted; "
            "default: the earliest such boundary"
        }
    )


class MoveSchema(CamelSchema):
    meter_id = fields.String()
    from_region = fields.String()
    to_region = fields.String()
    effective_from = fields.DateTime(
        metadata={"description": "readings from this instant on belong to toRegion"}
    )
    moved_at = fields.DateTime()
    moved_by = fields.UUID(allow_none=True)
