"""On the real broker, each task's message reaches the queue the old routes sent it to."""

from __future__ import annotations

import importlib
from unittest import mock

import pytest

import celeryconfig
from segs.celery_app import app
from segs.tasks.queues import queue_depths
from tests.support import purge_queues
from tests.unit.test_task_declarations import EXPECTED_QUEUES

pytestmark = pytest.mark.integration


def test_each_task_is_published_to_its_queue(clean_state):
    for module in celeryconfig.imports:
        importlib.import_module(module)
    queues = sorted(set(EXPECTED_QUEUES.values()))
    try:
        for name, queue in EXPECTED_QUEUES.items():
            before = queue_depths(queues)
            task = app.tasks[name]
            # No worker runs: only where the message waits matters, not its arguments.
            with mock.patch.object(task, "typing", False):
                task.apply_async()
            after = queue_depths(queues)
            grown = {q for q in queues if after[q] > before[q]}
            assert grown == {queue}, name
    finally:
        purge_queues()
