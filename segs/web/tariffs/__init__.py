"""Tariffs: current prices, history, cost estimates, the operators' overview, admin overrides."""

from segs.web.tariffs.routes import bp

__all__ = ["bp"]
