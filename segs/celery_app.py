"""The Celery application: settings in the root ``celeryconfig`` module, tasks in segs.tasks."""

from __future__ import annotations

from celery import Celery

app = Celery("segs")
app.config_from_object("celeryconfig")
