"""Accounts: each caller's own profile, and account management for admins."""

from segs.web.users.routes import bp

__all__ = ["bp"]
