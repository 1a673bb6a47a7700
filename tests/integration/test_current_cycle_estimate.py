"""GET /billing/current-cycle says how its projection is made, and makes none from less than
a day of data (it once projected a whole month from one minute)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from segs.db import raw_connection
from segs.domain.billing import month_bounds
from segs.services.pricing.billing import current_cycle
from tests.accounts import create_account
from tests.support import execute
from tests.support import reset_state
from tests.telemetry_rows import insert_window

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGION = "Test-Cycle"
TAX = Decimal("0.18")
# October 2026 in London: 745 hours, from 23:00 UTC on 30 September.
START, END = month_bounds("2026-10", ZoneInfo("Europe/London"))
# 60 h 7 min into the month: 240 ended intervals, 2,740 to come (the one in progress included).
NOW = datetime(2026, 10, 3, 11, 7, tzinfo=UTC)


@pytest.fixture
def world(app, clean_state):
    """A flat 6.00 INR/kWh region charging 50 INR/kW of demand; a customer with two meters:
    CYC-1 reported 0.5 kWh at 2 kW in each of the month's first 100 intervals (25 h), CYC-0
    reported once, a minute into the month."""
    execute(
        """
        INSERT INTO regions (name, timezone, capacity_kw, tou_multipliers, demand_charge_per_kw)
        VALUES (%s, 'Europe/London', 2250, '{"off_peak": "1", "shoulder": "1", "peak": "1"}', 50)
        """,
        (REGION,),
    )
    customer = create_account(app, region=REGION, meters=("CYC-0", "CYC-1"))
    other = create_account(app, region=REGION, meters=("CYC-9",))
    for index in range(100):
        insert_window("15m", "CYC-1", REGION, START + index * timedelta(minutes=15), ["2"], ["0.5"])
    insert_window("15m", "CYC-0", REGION, START, ["4"], ["0.01"])
    # Not this month's, not yet ended, not this customer's: none of them counts.
    insert_window("15m", "CYC-1", REGION, START - timedelta(minutes=15), ["9"], ["9"])
    insert_window("15m", "CYC-1", REGION, datetime(2026, 10, 3, 11, tzinfo=UTC), ["9"], ["7"])
    insert_window("15m", "CYC-9", REGION, START, ["9"], ["9"])
    yield {"customer": customer, "other": other}
    reset_state()
    execute("DELETE FROM regions WHERE name = %s", (REGION,))


def test_the_projection_is_pro_rata_over_the_hours_with_data(world):
    with raw_connection() as conn:
        estimates = current_cycle(conn, world["customer"].id, NOW, TAX)

    assert [item.meter_id for item in estimates] == ["CYC-0", "CYC-1"]
    estimate = estimates[1]
    # 50 kWh x 6.00 = 30,000; demand 2 kW x 50 = 10,000; tax 18 % of 40,000 = 7,200.
    assert (estimate.period, estimate.energy_kwh, estimate.so_far_minor) == (
        "2026-10",
        Decimal("50.000000"),
        47200,
    )
    projection = estimate.projection
    assert (
        projection.period_intervals,
        projection.elapsed_intervals,
        projection.covered_intervals,
        projection.remaining_intervals,
    ) == (2980, 240, 100, 2740)
    # Energy 30,000 x (100 + 2,740) / 100 = 852,000; + demand 10,000; + tax 155,160.
    assert (projection.projected_energy_minor, estimate.projected_minor) == (852000, 1017160)


def test_the_answer_states_its_basis_and_projects_nothing_from_too_little(
    app, client, world, monkeypatch
):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr("segs.web.billing.routes.datetime", Frozen)

    response = client.get("/api/v1/billing/current-cycle", headers=world["customer"].headers)

    assert response.status_code == 200, response.get_json()
    period = {
        "region": REGION,
        "period": "2026-10",
        "periodStart": "2026-09-30T23:00:00+00:00",
        "periodEnd": "2026-11-01T00:00:00+00:00",
    }
    basis = {
        "method": "pro_rata_covered_hours",
        "periodHours": "745.00",
        "elapsedHours": "60.00",
        "remainingHours": "685.00",
        "minimumCoveredHours": "24.00",
    }
    assert response.get_json() == {
        "currency": "INR",
        "meters": [
            {
                **period,
                "meterId": "CYC-0",
                # 0.01 kWh x 6.00 = 6 paise; demand 4 kW x 50 = 20,000; tax 3,601.08.
                "energyKwh": "0.010000",
                "soFarMinor": 23607,
                "projectedMinor": None,
                "projection": {
                    **basis,
                    "coveredHours": "0.25",
                    "projectedEnergyMinor": None,
                    "reason": "0.25 h of this period have data; "
                    "a projection needs at least 24.00 h",
                },
            },
            {
                **period,
                "meterId": "CYC-1",
                "energyKwh": "50.000000",
                "soFarMinor": 47200,
                "projectedMinor": 1017160,
                "projection": {
                    **basis,
                    "coveredHours": "25.00",
                    "projectedEnergyMinor": 852000,
                    "reason": None,
                },
            },
        ],
    }
    # Another customer sees their own meter only, with nothing projected from one interval.
    theirs = client.get("/api/v1/billing/current-cycle", headers=world["other"].headers)
    [meter] = theirs.get_json()["meters"]
    assert (meter["meterId"], meter["projectedMinor"]) == ("CYC-9", None)
