"""The meter registry: scope, registering, retiring, region-consistent assignment (issue 3, §3)."""

from __future__ import annotations

import uuid

import pytest

from tests.accounts import create_account
from tests.support import execute
from tests.support import query
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]


@pytest.fixture
def admin(app, clean_state):
    return create_account(app, role="ADMIN", region=None, email="root@example.test")


def _register(meter_id: str, region: str, *, seen: bool = False) -> None:
    """A meter as the ingestion workers register it (seen) or an admin does (not seen)."""
    if seen:
        execute(
            "INSERT INTO meters (meter_id, region, first_seen, last_seen) "
            "VALUES (%s, %s, now() - interval '1 hour', now())",
            (meter_id, region),
        )
    else:
        execute("INSERT INTO meters (meter_id, region) VALUES (%s, %s)", (meter_id, region))


def _owner(meter_id: str) -> uuid.UUID | None:
    return scalar("SELECT owner_id FROM meters WHERE meter_id = %s", (meter_id,))


def _audit(action: str) -> list[tuple]:
    return query(
        "SELECT actor_id, actor_role, entity_type, entity_id, details FROM audit_log "
        "WHERE action = %s ORDER BY id",
        (action,),
    )


# --------------------------------------------------------------------------- scope


def test_a_user_lists_and_reads_only_their_meters(client, app, clean_state):
    mine = create_account(app, region="Pune-West", meters=("MTR-2", "MTR-1"))
    other = create_account(app, region="Pune-West", meters=("MTR-3",))
    _register("MTR-4", "Pune-West", seen=True)

    body = client.get("/api/v1/meters", headers=mine.headers).get_json()
    assert body["total"] == 2
    assert [item["meterId"] for item in body["items"]] == ["MTR-1", "MTR-2"]
    item = body["items"][0]
    assert item["ownerId"] == str(mine.id)
    assert item["status"] == "active"
    assert (item["region"], item["retiredAt"], item["firstSeen"], item["lastSeen"]) == (
        "Pune-West",
        None,
        None,
        None,
    )
    assert item["assignedAt"] is not None

    assert client.get("/api/v1/meters/MTR-1", headers=mine.headers).status_code == 200
    for hidden in ("MTR-3", "MTR-4", "MTR-NOPE"):
        response = client.get(f"/api/v1/meters/{hidden}", headers=mine.headers)
        assert response.status_code == 404
        assert response.get_json()["error"] == {
            "code": "NOT_FOUND",
            "message": f"meter {hidden} not found",
            "details": None,
        }
    # Filtering by someone else's id does not widen a USER's scope.
    foreign = client.get(f"/api/v1/meters?ownerId={other.id}", headers=mine.headers).get_json()
    assert (foreign["total"], foreign["items"]) == (0, [])


@pytest.mark.parametrize("role", ["OPERATOR", "ADMIN"])
def test_staff_see_every_meter_with_filters_and_totals(client, app, clean_state, role):
    staff = create_account(app, role=role, region=None)
    owner = create_account(app, region="Pune-West", meters=("MTR-01", "MTR-02"))
    _register("MTR-03", "Pune-West", seen=True)
    _register("MTR-04", "Delhi-North", seen=True)
    _register("MTR-05", "Delhi-North")
    execute("UPDATE meters SET retired_at = now() WHERE meter_id IN ('MTR-02', 'MTR-05')")

    def listed(params: str = "") -> tuple[int, list[str]]:
        body = client.get(f"/api/v1/meters?{params}", headers=staff.headers).get_json()
        return body["total"], [item["meterId"] for item in body["items"]]

    assert listed() == (5, ["MTR-01", "MTR-02", "MTR-03", "MTR-04", "MTR-05"])
    assert listed("pageSize=2&page=2") == (5, ["MTR-03", "MTR-04"])
    assert listed("region=Delhi-North") == (2, ["MTR-04", "MTR-05"])
    assert listed(f"ownerId={owner.id}") == (2, ["MTR-01", "MTR-02"])
    assert listed("assigned=true") == (2, ["MTR-01", "MTR-02"])
    assert listed("assigned=false") == (3, ["MTR-03", "MTR-04", "MTR-05"])
    assert listed("status=retired") == (2, ["MTR-02", "MTR-05"])
    assert listed("status=active&assigned=false") == (2, ["MTR-03", "MTR-04"])
    response = client.get("/api/v1/meters/MTR-04", headers=staff.headers)
    assert response.status_code == 200
    assert response.get_json()["firstSeen"] is not None


def test_meter_queries_are_validated(client, admin):
    for params in ("status=broken", "assigned=maybe", "ownerId=nope", "pageSize=0", "region=%00"):
        response = client.get(f"/api/v1/meters?{params}", headers=admin.headers)
        assert response.status_code == 422, params
    assert client.get("/api/v1/meters").status_code == 401


def test_a_meter_id_postgresql_cannot_store_names_no_meter(client, app, admin):
    user = create_account(app, region="Pune-West")
    calls = [
        client.get("/api/v1/meters/MTR%001", headers=admin.headers),
        client.get("/api/v1/meters/MTR%001", headers=user.headers),
        client.post("/api/v1/meters/MTR%001/retire", headers=admin.headers),
        client.put(
            "/api/v1/meters/MTR%001/assignment",
            json={"userId": str(user.id)},
            headers=admin.headers,
        ),
        client.delete("/api/v1/meters/MTR%001/assignment", headers=admin.headers),
    ]
    # Refused before any query (issue 15), for anyone.
    assert [response.status_code for response in calls] == [400] * 5
    assert {response.get_json()["error"]["code"] for response in calls} == {
        "INVALID_PATH_PARAMETER"
    }
    assert client.get("/api/v1/meters/MTR%001").status_code == 400


# --------------------------------------------------------------------------- registering


def test_admin_registers_a_meter_ahead_of_its_first_reading(client, admin):
    response = client.post(
        "/api/v1/meters",
        json={"meterId": "MTR-NEW-1", "region": "Chennai-North"},
        headers=admin.headers,
    )
    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/meters/MTR-NEW-1"
    assert response.get_json() == {
        "meterId": "MTR-NEW-1",
        "region": "Chennai-North",
        "status": "active",
        "ownerId": None,
        "assignedAt": None,
        "retiredAt": None,
        "firstSeen": None,
        "lastSeen": None,
    }
    assert _audit("meter.create") == [
        (admin.id, "ADMIN", "meter", "MTR-NEW-1", {"region": "Chennai-North"})
    ]


def test_registering_twice_or_in_an_unknown_region_fails(client, admin):
    _register("MTR-SEEN", "Pune-West", seen=True)
    duplicate = client.post(
        "/api/v1/meters", json={"meterId": "MTR-SEEN", "region": "Pune-West"}, headers=admin.headers
    )
    assert duplicate.status_code == 409
    assert duplicate.get_json()["error"]["code"] == "METER_EXISTS"
    unknown = client.post(
        "/api/v1/meters", json={"meterId": "MTR-X", "region": "Atlantis"}, headers=admin.headers
    )
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["details"] == {"region": ["unknown region"]}
    bad_id = client.post(
        "/api/v1/meters", json={"meterId": "a/b", "region": "Pune-West"}, headers=admin.headers
    )
    assert bad_id.status_code == 422
    assert list(bad_id.get_json()["error"]["details"]["json"]) == ["meterId"]
    assert scalar("SELECT count(*) FROM meters") == 1
    assert _audit("meter.create") == []


def test_only_admins_change_the_registry(client, app, clean_state):
    operator = create_account(app, role="OPERATOR", region=None)
    user = create_account(app, region="Pune-West", meters=("MTR-1",))
    for headers, status in ((operator.headers, 403), (user.headers, 403), ({}, 401)):
        calls = [
            client.post(
                "/api/v1/meters", json={"meterId": "M", "region": "Pune-West"}, headers=headers
            ),
            client.post("/api/v1/meters/MTR-1/retire", headers=headers),
            client.put(
                "/api/v1/meters/MTR-1/assignment", json={"userId": str(user.id)}, headers=headers
            ),
            client.delete("/api/v1/meters/MTR-1/assignment", headers=headers),
        ]
        assert [response.status_code for response in calls] == [status] * 4
    assert scalar("SELECT count(*) FROM audit_log") == 0


# --------------------------------------------------------------------------- assigning


def test_assigning_to_a_user_of_the_meters_region(client, app, admin):
    user = create_account(app, region="Pune-West")
    _register("MTR-9", "Pune-West", seen=True)
    response = client.put(
        "/api/v1/meters/MTR-9/assignment", json={"userId": str(user.id)}, headers=admin.headers
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["meterId"], body["ownerId"]) == ("MTR-9", str(user.id))
    assert body["assignedAt"] is not None
    assert _audit("meter.assign") == [
        (admin.id, "ADMIN", "meter", "MTR-9", {"userId": str(user.id), "previousOwnerId": None})
    ]
    # The customer sees it now, and the account lists it.
    assert client.get("/api/v1/meters/MTR-9", headers=user.headers).status_code == 200
    assert client.get("/api/v1/users/me", headers=user.headers).get_json()["meterIds"] == ["MTR-9"]
    # Assigning it to the same account again is no change and records nothing.
    again = client.put(
        "/api/v1/meters/MTR-9/assignment", json={"userId": str(user.id)}, headers=admin.headers
    )
    assert again.status_code == 200
    assert len(_audit("meter.assign")) == 1


def test_an_account_can_own_several_meters(client, app, admin):
    user = create_account(app, region="Delhi-South")
    for meter_id in ("MTR-A", "MTR-B", "MTR-C"):
        _register(meter_id, "Delhi-South")
        response = client.put(
            f"/api/v1/meters/{meter_id}/assignment",
            json={"userId": str(user.id)},
            headers=admin.headers,
        )
        assert response.status_code == 200
    body = client.get("/api/v1/meters", headers=user.headers).get_json()
    assert (body["total"], [item["meterId"] for item in body["items"]]) == (
        3,
        ["MTR-A", "MTR-B", "MTR-C"],
    )


def test_assignment_across_regions_is_refused(client, app, admin):
    user = create_account(app, region="Pune-East")
    no_region = create_account(app, region=None)
    _register("MTR-W", "Pune-West", seen=True)
    response = client.put(
        "/api/v1/meters/MTR-W/assignment", json={"userId": str(user.id)}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": "REGION_MISMATCH",
        "message": "meter MTR-W is in Pune-West but the account's region is Pune-East",
        "details": {"userId": ["the account must be of the meter's region Pune-West"]},
    }
    unset = client.put(
        "/api/v1/meters/MTR-W/assignment",
        json={"userId": str(no_region.id)},
        headers=admin.headers,
    )
    assert unset.status_code == 422
    assert unset.get_json()["error"]["message"] == (
        "meter MTR-W is in Pune-West but the account's region is not set"
    )
    assert _owner("MTR-W") is None
    assert _audit("meter.assign") == []


def test_only_live_user_accounts_own_meters(client, app, admin):
    operator = create_account(app, role="OPERATOR", region="Pune-West")
    deleted = create_account(app, region="Pune-West")
    execute("UPDATE users SET deleted_at = now() WHERE id = %s", (deleted.id,))
    _register("MTR-1", "Pune-West")

    def assign(user_id: object) -> dict:
        response = client.put(
            "/api/v1/meters/MTR-1/assignment", json={"userId": str(user_id)}, headers=admin.headers
        )
        assert response.status_code == 422
        return response.get_json()["error"]

    assert assign(operator.id)["code"] == "NOT_A_CUSTOMER"
    assert assign(deleted.id)["details"] == {"userId": ["no such account"]}
    assert assign(uuid.uuid4())["details"] == {"userId": ["no such account"]}
    assert _owner("MTR-1") is None


def test_a_taken_meter_moves_only_when_reassigned(client, app, admin):
    first = create_account(app, region="Pune-West", meters=("MTR-1",))
    second = create_account(app, region="Pune-West")
    taken = client.put(
        "/api/v1/meters/MTR-1/assignment", json={"userId": str(second.id)}, headers=admin.headers
    )
    assert taken.status_code == 409
    assert taken.get_json()["error"]["code"] == "METER_ASSIGNED"
    assert taken.get_json()["error"]["details"] == {"ownerId": str(first.id)}
    assert _owner("MTR-1") == first.id

    moved = client.put(
        "/api/v1/meters/MTR-1/assignment",
        json={"userId": str(second.id), "reassign": True},
        headers=admin.headers,
    )
    assert moved.status_code == 200
    assert _owner("MTR-1") == second.id
    assert [row[4] for row in _audit("meter.assign")] == [
        {"userId": str(second.id), "previousOwnerId": str(first.id)}
    ]
    assert client.get("/api/v1/meters/MTR-1", headers=first.headers).status_code == 404


def test_unassigning(client, app, admin):
    user = create_account(app, region="Pune-West", meters=("MTR-1",))
    response = client.delete("/api/v1/meters/MTR-1/assignment", headers=admin.headers)
    assert response.status_code == 204
    assert query("SELECT owner_id, assigned_at FROM meters") == [(None, None)]
    assert _audit("meter.unassign") == [
        (admin.id, "ADMIN", "meter", "MTR-1", {"userId": str(user.id)})
    ]
    assert client.get("/api/v1/meters/MTR-1", headers=user.headers).status_code == 404
    again = client.delete("/api/v1/meters/MTR-1/assignment", headers=admin.headers)
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "NOT_ASSIGNED"
    missing = client.delete("/api/v1/meters/NOPE/assignment", headers=admin.headers)
    assert missing.status_code == 404


def test_assigning_an_unknown_meter_is_404(client, app, admin):
    user = create_account(app, region="Pune-West")
    response = client.put(
        "/api/v1/meters/NOPE/assignment", json={"userId": str(user.id)}, headers=admin.headers
    )
    assert response.status_code == 404
    assert client.post("/api/v1/meters/NOPE/retire", headers=admin.headers).status_code == 404


# --------------------------------------------------------------------------- retiring


def test_a_retired_meter_keeps_its_owner_but_takes_no_new_one(client, app, admin):
    owner = create_account(app, region="Pune-West", meters=("MTR-1",))
    other = create_account(app, region="Pune-West")
    _register("MTR-2", "Pune-West")
    response = client.post("/api/v1/meters/MTR-1/retire", headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["ownerId"]) == ("retired", str(owner.id))
    assert body["retiredAt"] is not None
    assert _audit("meter.retire") == [
        (admin.id, "ADMIN", "meter", "MTR-1", {"ownerId": str(owner.id)})
    ]
    # Its owner still sees it (and its history).
    assert client.get("/api/v1/meters/MTR-1", headers=owner.headers).get_json()["status"] == (
        "retired"
    )
    twice = client.post("/api/v1/meters/MTR-1/retire", headers=admin.headers)
    assert twice.status_code == 409
    assert twice.get_json()["error"]["code"] == "METER_RETIRED"
    refused = client.put(
        "/api/v1/meters/MTR-1/assignment",
        json={"userId": str(other.id), "reassign": True},
        headers=admin.headers,
    )
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "METER_RETIRED"
    assert _owner("MTR-1") == owner.id
    # A retired unassigned meter also takes no owner.
    assert client.post("/api/v1/meters/MTR-2/retire", headers=admin.headers).status_code == 200
    refused = client.put(
        "/api/v1/meters/MTR-2/assignment", json={"userId": str(other.id)}, headers=admin.headers
    )
    assert refused.status_code == 409
    assert _owner("MTR-2") is None
