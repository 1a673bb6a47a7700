"""segs.broker on a real Redis: one pop takes many messages of a queue, within the prefetch
limit, in order, and only where kombu's one-by-one pop was no safer; copies of one message are
stored as Celery's own publish stores each."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu import Consumer
from kombu import Message
from kombu import Producer
from kombu import Queue

from tests.support import settings

pytestmark = pytest.mark.integration


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"segs-test-transport-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(settings().redis_url).delete(name)


def _publish(queue: Queue, count: int) -> None:
    with Connection(settings().redis_url, transport="segs.broker:Transport") as conn:
        producer = Producer(conn.channel(), routing_key=queue.name)
        for number in range(count):
            producer.publish({"n": number}, declare=[queue], serializer="json")


def _received_in_one_read(
    queue: Queue, prefetch: int | None, *, ack: bool, **options: Any
) -> list[int]:
    """The messages the consumer gets from the first read of its socket. Those not acknowledged
    return to the queue when the connection closes."""
    received: list[int] = []

    def on_message(body: dict[str, int], message: Message) -> None:
        received.append(body["n"])
        if ack:
            message.ack()

    transport_options = {"priority_steps": [0], **options}
    with Connection(
        settings().redis_url, transport="segs.broker:Transport", transport_options=transport_options
    ) as conn:
        channel = conn.channel()
        consumer = Consumer(channel, [queue], callbacks=[on_message], accept=["json"])
        if prefetch is not None:
            consumer.qos(prefetch_count=prefetch)
        with consumer:
            conn.drain_events(timeout=5)
    return received


def test_one_pop_takes_up_to_pop_count_messages_in_order(queue_name):
    queue = Queue(queue_name)
    _publish(queue, 10)

    first = _received_in_one_read(queue, None, ack=True, ack_emulation=False, pop_count=6)
    second = _received_in_one_read(queue, None, ack=True, ack_emulation=False, pop_count=6)

    assert first == [0, 1, 2, 3, 4, 5]
    assert second == [6, 7, 8, 9]


def test_one_pop_stays_within_the_prefetch_limit(queue_name):
    queue = Queue(queue_name)
    _publish(queue, 10)

    taken = _received_in_one_read(queue, 3, ack=False, ack_emulation=False, pop_count=64)

    assert taken == [0, 1, 2]


def test_with_ack_emulation_a_pop_takes_one_message(queue_name):
    # kombu records each delivered message as unacknowledged only after the pop: popping many
    # would widen the window in which a dead process loses them.
    queue = Queue(queue_name)
    _publish(queue, 3)

    assert _received_in_one_read(queue, None, ack=True, ack_emulation=True, pop_count=64) == [0]


@pytest.fixture
def shard_queues() -> Iterator[tuple[str, str]]:
    """Two reading queues of the test broker, empty before and after the test."""
    from segs.domain.sharding import queue_for_shard

    if not settings().broker_url.startswith("redis://"):
        pytest.skip("copies are the Redis broker's way (segs.broker)")
    names = (queue_for_shard(3), queue_for_shard(5))
    client = redis.Redis.from_url(settings().broker_url)
    client.delete(*names)
    yield names
    client.delete(*names)


def _stored(queue: str) -> list[dict[str, Any]]:
    """The messages waiting in *queue*, oldest first, as kombu's Redis transport stored them."""
    raw = redis.Redis.from_url(settings().broker_url).lrange(queue, 0, -1)
    return [json.loads(item) for item in reversed(raw)]


def _without_ids(message: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The message with its task id replaced and its (random) delivery tag left out."""
    text = json.dumps(message).replace(task_id, "<task id>")
    alike = json.loads(text)
    del alike["properties"]["delivery_tag"]
    return alike


def test_copies_of_a_batch_message_are_stored_as_celerys_own_publish_stores_it(
    shard_queues, published
):
    # The API sends one message per shard of a request as copies of one Celery message
    # (segs.broker.Channel.publish_copies). A worker must find each as if Celery's
    # send_task_message and kombu's producer had sent it, and Celery's publish signals fire.
    from segs.tasks.readings import _send
    from segs.tasks.readings import publish_batches
    from segs.tasks.stores import get_pending_ledger

    queue_3, queue_5 = shard_queues
    received_at_us = 1_765_000_000_123_456
    _send("celery-sent", queue_3, None, received_at_us)
    copies = {3: "copy-on-3", 5: "copy-on-5"}
    try:
        publish_batches({3: [], 5: []}, received_at_us, task_ids=copies)
    finally:
        # Out of the ledger: no later test's stalled-batch re-publisher sends them again.
        get_pending_ledger().settle(list(copies.items()))

    celery_sent, copy_on_3 = _stored(queue_3)
    (copy_on_5,) = _stored(queue_5)
    assert _without_ids(copy_on_3, "copy-on-3") == _without_ids(celery_sent, "celery-sent")
    expected_on_5 = _without_ids(celery_sent, "celery-sent")
    expected_on_5["properties"]["delivery_info"]["routing_key"] = queue_5
    assert _without_ids(copy_on_5, "copy-on-5") == expected_on_5
    assert copy_on_3["properties"]["delivery_tag"] != copy_on_5["properties"]["delivery_tag"]
    assert published.snapshot() == ["celery-sent", "copy-on-3", "copy-on-5"]


def test_a_channel_sends_its_commands_through_one_client_per_connection_pool():
    # kombu built a redis.Redis per command; segs.broker keeps one per pool, and a new pool
    # (kombu drops its pools when the connection is lost or the channel closes) gets a new one.
    with Connection(settings().redis_url, transport="segs.broker:Transport") as conn:
        channel = conn.channel()
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._disconnect_pools()
        with channel.conn_or_acquire() as after_reconnect:
            assert after_reconnect is not first
            assert after_reconnect.connection_pool is channel.pool
            assert after_reconnect.ping()


def test_ready_counts_agree_with_kombus_passive_declare(queue_name):
    """One round trip counts what kombu's passive declare counts per queue, over every
    priority list, and 0 for a queue that holds nothing."""
    empty_name = f"{queue_name}-empty"
    options = {"priority_steps": [0, 5]}
    try:
        with Connection(
            settings().redis_url, transport="segs.broker:Transport", transport_options=options
        ) as conn:
            channel = conn.channel()
            producer = Producer(channel, routing_key=queue_name)
            queue = Queue(queue_name)
            for number, priority in enumerate([0, 0, 7, 0, 9]):
                producer.publish(
                    {"n": number}, declare=[queue], serializer="json", priority=priority
                )
            declared = channel.queue_declare(queue=queue_name, passive=True).message_count

            counts = channel.ready_counts([queue_name, empty_name])
    finally:
        redis.Redis.from_url(settings().redis_url).delete(f"{queue_name}\x06\x165")

    assert declared == 5
    assert counts == {queue_name: 5, empty_name: 0}
