"""One error format for every response: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException

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
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        data = getattr(exc, "data", None) or {}
        if status == 422 and "messages" in data:
            # webargs (via flask-smorest): {location: {field: [reasons]}}.
            response = error_response(
                422, "VALIDATION_ERROR", "the request is not valid", data["messages"]
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
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL_SERVER_ERROR", "an unexpected error occurred")
