"""Demo accounts for a fresh installation: one admin, one operator, customers with live meters.

The customers own meters the default simulator actually feeds: it numbers meters MTR-00000001
upwards and deals them round-robin over its ten regions (simulator.meters.REGIONS), so meter
n is in region (n - 1) mod 10. tests/unit/test_demo_plan.py holds the two in step.

Seeding is repeatable: a second run creates nothing twice, sets every demo account's password
to the one given (so the printed credentials always work), verifies and reactivates them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from dataclasses import field

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.domain.access import ADMIN
from segs.domain.access import OPERATOR
from segs.domain.access import USER
from segs.domain.accounts import ACTIVE
from segs.errors import ConflictError
from segs.errors import SegsError
from segs.models import Meter
from segs.models import User
from segs.services.accounts import SYSTEM
from segs.services.accounts import NewAccount
from segs.services.accounts import Passwords
from segs.services.accounts import check_password
from segs.services.accounts import create_user
from segs.services.accounts import record_audit
from segs.services.grid import meters


@dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    role: str
    region: str | None = None
    meter_ids: tuple[str, ...] = ()


DEMO_ACCOUNTS = (
    DemoAccount("demo.admin@example.com", "Demo Admin", ADMIN),
    DemoAccount("demo.operator@example.com", "Demo Operator", OPERATOR),
    DemoAccount(
        "demo.mumbai@example.com",
        "Demo Customer Mumbai",
        USER,
        "Mumbai-North",
        ("MTR-00000001", "MTR-00000011"),
    ),
    DemoAccount(
        "demo.delhi@example.com",
        "Demo Customer Delhi",
        USER,
        "Delhi-North",
        ("MTR-00000003", "MTR-00000013"),
    ),
    DemoAccount(
        "demo.pune@example.com",
        "Demo Customer Pune",
        USER,
        "Pune-West",
        ("MTR-00000008", "MTR-00000018"),
    ),
)


@dataclass
class SeededAccount:
    account: DemoAccount
    user_id: uuid.UUID
    created: bool
    meter_ids: list[str] = field(default_factory=list)
    # Why a planned meter is not the account's (it belongs to someone else, ...).
    skipped: dict[str, str] = field(default_factory=dict)


def seed_demo(session: Session, passwords: Passwords, password: str) -> list[SeededAccount]:
    """Create or refresh every demo account and assign its meters; audited as the system."""
    return [_seed_account(session, passwords, password, plan) for plan in DEMO_ACCOUNTS]


def _seed_account(
    session: Session, passwords: Passwords, password: str, plan: DemoAccount
) -> SeededAccount:
    existing = session.scalar(
        select(User).where(User.email == plan.email, User.deleted_at.is_(None)).with_for_update()
    )
    if existing is None:
        view = create_user(
            session,
            passwords,
            SYSTEM,
            NewAccount(
                email=plan.email,
                name=plan.name,
                password=password,
                role=plan.role,
                region=plan.region,
            ),
        )
        seeded = SeededAccount(plan, view.id, created=True)
    else:
        if existing.role != plan.role or existing.region != plan.region:
            raise ConflictError(
                f"{plan.email} exists as a {existing.role} of region {existing.region}; "
                f"the demo needs a {plan.role} of region {plan.region}: delete it and seed again"
            )
        _refresh(session, passwords, password, existing)
        seeded = SeededAccount(plan, existing.id, created=False)
    if plan.region is not None:
        for meter_id in plan.meter_ids:
            _assign(session, seeded, meter_id, plan.region)
    return seeded


def _refresh(session: Session, passwords: Passwords, password: str, user: User) -> None:
    """Give an existing demo account the new password, a verified address and active status."""
    check_password(password, user.email)
    details = {
        "passwordReset": True,
        "verified": user.email_verified_at is None,
        "reactivated": user.status != ACTIVE,
    }
    user.password_hash = passwords.hash(password)
    if user.email_verified_at is None:
        user.email_verified_at = func.now()
    user.status = ACTIVE
    user.suspended_reason = None
    record_audit(session, SYSTEM, "user.demo_reset", "user", user.id, details)


def _assign(session: Session, seeded: SeededAccount, meter_id: str, region: str) -> None:
    """Register the meter if no reading did yet, and assign it unless someone else owns it."""
    try:
        if session.get(Meter, meter_id) is None:
            meters.create_meter(session, SYSTEM, meter_id, region)
        meters.assign_meter(session, SYSTEM, meter_id, seeded.user_id)
    except SegsError as exc:
        # Checked before anything is written, so the rest of the seed can go on.
        seeded.skipped[meter_id] = exc.message
    else:
        seeded.meter_ids.append(meter_id)
