"""Abuse limits on the auth endpoints, on the test Redis: failed logins delay the client that
fails (not the account's owner), each flow has its own budget per account and client address,
every auth request is limited per client address, and with Redis down nothing is let through."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from segs.web import create_app
from tests import support
from tests.accounts import PASSWORD
from tests.accounts import create_account
from tests.support import REPO
from tests.support import redis_client
from tests.support import scalar

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
FORGOT = "/api/v1/auth/forgot-password"
FROM_ADDRESS = "too many account requests from this address; try again later"
FOR_ACCOUNT = "too many requests for this account; try again later"
FAILED_HERE = "too many failed logins for this account from here; try again later"


def limited_client(**limits):
    """A client of an app whose auth limits are *limits* (the rest as configured)."""
    app = create_app(dataclasses.replace(support.settings(), **limits))
    return app, app.test_client()


def from_ip(address: str) -> dict[str, dict[str, str]]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def assert_too_many(response, message: str, window_s: int) -> int:
    assert response.status_code == 429, response.get_json()
    assert response.get_json() == {
        "error": {"code": "TOO_MANY_REQUESTS", "message": message, "details": None}
    }
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= window_s
    return retry_after


def test_a_strangers_failures_delay_the_stranger_not_the_owner(client, app, clean_state):
    create_account(app, email="target@example.test")
    wrong = {"email": "target@example.test", "password": "wrong-password-1"}
    right = {"email": "Target@Example.test", "password": PASSWORD}
    # SEGS_LOGIN_FREE_FAILURES_PER_CLIENT (5) free tries from the stranger's address...
    for attempt in range(1, 6):
        response = client.post(LOGIN, json=wrong, **from_ip("203.0.113.7"))
        assert response.status_code == 401, attempt
        assert response.get_json()["error"]["code"] == "INVALID_CREDENTIALS"
    # ...then it waits 1 s, then 2 s: even the right password is not checked meanwhile.
    assert assert_too_many(client.post(LOGIN, json=right, **from_ip("203.0.113.7")), FAILED_HERE, 1)
    time.sleep(1.1)
    assert client.post(LOGIN, json=wrong, **from_ip("203.0.113.7")).status_code == 401
    assert (
        assert_too_many(client.post(LOGIN, json=wrong, **from_ip("203.0.113.7")), FAILED_HERE, 2)
        == 2
    )

    # The owner, from their own address, logs in at once, any spelling of the address.
    assert client.post(LOGIN, json=right, **from_ip("198.51.100.20")).status_code == 200


def test_failed_logins_are_not_forgotten_when_redis_loses_its_memory(client, app, clean_state):
    """PostgreSQL holds the failures too: a Redis restart hands a guesser no fresh tries."""
    create_account(app, email="kept@example.test")
    wrong = {"email": "kept@example.test", "password": "wrong-password-1"}
    for _ in range(5):
        assert client.post(LOGIN, json=wrong, **from_ip("203.0.113.9")).status_code == 401
    assert_too_many(client.post(LOGIN, json=wrong, **from_ip("203.0.113.9")), FAILED_HERE, 1)

    redis_client().flushdb()
    assert_too_many(client.post(LOGIN, json=wrong, **from_ip("203.0.113.9")), FAILED_HERE, 1)
    assert scalar("SELECT count FROM login_failures WHERE key LIKE '%:203.0.113.9'") == 5
    # A success from the owner's address clears that address's count, in both places.
    right = {"email": "kept@example.test", "password": PASSWORD}
    assert client.post(LOGIN, json=right, **from_ip("198.51.100.21")).status_code == 200
    assert scalar("SELECT count(*) FROM login_failures WHERE key LIKE '%:198.51.100.21'") == 0


def test_a_hostile_client_address_is_only_counted(client, app, clean_state):
    """Behind a proxy the address comes from a header: NUL, control characters and 5,000
    characters are counted like any address, never a 500."""
    create_account(app, email="odd@example.test")
    wrong = {"email": "odd@example.test", "password": "wrong-password-1"}
    for address in ("\x00\x01\x1b[31m", "9" * 5000):
        response = client.post(LOGIN, json=wrong, **from_ip(address))
        assert response.status_code == 401, response.get_json()
    assert scalar("SELECT max(length(key)) FROM login_failures") <= 200


def test_failures_spread_over_many_addresses_slow_the_account_briefly(clean_state):
    app, client = limited_client(login_free_failures_per_account=4)
    create_account(app, email="spread@example.test")
    wrong = {"email": "spread@example.test", "password": "wrong-password-1"}
    for number in range(4):
        assert client.post(LOGIN, json=wrong, **from_ip(f"203.0.113.{number}")).status_code == 401
    # Every address now waits a second (at most SEGS_LOGIN_MAX_DELAY_PER_ACCOUNT_S), no more.
    right = {"email": "spread@example.test", "password": PASSWORD}
    assert_too_many(client.post(LOGIN, json=right, **from_ip("198.51.100.20")), FAILED_HERE, 1)
    time.sleep(1.1)
    assert client.post(LOGIN, json=right, **from_ip("198.51.100.20")).status_code == 200


def test_each_flow_has_its_own_budget_per_account_and_address(clean_state):
    app, client = limited_client(rate_limit_auth_per_account="3 per minute")
    create_account(app, email="victim@example.test")
    login = {"email": "victim@example.test", "password": PASSWORD}
    for _ in range(3):
        assert client.post(LOGIN, json=login, **from_ip("203.0.113.9")).status_code == 200
    assert_too_many(client.post(LOGIN, json=login, **from_ip("203.0.113.9")), FOR_ACCOUNT, 60)
    # Password reset does not spend the login budget...
    for _ in range(3):
        response = client.post(
            FORGOT, json={"email": "VICTIM@example.test"}, **from_ip("203.0.113.9")
        )
        assert response.status_code == 202
    response = client.post(FORGOT, json={"email": "victim@example.test"}, **from_ip("203.0.113.9"))
    assert_too_many(response, FOR_ACCOUNT, 60)
    # ...and a stranger spending an account's budget does not spend the owner's.
    response = client.post(FORGOT, json={"email": "victim@example.test"}, **from_ip("198.51.100.1"))
    assert response.status_code == 202
    assert client.post(LOGIN, json=login, **from_ip("198.51.100.1")).status_code == 200


def test_auth_requests_are_limited_per_client_address(clean_state):
    app, client = limited_client(rate_limit_auth_per_ip="5 per minute")
    create_account(app, email="ip@example.test")
    # One budget for every auth endpoint: logins and reset requests count together.
    for _ in range(3):
        response = client.post(
            LOGIN, json={"email": "ip@example.test", "password": PASSWORD}, **from_ip("10.9.0.1")
        )
        assert response.status_code == 200
    for address in ("a@example.test", "b@example.test"):
        response = client.post(FORGOT, json={"email": address}, **from_ip("10.9.0.1"))
        assert response.status_code == 202

    response = client.post(
        LOGIN, json={"email": "ip@example.test", "password": PASSWORD}, **from_ip("10.9.0.1")
    )
    assert_too_many(response, FROM_ADDRESS, 60)
    response = client.post(FORGOT, json={"email": "c@example.test"}, **from_ip("10.9.0.1"))
    assert_too_many(response, FROM_ADDRESS, 60)

    response = client.post(
        LOGIN, json={"email": "ip@example.test", "password": PASSWORD}, **from_ip("10.9.0.2")
    )
    assert response.status_code == 200


# Run in a process of its own whose REDIS_URL names a port nothing listens on.
_REDIS_DOWN = """
import json, uuid
from flask_jwt_extended import create_access_token
from segs.web import create_app
app = create_app()
with app.app_context():
    token = create_access_token(identity=str(uuid.uuid4()), additional_claims={"fam": "f"})
client = app.test_client()
answers = {}
for name, method, path, body in [
    ("me", "get", "/api/v1/users/me", None),
    ("meters", "get", "/api/v1/meters", None),
    ("login", "post", "/api/v1/auth/login", {"email": "a@example.test", "password": "x" * 12}),
    ("forgot", "post", "/api/v1/auth/forgot-password", {"email": "a@example.test"}),
]:
    response = getattr(client, method)(
        path, json=body, headers={"Authorization": f"Bearer {token}"} if name != "login" else {}
    )
    answers[name] = [response.status_code, response.headers.get("Retry-After"),
                     response.get_data(as_text=True)]
print(json.dumps(answers))
"""


def test_with_redis_down_requests_get_503_and_logins_fail_closed(database):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{dead_port}/0"}
    result = subprocess.run(
        [sys.executable, "-c", _REDIS_DOWN],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for name, (status, retry_after, body) in answers.items():
        assert (name, status) == (name, 503), body
        assert retry_after == str(support.settings().retry_after_s)
        assert json.loads(body)["error"]["code"] == "SERVICE_UNAVAILABLE"
        # Nothing about where Redis lives.
        assert (
            "127.0.0.1" not in body and str(dead_port) not in body and "redis" not in body.lower()
        )
