"""Reading batches folded in groups still show in Flower as tasks, one per message."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from segs.celery_app import app
from tests import support
from tests.support import PublishedTasks
from tests.support import past_15m_window
from tests.support import post_batch
from tests.support import reading
from tests.support import wait_for

REGION = "Bangalore-East"


@pytest.fixture
def events_worker(clean_state: None, tmp_path):
    proc = support.WorkerProcess(tmp_path / "worker", events=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def test_each_batch_message_sends_the_events_flower_shows(client, events_worker):
    seen: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    ready = threading.Event()

    def on_event(event: dict[str, Any]) -> None:
        if event["type"].startswith("task-"):
            seen.setdefault(event["uuid"], []).append(event["type"])
            if event.get("name"):
                names[event["uuid"]] = event["name"]

    receivers: list[Any] = []

    def listen() -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": on_event})
            receivers.append(receiver)
            ready.set()
            # Until told to stop (ConsumerMixin checks should_stop every second).
            receiver.capture(limit=None, timeout=None, wakeup=False)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    start = past_15m_window(45)
    with PublishedTasks() as published:
        readings = [reading(f"EVT-{n}", REGION, start + n, 1.0) for n in range(40)]
        assert post_batch(client, readings)[0] == 202
    task_ids = published.snapshot()
    assert len(task_ids) > 1  # one message per shard
    wait_for(
        lambda: all("task-succeeded" in seen.get(task_id, []) for task_id in task_ids),
        timeout=30,
        message=lambda: f"published {task_ids}; seen {sorted(seen)}\n{events_worker.log()[-3000:]}",
    )
    receivers[0].should_stop = True
    listener.join(timeout=10)
    assert not listener.is_alive()
    for task_id in task_ids:
        assert seen[task_id][:1] == ["task-received"]
        assert {"task-started", "task-succeeded"} <= set(seen[task_id])
        assert names[task_id] == "segs.tasks.readings.fold_batch"
