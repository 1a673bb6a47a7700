"""The worker's archive step: what raw_readings holds, and batches the API lets through."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal as D

import pytest

from tests import support
from tests.support import MICRO
from tests.support import archive_in_process
from tests.support import assert_stored_equals_recomputed
from tests.support import dt
from tests.support import execute
from tests.support import flush_now
from tests.support import fold_one
from tests.support import key_header
from tests.support import now_us
from tests.support import post_batch
from tests.support import query
from tests.support import reading
from tests.support import to_rows

pytestmark = pytest.mark.integration


def test_every_field_is_stored_exactly(clean_state):
    moment = now_us() - 3600 * MICRO
    received_at = now_us()
    item = reading(
        "ARC-1",
        "Delhi-South",
        moment,
        12.345678,
        energy=0.034294,
        voltage=231.5,
        current=53.21,
        frequency=49.98,
        powerFactor=0.97,
        temperature=-4.25,
    )
    task_id = str(uuid.uuid4())
    assert fold_one(to_rows([item]), received_at, task_id=task_id) == {
        "received": 1,
        "owned": 1,
        "folded": True,
    }
    assert query(
        "SELECT reading_id, meter_id, region, ts, power_kw, energy_kwh, voltage, current, "
        "frequency, power_factor, temperature, batch_id::text, received_at FROM raw_readings"
    ) == [
        (
            item["readingId"],
            "ARC-1",
            "Delhi-South",
            dt(moment),
            D("12.345678"),
            D("0.034294"),
            D("231.5"),
            D("53.21"),
            D("49.98"),
            D("0.97"),
            D("-4.25"),
            task_id,
            dt(received_at),
        )
    ]
    assert query("SELECT meter_id, region, first_seen, last_seen FROM meters") == [
        ("ARC-1", "Delhi-South", dt(moment), dt(moment))
    ]


def test_archiving_sets_first_seen_only_where_no_reading_set_it(clean_state):
    """An admin's meter (no first_seen yet) takes its first archived reading's time; a meter
    first seen before keeps its time."""
    first = now_us() - 3600 * MICRO
    execute("INSERT INTO meters (meter_id, region) VALUES ('ARC-NEW', 'Delhi-South')")
    execute(
        "INSERT INTO meters (meter_id, region, first_seen, last_seen) "
        "VALUES ('ARC-OLD', 'Delhi-South', %s, %s)",
        (dt(first), dt(first)),
    )
    later = first + 60 * MICRO
    rows = to_rows(
        [
            reading("ARC-NEW", "Delhi-South", later, 1.0),
            reading("ARC-NEW", "Delhi-South", later + 30 * MICRO, 1.0),
            reading("ARC-OLD", "Delhi-South", later, 1.0),
        ]
    )
    assert fold_one(rows, now_us())["owned"] == 3
    assert query("SELECT meter_id, first_seen FROM meters ORDER BY 1") == [
        ("ARC-NEW", dt(later)),
        ("ARC-OLD", dt(first)),
    ]


def test_a_backfill_batch_spanning_many_windows_is_folded(client, clean_state):
    """A meter uploading 5 hours of buffered minutes: 300 one-minute windows in one batch.

    The API accepts it (1000 readings per batch, up to 7 days old), so the worker must fold it;
    a fold that refuses it makes the task retry forever and the readings never reach the
    aggregates.
    """
    start = now_us() - 6 * 3600 * MICRO
    start -= start % (900 * MICRO)
    readings = [
        reading("BACKFILL-1", "Pune-East", start + i * 60 * MICRO, 1.0 + i / 1000, energy=0.001)
        for i in range(300)
    ]
    status, body = post_batch(client, readings)
    assert (status, body["accepted"]) == (202, 300)

    outcome = archive_in_process(to_rows(readings))
    assert (outcome.received, outcome.owned, outcome.folded) == (300, 300, True)
    assert flush_now() == {"windows": 320, "rows": 320, "late_readings": 0, "quarantined": 0}
    assert query("SELECT count(*), sum(reading_count) FROM aggregates_1m") == [(300, 300)]
    assert query("SELECT count(*), sum(reading_count) FROM aggregates_15m") == [(20, 300)]
    assert_stored_equals_recomputed()


def test_postgres_failure_while_reading_regions_answers_503(client, clean_state, monkeypatch):
    """The regions cache is re-read from PostgreSQL once a minute; if PostgreSQL is down then,
    the API must still answer per the contract (503 + Retry-After), not 500."""
    from sqlalchemy.exc import OperationalError

    from segs.ingestion_client import get_ingestor

    def database_down():
        raise OperationalError("SELECT regions.name FROM regions", {}, Exception("down"))

    headers = key_header()
    monkeypatch.setattr(get_ingestor(), "known_regions", database_down)
    batch = [reading("ARC-1", "Pune-West", now_us() - 60 * MICRO, 1.0)]
    response = client.post(
        "/telemetry/batch", data=json.dumps(batch), content_type="application/json", headers=headers
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(support.settings().retry_after_s)
    assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
