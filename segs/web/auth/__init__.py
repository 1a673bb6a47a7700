"""``/api/v1/auth``: accounts and sessions."""

from segs.web.auth.routes import bp

__all__ = ["bp"]
