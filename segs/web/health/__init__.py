"""Liveness, readiness and Prometheus metrics."""

from segs.web.health.routes import bp

__all__ = ["bp"]
