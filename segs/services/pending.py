"""A ledger of published reading batches not yet folded: the Redis broker's safety net.

kombu's Redis transport takes a message off its queue (BRPOP) before it records it as
unacknowledged; a worker killed in between loses the message (kombu#305, celery#7950). So with
the Redis broker the API writes each batch here before publishing it, the worker's fold script
removes it in the same atomic step that folds it, and beat re-publishes any batch left here for
longer than SEGS_REQUEUE_AFTER_S, once its queue is empty, under the same task id. Running a
batch twice is harmless (segs.services.archive), so a re-published batch whose original was only
slow costs only time.

Since the ledger holds the rows anyway, the task message does not carry them a second time: it
names the batch (its task id), and the worker reads the rows from here. The message is then a
few hundred bytes instead of ~100 kB that kombu's Redis transport encodes as JSON and base64 in
the API, and decodes, stores again as unacknowledged and pickles to a pool process in the worker.

With RabbitMQ (publisher confirms, acks_late) the broker itself keeps the guarantee, so the
ledger keeps no rows: only each batch's publish time, which the silent-meter sweep needs to know
how far the pipeline has got (segs.services.detection, the ingestion watermark).

Keys: ``segs:pending`` hash task id -> [shard, received_at_us, rows];
``segs:pending:at`` zset task id -> when it was (re)published, epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from segs.domain.readings import ReadingRow

PENDING = "segs:pending"
PENDING_AT = "segs:pending:at"


@dataclass(frozen=True)
class PendingBatch:
    task_id: str
    shard: int
    received_at_us: int


# KEYS: pending hash, pending zset. ARGV: published at (s), then task id and payload (empty for
# none) of each batch. A script rather than MULTI/EXEC: one round trip for a request's batches,
# and redis-py builds no pipeline (a pipeline copies the client's response callbacks, which
# showed in the API's profile).
_RECORD = """
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
end
"""


@dataclass
class PendingLedger:
    client: redis.Redis

    def __post_init__(self) -> None:
        self._record = self.client.register_script(_RECORD)

    def record(
        self,
        batches: list[tuple[str, int, list[ReadingRow] | None]],
        received_at_us: int,
        now_s: float,
    ) -> None:
        """Remember batches (task id, shard, rows) about to be published, in one round trip;
        without rows, only when each was."""
        args: list[str | float | bytes] = [now_s]
        for task_id, shard, rows in batches:
            args.append(task_id)
            args.append(b"" if rows is None else orjson.dumps([shard, received_at_us, rows]))
        self._record(keys=[PENDING, PENDING_AT], args=args)

    def hold(self, task_id: str, until_s: float) -> None:
        """Count a batch as published at *until_s*: it is retrying then, so until its retry
        has had SEGS_REQUEUE_AFTER_S to run, it is not stalled and gets no second copy."""
        self.client.zadd(PENDING_AT, {task_id: until_s}, xx=True)

    def rows_of_many(self, task_ids: list[str]) -> dict[str, list[ReadingRow]]:
        """The rows of each of these batches still pending (one round trip)."""
        payloads: list[Any] = self.client.hmget(PENDING, task_ids)
        return {
            task_id: orjson.loads(payload)[2]
            for task_id, payload in zip(task_ids, payloads, strict=True)
            if payload is not None
        }

    def settle(self, *task_ids: str) -> None:
        """Forget batches (their publish failed, or a worker set them aside)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(PENDING, *task_ids)
        pipe.zrem(PENDING_AT, *task_ids)
        pipe.execute()

    def claim_stalled(
        self, older_than_s: float, now_s: float, shards: set[int], limit: int = 500
    ) -> list[PendingBatch]:
        """Return the batches of *shards* pending since before *older_than_s*, marking them
        re-published now; other shards' batches are left as they are."""
        task_ids = [
            task_id.decode()
            for task_id in self.client.zrangebyscore(PENDING_AT, "-inf", older_than_s, 0, limit)
        ]
        if not task_ids:
            return []
        payloads: list[Any] = self.client.hmget(PENDING, task_ids)
        stalled = []
        pipe = self.client.pipeline(transaction=True)
        for task_id, payload in zip(task_ids, payloads, strict=True):
            if payload is None:  # settled meanwhile
                pipe.zrem(PENDING_AT, task_id)
                continue
            shard, received_at_us, _ = orjson.loads(payload)
            if shard not in shards:
                continue
            stalled.append(PendingBatch(task_id, shard, received_at_us))
            pipe.zadd(PENDING_AT, {task_id: now_s})
        pipe.execute()
        return stalled

    def size(self) -> int:
        return int(self.client.zcard(PENDING_AT))
