"""Rate-limit keys for Flask-Limiter: per token, per client address, per account."""

from __future__ import annotations

from flask import request
from flask_jwt_extended import decode_token
from flask_limiter.util import get_remote_address


def token_or_ip() -> str:
    """Key the general limit by the caller's account when a valid token is sent, else by IP.

    The limit is checked before the view authenticates, so the token is decoded here; an
    invalid token falls back to the address (and the view then answers 401).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme == "Bearer" and raw:
        try:
            subject = decode_token(raw)["sub"]
        except Exception:  # any undecodable token is simply not a key
            subject = None
        if subject:
            return f"account:{subject}"
    return f"ip:{get_remote_address()}"


def client_ip() -> str:
    return f"ip:{get_remote_address()}"


def account_and_client() -> str:
    """Key by the email address a login, code or reset request names (lower-cased) together
    with the client address: a stranger spending an account's budget spends only their own,
    so the owner is never refused for someone else's requests."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        return f"account:{email.strip().lower()}:ip:{get_remote_address()}"
    return f"ip:{get_remote_address()}"
