"""The ingestion routes in the OpenAPI document (and so in Swagger UI at /api-docs).

flask-smorest documents the views of its own blueprints, from the marshmallow schemas their
decorators declare. The ingestion views are a plain Flask blueprint on purpose: their bodies are
decoded and checked by msgspec in C (segs.domain.readings), far cheaper than marshmallow, on
the busiest path of the system. So flask-smorest never saw them, and the document had no
ingestion at all.

They are added here, to the document only; nothing here runs on a request. The reading's schema
is derived from the very msgspec type the views decode with, under this process's plausibility
bounds, so the document cannot drift from what the API accepts.
"""

from __future__ import annotations

import copy
from datetime import UTC
from datetime import datetime
from typing import Any

import msgspec
from apispec import APISpec
from flask import Flask

from segs.config import Settings
from segs.domain.identifiers import ID_MAX_LENGTH
from segs.domain.identifiers import ID_PATTERN
from segs.domain.identifiers import ID_RULE
from segs.domain.readings import reading_type

TAG = "telemetry"
KEY_SCHEME = "ingestionKey"
ERROR = {"$ref": "#/components/schemas/Error"}

# What the bare msgspec schema cannot say about each field.
FIELD_NOTES = {
    "readingId": "The reading's own id, kept with it in raw_readings.",
    "meterId": "The meter that took the reading.",
    "region": (
        "A known region (GET /api/v1/regions); once the meter is registered, its registered region."
    ),
    "timestamp": (
        "When the reading was taken: ISO-8601 with 'Z' or an offset. Not more than "
        "SEGS_MAX_FUTURE_SKEW_S ({skew} s) in the future, not older than SEGS_MAX_READING_AGE_S "
        "({age} s). Readings are windowed by this time."
    ),
    "powerKw": "Active power in kW. 0 is a valid reading, not a missing one.",
    "energyKwh": "Energy in kWh, kept end to end (windows sum it).",
    "voltage": "Volts.",
    "current": "Amperes.",
    "frequency": "Hertz.",
    "powerFactor": "Between 0 and 1.",
    "temperature": "Degrees Celsius.",
}
# Fields the seed's simulator sends: accepted, and not stored.
IGNORED_FIELDS = ("userId", "seq", "status", "metadata")


def _openapi_30(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec writes JSON Schema 2020-12; OpenAPI 3.0 says "nullable" instead of a null type."""
    options = schema.get("anyOf")
    if options and {"type": "null"} in options and len(options) == 2:
        (kept,) = [option for option in options if option != {"type": "null"}]
        schema = {**kept, "nullable": True}
    schema.pop("default", None)
    return schema


def reading_schema(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.0 schema of one reading, from the msgspec type ingestion decodes with."""
    item_type = reading_type(settings.reading_limits)
    _, components = msgspec.json.schema_components([item_type])
    (schema,) = copy.deepcopy(list(components.values()))
    schema.pop("title", None)
    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        field = _openapi_30(field)
        note = FIELD_NOTES.get(name, "").format(
            skew=settings.max_future_skew_s, age=settings.max_reading_age_s
        )
        if name in ("readingId", "meterId"):
            # Checked after decoding, for the whole batch at once (segs.domain.identifiers).
            field.update(pattern=ID_PATTERN, minLength=1, maxLength=ID_MAX_LENGTH)
            note = f"{note} An id {ID_RULE}."
        properties[name] = {**field, "description": note} if note else field
    for name in IGNORED_FIELDS:
        properties[name] = {"description": "Accepted, not stored (the seed's simulator sends it)."}
    schema["properties"] = properties
    schema["description"] = (
        "One meter reading, camelCase as the seed sends it. The upper bounds of powerKw, "
        "energyKwh, voltage, current and frequency are the configured plausibility limits "
        "(SEGS_MAX_*). Other fields are accepted and ignored."
    )
    return schema


INGEST_RESULT = {
    "type": "object",
    "description": "What happened to each reading of the request.",
    "required": ["accepted", "duplicates", "rejected", "errors"],
    "properties": {
        "accepted": {
            "type": "integer",
            "minimum": 0,
            "description": "Readings accepted, every one durably queued.",
        },
        "duplicates": {
            "type": "integer",
            "minimum": 0,
            "description": "Readings whose (meterId, timestamp) was accepted before.",
        },
        "rejected": {"type": "integer", "minimum": 0, "description": "Invalid readings."},
        "errors": {
            "type": "array",
            "description": "Why each rejected reading was rejected, by its index in the request.",
            "items": {
                "type": "object",
                "required": ["index", "field", "message"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "field": {"type": "string", "example": "powerKw"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ERROR}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def _responses(settings: Settings, *, single: bool) -> dict[str, Any]:
    result = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}
    }
    shape = "one JSON object" if single else "a JSON array of at least one reading"
    too_large = f"over SEGS_MAX_BODY_BYTES ({settings.max_body_bytes} bytes)"
    if not single:
        too_large = f"more than {settings.max_batch_readings} readings, or {too_large}"
    return {
        "202": {
            "description": (
                "At least one reading was accepted, and every accepted reading is durably "
                "queued. Duplicates and rejected readings are counted; errors says why each "
                "rejected one was."
            ),
            **result,
        },
        "200": {
            "description": "Every valid reading was a duplicate: nothing new was queued.",
            **result,
        },
        "400": _error(f"BAD_REQUEST: the body is not JSON, not {shape}, or nests too deep"),
        "401": {
            **_error(
                "INGESTION_KEY_REQUIRED or INGESTION_KEY_INVALID: no ingestion key, an API "
                "token instead of one, or an unknown, revoked or expired key"
            ),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        "413": _error(f"PAYLOAD_TOO_LARGE: {too_large}"),
        "422": {"description": "No reading was valid; errors says why, for each.", **result},
        "429": _error(
            "TOO_MANY_REQUESTS: over the key's request limit (its own, or "
            f"SEGS_INGESTION_RATE_LIMIT: {settings.ingestion_rate_limit})",
            retry_after=True,
        ),
        "503": _error(
            "SERVICE_UNAVAILABLE: the readings cannot be queued now (Redis, the database or "
            "the broker is down, or the reading queues are too long). Send the same request "
            "again after Retry-After seconds: it is not taken for a duplicate.",
            retry_after=True,
        ),
    }


def _example(now: datetime) -> dict[str, Any]:
    return {
        "readingId": "R-0001",
        "meterId": "MTR-00000001",
        "region": "Pune-West",
        "timestamp": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "powerKw": 2.5,
        "energyKwh": 0.042,
        "voltage": 231.4,
    }


KEY_IN_PATH = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": (
        "The ingestion key, for clients that can only be given a URL. A URL ends up in access "
        "logs: send the key as `Authorization: Bearer <key>` where you can."
    ),
}


def _operation(settings: Settings, *, single: bool, key_in_path: bool) -> dict[str, Any]:
    example = _example(datetime.now(UTC))
    body: dict[str, Any]
    if single:
        summary = "Send one reading"
        body = {"$ref": "#/components/schemas/Reading"}
    else:
        summary = f"Send a batch of 1 to {settings.max_batch_readings} readings"
        body = {
            "type": "array",
            "minItems": 1,
            "maxItems": settings.max_batch_readings,
            "items": {"$ref": "#/components/schemas/Reading"},
        }
    header_path = "/telemetry" if single else "/telemetry/batch"
    description = (
        f"The same as POST {header_path}, with the ingestion key in the path."
        if key_in_path
        else (
            "Needs an ingestion key (not an API token) as `Authorization: Bearer <key>`. "
            "A reading is a duplicate when its (meterId, timestamp) was accepted before."
        )
    )
    return {
        "tags": [TAG],
        "summary": summary + (" (key in the path)" if key_in_path else ""),
        "description": description,
        # In the path the key is the parameter itself: no Authorization header is read.
        "security": [] if key_in_path else [{KEY_SCHEME: []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": body,
                    "example": example if single else [example],
                }
            },
        },
        "responses": _responses(settings, single=single),
    }


def document_ingestion(app: Flask, spec: APISpec, settings: Settings) -> None:
    """Add the ingestion routes of *app*, their schemas and the ingestion key's scheme to *spec*.

    The paths come from the app's own URL rules, so only routes that exist are documented.
    """
    spec.tag(
        {
            "name": TAG,
            "description": (
                "Meters and head-ends send readings here with an ingestion key (an admin makes "
                "one: POST /api/v1/ingestion-keys, or flask --app segs.web create-ingestion-key)."
            ),
        }
    )
    spec.components.security_scheme(
        KEY_SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "description": "An ingestion key. An API (JWT) access token is not one.",
        },
    )
    spec.components.schema("Reading", reading_schema(settings))
    spec.components.schema("IngestResult", INGEST_RESULT)
    for endpoint, single in (("telemetry.ingest_batch", False), ("telemetry.ingest_one", True)):
        # The header's route first: the one to use where a client can send a header.
        for rule in sorted(app.url_map.iter_rules(endpoint), key=lambda r: "key" in r.arguments):
            key_in_path = "key" in rule.arguments
            spec.path(
                rule=rule,
                operations={"post": _operation(settings, single=single, key_in_path=key_in_path)},
                parameters=[dict(KEY_IN_PATH)] if key_in_path else [],
            )
