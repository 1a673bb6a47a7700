"""The meter registry's lookups on the reading path stay index probes whatever the table's
statistics say.

Meters are registered in bulk and the table is seldom analyzed in time: autovacuum is off on this
machine, and after a TRUNCATE the planner guesses the row count from a wide row, so 100,000
meters looked like 12,000 to 63,000. A plain join then hashed the whole table: 20 ms for 500
meters in the API, 22 ms for a group of readings in the worker, growing with the table.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from segs.services.spine.archive import _REGISTER_METERS
from segs.services.spine.archive import _STAGE_DDL
from segs.services.spine.meter_directory import _PLACES
from tests.support import db

pytestmark = pytest.mark.integration

WANTED = [f"PLAN-{n}" for n in range(1000, 1500)]


@pytest.fixture
def registry(clean_state) -> psycopg.Connection:
    """30,000 meters, registered in one statement and never analyzed."""
    with db() as conn:
        conn.execute(
            "INSERT INTO meters (meter_id, region, first_seen) "
            "SELECT 'PLAN-' || n, 'Pune-West', now() FROM generate_series(1, 30000) AS n"
        )
        yield conn


def scans_of(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> set:
    """The scans of *statement*'s plan for these parameters (unprepared, as the first lookups
    of a connection are planned)."""
    [(plan,)] = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params, prepare=False)
    return {(node["Node Type"], node.get("Relation Name")) for node in _nodes(plan[0]["Plan"])}


def _nodes(node: dict) -> list[dict]:
    return [node, *(found for child in node.get("Plans", []) for found in _nodes(child))]


def test_the_apis_place_lookup_probes_the_index(registry):
    scans = scans_of(registry, _PLACES, {"meters": WANTED})
    assert ("Index Scan", "meters") in scans
    assert ("Seq Scan", "meters") not in scans
    rows = registry.execute(_PLACES, {"meters": [*WANTED, "PLAN-none"]}).fetchall()
    assert sorted(row[0] for row in rows) == sorted(WANTED)
    assert {row[1] for row in rows} == {"Pune-West"}


def test_the_workers_registration_probes_the_index(registry):
    registry.execute("BEGIN")
    registry.execute(_STAGE_DDL)
    with registry.cursor().copy("COPY reading_stage (meter_id, region, ts_us) FROM STDIN") as copy:
        for meter in [*WANTED, "PLAN-new"]:
            copy.write_row((meter, "Pune-West", 1_800_000_000_000_000))
    scans = scans_of(registry, _REGISTER_METERS, {"meter_ids": [*WANTED, "PLAN-new"]})
    assert ("Index Scan", "meters") in scans
    assert ("Seq Scan", "meters") not in scans
    # Only the meter without a first reading is written.
    inserted = registry.execute(_REGISTER_METERS, {"meter_ids": [*WANTED, "PLAN-new"]})
    assert inserted.rowcount == 1
    registry.execute("COMMIT")
