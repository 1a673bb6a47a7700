"""/api/v1/auth: registration by emailed code, login, rotation, logout, password change and reset.

Codes travel the real way: the API enqueues, a Celery worker subprocess sends them over SMTP,
and the test reads them from the SMTP server it runs (tests.mailbox).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import pytest
from flask_jwt_extended import decode_token

from segs.domain.codes import code_digest
from segs.domain.codes import code_mail
from segs.services.alerts import mail
from tests import support
from tests.accounts import PASSWORD
from tests.accounts import create_account
from tests.mailbox import Mailbox
from tests.support import WorkerProcess
from tests.support import execute
from tests.support import query
from tests.support import redis_client
from tests.support import scalar

pytestmark = pytest.mark.integration

AUTH = "/api/v1/auth"
NEW_PASSWORD = "another-secret-77"
CODE_SENT = {"message": "if this address can receive a code, one is on its way"}
NO_VALID_CODE = {
    "error": {
        "code": "CODE_EXPIRED",
        "message": "there is no valid code for this address: it expired, was used or was "
        "replaced; request a new one",
        "details": None,
    }
}
INVALID_CREDENTIALS = {
    "error": {
        "code": "INVALID_CREDENTIALS",
        "message": "wrong email or password",
        "details": None,
    }
}


def error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


REVOKED = error("TOKEN_REVOKED", "the token has been revoked")
UNAVAILABLE = error("ACCOUNT_UNAVAILABLE", "the account is suspended or no longer exists")


@pytest.fixture
def inbox(mailbox: Mailbox, mail_worker: WorkerProcess, clean_state) -> Mailbox:
    mailbox.clear()
    return mailbox


def post(client, path: str, body: Any = None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(f"{AUTH}{path}", json=body, headers=headers)


def me(client, token: str):
    return client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def answer(response) -> tuple[int, Any]:
    return response.status_code, response.get_json()


CODE_SENT = {"message": "if this address can receive a code, one is on its way"}


def register(client, email: str, **fields: Any) -> None:
    """Register; the answer is the same whether or not the address is taken."""
    body = {"name": "Asha Rao", "email": email, "region": "Pune-West", **fields}
    response = post(client, "/register", body)
    assert answer(response) == (202, CODE_SENT)


def login(client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = post(client, "/login", {"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def claims(app, token: str) -> dict[str, Any]:
    with app.app_context():
        return decode_token(token)


def account_row(email: str) -> dict[str, Any]:
    columns = ("id", "email", "name", "phone", "region", "timezone", "password_hash")
    rows = query(
        f"SELECT {', '.join(columns)}, email_verified_at IS NOT NULL FROM users WHERE email = %s",
        (email,),
    )
    assert len(rows) == 1
    return dict(zip((*columns, "verified"), rows[0], strict=True))


# --------------------------------------------------------------------------- registration


def test_register_verify_and_login(client, app, inbox):
    register(client, "Asha@Example.TEST", phone="+919812345678", timezone="Asia/Tokyo")
    row = account_row("asha@example.test")
    body = {
        "id": str(row["id"]),
        "email": "asha@example.test",
        "name": "Asha Rao",
        "phone": "+919812345678",
        "role": "USER",
        "region": "Pune-West",
        "timezone": "Asia/Tokyo",
        "emailVerified": False,
    }
    assert row["password_hash"] is None and row["verified"] is False

    received = inbox.wait("asha@example.test")
    assert received.subject == "Your SEGS verification code"
    assert received.sender == "no-reply@segs.localhost"
    assert "valid for 10 minutes" in received.text
    # The address is not proven yet: the mail quotes nothing the registrant typed.
    assert "Asha" not in received.text
    code = received.code
    # Stored only as a keyed hash bound to the account and purpose.
    stored = scalar("SELECT code_hash FROM verification_codes WHERE user_id = %s", (row["id"],))
    assert stored == code_digest(
        support.settings().signing_key, "verify_email", str(row["id"]), code
    )

    # No password yet: nothing to log in with.
    response = post(client, "/login", {"email": "asha@example.test", "password": NEW_PASSWORD})
    assert answer(response) == (401, INVALID_CREDENTIALS)

    # A password that breaks the rule is refused before the code is looked at.
    response = post(
        client,
        "/verify-email",
        {"email": "asha@example.test", "code": code, "password": "short1"},
    )
    assert response.status_code == 422
    assert response.get_json() == error(
        "VALIDATION_ERROR",
        "the password does not meet the rule",
        {"password": ["must be at least 10 characters long"]},
    )
    assert scalar("SELECT attempts FROM verification_codes") == 0

    response = post(
        client,
        "/verify-email",
        {"email": "ASHA@example.test", "code": code, "password": NEW_PASSWORD},
    )
    assert response.status_code == 200
    session = response.get_json()
    assert set(session) == {"accessToken", "refreshToken", "expiresIn", "user"}
    assert session["user"] == {**body, "emailVerified": True}
    assert me(client, session["accessToken"]).status_code == 200
    assert account_row("asha@example.test")["verified"] is True

    # The code worked once.
    response = post(
        client,
        "/verify-email",
        {"email": "asha@example.test", "code": code, "password": NEW_PASSWORD},
    )
    assert answer(response) == (401, NO_VALID_CODE)

    tokens = login(client, "asha@example.test", NEW_PASSWORD)
    assert tokens["expiresIn"] == support.settings().jwt_access_ttl_s
    assert tokens["user"]["id"] == str(row["id"])
    access = claims(app, tokens["accessToken"])
    refresh = claims(app, tokens["refreshToken"])
    assert access["sub"] == str(row["id"]) and access["type"] == "access"
    assert refresh["sub"] == str(row["id"]) and refresh["type"] == "refresh"
    assert isinstance(access["fam"], str) and access["fam"] == refresh["fam"]
    assert access["fam"] != claims(app, session["accessToken"])["fam"]
    assert me(client, tokens["accessToken"]).get_json()["email"] == "asha@example.test"


def test_register_answers_a_taken_address_like_a_new_one_and_tells_its_owner(client, app, inbox):
    owner = create_account(app, email="taken@example.test")
    register(client, "TAKEN@example.test")
    register(client, "fresh@example.test")
    told = inbox.wait("taken@example.test")
    assert told.subject == "Someone tried to register your email address at SEGS"
    assert "No new account was made" in told.text
    assert inbox.wait("fresh@example.test").subject == "Your SEGS verification code"
    assert scalar("SELECT count(*) FROM users WHERE email = 'taken@example.test'") == 1
    assert scalar("SELECT name FROM users WHERE id = %s", (owner.id,)) == "Test User"


def test_register_refuses_bad_fields(client, clean_state):
    register(client, "taken@example.test")
    assert query("SELECT timezone, phone FROM users") == [("Asia/Kolkata", None)]

    response = post(
        client,
        "/register",
        {"name": "C", "email": "c@example.test", "region": "Atlantis", "timezone": "Mars/Base"},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "json": {"timezone": ["must be an IANA time zone name such as Asia/Kolkata"]}
    }

    response = post(client, "/register", {"name": "C", "email": "c@example.test", "region": "X"})
    assert response.status_code == 422
    assert response.get_json() == error(
        "VALIDATION_ERROR", "unknown region", {"region": ["unknown region 'X'"]}
    )

    response = post(client, "/register", {"email": "not-an-email", "region": "Pune-West"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "json": {
            "email": ["Not a valid email address."],
            "name": ["Missing data for required field."],
        }
    }
    response = post(
        client, "/register", {"name": "a\x07b", "email": "d@example.test", "region": "Pune\n"}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "json": {
            "name": ["must not contain control characters"],
            "region": ["must not contain control characters"],
        }
    }
    assert scalar("SELECT count(*) FROM users") == 1


def test_expired_code_is_refused_and_a_new_one_works(client, inbox):
    register(client, "late@example.test")
    old = inbox.wait("late@example.test").code
    execute("UPDATE verification_codes SET expires_at = now() - interval '1 second'")

    response = post(
        client,
        "/verify-email",
        {"email": "late@example.test", "code": old, "password": NEW_PASSWORD},
    )
    assert answer(response) == (401, NO_VALID_CODE)
    assert scalar("SELECT attempts FROM verification_codes") == 0

    response = post(client, "/resend-code", {"email": "late@example.test"})
    assert answer(response) == (202, CODE_SENT)
    new = inbox.wait("late@example.test", count=2).code
    response = post(
        client,
        "/verify-email",
        {"email": "late@example.test", "code": new, "password": NEW_PASSWORD},
    )
    assert response.status_code == 200
    # The earlier code stays (to be counted against the daily cap) but was never used.
    assert query("SELECT consumed_at IS NOT NULL FROM verification_codes ORDER BY id") == [
        (False,),
        (True,),
    ]


def test_five_wrong_codes_use_up_the_code(client, inbox):
    register(client, "guess@example.test")
    code = inbox.wait("guess@example.test").code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = {"email": "guess@example.test", "code": wrong, "password": NEW_PASSWORD}
    for attempts_left in (4, 3, 2, 1, 0):
        response = post(client, "/verify-email", body)
        assert response.status_code == 401
        assert response.get_json() == error(
            "INVALID_CODE", "the code is not correct", {"attemptsLeft": attempts_left}
        )
    response = post(client, "/verify-email", {**body, "code": code})
    assert response.status_code == 401
    assert response.get_json() == error(
        "CODE_ATTEMPTS_EXCEEDED", "this code was entered wrongly 5 times; request a new one"
    )
    assert scalar("SELECT attempts FROM verification_codes") == 5
    assert account_row("guess@example.test")["verified"] is False


def test_resend_replaces_the_code(client, inbox):
    register(client, "again@example.test")
    first = inbox.wait("again@example.test").code
    second = first
    while second == first:  # two draws agree once in a million
        assert post(client, "/resend-code", {"email": "again@example.test"}).status_code == 202
        second = inbox.wait("again@example.test", count=len(inbox.to("again@example.test")) + 1)
        second = second.code
    body = {"email": "again@example.test", "password": NEW_PASSWORD}
    # Only the newest code counts: the first one is now simply a wrong code.
    response = post(client, "/verify-email", {**body, "code": first})
    assert answer(response) == (
        401,
        error("INVALID_CODE", "the code is not correct", {"attemptsLeft": 4}),
    )
    response = post(client, "/verify-email", {**body, "code": second})
    assert response.status_code == 200


def test_code_requests_say_the_same_for_any_address(client, app, inbox):
    create_account(app, email="verified@example.test")
    register(client, "pending@example.test")
    inbox.wait("pending@example.test")
    for path in ("/resend-code", "/forgot-password"):
        for address in ("nobody@example.test", "verified@example.test", "pending@example.test"):
            response = post(client, path, {"email": address})
            assert answer(response) == (202, CODE_SENT)
    # Verification codes go only to the pending account, reset codes only to the verified one.
    assert inbox.wait("pending@example.test", count=2).subject == "Your SEGS verification code"
    assert inbox.wait("verified@example.test").subject == "Your SEGS password reset code"
    time.sleep(1)
    assert len(inbox.to("pending@example.test")) == 2
    assert len(inbox.to("verified@example.test")) == 1
    assert inbox.to("nobody@example.test") == []


def test_mail_service_talks_smtp(mailbox: Mailbox):
    settings = dataclasses.replace(
        support.settings(),
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        mail_from="Grid <g@x.test>",
    )
    message = code_mail("reset_password", "r@example.test", "012345", 600)
    mail.send_email(settings, message)
    received = mailbox.wait("r@example.test")
    assert received.sender == "g@x.test"
    assert received.code == "012345"
    assert received.subject == "Your SEGS password reset code"
    assert received.text.startswith("Hello,\n\nYour code is 012345.")


# --------------------------------------------------------------------------- login


def test_login_answers_the_contract_shape(client, app, clean_state):
    account = create_account(app, email="ops@example.test", role="OPERATOR", region=None)
    tokens = login(client, "OPS@example.test")
    assert set(tokens) == {"accessToken", "refreshToken", "expiresIn", "user"}
    assert tokens["user"] == {
        "id": str(account.id),
        "email": "ops@example.test",
        "name": "Test Operator",
        "phone": None,
        "role": "OPERATOR",
        "region": None,
        "timezone": "Asia/Kolkata",
        "emailVerified": True,
    }
    refresh = claims(app, tokens["refreshToken"])
    row = query(
        "SELECT family_id::text, user_id, used_at, revoked_at, "
        # PyJWT floors exp to whole seconds; a plain ::bigint cast would round.
        "floor(extract(epoch FROM expires_at))::bigint FROM refresh_tokens WHERE jti = %s",
        (refresh["jti"],),
    )
    assert row == [(refresh["fam"], account.id, None, None, refresh["exp"])]
    assert scalar("SELECT last_login_at IS NOT NULL FROM users WHERE id = %s", (account.id,))


def test_login_refuses_wrong_unknown_and_unusable_accounts(client, app, clean_state):
    create_account(app, email="user@example.test")
    for email, password in (("user@example.test", "wrong-password-1"), ("who@example.test", "x")):
        response = post(client, "/login", {"email": email, "password": password})
        assert answer(response) == (401, INVALID_CREDENTIALS)

    create_account(app, email="held@example.test")
    execute("UPDATE users SET status = 'suspended' WHERE email = 'held@example.test'")
    response = post(client, "/login", {"email": "held@example.test", "password": PASSWORD})
    assert response.status_code == 403
    assert response.get_json() == error("ACCOUNT_SUSPENDED", "the account is suspended")

    create_account(app, email="gone@example.test")
    execute("UPDATE users SET deleted_at = now() WHERE email = 'gone@example.test'")
    response = post(client, "/login", {"email": "gone@example.test", "password": PASSWORD})
    assert answer(response) == (401, INVALID_CREDENTIALS)

    create_account(app, email="unverified@example.test")
    execute("UPDATE users SET email_verified_at = NULL WHERE email = 'unverified@example.test'")
    response = post(client, "/login", {"email": "unverified@example.test", "password": PASSWORD})
    assert response.status_code == 403
    assert response.get_json() == error(
        "EMAIL_NOT_VERIFIED", "verify the email address before logging in"
    )
    assert scalar("SELECT count(*) FROM refresh_tokens") == 0


@pytest.mark.parametrize(
    "change",
    ["status = 'suspended'", "deleted_at = now()"],
    ids=["suspended", "deleted"],
)
def test_suspension_and_deletion_end_existing_sessions(client, app, clean_state, change):
    create_account(app, email="soon@example.test")
    tokens = login(client, "soon@example.test")
    assert me(client, tokens["accessToken"]).status_code == 200
    execute(f"UPDATE users SET {change} WHERE email = 'soon@example.test'")

    response = me(client, tokens["accessToken"])
    assert answer(response) == (401, UNAVAILABLE)
    response = post(client, "/refresh", {"refreshToken": tokens["refreshToken"]})
    assert answer(response) == (401, UNAVAILABLE)


# --------------------------------------------------------------------------- refresh


def test_refresh_rotates_and_reuse_revokes_the_family(client, app, clean_state):
    create_account(app, email="rot@example.test")
    first = login(client, "rot@example.test")
    other = login(client, "rot@example.test")

    response = post(client, "/refresh", {"refreshToken": first["refreshToken"]})
    assert response.status_code == 200
    second = response.get_json()
    assert set(second) == {"accessToken", "refreshToken", "expiresIn", "user"}
    old, new = claims(app, first["refreshToken"]), claims(app, second["refreshToken"])
    assert new["fam"] == old["fam"] == claims(app, second["accessToken"])["fam"]
    assert new["jti"] != old["jti"]
    assert scalar("SELECT used_at IS NOT NULL FROM refresh_tokens WHERE jti = %s", (old["jti"],))
    assert me(client, second["accessToken"]).status_code == 200

    # The spent token again: someone copied it. Its whole login ends at once.
    response = post(client, "/refresh", {"refreshToken": first["refreshToken"]})
    assert response.status_code == 401
    assert response.get_json() == error(
        "REFRESH_TOKEN_REUSED",
        "this refresh token was already used; every token of its login has been revoked",
    )
    for token in (first["accessToken"], second["accessToken"]):
        assert answer(me(client, token)) == (401, REVOKED)
    response = post(client, "/refresh", {"refreshToken": second["refreshToken"]})
    assert answer(response) == (401, REVOKED)
    assert (
        scalar(
            "SELECT count(*) FROM refresh_tokens WHERE family_id = %s AND revoked_at IS NOT NULL",
            (uuid.UUID(old["fam"]),),
        )
        == 2
    )

    # The other login is untouched.
    assert me(client, other["accessToken"]).status_code == 200
    assert post(client, "/refresh", {"refreshToken": other["refreshToken"]}).status_code == 200


def test_refresh_accepts_only_refresh_tokens(client, app, clean_state):
    create_account(app, email="ref@example.test")
    tokens = login(client, "ref@example.test")
    response = post(client, "/refresh", {"refreshToken": tokens["accessToken"]})
    assert response.status_code == 401
    assert response.get_json() == error("TOKEN_INVALID", "this is not a refresh token")
    response = post(client, "/refresh", {"refreshToken": "not.a.jwt"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "TOKEN_INVALID"
    response = post(client, "/refresh", {})
    assert response.status_code == 422


# --------------------------------------------------------------------------- logout


def test_logout_ends_this_login_at_once(client, app, clean_state):
    create_account(app, email="bye@example.test")
    here = login(client, "bye@example.test")
    there = login(client, "bye@example.test")

    response = post(client, "/logout", token=here["accessToken"])
    assert response.status_code == 204 and response.data == b""
    assert (
        me(client, here["accessToken"]).status_code,
        me(client, here["accessToken"]).get_json(),
    ) == (401, REVOKED)
    response = post(client, "/refresh", {"refreshToken": here["refreshToken"]})
    assert answer(response) == (401, REVOKED)
    assert me(client, there["accessToken"]).status_code == 200

    response = post(client, "/logout")
    assert response.status_code == 401


def test_a_logged_out_token_stays_refused_after_redis_loses_its_memory(client, app, clean_state):
    """PostgreSQL is the authority on revocations; Redis only caches them (a restart without
    persistence, a failover to an empty replica)."""
    create_account(app, email="gone@example.test")
    here = login(client, "gone@example.test")
    there = login(client, "gone@example.test")
    assert post(client, "/logout", token=here["accessToken"]).status_code == 204
    assert answer(me(client, here["accessToken"])) == (401, REVOKED)

    redis_client().flushdb()
    assert answer(me(client, here["accessToken"])) == (401, REVOKED)
    assert me(client, there["accessToken"]).status_code == 200
    # Reloaded once: the marker says the cache holds what PostgreSQL says again.
    assert redis_client().exists("segs:jwt:revoked:loaded") == 1


def test_logout_all_ends_every_login_at_once(client, app, clean_state):
    create_account(app, email="all@example.test")
    sessions = [login(client, "all@example.test") for _ in range(3)]
    rotated = post(client, "/refresh", {"refreshToken": sessions[2]["refreshToken"]}).get_json()

    response = post(client, "/logout-all", token=sessions[0]["accessToken"])
    assert response.status_code == 204
    for token in [s["accessToken"] for s in sessions] + [rotated["accessToken"]]:
        assert answer(me(client, token)) == (401, REVOKED)
    for token in (
        sessions[0]["refreshToken"],
        sessions[1]["refreshToken"],
        rotated["refreshToken"],
    ):
        response = post(client, "/refresh", {"refreshToken": token})
        assert answer(response) == (401, REVOKED)
    assert scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0

    fresh = login(client, "all@example.test")
    assert me(client, fresh["accessToken"]).status_code == 200


# --------------------------------------------------------------------------- passwords


def test_change_password_ends_every_session(client, app, clean_state):
    # The caller's token has a login family with no refresh token here; it ends too.
    caller = create_account(app, email="chg@example.test").token
    here = login(client, "chg@example.test")
    there = login(client, "chg@example.test")

    body = {"currentPassword": "not-it-123", "newPassword": NEW_PASSWORD}
    response = post(client, "/change-password", body, token=here["accessToken"])
    assert response.status_code == 422
    assert response.get_json() == error(
        "INVALID_CURRENT_PASSWORD",
        "the current password is not correct",
        {"currentPassword": ["is not correct"]},
    )
    body = {"currentPassword": PASSWORD, "newPassword": "chg@example.test"}
    response = post(client, "/change-password", body, token=here["accessToken"])
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {
        "newPassword": ["must contain a digit", "must not be the email address"]
    }
    body = {"currentPassword": PASSWORD, "newPassword": PASSWORD}
    response = post(client, "/change-password", body, token=here["accessToken"])
    assert response.get_json() == error(
        "VALIDATION_ERROR",
        "the new password is the current one",
        {"newPassword": ["must differ from the current password"]},
    )

    body = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    response = post(client, "/change-password", body, token=caller)
    assert response.status_code == 200
    fresh = response.get_json()
    assert set(fresh) == {"accessToken", "refreshToken", "expiresIn", "user"}
    assert answer(me(client, caller)) == (401, REVOKED)
    for old in (here, there):
        assert me(client, old["accessToken"]).get_json() == REVOKED
        response = post(client, "/refresh", {"refreshToken": old["refreshToken"]})
        assert answer(response) == (401, REVOKED)
    assert me(client, fresh["accessToken"]).status_code == 200

    response = post(client, "/login", {"email": "chg@example.test", "password": PASSWORD})
    assert answer(response) == (401, INVALID_CREDENTIALS)
    login(client, "chg@example.test", NEW_PASSWORD)


def test_reset_password_by_emailed_code(client, app, inbox):
    create_account(app, email="lost@example.test")
    session = login(client, "lost@example.test")

    response = post(client, "/forgot-password", {"email": "Lost@example.test"})
    assert answer(response) == (202, CODE_SENT)
    received = inbox.wait("lost@example.test")
    assert received.subject == "Your SEGS password reset code"
    body = {"email": "lost@example.test", "code": received.code, "newPassword": NEW_PASSWORD}

    response = post(client, "/reset-password", {**body, "newPassword": "lettersonly-only"})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == {"newPassword": ["must contain a digit"]}

    response = post(client, "/reset-password", body)
    assert response.status_code == 204
    assert me(client, session["accessToken"]).get_json() == REVOKED
    response = post(client, "/refresh", {"refreshToken": session["refreshToken"]})
    assert answer(response) == (401, REVOKED)

    response = post(client, "/reset-password", {**body, "newPassword": "third-password-9"})
    assert answer(response) == (401, NO_VALID_CODE)
    response = post(client, "/login", {"email": "lost@example.test", "password": PASSWORD})
    assert answer(response) == (401, INVALID_CREDENTIALS)
    login(client, "lost@example.test", NEW_PASSWORD)


def test_reset_with_a_verification_code_is_refused(client, app, inbox):
    register(client, "mixed@example.test")
    code = inbox.wait("mixed@example.test").code
    body = {"email": "mixed@example.test", "code": code, "newPassword": NEW_PASSWORD}
    response = post(client, "/reset-password", body)
    assert answer(response) == (401, NO_VALID_CODE)
    assert account_row("mixed@example.test")["password_hash"] is None
