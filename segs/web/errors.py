"""One error format for every response: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException

from segs.errors import error_body

logger = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, details: object = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer HTTP errors and unexpected failures in the contract's JSON error format."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").upper().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL_SERVER_ERROR", "an unexpected error occurred")
