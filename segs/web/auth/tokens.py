"""Signed tokens for a session grant, and the claims of a presented refresh token."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
from flask import current_app
from flask_jwt_extended import create_access_token
from flask_jwt_extended import create_refresh_token
from flask_jwt_extended import decode_token
from flask_jwt_extended.exceptions import JWTExtendedException

from segs.config import Settings
from segs.db import session_scope
from segs.errors import AuthenticationError
from segs.redis_client import get_redis
from segs.services.accounts.identity import AuthContext
from segs.services.accounts.login_guard import LoginGuard
from segs.services.accounts.passwords import Passwords
from segs.services.accounts.tokens import RefreshClaims
from segs.services.accounts.tokens import SessionGrant
from segs.web.security import revocation_list


def current_settings() -> Settings:
    settings: Settings = current_app.config["SEGS_SETTINGS"]
    return settings


def auth_context() -> AuthContext:
    settings = current_settings()
    return AuthContext(
        settings,
        Passwords(settings),
        revocation_list(settings),
        LoginGuard(get_redis(), settings, session_scope),
    )


def token_body(grant: SessionGrant) -> dict[str, Any]:
    """The login answer: both tokens of the grant's family, their lifetime and the account."""
    identity = str(grant.account.id)
    family = {"fam": grant.family_id}
    refresh_claims = {**family, "jti": grant.refresh_jti, "exp": grant.refresh_expires_at}
    return {
        "access_token": create_access_token(identity=identity, additional_claims=family),
        "refresh_token": create_refresh_token(identity=identity, additional_claims=refresh_claims),
        "expires_in": current_settings().jwt_access_ttl_s,
        "user": grant.account,
    }


def refresh_claims(raw: str) -> RefreshClaims:
    """Verify a refresh token's signature, lifetime and type.

    :raises AuthenticationError: TOKEN_EXPIRED or TOKEN_INVALID.
    """
    try:
        payload = decode_token(raw)
    except pyjwt.ExpiredSignatureError as exc:
        raise AuthenticationError("the token has expired", code="TOKEN_EXPIRED") from exc
    except (pyjwt.InvalidTokenError, JWTExtendedException) as exc:
        raise AuthenticationError(f"invalid token: {exc}", code="TOKEN_INVALID") from exc
    if payload.get("type") != "refresh" or not payload.get("jti"):
        raise AuthenticationError("this is not a refresh token", code="TOKEN_INVALID")
    return RefreshClaims(
        jti=str(payload["jti"]), subject=str(payload["sub"]), family_id=payload.get("fam")
    )
