"""celery-batches' buffering, with acknowledgements that keep the promise of acks_late.

celery-batches (a Celery task base) buffers a task's messages in the worker's main process and
hands them to a pool process as one list, every ``flush_every`` messages or ``flush_interval``
seconds. Its own flush acknowledges every message when the call returns, even when the call
failed, and never acknowledges nor requeues them when the pool process dies. AckedBatches keeps
the buffering and replaces that step:
- the run returns a mapping keyed by the ids of the messages it settled; only those are
  acknowledged, the others go back to their queue;
- a lost pool process (killed, out of memory) sends them all back, as reject_on_worker_lost
  does for ordinary tasks;
- each message gets the task-received, task-started and task-succeeded events an ordinary
  task gets (celery-batches sends none), so Flower shows it: received and started when its
  group is handed to a pool process, succeeded when it is acknowledged.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from celery.worker.request import Request
from celery_batches import Batches
from celery_batches import SimpleRequest
from celery_batches.trace import apply_batches_task


class AckedBatches(Batches):
    abstract = True

    def flush(self, requests: Collection[Request]) -> Any:
        simple = [SimpleRequest.from_request(request) for request in requests]
        for request in requests:
            request.send_event(
                "task-received",
                name=request.name,
                args=request.argsrepr,
                kwargs=request.kwargsrepr,
                root_id=request.root_id,
                parent_id=request.parent_id,
                retries=request.request_dict.get("retries", 0),
            )
            # When its group is handed to the pool (the pool's accept callback did not fire for
            # these jobs when tried).
            request.send_event("task-started")

        def on_return(settled: dict[str, Any] | None) -> None:
            done = settled or {}
            for request in requests:
                if request.id in done:
                    request.acknowledge()
                    request.send_event("task-succeeded", result=repr(done[request.id]))
                else:
                    request.reject(requeue=True)

        def on_lost(_exc: Any) -> None:
            for request in requests:
                request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, (simple,), 0, None),
            callback=on_return,
            error_callback=on_lost,
        )
