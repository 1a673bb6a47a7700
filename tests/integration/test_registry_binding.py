"""Readings bound to the meter registry, and the attacks on it, against the real pipeline.

Each attack gets its per-item error while honest readings sent at the same time land in the
aggregates exactly: checked against a recomputation from raw_readings.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from decimal import Decimal

import pytest

from segs.db import session_scope
from segs.domain.identifiers import ID_RULE
from segs.domain.readings import HARD_MAX_QUANTITY
from segs.domain.windows import WINDOW_SIZES
from segs.redis_client import get_redis
from segs.services.accounts.audit import SYSTEM
from segs.services.grid import meters
from tests import support
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import assert_stored_equals_recomputed
from tests.support import db
from tests.support import dt
from tests.support import execute
from tests.support import flush_now
from tests.support import ingestion_key
from tests.support import now_us
from tests.support import past_15m_window
from tests.support import post_batch
from tests.support import query
from tests.support import reading
from tests.support import region_rows
from tests.support import scalar
from tests.support import wait_processed

pytestmark = pytest.mark.integration

WEST, EAST = "Pune-West", "Pune-East"
S = MICRO


def honest_load(start_us: int, minutes: int = 3) -> list[dict]:
    """Four meters in two regions, a reading every 20 s: the load every attack runs beside."""
    return [
        reading(f"HONEST-{region[-4:]}-{n}", region, start_us + k * 20 * S, 1.5 + n, energy=0.01)
        for region in (WEST, EAST)
        for n in range(2)
        for k in range(minutes * 3)
    ]


def test_attacks_get_per_item_errors_while_honest_readings_land_exactly(client, worker, published):
    start = past_15m_window(45)
    honest = honest_load(start)
    limit = support.settings().max_power_kw
    # Registered first, in West, by an honest reading; later readings name East.
    post_batch(client, [reading("MOVER-1", WEST, start, 2.0)])
    # A retired meter: its reading from before the retirement is kept, later ones are refused.
    post_batch(client, [reading("RETIRED-1", WEST, start + 10 * S, 3.0)])
    with session_scope() as session:
        meters.retire_meter(session, get_redis(), SYSTEM, "RETIRED-1")
    attacks = [
        reading("MOVER-1", EAST, start + 60 * S, 2.0),  # another region than its meter's
        reading("RETIRED-1", WEST, now_us() + S, 3.0),  # after its retirement
        reading("EVIL\x00METER", WEST, start, 1.0),  # a NUL in the meter id
        reading("=HYPERLINK(1)", WEST, start, 1.0),
        reading("OVER-1", WEST, start, 1_000_000.0),  # above the plausibility bound
        reading("OVER-2", WEST, start, limit, voltage=1e6),
    ]
    mixed = [item for pair in zip(honest, attacks, strict=False) for item in pair] + honest[6:]
    status, body = post_batch(client, mixed)
    assert status == 202
    assert body["accepted"] == len(honest)
    by_index = {error["index"]: error for error in body["errors"]}
    assert [(e["field"], e["message"]) for e in body["errors"]] == [
        ("region", "meter MOVER-1 is registered in region Pune-West"),
        ("meterId", by_index[3]["message"]),
        ("meterId", ID_RULE),
        ("meterId", ID_RULE),
        ("powerKw", f"Expected `float` <= {limit}"),
        ("voltage", "Expected `float` <= 1000.0"),
    ]
    assert by_index[3]["message"].startswith("meter RETIRED-1 was retired at ")
    # None of the attackers' meters were registered.
    assert {m for (m,) in query("SELECT meter_id FROM meters")} == {
        "MOVER-1",
        "RETIRED-1",
        *{item["meterId"] for item in honest},
    }

    raw = len(honest) + 2
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=raw)
    flush_now()
    assert_stored_equals_recomputed()
    assert scalar("SELECT count(*) FROM raw_readings WHERE meter_id LIKE 'HONEST-%'") == len(honest)


def test_a_region_full_of_meters_at_the_power_bound_flushes(client, worker, published):
    """4,000 meters at the largest power allowed in one region-minute: once an overflow that
    stopped every flush; now stored like any other window, beside an honest load."""
    start = past_15m_window(45)
    limit = support.settings().max_power_kw
    flood = [reading(f"FLOOD-{n:04d}", WEST, start + 30 * S, limit) for n in range(4000)]
    honest = honest_load(start)
    for chunk in range(0, 4000, 1000):
        assert post_batch(client, flood[chunk : chunk + 1000])[1]["accepted"] == 1000
    assert post_batch(client, honest)[1]["accepted"] == len(honest)
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=4000 + len(honest))
    report = flush_now()
    assert report["quarantined"] == 0
    assert_stored_equals_recomputed()
    west = region_rows("1m")[(WEST, dt(start))]
    assert west[2] == Decimal(limit) * 4000 + Decimal("1.5") + Decimal("2.5")


def test_the_regional_columns_hold_the_largest_sums_the_bounds_allow(clean_state):
    """meter_count is an integer, so a region has at most 2**31 - 1 meters; no bound may be set
    above HARD_MAX_QUANTITY; a meter's window holds at most one reading per microsecond; a
    region's capacity is at least 0.001 kW. The flush's own expressions at those extremes."""
    most_meters = 2**31 - 1
    most_readings = WINDOW_SIZES["15m"] * MICRO
    largest = int(HARD_MAX_QUANTITY)
    window = dt(past_15m_window(45))
    # In a transaction rolled back at the end: the tiny region must not outlive the test.
    with db() as conn, conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO regions (name, timezone, capacity_kw, base_price_per_kwh, load_bands, "
            "tou_schedule, tou_multipliers) SELECT 'Tiny', timezone, 0.001, base_price_per_kwh, "
            "load_bands, tou_schedule, tou_multipliers FROM regions WHERE name = %s",
            (WEST,),
        )
        conn.execute(
            """
            INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count,
                power_sum_kw, avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum,
                voltage_sum, voltage_count, voltage_avg, last_reading_at, flush_count)
            VALUES ('BIG', %(w)s, 'Tiny', %(n)s, %(n)s::numeric * %(q)s, %(q)s, 0, %(q)s,
                    %(n)s::numeric * %(q)s, %(n)s::numeric * %(q)s, %(n)s, %(q)s, %(w)s, 1)
            """,
            {"w": window, "n": most_readings, "q": largest},
        )
        conn.execute(
            """
            INSERT INTO regional_aggregates_15m (region, window_start, meter_count,
                reading_count, total_power_kw, capacity_kw, load_percentage, energy_kwh_sum)
            SELECT 'Tiny', %(w)s, %(meters)s, %(meters)s::bigint * %(n)s,
                   %(meters)s::numeric * %(q)s, r.capacity_kw,
                   round(100 * (%(meters)s::numeric * %(q)s) / r.capacity_kw, 4),
                   %(meters)s::numeric * %(n)s * %(q)s
            FROM regions r WHERE r.name = 'Tiny'
            """,
            {"w": window, "meters": most_meters, "n": most_readings, "q": largest},
        )
        stored = conn.execute(
            "SELECT total_power_kw, load_percentage, reading_count FROM regional_aggregates_15m"
        ).fetchall()
    assert stored == [
        (
            Decimal(most_meters * largest),
            Decimal(most_meters * largest * 100_000),
            most_meters * most_readings,
        )
    ]


def test_readings_follow_a_meter_across_its_move_and_the_aggregates_stay_exact(
    client, worker, published
):
    boundary = past_15m_window(30)  # the move takes effect here, 30-45 minutes ago
    before, after = boundary - 5 * 60 * S, boundary + 5 * 60 * S
    honest = honest_load(before, minutes=2) + honest_load(after, minutes=2)
    assert post_batch(client, [reading("MOVER-2", WEST, before - 60 * S, 1.0)])[0] == 202
    with session_scope() as session:
        # As if decided before the boundary: no reading after it existed then.
        meters.move_meter(
            session,
            get_redis(),
            SYSTEM,
            "MOVER-2",
            EAST,
            dt(boundary),
            now=dt(boundary - 600 * S),
            max_future_skew_s=300,
        )
    batch = [
        reading("MOVER-2", WEST, before, 2.0),
        reading("MOVER-2", EAST, before + S, 2.0),  # before the move: still West
        reading("MOVER-2", EAST, after, 4.0),
        reading("MOVER-2", WEST, after + S, 4.0),  # after the move: East
        *honest,
    ]
    status, body = post_batch(client, batch)
    assert status == 202
    assert [(e["index"], e["message"]) for e in body["errors"]] == [
        (1, "meter MOVER-2 is registered in region Pune-West"),
        (3, "meter MOVER-2 is registered in region Pune-East"),
    ]
    wait_processed(worker, runs=len(published.snapshot()), raw_rows=3 + len(honest))
    flush_now()
    assert_stored_equals_recomputed()
    assert query(
        "SELECT region, window_start FROM aggregates_15m WHERE meter_id = 'MOVER-2' ORDER BY 2"
    ) == [(WEST, dt(boundary - 900 * S)), (EAST, dt(boundary))]


def test_the_move_route_takes_effect_at_the_next_safe_boundary(app, client, clean_state):
    admin = create_account(app, role="ADMIN", region=None)
    post_batch(client, [reading("MOVER-3", WEST, now_us() - 60 * S, 1.0)])
    moved = client.post("/api/v1/meters/MOVER-3/move", json={"region": EAST}, headers=admin.headers)
    assert moved.status_code == 200, moved.get_json()
    effective = datetime.fromisoformat(moved.get_json()["effectiveFrom"])
    skew = support.settings().max_future_skew_s
    assert effective.timestamp() % 900 == 0
    assert 0 < effective.timestamp() - (datetime.now(UTC).timestamp() + skew) <= 900
    # Until then the meter still reports in West.
    now = now_us()
    status, body = post_batch(
        client, [reading("MOVER-3", WEST, now, 1.0), reading("MOVER-3", EAST, now + S, 1.0)]
    )
    assert (status, body["accepted"], body["errors"][0]["field"]) == (202, 1, "region")
    shown = client.get("/api/v1/meters/MOVER-3/moves", headers=admin.headers).get_json()
    assert [(m["fromRegion"], m["toRegion"]) for m in shown] == [(WEST, EAST)]
    assert query(
        "SELECT action, details->>'toRegion' FROM audit_log WHERE entity_type = 'meter'"
    ) == [("meter.move", EAST)]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"region": "Atlantis"}, 422, "region"),
        ({"region": WEST}, 422, "region"),
        ({"region": "Pune-East", "effectiveFrom": "2030-01-01T00:05:00Z"}, 422, "effectiveFrom"),
        ({"region": "Pune-East", "effectiveFrom": "2020-01-01T00:00:00Z"}, 422, "effectiveFrom"),
    ],
)
def test_a_move_that_could_break_the_windows_is_refused(
    app, client, clean_state, payload, status, field
):
    admin = create_account(app, role="ADMIN", region=None)
    execute("INSERT INTO meters (meter_id, region) VALUES ('MOVER-4', %s)", (WEST,))
    response = client.post("/api/v1/meters/MOVER-4/move", json=payload, headers=admin.headers)
    assert response.status_code == status, response.get_json()
    assert field in response.get_json()["error"]["details"]
    assert scalar("SELECT count(*) FROM meter_moves") == 0


def test_an_assigned_meter_does_not_move(app, client, clean_state):
    admin = create_account(app, role="ADMIN", region=None)
    create_account(app, region=WEST, meters=("OWNED-1",))
    response = client.post(
        "/api/v1/meters/OWNED-1/move", json={"region": EAST}, headers=admin.headers
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "METER_ASSIGNED"


@pytest.mark.parametrize(
    "meter_id", ['=HYPERLINK("x")', "a/b/c", "line\r\nbreak", "<b>bold</b>", "MTR-1\n", "a\tb"]
)
def test_ingestion_and_the_admin_api_refuse_the_same_ids(app, client, clean_state, meter_id):
    admin = create_account(app, role="ADMIN", region=None)
    response = client.post(
        "/api/v1/meters", json={"meterId": meter_id, "region": WEST}, headers=admin.headers
    )
    assert response.status_code == 422
    status, body = post_batch(client, [reading(meter_id, WEST, now_us() - 60 * S, 1.0)])
    assert (status, body["errors"]) == (
        422,
        [{"index": 0, "field": "meterId", "message": ID_RULE}],
    )
    assert scalar("SELECT count(*) FROM meters") == 0


def test_a_head_end_key_registers_only_in_its_regions(client, clean_state):
    west = ingestion_key(regions=(WEST,))
    ts = now_us() - 60 * S
    status, body = post_batch(
        client, [reading("NEW-W", WEST, ts, 1.0), reading("NEW-E", EAST, ts, 1.0)], key=west
    )
    assert (status, body["accepted"], body["errors"][0]["field"]) == (202, 1, "region")
    device = ingestion_key(meter="DEV-1", regions=(EAST,))
    assert query("SELECT meter_id, region FROM meters ORDER BY 1") == [
        ("DEV-1", EAST),
        ("NEW-W", WEST),
    ]
    status, body = post_batch(client, [reading("DEV-1", EAST, ts, 1.0)], key=device)
    assert (status, body["accepted"]) == (202, 1)
