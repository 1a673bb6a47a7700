"""GET /admin/stats: real counts of accounts, meters, readings and each region's latest load."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from tests.accounts import create_account
from tests.support import execute

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGIONS = (
    "Bangalore-East",
    "Bangalore-West",
    "Chennai-North",
    "Delhi-North",
    "Delhi-South",
    "Hyderabad-Central",
    "Mumbai-North",
    "Mumbai-South",
    "Pune-East",
    "Pune-West",
)
NO_METERS = {"total": 0, "assigned": 0, "retired": 0, "neverSeen": 0, "seenLast24h": 0}


def _regional_window(region: str, start: datetime, readings: int, power: str, load: str) -> None:
    execute(
        "INSERT INTO regional_aggregates_1m (region, window_start, meter_count, reading_count, "
        "total_power_kw, capacity_kw, load_percentage, energy_kwh_sum) "
        "SELECT %s, %s, 2, %s, %s, capacity_kw, %s, 0 FROM regions WHERE name = %s",
        (region, start, readings, power, load, region),
    )


def test_only_admins_see_the_stats(client, app, clean_state):
    for role in ("USER", "OPERATOR"):
        account = create_account(app, role=role)
        assert client.get("/api/v1/admin/stats", headers=account.headers).status_code == 403
    assert client.get("/api/v1/admin/stats").status_code == 401


def test_stats_of_an_empty_system(client, app, clean_state):
    admin = create_account(app, role="ADMIN", region=None)
    body = client.get("/api/v1/admin/stats", headers=admin.headers).get_json()
    assert body["users"] == {
        "total": 1,
        "byRole": {"USER": 0, "OPERATOR": 0, "ADMIN": 1},
        "byStatus": {"active": 1, "suspended": 0},
        "unverified": 0,
        "deleted": 0,
    }
    assert body["meters"] == NO_METERS
    assert body["readingsLast24h"] == 0
    assert [region["region"] for region in body["regions"]] == list(REGIONS)
    assert all(region["latestLoad"] is None for region in body["regions"])


def test_stats_count_what_is_there(client, app, clean_state):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    admin = create_account(app, role="ADMIN", region=None)
    create_account(app, role="OPERATOR", region=None)
    create_account(app, region="Pune-West", meters=("MTR-1",))
    suspended = create_account(app)
    unverified = create_account(app)
    deleted = create_account(app)
    execute("UPDATE users SET status = 'suspended' WHERE id = %s", (suspended.id,))
    execute("UPDATE users SET email_verified_at = NULL WHERE id = %s", (unverified.id,))
    execute("UPDATE users SET deleted_at = now() WHERE id = %s", (deleted.id,))

    execute("UPDATE meters SET first_seen = %s, last_seen = %s", (now - timedelta(days=3), now))
    execute("INSERT INTO meters (meter_id, region) VALUES ('MTR-2', 'Pune-West')")
    execute(
        "INSERT INTO meters (meter_id, region, first_seen, last_seen, retired_at) "
        "VALUES ('MTR-3', 'Pune-West', %s, %s, now())",
        (now - timedelta(days=5), now - timedelta(hours=48)),
    )
    execute(
        "INSERT INTO meters (meter_id, region, first_seen, last_seen) "
        "VALUES ('MTR-4', 'Delhi-North', %s, %s)",
        (now - timedelta(hours=1), now - timedelta(minutes=10)),
    )

    _regional_window("Pune-West", now - timedelta(hours=30), 100, "999", "29.3824")
    _regional_window("Pune-West", now - timedelta(hours=2), 10, "1000.25", "29.4191")
    _regional_window("Pune-West", now - timedelta(minutes=5), 12, "1234.5", "36.3088")
    _regional_window("Delhi-North", now - timedelta(hours=25), 7, "10", "0.2381")

    response = client.get("/api/v1/admin/stats", headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    generated = datetime.fromisoformat(body["generatedAt"])
    assert abs((generated - datetime.now(UTC)).total_seconds()) < 30
    assert body["users"] == {
        "total": 5,
        "byRole": {"USER": 3, "OPERATOR": 1, "ADMIN": 1},
        "byStatus": {"active": 4, "suspended": 1},
        "unverified": 1,
        "deleted": 1,
    }
    assert body["meters"] == {
        "total": 4,
        "assigned": 1,
        "retired": 1,
        "neverSeen": 1,
        "seenLast24h": 2,
    }
    assert body["readingsLast24h"] == 22

    regions = {region.pop("region"): region for region in body["regions"]}
    assert list(regions) == list(REGIONS)
    pune = regions["Pune-West"]
    assert datetime.fromisoformat(pune["latestLoad"].pop("windowStart")) == now - timedelta(
        minutes=5
    )
    assert pune == {
        "capacityKw": 3400.0,
        "meters": {"total": 3, "assigned": 1, "retired": 1, "neverSeen": 1, "seenLast24h": 1},
        "readingsLast24h": 22,
        "latestLoad": {"meterCount": 2, "totalPowerKw": 1234.5, "loadPercentage": 36.3088},
    }
    delhi = regions["Delhi-North"]
    assert delhi["meters"] == {
        "total": 1,
        "assigned": 0,
        "retired": 0,
        "neverSeen": 0,
        "seenLast24h": 1,
    }
    # Its only window is older than a day: it is still the latest load, but no recent reading.
    assert delhi["readingsLast24h"] == 0
    assert delhi["latestLoad"]["totalPowerKw"] == 10.0
    assert regions["Mumbai-North"] == {
        "capacityKw": 4000.0,
        "meters": NO_METERS,
        "readingsLast24h": 0,
        "latestLoad": None,
    }
