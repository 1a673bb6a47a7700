"""Query arguments and response bodies of the region endpoints."""

from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from segs.domain.capacity import CAPACITY_PLACES
from segs.domain.capacity import MAX_CAPACITY_KW
from segs.domain.capacity import MIN_CAPACITY_KW
from segs.domain.capacity import capacity_problem
from segs.web.meter_data.schemas import QueryDateTime
from segs.web.schemas import CamelSchema
from segs.web.schemas import page_schema


def _number(description: str) -> fields.Decimal:
    return fields.Decimal(as_string=False, allow_none=True, metadata={"description": description})


class RegionSchema(CamelSchema):
    name = fields.String()
    timezone = fields.String(metadata={"description": "IANA time zone of the region"})
    capacity_kw = _number("the capacity its load percentage is measured against, kW")


RegionPageSchema = page_schema(RegionSchema, "RegionPage")


def _check_capacity(value: Decimal) -> None:
    problem = capacity_problem(value)
    if problem is not None:
        raise ValidationError(problem)


class RegionUpdateSchema(CamelSchema):
    """What an admin may change of a region: its capacity (other fields are refused)."""

    capacity_kw = fields.Decimal(
        as_string=False,
        required=True,
        validate=_check_capacity,
        metadata={
            "description": f"kW, {MIN_CAPACITY_KW} to {MAX_CAPACITY_KW}, at most "
            f"{CAPACITY_PLACES} decimal places; a JSON number or a decimal string",
            "minimum": MIN_CAPACITY_KW,
            "maximum": MAX_CAPACITY_KW,
        },
    )


class RegionRangeQueryArgsSchema(CamelSchema):
    start = QueryDateTime(metadata={"description": "ISO-8601 with offset; default end - 7 days"})
    end = QueryDateTime(
        metadata={"description": "ISO-8601 with offset; default now; at most 31 days after start"}
    )


class TopConsumersQueryArgsSchema(CamelSchema):
    start = QueryDateTime(metadata={"description": "ISO-8601 with offset; default end - 30 days"})
    end = QueryDateTime(
        metadata={"description": "ISO-8601 with offset; default now; at most 31 days after start"}
    )
    limit = fields.Integer(
        load_default=10,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "how many meters, 1 to 100"},
    )


class RegionPeriodStatsSchema(CamelSchema):
    region = fields.String()
    start = fields.DateTime(metadata={"description": "widened to whole 15-minute windows"})
    end = fields.DateTime()
    energy_kwh = _number("energy used by the region's meters, kWh")
    active_meters = fields.Integer(metadata={"description": "meters with readings in the range"})
    avg_energy_per_meter_kwh = _number("energy / active meters, kWh; null without meters")
    peak_load_kw = _number("highest 15-minute load: sum of the meters' mean power, kW")
    peak_load_percentage = _number("that load as a percentage of the capacity")
    peak_window_start = fields.DateTime(allow_none=True)


class TopConsumerSchema(CamelSchema):
    rank = fields.Integer(metadata={"description": "1 = most energy; ties by meter id"})
    meter_id = fields.String()
    energy_kwh = _number("kWh")
    avg_power_kw = _number("mean power over the meter's readings, kW")
    reading_count = fields.Integer()


class TopConsumersSchema(CamelSchema):
    region = fields.String()
    start = fields.DateTime()
    end = fields.DateTime()
    limit = fields.Integer()
    consumers = fields.List(fields.Nested(TopConsumerSchema))


class RegionCurrentLoadSchema(CamelSchema):
    """The newest complete 1-minute window; window fields are null before the first one."""

    region = fields.String()
    capacity_kw = _number("kW")
    window_start = fields.DateTime(allow_none=True)
    window_end = fields.DateTime(allow_none=True)
    total_power_kw = _number("sum of the meters' mean power in the window, kW")
    load_percentage = _number("100 x total / capacity, 4 places")
    meter_count = fields.Integer(allow_none=True)
    reading_count = fields.Integer(allow_none=True)
