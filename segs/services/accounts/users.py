"""Accounts as admins manage them, and each account's own profile.

Rules kept here:
- Only ADMIN changes accounts (the web layer checks the role); every change is audited in the
  same transaction.
- An admin cannot suspend, delete or change the role of their own account, so the acting admin
  always remains: there is never a moment with no active admin.
- Meters belong only to USER accounts of the meter's region. An account that owns meters keeps
  its role and region until its meters are unassigned (409 otherwise).
- Deleting is soft: the row stays so the audit log still names it, the email is free again,
  the meters are unassigned and the refresh tokens revoked. Access tokens stop working at once
  because every request reloads the account and refuses deleted or suspended ones.

An error names a value by what it means (``meter_ids``); the web layer answers with the API's
names for them (segs.web.users).

The module runs a little over 400 lines: each admin action is a short use case, and they share
the checks at the end; apart, each action would lose sight of the rules above.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.access import ROLES
from segs.domain.access import USER
from segs.domain.accounts import ACTIVE
from segs.domain.accounts import DEFAULT_TIMEZONE
from segs.domain.accounts import SUSPENDED
from segs.domain.accounts import is_timezone
from segs.domain.accounts import normalize_email
from segs.domain.accounts import password_problems
from segs.errors import ConflictError
from segs.errors import InvalidInputError
from segs.errors import NotFoundError
from segs.models import Meter
from segs.models import RefreshToken
from segs.models import Region
from segs.models import User
from segs.services.accounts import audit
from segs.services.accounts import tokens
from segs.services.accounts.audit import Actor
from segs.services.accounts.passwords import Passwords
from segs.services.accounts.revocation import RevocationList
from segs.services.shared.paging import Page
from segs.services.shared.paging import fetch_page

# Fields an admin may change with an update, and the subset an account may change itself.
ADMIN_FIELDS = ("name", "phone", "region", "timezone", "role")
PROFILE_FIELDS = ("name", "phone", "timezone")


@dataclass(frozen=True)
class AccountView:
    """An account as the API shows it (never its password hash)."""

    id: uuid.UUID
    email: str
    name: str
    phone: str | None
    role: str
    region: str | None
    timezone: str
    status: str
    suspended_reason: str | None
    email_verified: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime
    meter_ids: list[str]


@dataclass(frozen=True)
class NewAccount:
    email: str
    name: str
    password: str
    role: str = USER
    region: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    phone: str | None = None


@dataclass(frozen=True)
class UserFilters:
    role: str | None = None
    region: str | None = None
    status: str | None = None
    # Case-insensitive substring of the email address or the name.
    q: str | None = None


# --------------------------------------------------------------------------- reading


def list_users(
    session: Session, filters: UserFilters, *, page: int, page_size: int
) -> Page[AccountView]:
    """Accounts that are not deleted, matching every given filter, by email."""
    statement = select(User).where(User.deleted_at.is_(None))
    if filters.role is not None:
        statement = statement.where(User.role == filters.role)
    if filters.region is not None:
        statement = statement.where(User.region == filters.region)
    if filters.status is not None:
        statement = statement.where(User.status == filters.status)
    if filters.q:
        pattern = "%" + _escape_like(filters.q.strip().lower()) + "%"
        statement = statement.where(
            or_(
                User.email.like(pattern, escape="\\"),
                func.lower(User.name).like(pattern, escape="\\"),
            )
        )
    users, total = fetch_page(
        session, statement.order_by(User.email), page=page, page_size=page_size
    )
    meters = _meters_of(session, [user.id for user in users])
    return Page([_view(user, meters[user.id]) for user in users], total)


def get_user(session: Session, user_id: uuid.UUID) -> AccountView:
    """One account that is not deleted."""
    user = _live_user(session, user_id)
    return _view(user, _meters_of(session, [user.id])[user.id])


# --------------------------------------------------------------------------- admin changes


def create_user(
    session: Session, passwords: Passwords, actor: Actor, new: NewAccount
) -> AccountView:
    """Create an account with a password; the admin vouches for the address, so it is verified.

    :raises ConflictError: an account that is not deleted already has this email address.
    """
    email = normalize_email(new.email)
    _check_role(new.role)
    check_password(new.password, email)
    _check_timezone(new.timezone)
    if new.region is not None:
        _check_region(session, new.region)
    if _email_taken(session, email):
        raise ConflictError(f"an account with the email {email} exists", code="EMAIL_TAKEN")
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=new.name,
        phone=new.phone,
        role=new.role,
        region=new.region,
        timezone=new.timezone,
        password_hash=passwords.hash(new.password),
        email_verified_at=func.now(),
        status=ACTIVE,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another request registered the same address between the check and the insert.
        raise ConflictError(
            f"an account with the email {email} exists", code="EMAIL_TAKEN"
        ) from exc
    audit.record(
        session,
        actor,
        "user.create",
        "user",
        user.id,
        {"email": email, "role": new.role, "region": new.region},
    )
    session.refresh(user)
    return _view(user, [])


def update_user(
    session: Session, actor: Actor, user_id: uuid.UUID, changes: dict[str, Any]
) -> AccountView:
    """Change an account's name, phone, region, time zone or role (only the keys given)."""
    _only(changes, ADMIN_FIELDS)
    user = _live_user(session, user_id, lock=True)
    owned = _meters_of(session, [user.id])[user.id]
    role = changes.get("role", user.role)
    region = changes.get("region", user.region)
    if "role" in changes:
        _check_role(role)
        if role != user.role and user.id == actor.id:
            raise ConflictError("an admin cannot change their own role", code="OWN_ACCOUNT")
    if "region" in changes and region is not None:
        _check_region(session, region)
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    if owned and (role != user.role or region != user.region):
        raise ConflictError(
            f"the account owns {len(owned)} meter(s); unassign them before changing its "
            "role or region",
            {"meter_ids": owned},
            code="OWNS_METERS",
        )
    if role != user.role:
        audit.record(session, actor, "user.role", "user", user.id, {"from": user.role, "to": role})
        user.role = role
    diff = _apply(user, {key: value for key, value in changes.items() if key != "role"})
    if diff:
        audit.record(session, actor, "user.update", "user", user.id, {"changes": diff})
    session.flush()
    return _view(user, owned)


def suspend_user(
    session: Session,
    actor: Actor,
    user_id: uuid.UUID,
    reason: str,
    settings: Settings,
    revocations: RevocationList,
    now: datetime,
) -> AccountView:
    """Suspend an active account: its tokens stop working for good (an activation does not
    revive them) and its refresh tokens are revoked."""
    user = _live_user(session, user_id, lock=True)
    if user.id == actor.id:
        raise ConflictError("an admin cannot suspend their own account", code="OWN_ACCOUNT")
    if user.status == SUSPENDED:
        raise ConflictError(f"account {user.id} is already suspended", code="ALREADY_SUSPENDED")
    user.status = SUSPENDED
    user.suspended_reason = reason
    # Access tokens are revoked by login family, so activating the account does not revive them.
    families = tokens.live_families(session, settings, user.id, now)
    revoked = _revoke_refresh_tokens(session, user.id)
    revocations.revoke_families([str(family) for family in families])
    audit.record(
        session,
        actor,
        "user.suspend",
        "user",
        user.id,
        {"reason": reason, "refreshTokensRevoked": revoked},
    )
    session.flush()
    return _view(user, _meters_of(session, [user.id])[user.id])


def activate_user(session: Session, actor: Actor, user_id: uuid.UUID) -> AccountView:
    """Lift a suspension. Tokens it revoked stay revoked, so the account logs in again."""
    user = _live_user(session, user_id, lock=True)
    if user.status == ACTIVE:
        raise ConflictError(f"account {user.id} is already active", code="ALREADY_ACTIVE")
    audit.record(
        session,
        actor,
        "user.activate",
        "user",
        user.id,
        {"suspendedReason": user.suspended_reason},
    )
    user.status = ACTIVE
    user.suspended_reason = None
    session.flush()
    return _view(user, _meters_of(session, [user.id])[user.id])


def delete_user(session: Session, actor: Actor, user_id: uuid.UUID) -> None:
    """Soft-delete an account: free its email, unassign its meters, revoke its refresh tokens."""
    user = _live_user(session, user_id, lock=True)
    if user.id == actor.id:
        raise ConflictError("an admin cannot delete their own account", code="OWN_ACCOUNT")
    unassigned = list(
        session.scalars(
            update(Meter)
            .where(Meter.owner_id == user.id)
            .values(owner_id=None, assigned_at=None)
            .returning(Meter.meter_id)
        )
    )
    revoked = _revoke_refresh_tokens(session, user.id)
    user.deleted_at = func.now()
    audit.record(
        session,
        actor,
        "user.delete",
        "user",
        user.id,
        {
            "email": user.email,
            "unassignedMeterIds": sorted(unassigned),
            "refreshTokensRevoked": revoked,
        },
    )
    session.flush()


# --------------------------------------------------------------------------- own profile


def update_profile(session: Session, actor: Actor, changes: dict[str, Any]) -> AccountView:
    """Change the caller's own name, phone or time zone."""
    _only(changes, PROFILE_FIELDS)
    if actor.id is None:
        raise InvalidInputError("a profile belongs to an account")
    user = _live_user(session, actor.id, lock=True)
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    diff = _apply(user, changes)
    if diff:
        audit.record(session, actor, "user.profile", "user", user.id, {"changes": diff})
    session.flush()
    return _view(user, _meters_of(session, [user.id])[user.id])


# --------------------------------------------------------------------------- shared checks


def _email_taken(session: Session, email: str) -> bool:
    """Does an account that is not deleted use this (normalized) address?"""
    found = session.scalar(
        select(User.id).where(User.email == email, User.deleted_at.is_(None)).limit(1)
    )
    return found is not None


def _live_user(session: Session, user_id: uuid.UUID, *, lock: bool = False) -> User:
    user = session.get(User, user_id, with_for_update=lock)
    if user is None or user.deleted_at is not None:
        raise NotFoundError(f"user {user_id} not found")
    return user


def _only(changes: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidInputError(
            "these fields cannot be changed here", {name: ["not changeable"] for name in unknown}
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInputError(
            f"unknown role {role!r}", {"role": [f"must be one of {', '.join(ROLES)}"]}
        )


def _check_region(session: Session, region: str) -> None:
    if session.get(Region, region) is None:
        raise InvalidInputError(f"unknown region {region!r}", {"region": ["unknown region"]})


def _check_timezone(name: str) -> None:
    if not is_timezone(name):
        raise InvalidInputError(
            f"unknown time zone {name!r}", {"timezone": ["not an IANA time zone"]}
        )


def check_password(password: str, email: str) -> None:
    """Raise InvalidInputError naming every way *password* breaks the rule for *email*."""
    problems = password_problems(password, email)
    if problems:
        raise InvalidInputError("the password is not acceptable", {"password": problems})


def _apply(user: User, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set the changed attributes; return {field: {"from", "to"}} for those that differ."""
    diff: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        old = getattr(user, name)
        if old != value:
            diff[name] = {"from": old, "to": value}
            setattr(user, name, value)
    return diff


def _revoke_refresh_tokens(session: Session, user_id: uuid.UUID) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _meters_of(session: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    owned: dict[uuid.UUID, list[str]] = defaultdict(list)
    if user_ids:
        rows = session.execute(
            select(Meter.owner_id, Meter.meter_id)
            .where(Meter.owner_id.in_(user_ids))
            .order_by(Meter.meter_id)
        )
        for owner_id, meter_id in rows:
            if owner_id is not None:
                owned[owner_id].append(meter_id)
    return owned


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _view(user: User, meter_ids: list[str]) -> AccountView:
    return AccountView(
        id=user.id,
        email=user.email,
        name=user.name,
        phone=user.phone,
        role=user.role,
        region=user.region,
        timezone=user.timezone,
        status=user.status,
        suspended_reason=user.suspended_reason,
        email_verified=user.email_verified_at is not None,
        last_login_at=user.last_login_at,
        created_at=user.created_at,
        updated_at=user.updated_at,
        meter_ids=list(meter_ids),
    )
