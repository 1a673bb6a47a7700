"""Reading ingestion: ``POST /telemetry`` and ``POST /telemetry/batch`` (CONTRACT §3)."""

from segs.web.telemetry.routes import bp

__all__ = ["bp"]
