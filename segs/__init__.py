"""SEGS: smart-meter telemetry backend.

``celery -A segs worker|beat|flower`` finds the Celery application as ``segs.app``.
"""

from segs.celery_app import app

__all__ = ["app"]
