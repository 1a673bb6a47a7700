"""System statistics on the wire."""

from __future__ import annotations

from marshmallow import fields

from segs.web.schemas import CamelSchema


class UserCountsSchema(CamelSchema):
    total = fields.Integer(metadata={"description": "accounts that are not deleted"})
    by_role = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    unverified = fields.Integer(metadata={"description": "email address not verified yet"})
    deleted = fields.Integer()


class MeterCountsSchema(CamelSchema):
    total = fields.Integer()
    assigned = fields.Integer()
    retired = fields.Integer()
    never_seen = fields.Integer(metadata={"description": "registered, no reading flushed yet"})
    seen_last_24h = fields.Integer(
        data_key="seenLast24h", metadata={"description": "newest reading within 24 hours"}
    )


class RegionLatestLoadSchema(CamelSchema):
    window_start = fields.DateTime()
    meter_count = fields.Integer()
    total_power_kw = fields.Float()
    load_percentage = fields.Float()


class RegionSummarySchema(CamelSchema):
    region = fields.String()
    capacity_kw = fields.Float()
    meters = fields.Nested(MeterCountsSchema)
    readings_last_24h = fields.Integer(data_key="readingsLast24h")
    latest_load = fields.Nested(
        RegionLatestLoadSchema,
        allow_none=True,
        metadata={"description": "the newest flushed 1-minute window; null before any"},
    )


class SystemStatsSchema(CamelSchema):
    generated_at = fields.DateTime()
    users = fields.Nested(UserCountsSchema)
    meters = fields.Nested(MeterCountsSchema)
    readings_last_24h = fields.Integer(
        data_key="readingsLast24h",
        metadata={"description": "readings in 1-minute windows flushed over the last 24 hours"},
    )
    regions = fields.List(fields.Nested(RegionSummarySchema))
