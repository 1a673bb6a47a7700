"""Redis key names, and the hash tags that keep each script's keys in one Redis Cluster slot.

A Redis Cluster runs a script only if every key it touches lies in one slot, and a key's slot
is decided by the part of its name in braces (its hash tag) when it has one. So every key that a
script or transaction touches together with others carries the same tag:

- ``{s<k>}``, shard *k*: everything the fold of a shard's batches touches in one step (its
  windows and their open and flushing sets, its meters' detection state, silent deadlines and
  unstored findings, its pending ledger and the marks of its folded batches) and the API's
  dedupe marks of its meters. The shards spread over the cluster's nodes, and whatever needs a
  fleet-wide view (the flush, the silent-meter sweep, the ledger's stalled batches) walks them
  shard by shard.
- ``{sweep}``: the silent-meter sweep's clock.
- ``{feed}``: the live feeds and their published marks, written together in one step.

Keys used alone (caches, locks, one mark per notification or token) need no tag. On a single
Redis the tags change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from segs.domain.windows import WindowKey

SWEEP_TAG = "{sweep}"
FEED_TAG = "{feed}"


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The keys of one shard."""

    shard: int
    prefix: str  # segs:{s<k>}:

    @property
    def open_windows(self) -> str:
        """zset of open window hashes, scored by when each is due (µs)."""
        return f"{self.prefix}win:open"

    @property
    def flushing(self) -> str:
        """set of window hashes moved out for flushing."""
        return f"{self.prefix}win:flushing"

    @property
    def pending(self) -> str:
        """hash task id -> [shard, received_at_us, rows] (segs.services.spine.pending)."""
        return f"{self.prefix}pending"

    @property
    def pending_at(self) -> str:
        """zset task id -> when it was (re)published, epoch seconds."""
        return f"{self.prefix}pending:at"

    @property
    def states(self) -> str:
        """hash meter -> packed detection state (segs.services.spine.detection)."""
        return f"{self.prefix}detect:state"

    @property
    def deadlines(self) -> str:
        """zset region + meter -> when the meter counts as silent."""
        return f"{self.prefix}detect:deadlines"

    @property
    def downtime(self) -> str:
        """the pipeline's downtime so far (s), this shard's copy of the sweep clock's figure."""
        return f"{self.prefix}detect:downtime"

    @property
    def outbox(self) -> str:
        """hash batch id -> findings folded but not yet stored."""
        return f"{self.prefix}detect:outbox"

    @property
    def dedupe_prefix(self) -> str:
        """Dedupe mark buckets, followed by the bucket number (segs.services.spine.dedupe)."""
        return f"{self.prefix}dd:"

    def applied(self, batch_id: str) -> str:
        """A batch already folded (expires)."""
        return f"{self.prefix}applied:{batch_id}"

    def window_prefix(self, size: str) -> str:
        return f"{self.prefix}win:{size}:"

    def window(self, key: WindowKey) -> str:
        """hash meter -> packed statistics of one open window of this shard's meters."""
        return f"{self.window_prefix(key.size)}{key.region}:{key.start_us}"

    def flushing_prefix(self, token: str, size: str) -> str:
        return f"{self.prefix}flushing:{token}:{size}:"

    def flushing_window(self, token: str, key: WindowKey) -> str:
        """The name a window hash gets when a flush (*token*) moves it out."""
        return f"{self.flushing_prefix(token, key.size)}{key.region}:{key.start_us}"


@cache
def shard_keys(shard: int) -> ShardKeys:
    return ShardKeys(shard, f"segs:{{s{shard}}}:")


def all_shard_keys(shards: int) -> list[ShardKeys]:
    return [shard_keys(shard) for shard in range(shards)]


@dataclass(frozen=True, slots=True)
class FlushingWindow:
    """A window hash being flushed: its shard, the flush that moved it, and the window."""

    shard: int
    token: str
    window: WindowKey


def parse_flushing_name(name: str) -> FlushingWindow:
    """Recover shard, flush and window from a ``segs:{s<k>}:flushing:<token>:...`` name.

    :raises ValueError: not such a name.
    """
    head, tag, kind, token, size, rest = name.split(":", 5)
    if head != "segs" or kind != "flushing" or not (tag.startswith("{s") and tag.endswith("}")):
        raise ValueError(f"not the name of a window being flushed: {name!r}")
    region, start = rest.rsplit(":", 1)  # a region name may hold a colon
    return FlushingWindow(int(tag[2:-1]), token, WindowKey(size, region, int(start)))


def parse_window_name(name: str) -> WindowKey:
    """Recover the window from an open hash's ``segs:{s<k>}:win:<size>:...`` name.

    :raises ValueError: not such a name.
    """
    head, tag, kind, size, rest = name.split(":", 4)
    if head != "segs" or kind != "win" or not (tag.startswith("{s") and tag.endswith("}")):
        raise ValueError(f"not the name of an open window: {name!r}")
    region, start = rest.rsplit(":", 1)
    return WindowKey(size, region, int(start))


# Held by the flush, and by a rebuild of aggregates (segs.services.spine.recompute).
FLUSH_LOCK = "segs:flush:lock"

# The silent-meter sweep's clock: when it last ran, the downtime so far, the last refusal.
LAST_SWEEP = f"segs:{SWEEP_TAG}:detect:last-sweep"
DOWNTIME = f"segs:{SWEEP_TAG}:detect:downtime"
REFUSED_AT = f"segs:{SWEEP_TAG}:ingest:refused-at"
