"""The closed-loop load: clients posting unique reading batches as fast as they are answered.

The shape of the outside check (issue 16): 100,000 meters in 4 regions; 8 clients each post a
500-reading batch (500 consecutive meters at one timestamp), wait for the answer and post the
next, for 60 s. The rate is the readings accepted divided by the time from the first request
until the last accepted reading is in raw_readings.

The same load runs against SEGS and against the bare-PostgreSQL peer (bench.peer), so the two
rates can be compared in one run.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any

import orjson

BATCH = 500


@dataclass(frozen=True)
class LoadShape:
    meters: int = 100_000
    regions: tuple[str, ...] = ()
    clients: int = 8
    duration_s: float = 60.0
    # Readings this many seconds old (a head-end delivering late); 0 for current ones.
    age_s: float = 0.0


@dataclass
class LoadResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    refused_batches: int = 0  # answered 429/503: not sent again, as the outside check does
    failed_batches: int = 0
    latencies_s: list[float] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() of the first request
    ended: float = 0.0  # when the last answer came


class BatchBodies:
    """Unique 500-reading bodies: batch n holds meter block n mod (meters / 500), all at the
    timestamp of cycle n div blocks. A cycle's timestamp is the clock when it began (minus the
    age), and always later than the previous cycle's, so no two batches repeat a key."""

    def __init__(self, shape: LoadShape) -> None:
        self.blocks = shape.meters // BATCH
        self._age_s = shape.age_s
        per_region = shape.meters // len(shape.regions)
        self._heads: list[list[str]] = []
        self._tails: list[list[str]] = []
        for block in range(self.blocks):
            heads, tails = [], []
            for meter in range(block * BATCH, (block + 1) * BATCH):
                region = shape.regions[min(meter // per_region, len(shape.regions) - 1)]
                heads.append(f'{{"meterId":"CL-{meter:06d}","region":"{region}","readingId":"r')
                # A steady load per meter: no anomaly alerts, as in a quiet grid.
                power = 1 + (meter % 50) / 10
                tails.append(f',"powerKw":{power},"energyKwh":0.001,"voltage":230.5}}')
            self._heads.append(heads)
            self._tails.append(tails)
        self._cycle_times: dict[int, str] = {}
        self._last_ms = 0
        self._lock = threading.Lock()

    def _timestamp(self, cycle: int) -> str:
        with self._lock:
            stamp = self._cycle_times.get(cycle)
            if stamp is None:
                now_ms = max(int((time.time() - self._age_s) * 1000), self._last_ms + 1)
                self._last_ms = now_ms
                moment = datetime.fromtimestamp(now_ms / 1000, UTC)
                stamp = self._cycle_times[cycle] = moment.isoformat(timespec="milliseconds")
            return stamp

    def body(self, number: int) -> bytes:
        cycle, block = divmod(number, self.blocks)
        middle = f'-{cycle}","timestamp":"{self._timestamp(cycle)}"'
        heads, tails = self._heads[block], self._tails[block]
        readings = [f"{heads[i]}{block * BATCH + i}{middle}{tails[i]}" for i in range(BATCH)]
        return ("[" + ",".join(readings) + "]").encode()


def run_load(port: int, path: str, key: str | None, shape: LoadShape) -> LoadResult:
    """Post batches from shape.clients threads for shape.duration_s; the totals."""
    bodies = BatchBodies(shape)
    numbers = itertools.count()
    result = LoadResult()
    lock = threading.Lock()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    result.started = time.monotonic()
    deadline = result.started + shape.duration_s

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies: list[float] = []
        counts = {"accepted": 0, "duplicates": 0, "rejected": 0, "refused": 0, "failed": 0}
        while time.monotonic() < deadline:
            body = bodies.body(next(numbers))
            sent = time.monotonic()
            try:
                connection.request("POST", path, body, headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                counts["failed"] += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latencies.append(time.monotonic() - sent)
            if answer.status in (429, 503):
                counts["refused"] += 1
                continue
            if answer.status >= 300 or not data:
                counts["failed"] += 1
                continue
            reply: dict[str, Any] = orjson.loads(data)
            counts["accepted"] += int(reply.get("accepted", 0))
            counts["duplicates"] += int(reply.get("duplicates", 0))
            counts["rejected"] += int(reply.get("rejected", 0))
        connection.close()
        with lock:
            result.accepted += counts["accepted"]
            result.duplicates += counts["duplicates"]
            result.rejected += counts["rejected"]
            result.refused_batches += counts["refused"]
            result.failed_batches += counts["failed"]
            result.latencies_s.extend(latencies)
            result.ended = max(result.ended, time.monotonic())

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(shape.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def wait_archived(
    count_archived: Callable[[], int],
    expected: int,
    *,
    queued: Callable[[], int] = lambda: 0,
    timeout_s: float = 600.0,
) -> tuple[float, int]:
    """Poll until *expected* readings are archived (or no progress for 60 s, or the timeout);
    (time.monotonic() when the count was first seen complete, readings archived).

    While *queued* says messages still wait, the count cannot be complete: the cheap depth is
    polled instead, as an exact count takes PostgreSQL about 0.1 s of the CPU the drain needs.
    """
    started = time.monotonic()
    last_seen: tuple[str, int] | None = None
    last_progress = started
    while True:
        waiting = queued()
        if waiting:
            seen = ("queued", waiting)
        else:
            count = count_archived()
            if count >= expected:
                return time.monotonic(), count
            seen = ("archived", count)
        now = time.monotonic()
        if seen != last_seen:
            last_seen, last_progress = seen, now
        if now - last_progress > 60 or now - started > timeout_s:
            return now, count_archived()
        time.sleep(0.25)


def archived_counter(database_url: str) -> Callable[[], int]:
    """Rows in raw_readings now, counted exactly (polled only after the load: the statistics
    views are cheaper but an idle backend reports its inserts up to 10 s late)."""
    import psycopg

    from segs.dbadmin import libpq_conninfo

    connection = psycopg.connect(libpq_conninfo(database_url), autocommit=True)

    def archived() -> int:
        row = connection.execute("SELECT count(*) FROM raw_readings").fetchone()
        return int(row[0]) if row else 0

    return archived


@dataclass
class ClosedLoopReport:
    """One closed-loop run against one target."""

    target: str
    load: LoadResult
    archived: int
    archived_after_s: float  # from the first request until the last accepted reading was stored
    cpu_seconds: dict[str, float]
    max_queue_depth: int = 0
    totals: dict[str, Any] = field(default_factory=dict)
    # (command, calls, total µs) on the Redis that holds windows, ledger and marks.
    redis_commands: list[tuple[str, int, float]] = field(default_factory=list)
    # Alerts raised by the end of the run, by type: each costs a transition and notifications.
    alerts: dict[str, int] = field(default_factory=dict)
    # On a Redis Cluster: the keys each primary held when the load ended.
    keys_per_node: list[int] = field(default_factory=list)
    # Redis killed mid-load: seconds from its return until the aggregates equalled raw
    # (None: not within the wait).
    healed_after_s: float | None = None

    @property
    def rate(self) -> float:
        return self.load.accepted / self.archived_after_s if self.archived_after_s else 0.0

    def lines(self) -> list[str]:
        load = self.load
        p50 = p99 = float("nan")
        if load.latencies_s:
            ordered = sorted(load.latencies_s)
            p50 = ordered[len(ordered) // 2] * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        cpu_total = sum(self.cpu_seconds.values())
        per_reading = 1e6 * cpu_total / load.accepted if load.accepted else float("nan")
        lines = [
            f"{self.target}",
            f"  readings/s end to end : {self.rate:,.0f}  ({load.accepted:,} accepted, the last "
            f"archived {self.archived_after_s:.1f} s after the first request; load "
            f"{load.ended - load.started:.1f} s)",
            f"  archived              : {self.archived:,}"
            f"{'' if self.archived == load.accepted else '  (MISSING READINGS)'}",
            f"  batch latency         : p50 {p50:.1f} ms, p99 {p99:.1f} ms over "
            f"{len(load.latencies_s):,} requests; refused {load.refused_batches} (429/503), "
            f"failed {load.failed_batches}, duplicates {load.duplicates}, "
            f"rejected {load.rejected}",
            f"  reading queues        : max depth {self.max_queue_depth} messages",
            f"  CPU                   : {cpu_total:.1f} CPU-s, {per_reading:.1f} µs per reading: "
            + ", ".join(
                f"{name} {seconds:.1f}"
                for name, seconds in sorted(self.cpu_seconds.items(), key=lambda item: -item[1])
                if seconds >= 0.05
            ),
        ]
        if self.redis_commands:
            lines.append(
                "  Redis (windows, ledger, marks; script commands also inside evalsha): "
                + ", ".join(
                    f"{name} {usec / max(load.accepted, 1):.2f}"
                    for name, _, usec in self.redis_commands[:6]
                )
                + " µs per reading"
            )
        if self.healed_after_s is not None:
            lines.append(
                f"  after losing Redis    : every aggregate equals raw_readings "
                f"{self.healed_after_s:.0f} s after Redis was back"
            )
        if self.keys_per_node:
            total = max(sum(self.keys_per_node), 1)
            lines.append(
                "  keys per cluster node : "
                + " / ".join(f"{count:,}" for count in self.keys_per_node)
                + f" (the most on one node: {100 * max(self.keys_per_node) / total:.0f} %)"
            )
        if self.alerts:
            lines.append(
                "  alerts raised         : "
                + ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.alerts.items()))
            )
        if self.totals:
            bad = [name for name, ok in self.totals["checks"].items() if not ok]
            lines.append(
                "  totals check          : "
                + ("PASS (raw and all four aggregate tables exact)" if not bad else "FAIL: ")
                + ", ".join(bad)
            )
        return lines
