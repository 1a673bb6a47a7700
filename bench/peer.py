"""The bare-PostgreSQL peer: what the cheapest honest ingestion of the same requests costs.

A WSGI app for gunicorn (``gunicorn "bench.peer:app"``): it decodes a batch with msgspec,
copies it into a temporary table and inserts it into raw_readings with ON CONFLICT DO NOTHING,
in one transaction, and answers ``{"accepted": n}``. No key check, no registry, no dedupe marks,
no queue, no windows. ``python -m bench`` runs it under the same closed-loop load as SEGS and
prints the ratio of the two rates.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from typing import Any

import msgspec
import orjson
import psycopg


class PeerReading(msgspec.Struct, rename="camel"):
    meter_id: str
    region: str
    reading_id: str
    timestamp: datetime
    power_kw: float
    energy_kwh: float | None = None
    voltage: float | None = None


_decode = msgspec.json.Decoder(list[PeerReading]).decode

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS peer_stage (
    meter_id text, region text, reading_id text, ts timestamptz, power float8, energy float8,
    voltage float8
) ON COMMIT DELETE ROWS
"""
_INSERT = """
INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, energy_kwh, voltage,
                          batch_id, received_at)
SELECT meter_id, ts, reading_id, region, power::numeric, energy::numeric, voltage::numeric,
       %(batch_id)s, %(received_at)s
FROM peer_stage
ON CONFLICT (meter_id, ts) DO NOTHING
"""
_TYPES = ["text", "text", "text", "timestamptz", "float8", "float8", "float8"]

_connection: psycopg.Connection | None = None


def _database() -> psycopg.Connection:
    global _connection  # noqa: PLW0603 - one connection per gunicorn worker process
    if _connection is None or _connection.closed:
        from segs.dbadmin import libpq_conninfo

        _connection = psycopg.connect(libpq_conninfo(os.environ["DATABASE_URL"]))
    return _connection


def _store(readings: list[PeerReading]) -> int:
    conn = _database()
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(_STAGE)
        with cursor.copy(
            "COPY peer_stage (meter_id, region, reading_id, ts, power, energy, voltage) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_TYPES)
            for item in readings:
                copy.write_row(
                    (
                        item.meter_id,
                        item.region,
                        item.reading_id,
                        item.timestamp,
                        item.power_kw,
                        item.energy_kwh,
                        item.voltage,
                    )
                )
        cursor.execute(_INSERT, {"batch_id": uuid.uuid4(), "received_at": datetime.now(UTC)})
        return cursor.rowcount


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        readings = _decode(environ["wsgi.input"].read(length))
    except msgspec.ValidationError as exc:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [orjson.dumps({"error": str(exc)})]
    accepted = _store(readings)
    body = orjson.dumps(
        {"accepted": accepted, "duplicates": len(readings) - accepted, "rejected": 0}
    )
    start_response("202 Accepted", [("Content-Type", "application/json")])
    return [body]
