"""Accounts: /users/me for everyone, reading for staff, management for admins (issue 3, §3)."""

from __future__ import annotations

import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest

from segs.services.accounts.passwords import Passwords
from tests import support
from tests.accounts import PASSWORD
from tests.accounts import create_account
from tests.support import execute
from tests.support import query
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

GOOD_PASSWORD = "new-secret-2024"


@pytest.fixture
def admin(app, clean_state):
    return create_account(app, role="ADMIN", region=None, email="root@example.test")


def _audit(action: str) -> list[tuple]:
    return query(
        "SELECT actor_id, actor_email, actor_role, entity_type, entity_id, details, ip_address "
        "FROM audit_log WHERE action = %s ORDER BY id",
        (action,),
    )


def _refresh_token(user_id: uuid.UUID) -> str:
    """Insert a live refresh token for the account, as a login would."""
    jti = uuid.uuid4().hex
    now = datetime.now(UTC)
    execute(
        "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s)",
        (jti, uuid.uuid4(), user_id, now, now + timedelta(days=7)),
    )
    return jti


# --------------------------------------------------------------------------- /users/me


def test_me_shows_the_callers_own_account(client, app, clean_state):
    user = create_account(
        app, region="Pune-West", meters=("MTR-B", "MTR-A"), timezone="Europe/London"
    )
    response = client.get("/api/v1/users/me", headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    created, updated = body.pop("createdAt"), body.pop("updatedAt")
    assert datetime.fromisoformat(created) == datetime.fromisoformat(updated)
    assert body == {
        "id": str(user.id),
        "email": user.email,
        "name": "Test User",
        "phone": None,
        "role": "USER",
        "region": "Pune-West",
        "timezone": "Europe/London",
        "status": "active",
        "suspendedReason": None,
        "emailVerified": True,
        "lastLoginAt": None,
        "meterIds": ["MTR-A", "MTR-B"],
    }
    assert "passwordHash" not in body and "password" not in body


@pytest.mark.parametrize("role", ["USER", "OPERATOR", "ADMIN"])
def test_me_for_every_role_and_not_without_a_token(client, app, clean_state, role):
    account = create_account(app, role=role)
    response = client.get("/api/v1/users/me", headers=account.headers)
    assert response.status_code == 200
    assert response.get_json()["role"] == role
    assert client.get("/api/v1/users/me").status_code == 401


def test_me_changes_own_name_phone_and_time_zone_and_is_audited(client, app, clean_state):
    user = create_account(app)
    response = client.patch(
        "/api/v1/users/me",
        json={"name": "Asha Rao", "phone": "+919812345678", "timezone": "Asia/Dubai"},
        headers=user.headers,
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["phone"], body["timezone"]) == (
        "Asha Rao",
        "+919812345678",
        "Asia/Dubai",
    )
    assert query("SELECT name, phone, timezone FROM users WHERE id = %s", (user.id,)) == [
        ("Asha Rao", "+919812345678", "Asia/Dubai")
    ]
    assert _audit("user.profile") == [
        (
            user.id,
            user.email,
            "USER",
            "user",
            str(user.id),
            {
                "changes": {
                    "name": {"from": "Test User", "to": "Asha Rao"},
                    "phone": {"from": None, "to": "+919812345678"},
                    "timezone": {"from": "Asia/Kolkata", "to": "Asia/Dubai"},
                }
            },
            "203.0.113.9",
        )
    ]
    # Sending the same values again changes nothing and records nothing.
    again = client.patch("/api/v1/users/me", json={"name": "Asha Rao"}, headers=user.headers)
    assert again.status_code == 200
    assert len(_audit("user.profile")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "ADMIN"}, "role"),
        ({"region": "Pune-East"}, "region"),
        ({"email": "other@example.test"}, "email"),
        ({"phone": "12-34"}, "phone"),
        ({"name": ""}, "name"),
    ],
)
def test_me_cannot_change_role_region_or_email(client, app, clean_state, body, field):
    user = create_account(app)
    response = client.patch("/api/v1/users/me", json=body, headers=user.headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]["json"]) == [field]
    assert scalar("SELECT role || region FROM users WHERE id = %s", (user.id,)) == "USERPune-West"


def test_me_rejects_an_unknown_time_zone(client, app, clean_state):
    user = create_account(app)
    response = client.patch(
        "/api/v1/users/me", json={"timezone": "Mars/Olympus"}, headers=user.headers
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"timezone": ["not an IANA time zone"]}


# --------------------------------------------------------------------------- reading accounts


def test_listing_accounts_needs_staff(client, app, clean_state):
    user = create_account(app)
    operator = create_account(app, role="OPERATOR", region=None)
    assert client.get("/api/v1/users").status_code == 401
    forbidden = client.get("/api/v1/users", headers=user.headers)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "FORBIDDEN"
    assert client.get("/api/v1/users", headers=operator.headers).status_code == 200
    assert client.get(f"/api/v1/users/{user.id}", headers=user.headers).status_code == 403
    assert client.get(f"/api/v1/users/{user.id}", headers=operator.headers).status_code == 200


def test_list_filters_pages_and_totals(client, app, admin):
    for index in range(5):
        create_account(app, region="Pune-West", email=f"pune{index}@example.test")
    create_account(app, region="Delhi-North", email="delhi@example.test")
    create_account(app, role="OPERATOR", region=None, email="ops@example.test")
    execute("UPDATE users SET status = 'suspended' WHERE email = 'pune4@example.test'")

    first = client.get("/api/v1/users?pageSize=3", headers=admin.headers).get_json()
    assert (first["total"], first["page"], first["pageSize"]) == (8, 1, 3)
    assert [item["email"] for item in first["items"]] == [
        "delhi@example.test",
        "ops@example.test",
        "pune0@example.test",
    ]
    last = client.get("/api/v1/users?pageSize=3&page=3", headers=admin.headers).get_json()
    assert [item["email"] for item in last["items"]] == ["pune4@example.test", "root@example.test"]
    assert last["total"] == 8
    beyond = client.get("/api/v1/users?pageSize=3&page=4", headers=admin.headers).get_json()
    assert (beyond["items"], beyond["total"]) == ([], 8)

    def emails(params: str) -> tuple[int, list[str]]:
        body = client.get(f"/api/v1/users?{params}", headers=admin.headers).get_json()
        return body["total"], [item["email"] for item in body["items"]]

    assert emails("region=Pune-West&status=active") == (
        4,
        [f"pune{index}@example.test" for index in range(4)],
    )
    assert emails("role=OPERATOR") == (1, ["ops@example.test"])
    assert emails("status=suspended") == (1, ["pune4@example.test"])
    assert emails("q=DELHI") == (1, ["delhi@example.test"])
    # LIKE wildcards in q are taken literally.
    assert emails("q=%25") == (0, [])


@pytest.mark.parametrize(
    "params",
    ["role=admin", "status=deleted", "page=0", "page=1000001", "pageSize=501", "q=", "q=a%00"],
)
def test_list_rejects_bad_filters(client, admin, params):
    response = client.get(f"/api/v1/users?{params}", headers=admin.headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_reading_an_unknown_or_deleted_account_is_404(client, app, admin):
    gone = create_account(app)
    execute("UPDATE users SET deleted_at = now() WHERE id = %s", (gone.id,))
    for user_id in (gone.id, uuid.uuid4()):
        response = client.get(f"/api/v1/users/{user_id}", headers=admin.headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "NOT_FOUND"
    assert client.get("/api/v1/users/not-a-uuid", headers=admin.headers).status_code == 404


# --------------------------------------------------------------------------- creating accounts


def test_admin_creates_an_account_that_can_log_in(client, app, admin):
    response = client.post(
        "/api/v1/users",
        json={
            "email": "New.Person@Example.TEST",
            "name": "New Person",
            "password": GOOD_PASSWORD,
            "role": "OPERATOR",
            "region": "Mumbai-North",
            "phone": "+441234567890",
        },
        headers=admin.headers,
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert response.status_code == 201
    body = response.get_json()
    new_id = uuid.UUID(body["id"])
    assert response.headers["Location"] == f"/api/v1/users/{new_id}"
    assert {key: body[key] for key in body if key not in ("id", "createdAt", "updatedAt")} == {
        "email": "new.person@example.test",
        "name": "New Person",
        "phone": "+441234567890",
        "role": "OPERATOR",
        "region": "Mumbai-North",
        "timezone": "Asia/Kolkata",
        "status": "active",
        "suspendedReason": None,
        "emailVerified": True,
        "lastLoginAt": None,
        "meterIds": [],
    }
    stored_hash, verified_at = query(
        "SELECT password_hash, email_verified_at FROM users WHERE id = %s", (new_id,)
    )[0]
    assert stored_hash.startswith("$argon2id$")
    assert Passwords(support.settings()).verify(stored_hash, GOOD_PASSWORD) is True
    assert verified_at is not None
    assert _audit("user.create") == [
        (
            admin.id,
            "root@example.test",
            "ADMIN",
            "user",
            str(new_id),
            {"email": "new.person@example.test", "role": "OPERATOR", "region": "Mumbai-North"},
            "198.51.100.7",
        )
    ]
    login = client.post(
        "/api/v1/auth/login", json={"email": "new.person@example.test", "password": GOOD_PASSWORD}
    )
    assert login.status_code == 200
    assert login.get_json()["user"]["id"] == str(new_id)


def test_only_admins_create_accounts(client, app, clean_state):
    operator = create_account(app, role="OPERATOR", region=None)
    body = {"email": "x@example.test", "name": "X", "password": GOOD_PASSWORD}
    assert client.post("/api/v1/users", json=body).status_code == 401
    assert client.post("/api/v1/users", json=body, headers=operator.headers).status_code == 403
    assert scalar("SELECT count(*) FROM users") == 1


def test_a_taken_email_is_409_until_its_account_is_deleted(client, app, admin):
    holder = create_account(app, email="taken@example.test")
    body = {"email": "TAKEN@example.test", "name": "Second", "password": GOOD_PASSWORD}
    conflict = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "EMAIL_TAKEN"
    assert client.delete(f"/api/v1/users/{holder.id}", headers=admin.headers).status_code == 204
    again = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert again.status_code == 201
    assert scalar("SELECT count(*) FROM users WHERE email = 'taken@example.test'") == 2


@pytest.mark.parametrize(
    ("changes", "details"),
    [
        ({"role": "admin"}, {"json": {"role": ["Must be one of: USER, OPERATOR, ADMIN."]}}),
        ({"region": "Atlantis"}, {"region": ["unknown region"]}),
        ({"timezone": "Not/AZone"}, {"timezone": ["not an IANA time zone"]}),
        (
            {"password": "lettersonly"},
            {"password": ["must contain a digit"]},
        ),
        (
            {"email": "abc123@example.test", "password": "ABC123@Example.test"},
            {"password": ["must not be the email address"]},
        ),
    ],
)
def test_creating_rejects_bad_fields(client, admin, changes, details):
    body = {"email": "x@example.test", "name": "X", "password": GOOD_PASSWORD, **changes}
    response = client.post("/api/v1/users", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == details
    assert scalar("SELECT count(*) FROM users") == 1


# --------------------------------------------------------------------------- changing accounts


def test_admin_changes_role_and_fields_each_audited(client, app, admin):
    user = create_account(app, region="Pune-West")
    response = client.patch(
        f"/api/v1/users/{user.id}",
        json={"role": "OPERATOR", "region": None, "name": "Promoted"},
        headers=admin.headers,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["role"], body["region"], body["name"]) == ("OPERATOR", None, "Promoted")
    assert [row[3:6] for row in _audit("user.role")] == [
        ("user", str(user.id), {"from": "USER", "to": "OPERATOR"})
    ]
    assert [row[5] for row in _audit("user.update")] == [
        {
            "changes": {
                "region": {"from": "Pune-West", "to": None},
                "name": {"from": "Test User", "to": "Promoted"},
            }
        }
    ]
    # The new role applies to the very next request with the old token.
    assert client.get("/api/v1/users", headers=user.headers).status_code == 200


def test_a_lowercase_role_is_422_not_500(client, app, admin):
    user = create_account(app)
    response = client.patch(
        f"/api/v1/users/{user.id}", json={"role": "operator"}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "json": {"role": ["Must be one of: USER, OPERATOR, ADMIN."]}
    }
    assert scalar("SELECT role FROM users WHERE id = %s", (user.id,)) == "USER"


def test_an_account_with_meters_keeps_role_and_region(client, app, admin):
    user = create_account(app, region="Pune-West", meters=("MTR-1", "MTR-2"))
    for changes in ({"region": "Pune-East"}, {"role": "OPERATOR"}, {"region": None}):
        response = client.patch(f"/api/v1/users/{user.id}", json=changes, headers=admin.headers)
        assert response.status_code == 409
        error = response.get_json()["error"]
        assert error["code"] == "OWNS_METERS"
        assert error["details"] == {"meterIds": ["MTR-1", "MTR-2"]}
    # Other fields change freely, and the same region is no change at all.
    fine = client.patch(
        f"/api/v1/users/{user.id}",
        json={"region": "Pune-West", "role": "USER", "timezone": "UTC"},
        headers=admin.headers,
    )
    assert fine.status_code == 200
    assert fine.get_json()["timezone"] == "UTC"
    assert _audit("user.role") == []


def test_an_admin_cannot_lock_themselves_out(client, admin):
    attempts = [
        client.patch(f"/api/v1/users/{admin.id}", json={"role": "USER"}, headers=admin.headers),
        client.post(
            f"/api/v1/users/{admin.id}/suspend", json={"reason": "oops"}, headers=admin.headers
        ),
        client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers),
    ]
    for response in attempts:
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "OWN_ACCOUNT"
    assert query("SELECT role, status, deleted_at FROM users WHERE id = %s", (admin.id,)) == [
        ("ADMIN", "active", None)
    ]
    # Changing their own name is fine.
    rename = client.patch(f"/api/v1/users/{admin.id}", json={"name": "Root"}, headers=admin.headers)
    assert rename.status_code == 200


def test_operators_cannot_change_accounts(client, app, clean_state):
    operator = create_account(app, role="OPERATOR", region=None)
    user = create_account(app)
    calls = [
        client.patch(f"/api/v1/users/{user.id}", json={"name": "X"}, headers=operator.headers),
        client.post(
            f"/api/v1/users/{user.id}/suspend", json={"reason": "x"}, headers=operator.headers
        ),
        client.post(f"/api/v1/users/{user.id}/activate", headers=operator.headers),
        client.delete(f"/api/v1/users/{user.id}", headers=operator.headers),
    ]
    assert [response.status_code for response in calls] == [403, 403, 403, 403]
    assert scalar("SELECT count(*) FROM audit_log") == 0


# --------------------------------------------------------------------------- suspend, delete


def _login(client, email: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.get_json()['accessToken']}"}


def test_suspension_stops_the_tokens_for_good_and_activation_lifts_it(client, app, admin):
    user = create_account(app)
    jti = _refresh_token(user.id)
    signed_in = _login(client, user.email)
    assert client.get("/api/v1/users/me", headers=signed_in).status_code == 200

    response = client.post(
        f"/api/v1/users/{user.id}/suspend",
        json={"reason": "unpaid invoices"},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["suspendedReason"]) == (
        "suspended",
        "unpaid invoices",
    )
    denied = client.get("/api/v1/users/me", headers=user.headers)
    assert denied.status_code == 401
    assert denied.get_json()["error"]["code"] == "ACCOUNT_UNAVAILABLE"
    assert scalar("SELECT revoked_at IS NOT NULL FROM refresh_tokens WHERE jti = %s", (jti,))
    assert [row[5] for row in _audit("user.suspend")] == [
        {"reason": "unpaid invoices", "refreshTokensRevoked": 2}
    ]
    again = client.post(
        f"/api/v1/users/{user.id}/suspend", json={"reason": "twice"}, headers=admin.headers
    )
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "ALREADY_SUSPENDED"

    lifted = client.post(f"/api/v1/users/{user.id}/activate", headers=admin.headers)
    assert lifted.status_code == 200
    assert (lifted.get_json()["status"], lifted.get_json()["suspendedReason"]) == ("active", None)
    assert [row[5] for row in _audit("user.activate")] == [{"suspendedReason": "unpaid invoices"}]
    # The token from before the suspension stays dead; a new login works.
    stale = client.get("/api/v1/users/me", headers=signed_in)
    assert (stale.status_code, stale.get_json()["error"]["code"]) == (401, "TOKEN_REVOKED")
    assert client.get("/api/v1/users/me", headers=_login(client, user.email)).status_code == 200
    twice = client.post(f"/api/v1/users/{user.id}/activate", headers=admin.headers)
    assert twice.status_code == 409
    assert twice.get_json()["error"]["code"] == "ALREADY_ACTIVE"


def test_suspending_needs_a_reason(client, app, admin):
    user = create_account(app)
    response = client.post(f"/api/v1/users/{user.id}/suspend", json={}, headers=admin.headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "json": {"reason": ["Missing data for required field."]}
    }


def test_deleting_is_soft_and_ends_everything_of_the_account(client, app, admin):
    user = create_account(app, region="Pune-West", meters=("MTR-7", "MTR-3"))
    jti = _refresh_token(user.id)
    response = client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    assert response.status_code == 204
    assert response.get_data() == b""

    # The row stays for the audit log, the meters stay registered but have no owner.
    assert scalar("SELECT deleted_at IS NOT NULL FROM users WHERE id = %s", (user.id,))
    assert query("SELECT meter_id, owner_id, assigned_at FROM meters ORDER BY 1") == [
        ("MTR-3", None, None),
        ("MTR-7", None, None),
    ]
    assert scalar("SELECT revoked_at IS NOT NULL FROM refresh_tokens WHERE jti = %s", (jti,))
    denied = client.get("/api/v1/users/me", headers=user.headers)
    assert denied.status_code == 401
    assert denied.get_json()["error"]["code"] == "ACCOUNT_UNAVAILABLE"
    assert [row[3:] for row in _audit("user.delete")] == [
        (
            "user",
            str(user.id),
            {
                "email": user.email,
                "unassignedMeterIds": ["MTR-3", "MTR-7"],
                "refreshTokensRevoked": 1,
            },
            "127.0.0.1",
        )
    ]
    gone = client.delete(f"/api/v1/users/{user.id}", headers=admin.headers)
    assert gone.status_code == 404
    listed = client.get("/api/v1/users", headers=admin.headers).get_json()
    assert [item["email"] for item in listed["items"]] == ["root@example.test"]
