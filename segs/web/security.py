"""Authentication wiring in one place: JWT loaders, revocation, and the role guard for views.

Views never decode tokens. They use :func:`roles_required` and :func:`current_account`; the
account is loaded from the database on every request, so a suspension or deletion takes effect
at once, and every token is checked against the Redis revocation list.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from functools import wraps
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Flask
from flask import Response
from flask_jwt_extended import current_user
from flask_jwt_extended import verify_jwt_in_request

from segs.config import Settings
from segs.db import session_scope
from segs.domain.access import ROLES
from segs.errors import PermissionDeniedError
from segs.models import User
from segs.redis_client import get_redis
from segs.services.accounts import tokens
from segs.services.accounts.revocation import RevocationList
from segs.web.errors import error_response
from segs.web.extensions import jwt

View = TypeVar("View", bound=Callable[..., Any])

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def revocation_list(settings: Settings) -> RevocationList:
    return RevocationList(get_redis(), settings.jwt_access_ttl_s, _revoked_since)


def _revoked_since(within_s: int) -> list[tuple[str, float]]:
    with session_scope() as session:
        return tokens.revoked_families_since(session, within_s, datetime.now(UTC))


def configure_jwt(app: Flask, settings: Settings) -> None:
    """Bind flask-jwt-extended to *app* with SEGS's keys, lifetimes and callbacks."""
    app.config.update(
        JWT_SECRET_KEY=settings.signing_key,
        JWT_ACCESS_TOKEN_EXPIRES=settings.jwt_access_ttl_s,
        JWT_REFRESH_TOKEN_EXPIRES=settings.jwt_refresh_ttl_s,
        # Only the Authorization header: a token in a URL would be kept in access logs.
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt.init_app(app)
    revoked = revocation_list(settings)

    @jwt.user_identity_loader
    def identity(user: User | str) -> str:
        # PyJWT >= 2.10 requires a string subject.
        return str(user.id) if isinstance(user, User) else str(user)

    @jwt.user_lookup_loader
    def load_account(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
        try:
            account_id = uuid.UUID(payload["sub"])
        except (KeyError, ValueError):
            return None
        with session_scope() as session:
            account = session.get(User, account_id)
        # None makes flask-jwt-extended answer 401 through user_lookup_error_loader.
        return account if account is not None and account.is_usable else None

    @jwt.token_in_blocklist_loader
    def is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
        return revoked.is_revoked(payload["jti"], payload.get("fam"))

    def unauthorized(code: str, message: str) -> Response:
        return error_response(401, code, message)

    @jwt.unauthorized_loader
    def missing_token(reason: str) -> Response:
        return unauthorized("UNAUTHORIZED", f"missing or malformed bearer token: {reason}")

    @jwt.invalid_token_loader
    def invalid_token(reason: str) -> Response:
        return unauthorized("TOKEN_INVALID", f"invalid token: {reason}")

    @jwt.expired_token_loader
    def expired_token(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("TOKEN_EXPIRED", "the token has expired")

    @jwt.revoked_token_loader
    def revoked_token(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("TOKEN_REVOKED", "the token has been revoked")

    @jwt.user_lookup_error_loader
    def unusable_account(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("ACCOUNT_UNAVAILABLE", "the account is suspended or no longer exists")

    @jwt.needs_fresh_token_loader
    def not_fresh(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
        return unauthorized("FRESH_TOKEN_REQUIRED", "log in again to do this")


def roles_required(*roles: str) -> Callable[[View], View]:
    """Require a valid access token of an account with one of *roles* (any role if none).

    Place it right under ``@bp.route`` (above ``@bp.arguments``), so a caller without the
    right token or role gets 401 or 403 before the body is even validated.
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")

    def decorator(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if roles and current_account().role not in roles:
                raise PermissionDeniedError(f"this needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        _document_errors(guarded, ["401", "403"] if roles else ["401"])
        return cast(View, guarded)

    return decorator


def _document_errors(view: Callable[..., Any], statuses: list[str]) -> None:
    """Add the guard's error answers to the view's OpenAPI operation (flask-smorest _apidoc)."""
    apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    responses = apidoc.setdefault("manual_doc", {}).setdefault("responses", {})
    for status in statuses:
        responses.setdefault(status, {"$ref": "#/components/responses/DEFAULT_ERROR"})
    view._apidoc = apidoc  # type: ignore[attr-defined]


def current_account() -> User:
    """The account of the verified token (call only inside a guarded view)."""
    return cast(User, current_user)
