"""Quarantined windows: region windows the flush could not write."""

from segs.web.quarantine.routes import bp

__all__ = ["bp"]
