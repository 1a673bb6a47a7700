"""Short-lived Redis marks that answer recent duplicates at the API.

They are only a fast path: the (meter_id, ts) key of raw_readings is the authority, checked by
the worker for every reading whatever its age, so a duplicate that outlives its mark is still
never counted twice (it is then reported by the ``archive`` stage of the duplicate metric).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import redis

from segs.services.shared.keyspace import shard_keys
from segs.services.shared.lua import BULK
from segs.services.shared.lua import LuaScript
from segs.services.shared.lua import run_sections

# Marks live in hashes, one per 10 s of reading time ("buckets"), with the meter id and the
# timestamp as the field: per bucket, one HMGET finds the marks already there and one HSET sets
# the new ones, where a key per mark took one SET per reading and an expiry per key, about twice
# the Redis CPU when measured. A bucket expires as a whole, SEGS_DEDUPE_MARK_TTL_S after its
# first mark (plus its own span), so a mark lives at least the TTL.
# Each shard has its own buckets (segs.services.shared.keyspace.ShardKeys.dedupe_prefix), so a call
# marks keys of one hash tag.
BUCKET_SPAN_US = 10_000_000

# One round trip for the whole request: a section per shard (segs.services.shared.lua.run_sections).
_MARK = LuaScript(
    __package__,
    "dedupe.mark.lua",
    uses=(BULK,),
    constants={"BUCKET_SPAN_US": BUCKET_SPAN_US, "BUCKET_SPAN_S": BUCKET_SPAN_US // 1_000_000},
    sectioned=True,
)

_KEY_HEAD = struct.Struct("<H")
_TS = struct.Struct("<q")


def mark_of(shard: int, meter_id: str, ts_us: int) -> tuple[str, bytes]:
    """The bucket and the field that hold the mark of (meter_id, ts_us), a meter of *shard*."""
    bucket = f"{shard_keys(shard).dedupe_prefix}{ts_us // BUCKET_SPAN_US}"
    return bucket, meter_id.encode() + _TS.pack(ts_us)


def _pack_keys(keys: list[tuple[str, int]]) -> bytes:
    head, ts = _KEY_HEAD.pack, _TS.pack
    return b"".join(
        [
            head(len(meter)) + meter + ts(ts_us)
            for meter, ts_us in ((meter_id.encode(), ts_us) for meter_id, ts_us in keys)
        ]
    )


@dataclass
class RedisDedupeMarks:
    client: redis.Redis
    ttl_s: int

    def mark_new(self, keys: dict[int, list[tuple[str, int]]]) -> dict[int, list[bool]]:
        """Mark each key (unique within the call), given by shard; whether each was new, by
        shard. One round trip (one per node of a cluster)."""
        shards = [shard for shard, listed in keys.items() if listed]
        sections = [
            (
                {"first_bucket": mark_of(shard, *keys[shard][0])[0]},
                {
                    "marks": _pack_keys(keys[shard]),
                    "ttl": self.ttl_s,
                    "prefix": shard_keys(shard).dedupe_prefix,
                },
            )
            for shard in shards
        ]
        marked: dict[int, list[bool]] = {shard: [] for shard in keys if shard not in shards}
        for shard, flags in zip(shards, run_sections(self.client, _MARK, sections), strict=True):
            if b"0" not in flags:  # the usual answer: nothing seen before
                marked[shard] = [True] * len(keys[shard])
            else:
                marked[shard] = [flag == ord("1") for flag in flags]
        return marked

    def release(self, keys: dict[int, list[tuple[str, int]]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for shard, listed in keys.items():
            for meter_id, ts_us in listed:
                pipe.hdel(*mark_of(shard, meter_id, ts_us))
        pipe.execute()
