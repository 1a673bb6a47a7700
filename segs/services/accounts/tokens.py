"""Login sessions: refresh tokens chained into families, rotation, reuse detection, revocation.

A login starts a family. Each refresh marks the presented token used and issues the next one in
the same family; a used token presented again means it was copied, so the whole family is
revoked. Access tokens carry their family id, so revoking a family in Redis ends every access
token of that login at once. The web layer turns a :class:`SessionGrant` into signed tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.errors import AuthenticationError
from segs.models import RefreshToken
from segs.models import User
from segs.services.accounts.revocation import RevocationList


@dataclass(frozen=True)
class SessionGrant:
    """What the next pair of tokens must say: whose, which family, which refresh token."""

    account: User
    family_id: str
    refresh_jti: str
    refresh_expires_at: datetime


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of the access token a request came with."""

    jti: str
    expires_at_s: int
    family_id: str | None


@dataclass(frozen=True)
class RefreshClaims:
    """The verified claims of a presented refresh token."""

    jti: str
    subject: str
    family_id: str | None


def account_unavailable() -> AuthenticationError:
    return AuthenticationError(
        "the account is suspended or no longer exists", code="ACCOUNT_UNAVAILABLE"
    )


def start_session(
    session: Session, settings: Settings, account: User, now: datetime
) -> SessionGrant:
    """Open a new login family for *account* and record its first refresh token."""
    return _issue(session, settings, account, uuid.uuid4(), now)


def _issue(
    session: Session, settings: Settings, account: User, family_id: uuid.UUID, now: datetime
) -> SessionGrant:
    row = RefreshToken(
        jti=uuid.uuid4().hex,
        family_id=family_id,
        user_id=account.id,
        issued_at=now,
        expires_at=now + timedelta(seconds=settings.jwt_refresh_ttl_s),
    )
    session.add(row)
    session.flush()
    return SessionGrant(account, str(family_id), row.jti, row.expires_at)


def rotate(
    session: Session,
    settings: Settings,
    revocations: RevocationList,
    claims: RefreshClaims,
    now: datetime,
) -> SessionGrant:
    """Spend a refresh token and issue its successor in the same family.

    :raises AuthenticationError: TOKEN_INVALID (not one we issued), TOKEN_REVOKED,
        TOKEN_EXPIRED, REFRESH_TOKEN_REUSED (already spent: the family is revoked, committed
        before raising) or ACCOUNT_UNAVAILABLE.
    """
    row = session.get(RefreshToken, claims.jti, with_for_update=True)
    if row is None or str(row.user_id) != claims.subject or str(row.family_id) != claims.family_id:
        raise AuthenticationError("this refresh token was not issued here", code="TOKEN_INVALID")
    if row.revoked_at is not None:
        raise AuthenticationError("the token has been revoked", code="TOKEN_REVOKED")
    if row.used_at is not None:
        revoke_families(session, revocations, [row.family_id], now)
        session.commit()
        raise AuthenticationError(
            "this refresh token was already used; every token of its login has been revoked",
            code="REFRESH_TOKEN_REUSED",
        )
    if row.expires_at <= now:
        raise AuthenticationError("the token has expired", code="TOKEN_EXPIRED")
    account = session.get(User, row.user_id)
    if account is None or not account.is_usable or account.email_verified_at is None:
        raise account_unavailable()
    row.used_at = now
    return _issue(session, settings, account, row.family_id, now)


def revoke_families(
    session: Session, revocations: RevocationList, family_ids: list[uuid.UUID], now: datetime
) -> None:
    """Revoke these families' refresh tokens (database) and access tokens (Redis)."""
    if not family_ids:
        return
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id.in_(family_ids), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    revocations.revoke_families([str(family_id) for family_id in family_ids])


def revoked_families_since(
    session: Session, within_s: int, now: datetime
) -> list[tuple[str, float]]:
    """(family id, seconds since its revocation) of the families revoked in the last
    *within_s* seconds: the authority behind segs.services.accounts.revocation's cache."""
    rows = session.execute(
        select(RefreshToken.family_id, func.max(RefreshToken.revoked_at))
        .where(RefreshToken.revoked_at > now - timedelta(seconds=within_s))
        .group_by(RefreshToken.family_id)
    )
    return [
        (str(family), (now - revoked_at).total_seconds())
        for family, revoked_at in rows
        if revoked_at is not None
    ]


def live_families(
    session: Session, settings: Settings, account_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    """The account's families that may still hold a usable refresh or access token."""
    newest_live_access = now - timedelta(seconds=settings.jwt_access_ttl_s)
    return list(
        session.scalars(
            select(RefreshToken.family_id)
            .where(
                RefreshToken.user_id == account_id,
                RefreshToken.revoked_at.is_(None),
                or_(RefreshToken.expires_at > now, RefreshToken.issued_at > newest_live_access),
            )
            .distinct()
        )
    )


def end_session(
    session: Session,
    revocations: RevocationList,
    account_id: uuid.UUID,
    access: AccessClaims,
    now: datetime,
) -> None:
    """Log out one login: its access token at once, its family's tokens with it."""
    revocations.revoke_token(access.jti, access.expires_at_s, now.timestamp())
    if access.family_id is None:
        return
    family = _uuid(access.family_id)
    if family is not None:
        session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.user_id == account_id,
                RefreshToken.family_id == family,
                RefreshToken.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    # A family with no refresh token here (minted elsewhere) is still revoked in Redis.
    revocations.revoke_families([access.family_id])


def end_all_sessions(
    session: Session,
    settings: Settings,
    revocations: RevocationList,
    account_id: uuid.UUID,
    now: datetime,
    access: AccessClaims | None = None,
) -> None:
    """Log the account out everywhere: every family's refresh and access tokens, and the
    caller's own access token when the request came with one."""
    if access is not None:
        end_session(session, revocations, account_id, access, now)
    revoke_families(session, revocations, live_families(session, settings, account_id, now), now)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
