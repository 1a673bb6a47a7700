"""Ingestion keys: what meters and head-ends authenticate with (admins only)."""

from segs.web.ingestion_keys.routes import bp

__all__ = ["bp"]
