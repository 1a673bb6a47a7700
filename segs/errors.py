"""The API's one error format (CONTRACT §5), shared by the Flask handlers and ingestion."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    """Return ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}
