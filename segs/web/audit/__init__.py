"""The audit log, for admins."""

from segs.web.audit.routes import bp

__all__ = ["bp"]
