"""Account views: register, verify the email, log in, refresh, log out, change or reset the
password.

Every view that takes an email address or a password is limited per client address and per
account (the address in the body); failed logins have a tighter limit of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Any

from flask_jwt_extended import get_jwt

from segs.db import session_scope
from segs.domain.codes import OutgoingMail
from segs.models import User
from segs.services import accounts
from segs.services import tokens
from segs.tasks.mail import send_email
from segs.web.auth.schemas import AccountSchema
from segs.web.auth.schemas import ChangePasswordSchema
from segs.web.auth.schemas import CodeRequestSchema
from segs.web.auth.schemas import CodeSentSchema
from segs.web.auth.schemas import LoginSchema
from segs.web.auth.schemas import RefreshSchema
from segs.web.auth.schemas import RegisterSchema
from segs.web.auth.schemas import ResetPasswordSchema
from segs.web.auth.schemas import TokensSchema
from segs.web.auth.schemas import VerifyEmailSchema
from segs.web.auth.tokens import auth_context
from segs.web.auth.tokens import current_settings
from segs.web.auth.tokens import refresh_claims
from segs.web.auth.tokens import token_body
from segs.web.extensions import limiter
from segs.web.limits import account_in_body
from segs.web.limits import client_ip
from segs.web.limits import token_or_ip
from segs.web.parsing import Blueprint
from segs.web.schemas import ErrorSchema
from segs.web.security import current_account
from segs.web.security import roles_required

logger = logging.getLogger(__name__)

bp = Blueprint(
    "auth",
    __name__,
    url_prefix="/auth",
    description="Registration with an emailed code, login, token refresh with rotation, logout, "
    "password change and reset.",
)

CODE_SENT = {"message": "if this address can receive a code, one is on its way"}


def _error(status: int, description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Document an error answer of a view."""
    return bp.alt_response(status, schema=ErrorSchema, description=description)


LIMITED = bp.alt_response(
    429,
    schema=ErrorSchema,
    description="TOO_MANY_REQUESTS: an abuse limit was reached",
    headers={"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
)
CODE_REFUSED = _error(
    401, "INVALID_CODE (details.attemptsLeft), CODE_EXPIRED or CODE_ATTEMPTS_EXCEEDED"
)


def _setting(name: str) -> Callable[[], str]:
    """A limit read from the app's settings on each request (tests use other values)."""
    return lambda: str(getattr(current_settings(), name))


# One budget per client address and one per account, shared by all of these views.
per_ip = limiter.shared_limit(
    _setting("rate_limit_auth_per_ip"),
    scope="auth-ip",
    key_func=client_ip,
    error_message="too many account requests from this address; try again later",
)
per_account = limiter.shared_limit(
    _setting("rate_limit_auth_per_account"),
    scope="auth-account",
    key_func=account_in_body,
    error_message="too many requests for this account; try again later",
)
# Failed logins only (answered 401), so the owner's successful logins do not use the budget.
failed_logins = limiter.limit(
    _setting("login_failures_per_account"),
    key_func=account_in_body,
    deduct_when=lambda response: response.status_code == 401,
    error_message="too many failed logins for this account; try again later",
)


def _now() -> datetime:
    return datetime.now(UTC)


def _access_claims() -> tokens.AccessClaims:
    claims = get_jwt()
    return tokens.AccessClaims(claims["jti"], int(claims["exp"]), claims.get("fam"))


def _enqueue(mail: OutgoingMail | None) -> None:
    """Queue *mail* for the worker, after the commit; the code stays out of logs and Flower."""
    if mail is None:
        return
    try:
        send_email.apply_async(
            kwargs={"to": mail.to, "subject": mail.subject, "body": mail.body},
            kwargsrepr=repr({"subject": mail.subject}),
        )
    except Exception:  # the code is stored: the client can ask for it again
        logger.exception("could not queue a mail")


@bp.post("/register")
@per_ip
@per_account
@bp.arguments(RegisterSchema)
@bp.response(201, AccountSchema)
@_error(409, "EMAIL_TAKEN: an account already holds this address")
@LIMITED
@bp.doc(security=[])
def register(body: dict[str, Any]) -> User:
    """Create an account and email it a verification code, valid for 10 minutes."""
    with session_scope() as session:
        registration = accounts.register(session, current_settings(), **body, now=_now())
    _enqueue(registration.mail)
    return registration.account


@bp.post("/verify-email")
@per_ip
@per_account
@bp.arguments(VerifyEmailSchema)
@bp.response(200, TokensSchema)
@CODE_REFUSED
@LIMITED
@bp.doc(security=[])
def verify_email(body: dict[str, Any]) -> dict[str, Any]:
    """Enter the emailed code and choose the password; answers like a login.

    A code allows 5 tries (SEGS_VERIFICATION_CODE_ATTEMPTS); a wrong one answers 401
    INVALID_CODE with ``attemptsLeft``.
    """
    with session_scope() as session:
        grant = accounts.verify_email(session, auth_context(), **body, now=_now())
        return token_body(grant)


@bp.post("/resend-code")
@per_ip
@per_account
@bp.arguments(CodeRequestSchema)
@bp.response(202, CodeSentSchema)
@LIMITED
@bp.doc(security=[])
def resend_code(body: dict[str, Any]) -> dict[str, str]:
    """Send a new verification code; earlier codes stop working. Says the same for any address."""
    with session_scope() as session:
        mail = accounts.resend_verification(session, current_settings(), **body, now=_now())
    _enqueue(mail)
    return CODE_SENT


@bp.post("/login")
@per_ip
@per_account
@failed_logins
@bp.arguments(LoginSchema)
@bp.response(200, TokensSchema)
@_error(401, "INVALID_CREDENTIALS: unknown address or wrong password")
@_error(403, "ACCOUNT_SUSPENDED or EMAIL_NOT_VERIFIED (told only for the right password)")
@LIMITED
@bp.doc(security=[])
def login(body: dict[str, Any]) -> dict[str, Any]:
    """Log in with email and password; the 11th failure in 15 minutes locks the account (429)."""
    with session_scope() as session:
        grant = accounts.login(session, auth_context(), **body, now=_now())
        return token_body(grant)


@bp.post("/refresh")
@bp.arguments(RefreshSchema)
@bp.response(200, TokensSchema)
@_error(
    401,
    "TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED, REFRESH_TOKEN_REUSED (the login is revoked) "
    "or ACCOUNT_UNAVAILABLE",
)
@bp.doc(security=[])
def refresh(body: dict[str, Any]) -> dict[str, Any]:
    """Trade a refresh token for a new pair. A token works once: reuse revokes its login."""
    claims = refresh_claims(body["refresh_token"])
    ctx = auth_context()
    with session_scope() as session:
        grant = tokens.rotate(session, ctx.settings, ctx.revocations, claims, _now())
        return token_body(grant)


@bp.post("/logout")
@bp.response(204)
@roles_required()
def logout() -> None:
    """End this login: its access and refresh tokens stop working at once."""
    with session_scope() as session:
        tokens.end_session(
            session, auth_context().revocations, current_account().id, _access_claims(), _now()
        )


@bp.post("/logout-all")
@bp.response(204)
@roles_required()
def logout_all() -> None:
    """End every login of the account, this one included."""
    ctx = auth_context()
    with session_scope() as session:
        tokens.end_all_sessions(
            session, ctx.settings, ctx.revocations, current_account().id, _now(), _access_claims()
        )


@bp.post("/change-password")
@limiter.limit(
    _setting("rate_limit_auth_per_account"),
    key_func=token_or_ip,
    error_message="too many requests for this account; try again later",
)
@bp.arguments(ChangePasswordSchema)
@bp.response(200, TokensSchema)
@LIMITED
@roles_required()
def change_password(body: dict[str, Any]) -> dict[str, Any]:
    """Change the password with the current one; every login ends and a new one starts."""
    with session_scope() as session:
        grant = accounts.change_password(
            session,
            auth_context(),
            account_id=current_account().id,
            **body,
            access=_access_claims(),
            now=_now(),
        )
        return token_body(grant)


@bp.post("/forgot-password")
@per_ip
@per_account
@bp.arguments(CodeRequestSchema)
@bp.response(202, CodeSentSchema)
@LIMITED
@bp.doc(security=[])
def forgot_password(body: dict[str, Any]) -> dict[str, str]:
    """Email a password reset code. Says the same whether or not the address has an account."""
    with session_scope() as session:
        mail = accounts.request_password_reset(session, current_settings(), **body, now=_now())
    _enqueue(mail)
    return CODE_SENT


@bp.post("/reset-password")
@per_ip
@per_account
@bp.arguments(ResetPasswordSchema)
@bp.response(204)
@CODE_REFUSED
@LIMITED
@bp.doc(security=[])
def reset_password(body: dict[str, Any]) -> None:
    """Set a new password with the emailed reset code; every login of the account ends."""
    with session_scope() as session:
        accounts.reset_password(session, auth_context(), **body, now=_now())
