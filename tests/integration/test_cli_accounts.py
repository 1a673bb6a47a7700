"""``flask --app segs.web create-admin | create-user | seed-demo``: accounts that really log in."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.accounts import create_account
from tests.support import execute
from tests.support import query
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

PASSWORD = "first-admin-2024"
DEMO_PASSWORD = "demo-password-77"
DEMO_METERS = {
    "demo.mumbai@example.com": ["MTR-00000001", "MTR-00000011"],
    "demo.delhi@example.com": ["MTR-00000003", "MTR-00000013"],
    "demo.pune@example.com": ["MTR-00000008", "MTR-00000018"],
}
DEMO_ROLES = {
    "demo.admin@example.com": "ADMIN",
    "demo.operator@example.com": "OPERATOR",
    **dict.fromkeys(DEMO_METERS, "USER"),
}


@pytest.fixture
def runner(app, clean_state):
    return app.test_cli_runner()


def _login(client, email: str, password: str):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_create_admin_makes_an_admin_who_logs_in(runner, client):
    result = runner.invoke(
        args=["create-admin", "--email", "Root@Example.com", "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"created ADMIN root@example\.com \(id [0-9a-f-]{36}\)\n", result.output)
    assert query("SELECT role, name, region, status FROM users") == [
        ("ADMIN", "Administrator", None, "active")
    ]

    login = _login(client, "root@example.com", PASSWORD)
    assert login.status_code == 200, login.get_json()
    token = login.get_json()["accessToken"]
    # The new admin can use admin endpoints at once.
    stats = client.get("/api/v1/admin/stats", headers={"Authorization": f"Bearer {token}"})
    assert stats.status_code == 200

    # The system made the account: the entry has no actor.
    assert query(
        "SELECT actor_id, actor_email, actor_role, action, entity_type, details, ip_address "
        "FROM audit_log"
    ) == [
        (
            None,
            None,
            None,
            "user.create",
            "user",
            {"email": "root@example.com", "role": "ADMIN", "region": None},
            None,
        )
    ]


def test_create_admin_asks_for_the_password_when_not_given(runner, client):
    result = runner.invoke(
        args=["create-admin", "--email", "root@example.com", "--name", "Ops Lead"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert scalar("SELECT name FROM users") == "Ops Lead"
    assert _login(client, "root@example.com", PASSWORD).status_code == 200


def test_create_admin_refuses_a_taken_email_or_a_weak_password(runner, app):
    create_account(app, role="USER", email="root@example.com")
    taken = runner.invoke(
        args=["create-admin", "--email", "root@example.com", "--password", PASSWORD]
    )
    assert taken.exit_code == 1
    assert taken.output == "Error: an account with the email root@example.com exists\n"

    weak = runner.invoke(args=["create-admin", "--email", "new@example.com", "--password", "short"])
    assert weak.exit_code == 1
    assert weak.output == (
        "Error: the password is not acceptable - password: must be at least 10 characters "
        "long; must contain a digit\n"
    )
    bad_email = runner.invoke(args=["create-admin", "--email", "nobody", "--password", PASSWORD])
    assert bad_email.exit_code == 2
    assert "'nobody' is not an email address" in bad_email.output
    assert scalar("SELECT count(*) FROM users") == 1
    assert scalar("SELECT count(*) FROM audit_log") == 0


def test_create_user_of_any_role(runner, client):
    result = runner.invoke(
        args=[
            "create-user",
            "--email",
            "asha@example.com",
            "--role",
            "USER",
            "--region",
            "Pune-West",
            "--timezone",
            "Asia/Dubai",
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    assert query("SELECT role, name, region, timezone FROM users") == [
        ("USER", "asha", "Pune-West", "Asia/Dubai")
    ]
    assert _login(client, "asha@example.com", PASSWORD).status_code == 200

    lowercase = runner.invoke(
        args=["create-user", "--email", "x@example.com", "--role", "admin", "--password", PASSWORD]
    )
    assert lowercase.exit_code == 2
    unknown_region = runner.invoke(
        args=[
            "create-user",
            "--email",
            "x@example.com",
            "--region",
            "Atlantis",
            "--password",
            PASSWORD,
        ]
    )
    assert unknown_region.exit_code == 1
    assert unknown_region.output == "Error: unknown region 'Atlantis' - region: unknown region\n"


def test_seed_demo_accounts_log_in_and_customers_own_their_meters(runner, client):
    result = runner.invoke(args=["seed-demo", "--password", DEMO_PASSWORD])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"demo accounts, all with the password {DEMO_PASSWORD}",
        "  ADMIN    demo.admin@example.com       created",
        "  OPERATOR demo.operator@example.com    created",
        "  USER     demo.mumbai@example.com      created  Mumbai-North: MTR-00000001, MTR-00000011",
        "  USER     demo.delhi@example.com       created  Delhi-North: MTR-00000003, MTR-00000013",
        "  USER     demo.pune@example.com        created  Pune-West: MTR-00000008, MTR-00000018",
        'log in with POST /api/v1/auth/login {"email": "...", "password": "..."}',
    ]
    for email, role in DEMO_ROLES.items():
        login = _login(client, email, DEMO_PASSWORD)
        assert login.status_code == 200, (email, login.get_json())
        assert login.get_json()["user"]["role"] == role
        headers = {"Authorization": f"Bearer {login.get_json()['accessToken']}"}
        meters = client.get("/api/v1/meters", headers=headers).get_json()
        if role == "USER":
            assert [item["meterId"] for item in meters["items"]] == DEMO_METERS[email]
        else:
            assert meters["total"] == 6
    assert query(
        "SELECT m.meter_id, m.region, u.region FROM meters m JOIN users u ON u.id = m.owner_id "
        "ORDER BY 1"
    ) == [
        ("MTR-00000001", "Mumbai-North", "Mumbai-North"),
        ("MTR-00000003", "Delhi-North", "Delhi-North"),
        ("MTR-00000008", "Pune-West", "Pune-West"),
        ("MTR-00000011", "Mumbai-North", "Mumbai-North"),
        ("MTR-00000013", "Delhi-North", "Delhi-North"),
        ("MTR-00000018", "Pune-West", "Pune-West"),
    ]
    assert query(
        "SELECT action, count(*) FROM audit_log WHERE actor_id IS NULL GROUP BY 1 ORDER BY 1"
    ) == [("meter.assign", 6), ("meter.create", 6), ("user.create", 5)]


def test_seeding_again_creates_nothing_twice_and_the_new_password_works(runner, client):
    assert runner.invoke(args=["seed-demo", "--password", DEMO_PASSWORD]).exit_code == 0
    execute(
        "UPDATE users SET status = 'suspended', suspended_reason = 'x' "
        "WHERE email = 'demo.pune@example.com'"
    )
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    password = re.match(r"demo accounts, all with the password (\S+)\n", again.output).group(1)
    assert password != DEMO_PASSWORD
    assert again.output.count("refreshed") == 5
    assert scalar("SELECT count(*) FROM users") == 5
    assert scalar("SELECT count(*) FROM meters") == 6
    assert _login(client, "demo.pune@example.com", password).status_code == 200
    assert _login(client, "demo.admin@example.com", DEMO_PASSWORD).status_code == 401
    assert query(
        "SELECT details FROM audit_log WHERE action = 'user.demo_reset' AND entity_id = "
        "(SELECT id::text FROM users WHERE email = 'demo.pune@example.com')"
    ) == [({"passwordReset": True, "verified": False, "reactivated": True},)]
    assert scalar("SELECT count(*) FROM audit_log WHERE action = 'meter.assign'") == 6


def test_seed_demo_leaves_a_meter_someone_else_owns(runner, app):
    owner = create_account(app, region="Pune-West", meters=("MTR-00000008",))
    result = runner.invoke(args=["seed-demo", "--password", DEMO_PASSWORD])
    assert result.exit_code == 0, result.output
    assert "  USER     demo.pune@example.com        created  Pune-West: MTR-00000018" in (
        result.output
    )
    assert (
        "    not assigned MTR-00000008: meter MTR-00000008 is assigned to another account; "
        "unassign it first or reassign" in result.output
    )
    assert scalar("SELECT owner_id FROM meters WHERE meter_id = 'MTR-00000008'") == owner.id


def test_seed_demo_refuses_a_weak_password_or_production(app, runner, monkeypatch):
    weak = runner.invoke(args=["seed-demo", "--password", "password"])
    assert weak.exit_code == 1
    assert "must contain a digit" in weak.output
    assert scalar("SELECT count(*) FROM users") == 0

    production = dataclasses.replace(app.config["SEGS_SETTINGS"], environment="production")
    monkeypatch.setitem(app.config, "SEGS_SETTINGS", production)
    refused = runner.invoke(args=["seed-demo", "--password", DEMO_PASSWORD])
    assert refused.exit_code == 1
    assert refused.output == "Error: seed-demo does not run with SEGS_ENV=production\n"
    assert scalar("SELECT count(*) FROM users") == 0
