"""A ledger of published reading batches not yet folded: the Redis broker's safety net.

kombu's Redis transport takes a message off its queue (BRPOP) before it records it as
unacknowledged; a worker killed in between loses the message (kombu#305, celery#7950). So with
the Redis broker the API writes each batch here before publishing it, the worker's fold script
removes it in the same atomic step that folds it, and beat re-publishes any batch left here for
longer than SEGS_REQUEUE_AFTER_S, once its queue is empty, under the same task id. Running a
batch twice is harmless (segs.services.spine.archive), so a re-published batch whose original was
only slow costs only time.

Since the ledger holds the rows anyway, the task message does not carry them a second time: it
names the batch (its task id), and the worker reads the rows from here. The message is then a
few hundred bytes instead of ~100 kB that kombu's Redis transport encodes as JSON and base64 in
the API, and decodes, stores again as unacknowledged and pickles to a pool process in the worker.

With RabbitMQ (publisher confirms, acks_late) the broker itself keeps the guarantee, so the
ledger keeps no rows: only each batch's publish time, which the silent-meter sweep needs to know
how far the pipeline has got (segs.services.spine.detection, the ingestion watermark).

Keys, per shard (segs.services.shared.keyspace.ShardKeys), so that the fold script settles a batch
in the same slot as its windows: ``segs:{s<k>}:pending`` hash task id -> [shard, received_at_us,
rows]; ``segs:{s<k>}:pending:at`` zset task id -> when it was (re)published, epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from segs.domain.readings import ReadingRow
from segs.services.shared.keyspace import all_shard_keys
from segs.services.shared.keyspace import shard_keys
from segs.services.shared.lua import LuaScript
from segs.services.shared.lua import run_sections

# A batch in the ledger: its shard and task id.
BatchRef = tuple[int, str]


@dataclass(frozen=True)
class PendingBatch:
    task_id: str
    shard: int
    received_at_us: int


# One round trip for a request: a section per shard (segs.services.shared.lua.run_sections).
_RECORD = LuaScript(__package__, "pending.record.lua", sectioned=True)


@dataclass
class PendingLedger:
    client: redis.Redis
    shards: int

    def record(
        self,
        batches: list[tuple[str, int, list[ReadingRow] | None]],
        received_at_us: int,
        now_s: float,
    ) -> None:
        """Remember batches (task id, shard, rows) about to be published, in one round trip
        (one per node of a cluster); without rows, only when each was."""
        listed_of: dict[int, list[str | bytes]] = {}
        for task_id, shard, rows in batches:
            listed = listed_of.setdefault(shard, [])
            listed.append(task_id)
            listed.append(b"" if rows is None else orjson.dumps([shard, received_at_us, rows]))
        sections = [
            (
                {"pending": shard_keys(shard).pending, "pending_at": shard_keys(shard).pending_at},
                {"published_at": now_s, "batches": listed},
            )
            for shard, listed in listed_of.items()
        ]
        run_sections(self.client, _RECORD, sections)

    def hold(self, batch: BatchRef, until_s: float) -> None:
        """Count a batch as published at *until_s*: it is retrying then, so until its retry
        has had SEGS_REQUEUE_AFTER_S to run, it is not stalled and gets no second copy."""
        shard, task_id = batch
        self.client.zadd(shard_keys(shard).pending_at, {task_id: until_s}, xx=True)

    def rows_of_many(self, batches: list[BatchRef]) -> dict[str, list[ReadingRow]]:
        """The rows of each of these batches still pending (one round trip)."""
        by_shard: dict[int, list[str]] = {}
        for shard, task_id in batches:
            by_shard.setdefault(shard, []).append(task_id)
        pipe = self.client.pipeline(transaction=False)
        for shard, task_ids in by_shard.items():
            pipe.hmget(shard_keys(shard).pending, task_ids)
        rows: dict[str, list[ReadingRow]] = {}
        for task_ids, payloads in zip(by_shard.values(), pipe.execute(), strict=True):
            for task_id, payload in zip(task_ids, payloads, strict=True):
                if payload is not None:
                    rows[task_id] = orjson.loads(payload)[2]
        return rows

    def settle(self, batches: list[BatchRef]) -> None:
        """Forget batches (their publish failed, or a worker set them aside)."""
        pipe = self.client.pipeline(transaction=False)
        for shard, task_id in batches:
            names = shard_keys(shard)
            pipe.hdel(names.pending, task_id)
            pipe.zrem(names.pending_at, task_id)
        pipe.execute()

    def claim_stalled(
        self, older_than_s: float, now_s: float, shards: set[int], limit: int = 500
    ) -> list[PendingBatch]:
        """Return the batches of *shards* pending since before *older_than_s*, marking them
        re-published now (up to *limit* per shard)."""
        stalled = []
        for shard in sorted(shards):
            names = shard_keys(shard)
            task_ids = [
                task_id.decode()
                for task_id in self.client.zrangebyscore(
                    names.pending_at, "-inf", older_than_s, 0, limit
                )
            ]
            if not task_ids:
                continue
            payloads: list[Any] = self.client.hmget(names.pending, task_ids)
            pipe = self.client.pipeline(transaction=True)
            for task_id, payload in zip(task_ids, payloads, strict=True):
                if payload is None:  # settled meanwhile
                    pipe.zrem(names.pending_at, task_id)
                    continue
                _, received_at_us, _ = orjson.loads(payload)
                stalled.append(PendingBatch(task_id, shard, received_at_us))
                pipe.zadd(names.pending_at, {task_id: now_s})
            pipe.execute()
        return stalled

    def pending_ids(self) -> list[str]:
        """Every batch in the ledger, of every shard: published and not yet folded."""
        pipe = self.client.pipeline(transaction=False)
        for names in all_shard_keys(self.shards):
            pipe.zrange(names.pending_at, 0, -1)
        return [task_id.decode() for listed in pipe.execute() for task_id in listed]

    def size(self) -> int:
        pipe = self.client.pipeline(transaction=False)
        for names in all_shard_keys(self.shards):
            pipe.zcard(names.pending_at)
        return sum(int(count) for count in pipe.execute())
