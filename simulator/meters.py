"""The meter model: a fleet of meters and the readings each cycle produces. Pure: no I/O, no clock.

All randomness comes from the ``random.Random`` passed in, so a seed and the cycle timestamps
fully determine every payload.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from itertools import chain
from itertools import cycle
from itertools import islice
from itertools import repeat
from typing import Any

import orjson

REGIONS: tuple[str, ...] = (
    "Mumbai-North",
    "Mumbai-South",
    "Delhi-North",
    "Delhi-South",
    "Bangalore-East",
    "Bangalore-West",
    "Pune-East",
    "Pune-West",
    "Hyderabad-Central",
    "Chennai-North",
)

# Load profiles a meter can follow in a cycle; the first three are the --mode choices.
NORMAL = "normal"
PEAK = "peak"
OUTAGE = "outage"
OVERLOAD = "overload"
MODES: tuple[str, ...] = (NORMAL, PEAK, OUTAGE)
PROFILES: tuple[str, ...] = (NORMAL, PEAK, OUTAGE, OVERLOAD)

SCENARIOS: tuple[str, ...] = ("steady", "overload", "outage", "flap")

BASE_LOAD_MIN_KW = 1.0
BASE_LOAD_MAX_KW = 8.0

# Power drawn in each profile: base x U(low, low + span); in outage only by 30 in 100 meters.
_POWER_RANGES: dict[str, tuple[float, float]] = {
    NORMAL: (0.8, 0.4),
    PEAK: (1.5, 0.5),
    OVERLOAD: (1.9, 0.4),
    OUTAGE: (0.0, 0.3),
}

# The overload scenario climbs to its full load in steps over --ramp-s seconds. SEGS learns
# each meter's baseline from its readings; a jump from about 1x to 2.1x its base load at once
# is more than twice the baseline, so half the region's meters would report a power spike on
# top of the regional overload. Each step raises the draw by at most a fifth of the base load,
# which a learned baseline follows.
RAMP_STEPS = 6
DEFAULT_RAMP_S = 180.0


def _ramp_profile(step: int) -> str:
    """The overload profile of ramp step 1..RAMP_STEPS (the last is OVERLOAD itself)."""
    if step >= RAMP_STEPS:
        return OVERLOAD
    name = f"{OVERLOAD}-ramp-{step}"
    if name not in _POWER_RANGES:
        (normal_low, span), (overload_low, _) = _POWER_RANGES[NORMAL], _POWER_RANGES[OVERLOAD]
        low = normal_low + (overload_low - normal_low) * step / RAMP_STEPS
        _POWER_RANGES[name] = (round(low, 4), span)
    return name


@dataclass(frozen=True, slots=True)
class Fleet:
    """The simulated meters, one list per attribute: meter i is meter_ids[i], user_ids[i]...

    Ids are MTR-/USR- and zero-padded numbers, so their JSON needs no escaping. Nothing here
    changes after build_fleet; the readings are what changes from cycle to cycle.
    """

    meter_ids: list[str]
    user_ids: list[str]
    regions: list[str]
    base_loads_kw: list[float]

    def __len__(self) -> int:
        return len(self.meter_ids)


def build_fleet(count: int, regions: Sequence[str], rng: random.Random) -> Fleet:
    """Create *count* meters: two per user, regions assigned round-robin, base load drawn once."""
    numbers = [str(n).zfill(8) for n in range(1, count + 1)]
    users = ["USR-" + number for number in numbers[: (count + 1) // 2]]
    uniform = rng.uniform
    return Fleet(
        meter_ids=["MTR-" + number for number in numbers],
        user_ids=list(islice(chain.from_iterable(zip(users, users, strict=True)), count)),
        regions=list(islice(cycle(regions), count)),
        base_loads_kw=[round(uniform(BASE_LOAD_MIN_KW, BASE_LOAD_MAX_KW), 2) for _ in range(count)],
    )


class Scenario:
    """Which load profile each meter follows in a given cycle.

    The overload scenario reaches its full load *ramp_s* seconds after the first cycle asked
    about, in RAMP_STEPS steps (0: at once).
    """

    def __init__(
        self, fleet: Fleet, *, name: str, mode: str, region: str, ramp_s: float = DEFAULT_RAMP_S
    ) -> None:
        in_region = [meter_region == region for meter_region in fleet.regions]

        def region_in(profile: str) -> list[str]:
            return [profile if hit else mode for hit in in_region]

        self._ramp: list[list[str]] = []
        self._ramp_step_s = ramp_s / RAMP_STEPS
        self._started_s: float | None = None
        if name == "steady":
            self._even = self._odd = [mode] * len(fleet)
        elif name == "overload":
            self._even = self._odd = region_in(OVERLOAD)
            if ramp_s > 0:
                self._ramp = [region_in(_ramp_profile(step)) for step in range(1, RAMP_STEPS)]
        elif name == "outage":
            self._even = self._odd = region_in(OUTAGE)
        elif name == "flap":
            # Overloaded in even UTC minutes only: each 1-minute window is wholly one or the other,
            # so overload alerts should fire and clear every other minute.
            self._even, self._odd = region_in(OVERLOAD), [mode] * len(fleet)
        else:
            raise ValueError(f"unknown scenario {name!r}")

    def profiles(self, epoch_s: float) -> list[str]:
        """Profile of every meter, in fleet order, for the cycle that starts at *epoch_s*."""
        if self._ramp:
            if self._started_s is None:
                self._started_s = epoch_s
            step = int((epoch_s - self._started_s) // self._ramp_step_s)
            if step < len(self._ramp):
                return self._ramp[step]
        return self._odd if int(epoch_s // 60) % 2 else self._even


def iso_timestamp(epoch_s: float) -> str:
    """ISO-8601 UTC to the nearest millisecond with a Z, e.g. 2026-11-22T10:00:00.000Z."""
    # Rounded, not truncated: t0 + k x interval is a float a hair below the intended millisecond.
    moment = datetime.fromtimestamp(round(epoch_s, 3), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# What a reading needs besides the cycle's draws, shared by the meters with the same profile,
# base load and region: (base, low, span, outage, region and "seq" key, the rest with status OK,
# the rest with status ERROR). The rest ends with the opening of the next reading, _NEXT.
_Kind = tuple[float, float, float, bool, str, str, str]

_FIRST = '[{"readingId":"'
_NEXT = ',{"readingId":"'
# A reading is this many pieces of JSON: readingId value (first its 128 random bits), meter and
# user ids up to the timestamp, timestamp up to powerKw, powerKw and energyKwh up to voltage,
# voltage, region up to seq, seq, the rest. Joined, a batch's pieces are its body.
_PIECES = 8

# Bytes 6 and 8 of a version-4 UUID hold its version (4) and variant (binary 10) bits.
_UUID_VERSION = bytes(byte & 0x0F | 0x40 for byte in range(256))
_UUID_VARIANT = bytes(byte & 0x3F | 0x80 for byte in range(256))


class CycleEncoder:
    """Turns a cycle's readings straight into JSON batch bodies, without a dict per reading.

    A body is byte for byte what orjson.dumps gives for the list of reading dicts (keys in the
    order of generate_readings), and the random draws are the same ones in the same order, so a
    seed repeats the same payloads. Whatever does not change between cycles (ids, region, the
    metadata object, the JSON of rounded numbers) is rendered once, and readingIds are
    formatted in bulk, so a reading costs a few draws and a handful of list items.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        interval_s: float,
        duplicate_rate: float,
        batch_size: int,
    ) -> None:
        self._fleet = fleet
        self._interval_s = interval_s
        self._duplicate_rate = duplicate_rate
        self._batch_size = batch_size
        # Closes the readingId string and runs up to the timestamp's value.
        self._heads = [
            f'","meterId":"{meter}","userId":"{user}","timestamp":'
            for meter, user in zip(fleet.meter_ids, fleet.user_ids, strict=True)
        ]
        self._kinds: dict[tuple[str, ...], list[_Kind]] = {}
        # JSON of powerKw and energyKwh up to "voltage", indexed by power in watts (that is
        # round(power, 3) x 1000) and rendered on first use; of voltage, by decivolts.
        highest_kw = max(fleet.base_loads_kw, default=0.0) * max(
            low + span for low, span in _POWER_RANGES.values()
        )
        self._powers: list[str | None] = [None] * (int(highest_kw * 1000) + 2)
        self._voltages = [_json(decivolts / 10) for decivolts in range(2401)]  # up to 240.0 V

    def batches(
        self, profiles: Sequence[str], *, seq: int, timestamp: str, rng: random.Random
    ) -> Iterator[tuple[bytes, int]]:
        """(JSON array body, readings in it) per batch of the cycle, generated lazily.

        One reading per meter in fleet order, each maybe followed by an exact copy; every batch
        holds batch_size readings but the last. Lazy so that sending can start before a large
        fleet has been generated.
        """
        kinds = self._kinds_for(profiles)
        size = self._batch_size
        stamp, seq_text = f'{_json(timestamp)},"powerKw":', str(seq)
        pending: list[Any] = []
        for start in range(0, len(kinds), size):
            stop = start + size
            self._encode(pending, kinds[start:stop], self._heads[start:stop], stamp, seq_text, rng)
            while len(pending) >= size * _PIECES:
                yield _body(pending[: size * _PIECES]), size
                del pending[: size * _PIECES]
        if pending:
            yield _body(pending), len(pending) // _PIECES

    def _kinds_for(self, profiles: Sequence[str]) -> list[_Kind]:
        """Each meter's _Kind under *profiles*; a scenario has a few, so they are kept."""
        key = tuple(profiles)
        kinds = self._kinds.get(key)
        if kinds is None:
            fleet = self._fleet
            meters = (key, fleet.base_loads_kw, fleet.regions)
            shared = {kind_key: _kind(*kind_key) for kind_key in set(zip(*meters, strict=True))}
            kinds = self._kinds[key] = list(map(shared.__getitem__, zip(*meters, strict=True)))
        return kinds

    def _encode(
        self,
        out: list[Any],
        kinds: list[_Kind],
        heads: list[str],
        stamp: str,
        seq: str,
        rng: random.Random,
    ) -> None:
        """Append the pieces of one reading per meter (and of its duplicates) to *out*.

        The draws per meter, in order: power (in outage: whether it draws power, how much,
        whether it reports ERROR), 128 bits of readingId, voltage, whether a duplicate follows.
        """
        # Locals: this loop runs for every reading, so look-ups are hoisted out of it.
        rnd = rng.random
        bits = rng.getrandbits
        floor = math.floor
        extend = out.extend
        powers = self._powers
        voltages = self._voltages
        duplicate_rate = self._duplicate_rate
        start = len(out)
        for kind, head in zip(kinds, heads, strict=True):
            base, low, span, outage, region, rest, error_rest = kind
            if outage:  # 30 in 100 draw power, 1 in 10 report ERROR
                power = base * (low + span * rnd()) if rnd() < 0.3 else 0.0
                if rnd() < 0.1:
                    rest = error_rest
            else:
                power = base * (low + span * rnd())
            # round(power, 3) is the float nearest watts / 1000 for the integer watts nearest
            # the exact power x 1000. The float product is off by far less than 0.01, so
            # rounding it finds that integer unless it is within 0.01 of a half, where
            # round(power, 3) settles it. Same for voltage, to 1 decimal.
            scaled = power * 1000.0
            watts = floor(scaled + 0.5)
            if not -0.49 < scaled - watts < 0.49:
                watts = round(round(power, 3) * 1000)
            uuid = bits(128)
            volts = 220.0 + 20.0 * rnd()
            scaled = volts * 10.0
            decivolts = floor(scaled + 0.5)
            if not -0.49 < scaled - decivolts < 0.49:
                decivolts = round(round(volts, 1) * 10)
            power_text = powers[watts]
            if power_text is None:
                power_text = powers[watts] = self._render_power(watts)
            reading = (uuid, head, stamp, power_text, voltages[decivolts], region, seq, rest)
            extend(reading)
            if duplicate_rate and rnd() < duplicate_rate:
                extend(reading)
        out[start::_PIECES] = _uuid_texts(out[start::_PIECES])

    def _render_power(self, watts: int) -> str:
        power = watts / 1000
        energy = round(power * self._interval_s / 3600, 4)
        return f'{_json(power)},"energyKwh":{_json(energy)},"voltage":'


def _kind(profile: str, base: float, region: str) -> _Kind:
    low, span = _POWER_RANGES[profile]
    metadata = f',"metadata":{{"mode":{_json(profile)},"baseLoad":{_json(base)}}}}}{_NEXT}'
    return (
        base,
        low,
        span,
        profile == OUTAGE,
        f',"region":{_json(region)},"seq":',
        ',"status":"OK"' + metadata,
        ',"status":"ERROR"' + metadata,
    )


def _uuid_texts(bits: list[int]) -> list[str]:
    """str(uuid.UUID(int=n, version=4)) of each n, formatted all at once in a few C loops."""
    raw = bytearray(b"".join(map(int.to_bytes, bits, repeat(16))))
    raw[6::16] = raw[6::16].translate(_UUID_VERSION)
    raw[8::16] = raw[8::16].translate(_UUID_VARIANT)
    # 8 groups of 4 hex digits per UUID, and a "-" between any two groups: 40 characters per
    # UUID. Deleting the 3 dashes a UUID does not have leaves 8-4-4-4-12 digits and a "-".
    text = bytearray(raw.hex("-", 2), "ascii")
    del text[34::40]
    del text[29::39]
    del text[4::38]
    text[36::37] = b" " * (len(bits) - 1)
    return text.decode().split(" ")


def _body(pieces: list[str]) -> bytes:
    """The JSON array of the readings whose pieces these are."""
    pieces[0] = _FIRST + pieces[0]
    pieces[-1] = pieces[-1][: -len(_NEXT)] + "]"
    return "".join(pieces).encode()


def generate_readings(
    fleet: Fleet,
    profiles: Sequence[str],
    *,
    seq: int,
    timestamp: str,
    interval_s: float,
    duplicate_rate: float,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """One reading per meter (plus random exact duplicates), in meter order, as dicts.

    Decoded from CycleEncoder's bodies, so these are exactly the readings the simulator sends.
    """
    encoder = CycleEncoder(
        fleet,
        interval_s=interval_s,
        duplicate_rate=duplicate_rate,
        batch_size=max(len(fleet), 1),
    )
    return [
        reading
        for body, _ in encoder.batches(profiles, seq=seq, timestamp=timestamp, rng=rng)
        for reading in orjson.loads(body)
    ]
