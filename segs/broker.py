"""kombu's Redis transport, taking many messages of a queue per round trip to Redis.

kombu's Redis channel takes one message per BRPOP, so a worker pays a round trip, a reply to
parse and a fresh command per message. With 8 shards each ingestion request is 8 messages,
and in a default run those round trips were the busiest part of the worker's consuming
process (BENCHMARKS.md, "Issue 16"). This channel sends BLMPOP (Redis 7) instead, which takes
up to ``pop_count`` messages from the first queue that has any, as BRPOP would have taken one;
each is then delivered as kombu delivers a message, so the prefetch limit, Celery's requests
and acknowledgements are unchanged. ``pop_count`` never exceeds what the prefetch limit still
allows.

It pops many only where popping one was no safer: with ``ack_emulation`` off (SEGS with its
pending ledger, segs.celery_setup). With ack_emulation on, kombu records each message in its
unacknowledged set as it is delivered, and a popped message not yet recorded would be lost
with the process; that channel keeps kombu's one-by-one BRPOP. So does a Redis older than 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from queue import Empty
from time import monotonic
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

# The first Redis with BLMPOP.
_BLMPOP_SINCE = (7, 0)


class Channel(kombu_redis.Channel):
    # Most messages one pop takes (a transport option); 1 is kombu's BRPOP.
    pop_count = 64
    # kombu types its own tuple of option names exactly, hence the ignores here and below,
    # where this channel sets kombu's attributes as kombu's channel does.
    from_transport_options = (*kombu_redis.Channel.from_transport_options, "pop_count")  # type: ignore[assignment]

    _server_has_blmpop: bool | None = None
    _commands_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        # kombu builds a new redis.Redis on its connection pool for each command it sends
        # outside the consuming loop (each publish, for one); building one cost the API about
        # 40 µs per request. One per pool serves them all: a client only borrows connections.
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._commands_client
        if client is None or client.connection_pool is not self.pool:
            client = self._commands_client = super()._create_client()
        return client

    def publish_copies(
        self,
        body: bytes,
        content_type: str,
        content_encoding: str,
        copies: Sequence[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> None:
        """Publish one body to several queues, each copy with its own headers and properties
        (queue, headers, properties), in one round trip to Redis; returns once Redis holds
        them all.

        Each copy goes through kombu's own steps (prepare_message, basic_publish into a publish
        batch), so it is stored as a Producer.publish of it would store it; only what lies above
        those steps (Celery's message building, the producer's publish) runs once instead of
        once per copy.
        """
        batch = self.create_publish_batch(max_size=len(copies))
        try:
            for queue, headers, properties in copies:
                message = self.prepare_message(
                    body, self.default_priority, content_type, content_encoding, headers, properties
                )
                batch.publish(message, exchange="", routing_key=queue)
            batch.flush()
        finally:
            batch.close()

    def ready_counts(self, queues: Sequence[str]) -> dict[str, int]:
        """The number of ready messages in each queue, in one round trip. kombu's passive
        queue_declare asks twice per queue (EXISTS, then LLEN, for each priority list)."""
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for priority in self.priority_steps:
                    pipe.llen(self._q_for_pri(queue, priority))
            lengths = iter(pipe.execute())
        steps = len(self.priority_steps)
        return {queue: sum(next(lengths) for _ in range(steps)) for queue in queues}

    def _pops_many(self) -> bool:
        if self.ack_emulation or self.pop_count <= 1 or self.global_keyprefix:
            return False
        if self._server_has_blmpop is None:
            version = str(self.client.info("server").get("redis_version", "0"))
            parts = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
            self._server_has_blmpop = parts >= _BLMPOP_SINCE
        return self._server_has_blmpop

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._pops_many():
            return super()._brpop_start(timeout)
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return None
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        allowed = self.qos.can_consume_max_estimate()
        count = self.pop_count if allowed is None else max(1, min(self.pop_count, allowed))
        # The poller reads the reply as kombu's BRPOP reply (the same connection, the same
        # timeout, hence the same health check of a silent socket).
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(
            "BLMPOP", timeout or 0, len(keys), *keys, "RIGHT", "COUNT", count
        )
        return None

    def _brpop_read(self, **options: Any) -> bool:
        if not self._pops_many():
            return bool(super()._brpop_read(**options))
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BLMPOP", **options)
            except self.connection_errors:
                # As kombu: the next poll reconnects.
                self.client.connection.disconnect()
                raise
            if not reply:
                raise Empty()
            key, items = reply
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            for item in items:
                self.connection._deliver(loads(bytes_to_str(item)), queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()


class Transport(kombu_redis.Transport):
    Channel = Channel
