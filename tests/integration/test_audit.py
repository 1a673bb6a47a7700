"""The audit log: every admin and operator change is recorded, and admins query it (§6)."""

from __future__ import annotations

import pytest

from tests.accounts import create_account
from tests.support import execute
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]


@pytest.fixture
def admin(app, clean_state):
    return create_account(app, role="ADMIN", region=None, email="root@example.test")


def _entry(at: str, action: str, entity_type: str, entity_id: str, actor=None) -> None:
    execute(
        "INSERT INTO audit_log (at, actor_id, actor_email, actor_role, action, entity_type, "
        "entity_id, details, ip_address) VALUES (%s, %s, %s, %s, %s, %s, %s, '{}', NULL)",
        (
            at,
            actor.id if actor else None,
            actor.email if actor else None,
            actor.role if actor else None,
            action,
            entity_type,
            entity_id,
        ),
    )


def test_only_admins_read_the_log(client, app, admin):
    for role in ("USER", "OPERATOR"):
        account = create_account(app, role=role)
        assert client.get("/api/v1/audit-log", headers=account.headers).status_code == 403
    assert client.get("/api/v1/audit-log").status_code == 401
    assert client.get("/api/v1/audit-log", headers=admin.headers).status_code == 200


def test_admin_actions_appear_newest_first_with_every_field(client, app, admin):
    user = create_account(app, region="Pune-West")
    client.post(
        "/api/v1/meters",
        json={"meterId": "MTR-1", "region": "Pune-West"},
        headers=admin.headers,
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )
    client.put(
        "/api/v1/meters/MTR-1/assignment",
        json={"userId": str(user.id)},
        headers=admin.headers,
        environ_base={"REMOTE_ADDR": "192.0.2.11"},
    )
    response = client.get("/api/v1/audit-log", headers=admin.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["total"], body["page"], body["pageSize"]) == (2, 1, 50)
    newest, oldest = body["items"]
    assert newest["id"] > oldest["id"]
    assert newest["at"] >= oldest["at"]
    assert {key: newest[key] for key in newest if key not in ("id", "at")} == {
        "actorId": str(admin.id),
        "actorEmail": "root@example.test",
        "actorRole": "ADMIN",
        "action": "meter.assign",
        "entityType": "meter",
        "entityId": "MTR-1",
        "details": {"userId": str(user.id), "previousOwnerId": None},
        "ipAddress": "192.0.2.11",
    }
    assert (oldest["action"], oldest["ipAddress"], oldest["details"]) == (
        "meter.create",
        "192.0.2.10",
        {"region": "Pune-West"},
    )


def test_operator_changes_are_recorded_too(client, app, admin):
    operator = create_account(app, role="OPERATOR", region=None)
    client.patch("/api/v1/users/me", json={"phone": "+911234567890"}, headers=operator.headers)
    items = client.get("/api/v1/audit-log", headers=admin.headers).get_json()["items"]
    assert [(item["actorRole"], item["action"], item["entityId"]) for item in items] == [
        ("OPERATOR", "user.profile", str(operator.id))
    ]


def test_a_refused_change_leaves_no_entry(client, app, admin):
    user = create_account(app, region="Pune-East")
    execute("INSERT INTO meters (meter_id, region) VALUES ('MTR-W', 'Pune-West')")
    refused = client.put(
        "/api/v1/meters/MTR-W/assignment", json={"userId": str(user.id)}, headers=admin.headers
    )
    assert refused.status_code == 422
    assert client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers).status_code == 409
    assert scalar("SELECT count(*) FROM audit_log") == 0


def test_filters_and_pages(client, app, admin):
    other = create_account(app, role="ADMIN", region=None, email="other@example.test")
    _entry("2026-01-01T10:00:00Z", "user.create", "user", "u-1", admin)
    _entry("2026-01-01T11:00:00Z", "user.suspend", "user", "u-1", other)
    _entry("2026-01-01T12:00:00Z", "meter.retire", "meter", "MTR-1", admin)
    _entry("2026-01-01T13:00:00Z", "meter.create", "meter", "MTR-2")
    _entry("2026-01-01T14:00:00Z", "meter.assign", "meter", "MTR-1", other)

    def actions(params: str = "") -> tuple[int, list[str]]:
        response = client.get(f"/api/v1/audit-log?{params}", headers=admin.headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        return body["total"], [item["action"] for item in body["items"]]

    assert actions() == (
        5,
        ["meter.assign", "meter.create", "meter.retire", "user.suspend", "user.create"],
    )
    assert actions("pageSize=2&page=2") == (5, ["meter.retire", "user.suspend"])
    assert actions(f"actorId={admin.id}") == (2, ["meter.retire", "user.create"])
    assert actions("action=user.suspend") == (1, ["user.suspend"])
    assert actions("entityType=meter&entityId=MTR-1") == (2, ["meter.assign", "meter.retire"])
    # since is inclusive, until exclusive; a time without an offset is UTC.
    assert actions("since=2026-01-01T11:00:00Z&until=2026-01-01T13:00:00") == (
        2,
        ["meter.retire", "user.suspend"],
    )
    assert actions("since=2026-01-01T17:30:00%2B05:30") == (
        3,
        ["meter.assign", "meter.create", "meter.retire"],
    )
    system = client.get("/api/v1/audit-log?entityId=MTR-2", headers=admin.headers).get_json()
    assert (system["items"][0]["actorId"], system["items"][0]["actorRole"]) == (None, None)


@pytest.mark.parametrize("params", ["actorId=someone", "since=yesterday", "page=0"])
def test_bad_filters_are_422(client, admin, params):
    response = client.get(f"/api/v1/audit-log?{params}", headers=admin.headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"
