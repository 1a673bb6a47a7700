"""GET /tariffs/current said "no load data" while the region stood at 59 % load.

The first price of a region is published before its first 1-minute window is flushed (beat
runs the engine at start-up), so it says "no load data". A load of 50-75 % prices at the same
x1.0 as no load at all, and the engine publishes only prices that move: the answer kept the
first interval's "no load data" and a null load for as long as the price stood.
"""

from __future__ import annotations

import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from segs.tasks.tariffs import recalculate
from tests.accounts import create_account
from tests.integration.test_tariffs import announcements
from tests.support import execute
from tests.support import query
from tests.support import reset_state
from tests.support import settings

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGION = "Test-Load"
TOU = "(off_peak|shoulder|peak)"  # the period of the hour the test runs at


@pytest.fixture
def region(clean_state):
    """A region with a flat time-of-use grid, so its price depends on its load alone."""
    execute(
        """
        INSERT INTO regions (name, timezone, capacity_kw, tou_multipliers)
        VALUES (%s, 'Asia/Kolkata', 2250, '{"off_peak": "1", "shoulder": "1", "peak": "1"}')
        """,
        (REGION,),
    )
    yield REGION
    reset_state()
    execute("DELETE FROM regions WHERE name = %s", (REGION,))


def measure(total_kw: str, minutes_ago: int) -> None:
    """The region's 1-minute window as the flush writes it: total / 2,250 kW."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    execute(
        """
        INSERT INTO regional_aggregates_1m (region, window_start, meter_count, reading_count,
            total_power_kw, capacity_kw, load_percentage, energy_kwh_sum)
        VALUES (%s, %s, 500, 3000, %s, 2250, round(100 * %s::numeric / 2250, 4), 0)
        """,
        (REGION, start, total_kw, total_kw),
    )


def current(client, account) -> dict:
    response = client.get("/api/v1/tariffs/current", headers=account.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_region_with_recent_load_gets_its_load_in_the_answer(app, client, region):
    customer = create_account(app, region=REGION)
    # Start-up: the engine prices the region before any window is flushed.
    recalculate([REGION])
    before = current(client, customer)
    assert (before["pricePerKwh"], before["loadPercentage"], before["triggeredBy"]) == (
        "6.000000",
        None,
        "initial",
    )
    assert re.fullmatch(
        rf"first automatic price \(no load data: band x1\.0, {TOU}\)", before["reason"]
    )

    # The first window: 1,327.5 kW of 2,250 kW is 59 %, the same x1.0 band.
    measure("1327.5", minutes_ago=2)
    [rebased] = recalculate([REGION])
    answer = current(client, customer)
    assert (answer["pricePerKwh"], answer["loadPercentage"], answer["triggeredBy"]) == (
        "6.000000",
        "59.0000",
        "load",
    )
    assert re.fullmatch(rf"first measured load 59\.0000%: band x1\.0, {TOU}", answer["reason"])
    assert answer["tariffId"] == rebased_id()
    assert answer["effectiveFrom"] == rebased.effective_from.isoformat()
    # The region's own price route and the history say the same.
    by_region = client.get(f"/api/v1/tariffs/regions/{REGION}/current", headers=customer.headers)
    assert by_region.get_json() == answer
    assert query(
        "SELECT price_per_kwh::text, triggered_by, load_percentage::text FROM tariffs "
        "WHERE region = %s ORDER BY effective_from",
        (REGION,),
    ) == [("6.000000", "initial", None), ("6.000000", "load", "59.0000")]

    # Once measured, a load within the band publishes nothing; a band crossing does.
    measure("1500", minutes_ago=1)
    assert recalculate([REGION]) == []
    measure("1800", minutes_ago=0)  # 80 %: x1.1
    [crossed] = recalculate([REGION])
    assert (str(crossed.price), crossed.triggered_by) == ("6.600000", "load")


def rebased_id() -> int:
    return query("SELECT id FROM tariffs WHERE region = %s AND effective_to IS NULL", (REGION,))[0][
        0
    ]


@pytest.mark.skipif(not settings().broker_url.startswith("redis"), reason="reads a Redis list")
def test_customers_are_not_told_of_a_price_that_did_not_change(region):
    recalculate([REGION])
    measure("1327.5", minutes_ago=2)
    [rebased] = recalculate([REGION])
    assert rebased.previous_price == rebased.price
    measure("1800", minutes_ago=1)
    recalculate([REGION])

    assert [(item["previous_price"], item["price"]) for item in announcements()] == [
        (None, "6.000000"),
        ("6.000000", "6.600000"),
    ]
