"""Abuse limits on the auth endpoints (Flask-Limiter on the test Redis): failed logins per
account, every auth request per client address and per account, and the 429 they answer."""

from __future__ import annotations

import dataclasses

import pytest

from segs.config import get_settings
from segs.web import create_app
from tests.accounts import PASSWORD
from tests.accounts import create_account

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/auth/login"
FORGOT = "/api/v1/auth/forgot-password"
FROM_ADDRESS = "too many account requests from this address; try again later"
FOR_ACCOUNT = "too many requests for this account; try again later"


def limited_client(**limits: str):
    """A client of an app whose auth limits are *limits* (the rest as configured)."""
    app = create_app(dataclasses.replace(get_settings(), **limits))
    return app, app.test_client()


def from_ip(address: str) -> dict[str, dict[str, str]]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def assert_too_many(response, message: str, window_s: int) -> None:
    assert response.status_code == 429
    assert response.get_json() == {
        "error": {"code": "TOO_MANY_REQUESTS", "message": message, "details": None}
    }
    assert 0 < int(response.headers["Retry-After"]) <= window_s


def test_eleventh_failed_login_is_refused_even_with_the_right_password(client, app, clean_state):
    assert get_settings().login_failures_per_account == "10 per 15 minutes"
    create_account(app, email="target@example.test")
    create_account(app, email="bystander@example.test")
    # Successful logins do not count towards the lockout.
    for _ in range(3):
        response = client.post(LOGIN, json={"email": "target@example.test", "password": PASSWORD})
        assert response.status_code == 200

    wrong = {"email": "target@example.test", "password": "wrong-password-1"}
    for attempt in range(1, 11):
        response = client.post(LOGIN, json=wrong)
        assert response.status_code == 401, attempt
        assert response.get_json()["error"]["code"] == "INVALID_CREDENTIALS"

    locked = "too many failed logins for this account; try again later"
    assert_too_many(client.post(LOGIN, json=wrong), locked, 15 * 60)
    # The lock holds for the right password too, and for any spelling of the address.
    right = {"email": "Target@Example.test", "password": PASSWORD}
    assert_too_many(client.post(LOGIN, json=right), locked, 15 * 60)

    # Another account from the same address is not affected.
    response = client.post(LOGIN, json={"email": "bystander@example.test", "password": PASSWORD})
    assert response.status_code == 200


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


def test_auth_requests_are_limited_per_account(clean_state):
    app, client = limited_client(rate_limit_auth_per_account="3 per minute")
    for number in range(3):
        response = client.post(
            FORGOT, json={"email": "victim@example.test"}, **from_ip(f"10.8.0.{number}")
        )
        assert response.status_code == 202
    response = client.post(FORGOT, json={"email": "VICTIM@example.test"}, **from_ip("10.8.1.1"))
    assert_too_many(response, FOR_ACCOUNT, 60)
    response = client.post(FORGOT, json={"email": "other@example.test"}, **from_ip("10.8.1.1"))
    assert response.status_code == 202
