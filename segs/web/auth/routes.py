"""Account views: register, verify the email, log in, refresh, log out, change or reset the
password.

Every view that takes an email address or a password is limited per client address (one
budget for all of them) and per account and client address (a budget for each view, so
password reset does not spend the login budget). Failed logins are counted apart, with growing
delays (segs.services.accounts.login_guard).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from typing import Any

from flask_jwt_extended import get_jwt
from flask_limiter.util import get_remote_address

from segs.db import session_scope
from segs.domain.codes import OutgoingMail
from segs.services.accounts import identity as accounts
from segs.services.accounts import tokens
from segs.tasks.mail import send_email
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
from segs.web.field_names import answering_with
from segs.web.limits import account_and_client
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
# The request's names for what the account services' errors name by meaning.
API_FIELDS = {
    "current_password": "currentPassword",
    "new_password": "newPassword",
    "attempts_left": "attemptsLeft",
}


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


# One budget per client address, shared by all of these views.
per_ip = limiter.shared_limit(
    _setting("rate_limit_auth_per_ip"),
    scope="auth-ip",
    key_func=client_ip,
    error_message="too many account requests from this address; try again later",
)


def per_account() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A budget per view, account and client address (a new one for each view)."""
    return limiter.limit(
        _setting("rate_limit_auth_per_account"),
        key_func=account_and_client,
        error_message="too many requests for this account; try again later",
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


def _mail_a_code(
    request_code: Callable[..., OutgoingMail | None], body: dict[str, Any]
) -> dict[str, str]:
    """Store a code with *request_code*, queue its mail once committed, and answer CODE_SENT,
    which tells nothing of whether the address has an account."""
    with session_scope() as session:
        mail = request_code(session, current_settings(), **body, now=_now())
    _enqueue(mail)
    return CODE_SENT


def _code_request(view: Callable[..., Any]) -> Callable[..., Any]:
    """The limits and documented answers of a view that mails a code to an address."""
    for decorate in reversed(
        (
            per_ip,
            per_account(),
            bp.arguments(CodeRequestSchema),
            bp.response(202, CodeSentSchema),
            LIMITED,
            bp.doc(security=[]),
        )
    ):
        view = decorate(view)
    return view


@bp.post("/register")
@per_ip
@per_account()
@bp.arguments(RegisterSchema)
@bp.response(202, CodeSentSchema)
@LIMITED
@bp.doc(security=[])
def register(body: dict[str, Any]) -> dict[str, str]:
    """Create an account and email it a verification code, valid for 10 minutes.

    Answers the same whether or not the address is taken; a taken address's owner is told by
    mail instead."""
    return _mail_a_code(accounts.register, body)


@bp.post("/verify-email")
@per_ip
@per_account()
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
    with answering_with(API_FIELDS), session_scope() as session:
        grant = accounts.verify_email(session, auth_context(), **body, now=_now())
        return token_body(grant)


@bp.post("/resend-code")
@_code_request
def resend_code(body: dict[str, Any]) -> dict[str, str]:
    """Send a new verification code; earlier codes stop working. Says the same for any address."""
    return _mail_a_code(accounts.resend_verification, body)


@bp.post("/login")
@per_ip
@per_account()
@bp.arguments(LoginSchema)
@bp.response(200, TokensSchema)
@_error(401, "INVALID_CREDENTIALS: unknown address or wrong password")
@_error(403, "ACCOUNT_SUSPENDED or EMAIL_NOT_VERIFIED (told only for the right password)")
@_error(503, "SERVICE_UNAVAILABLE: failed logins cannot be counted now (Retry-After)")
@LIMITED
@bp.doc(security=[])
def login(body: dict[str, Any]) -> dict[str, Any]:
    """Log in with email and password.

    After SEGS_LOGIN_FREE_FAILURES_PER_CLIENT failures from one address, that address waits
    (429 with Retry-After) 1, 2, 4... s between tries; the owner's own address is counted
    apart. The owner is mailed when their account collects many failures."""
    try:
        with session_scope() as session:
            grant = accounts.login(
                session, auth_context(), **body, client_address=get_remote_address(), now=_now()
            )
            return token_body(grant)
    except accounts.LoginFailedError as failed:
        _enqueue(failed.owner_mail)
        raise


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
    with answering_with(API_FIELDS), session_scope() as session:
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
@_code_request
def forgot_password(body: dict[str, Any]) -> dict[str, str]:
    """Email a password reset code. Says the same whether or not the address has an account."""
    return _mail_a_code(accounts.request_password_reset, body)


@bp.post("/reset-password")
@per_ip
@per_account()
@bp.arguments(ResetPasswordSchema)
@bp.response(204)
@CODE_REFUSED
@LIMITED
@bp.doc(security=[])
def reset_password(body: dict[str, Any]) -> None:
    """Set a new password with the emailed reset code; every login of the account ends."""
    with answering_with(API_FIELDS), session_scope() as session:
        accounts.reset_password(session, auth_context(), **body, now=_now())
