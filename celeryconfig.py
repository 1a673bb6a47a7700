"""Celery's settings module, read by a worker, beat or flower (``celery -A segs``): the
environment's settings, turned into Celery's by segs.celery_setup."""

from segs.celery_setup import celery_settings
from segs.config import get_settings

# Celery reads this module's names: one per Celery setting.
globals().update(celery_settings(get_settings()))
