"""The periodic jobs run by ``celery -A segs beat`` with the environment's settings (the
schedule itself is segs.celery_setup.beat_schedule)."""

from segs.celery_setup import beat_schedule
from segs.config import get_settings

BEAT_SCHEDULE = beat_schedule(get_settings())
