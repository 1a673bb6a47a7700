"""The Celery application: settings in the root ``celeryconfig`` module, tasks in segs.tasks."""

from __future__ import annotations

import orjson
from celery import Celery
from kombu.serialization import register

# Reading batches are hundreds of rows; orjson encodes and decodes them several times faster
# than the standard library, on the API's hot path and the worker's.
register(
    "orjson",
    orjson.dumps,
    orjson.loads,
    content_type="application/x-orjson",
    content_encoding="binary",
)

app = Celery("segs")
app.config_from_object("celeryconfig")
