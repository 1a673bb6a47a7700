"""Reading batches: one task message per shard per ingestion request, on queue
``readings.<shard>``; a worker folds many of them in one go (segs.tasks.batched)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from typing import Any

import redis
from celery import signals
from celery.utils.log import get_task_logger
from celery_batches import SimpleRequest
from kombu import serialization
from kombu.entity import maybe_delivery_mode

from segs import broker
from segs import metrics
from segs.celery_app import app
from segs.db import own_connection
from segs.domain.readings import ReadingRow
from segs.domain.sharding import queue_for_shard
from segs.services.shared.outages import is_outage
from segs.services.spine import dead_letters
from segs.services.spine.archive import Batch
from segs.services.spine.archive import GroupOutcome
from segs.services.spine.archive import archive_and_fold_group
from segs.tasks.alerts import get_detection_store
from segs.tasks.alerts import store_findings
from segs.tasks.batched import AckedBatches
from segs.tasks.queues import queue_depths
from segs.tasks.retries import RETRIED_BY_NEXT_RUN
from segs.tasks.stores import get_pending_ledger
from segs.tasks.stores import get_window_store

logger = get_task_logger(__name__)

# Longest wait between two tries of a batch.
_BACKOFF_MAX_S = 60

_settings = app.segs_settings
_REDIS_BROKER = _settings.broker_url.startswith(("redis", "rediss"))


@dataclass(frozen=True)
class Message:
    """One fold_batch message: its batch (with the shard whose queue it came from) and how
    often it failed."""

    batch: Batch
    data_failures: int
    retries: int


FOLD_BATCH = "segs.tasks.readings.fold_batch"


@app.task(
    base=AckedBatches,
    name=FOLD_BATCH,
    # No queue here: each batch is sent to its shard's queue, readings.<k> (publish_batches).
    # No retry policy here: _fold_or_retry sends a failed batch again itself (see below).
    bind=True,
    # Safe to run again after a killed worker: a batch's readings are archived once (the
    # raw_readings key) and folded once (its "applied" mark, segs.services.spine.archive).
    acks_late=True,
    # A group is cut at this many messages, or after this long (the worker's main process
    # buffers them meanwhile; worker_prefetch_multiplier leaves room for a few groups).
    flush_every=_settings.fold_group_messages,
    flush_interval=_settings.fold_group_wait_s,
)
def fold_batch(self: AckedBatches, requests: list[SimpleRequest]) -> dict[str, dict[str, Any]]:
    """Archive and fold a group of reading batches; returns what happened to each batch
    settled, by id (those are acknowledged; the others return to their queue).

    A message's args are (rows, received_at_us): *rows* is None when the batch waits
    in the pending ledger under the message's task id (the Redis broker,
    segs.services.spine.pending). A batch already folded has left the ledger: its run then folds
    nothing and only stores findings a crash may have left behind.

    Accepted readings are never dropped: an outage (segs.services.shared.outages) is retried with
    backoff for as long as it lasts. Any other failure is retried SEGS_DATA_ERROR_ATTEMPTS times
    in all, then the batch becomes a dead letter. A group that fails for another reason than an
    outage is split, so one bad batch never holds back the others.
    """
    started = time.perf_counter()
    messages = _read_messages(requests)
    settled: dict[str, dict[str, Any]] = {}
    for group in _groups(messages, app.segs_settings.fold_group_readings):
        settled.update(_fold_or_retry(group))
        metrics.FOLD_GROUP_BATCHES.observe(len(group))
    metrics.TASK_DURATION.labels("fold_batch").observe(time.perf_counter() - started)
    metrics.READING_BATCHES_SETTLED.inc(sum(1 for request in requests if request.id in settled))
    return settled


def _read_messages(requests: list[SimpleRequest]) -> list[Message]:
    """Each distinct batch of the requests, its rows read from the ledger where it keeps them."""
    unique: dict[str, SimpleRequest] = {}
    for request in requests:
        # A re-published copy can meet its original in one group: one run folds both.
        unique.setdefault(request.id, request)
    shards = {
        task_id: _shard_of(str((request.delivery_info or {}).get("routing_key") or ""))
        for task_id, request in unique.items()
    }
    from_ledger = [
        (shards[task_id], task_id) for task_id, request in unique.items() if request.args[0] is None
    ]
    stored = get_pending_ledger().rows_of_many(from_ledger) if from_ledger else {}
    messages = []
    for task_id, request in unique.items():
        rows, received_at_us = request.args[0], request.args[1]
        if rows is None:
            # None: folded and settled before this copy ran.
            rows = stored.get(task_id) or []
        messages.append(
            Message(
                Batch(task_id, rows, received_at_us, shards[task_id]),
                int(request.kwargs.get("data_failures", 0)),
                int(request.kwargs.get("retries", 0)),
            )
        )
    return messages


def _groups(messages: list[Message], most_readings: int) -> list[list[Message]]:
    """The messages in groups of at most *most_readings* readings (a message larger than that
    alone): large requests or a single shard must not make one huge transaction and script."""
    groups: list[list[Message]] = []
    current: list[Message] = []
    size = 0
    for message in messages:
        rows = len(message.batch.rows)
        if current and size + rows > most_readings:
            groups.append(current)
            current, size = [], 0
        current.append(message)
        size += rows
    if current:
        groups.append(current)
    return groups


def _fold_or_retry(messages: list[Message]) -> dict[str, dict[str, Any]]:
    """Fold the group; on failure retry it (an outage) or split it. What each batch settled
    did, by id."""
    try:
        outcome = _fold([message.batch for message in messages])
    except Exception as exc:
        if not is_outage(exc) and len(messages) == 1:
            return _after_data_failure(messages[0], exc)
        settled: dict[str, dict[str, Any]] = {}
        for message in messages:
            # An outage retries each batch later; another failure is looked for batch by batch.
            settled.update(
                _retry_later(message, exc) if is_outage(exc) else _fold_or_retry([message])
            )
        return settled
    return {
        batch_id: {"received": done.received, "owned": done.owned, "folded": done.folded}
        for batch_id, done in outcome.batches.items()
    }


def _fold(batches: list[Batch]) -> GroupOutcome:
    with own_connection() as conn:
        outcome = archive_and_fold_group(
            conn,
            get_window_store(),
            get_detection_store(),
            app.segs_settings,
            batches,
            datetime.now(UTC),
        )
    # After the fold: a reading is in its window even if storing an alert fails and retries.
    for (shard, batch_id), findings in outcome.findings.items():
        store_findings(shard, batch_id, findings)
    return outcome


def _after_data_failure(message: Message, exc: Exception) -> dict[str, dict[str, Any]]:
    """Retry a batch that failed for a reason other than an outage, or set it aside."""
    failed = replace(message, data_failures=message.data_failures + 1)
    if failed.data_failures < app.segs_settings.data_error_attempts:
        return _retry_later(failed, exc)
    try:
        _set_aside(failed, exc)
    except Exception as outage:
        if not is_outage(outage):
            raise
        return _retry_later(failed, outage)
    return {failed.batch.batch_id: {"received": len(failed.batch.rows), "dead_letter": True}}


def _retry_later(message: Message, exc: Exception) -> dict[str, dict[str, Any]]:
    """Send the batch again with backoff, counting its data failures. Settled if sent; if not,
    nothing is settled and the message goes back to its queue as it is."""
    batch = message.batch
    countdown = min(2**message.retries, _BACKOFF_MAX_S)
    try:
        # Until the retry runs, the stalled-batch re-publisher must not add a copy of its own.
        get_pending_ledger().hold((batch.shard, batch.batch_id), time.time() + countdown)
    except redis.RedisError:
        # Redis itself is out: the retry must happen all the same (with RabbitMQ nothing else
        # keeps the batch); at worst the re-publisher sends a copy, which folds nothing twice.
        logger.warning("could not hold batch %s in the ledger during its retry", batch.batch_id)
    logger.warning("batch %s failed (%r); trying again in %d s", batch.batch_id, exc, countdown)
    try:
        _send(
            batch.batch_id,
            queue_for_shard(batch.shard),
            None if app.segs_settings.pending_ledger else batch.rows,
            batch.received_at_us,
            countdown=countdown,
            kwargs={"data_failures": message.data_failures, "retries": message.retries + 1},
        )
    except Exception:
        logger.exception("could not send batch %s again; it returns to its queue", batch.batch_id)
        return {}
    return {batch.batch_id: {"received": len(batch.rows), "retry_in_s": countdown}}


def _set_aside(message: Message, exc: Exception) -> None:
    """Make the batch a dead letter and let it go."""
    batch = message.batch
    with own_connection() as conn:
        dead_letters.set_aside(
            conn,
            batch_id=batch.batch_id,
            shard=batch.shard,
            received_at_us=batch.received_at_us,
            rows=batch.rows,
            error=exc,
            attempts=message.data_failures,
            folded=get_window_store().was_folded(batch.shard, batch.batch_id),
        )
    # Out of the ledger: the re-publisher must never send it again by itself.
    get_pending_ledger().settle([(batch.shard, batch.batch_id)])
    metrics.DEAD_LETTERS.inc()
    logger.error(
        "batch %s (%d readings) failed %d times and is now a dead letter: %r",
        batch.batch_id,
        len(batch.rows),
        message.data_failures,
        exc,
    )


def _shard_of(queue: str) -> int:
    """The shard whose queue delivered the batch (0 if that cannot be told)."""
    prefix = queue_for_shard(0)[:-1]
    suffix = queue.removeprefix(prefix)
    return int(suffix) if queue.startswith(prefix) and suffix.isdigit() else 0


def publish_batches(
    by_shard: dict[int, list[ReadingRow]],
    received_at_us: int,
    task_ids: dict[int, str] | None = None,
) -> None:
    """Enqueue each shard's rows as one batch; returns once the broker holds every message
    (confirms on AMQP). One round trip to the ledger, and with the Redis broker one to the
    broker for all of them (a publish batch; other transports send one by one).

    *task_ids* name the batches; a replayed dead letter keeps its own.
    """
    if not by_shard:
        return
    ids = {shard: (task_ids or {}).get(shard) or str(uuid.uuid4()) for shard in by_shard}
    ledger = get_pending_ledger()
    # With the ledger the rows wait there and the message only names its batch; with RabbitMQ
    # the message carries them and the ledger only times the batch (ingestion watermark).
    keeps_rows = app.segs_settings.pending_ledger
    ledger.record(
        [(ids[shard], shard, rows if keeps_rows else None) for shard, rows in by_shard.items()],
        received_at_us,
        time.time(),
    )
    try:
        with app.producer_or_acquire() as producer:
            if keeps_rows and _sends_copies(producer.channel):
                _send_copies(producer.channel, ids, received_at_us)
            else:
                with producer.batch():
                    for shard, rows in by_shard.items():
                        _send(
                            ids[shard],
                            queue_for_shard(shard),
                            None if keeps_rows else rows,
                            received_at_us,
                            producer=producer,
                        )
    except BaseException:
        ledger.settle(list(ids.items()))
        raise


def _sends_copies(channel: Any) -> bool:
    """Whether a request's messages can go as copies of one (_send_copies): SEGS's Redis
    channel does it; kombu's own (rediss://) and the task-sent events
    (task_send_sent_event) send each message by itself."""
    return isinstance(channel, broker.Channel) and not app.conf.task_send_sent_event


def _send_copies(channel: broker.Channel, ids: dict[int, str], received_at_us: int) -> None:
    """Send the messages of batches whose rows wait in the ledger (task ids by shard).

    They differ only in their task id and queue, so Celery builds one message and segs.broker
    pushes a copy per batch, in one round trip: building and publishing each cost the API about
    twice as much (BENCHMARKS.md, "Stop 27"). Each copy sends Celery's publish signals, as
    apply_async would.
    """
    template = _task_message(next(iter(ids.values())), None, received_at_us)
    # What send_task_message gives a queue whose exchange names no delivery mode.
    delivery_mode = maybe_delivery_mode(app.conf.task_default_delivery_mode)
    copies = [
        (
            queue_for_shard(shard),
            {**template.headers, "id": task_id, "root_id": task_id},
            {**template.properties, "correlation_id": task_id, "delivery_mode": delivery_mode},
        )
        for shard, task_id in ids.items()
    ]
    content_type, content_encoding, body = serialization.dumps(
        template.body, serializer=app.conf.task_serializer
    )
    for queue, headers, properties in copies:
        signals.before_task_publish.send(
            sender=FOLD_BATCH,
            body=template.body,
            exchange="",
            routing_key=queue,
            declare=[],
            headers=headers,
            properties=properties,
            retry_policy=None,
        )
    channel.publish_copies(body, content_type, content_encoding, copies)
    for queue, headers, _ in copies:
        signals.after_task_publish.send(
            sender=FOLD_BATCH, body=template.body, exchange="", routing_key=queue, headers=headers
        )


def _task_message(
    task_id: str,
    rows: list[ReadingRow] | None,
    received_at_us: int,
    kwargs: dict[str, Any] | None = None,
    countdown: float | None = None,
) -> Any:
    """A fold_batch message as apply_async would build it (Celery's app.amqp), without
    apply_async's argument check and result object, which cost the API about a third of a
    millisecond per request of 8 shards."""
    kwargs = kwargs or {}
    return app.amqp.create_task_message(
        task_id,
        FOLD_BATCH,
        (rows, received_at_us),
        kwargs,
        countdown=countdown,
        ignore_result=True,
        # Celery would otherwise build a repr of every row for its logs and events.
        argsrepr=(
            f"(<{len(rows)} readings>, {received_at_us})"
            if rows is not None
            else f"(<rows in the pending ledger>, {received_at_us})"
        ),
        kwargsrepr=repr(kwargs),
    )


def _send(
    task_id: str,
    queue: str,
    rows: list[ReadingRow] | None,
    received_at_us: int,
    *,
    countdown: float | None = None,
    kwargs: dict[str, Any] | None = None,
    producer: Any = None,
) -> None:
    """Send one fold_batch message."""
    message = _task_message(task_id, rows, received_at_us, kwargs, countdown)
    with app.producer_or_acquire(producer) as sender:
        app.amqp.send_task_message(
            sender,
            FOLD_BATCH,
            message,
            queue=queue,
            # A Redis list needs no declaring; the check per message showed in the API's profile.
            **({"declare": []} if _REDIS_BROKER else {}),
        )


@app.task(
    name="segs.tasks.readings.requeue_stalled_batches",
    queue="default",
    acks_late=True,
    **RETRIED_BY_NEXT_RUN,
)
def requeue_stalled_batches() -> int:
    """Re-publish batches published SEGS_REQUEUE_AFTER_S ago and still not folded.

    Safe twice: a re-published batch gets a new time in the ledger, so a later run leaves it
    for another SEGS_REQUEUE_AFTER_S; two runs at once may both send a batch, and the second
    copy folds nothing (segs.services.spine.archive).
    """
    settings = app.segs_settings
    if not settings.pending_ledger:
        return 0  # RabbitMQ keeps unacknowledged messages itself; the ledger holds no rows
    ledger = get_pending_ledger()
    now = time.time()
    # A batch can still be waiting in its queue only if that queue holds messages: re-publishing
    # it then would only add a copy to a backlog (and copies feed the backlog). So only the
    # batches of empty queues count as stalled; the others' turn comes once theirs drain.
    depths = queue_depths(settings.reading_queues)
    idle_shards = {shard for shard in range(settings.shards) if depths[queue_for_shard(shard)] == 0}
    stalled = ledger.claim_stalled(now - settings.requeue_after_s, now, idle_shards)
    for batch in stalled:
        _send(batch.task_id, queue_for_shard(batch.shard), None, batch.received_at_us)
    metrics.PENDING_BATCHES.set(ledger.size())
    if stalled:
        metrics.BATCHES_REQUEUED.inc(len(stalled))
        logger.warning("re-published %d stalled reading batches", len(stalled))
    return len(stalled)
