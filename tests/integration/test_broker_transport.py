"""segs.broker on a real Redis: one pop takes many messages of a queue, within the prefetch
limit, in order, and only where kombu's one-by-one pop was no safer."""

from __future__ import annotations

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
