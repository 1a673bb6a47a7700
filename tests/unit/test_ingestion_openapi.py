"""The ingestion routes in the OpenAPI document (segs.web.telemetry.openapi) say what the
decoder does: each documented bound, required field and id rule is held against the real
ReadingCodec, under plausibility limits other than the defaults."""

from __future__ import annotations

import json
import re
from datetime import UTC
from datetime import datetime
from typing import Any

import pytest

from segs.config import Settings
from segs.domain.readings import ReadingCodec
from segs.web.telemetry.openapi import reading_schema

LIMITS = {
    "max_power_kw": 50.0,
    "max_energy_kwh": 70.0,
    "max_voltage_v": 300.0,
    "max_current_a": 80.0,
    "max_frequency_hz": 65.0,
}
SETTINGS = Settings(environment="testing", max_batch_readings=20, **LIMITS)
CODEC = ReadingCodec(SETTINGS.reading_limits, max_items=SETTINGS.max_batch_readings)
GOOD = {
    "readingId": "R-1",
    "meterId": "MTR-1",
    "region": "Pune-West",
    "timestamp": "2026-01-01T12:00:00Z",
    "powerKw": 1.0,
}
SCHEMA = reading_schema(SETTINGS)
BOUNDED = sorted(
    name for name, field in SCHEMA["properties"].items() if "minimum" in field or "maximum" in field
)


def errors_for(reading: dict[str, Any]) -> list[str]:
    """The fields the codec names in its errors for this one reading."""
    decoded = CODEC.decode_batch(json.dumps([reading]).encode())
    return [error.field for error in decoded.errors]


def test_every_field_is_described():
    assert [
        name for name, field in SCHEMA["properties"].items() if not field.get("description")
    ] == []


def test_the_documented_upper_bounds_are_the_configured_limits():
    documented = {name: SCHEMA["properties"][name].get("maximum") for name in BOUNDED}
    assert documented["powerKw"] == LIMITS["max_power_kw"]
    assert documented["energyKwh"] == LIMITS["max_energy_kwh"]
    assert documented["voltage"] == LIMITS["max_voltage_v"]
    assert documented["current"] == LIMITS["max_current_a"]
    assert documented["frequency"] == LIMITS["max_frequency_hz"]
    assert documented["powerFactor"] == 1


@pytest.mark.parametrize("name", BOUNDED)
def test_each_documented_bound_is_where_the_codec_draws_the_line(name):
    field = SCHEMA["properties"][name]
    for bound, step in (("minimum", -0.001), ("maximum", 0.001)):
        edge = field[bound]
        assert errors_for({**GOOD, name: edge}) == [], (name, bound, edge)
        assert errors_for({**GOOD, name: edge + step}) == [name], (name, bound, edge + step)


def test_required_fields_are_the_ones_the_codec_requires():
    full = {
        **GOOD,
        **{"energyKwh": 1.0, "voltage": 230.0, "current": 5.0, "frequency": 50.0},
        **{"powerFactor": 0.9, "temperature": 21.5},
        **{"userId": "u-1", "seq": 7, "status": "ok", "metadata": {"fw": "1.2"}},
    }
    assert sorted(full) == sorted(SCHEMA["properties"])
    assert errors_for(full) == []
    refused_without = {
        name for name in full if errors_for({k: v for k, v in full.items() if k != name})
    }
    assert refused_without == set(SCHEMA["required"])


def test_nullable_fields_take_null_and_the_others_do_not():
    for name, field in SCHEMA["properties"].items():
        if "type" not in field:  # any value: the fields the codec accepts and ignores
            assert errors_for({**GOOD, name: {"any": ["thing"]}}) == [], name
            continue
        refused = errors_for({**GOOD, name: None}) != []
        assert refused != bool(field.get("nullable")), name


@pytest.mark.parametrize(
    "value", ["MTR-1", "a" * 128, "a" * 129, "-lead", "m 1", "m1\n", "x:y.z_w", "", "é"]
)
def test_the_id_pattern_is_the_codec_s_id_rule(value):
    pattern = re.compile(SCHEMA["properties"]["meterId"]["pattern"])
    documented_ok = pattern.search(value) is not None
    assert (errors_for({**GOOD, "meterId": value}) == []) == documented_ok


def test_the_documented_timestamp_needs_a_zone_as_the_codec_does():
    assert SCHEMA["properties"]["timestamp"]["format"] == "date-time"
    naive = datetime(2026, 1, 1, 12, tzinfo=UTC).isoformat().replace("+00:00", "")
    assert errors_for({**GOOD, "timestamp": naive}) == ["timestamp"]
    assert "offset" in SCHEMA["properties"]["timestamp"]["description"]


def test_the_document_has_the_four_ingestion_operations_with_their_key():
    from segs.web import create_app
    from segs.web.extensions import api

    create_app(SETTINGS)
    spec = api.spec.to_dict()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ingestionKey"]["scheme"] == "bearer"
    assert schemes["ingestionKey"] != schemes["bearerAuth"]
    operations = {path: item["post"] for path, item in spec["paths"].items() if "telemetry" in path}
    assert sorted(operations) == [
        "/api/v1/{key}/telemetry",
        "/api/v1/{key}/telemetry/batch",
        "/telemetry",
        "/telemetry/batch",
    ]
    for path, operation in operations.items():
        in_path = path.startswith("/api/v1/{key}")
        assert operation["security"] == ([] if in_path else [{"ingestionKey": []}])
        parameters = spec["paths"][path].get("parameters", [])
        assert [(p["in"], p["name"]) for p in parameters] == ([("path", "key")] if in_path else [])
        assert {"202", "400", "401", "413", "422", "429", "503"} <= set(operation["responses"])
        for code in ("429", "503"):
            assert "Retry-After" in operation["responses"][code]["headers"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        if path.endswith("/batch"):
            assert (body["type"], body["minItems"], body["maxItems"]) == ("array", 1, 20)
            body = body["items"]
        assert body == {"$ref": "#/components/schemas/Reading"}
    assert spec["components"]["schemas"]["Reading"] == SCHEMA
    result = spec["components"]["schemas"]["IngestResult"]
    assert set(result["required"]) == {"accepted", "duplicates", "rejected", "errors"}
