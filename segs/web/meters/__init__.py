"""The meter registry: meters in the caller's scope; registering, retiring, assigning (admins)."""

from segs.web.meters.routes import bp

__all__ = ["bp"]
