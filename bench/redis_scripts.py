"""``python -m bench.redis_scripts``: Redis CPU per reading of the reading path's own scripts.

It runs SEGS's real scripts, as the API and the worker call them, on the seed's fleet shape
(meters reporting every 2 s, 250 readings per fold, 500 per dedupe call):
- ``fold``: the worker's fold script with detection
(segs.services.spine.windows_store.WindowStore.fold);
- ``fold, no detection``: the same script given no readings to judge;
- ``dedupe``: the API's dedupe marks (segs.services.spine.dedupe.RedisDedupeMarks.mark_new).
Redis's own CPU (INFO cpu) is what is reported, since Redis shares the machine's two cores.
It uses a Redis database of its own (default 13) and empties it.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable

import redis

from segs.domain.readings import MICRO
from segs.domain.readings import ReadingRow
from segs.domain.windows import fold_rows
from segs.services.spine.dedupe import RedisDedupeMarks
from segs.services.spine.detection import pack_readings
from segs.services.spine.windows_store import Judged
from segs.services.spine.windows_store import LateWindows
from segs.services.spine.windows_store import WindowStore
from simulator.meters import REGIONS

# No window counts as late here (they are old test windows, flushed on their end).
NEVER_LATE = LateWindows(cutoff_us=0, hold_us=0)

START_US = 1_800_000_000 * MICRO


def _batch(
    meters: list[tuple[str, str]], index: int, size: int, rng: random.Random
) -> list[ReadingRow]:
    """The index-th batch of a fleet of (meter, region) sending one reading per meter every 2 s."""
    first = (index * size) % len(meters)
    ts = START_US + (index * size // len(meters)) * 2 * MICRO
    return [
        [meter, region, "r", ts, rng.randint(MICRO, 8 * MICRO), 1000, 230 * MICRO] + [None] * 4
        for meter, region in meters[first : first + size]
    ]


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _measure(client: redis.Redis, batches: int, size: int, call: Callable[[int], None]) -> float:
    """Redis CPU µs per reading over *batches* calls of *size* readings."""
    client.flushdb()
    call(0)  # loads the script
    before = _redis_cpu(client)
    for index in range(1, batches + 1):
        call(index)
    return 1e6 * (_redis_cpu(client) - before) / (batches * size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redis_scripts",
        description="Redis CPU per reading of the fold (with and without detection) and dedupe "
        "scripts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--redis-url", default="redis://localhost:6379/13", help="emptied")
    parser.add_argument("--meters", type=int, default=40_000, help="fleet size")
    parser.add_argument("--readings", type=int, default=300_000, help="readings per measurement")
    parser.add_argument(
        "--regions",
        type=int,
        choices=range(1, len(REGIONS) + 1),
        default=1,
        metavar=f"1..{len(REGIONS)}",
        help="regions the meters are spread over; a window hash holds one region's meters "
        "(--meters 4425 --regions 10 is one shard's part of the simulator's fleet at 17,700 "
        "readings/s)",
    )
    args = parser.parse_args(argv)

    client = redis.Redis.from_url(args.redis_url)
    store = WindowStore(client, 1)
    marks = RedisDedupeMarks(client, ttl_s=300)
    meters = [(f"MTR-{index:08d}", REGIONS[index % args.regions]) for index in range(args.meters)]
    rng = random.Random(1)

    def fold(judge: bool) -> Callable[[int], None]:
        def call(index: int) -> None:
            rows = _batch(meters, index, 250, rng)
            readings = pack_readings(rows) if judge else b""
            judged = Judged(readings, START_US, 3, 30)
            store.fold(0, [str(uuid.uuid4())], fold_rows(rows), judged, 60, NEVER_LATE)

        return call

    def dedupe(index: int) -> None:
        rows = _batch(meters, index, 500, rng)
        marks.mark_new({0: [(row[0], row[3]) for row in rows]})

    print(f"SEGS Redis scripts, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    print(f"fleet: {args.meters:,} meters in {args.regions} region(s)")
    for name, size, call in (
        ("fold", 250, fold(judge=True)),
        ("fold, no detection", 250, fold(judge=False)),
        ("dedupe", 500, dedupe),
    ):
        per_reading = _measure(client, args.readings // size, size, call)
        print(f"{name:<20}: {per_reading:5.2f} µs of Redis CPU per reading")
    client.flushdb()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
