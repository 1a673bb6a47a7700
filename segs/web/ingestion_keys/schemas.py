"""Ingestion keys on the wire."""

from __future__ import annotations

from marshmallow import fields
from marshmallow import validate

from segs.domain.identifiers import ID_PATTERN
from segs.domain.identifiers import ID_RULE
from segs.domain.ingestion_keys import DEVICE
from segs.domain.ingestion_keys import HEAD_END
from segs.domain.readings import REGION_MAX_LENGTH
from segs.services.spine.ingestion_keys import NAME_MAX_LENGTH
from segs.services.spine.ingestion_keys import STATUSES
from segs.web.schemas import CamelSchema
from segs.web.schemas import page_schema


class IngestionKeySchema(CamelSchema):
    """A key as listings show it: its first characters, never the key."""

    id = fields.UUID()
    name = fields.String()
    key_prefix = fields.String(metadata={"description": "the key's first characters"})
    kind = fields.String(metadata={"description": f"{DEVICE} (one meter) | {HEAD_END} (regions)"})
    meter_id = fields.String(allow_none=True, metadata={"description": "a device key's meter"})
    regions = fields.List(
        fields.String(),
        allow_none=True,
        metadata={"description": "a head-end key's regions; null: every region"},
    )
    rate_limit = fields.String(
        allow_none=True, metadata={"description": "its own request limit; null: the default"}
    )
    status = fields.String(metadata={"description": " | ".join(STATUSES)})
    created_at = fields.DateTime()
    created_by = fields.UUID(allow_none=True)
    expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "end of a rotation's overlap"}
    )
    revoked_at = fields.DateTime(allow_none=True)
    replaces_id = fields.UUID(allow_none=True, metadata={"description": "the key it rotated"})


class NewIngestionKeySchema(IngestionKeySchema):
    """A key just created or rotated, with the plain key: shown this once, never again."""

    key = fields.String(metadata={"description": "the plain key; store it now"})


IngestionKeyPageSchema = page_schema(IngestionKeySchema, "IngestionKeyPage")


# The request's names for the values the key services' errors name by meaning (the API's
# answers and the CLI's messages both use them).
KEY_REQUEST_FIELDS = {
    "meter_id": "meterId",
    "register_in": "registerIn",
    "rate_limit": "rateLimit",
}


class IngestionKeyCreateSchema(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=NAME_MAX_LENGTH))
    meter_id = fields.String(
        validate=validate.Regexp(ID_PATTERN, error=ID_RULE),
        metadata={"description": "a device key: the one meter it sends readings of"},
    )
    regions = fields.List(
        fields.String(validate=validate.Length(min=1, max=REGION_MAX_LENGTH)),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "a head-end key's regions; none: every region"},
    )
    register_in = fields.String(
        validate=validate.Length(min=1, max=REGION_MAX_LENGTH),
        metadata={"description": "with meterId: register the meter in this region if it is new"},
    )
    rate_limit = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "e.g. '100 per second'; default SEGS_INGESTION_RATE_LIMIT"},
    )


class IngestionKeyRotateSchema(CamelSchema):
    overlap_seconds = fields.Integer(
        validate=validate.Range(min=0, max=90 * 86400),
        metadata={
            "description": "how long the old key keeps working; default SEGS_KEY_ROTATION_OVERLAP_S"
        },
    )
