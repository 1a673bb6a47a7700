"""Meter shards: a stable CRC-32 of the meter id, the same on every host and in every run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segs.domain.sharding import queue_for_shard
from segs.domain.sharding import shard_for
from segs.domain.sharding import stable_hash


@pytest.mark.parametrize(
    ("meter_id", "crc"),
    [
        ("123456789", 0xCBF43926),  # the CRC-32 check value
        ("", 0),
        ("MTR-00000001", 17_600_426),
        ("MTR-00000042", 4_234_746_644),
    ],
)
def test_stable_hash_is_crc32(meter_id, crc):
    assert stable_hash(meter_id) == crc


def test_shard_is_crc32_mod_shards():
    assert shard_for("123456789", 8) == 0xCBF43926 % 8 == 6
    assert shard_for("123456789", 4) == 2
    assert shard_for("MTR-00000042", 8) == 4_234_746_644 % 8 == 4
    assert shard_for("anything", 1) == 0


@pytest.mark.parametrize("shards", [1, 2, 4, 8, 13])
def test_shard_in_range_and_stable(shards):
    meters = [f"MTR-{i:08d}" for i in range(2000)]
    assigned = [shard_for(meter, shards) for meter in meters]
    assert all(0 <= shard < shards for shard in assigned)
    assert assigned == [shard_for(meter, shards) for meter in meters]
    # Every shard gets meters (a hash, not a constant).
    assert set(assigned) == set(range(shards))


def test_shard_is_the_same_in_another_process():
    """Unlike the salted built-in hash, another interpreter computes the same shards."""
    code = (
        "from segs.domain.sharding import shard_for;"
        "print([shard_for(f'MTR-{i:08d}', 8) for i in range(50)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str([shard_for(f"MTR-{i:08d}", 8) for i in range(50)])


def test_queue_names():
    assert queue_for_shard(0) == "readings.0"
    assert queue_for_shard(7) == "readings.7"
