"""The Celery application, tasks in segs.tasks.

A worker, beat or flower (``celery -A segs``) reads its settings from the root ``celeryconfig``
module (the environment's); the tests configure the app with their own through
:meth:`SegsCelery.configure_from`. Either way tasks read them as ``app.segs_settings``.
"""

from __future__ import annotations

import orjson
from celery import Celery
from kombu.serialization import register

from segs.celery_setup import celery_settings
from segs.config import Settings
from segs.config import get_settings

# Reading batches are hundreds of rows; orjson encodes and decodes them several times faster
# than the standard library, on the API's hot path and the worker's.
register(
    "orjson",
    orjson.dumps,
    orjson.loads,
    content_type="application/x-orjson",
    content_encoding="binary",
)


class SegsCelery(Celery):
    """The Celery app and the SEGS settings it is configured from."""

    _segs_settings: Settings | None = None

    def configure_from(self, settings: Settings) -> None:
        """Configure the app from *settings* instead of the environment."""
        self._segs_settings = settings
        self.config_from_object(celery_settings(settings))

    @property
    def segs_settings(self) -> Settings:
        if self._segs_settings is None:
            # Not configured by hand: celeryconfig's settings, the environment's.
            self._segs_settings = get_settings()
        return self._segs_settings


app = SegsCelery("segs")
app.config_from_object("celeryconfig")
