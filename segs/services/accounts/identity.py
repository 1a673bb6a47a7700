"""Account use cases: register, verify by emailed code, log in, change and reset the password.

Registration takes no password. The emailed code proves the address, and the password is
chosen in the same request that presents the code, so nobody can claim an account they cannot
read the mail of. Registering a taken address answers the same as a new one (no enumeration)
and mails the address's owner instead. Codes leave this module as :class:`OutgoingMail` for the
caller to enqueue once the transaction has committed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.domain.access import USER
from segs.domain.accounts import ACTIVE
from segs.domain.accounts import normalize_email
from segs.domain.accounts import password_problems
from segs.domain.codes import RESET_PASSWORD
from segs.domain.codes import VERIFY_EMAIL
from segs.domain.codes import OutgoingMail
from segs.domain.codes import account_exists_mail
from segs.domain.codes import attack_warning_mail
from segs.domain.codes import code_mail
from segs.errors import AuthenticationError
from segs.errors import InvalidInputError
from segs.errors import PermissionDeniedError
from segs.errors import TooManyRequestsError
from segs.models import Region
from segs.models import User
from segs.services.accounts import codes
from segs.services.accounts import tokens
from segs.services.accounts.login_guard import LoginGuard
from segs.services.accounts.passwords import Passwords
from segs.services.accounts.revocation import RevocationList
from segs.services.accounts.tokens import SessionGrant


@dataclass(frozen=True)
class AuthContext:
    """The settings and helpers every account operation needs."""

    settings: Settings
    passwords: Passwords
    revocations: RevocationList
    login_guard: LoginGuard


class LoginFailedError(AuthenticationError):
    """INVALID_CREDENTIALS; *owner_mail* tells the account's owner of an attack, when due."""

    def __init__(self, owner_mail: OutgoingMail | None) -> None:
        super().__init__("wrong email or password", code="INVALID_CREDENTIALS")
        self.owner_mail = owner_mail


def _active_account(session: Session, email: str) -> User | None:
    """The account that holds *email* now (deleted accounts have given theirs up)."""
    return session.scalars(
        select(User).where(User.email == normalize_email(email), User.deleted_at.is_(None))
    ).first()


def _require_password_rule(password: str, email: str, field: str) -> None:
    problems = password_problems(password, email)
    if problems:
        raise InvalidInputError("the password does not meet the rule", {field: problems})


def _new_code_mail(
    session: Session, settings: Settings, account: User | None, purpose: str, now: datetime
) -> OutgoingMail | None:
    """Issue a *purpose* code to *account* and return the mail that carries it; None without
    an account, or when the account may ask for no more codes today."""
    if account is None:
        return None
    code = codes.issue_code(session, settings, account.id, purpose, now)
    if code is None:
        return None
    return code_mail(purpose, account.email, code, settings.verification_code_ttl_s)


def register(
    session: Session,
    settings: Settings,
    *,
    name: str,
    email: str,
    region: str,
    timezone: str,
    phone: str | None,
    now: datetime,
) -> OutgoingMail | None:
    """Create an unverified USER account and the mail with the code that verifies it.

    A taken address gets the same answer (the caller cannot tell), and its owner gets a mail
    saying so instead; an address still awaiting verification gets a fresh code.

    :raises InvalidInputError: unknown region.
    """
    if session.get(Region, region) is None:
        raise InvalidInputError("unknown region", {"region": [f"unknown region {region!r}"]})
    existing = _active_account(session, email)
    if existing is not None:
        return _mail_for_taken_address(session, settings, existing, now)
    account = User(
        id=uuid.uuid4(),
        email=normalize_email(email),
        name=name.strip(),
        phone=phone,
        role=USER,
        region=region,
        timezone=timezone,
        status=ACTIVE,
    )
    session.add(account)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # a concurrent registration of the same address won
        session.expunge(account)
        return None
    return _new_code_mail(session, settings, account, VERIFY_EMAIL, now)


def _mail_for_taken_address(
    session: Session, settings: Settings, account: User, now: datetime
) -> OutgoingMail | None:
    if account.email_verified_at is None:
        if account.status != ACTIVE:
            return None
        return _new_code_mail(session, settings, account, VERIFY_EMAIL, now)
    return account_exists_mail(account.email)


def _awaiting_verification(session: Session, email: str) -> User | None:
    account = _active_account(session, email)
    if account is None or account.email_verified_at is not None or account.status != ACTIVE:
        return None
    return account


def verify_email(
    session: Session, ctx: AuthContext, *, email: str, code: str, password: str, now: datetime
) -> SessionGrant:
    """Check the emailed code, set the account's first password and log it in.

    The password is checked before the code, so a weak password does not cost an attempt.
    """
    _require_password_rule(password, normalize_email(email), "password")
    account = _awaiting_verification(session, email)
    if account is None:
        raise codes.no_valid_code()
    codes.consume_code(session, ctx.settings, account.id, VERIFY_EMAIL, code, now)
    account.email_verified_at = now
    account.password_hash = ctx.passwords.hash(password)
    account.last_login_at = now
    return tokens.start_session(session, ctx.settings, account, now)


def resend_verification(
    session: Session, settings: Settings, *, email: str, now: datetime
) -> OutgoingMail | None:
    """Replace the pending verification code, if the address awaits one (else do nothing)."""
    account = _awaiting_verification(session, email)
    return _new_code_mail(session, settings, account, VERIFY_EMAIL, now)


def login(
    session: Session,
    ctx: AuthContext,
    *,
    email: str,
    password: str,
    client_address: str,
    now: datetime,
) -> SessionGrant:
    """Check the password and open a session.

    The state of the account is told only to someone who knows its password.

    :raises TooManyRequestsError: this client (or, briefly, anyone) must wait before trying
        this account again after failed tries (segs.services.accounts.login_guard).
    :raises LoginFailedError: INVALID_CREDENTIALS (unknown address, deleted account or
        wrong password; one hash is computed in every case, against timing).
    :raises PermissionDeniedError: ACCOUNT_SUSPENDED or EMAIL_NOT_VERIFIED.
    """
    key = normalize_email(email)
    now_s = now.timestamp()
    wait = ctx.login_guard.retry_after(key, client_address, now_s)
    if wait:
        raise TooManyRequestsError(
            "too many failed logins for this account from here; try again later", wait
        )
    account = _active_account(session, email)
    stored_hash = account.password_hash if account is not None else None
    if not ctx.passwords.verify(stored_hash, password) or account is None:
        under_attack = ctx.login_guard.record_failure(key, client_address, now_s)
        tell_owner = under_attack and account is not None and account.is_usable
        raise LoginFailedError(
            attack_warning_mail(account.email) if tell_owner and account is not None else None
        )
    ctx.login_guard.record_success(key, client_address)
    if account.status != ACTIVE:
        raise PermissionDeniedError("the account is suspended", code="ACCOUNT_SUSPENDED")
    if account.email_verified_at is None:
        raise PermissionDeniedError(
            "verify the email address before logging in", code="EMAIL_NOT_VERIFIED"
        )
    if stored_hash is not None and ctx.passwords.needs_rehash(stored_hash):
        account.password_hash = ctx.passwords.hash(password)
    account.last_login_at = now
    return tokens.start_session(session, ctx.settings, account, now)


def change_password(
    session: Session,
    ctx: AuthContext,
    *,
    account_id: uuid.UUID,
    current_password: str,
    new_password: str,
    access: tokens.AccessClaims,
    now: datetime,
) -> SessionGrant:
    """Replace the password, end every session (the caller's too) and open a new one.

    :raises InvalidInputError: INVALID_CURRENT_PASSWORD, or a new password that breaks the
        rule or equals the current one.
    """
    account = session.get(User, account_id)
    if account is None or not account.is_usable:
        raise tokens.account_unavailable()
    if not ctx.passwords.verify(account.password_hash, current_password):
        raise InvalidInputError(
            "the current password is not correct",
            {"current_password": ["is not correct"]},
            code="INVALID_CURRENT_PASSWORD",
        )
    _require_password_rule(new_password, account.email, "new_password")
    if new_password == current_password:
        raise InvalidInputError(
            "the new password is the current one",
            {"new_password": ["must differ from the current password"]},
        )
    account.password_hash = ctx.passwords.hash(new_password)
    tokens.end_all_sessions(session, ctx.settings, ctx.revocations, account.id, now, access)
    return tokens.start_session(session, ctx.settings, account, now)


def _resettable(session: Session, email: str) -> User | None:
    account = _active_account(session, email)
    if account is None or account.email_verified_at is None or account.status != ACTIVE:
        return None
    return account


def request_password_reset(
    session: Session, settings: Settings, *, email: str, now: datetime
) -> OutgoingMail | None:
    """Issue a reset code if the address belongs to a verified, active account."""
    account = _resettable(session, email)
    return _new_code_mail(session, settings, account, RESET_PASSWORD, now)


def reset_password(
    session: Session,
    ctx: AuthContext,
    *,
    email: str,
    code: str,
    new_password: str,
    now: datetime,
) -> None:
    """Set a new password with an emailed reset code and end every session of the account."""
    _require_password_rule(new_password, normalize_email(email), "new_password")
    account = _resettable(session, email)
    if account is None:
        raise codes.no_valid_code()
    codes.consume_code(session, ctx.settings, account.id, RESET_PASSWORD, code, now)
    account.password_hash = ctx.passwords.hash(new_password)
    tokens.end_all_sessions(session, ctx.settings, ctx.revocations, account.id, now)
