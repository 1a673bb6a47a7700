"""The API's one error format (CONTRACT §5) and the errors services raise to produce it.

Services raise a :class:`SegsError` subclass; segs.web.errors turns it into
``{"error": {"code", "message", "details"}}`` with the status the class names.
"""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    """Return ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


class SegsError(Exception):
    """An error the client can act on: it carries its HTTP status and machine-readable code."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, details: object = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class InvalidInputError(SegsError):
    """Well-formed input that breaks a rule (a field's reason goes in ``details``)."""

    status = 422
    code = "VALIDATION_ERROR"


class AuthenticationError(SegsError):
    status = 401
    code = "UNAUTHORIZED"


class PermissionDeniedError(SegsError):
    status = 403
    code = "FORBIDDEN"


class NotFoundError(SegsError):
    status = 404
    code = "NOT_FOUND"


class ConflictError(SegsError):
    status = 409
    code = "CONFLICT"


class TooManyRequestsError(SegsError):
    """Refused for now; the client may try again after ``retry_after_s`` seconds."""

    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after_s: int, details: object = None) -> None:
        super().__init__(message, details)
        self.retry_after_s = max(1, retry_after_s)


class ServiceUnavailableError(SegsError):
    """A service SEGS needs is down; the client may try again after ``retry_after_s``."""

    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)
