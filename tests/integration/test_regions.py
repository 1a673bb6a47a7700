"""Region endpoints: the list, energy and peak, top consumers, the load of one complete window."""

from __future__ import annotations

import json
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.accounts import create_account
from tests.telemetry_rows import insert_region_window
from tests.telemetry_rows import insert_window
from tests.telemetry_rows import utc

pytestmark = [pytest.mark.integration, pytest.mark.api]

BASE = "/api/v1/regions"
REGION = "Pune-West"  # capacity 3400 kW


def body(response: Any) -> Any:
    return json.loads(response.get_data(as_text=True), parse_float=Decimal)


@pytest.fixture
def operator(app, clean_state):
    return create_account(app, role="OPERATOR", region=None)


@pytest.fixture
def user(app, clean_state):
    return create_account(app, region=REGION, meters=("m-own",))


def test_any_account_lists_the_regions(client, user) -> None:
    response = client.get(BASE, headers=user.headers)

    assert response.status_code == 200
    data = body(response)
    assert (data["total"], data["page"], data["pageSize"]) == (10, 1, 50)
    assert data["items"][0] == {
        "name": "Bangalore-East",
        "timezone": "Asia/Kolkata",
        "capacityKw": Decimal("3900.000"),
    }
    assert [item["name"] for item in data["items"]] == sorted(
        item["name"] for item in data["items"]
    )
    assert client.get(BASE).status_code == 401


def _usage() -> None:
    """Three meters of Pune-West and one elsewhere, over two 15-minute windows."""
    first, second = utc("2026-06-01T10:00:00Z"), utc("2026-06-01T10:15:00Z")
    insert_window("15m", "m-1", REGION, first, ["2", "4"], ["1.5"])
    insert_window("15m", "m-1", REGION, second, ["6"], ["1"])
    insert_window("15m", "m-2", REGION, first, ["1"], ["2.5"])
    insert_window("15m", "m-3", REGION, second, ["10", "20"], ["0.25"])
    insert_window("15m", "m-9", "Pune-East", first, ["50"], ["40"])
    insert_window("15m", "m-1", REGION, utc("2026-06-01T10:30:00Z"), ["7"], ["7"])  # after end
    insert_region_window(
        "15m",
        REGION,
        first,
        meter_count=2,
        reading_count=3,
        total_power_kw="4.000000",
        capacity_kw="3400",
        energy_kwh="4.000000",
    )
    insert_region_window(
        "15m",
        REGION,
        second,
        meter_count=2,
        reading_count=3,
        total_power_kw="21.000000",
        capacity_kw="3400",
        energy_kwh="1.250000",
    )


def test_region_stats(client, operator) -> None:
    _usage()

    response = client.get(
        f"{BASE}/{REGION}/stats",
        query_string={"start": "2026-06-01T10:00:00Z", "end": "2026-06-01T10:30:00Z"},
        headers=operator.headers,
    )

    assert response.status_code == 200
    assert body(response) == {
        "region": REGION,
        "start": "2026-06-01T15:30:00+05:30",
        "end": "2026-06-01T16:00:00+05:30",
        "energyKwh": Decimal("5.250000"),
        "activeMeters": 3,
        "avgEnergyPerMeterKwh": Decimal("1.750000"),
        "peakLoadKw": Decimal("21.000000"),
        "peakLoadPercentage": Decimal("0.6176"),
        "peakWindowStart": "2026-06-01T15:45:00+05:30",
    }


def test_region_stats_without_data(client, operator) -> None:
    data = body(
        client.get(
            f"{BASE}/{REGION}/stats",
            query_string={"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z"},
            headers=operator.headers,
        )
    )
    assert (data["energyKwh"], data["activeMeters"], data["avgEnergyPerMeterKwh"]) == (
        Decimal("0"),
        0,
        None,
    )
    assert (data["peakLoadKw"], data["peakWindowStart"]) == (None, None)


def test_top_consumers(client, operator) -> None:
    _usage()
    window = {"start": "2026-06-01T10:00:00Z", "end": "2026-06-01T10:30:00Z"}

    data = body(
        client.get(f"{BASE}/{REGION}/top-consumers", query_string=window, headers=operator.headers)
    )

    assert data["limit"] == 10
    assert data["consumers"] == [
        # m-1 and m-2 both used 2.5 kWh: the tie goes by meter id.
        {
            "rank": 1,
            "meterId": "m-1",
            "energyKwh": Decimal("2.500000"),
            "avgPowerKw": Decimal("4.000000"),
            "readingCount": 3,
        },
        {
            "rank": 2,
            "meterId": "m-2",
            "energyKwh": Decimal("2.500000"),
            "avgPowerKw": Decimal("1.000000"),
            "readingCount": 1,
        },
        {
            "rank": 3,
            "meterId": "m-3",
            "energyKwh": Decimal("0.250000"),
            "avgPowerKw": Decimal("15.000000"),
            "readingCount": 2,
        },
    ]
    limited = body(
        client.get(
            f"{BASE}/{REGION}/top-consumers",
            query_string={**window, "limit": "1"},
            headers=operator.headers,
        )
    )
    assert [consumer["meterId"] for consumer in limited["consumers"]] == ["m-1"]


def _minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def test_load_is_the_newest_complete_window_alone(client, operator) -> None:
    # Stay clear of a minute boundary, so "the open window" is the same one throughout.
    while datetime.now(UTC).second >= 55:
        time.sleep(0.5)
    open_window = _minute_floor(datetime.now(UTC))
    for minutes_back, total in ((5, "100"), (4, "200"), (3, "300"), (2, "400"), (1, "1700")):
        insert_region_window(
            "1m",
            REGION,
            open_window - timedelta(minutes=minutes_back),
            meter_count=minutes_back + 10,
            reading_count=30 * (minutes_back + 10),
            total_power_kw=total,
            capacity_kw="3400",
            energy_kwh="1",
        )
    insert_region_window(
        "1m",
        REGION,
        open_window,
        meter_count=1,
        reading_count=1,
        total_power_kw="5",
        capacity_kw="3400",
        energy_kwh="0",
    )

    response = client.get(f"{BASE}/{REGION}/load", headers=operator.headers)

    assert response.status_code == 200
    newest = open_window - timedelta(minutes=1)
    data = body(response)
    assert data == {
        "region": REGION,
        "capacityKw": Decimal("3400.000"),
        "windowStart": data["windowStart"],
        "windowEnd": data["windowEnd"],
        "totalPowerKw": Decimal("1700.000000"),
        "loadPercentage": Decimal("50.0000"),
        "meterCount": 11,
        "readingCount": 330,
    }
    assert datetime.fromisoformat(data["windowStart"]) == newest
    assert datetime.fromisoformat(data["windowEnd"]) == open_window
    assert data["windowStart"].endswith("+05:30")


def test_load_before_any_window(client, operator) -> None:
    assert body(client.get(f"{BASE}/Chennai-North/load", headers=operator.headers)) == {
        "region": "Chennai-North",
        "capacityKw": Decimal("3600.000"),
        "windowStart": None,
        "windowEnd": None,
        "totalPowerKw": None,
        "loadPercentage": None,
        "meterCount": None,
        "readingCount": None,
    }


@pytest.mark.parametrize("sub", ["stats", "top-consumers", "load"])
def test_region_figures_are_for_operators_and_admins(client, app, user, operator, sub) -> None:
    admin = create_account(app, role="ADMIN", region=None)

    assert client.get(f"{BASE}/{REGION}/{sub}", headers=user.headers).status_code == 403
    assert client.get(f"{BASE}/{REGION}/{sub}").status_code == 401
    for staff in (operator, admin):
        assert client.get(f"{BASE}/{REGION}/{sub}", headers=staff.headers).status_code == 200
        missing = client.get(f"{BASE}/Atlantis/{sub}", headers=staff.headers)
        assert missing.status_code == 404
        assert missing.get_json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("sub", "params", "field"),
    [
        ("top-consumers", {"limit": "0"}, "limit"),
        ("top-consumers", {"limit": "101"}, "limit"),
        ("stats", {"start": "2026-06-01T00:00:00Z", "end": "2026-07-03T00:00:00Z"}, "end"),
        ("stats", {"start": "2026-06-01T00:00:00"}, "start"),
        ("top-consumers", {"start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, "end"),
    ],
)
def test_bad_region_input_is_422(client, operator, sub, params, field) -> None:
    response = client.get(f"{BASE}/{REGION}/{sub}", query_string=params, headers=operator.headers)

    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]["query"]
