"""A view's names for the fields its services' errors name by meaning are its schemas' names."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from marshmallow import Schema

from segs.web.billing import routes as billing_views
from segs.web.billing.schemas import PaymentCallbackSchema
from segs.web.billing.schemas import RecordPaymentSchema
from segs.web.billing.schemas import StartPaymentSchema
from segs.web.ingestion_keys.schemas import KEY_REQUEST_FIELDS
from segs.web.ingestion_keys.schemas import IngestionKeyCreateSchema
from segs.web.meters import routes as meter_views
from segs.web.meters.schemas import MeterAssignmentSchema
from segs.web.meters.schemas import MeterCreateSchema
from segs.web.meters.schemas import MeterMoveSchema
from segs.web.meters.schemas import MeterSchema
from segs.web.regions import routes as region_views
from segs.web.regions.schemas import RegionUpdateSchema
from segs.web.tariffs import routes as tariff_views
from segs.web.tariffs.schemas import TariffOverrideCreateSchema
from segs.web.tariffs.schemas import TariffOverrideUpdateSchema
from segs.web.users import routes as user_views
from segs.web.users.schemas import UserSchema


def _names_in(schemas: list[type[Schema]]) -> dict[str, str]:
    """Each field's Python name and the name the request or answer gives it."""
    return {
        name: field.data_key or name
        for schema in schemas
        for name, field in schema().fields.items()
    }


@pytest.mark.parametrize(
    ("names", "schemas"),
    [
        (
            meter_views.API_FIELDS,
            [MeterSchema, MeterCreateSchema, MeterMoveSchema, MeterAssignmentSchema],
        ),
        (KEY_REQUEST_FIELDS, [IngestionKeyCreateSchema]),
        (user_views.API_FIELDS, [UserSchema]),
        (region_views.API_FIELDS, [RegionUpdateSchema]),
        (
            billing_views.API_FIELDS,
            [StartPaymentSchema, RecordPaymentSchema, PaymentCallbackSchema],
        ),
        (
            tariff_views.API_FIELDS,
            [TariffOverrideCreateSchema, TariffOverrideUpdateSchema],
        ),
    ],
)
def test_an_error_names_a_field_as_the_schema_does(
    names: Mapping[str, str], schemas: list[type[Schema]]
) -> None:
    on_the_wire = _names_in(schemas)
    assert {name: on_the_wire[name] for name in names} == dict(names)
