"""One-time email codes in the database: only the newest counts, wrong tries are counted first."""

from __future__ import annotations

import uuid
from datetime import datetime
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.codes import code_digest
from segs.domain.codes import digests_match
from segs.domain.codes import new_code
from segs.errors import AuthenticationError
from segs.models import VerificationCode


def no_valid_code() -> AuthenticationError:
    """The answer when there is nothing to check against (also for an unknown address)."""
    return AuthenticationError(
        "there is no valid code for this address: it expired, was used or was replaced; "
        "request a new one",
        code="CODE_EXPIRED",
    )


def issue_code(
    session: Session, settings: Settings, account_id: uuid.UUID, purpose: str, now: datetime
) -> str | None:
    """Store a new code for *purpose*, replacing any earlier one, and return it in clear; None
    once SEGS_CODES_PER_DAY codes were issued in the last 24 hours (so at most that many times
    SEGS_VERIFICATION_CODE_ATTEMPTS guesses a day per account and purpose).

    Earlier codes stay (only the newest counts) until they are a day old, to be counted.
    """
    day_ago = now - timedelta(days=1)
    mine = (VerificationCode.user_id == account_id, VerificationCode.purpose == purpose)
    session.execute(delete(VerificationCode).where(*mine, VerificationCode.created_at < day_ago))
    issued = session.scalar(select(func.count()).select_from(VerificationCode).where(*mine))
    if (issued or 0) >= settings.codes_per_day:
        return None
    code = new_code()
    session.add(
        VerificationCode(
            user_id=account_id,
            purpose=purpose,
            code_hash=code_digest(settings.signing_key, purpose, str(account_id), code),
            attempts=0,
            expires_at=now + timedelta(seconds=settings.verification_code_ttl_s),
            created_at=now,
        )
    )
    session.flush()
    return code


def consume_code(
    session: Session,
    settings: Settings,
    account_id: uuid.UUID,
    purpose: str,
    code: str,
    now: datetime,
) -> None:
    """Mark the account's current code used if *code* is it; otherwise raise.

    The row is locked, so concurrent tries are counted one after the other. A wrong try is
    committed before raising: the caller's rollback must not give the attempt back.

    :raises AuthenticationError: CODE_EXPIRED (none, used, replaced or expired),
        CODE_ATTEMPTS_EXCEEDED (too many wrong tries) or INVALID_CODE (wrong, with the tries
        left in ``details``).
    """
    current = session.scalars(
        select(VerificationCode)
        .where(VerificationCode.user_id == account_id, VerificationCode.purpose == purpose)
        .order_by(VerificationCode.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if current is None or current.consumed_at is not None or current.expires_at <= now:
        raise no_valid_code()
    allowed = settings.verification_code_attempts
    if current.attempts >= allowed:
        raise AuthenticationError(
            f"this code was entered wrongly {allowed} times; request a new one",
            code="CODE_ATTEMPTS_EXCEEDED",
        )
    current.attempts += 1
    session.flush()
    candidate = code_digest(settings.signing_key, purpose, str(account_id), code)
    if not digests_match(current.code_hash, candidate):
        attempts_left = allowed - current.attempts
        session.commit()
        raise AuthenticationError(
            "the code is not correct", {"attempts_left": attempts_left}, code="INVALID_CODE"
        )
    current.consumed_at = now
