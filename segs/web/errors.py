"""One error format for every response: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
import time

import psycopg
import redis
from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from segs.domain.text import has_control_characters
from segs.errors import SegsError
from segs.errors import error_body

logger = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details: object = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer HTTP errors and unexpected failures in the contract's JSON error format.

    Call after the extensions are bound: flask-smorest registers its own HTTPException handler,
    and the one registered last wins.
    """

    @app.errorhandler(SegsError)
    def segs_error(exc: SegsError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    # Redis or PostgreSQL down (token revocation, rate limits, login limits and the data live
    # there): the client may retry; the body names no host, port or driver message.
    @app.errorhandler(redis.RedisError)
    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(psycopg.OperationalError)
    def dependency_down(exc: Exception) -> Response:
        logger.warning("a dependency is unavailable: %s", type(exc).__name__)
        response = error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "a service SEGS depends on is unavailable; try again shortly",
        )
        response.headers["Retry-After"] = str(current_app.config["SEGS_SETTINGS"].retry_after_s)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        if status == 422 and "messages" in data:
            # webargs (via flask-smorest): {location: {field: [reasons]}}.
            response = error_response(
                422, "VALIDATION_ERROR", "the request is not valid", data["messages"]
            )
        elif status == 400 and "messages" in data:
            # webargs: a body that is not JSON, or is nested too deeply to parse.
            response = error_response(
                400, "INVALID_JSON", "the request body is not valid JSON", data["messages"]
            )
        else:
            code = (exc.name or "error").upper().replace(" ", "_")
            response = error_response(status, code, exc.description or exc.name)
        # Keep headers such as Allow (405) and Retry-After (429, 503).
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        if isinstance(exc, RateLimitExceeded):
            response.headers["Retry-After"] = str(_seconds_until_reset())
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL_SERVER_ERROR", "an unexpected error occurred")


def _seconds_until_reset() -> int:
    """Seconds until the rate limit that refused this request lets it through again."""
    limiter = current_app.extensions.get("limiter")
    current = None
    for candidate in limiter if isinstance(limiter, set) else [limiter]:
        current = current or getattr(candidate, "current_limit", None)
    if current is None:
        return 1
    return max(1, int(current.reset_at - time.time()))


def refuse_control_characters_in_path(blueprints: set[str]) -> Response | None:
    """A before_request hook: a path parameter with a control character (NUL included) names
    nothing and reaches no query; PostgreSQL text cannot even hold NUL."""
    if request.blueprint not in blueprints:
        return None
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and has_control_characters(value):
            return error_response(
                400,
                "INVALID_PATH_PARAMETER",
                f"the path parameter {name} contains control characters",
                {"path": {name: ["must not contain control characters"]}},
            )
    return None
