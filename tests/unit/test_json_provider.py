"""Decimal values reach clients as JSON numbers with their exact digits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest
from flask import Flask

from segs.web.json_provider import SegsJSONProvider


@pytest.fixture
def provider() -> SegsJSONProvider:
    return SegsJSONProvider(Flask(__name__))


def test_decimals_are_numbers_with_every_digit(provider: SegsJSONProvider) -> None:
    text = provider.dumps(
        {"b": Decimal("123456789012345678.123456"), "a": Decimal("0E-6"), "c": [Decimal("1E+2")]}
    )
    assert text == '{"a":0.000000,"b":123456789012345678.123456,"c":[100]}'
    assert json.loads(text, parse_float=Decimal)["b"] == Decimal("123456789012345678.123456")


def test_other_values_are_written_as_flask_writes_them(provider: SegsJSONProvider) -> None:
    value = {"when": datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "id": uuid.UUID(int=1), "n": 2}
    assert json.loads(provider.dumps(value)) == {
        "id": "00000000-0000-0000-0000-000000000001",
        "n": 2,
        "when": "Sun, 29 Mar 2026 01:00:00 GMT",
    }


def test_not_a_number_is_refused(provider: SegsJSONProvider) -> None:
    with pytest.raises(TypeError):
        provider.dumps({"x": Decimal("NaN")})
