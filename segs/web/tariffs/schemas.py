"""Query arguments and bodies of the tariff endpoints. Prices are decimal strings per kWh."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate

from segs.web.meter_data.schemas import QueryDateTime
from segs.web.schemas import CamelSchema
from segs.web.schemas import PageArgsSchema
from segs.web.schemas import page_schema

MAX_PRICE = 1000
MAX_KWH = 1_000_000


class ExactDecimal(fields.Decimal):
    """A finite decimal with at most *places* decimal places (no silent rounding)."""

    # int bounds: the OpenAPI document must show numbers, not decimal strings.
    def __init__(
        self, places: int, low: int, high: int, *, min_inclusive: bool = False, **kwargs: Any
    ) -> None:
        self.max_places = places
        super().__init__(
            as_string=False,
            validate=validate.Range(min=low, max=high, min_inclusive=min_inclusive),
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        number = super()._deserialize(value, attr, data, **kwargs)
        exponent = number.as_tuple().exponent
        if not isinstance(exponent, int) or exponent < -self.max_places:
            raise ValidationError(f"at most {self.max_places} decimal places")
        return number


def price_field(**kwargs: Any) -> ExactDecimal:
    return ExactDecimal(
        6, 0, MAX_PRICE, metadata={"description": "per kWh, > 0, up to 6 places"}, **kwargs
    )


def _price(description: str) -> fields.Decimal:
    return fields.Decimal(as_string=True, allow_none=True, metadata={"description": description})


class TariffCurrentPriceSchema(CamelSchema):
    region = fields.String()
    price_per_kwh = _price("the price per kWh in force now, INR")
    effective_from = fields.DateTime()
    reason = fields.String()
    triggered_by = fields.String(
        metadata={
            "description": "initial | load | time_of_use | override | override_end | base "
            "(no history yet: the region's base price)"
        }
    )
    tou_period = fields.String(
        allow_none=True, metadata={"description": "off_peak | shoulder | peak"}
    )
    load_percentage = _price("the regional load the price was set at")
    tariff_id = fields.Integer(allow_none=True)


class TariffRegionArgsSchema(CamelSchema):
    region = fields.String(metadata={"description": "default: the caller's region"})


class TariffSchema(CamelSchema):
    id = fields.Integer()
    region = fields.String()
    price_per_kwh = _price("INR per kWh")
    effective_from = fields.DateTime()
    effective_to = fields.DateTime(allow_none=True, metadata={"description": "null: current"})
    reason = fields.String()
    triggered_by = fields.String()
    load_percentage = _price("regional load at the change, %")
    load_multiplier = _price("load band multiplier")
    tou_period = fields.String(allow_none=True)
    override_id = fields.Integer(allow_none=True)


class TariffHistoryArgsSchema(CamelSchema):
    start = QueryDateTime(metadata={"description": "ISO-8601 with offset; default end - 24 h"})
    end = QueryDateTime(
        metadata={"description": "ISO-8601 with offset; default now; at most 92 days after start"}
    )


class TariffHistorySchema(CamelSchema):
    region = fields.String()
    start = fields.DateTime()
    end = fields.DateTime()
    items = fields.List(fields.Nested(TariffSchema))


class TariffEstimateArgsSchema(TariffRegionArgsSchema):
    kwh = ExactDecimal(
        6,
        0,
        MAX_KWH,
        required=True,
        metadata={"description": "energy to price, kWh, > 0, up to 6 places"},
    )


class TariffEstimateSchema(CamelSchema):
    region = fields.String()
    kwh = _price("kWh")
    price_per_kwh = _price("the current price per kWh")
    currency = fields.String()
    energy_minor = fields.Integer(metadata={"description": "paise"})
    tax_rate = _price("fraction, 0.18 = 18 %")
    tax_minor = fields.Integer()
    total_minor = fields.Integer()


class TariffRegionStatsSchema(CamelSchema):
    region = fields.String()
    base_price_per_kwh = _price("INR per kWh")
    current = fields.Nested(TariffCurrentPriceSchema)
    load_percentage = _price("newest 1-minute regional load, %")
    changes = fields.Integer(metadata={"description": "price changes in the window"})
    min_price = _price("lowest price in the window")
    max_price = _price("highest price in the window")
    time_weighted_avg_price = _price("average price weighted by how long each held")
    active_override_id = fields.Integer(allow_none=True)


class TariffOverviewSchema(CamelSchema):
    window_start = fields.DateTime()
    window_end = fields.DateTime()
    regions = fields.List(fields.Nested(TariffRegionStatsSchema))


class TariffOverrideSchema(CamelSchema):
    id = fields.Integer()
    region = fields.String()
    price_per_kwh = _price("INR per kWh")
    valid_from = fields.DateTime()
    valid_to = fields.DateTime()
    reason = fields.String()
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()
    removed_at = fields.DateTime(allow_none=True)
    removed_by = fields.UUID(allow_none=True)


TariffOverridePageSchema = page_schema(TariffOverrideSchema, "TariffOverridePage")


class TariffOverrideArgsSchema(PageArgsSchema):
    region = fields.String()
    include_removed = fields.Boolean(load_default=False)


REASON = validate.Length(min=1, max=500)


class TariffOverrideCreateSchema(CamelSchema):
    region = fields.String(required=True, validate=validate.Length(min=1, max=64))
    price_per_kwh = price_field(required=True)
    valid_from = QueryDateTime(required=True)
    valid_to = QueryDateTime(required=True)
    reason = fields.String(required=True, validate=REASON)


class TariffOverrideUpdateSchema(CamelSchema):
    price_per_kwh = price_field()
    valid_from = QueryDateTime()
    valid_to = QueryDateTime()
    reason = fields.String(validate=REASON)


class TariffRulesSchema(CamelSchema):
    """A region's pricing rules, stored as given once the engine's own checks accept them."""

    name = fields.String(dump_only=True)
    timezone = fields.String(dump_only=True)
    # Read as a number, written back as a decimal string like every other price.
    base_price_per_kwh = price_field(load_only=True)
    base_price = fields.Decimal(
        as_string=True,
        dump_only=True,
        attribute="base_price_per_kwh",
        data_key="basePricePerKwh",
        metadata={"description": "INR per kWh before band and time of use"},
    )
    load_bands = fields.List(
        fields.Dict(keys=fields.String(), values=fields.Raw()),
        validate=validate.Length(min=1, max=20),
        metadata={
            "description": 'from 0 % upwards: [{"fromPercent": "0", "multiplier": "0.8"}, ...]'
        },
    )
    tou_schedule = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": '{"weekday": 24 letters O/S/P, one per local hour, "weekend": ...}'
        },
    )
    tou_multipliers = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": '{"off_peak": "0.9", "shoulder": "1.0", "peak": "1.2"}'},
    )
    demand_charge_per_kw = ExactDecimal(
        6,
        0,
        MAX_PRICE,
        allow_none=True,
        min_inclusive=True,
        load_only=True,
        metadata={"description": "INR per kW of demand; null: no demand charge"},
    )
    demand_charge = fields.Decimal(
        as_string=True,
        dump_only=True,
        allow_none=True,
        attribute="demand_charge_per_kw",
        data_key="demandChargePerKw",
        metadata={"description": "INR per kW of demand; null: none"},
    )
