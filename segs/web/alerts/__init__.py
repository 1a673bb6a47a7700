"""Alerts for operators and admins."""

from segs.web.alerts.routes import bp

__all__ = ["bp"]
