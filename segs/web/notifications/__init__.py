"""A signed-in account's own alerts, notification preferences and webhooks."""

from segs.web.notifications.routes import bp

__all__ = ["bp"]
