"""Tumbling event-time windows: which window a reading falls in, and how window statistics fold.

Statistics are integer micro-units, so folding is associative and commutative: the same readings
give the same window whatever the order, the batching or the number of flushes (merge semantics).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from segs.domain.readings import MICRO
from segs.domain.readings import ROW_ENERGY
from segs.domain.readings import ROW_POWER
from segs.domain.readings import ROW_TS
from segs.domain.readings import ROW_VOLTAGE
from segs.domain.readings import ReadingRow

# Window name -> length in seconds. Windows are aligned to the Unix epoch, hence to UTC.
WINDOW_SIZES: dict[str, int] = {"1m": 60, "15m": 900}
# Readings fold into 1-minute windows only. A 1-minute window, once flushed, folds into its
# 15-minute window as a whole: statistics merge exactly, so the result equals folding every
# reading into both, at a fraction of the work (a meter reporting every 2 s folds 30 readings
# into one 1-minute window, which then costs its 15-minute window one merge instead of 30).
READING_WINDOW = "1m"
ROLLS_UP_INTO = {"1m": "15m"}

# Layout of one meter's statistics inside a Redis window hash. The Lua fold script in
# segs/services/spine/windows_store.py packs and unpacks the same layout.
PACKED_LAYOUT = struct.Struct("<iqqqqqiq")
LUA_LAYOUT = "<i4i8i8i8i8i8i4i8"


def window_start_us(ts_us: int, size_s: int) -> int:
    """Return the start of the *size_s* window holding the instant *ts_us* (epoch microseconds)."""
    span = size_s * MICRO
    return ts_us - ts_us % span


# Not frozen: frozen dataclasses set each field through object.__setattr__, which showed up in
# the worker's profile; nothing mutates these after construction.
@dataclass(slots=True)
class WindowStats:
    """What a window knows about one meter's readings, in micro-units."""

    count: int
    power_sum: int
    power_min: int
    power_max: int
    energy_sum: int
    voltage_sum: int
    voltage_count: int
    last_ts_us: int

    @classmethod
    def of(cls, row: ReadingRow) -> WindowStats:
        """Statistics of a window holding only *row*."""
        power = row[ROW_POWER]
        energy = row[ROW_ENERGY]
        voltage = row[ROW_VOLTAGE]
        return cls(
            count=1,
            power_sum=power,
            power_min=power,
            power_max=power,
            energy_sum=0 if energy is None else energy,
            voltage_sum=0 if voltage is None else voltage,
            voltage_count=0 if voltage is None else 1,
            last_ts_us=row[ROW_TS],
        )

    def merge(self, other: WindowStats) -> WindowStats:
        """Combine two disjoint sets of readings: counts and sums add, extremes widen."""
        return WindowStats(
            count=self.count + other.count,
            power_sum=self.power_sum + other.power_sum,
            power_min=min(self.power_min, other.power_min),
            power_max=max(self.power_max, other.power_max),
            energy_sum=self.energy_sum + other.energy_sum,
            voltage_sum=self.voltage_sum + other.voltage_sum,
            voltage_count=self.voltage_count + other.voltage_count,
            last_ts_us=max(self.last_ts_us, other.last_ts_us),
        )

    def pack(self) -> bytes:
        return PACKED_LAYOUT.pack(
            self.count,
            self.power_sum,
            self.power_min,
            self.power_max,
            self.energy_sum,
            self.voltage_sum,
            self.voltage_count,
            self.last_ts_us,
        )

    @classmethod
    def unpack(cls, packed: bytes) -> WindowStats:
        return cls(*PACKED_LAYOUT.unpack(packed))


class WindowKey(NamedTuple):
    """Identifies one open window of one region; a Redis hash holds its meters."""

    size: str
    region: str
    start_us: int

    @property
    def end_us(self) -> int:
        return self.start_us + WINDOW_SIZES[self.size] * MICRO


def fold_rows(rows: Iterable[ReadingRow]) -> dict[WindowKey, dict[str, WindowStats]]:
    """Fold readings into per-window, per-meter statistics of their 1-minute windows."""
    # This runs for every reading a worker receives: windows are keyed by plain tuples and each
    # reading's statistics built positionally, which halved its cost against WindowKey and
    # WindowStats.of per reading.
    span = WINDOW_SIZES[READING_WINDOW] * MICRO
    by_window: dict[tuple[str, int], dict[str, WindowStats]] = {}
    for row in rows:
        # The first seven fields of a row (segs.domain.readings, ReadingRow).
        meter_id, region, _, ts, power, energy, voltage = row[:7]
        window = (region, ts - ts % span)
        meters = by_window.get(window)
        if meters is None:
            meters = by_window[window] = {}
        single = WindowStats(
            1,
            power,
            power,
            power,
            0 if energy is None else energy,
            0 if voltage is None else voltage,
            0 if voltage is None else 1,
            ts,
        )
        current = meters.get(meter_id)
        meters[meter_id] = single if current is None else current.merge(single)
    return {
        WindowKey(READING_WINDOW, region, start): meters
        for (region, start), meters in by_window.items()
    }


def rollup_target(key: WindowKey) -> WindowKey | None:
    """The larger window a flushed window folds into, if any."""
    size = ROLLS_UP_INTO.get(key.size)
    if size is None:
        return None
    return WindowKey(size, key.region, window_start_us(key.start_us, WINDOW_SIZES[size]))
