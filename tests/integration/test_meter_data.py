"""Meter read endpoints: exact figures, local days/hours/months across DST, CSV, scope, input."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.accounts import create_account
from tests.telemetry_rows import insert_reading
from tests.telemetry_rows import insert_window
from tests.telemetry_rows import utc

pytestmark = [pytest.mark.integration, pytest.mark.api]

BASE = "/api/v1/meters"
REGION = "Pune-West"


def body(response: Any) -> Any:
    """The JSON body with every number as Decimal, so figures compare exactly."""
    return json.loads(response.get_data(as_text=True), parse_float=Decimal)


def get(client: Any, account: Any, path: str, **params: str) -> Any:
    return client.get(f"{BASE}{path}", query_string=params, headers=account.headers)


@pytest.fixture
def berlin(app, clean_state):
    return create_account(app, region=REGION, meters=("m-berlin",), timezone="Europe/Berlin")


@pytest.fixture
def kolkata(app, clean_state):
    return create_account(app, region=REGION, meters=("m-kolkata",), timezone="Asia/Kolkata")


@pytest.fixture
def operator(app, clean_state):
    return create_account(app, role="OPERATOR", region=None, timezone="UTC")


def totals(count: int, energy: str, avg: str | None, low: str | None, high: str | None):
    return {
        "readingCount": count,
        "energyKwh": Decimal(energy),
        "avgPowerKw": None if avg is None else Decimal(avg),
        "minPowerKw": None if low is None else Decimal(low),
        "maxPowerKw": None if high is None else Decimal(high),
    }


def without_voltage(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "voltageAvg"}


# --------------------------------------------------------------------------- history


def test_1m_history_is_the_stored_windows_in_the_callers_zone(client, berlin) -> None:
    # Berlin springs forward at 01:00 UTC: 01:59 CET is followed by 03:00 CEST.
    insert_window("1m", "m-berlin", REGION, utc("2026-03-29T00:58:00Z"), ["1.5", "2.5"], ["0.01"])
    insert_window("1m", "m-berlin", REGION, utc("2026-03-29T00:59:00Z"), ["3"], ["0.02"], ["231.5"])
    insert_window("1m", "m-berlin", REGION, utc("2026-03-29T01:00:00Z"), ["4", "5", "6"])
    insert_window("1m", "m-berlin", REGION, utc("2026-03-29T01:01:00Z"), ["9"])  # after the end

    response = get(
        client,
        berlin,
        "/m-berlin/history",
        resolution="1m",
        start="2026-03-29T00:58:00Z",
        end="2026-03-29T01:01:00Z",
    )

    assert response.status_code == 200
    data = body(response)
    assert {key: data[key] for key in ("meterId", "resolution", "timezone", "start", "end")} == {
        "meterId": "m-berlin",
        "resolution": "1m",
        "timezone": "Europe/Berlin",
        "start": "2026-03-29T01:58:00+01:00",
        "end": "2026-03-29T03:01:00+02:00",
    }
    assert data["points"] == [
        {
            "windowStart": "2026-03-29T01:58:00+01:00",
            "windowEnd": "2026-03-29T01:59:00+01:00",
            **totals(2, "0.010000", "2.000000", "1.500000", "2.500000"),
            "voltageAvg": None,
        },
        {
            "windowStart": "2026-03-29T01:59:00+01:00",
            "windowEnd": "2026-03-29T03:00:00+02:00",
            **totals(1, "0.020000", "3.000000", "3.000000", "3.000000"),
            "voltageAvg": Decimal("231.500000"),
        },
        {
            "windowStart": "2026-03-29T03:00:00+02:00",
            "windowEnd": "2026-03-29T03:01:00+02:00",
            **totals(3, "0", "5.000000", "4.000000", "6.000000"),
            "voltageAvg": None,
        },
    ]
    # Numbers are JSON numbers with their stored digits, never strings.
    assert '"avgPowerKw":2.000000' in response.get_data(as_text=True)


def test_1h_rolls_up_15m_windows_and_keeps_the_fall_back_hours_apart(client, berlin) -> None:
    # 02:00-03:00 happens twice on 2026-10-25 in Berlin: 00:00-01:00 UTC (CEST), 01:00-02:00 (CET).
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T00:00:00Z"), ["1", "2"], ["0.1"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T00:45:00Z"), ["4"], ["0.2"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T01:00:00Z"), ["10"], ["0.3"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T01:30:00Z"), ["20", "30"], ["0.4"])

    response = get(
        client,
        berlin,
        "/m-berlin/history",
        resolution="1h",
        start="2026-10-25T02:00:00+02:00",
        end="2026-10-25T03:00:00+01:00",
    )

    assert response.status_code == 200
    points = body(response)["points"]
    assert [without_voltage(point) for point in points] == [
        {
            "windowStart": "2026-10-25T02:00:00+02:00",
            "windowEnd": "2026-10-25T02:00:00+01:00",
            # (1 + 2 + 4) / 3 readings, not the mean of the windows' means (2.75).
            **totals(3, "0.300000", "2.333333", "1.000000", "4.000000"),
        },
        {
            "windowStart": "2026-10-25T02:00:00+01:00",
            "windowEnd": "2026-10-25T03:00:00+01:00",
            **totals(3, "0.700000", "20.000000", "10.000000", "30.000000"),
        },
    ]


def test_1h_buckets_in_kolkata_start_at_half_past_utc(client, kolkata) -> None:
    for minute, power in (("05:15", "1"), ("05:30", "2"), ("05:45", "3"), ("06:15", "4")):
        insert_window("15m", "m-kolkata", REGION, utc(f"2026-01-15T{minute}:00Z"), [power])
    insert_window("15m", "m-kolkata", REGION, utc("2026-01-15T06:30:00Z"), ["8"])

    response = get(
        client,
        kolkata,
        "/m-kolkata/history",
        resolution="1h",
        start="2026-01-15T05:00:00Z",
        end="2026-01-15T07:00:00Z",
    )

    data = body(response)
    # The range is widened to whole local hours: 10:00 to 13:00 IST.
    assert (data["start"], data["end"]) == (
        "2026-01-15T10:00:00+05:30",
        "2026-01-15T13:00:00+05:30",
    )
    assert [
        (point["windowStart"], point["readingCount"], point["avgPowerKw"])
        for point in data["points"]
    ] == [
        ("2026-01-15T10:00:00+05:30", 1, Decimal("1.000000")),
        ("2026-01-15T11:00:00+05:30", 3, Decimal("3.000000")),
        ("2026-01-15T12:00:00+05:30", 1, Decimal("8.000000")),
    ]


def test_1d_buckets_are_local_days_of_23_hours_on_spring_forward(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-03-28T22:45:00Z"), ["100"])  # 28th local
    insert_window("15m", "m-berlin", REGION, utc("2026-03-28T23:00:00Z"), ["1"], ["0.25"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-29T21:45:00Z"), ["3"], ["0.75"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-29T22:00:00Z"), ["7"], ["1.5"])

    response = get(
        client,
        berlin,
        "/m-berlin/history",
        resolution="1d",
        start="2026-03-29T00:00:00+01:00",
        end="2026-03-31T00:00:00+02:00",
    )

    assert [without_voltage(point) for point in body(response)["points"]] == [
        {
            "windowStart": "2026-03-29T00:00:00+01:00",
            "windowEnd": "2026-03-30T00:00:00+02:00",
            **totals(2, "1.000000", "2.000000", "1.000000", "3.000000"),
        },
        {
            "windowStart": "2026-03-30T00:00:00+02:00",
            "windowEnd": "2026-03-31T00:00:00+02:00",
            **totals(1, "1.500000", "7.000000", "7.000000", "7.000000"),
        },
    ]


def test_history_defaults_to_the_last_24_hours_at_15m(client, operator) -> None:
    create_account(client.application, region=REGION, meters=("m-now",))
    now = datetime.now(UTC)
    recent = now - timedelta(hours=2)
    recent = recent.replace(minute=recent.minute - recent.minute % 15, second=0, microsecond=0)
    insert_window("15m", "m-now", REGION, recent, ["2"])
    insert_window("15m", "m-now", REGION, recent - timedelta(hours=25), ["3"])

    data = body(get(client, operator, "/m-now/history"))

    assert data["resolution"] == "15m"
    assert data["timezone"] == "UTC"
    assert [point["windowStart"] for point in data["points"]] == [recent.isoformat()]


def test_history_as_csv_carries_explicit_offsets(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T00:00:00Z"), ["1", "2"], ["0.1"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T01:15:00Z"), ["4"], ["0.2"], ["230.1"])

    response = get(
        client,
        berlin,
        "/m-berlin/history.csv",
        resolution="1h",
        start="2026-10-25T00:00:00Z",
        end="2026-10-25T02:00:00Z",
    )

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="m-berlin-1h-20261025T0200.csv"'
    )
    assert response.get_data(as_text=True).splitlines() == [
        "window_start,window_end,reading_count,energy_kwh,avg_power_kw,min_power_kw,"
        "max_power_kw,voltage_avg",
        "2026-10-25T02:00:00+02:00,2026-10-25T02:00:00+01:00,2,0.100000,1.500000,1.000000,"
        "2.000000,",
        "2026-10-25T02:00:00+01:00,2026-10-25T03:00:00+01:00,1,0.200000,4.000000,4.000000,"
        "4.000000,230.100000",
    ]

    in_utc = get(
        client,
        berlin,
        "/m-berlin/history.csv",
        resolution="15m",
        start="2026-10-25T00:00:00Z",
        end="2026-10-25T00:15:00Z",
        timezone="UTC",
    )
    assert (
        in_utc.get_data(as_text=True)
        .splitlines()[1]
        .startswith("2026-10-25T00:00:00+00:00,2026-10-25T00:15:00+00:00,2,")
    )


@pytest.mark.parametrize(
    ("resolution", "zone", "start", "end"),
    [
        ("1m", "Europe/Berlin", "2026-03-29T00:58:00Z", "2026-03-29T01:02:00Z"),
        ("15m", "Asia/Kolkata", "2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"),
        ("1h", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"),
        ("1h", "Asia/Kolkata", "2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z"),
        ("1d", "Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
        ("1d", "America/New_York", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
        ("1d", "UTC", "2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),  # no data: []
    ],
)
def test_the_json_history_is_what_the_schema_dumps(
    client, berlin, resolution: str, zone: str, start: str, end: str
) -> None:
    """PostgreSQL writes the JSON points; they must equal HistorySchema's dump of the rows."""
    from segs.db import session_scope
    from segs.services.grid.readings_query import meter_history
    from segs.web.json_provider import SegsJSONProvider
    from segs.web.meter_data.schemas import HistorySchema

    for minute in range(0, 4 * 60, 7):
        moment = utc("2026-10-24T23:00:00Z") + timedelta(minutes=minute)
        insert_window("1m", "m-berlin", REGION, moment, [str(minute % 9), "1.25"], ["0.5"])
        if minute % 15 == 0 or minute % 45 == 1:
            window = moment - timedelta(minutes=moment.minute % 15)
            voltages = ["229.5", "230"] if minute % 2 else []
            insert_window(
                "15m", "m-berlin", REGION, window, [str(minute % 11), "3"], ["1"], voltages
            )
    for minute in (58, 59, 60, 61):
        moment = utc("2026-03-29T00:00:00Z") + timedelta(minutes=minute)
        insert_window("1m", "m-berlin", REGION, moment, ["2.5"], ["0.01"], ["231"])

    response = get(
        client,
        berlin,
        "/m-berlin/history",
        resolution=resolution,
        start=start,
        end=end,
        timezone=zone,
    )

    assert response.status_code == 200
    with session_scope() as session:
        history = meter_history(
            session,
            berlin.id,
            "USER",
            "m-berlin",
            resolution=resolution,
            start=utc(start),
            end=utc(end),
            zone_name=zone,
            now=datetime.now(UTC),
        )
    expected = json.loads(
        SegsJSONProvider(client.application).dumps(HistorySchema().dump(history)),
        parse_float=Decimal,
    )
    # Every case has points but the last, which checks the empty array.
    assert bool(history.points) is (zone != "UTC")
    assert body(response) == expected


# --------------------------------------------------------------------------- daily and monthly


def test_daily_totals_are_local_days_with_the_end_day_included(client, berlin) -> None:
    # 23:30 UTC on the 28th is already the 29th in Berlin; 22:30 UTC on the 29th is the 30th.
    insert_window("15m", "m-berlin", REGION, utc("2026-03-28T22:45:00Z"), ["50"], ["5"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-28T23:30:00Z"), ["2", "4"], ["0.5"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-29T21:45:00Z"), ["6"], ["0.25"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-29T22:30:00Z"), ["8"], ["1"])
    insert_window("15m", "m-berlin", REGION, utc("2026-03-30T22:00:00Z"), ["9"], ["9"])  # 31st

    response = get(client, berlin, "/m-berlin/daily", startDate="2026-03-29", endDate="2026-03-30")

    assert response.status_code == 200
    data = body(response)
    assert data["timezone"] == "Europe/Berlin"
    assert (data["startDate"], data["endDate"]) == ("2026-03-29", "2026-03-30")
    assert [without_voltage(day) for day in data["days"]] == [
        {
            "date": "2026-03-29",
            "start": "2026-03-29T00:00:00+01:00",
            "end": "2026-03-30T00:00:00+02:00",
            **totals(3, "0.750000", "4.000000", "2.000000", "6.000000"),
        },
        {
            "date": "2026-03-30",
            "start": "2026-03-30T00:00:00+02:00",
            "end": "2026-03-31T00:00:00+02:00",
            **totals(1, "1.000000", "8.000000", "8.000000", "8.000000"),
        },
    ]


def test_daily_totals_on_the_25_hour_fall_back_day(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-10-24T22:00:00Z"), ["1"], ["1"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T22:45:00Z"), ["3"], ["2"])
    insert_window("15m", "m-berlin", REGION, utc("2026-10-25T23:00:00Z"), ["5"], ["4"])

    days = body(
        get(client, berlin, "/m-berlin/daily", startDate="2026-10-25", endDate="2026-10-25")
    )["days"]

    assert [without_voltage(day) for day in days] == [
        {
            "date": "2026-10-25",
            "start": "2026-10-25T00:00:00+02:00",
            "end": "2026-10-26T00:00:00+01:00",
            **totals(2, "3.000000", "2.000000", "1.000000", "3.000000"),
        }
    ]


def test_daily_totals_in_kolkata_turn_at_18_30_utc(client, kolkata) -> None:
    insert_window("15m", "m-kolkata", REGION, utc("2026-01-01T18:15:00Z"), ["1"], ["0.1"])
    insert_window("15m", "m-kolkata", REGION, utc("2026-01-01T18:30:00Z"), ["2"], ["0.2"])

    days = body(
        get(client, kolkata, "/m-kolkata/daily", startDate="2026-01-01", endDate="2026-01-02")
    )["days"]

    assert [(day["date"], day["start"], day["energyKwh"]) for day in days] == [
        ("2026-01-01", "2026-01-01T00:00:00+05:30", Decimal("0.100000")),
        ("2026-01-02", "2026-01-02T00:00:00+05:30", Decimal("0.200000")),
    ]


def test_a_timezone_parameter_overrides_the_account_zone(client, kolkata) -> None:
    insert_window("15m", "m-kolkata", REGION, utc("2026-01-01T18:15:00Z"), ["1"], ["0.1"])
    insert_window("15m", "m-kolkata", REGION, utc("2026-01-01T18:30:00Z"), ["2"], ["0.2"])

    days = body(
        get(
            client,
            kolkata,
            "/m-kolkata/daily",
            startDate="2026-01-01",
            endDate="2026-01-01",
            timezone="UTC",
        )
    )["days"]

    assert [(day["date"], day["readingCount"], day["energyKwh"]) for day in days] == [
        ("2026-01-01", 2, Decimal("0.300000"))
    ]


def test_monthly_totals_are_local_months_with_the_end_month_included(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-09-30T21:45:00Z"), ["1"], ["1"])  # Sep
    insert_window("15m", "m-berlin", REGION, utc("2026-09-30T22:00:00Z"), ["2"], ["2"])  # Oct
    insert_window("15m", "m-berlin", REGION, utc("2026-10-31T22:45:00Z"), ["4"], ["4"])  # Oct
    insert_window("15m", "m-berlin", REGION, utc("2026-10-31T23:00:00Z"), ["8"], ["8"])  # Nov

    response = get(client, berlin, "/m-berlin/monthly", startMonth="2026-09", endMonth="2026-10")

    assert response.status_code == 200
    data = body(response)
    assert (data["startMonth"], data["endMonth"]) == ("2026-09", "2026-10")
    assert [without_voltage(month) for month in data["months"]] == [
        {
            "month": "2026-09",
            "start": "2026-09-01T00:00:00+02:00",
            "end": "2026-10-01T00:00:00+02:00",
            **totals(1, "1.000000", "1.000000", "1.000000", "1.000000"),
        },
        {
            "month": "2026-10",
            "start": "2026-10-01T00:00:00+02:00",
            "end": "2026-11-01T00:00:00+01:00",
            **totals(2, "6.000000", "3.000000", "2.000000", "4.000000"),
        },
    ]


# --------------------------------------------------------------------------- stats and compare


def test_stats_over_a_period_widened_to_whole_windows(client, berlin) -> None:
    insert_window(
        "15m", "m-berlin", REGION, utc("2026-06-01T10:00:00Z"), ["1", "2"], ["0.5"], ["230"]
    )
    insert_window(
        "15m", "m-berlin", REGION, utc("2026-06-01T10:15:00Z"), ["6"], ["1.25"], ["240", "241"]
    )
    insert_window("15m", "m-berlin", REGION, utc("2026-06-01T10:30:00Z"), ["50"], ["9"])

    data = body(
        get(
            client,
            berlin,
            "/m-berlin/stats",
            start="2026-06-01T10:05:00Z",
            end="2026-06-01T10:20:00Z",
        )
    )

    assert data == {
        "meterId": "m-berlin",
        "period": {
            "start": "2026-06-01T12:00:00+02:00",
            "end": "2026-06-01T12:30:00+02:00",
            **totals(3, "1.750000", "3.000000", "1.000000", "6.000000"),
            "voltageAvg": Decimal("237.000000"),
        },
    }


def test_stats_of_a_period_without_readings(client, berlin) -> None:
    data = body(
        get(
            client,
            berlin,
            "/m-berlin/stats",
            start="2026-06-01T00:00:00Z",
            end="2026-06-02T00:00:00Z",
        )
    )
    assert data == {
        "meterId": "m-berlin",
        "period": {
            "start": "2026-06-01T02:00:00+02:00",
            "end": "2026-06-02T02:00:00+02:00",
            **totals(0, "0", None, None, None),
            "voltageAvg": None,
        },
    }


def test_compare_two_periods(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-06-01T10:00:00Z"), ["2"], ["2"])
    insert_window("15m", "m-berlin", REGION, utc("2026-06-02T10:00:00Z"), ["3", "5"], ["3"])
    periods = {
        "period1Start": "2026-06-01T00:00:00+02:00",
        "period1End": "2026-06-02T00:00:00+02:00",
        "period2Start": "2026-06-02T00:00:00+02:00",
        "period2End": "2026-06-03T00:00:00+02:00",
    }

    data = body(get(client, berlin, "/m-berlin/compare", **periods))

    assert data["changeKwh"] == Decimal("1.000000")
    assert data["changePercent"] == Decimal("50.00")
    assert without_voltage(data["period1"]) == {
        "start": "2026-06-01T00:00:00+02:00",
        "end": "2026-06-02T00:00:00+02:00",
        **totals(1, "2.000000", "2.000000", "2.000000", "2.000000"),
    }
    assert without_voltage(data["period2"]) == {
        "start": "2026-06-02T00:00:00+02:00",
        "end": "2026-06-03T00:00:00+02:00",
        **totals(2, "3.000000", "4.000000", "3.000000", "5.000000"),
    }

    reversed_periods = {
        "period1Start": periods["period2Start"],
        "period1End": periods["period2End"],
        "period2Start": "2026-06-05T00:00:00Z",
        "period2End": "2026-06-06T00:00:00Z",
    }
    data = body(get(client, berlin, "/m-berlin/compare", **reversed_periods))
    assert (data["changeKwh"], data["changePercent"]) == (Decimal("-3.000000"), Decimal("-100.00"))

    from_nothing = {
        **periods,
        "period1Start": "2026-05-01T00:00:00Z",
        "period1End": "2026-05-02T00:00:00Z",
    }
    data = body(get(client, berlin, "/m-berlin/compare", **from_nothing))
    assert (data["changeKwh"], data["changePercent"]) == (Decimal("3.000000"), None)


# --------------------------------------------------------------------------- latest readings


def test_latest_reading_of_a_meter(client, berlin, operator) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    insert_reading("m-berlin", REGION, now - timedelta(minutes=3), "1.5")
    newest = insert_reading(
        "m-berlin", REGION, now - timedelta(minutes=1), "2.25", energy_kwh="0.0125", voltage="229.9"
    )

    for account in (berlin, operator):
        response = get(client, account, "/m-berlin/latest")
        assert response.status_code == 200
        data = body(response)
        assert data["meterId"] == "m-berlin"
        assert data["region"] == REGION
        reading = data["reading"]
        assert reading["readingId"] == newest
        assert reading["timestamp"] == (now - timedelta(minutes=1)).isoformat()  # in UTC
        assert (reading["powerKw"], reading["energyKwh"], reading["voltage"]) == (
            Decimal("2.250000"),
            Decimal("0.012500"),
            Decimal("229.900000"),
        )
        assert reading["current"] is None


def test_latest_of_a_meter_without_readings_is_null(client, berlin) -> None:
    assert body(get(client, berlin, "/m-berlin/latest")) == {
        "meterId": "m-berlin",
        "region": REGION,
        "reading": None,
    }


def test_latest_of_my_meters(client, app, clean_state) -> None:
    owner = create_account(app, region=REGION, meters=("m-b", "m-a"))
    create_account(app, region=REGION, meters=("m-c",))
    now = datetime.now(UTC).replace(microsecond=0)
    insert_reading("m-a", REGION, now - timedelta(minutes=2), "1")
    insert_reading("m-a", REGION, now - timedelta(minutes=1), "2")
    insert_reading("m-c", REGION, now - timedelta(minutes=1), "9")

    data = body(get(client, owner, "/latest"))

    assert (data["total"], data["page"], data["pageSize"]) == (2, 1, 50)
    assert [
        (item["meterId"], item["reading"] and item["reading"]["powerKw"]) for item in data["items"]
    ] == [
        ("m-a", Decimal("2.000000")),
        ("m-b", None),
    ]
    second_page = body(get(client, owner, "/latest", page="2", pageSize="1"))
    assert [item["meterId"] for item in second_page["items"]] == ["m-b"]


# --------------------------------------------------------------------------- scope and input

SUB_RESOURCES = [
    "/latest",
    "/history",
    "/history.csv",
    "/stats",
    "/daily",
    "/monthly",
    "/compare?period1Start=2026-01-01T00:00:00Z&period1End=2026-01-02T00:00:00Z"
    "&period2Start=2026-01-02T00:00:00Z&period2End=2026-01-03T00:00:00Z",
]


@pytest.mark.parametrize("sub", SUB_RESOURCES)
def test_a_user_reaches_only_their_own_meters(client, app, berlin, operator, sub: str) -> None:
    create_account(app, region=REGION, meters=("m-other",))

    assert client.get(f"{BASE}/m-berlin{sub}", headers=berlin.headers).status_code == 200
    for meter in ("m-other", "m-missing"):
        response = client.get(f"{BASE}/{meter}{sub}", headers=berlin.headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "NOT_FOUND"
    assert client.get(f"{BASE}/m-other{sub}", headers=operator.headers).status_code == 200
    assert client.get(f"{BASE}/m-missing{sub}", headers=operator.headers).status_code == 404
    assert client.get(f"{BASE}/m-berlin{sub}").status_code == 401


def test_no_token_is_401_before_any_input_check(client, clean_state) -> None:
    response = client.get(f"{BASE}/m-x/history", query_string={"start": "not a time"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/history", {"start": "2026-06-01T00:00:00"}, "start"),
        ("/history", {"resolution": "5m"}, "resolution"),
        ("/history", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ("/history", {"timezone": "localtime"}, "timezone"),
        ("/history", {"end": "9999-12-31T23:59:00Z"}, "end"),
        ("/history", {"start": "0001-01-01T00:00:00+05:00"}, "start"),
        ("/history", {"start": "2026-06-02T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, "end"),
        ("/history", {"start": "2026-06-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, "end"),
        (
            "/history",
            {"resolution": "1m", "start": "2026-06-01T00:00:00Z", "end": "2026-06-08T00:01:00Z"},
            "end",
        ),
        (
            "/history",
            {"resolution": "15m", "start": "2026-06-01T00:00:00Z", "end": "2026-07-03T00:00:00Z"},
            "end",
        ),
        ("/stats", {"end": "yesterday"}, "end"),
        ("/daily", {"startDate": "2026-06-02", "endDate": "2026-06-01"}, "endDate"),
        ("/daily", {"startDate": "2026-13-01"}, "startDate"),
        ("/daily", {"endDate": "9999-12-31"}, "endDate"),
        ("/monthly", {"startMonth": "2026-6"}, "startMonth"),
        ("/monthly", {"startMonth": "0001-01"}, "startMonth"),
        ("/monthly", {"startMonth": "2026-07", "endMonth": "2026-06"}, "endMonth"),
        ("/monthly", {"startMonth": "2023-01", "endMonth": "2026-06"}, "endMonth"),
        ("/compare", {"period1Start": "2026-06-01T00:00:00Z"}, "period1End"),
    ],
)
def test_bad_input_is_422_naming_the_field(client, berlin, path: str, params, field: str) -> None:
    response = get(client, berlin, f"/m-berlin{path}", **params)

    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]["query"]


def test_an_unencoded_plus_in_an_offset_is_read_as_plus(client, berlin) -> None:
    insert_window("15m", "m-berlin", REGION, utc("2026-06-01T10:00:00Z"), ["2"])

    response = client.get(
        f"{BASE}/m-berlin/history?start=2026-06-01T12:00:00+02:00&end=2026-06-01T12:15:00+02:00",
        headers=berlin.headers,
    )

    assert response.status_code == 200
    assert [point["windowStart"] for point in body(response)["points"]] == [
        "2026-06-01T12:00:00+02:00"
    ]
