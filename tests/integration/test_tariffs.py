"""The tariff engine against PostgreSQL and Redis: bands, threshold, history, cache,
announcements, overrides through the API, and the price reacting to a flush on a real worker."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
import redis

from segs.domain.readings import MICRO
from segs.tasks.tariffs import recalculate
from tests.accounts import create_account
from tests.integration import billing_world as world
from tests.support import archive_in_process
from tests.support import execute
from tests.support import flush_now
from tests.support import query
from tests.support import redis_client
from tests.support import reset_state
from tests.support import scalar
from tests.support import settings
from tests.support import wait_for

pytestmark = pytest.mark.integration

REGION = world.REGION
CACHE_KEY = f"segs:tariff:current:{REGION}"


@pytest.fixture
def region(clean_state):
    """The DST test region with a flat time-of-use grid, so prices depend on load alone."""
    world.add_region()
    execute(
        """UPDATE regions SET tou_multipliers = '{"off_peak": "1", "shoulder": "1", "peak": "1"}'
           WHERE name = %s""",
        (REGION,),
    )
    yield REGION
    reset_state()
    world.drop_region()


def set_load(load: str, minutes_ago: int = 2) -> None:
    moment = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    execute(
        """
        INSERT INTO regional_aggregates_1m (region, window_start, meter_count, reading_count,
            total_power_kw, capacity_kw, load_percentage, energy_kwh_sum)
        VALUES (%s, %s, 1, 1, %s, 100, %s, 0)
        ON CONFLICT (region, window_start) DO UPDATE SET load_percentage = EXCLUDED.load_percentage
        """,
        (REGION, moment, load, load),
    )


def history() -> list[tuple]:
    return query(
        "SELECT price_per_kwh, triggered_by, effective_from, effective_to, override_id "
        "FROM tariffs WHERE region = %s ORDER BY effective_from",
        (REGION,),
    )


def announcements() -> list[dict]:
    """Messages published to the notifications queue (the Redis transport keeps a list)."""
    client = redis.Redis.from_url(settings().broker_url)
    try:
        raw = client.lrange("notifications", 0, -1)
    finally:
        client.close()
    found = []
    for item in reversed(raw):  # LPUSH: newest first
        envelope = json.loads(item)
        assert envelope["headers"]["task"] == "segs.tasks.notifications.announce_tariff_change"
        _args, kwargs, _embed = orjson.loads(base64.b64decode(envelope["body"]))
        found.append(kwargs)
    return found


@pytest.mark.api
@pytest.mark.skipif(not settings().broker_url.startswith("redis"), reason="reads a Redis list")
def test_engine_publishes_band_crossings_only_and_announces_them(region):
    set_load("60")
    [first] = recalculate([REGION])
    assert (first.price, first.previous_price, first.triggered_by) == (
        Decimal("6.000000"),
        None,
        "initial",
    )
    set_load("74.9", minutes_ago=1)  # same band: nothing to publish
    assert recalculate([REGION]) == []
    set_load("80", minutes_ago=0)
    [second] = recalculate([REGION])
    assert (second.price, second.previous_price, second.triggered_by) == (
        Decimal("6.600000"),
        Decimal("6.000000"),
        "load",
    )
    rows = history()
    assert [(price, trigger) for price, trigger, *_ in rows] == [
        (Decimal("6.000000"), "initial"),
        (Decimal("6.600000"), "load"),
    ]
    # Intervals meet exactly: the first closes where the second opens, which stays open.
    assert rows[0][3] == rows[1][2] and rows[1][3] is None
    # The time-of-use period in the reason follows the hour the test runs at.
    assert re.fullmatch(r"load 80\.0000%: band x1\.1, (off_peak|shoulder|peak)", second.reason)
    cached = json.loads(redis_client().get(CACHE_KEY))
    assert (cached["price"], cached["trigger"]) == ("6.600000", "load")
    assert announcements() == [
        {
            "region": REGION,
            "previous_price": None,
            "price": "6.000000",
            "effective_from": first.effective_from.isoformat(),
            "reason": first.reason,
        },
        {
            "region": REGION,
            "previous_price": "6.000000",
            "price": "6.600000",
            "effective_from": second.effective_from.isoformat(),
            "reason": second.reason,
        },
    ]
    # An overlapping interval cannot be stored, whatever the code above does.
    with pytest.raises(Exception, match="ex_tariffs_overlap"):
        execute(
            "INSERT INTO tariffs (region, price_per_kwh, effective_from, effective_to, reason, "
            "triggered_by) VALUES (%s, 1, %s, %s, 'x', 'x')",
            (REGION, rows[0][2], rows[0][3]),
        )


@pytest.mark.api
def test_overrides_through_the_api(region, app, client):
    admin = create_account(app, role="ADMIN", region=None)
    customer = create_account(app, region=REGION, meters=("LDN-900",))
    set_load("95")
    recalculate([REGION])
    now = datetime.now(UTC)
    body = {
        "region": REGION,
        "pricePerKwh": "3.25",
        "validFrom": (now - timedelta(minutes=1)).isoformat(),
        "validTo": (now + timedelta(hours=1)).isoformat(),
        "reason": "storm relief",
    }
    assert (
        client.post("/api/v1/tariffs/overrides", json=body, headers=customer.headers).status_code
        == 403
    )
    created = client.post("/api/v1/tariffs/overrides", json=body, headers=admin.headers)
    assert created.status_code == 201, created.get_json()
    override_id = created.get_json()["id"]
    mine = client.get("/api/v1/tariffs/current", headers=customer.headers).get_json()
    assert (mine["pricePerKwh"], mine["triggeredBy"], mine["reason"]) == (
        "3.250000",
        "override",
        "override: storm relief",
    )
    overlapping = client.post("/api/v1/tariffs/overrides", json=body, headers=admin.headers)
    assert overlapping.status_code == 409
    backwards = client.post(
        "/api/v1/tariffs/overrides",
        json={**body, "validTo": body["validFrom"], "validFrom": body["validTo"]},
        headers=admin.headers,
    )
    assert backwards.status_code == 422
    assert backwards.get_json()["error"]["details"] == {"validTo": ["after validFrom"]}
    too_precise = client.post(
        "/api/v1/tariffs/overrides",
        json={**body, "pricePerKwh": "1.0000001"},
        headers=admin.headers,
    )
    assert too_precise.status_code == 422

    estimate = client.get(
        "/api/v1/tariffs/estimate", query_string={"kwh": "10.5"}, headers=customer.headers
    ).get_json()
    # 10.5 kWh x 3.25 = 34.125 -> 3413 paise; tax 18 % = 614.34 -> 614.
    assert (estimate["energyMinor"], estimate["taxMinor"], estimate["totalMinor"]) == (
        3413,
        614,
        4027,
    )

    tariffs_before = scalar("SELECT count(*) FROM tariffs")
    removed = client.delete(f"/api/v1/tariffs/overrides/{override_id}", headers=admin.headers)
    assert removed.status_code == 204
    # Removing touched only the override; the engine then priced automatically again (x1.25).
    assert scalar("SELECT count(*) FROM tariffs") == tariffs_before + 1
    assert scalar(
        "SELECT removed_at IS NOT NULL FROM tariff_overrides WHERE id = %s", (override_id,)
    )
    assert [(price, trigger, override) for price, trigger, _, _, override in history()] == [
        (Decimal("7.500000"), "initial", None),
        (Decimal("3.250000"), "override", override_id),
        (Decimal("7.500000"), "override_end", None),
    ]
    current = client.get(f"/api/v1/tariffs/regions/{REGION}/current", headers=customer.headers)
    assert current.get_json()["pricePerKwh"] == "7.500000"
    past = client.get(
        f"/api/v1/tariffs/regions/{REGION}/history", headers=customer.headers
    ).get_json()
    assert [item["pricePerKwh"] for item in past["items"]] == ["7.500000", "3.250000", "7.500000"]
    actions = query(
        "SELECT action FROM audit_log WHERE entity_type = 'tariff_override' ORDER BY id"
    )
    assert actions == [("tariff_override.create",), ("tariff_override.remove",)]
    again = client.delete(f"/api/v1/tariffs/overrides/{override_id}", headers=admin.headers)
    assert again.status_code == 409


@pytest.mark.api
def test_cache_misses_fall_back_to_the_database(region, app, client):
    customer = create_account(app, region=REGION)
    set_load("30")
    recalculate([REGION])
    redis_client().delete(CACHE_KEY)
    body = client.get("/api/v1/tariffs/current", headers=customer.headers).get_json()
    assert (body["pricePerKwh"], body["triggeredBy"]) == ("5.400000", "initial")
    assert json.loads(redis_client().get(CACHE_KEY))["price"] == "5.400000"


def _reading_rows(power_kw: int, ts: datetime) -> list[list]:
    stamp = int(ts.timestamp() * MICRO)
    return [
        [
            f"LDN-R{i}",
            REGION,
            str(uuid.uuid4()),
            stamp,
            power_kw * MICRO,
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        for i in range(2)
    ]


def test_a_band_crossing_moves_the_price_within_one_flush_period(region, worker):
    """Flush -> engine task on the worker -> new price, all inside SEGS_FLUSH_INTERVAL_S."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    archive_in_process(_reading_rows(30, start))  # 2 meters x 30 kW of 100 kW: 60 %
    flush_now()
    wait_for(lambda: len(history()) == 1, timeout=20, message=worker.log)
    assert history()[0][0] == Decimal("6.000000")

    archive_in_process(_reading_rows(46, start + timedelta(minutes=1)))  # 92 %: band x1.25
    flushed_at = time.monotonic()
    flush_now()
    wait_for(lambda: len(history()) == 2, timeout=20, message=worker.log)
    reaction_s = time.monotonic() - flushed_at
    assert history()[1][:2] == (Decimal("7.500000"), "load")
    assert reaction_s < settings().flush_interval_s


@pytest.mark.api
def test_admins_change_a_regions_rules_and_the_price_follows(region, app, client):
    admin = create_account(app, role="ADMIN", region=None)
    operator = create_account(app, role="OPERATOR", region=None)
    set_load("60")
    recalculate([REGION])
    rules = client.get(f"/api/v1/tariffs/regions/{REGION}/rules", headers=operator.headers)
    assert rules.status_code == 200
    assert rules.get_json()["loadBands"][4] == {"fromPercent": "90", "multiplier": "1.25"}
    bands = [
        {"fromPercent": "0", "multiplier": "0.5"},
        {"fromPercent": "50", "multiplier": "2"},
    ]
    changed = client.patch(
        f"/api/v1/tariffs/regions/{REGION}/rules",
        json={"basePricePerKwh": "5", "loadBands": bands},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["basePricePerKwh"], changed.get_json()["loadBands"]) == (
        "5.000000",
        bands,
    )
    # Repriced at once: 5 x 2 at 60 % load.
    assert history()[-1][:2] == (Decimal("10.000000"), "load")
    bad = client.patch(
        f"/api/v1/tariffs/regions/{REGION}/rules",
        json={"loadBands": [{"fromPercent": "10", "multiplier": "1"}]},
        headers=admin.headers,
    )
    assert bad.status_code == 422
    assert bad.get_json()["error"]["details"] == {
        "loadBands": ["loadBands: the first band must start at 0 %"]
    }
    assert (
        scalar(
            "SELECT count(*) FROM audit_log "
            "WHERE action = 'tariff_rules.update' AND entity_id = %s",
            (REGION,),
        )
        == 1
    )
