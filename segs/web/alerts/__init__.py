"""Alerts for operators and admins, and the live feed."""

from segs.web.alerts.feed import bp as feed_bp
from segs.web.alerts.routes import bp

__all__ = ["bp", "feed_bp"]
