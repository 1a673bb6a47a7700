"""Ingestion keys: every ingestion route needs one; admins and the CLI manage them (§3)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC
from datetime import datetime

import pytest

from segs.db import session_scope
from segs.domain.ingestion_keys import KeyScope
from segs.domain.ingestion_keys import key_digest
from segs.domain.ingestion_keys import new_plain_key
from segs.redis_client import get_redis
from segs.services.accounts.audit import SYSTEM
from segs.services.spine import registry_cache
from segs.services.spine.ingestion_keys import revoke_key
from segs.services.spine.registry_cache import RegistryCache
from tests.accounts import create_account
from tests.support import MICRO
from tests.support import REPO
from tests.support import ingestion_key
from tests.support import now_us
from tests.support import query
from tests.support import reading
from tests.support import scalar

pytestmark = [pytest.mark.integration, pytest.mark.api]

REGION = "Pune-West"
ROUTES = (
    "/telemetry",
    "/telemetry/batch",
    "/api/v1/{key}/telemetry",
    "/api/v1/{key}/telemetry/batch",
)


@pytest.fixture
def ts(clean_state) -> int:
    now = now_us()
    return now - now % MICRO - 120 * MICRO


def body_for(route: str, readings: list[dict]) -> str:
    return json.dumps(readings[0] if route.endswith("/telemetry") else readings)


def post(client, route: str, key: str | None, readings: list[dict]):
    """POST *readings* to *route*: the key in the path for /api/v1 routes, else as a header."""
    if "{key}" in route:
        return client.post(
            route.format(key=key or ""),
            data=body_for(route, readings),
            content_type="application/json",
        )
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return client.post(
        route, data=body_for(route, readings), content_type="application/json", headers=headers
    )


def revoked_key() -> str:
    key = ingestion_key(regions=("Pune-East",))
    key_id = scalar("SELECT id FROM ingestion_keys WHERE key_digest = %s", (key_digest(key),))
    with session_scope() as session:
        revoke_key(session, get_redis(), SYSTEM, key_id, datetime.now(UTC))
    return key


@pytest.mark.parametrize("route", ROUTES)
def test_every_ingestion_route_refuses_requests_without_a_usable_key(app, client, ts, route):
    readings = [reading("KEY-1", REGION, ts, 1.0)]
    api_token = create_account(app, role="ADMIN", region=None).token
    cases = {
        "no key": (None, "INGESTION_KEY_REQUIRED"),
        "wrong key": (new_plain_key(), "INGESTION_KEY_INVALID"),
        "malformed key": ("segs_not-a-key", "INGESTION_KEY_INVALID"),
        "revoked key": (revoked_key(), "INGESTION_KEY_INVALID"),
        "an API token": (api_token, "INGESTION_KEY_REQUIRED"),
    }
    for case, (key, code) in cases.items():
        if "{key}" in route and key is None:
            # No key in a path that needs one: no such route.
            response = client.post(route.format(key=""), data=body_for(route, readings))
            assert response.status_code == 404, case
            continue
        response = post(client, route, key, readings)
        assert response.status_code == 401, case
        assert response.get_json()["error"]["code"] == code, case
    assert scalar("SELECT count(*) FROM meters") == 0
    # The same request with a good key goes through.
    assert post(client, route, ingestion_key(), readings).status_code == 202


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1f", "\x7f", "\u0085", "\n"])
@pytest.mark.parametrize("route", [route for route in ROUTES if "{key}" in route])
def test_a_key_in_the_path_with_control_characters_is_refused_before_any_lookup(
    client, ts, route, character, monkeypatch
):
    from segs import ingestion_client

    looked_up = []
    monkeypatch.setattr(ingestion_client, "scope_by_digest", lambda *args: looked_up.append(args))
    key = ingestion_key()
    response = post(client, route, key[:20] + character + key[21:], [reading("K", REGION, ts, 1.0)])
    assert (response.status_code, response.get_json()["error"]["code"]) == (
        401,
        "INGESTION_KEY_INVALID",
    )
    assert looked_up == []


@pytest.mark.parametrize("route", ROUTES)
def test_readings_outside_the_keys_scope_get_a_per_item_error(client, ts, route):
    east_only = ingestion_key(regions=("Pune-East",))
    response = post(client, route, east_only, [reading("KEY-W", REGION, ts, 1.0)])
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"index": 0, "field": "region", "message": "this key does not cover region Pune-West"}
    ]
    device = ingestion_key(meter="KEY-DEVICE", regions=(REGION,))
    response = post(client, route, device, [reading("KEY-OTHER", REGION, ts, 1.0)])
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"index": 0, "field": "meterId", "message": "this key sends readings of KEY-DEVICE only"}
    ]
    assert post(client, route, device, [reading("KEY-DEVICE", REGION, ts, 1.0)]).status_code == 202


def test_a_batch_mixing_scopes_keeps_what_the_key_may_send(client, ts):
    west = ingestion_key(regions=(REGION,))
    batch = [reading("KEY-1", REGION, ts, 1.0), reading("KEY-2", "Pune-East", ts, 2.0)]
    response = post(client, "/telemetry/batch", west, batch)
    assert response.status_code == 202
    assert response.get_json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 1,
        "errors": [
            {"index": 1, "field": "region", "message": "this key does not cover region Pune-East"}
        ],
    }
    # Only the covered meter was registered.
    assert query("SELECT meter_id, region FROM meters") == [("KEY-1", REGION)]


def admin_headers(app):
    return create_account(app, role="ADMIN", region=None).headers


def test_admins_create_list_and_revoke_keys_and_each_change_is_audited(app, client, ts):
    headers = admin_headers(app)
    created = client.post(
        "/api/v1/ingestion-keys",
        json={"name": "Head-end West", "regions": [REGION], "rateLimit": "50 per second"},
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    key = body["key"]
    assert body["keyPrefix"] == key[:12]
    assert (body["kind"], body["regions"], body["status"]) == ("head-end", [REGION], "active")
    assert created.headers["Location"].endswith(f"/api/v1/ingestion-keys/{body['id']}")
    # Stored hashed: nowhere in the database, nor in any listing, is the key itself.
    assert scalar("SELECT key_digest FROM ingestion_keys") == key_digest(key)
    listed = client.get("/api/v1/ingestion-keys", headers=headers).get_json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    assert key not in json.dumps(listed)
    assert "key" not in client.get(created.headers["Location"], headers=headers).get_json()
    assert (
        post(client, "/telemetry/batch", key, [reading("KEY-1", REGION, ts, 1.0)]).status_code
        == 202
    )

    revoked = client.post(f"/api/v1/ingestion-keys/{body['id']}/revoke", headers=headers)
    assert (revoked.status_code, revoked.get_json()["status"]) == (200, "revoked")
    again = post(client, "/telemetry/batch", key, [reading("KEY-1", REGION, ts + MICRO, 1.0)])
    assert again.status_code == 401
    assert (
        client.post(f"/api/v1/ingestion-keys/{body['id']}/revoke", headers=headers).status_code
        == 409
    )
    assert query(
        "SELECT action, entity_id FROM audit_log WHERE entity_type = 'ingestion_key' ORDER BY at"
    ) == [("ingestion_key.create", body["id"]), ("ingestion_key.revoke", body["id"])]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x", "regions": ["Atlantis"]}, "regions"),
        ({"name": "x", "meterId": "NOT-REGISTERED"}, "meterId"),
        ({"name": "x", "meterId": "a/b"}, "meterId"),
        ({"name": "x", "meterId": "M1", "regions": [REGION]}, "regions"),
        ({"name": "x", "rateLimit": "lots"}, "rateLimit"),
        ({"name": "x", "registerIn": REGION}, "registerIn"),
    ],
)
def test_a_bad_key_request_names_the_field(app, client, clean_state, payload, field):
    response = client.post("/api/v1/ingestion-keys", json=payload, headers=admin_headers(app))
    assert response.status_code == 422, response.get_json()
    details = response.get_json()["error"]["details"]
    assert field in (details.get("json", details) if isinstance(details, dict) else {}), details
    assert scalar("SELECT count(*) FROM ingestion_keys") == 0


def test_a_device_key_registers_its_meter_when_asked(app, client, ts):
    response = client.post(
        "/api/v1/ingestion-keys",
        json={"name": "meter 7", "meterId": "KEY-M7", "registerIn": REGION},
        headers=admin_headers(app),
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["kind"] == "device"
    assert query("SELECT meter_id, region FROM meters") == [("KEY-M7", REGION)]
    key = response.get_json()["key"]
    assert post(client, "/telemetry", key, [reading("KEY-M7", REGION, ts, 1.0)]).status_code == 202


def test_during_a_rotation_both_keys_work_then_only_the_new_one(app, client, ts):
    headers = admin_headers(app)
    old = client.post("/api/v1/ingestion-keys", json={"name": "gateway"}, headers=headers)
    old_key, old_id = old.get_json()["key"], old.get_json()["id"]
    rotated = client.post(
        f"/api/v1/ingestion-keys/{old_id}/rotate", json={"overlapSeconds": 3600}, headers=headers
    )
    assert rotated.status_code == 201, rotated.get_json()
    new = rotated.get_json()
    assert (new["name"], new["replacesId"], new["status"]) == ("gateway", old_id, "active")
    assert new["key"] != old_key
    shown = client.get(f"/api/v1/ingestion-keys/{old_id}", headers=headers).get_json()
    assert shown["status"] == "expiring"
    for index, key in enumerate((old_key, new["key"])):
        batch = [reading("KEY-R", REGION, ts + index * MICRO, 1.0)]
        assert post(client, "/telemetry/batch", key, batch).status_code == 202
    # A rotated key is not rotated again; its successor is.
    assert (
        client.post(f"/api/v1/ingestion-keys/{old_id}/rotate", json={}, headers=headers).status_code
        == 409
    )
    # Rotating with no overlap ends the old key at once.
    latest = client.post(
        f"/api/v1/ingestion-keys/{new['id']}/rotate", json={"overlapSeconds": 0}, headers=headers
    )
    assert (
        post(
            client, "/telemetry/batch", new["key"], [reading("KEY-R", REGION, ts + 5 * MICRO, 1.0)]
        ).status_code
        == 401
    )
    latest_key = latest.get_json()["key"]
    assert (
        post(
            client, "/telemetry/batch", latest_key, [reading("KEY-R", REGION, ts + 6 * MICRO, 1.0)]
        ).status_code
        == 202
    )
    assert [
        action
        for (action,) in query(
            "SELECT action FROM audit_log WHERE entity_type = 'ingestion_key' ORDER BY at"
        )
    ] == ["ingestion_key.create", "ingestion_key.rotate", "ingestion_key.rotate"]


def test_an_overlap_ends_by_itself(app, client, ts):
    headers = admin_headers(app)
    old = client.post("/api/v1/ingestion-keys", json={"name": "short"}, headers=headers).get_json()
    client.post(
        f"/api/v1/ingestion-keys/{old['id']}/rotate", json={"overlapSeconds": 1}, headers=headers
    )
    assert (
        post(
            client, "/telemetry/batch", old["key"], [reading("KEY-S", REGION, ts, 1.0)]
        ).status_code
        == 202
    )
    time.sleep(1.2)
    assert (
        post(
            client, "/telemetry/batch", old["key"], [reading("KEY-S", REGION, ts + MICRO, 1.0)]
        ).status_code
        == 401
    )


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(app, client, ts):
    headers = admin_headers(app)
    slow = client.post(
        "/api/v1/ingestion-keys",
        json={"name": "slow", "rateLimit": "2 per minute"},
        headers=headers,
    ).get_json()["key"]
    answers = [
        post(client, "/telemetry/batch", slow, [reading("KEY-L", REGION, ts + i * MICRO, 1.0)])
        for i in range(3)
    ]
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[2].get_json()["error"]["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    # Limits are per key: another key is not held back.
    assert (
        post(
            client, "/telemetry/batch", ingestion_key(), [reading("KEY-L2", REGION, ts, 1.0)]
        ).status_code
        == 202
    )


def test_the_cli_prints_the_key_alone_on_its_last_line(client, ts):
    # As an operator runs it: a development environment with no JWT_SECRET_KEY set (and
    # without the test suite's testing-only webhook settings, which development refuses).
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "JWT_SECRET_KEY" and not name.startswith("SEGS_WEBHOOK_")
    }
    env["SEGS_ENV"] = "development"
    created = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "flask"),
            "--app",
            "segs.web",
            "create-ingestion-key",
            "--name",
            "from the CLI",
            "--region",
            REGION,
            "--region",
            "Pune-East",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("segs_") and len(key) == 48
    assert query("SELECT name, regions FROM ingestion_keys") == [
        ("from the CLI", ["Pune-East", REGION])
    ]
    assert (
        post(client, "/telemetry/batch", key, [reading("KEY-C", REGION, ts, 1.0)]).status_code
        == 202
    )
    assert query("SELECT action, actor_id FROM audit_log") == [("ingestion_key.create", None)]


def other_process_cache(check_every_s: float) -> RegistryCache:
    """A cache as another API process holds it: a change made here does not touch it directly."""
    cache = RegistryCache(
        get_redis(), max_age_s=3600, meter_limit=1000, check_every_s=check_every_s
    )
    registry_cache._local_caches.discard(cache)
    return cache


def revoke_the_key() -> None:
    key_id = scalar("SELECT id FROM ingestion_keys")
    with session_scope() as session:
        revoke_key(session, get_redis(), SYSTEM, key_id, datetime.now(UTC))


def test_a_revocation_reaches_every_process_within_the_check_interval(clean_state):
    ingestion_key()
    here = RegistryCache(get_redis(), max_age_s=3600, meter_limit=1000, check_every_s=3600)
    elsewhere = other_process_cache(check_every_s=0.5)
    for cache in (here, elsewhere):
        cache.sync()
        cache.remember_key("digest", KeyScope("cached", "cached"))
        cache.remember_meters({"M": REGION})
    revoke_the_key()
    # The process that made the change starts over at once, whatever its interval.
    assert here.keys == {} and here.meters == {}
    # Another process, within its interval: not yet; after it: at its next sync.
    elsewhere.sync()
    assert "digest" in elsewhere.keys
    time.sleep(0.6)
    elsewhere.sync()
    assert elsewhere.keys == {} and elsewhere.meters == {}


def test_the_caches_start_over_after_their_age_limit(clean_state):
    cache = other_process_cache(check_every_s=0)
    cache.max_age_s = 0.2
    cache.sync()
    cache.remember_meters({"M": REGION})
    cache.sync()
    assert cache.meters == {"M": REGION}
    time.sleep(0.3)
    cache.sync()
    assert cache.meters == {}


def test_unknown_keys_are_looked_up_once(client, ts, monkeypatch):
    from segs import ingestion_client

    looked_up = []
    real = ingestion_client.scope_by_digest

    def counting(session, digest, now):
        looked_up.append(digest)
        return real(session, digest, now)

    monkeypatch.setattr(ingestion_client, "scope_by_digest", counting)
    stranger = new_plain_key()
    for index in range(3):
        batch = [reading("KEY-U", REGION, ts + index * MICRO, 1.0)]
        assert post(client, "/telemetry/batch", stranger, batch).status_code == 401
    assert looked_up == [key_digest(stranger)]
