"""Window arithmetic and statistics folding (segs.domain.windows), plus window key names."""

from __future__ import annotations

import random
from functools import reduce

import pytest

from segs.domain.identifiers import is_valid_id
from segs.domain.readings import MICRO
from segs.domain.windows import LUA_LAYOUT
from segs.domain.windows import PACKED_LAYOUT
from segs.domain.windows import WINDOW_SIZES
from segs.domain.windows import WindowKey
from segs.domain.windows import WindowStats
from segs.domain.windows import fold_rows
from segs.domain.windows import rollup_target
from segs.domain.windows import window_start_us
from segs.services.shared.keyspace import FlushingWindow
from segs.services.shared.keyspace import parse_flushing_name
from segs.services.shared.keyspace import shard_keys
from segs.services.spine.windows_store import TABLE_FIELD
from segs.services.spine.windows_store import TABLE_VALUE

# 2026-01-01T00:00:00Z, a multiple of 900 s.
T0 = 1_767_225_600 * MICRO


def row(meter, region, ts_us, power, energy=None, voltage=None):
    return [meter, region, f"r-{meter}-{ts_us}", ts_us, power, energy, voltage, None, None, None]


def test_window_sizes_are_one_and_fifteen_minutes():
    assert WINDOW_SIZES == {"1m": 60, "15m": 900}


@pytest.mark.parametrize("size_s", [60, 900])
def test_window_start_boundaries(size_s):
    span = size_s * MICRO
    assert T0 % (900 * MICRO) == 0
    assert window_start_us(T0, size_s) == T0
    assert window_start_us(T0 + 1, size_s) == T0
    assert window_start_us(T0 + span - 1, size_s) == T0
    assert window_start_us(T0 + span, size_s) == T0 + span
    assert window_start_us(T0 - 1, size_s) == T0 - span
    assert window_start_us(0, size_s) == 0


def test_window_start_examples():
    # 00:07:59.999999 is in the 00:07 minute and the 00:00 quarter hour.
    ts = T0 + (7 * 60 + 59) * MICRO + 999_999
    assert window_start_us(ts, 60) == T0 + 7 * 60 * MICRO
    assert window_start_us(ts, 900) == T0
    # 00:15:00.000000 starts the next quarter hour.
    assert window_start_us(T0 + 900 * MICRO, 900) == T0 + 900 * MICRO


def test_window_key_end():
    assert WindowKey("1m", "Pune-West", T0).end_us == T0 + 60 * MICRO
    assert WindowKey("15m", "Pune-West", T0).end_us == T0 + 900 * MICRO


def test_stats_of_one_reading():
    assert WindowStats.of(row("m", "R", T0 + 5, 4_123_000, 34_400, 230_100_000)) == WindowStats(
        count=1,
        power_sum=4_123_000,
        power_min=4_123_000,
        power_max=4_123_000,
        energy_sum=34_400,
        voltage_sum=230_100_000,
        voltage_count=1,
        last_ts_us=T0 + 5,
    )


def test_stats_of_reading_without_optionals_and_zero_power():
    assert WindowStats.of(row("m", "R", T0, 0)) == WindowStats(
        count=1,
        power_sum=0,
        power_min=0,
        power_max=0,
        energy_sum=0,
        voltage_sum=0,
        voltage_count=0,
        last_ts_us=T0,
    )


def test_merge_adds_sums_and_widens_extremes():
    a = WindowStats.of(row("m", "R", T0 + 10, 5_000_000, 1_000, 230_000_000))
    b = WindowStats.of(row("m", "R", T0 + 3, 0, None, None))
    c = WindowStats.of(row("m", "R", T0 + 7, 7_500_000, 2_500, 240_000_000))
    assert a.merge(b).merge(c) == WindowStats(
        count=3,
        power_sum=12_500_000,
        power_min=0,
        power_max=7_500_000,
        energy_sum=3_500,
        voltage_sum=470_000_000,
        voltage_count=2,
        last_ts_us=T0 + 10,
    )


def _random_rows(rng: random.Random, n: int) -> list[list]:
    rows = []
    for i in range(n):
        rows.append(
            row(
                "m",
                "R",
                T0 + rng.randrange(60 * MICRO),
                rng.choice([0, rng.randrange(1, 20_000_000)]),
                rng.choice([None, rng.randrange(0, 100_000)]),
                rng.choice([None, rng.randrange(200_000_000, 250_000_000)]),
            )
        )
        rows[-1][2] = f"r{i}"
    return rows


def _fold(rows: list[list]) -> WindowStats:
    return reduce(WindowStats.merge, (WindowStats.of(r) for r in rows))


def test_fold_is_order_and_batching_independent():
    """Property: any permutation and any split into batches folds to the same statistics."""
    rng = random.Random(20261122)
    for _ in range(300):
        rows = _random_rows(rng, rng.randrange(1, 30))
        expected = WindowStats(
            count=len(rows),
            power_sum=sum(r[4] for r in rows),
            power_min=min(r[4] for r in rows),
            power_max=max(r[4] for r in rows),
            energy_sum=sum(r[5] or 0 for r in rows),
            voltage_sum=sum(r[6] or 0 for r in rows),
            voltage_count=sum(r[6] is not None for r in rows),
            last_ts_us=max(r[3] for r in rows),
        )
        assert _fold(rows) == expected
        shuffled = rows[:]
        rng.shuffle(shuffled)
        cuts = (
            sorted(rng.sample(range(1, len(rows)), rng.randrange(0, len(rows))))
            if len(rows) > 1
            else []
        )
        batches = [shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
        partials = [_fold(batch) for batch in batches]
        rng.shuffle(partials)
        assert reduce(WindowStats.merge, partials) == expected


def test_merge_is_associative_and_commutative():
    rng = random.Random(7)
    for _ in range(200):
        a, b, c = (_fold(_random_rows(rng, rng.randrange(1, 5))) for _ in range(3))
        assert a.merge(b) == b.merge(a)
        assert a.merge(b).merge(c) == a.merge(b.merge(c))


def test_pack_unpack_roundtrip():
    stats = WindowStats(
        count=2_000_000_000,
        power_sum=2**53 - 1,
        power_min=0,
        power_max=1_000_000 * MICRO,
        energy_sum=123_456_789,
        voltage_sum=250 * MICRO * 1000,
        voltage_count=1000,
        last_ts_us=T0 + 59_999_999,
    )
    packed = stats.pack()
    assert len(packed) == PACKED_LAYOUT.size == 56
    assert WindowStats.unpack(packed) == stats


def test_lua_layout_matches_python_layout():
    """The Lua fold script unpacks the same bytes: i4 <-> i, i8 <-> q, little-endian."""
    translated = "<" + "".join(
        {"i4": "i", "i8": "q"}[LUA_LAYOUT[i : i + 2]] for i in range(1, len(LUA_LAYOUT), 2)
    )
    assert translated == PACKED_LAYOUT.format


def test_fold_rows_groups_by_region_and_minute_and_merges_meters():
    minute = 60 * MICRO
    rows = [
        row("a", "North", T0 + 1, 1_000_000, 10, 230_000_000),
        row("a", "North", T0 + 2, 3_000_000, None, None),  # same meter, same minute
        row("b", "North", T0 + minute, 2_000_000, 20, None),  # next minute
        row("c", "South", T0 + 5, 4_000_000, None, 240_000_000),  # other region
        row("a", "North", T0 + 900 * MICRO, 5_000_000),  # next quarter hour
    ]
    folded = fold_rows(rows)
    ab_first = WindowStats(2, 4_000_000, 1_000_000, 3_000_000, 10, 230_000_000, 1, T0 + 2)
    b_next = WindowStats(1, 2_000_000, 2_000_000, 2_000_000, 20, 0, 0, T0 + minute)
    c_first = WindowStats(1, 4_000_000, 4_000_000, 4_000_000, 0, 240_000_000, 1, T0 + 5)
    a_late = WindowStats(1, 5_000_000, 5_000_000, 5_000_000, 0, 0, 0, T0 + 900 * MICRO)
    assert folded == {
        WindowKey("1m", "North", T0): {"a": ab_first},
        WindowKey("1m", "North", T0 + minute): {"b": b_next},
        WindowKey("1m", "South", T0): {"c": c_first},
        WindowKey("1m", "North", T0 + 900 * MICRO): {"a": a_late},
    }


def test_a_minute_rolls_up_into_its_quarter_hour():
    assert rollup_target(WindowKey("1m", "North", T0 + 14 * 60 * MICRO)) == WindowKey(
        "15m", "North", T0
    )
    assert rollup_target(WindowKey("1m", "North", T0 + 900 * MICRO)) == WindowKey(
        "15m", "North", T0 + 900 * MICRO
    )
    assert rollup_target(WindowKey("15m", "North", T0)) is None


def test_fold_rows_of_nothing():
    assert fold_rows([]) == {}


@pytest.mark.parametrize(
    "key",
    [
        WindowKey("1m", "Pune-West", T0),
        WindowKey("15m", "Hyderabad-Central", T0 + 900 * MICRO),
        WindowKey("1m", "odd:region:name", 0),
    ],
)
def test_window_key_names_roundtrip(key):
    names = shard_keys(3)
    assert names.window(key) == f"segs:{{s3}}:win:{key.size}:{key.region}:{key.start_us}"
    moved = names.flushing_window("0123456789abcdef", key)
    assert moved == f"segs:{{s3}}:flushing:0123456789abcdef:{key.size}:{key.region}:{key.start_us}"
    assert parse_flushing_name(moved) == FlushingWindow(3, "0123456789abcdef", key)


def test_a_shards_keys_share_one_hash_tag():
    """Redis Cluster hashes only the part in braces: every key of a shard has the same one."""
    names = shard_keys(11)
    window = WindowKey("1m", "Pune-West", T0)
    keys = [
        names.open_windows,
        names.flushing,
        names.pending,
        names.pending_at,
        names.states,
        names.deadlines,
        names.downtime,
        names.outbox,
        names.applied("b1"),
        names.window(window),
        names.flushing_window("t", window),
        names.dedupe_prefix + "123",
    ]
    assert {key[key.index("{") : key.index("}") + 1] for key in keys} == {"{s11}"}


def test_the_field_that_keeps_a_window_a_hash_table_is_never_a_meter():
    # A meter of that id would be skipped by the flush; its value must outgrow Redis's default
    # hash-max-listpack-value (64 bytes) to keep the hash a hash table.
    assert not is_valid_id(TABLE_FIELD)
    assert len(TABLE_VALUE.encode()) > 64
