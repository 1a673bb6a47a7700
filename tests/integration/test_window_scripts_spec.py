"""The window store's scripts in Redis against their Python specifications.

- fold (windows_store.fold.lua, WindowStore.fold): if a batch of the group was folded before,
  nothing is folded or judged, the reply names those batches and they alone leave the pending
  ledger. Otherwise every batch of the group leaves the ledger and gets its applied marker (with
  an expiry), each window joins the shard's open set unless it is there already, due at its end
  or, ending at or before the late cutoff, when LateWindows holds it to; and each meter's
  statistics merge into the window's hash as WindowStats.merge does.
- move_due (windows_store.move_due.lua, WindowStore.move_due): per shard, the first *limit*
  windows due by the cutoff (by due time, then name) are looked at; those of the size asked for
  leave the open set, and those with a hash are renamed for the flush and join the flushing set.
- roll_up (windows_store.roll_up.lua, WindowStore.forget): a flushed 1-minute window's meters
  merge into its 15-minute window, which joins the open set unless it is there already, due at
  LateWindows.rollup_due; the flushed hash goes, and leaves the flushing set.

Each specification below updates a Model (tests.redis_model) the way its script should update
Redis. Seeded random runs of folds (with batches delivered again), moves and roll-ups, and a
targeted case for each branch, drive the real store and the specification in lock step: after
every step Redis must hold exactly the model, and each call return what the specification says.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import pytest
import redis

from segs.domain.readings import MICRO
from segs.domain.readings import ReadingRow
from segs.domain.windows import READING_WINDOW
from segs.domain.windows import WINDOW_SIZES
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.domain.windows import rollup_target
from segs.domain.windows import window_start_us
from segs.services.shared.keyspace import all_shard_keys
from segs.services.shared.keyspace import parse_flushing_name
from segs.services.shared.keyspace import shard_keys
from segs.services.spine.detection import pack_readings
from segs.services.spine.windows_store import TABLE_FIELD
from segs.services.spine.windows_store import TABLE_VALUE
from segs.services.spine.windows_store import FoldResult
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from segs.services.spine.windows_store import WindowStore
from tests.redis_model import Model
from tests.redis_model import assert_holds
from tests.redis_model import b

pytestmark = [pytest.mark.integration, pytest.mark.scripts]

SHARDS = 4
MARKER_TTL_S = 3600  # far longer than a test: no marker expires while it runs
HOLD_US = 30 * MICRO
QUARTER_US = WINDOW_SIZES["15m"] * MICRO
MINUTE_US = WINDOW_SIZES[READING_WINDOW] * MICRO
FIRST_MINUTE_US = window_start_us(1_767_225_600 * MICRO, WINDOW_SIZES["15m"])
# A region name may hold a colon: the scripts must not split names on it.
REGIONS = ("Pune-West", "Delhi-North", "Navi:Mumbai")
METERS = tuple(f"M-{n}" for n in range(8))


def minute(region: str, index: int) -> WindowKey:
    return WindowKey(READING_WINDOW, region, FIRST_MINUTE_US + index * MINUTE_US)


# --- The specifications -------------------------------------------------------------------


@dataclass
class Spec:
    """What the three scripts should do to Redis, as updates of a Model. *seen* counts the
    branches taken, so a random run can show it reached each of them."""

    shards: int
    model: Model = field(default_factory=Model)
    seen: Counter[str] = field(default_factory=Counter)

    def fold(
        self,
        shard: int,
        batch_ids: Sequence[str],
        folded: dict[WindowKey, dict[str, WindowStats]],
        late: LateWindows,
    ) -> FoldResult:
        names = shard_keys(shard)
        folded_before = [batch for batch in batch_ids if b(names.applied(batch)) in self.model.data]
        # The batches leave the ledger either way: those folded before, else the whole group.
        for batch in folded_before or batch_ids:
            self._remove(b(names.pending), b(batch))
            self._remove(b(names.pending_at), b(batch))
        if folded_before:
            self.seen["group refused"] += 1
            return FoldResult(set(folded_before), b"")
        for batch in batch_ids:
            marker = b(names.applied(batch))
            self.model.data[marker] = b"1"
            self.model.expiring.add(marker)
        for window, meters in folded.items():
            name = b(names.window(window))
            if window.end_us <= late.cutoff_us:
                self.seen["late window"] += 1
            if window.end_us == late.cutoff_us:
                self.seen["window ending at the cutoff"] += 1
            if name in self.model.data.get(b(names.open_windows), {}):
                self.seen["window open already"] += 1
            # LateWindows.due for a reading window: the store holds any late window folded as
            # long as one (late_due), and readings fold into reading windows only.
            self._add_if_new(b(names.open_windows), name, late.due(window))
            self._merge(name, meters)
        self.seen["group folded"] += 1
        return FoldResult(set(), b"")  # nothing to judge (pack_readings([])), nothing found

    def move_due(self, size: str, cutoff_us: int, token: str, limit: int) -> int:
        moved = 0
        for names in all_shard_keys(self.shards):
            open_key = b(names.open_windows)
            open_windows: dict[bytes, float] = self.model.data.get(open_key, {})
            # Redis ranks equal due times by name; the limit bounds the due windows of every
            # size the script looks at, not only those of *size*.
            due = sorted(
                (score, name) for name, score in open_windows.items() if score <= cutoff_us
            )
            if len(due) > limit:
                self.seen["limit cut"] += 1
            prefix = b(names.window_prefix(size))
            for _, name in due[:limit]:
                if not name.startswith(prefix):
                    self.seen["other size kept"] += 1
                    continue
                del open_windows[name]
                moved += 1
                if name not in self.model.data:
                    self.seen["moved without a hash"] += 1
                    continue
                renamed = b(names.flushing_prefix(token, size)) + name[len(prefix) :]
                self.model.data[renamed] = self.model.data.pop(name)
                self.model.data.setdefault(b(names.flushing), set()).add(renamed)
            self.model.drop_if_empty(open_key)
        return moved

    def forget(self, name: str, late: LateWindows) -> None:
        """roll_up for a window that rolls up; for one that does not (15 minutes) the store
        drops it without a script, the same but for the merge."""
        flushing = parse_flushing_name(name)
        names = shard_keys(flushing.shard)
        target = rollup_target(flushing.window)
        meters = {
            meter: packed
            for meter, packed in self.model.data.get(b(name), {}).items()
            if meter != b(TABLE_FIELD)
        }
        if target is not None and meters:
            larger = b(names.window(target))
            if larger in self.model.data.get(b(names.open_windows), {}):
                self.seen["rolled into an open window"] += 1
            self._merge(
                larger, {meter: WindowStats.unpack(packed) for meter, packed in meters.items()}
            )
            self._add_if_new(
                b(names.open_windows), larger, late.rollup_due(flushing.window, target)
            )
            self.seen["rolled up"] += 1
        elif target is not None:
            self.seen["nothing left to roll up"] += 1
        self.model.drop(b(name))
        self._remove(b(names.flushing), b(name))

    def _merge(
        self, name: bytes, meters: dict[str, WindowStats] | dict[bytes, WindowStats]
    ) -> None:
        if not meters:
            return  # no meter, no hash
        window: dict[bytes, bytes] = self.model.data.setdefault(name, {})
        # Spec: a window hash holds the field that keeps it a hash table, beside its meters.
        window[b(TABLE_FIELD)] = b(TABLE_VALUE)
        for meter, stats in meters.items():
            current = window.get(b(meter))
            if current is not None:
                self.seen["meter merged"] += 1
            merged = stats if current is None else WindowStats.unpack(current).merge(stats)
            window[b(meter)] = merged.pack()

    def _add_if_new(self, key: bytes, member: bytes, score: int) -> None:
        """ZADD NX."""
        self.model.data.setdefault(key, {}).setdefault(member, float(score))

    def _remove(self, key: bytes, member: bytes) -> None:
        """HDEL, ZREM or SREM."""
        held = self.model.data.get(key)
        if isinstance(held, dict):
            held.pop(member, None)
        elif isinstance(held, set):
            held.discard(member)
        self.model.drop_if_empty(key)


# --- The store and its specification in lock step ------------------------------------------


@dataclass
class Lockstep:
    """Runs each step on the real store and on the specification, and checks they agree."""

    client: redis.Redis
    spec: Spec = field(init=False)
    store: WindowStore = field(init=False)

    def __post_init__(self) -> None:
        self.spec = Spec(SHARDS)
        self.store = WindowStore(self.client, SHARDS)

    def seed_pending(self, shard: int, batch_id: str) -> None:
        """A batch recorded in the ledger as it is published (segs.services.spine.pending)."""
        names = shard_keys(shard)
        self.client.hset(names.pending, batch_id, f"[{shard}, 0, 1]")
        self.client.zadd(names.pending_at, {batch_id: 1_767_225_600})
        self.spec.model.data.setdefault(b(names.pending), {})[b(batch_id)] = b(f"[{shard}, 0, 1]")
        self.spec.model.data.setdefault(b(names.pending_at), {})[b(batch_id)] = 1_767_225_600.0

    def fold(
        self,
        shard: int,
        batch_ids: list[str],
        folded: dict[WindowKey, dict[str, WindowStats]],
        late: LateWindows,
    ) -> FoldResult:
        expected = self.spec.fold(shard, batch_ids, folded, late)
        # A refused group gets readings to judge: were they judged, detection state would
        # appear that the model lacks. A folded one gets none: test_detection_script holds
        # the judging to its rule.
        rows = readings_of(folded) if expected.applied_before else []
        judged = Judged(
            pack_readings(rows),
            received_at_us=1_800_000_000 * MICRO,
            missed_intervals=3,
            relearn_after=30,
        )
        assert self.store.fold(shard, batch_ids, folded, judged, MARKER_TTL_S, late) == expected
        assert_holds(self.client, self.spec.model)
        return expected

    def move_due(self, size: str, cutoff_us: int, token: str, limit: int) -> int:
        expected = self.spec.move_due(size, cutoff_us, token, limit)
        assert self.store.move_due(size, cutoff_us, token, limit) == expected
        assert_holds(self.client, self.spec.model)
        return expected

    def forget(self, name: str, late: LateWindows) -> None:
        self.spec.forget(name, late)
        self.store.forget(name, late)
        assert_holds(self.client, self.spec.model)

    def flushing_names(self) -> list[str]:
        return sorted(
            name.decode()
            for names in all_shard_keys(SHARDS)
            for name in self.spec.model.data.get(b(names.flushing), set())
        )

    def due_times(self) -> list[int]:
        return sorted(
            int(score)
            for names in all_shard_keys(SHARDS)
            for score in self.spec.model.data.get(b(names.open_windows), {}).values()
        )


def readings_of(folded: dict[WindowKey, dict[str, WindowStats]]) -> list[ReadingRow]:
    """One reading per meter and window, as the API sends them."""
    return [
        [meter, window.region, "id", stats.last_ts_us, stats.power_max, 0, 0, 0, 0, 0, 0]
        for window, meters in folded.items()
        for meter, stats in meters.items()
    ]


# --- Random data ----------------------------------------------------------------------------


def random_stats(rng: random.Random, window: WindowKey) -> WindowStats:
    """Statistics of some readings of one meter in *window*, with exports (negative power) too."""
    count = rng.randint(1, 30)
    power_min = rng.randint(-5 * MICRO, 50 * MICRO)
    power_max = rng.randint(power_min, power_min + 20 * MICRO)
    voltage_count = rng.randint(0, count)
    return WindowStats(
        count=count,
        power_sum=rng.randint(count * power_min, count * power_max),
        power_min=power_min,
        power_max=power_max,
        energy_sum=rng.randint(0, 10**9),
        voltage_sum=voltage_count * rng.randint(200 * MICRO, 250 * MICRO),
        voltage_count=voltage_count,
        last_ts_us=rng.randint(window.start_us, window.end_us - 1),
    )


def random_late(rng: random.Random, windows: Sequence[WindowKey]) -> LateWindows:
    """A late cutoff on, just beside or near some window's end, so windows fall either side."""
    end = rng.choice(windows).end_us
    nudge = rng.choice([0, 0, -1, 1, rng.randint(-90, 90) * MICRO])
    return LateWindows(cutoff_us=end + nudge, hold_us=rng.choice([0, HOLD_US]))


def random_fold(
    rng: random.Random, windows: Sequence[WindowKey]
) -> dict[WindowKey, dict[str, WindowStats]]:
    """A few windows near each other (so hashes fill up again), each with some meters; now and
    then a window with none, which opens without a hash."""
    first = rng.randrange(len(windows))
    chosen = {windows[min(first + rng.randint(0, 4), len(windows) - 1)] for _ in range(3)}
    return {
        window: {
            meter: random_stats(rng, window)
            for meter in rng.sample(METERS, rng.choice([0, 1, 2, 3, 4]))
        }
        for window in sorted(chosen)  # a set: sorted, so the run is the same in every process
    }


# --- Tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_folds_moves_and_roll_ups_keep_to_the_specifications(script_redis, seed):
    rng = random.Random(seed)
    world = Lockstep(script_redis)
    # 20 minutes of each region: a whole quarter hour and part of the next.
    windows = sorted(minute(region, index) for region in REGIONS for index in range(20))
    folded_ids: dict[int, list[str]] = {shard: [] for shard in range(SHARDS)}
    forgotten: list[str] = []
    for step in range(250):
        action = rng.random()
        if action < 0.45:
            shard = rng.randrange(SHARDS)
            group = [f"b{step}-{n}" for n in range(rng.randint(1, 3))]
            if folded_ids[shard] and rng.random() < 0.3:  # a batch delivered again
                group.insert(rng.randint(0, len(group)), rng.choice(folded_ids[shard]))
            for batch in group:
                if rng.random() < 0.7:
                    world.seed_pending(shard, batch)
            folds = random_fold(rng, windows)
            # Half the time the cutoff is by one of this fold's own windows.
            late = random_late(rng, sorted(folds) if rng.random() < 0.5 else windows)
            result = world.fold(shard, group, folds, late)
            if result.applied_before:
                # As the worker does: the group again without the batches folded before.
                group = [batch for batch in group if batch not in result.applied_before]
                if group:
                    world.fold(shard, group, folds, late)
            folded_ids[shard].extend(group)
        elif action < 0.7:
            due_times = world.due_times()
            cutoff = rng.choice(due_times) if due_times else rng.choice(windows).end_us
            world.move_due(
                rng.choice(["1m", "1m", "15m"]),
                cutoff + rng.choice([0, 0, -1, MINUTE_US]),
                token=f"t{step}",
                limit=rng.choice([1, 2, 3, 1000]),
            )
        elif action < 0.9:
            flushing = world.flushing_names()
            for name in rng.sample(flushing, min(len(flushing), rng.randint(1, 3))):
                late = random_late(rng, windows)
                world.forget(name, late)
                forgotten.append(name)
            if forgotten and rng.random() < 0.3:
                # A flush repeating its last step, maybe long after: it finds nothing left,
                # and must not open the larger window again.
                world.forget(rng.choice(forgotten), random_late(rng, windows))
        else:
            world.seed_pending(rng.randrange(SHARDS), f"b{step + rng.randint(1, 5)}-0")

    # The run reached every branch of the scripts.
    assert set(world.spec.seen) == {
        "group refused",
        "group folded",
        "late window",
        "window ending at the cutoff",
        "window open already",
        "meter merged",
        "limit cut",
        "other size kept",
        "moved without a hash",
        "rolled up",
        "rolled into an open window",
        "nothing left to roll up",
    }


def test_a_group_holding_a_batch_folded_before_folds_nothing(script_redis):
    world = Lockstep(script_redis)
    rng = random.Random(7)
    window = minute(REGIONS[0], 3)
    on_time = LateWindows(cutoff_us=0, hold_us=0)
    first = {window: {meter: random_stats(rng, window) for meter in METERS[:3]}}
    world.seed_pending(2, "again")
    assert world.fold(2, ["again"], first, on_time) == FoldResult(set(), b"")

    # Delivered again with two new batches, all three in the ledger: only it leaves the ledger,
    # and the group's statistics, markers and readings leave no trace.
    group = ["new-1", "again", "new-2"]
    for batch in group:
        world.seed_pending(2, batch)
    second = {window: {meter: random_stats(rng, window) for meter in METERS[1:5]}}
    assert world.fold(2, group, second, on_time).applied_before == {"again"}
    assert world.fold(2, ["new-1", "new-2"], second, on_time) == FoldResult(set(), b"")
    assert world.spec.seen["group refused"] == 1


def test_a_window_ending_at_the_late_cutoff_is_held(script_redis):
    world = Lockstep(script_redis)
    rng = random.Random(8)
    held_until = minute(REGIONS[1], 5)
    late = LateWindows(cutoff_us=held_until.end_us, hold_us=HOLD_US)
    # Ending before, at and after the cutoff: the first two are held, the third is not.
    windows = [minute(REGIONS[1], 4), held_until, minute(REGIONS[1], 6)]
    assert [late.due(window) == window.end_us for window in windows] == [False, False, True]
    folds = {window: {METERS[0]: random_stats(rng, window)} for window in windows}
    world.fold(1, ["late"], folds, late)
    # An open window keeps its due time (NX), whatever a later fold's cutoff says.
    sooner = LateWindows(cutoff_us=0, hold_us=0)
    folds = {window: {METERS[1]: random_stats(rng, window)} for window in windows}
    world.fold(1, ["later"], folds, sooner)
    assert world.spec.seen["late window"] == 2
    assert world.spec.seen["window ending at the cutoff"] == 1
    assert world.spec.seen["window open already"] == len(windows)


def test_moving_due_windows_stops_at_the_limit(script_redis):
    world = Lockstep(script_redis)
    rng = random.Random(9)
    on_time = LateWindows(cutoff_us=0, hold_us=0)
    minutes = [minute(REGIONS[2], index) for index in range(6)]
    # Five minutes due by the cutoff (one of them without a meter, so without a hash), one not.
    folds = {window: {METERS[2]: random_stats(rng, window)} for window in minutes}
    folds[minutes[1]] = {}
    world.fold(3, ["minutes"], folds, on_time)
    # A quarter hour due before them all: looked at first, counted against the limit, kept.
    quarter = WindowKey("15m", REGIONS[2], FIRST_MINUTE_US - QUARTER_US)
    world.fold(3, ["quarter"], {quarter: {METERS[2]: random_stats(rng, quarter)}}, on_time)
    # Six due, three looked at per call, the quarter hour always first among them.
    cutoff = minutes[4].end_us
    assert world.move_due("1m", cutoff, token="first", limit=3) == 2
    assert world.move_due("1m", cutoff, token="second", limit=3) == 2
    assert world.move_due("1m", cutoff, token="third", limit=3) == 1
    assert world.move_due("15m", cutoff, token="fourth", limit=3) == 1
    assert world.spec.seen["limit cut"] == 2
    assert world.spec.seen["moved without a hash"] == 1


def test_a_flushed_minute_rolls_into_its_quarter_hour_once(script_redis):
    world = Lockstep(script_redis)
    rng = random.Random(10)
    on_time = LateWindows(cutoff_us=0, hold_us=0)
    region = REGIONS[0]
    # Two minutes of one quarter hour sharing a meter, one of the next with no meter.
    minutes = [minute(region, 0), minute(region, 1), minute(region, 15)]
    folds = {
        minutes[0]: {meter: random_stats(rng, minutes[0]) for meter in METERS[:3]},
        minutes[1]: {meter: random_stats(rng, minutes[1]) for meter in METERS[2:5]},
        minutes[2]: {},
    }
    world.fold(0, ["b"], folds, on_time)
    world.move_due("1m", minutes[2].end_us, token="t", limit=1000)
    # The first opens its quarter hour, late (due after the hold); the second merges into it
    # and leaves that due time alone, though on its own it would make it due at its end. A
    # repeated forget finds nothing left.
    late = LateWindows(cutoff_us=minutes[2].end_us + HOLD_US, hold_us=HOLD_US)
    on_its_end = LateWindows(cutoff_us=minutes[1].end_us, hold_us=HOLD_US)
    flushed = world.flushing_names()
    quarter = rollup_target(minutes[0])
    assert quarter is not None
    assert late.rollup_due(minutes[0], quarter) != on_its_end.rollup_due(minutes[1], quarter)
    for name, when in zip(flushed, [late, on_its_end], strict=True):
        world.forget(name, when)
        world.forget(name, when)
    assert world.spec.seen["rolled up"] == 2
    assert world.spec.seen["rolled into an open window"] == 1
    # Repeated once the quarter hour has gone for flushing, it must not open it again.
    assert world.move_due("15m", late.due_if_late("15m"), token="q", limit=1000) == 1
    world.forget(flushed[0], late)
    assert world.spec.seen["nothing left to roll up"] == 3


def test_windows_of_more_meters_than_one_bulk_call_takes(script_redis):
    # The scripts read and write a window's meters in chunks (lua.bulk.lua): a window holding
    # more meters than a chunk must fold, merge and roll up whole.
    world = Lockstep(script_redis)
    rng = random.Random(11)
    on_time = LateWindows(cutoff_us=0, hold_us=0)
    window = minute(REGIONS[0], 2)
    meters = [f"BULK-{n}" for n in range(2_345)]
    for batch in ("first", "second"):
        some = rng.sample(meters, 1_700)
        world.fold(0, [batch], {window: {m: random_stats(rng, window) for m in some}}, on_time)
    assert world.spec.seen["meter merged"] > 1_000
    world.move_due("1m", window.end_us, token="t", limit=1000)
    [name] = world.flushing_names()
    world.forget(name, on_time)
    assert world.spec.seen["rolled up"] == 1


def test_a_window_of_few_meters_is_kept_as_a_hash_table(script_redis):
    # A hash of a few short fields would be one packed list that every read and write scans;
    # the fold and the roll-up keep each window a hash table, and the store reads only meters.
    world = Lockstep(script_redis)
    rng = random.Random(5)
    on_time = LateWindows(cutoff_us=0, hold_us=0)
    window = minute(REGIONS[0], 2)
    stats = {f"FEW-{n}": random_stats(rng, window) for n in range(3)}
    world.fold(0, ["few"], {window: stats}, on_time)
    names = shard_keys(0)
    assert script_redis.object("encoding", names.window(window)) == b"hashtable"
    world.move_due("1m", window.end_us, token="t", limit=1000)
    [name] = world.flushing_names()
    assert world.store.read(name) == stats
    world.forget(name, on_time)
    quarter = rollup_target(window)
    assert quarter is not None
    assert script_redis.object("encoding", names.window(quarter)) == b"hashtable"
