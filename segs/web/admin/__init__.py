"""System statistics for admins."""

from segs.web.admin.routes import bp

__all__ = ["bp"]
