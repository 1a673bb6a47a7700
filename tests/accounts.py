"""Accounts and tokens for API tests, made directly in the test database.

Tokens are minted the way the login endpoint mints them (string subject, a login family), so
tests of one resource do not depend on the login flow, which has tests of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field
from itertools import count

from flask import Flask
from flask_jwt_extended import create_access_token

from segs.services.accounts.passwords import Passwords
from segs.services.alerts.planning import Delivery
from tests import support
from tests.support import execute

PASSWORD = "correct-horse-42"
_numbers = count(1)


@dataclass
class Account:
    id: uuid.UUID
    email: str
    role: str
    region: str | None
    family: str
    token: str
    meters: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def delivery(
        self, subject: str, title: str, channel: str = "email", target: str = ""
    ) -> Delivery:
        """A notification for this account, by email to its address unless told otherwise."""
        return Delivery(
            subject=subject,
            channel=channel,
            user_id=str(self.id),
            target=target or self.email,
            title=title,
            payload={"alert": {"message": "a test notification"}},
        )


def create_account(
    app: Flask,
    *,
    role: str = "USER",
    region: str | None = "Pune-West",
    email: str | None = None,
    password: str = PASSWORD,
    meters: tuple[str, ...] = (),
    timezone: str = "Asia/Kolkata",
) -> Account:
    """Insert a verified, active account (with *meters* registered and assigned to it)."""
    account_id = uuid.uuid4()
    email = email or f"{role.lower()}{next(_numbers)}@example.test"
    execute(
        """
        INSERT INTO users (id, email, name, role, region, timezone, password_hash,
                           email_verified_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, now())
        """,
        (
            account_id,
            email,
            f"Test {role.title()}",
            role,
            region,
            timezone,
            Passwords(support.settings()).hash(password),
        ),
    )
    # Owned since long before any test's data, so the owner reads (and is billed for) all of it.
    for meter_id in meters:
        execute(
            """
            INSERT INTO meters (meter_id, region, owner_id, assigned_at)
            VALUES (%s, %s, %s, '2000-01-01T00:00Z')
            ON CONFLICT (meter_id) DO UPDATE SET owner_id = EXCLUDED.owner_id,
                                                 assigned_at = EXCLUDED.assigned_at
            """,
            (meter_id, region, account_id),
        )
    family = str(uuid.uuid4())
    return Account(
        account_id, email, role, region, family, mint_token(app, account_id, family), list(meters)
    )


def mint_token(app: Flask, account_id: uuid.UUID, family: str) -> str:
    with app.app_context():
        return create_access_token(identity=str(account_id), additional_claims={"fam": family})
