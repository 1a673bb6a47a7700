"""The fixed-rate send loop, its statistics, the live progress line and the final summary."""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import orjson

from simulator.meters import DEFAULT_RAMP_S
from simulator.meters import REGIONS
from simulator.meters import CycleEncoder
from simulator.meters import Scenario
from simulator.meters import build_fleet
from simulator.meters import iso_timestamp
from simulator.senders import Outcome
from simulator.senders import Transport
from simulator.senders import open_transport
from simulator.senders import send_with_retries
from simulator.senders import tally


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs, already validated by the CLI."""

    meters: int = 5000
    interval_s: float = 10.0
    mode: str = "normal"
    scenario: str = "steady"
    scenario_region: str = "Pune-West"
    ramp_s: float = DEFAULT_RAMP_S
    regions: tuple[str, ...] = REGIONS
    duplicate_rate: float = 0.01
    seed: int = 0
    iterations: int = 0
    duration_s: float = 0.0
    target: str = "http"
    url: str = "http://localhost:8000/telemetry/batch"
    # The ingestion key, sent as "Authorization: Bearer <key>"; None when the URL carries it
    # (/api/v1/<key>/telemetry/batch).
    key: str | None = None
    batch_size: int = 500
    concurrency: int = 10
    spread: bool = False
    retries: int = 3
    retry_delay_s: float = 1.0
    timeout_s: float = 30.0
    json_summary: Path | None = None
    quiet: bool = False


@dataclass(slots=True)
class Stats:
    """Running totals; counts are readings unless the name says batches."""

    generated: int = 0
    sent: int = 0  # in batches that got a final answer
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0  # in batches given up after the last retry
    batches: int = 0
    cycles: int = 0
    behind_schedule: int = 0
    in_flight: int = 0  # batches
    transport_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    last_error: str | None = None
    last_error_status: int | None = None
    elapsed_s: float = 0.0

    def record(self, outcome: Outcome, count: int) -> None:
        """Add the fate of one batch of *count* readings."""
        self.batches += 1
        self.statuses.update(outcome.statuses)
        self.latencies_s.extend(outcome.latencies_s)
        self.transport_errors += outcome.transport_errors
        if outcome.final is None:
            self.failed += count
            self.last_error, self.last_error_status = outcome.error, outcome.error_status
            return
        self.sent += count
        accepted, duplicates, rejected = tally(outcome.final, count)
        self.accepted += accepted
        self.duplicates += duplicates
        self.rejected += rejected

    def latency_ms(self, *percents: float) -> list[float]:
        """Latency percentiles in milliseconds (0.0 before any answer)."""
        ordered = sorted(self.latencies_s)
        return [percentile(ordered, p) * 1000 for p in percents]


def percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 when it is empty."""
    if not ordered:
        return 0.0
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def scheduled_start(t0: float, cycle: int, interval_s: float) -> float:
    """When cycle number *cycle* (0-based) is due: fixed-rate, so lateness never accumulates."""
    return t0 + cycle * interval_s


class _Run:
    """One run: the fleet, the schedule, the batches in flight and their statistics."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        self.stats = Stats()
        self.rng = random.Random(settings.seed)
        self.fleet = build_fleet(settings.meters, settings.regions, self.rng)
        self.scenario = Scenario(
            self.fleet,
            name=settings.scenario,
            mode=settings.mode,
            region=settings.scenario_region,
            ramp_s=settings.ramp_s,
        )
        self.encoder = CycleEncoder(
            self.fleet,
            interval_s=settings.interval_s,
            duplicate_rate=settings.duplicate_rate,
            batch_size=settings.batch_size,
        )
        self.stop = asyncio.Event()
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.signals = 0
        self.t0 = 0.0
        self.progress_shown = False

    async def run(self) -> None:
        """Run cycles until the iteration count, the duration or a signal says stop."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        # Whole milliseconds, so every cycle's timestamp is exactly start + k x interval.
        self.t0, wall0 = loop.time(), round(time.time(), 3)
        deadline = (
            loop.call_later(settings.duration_s, self.stop.set) if settings.duration_s else None
        )
        cycle = 0
        while not self.stop.is_set() and not (settings.iterations and cycle >= settings.iterations):
            start = scheduled_start(self.t0, cycle, settings.interval_s)
            if settings.duration_s and start - self.t0 >= settings.duration_s:
                break
            delay = start - loop.time()
            if delay > 0:
                if await self._sleep(delay):
                    break
            elif cycle:
                self.stats.behind_schedule += 1
            if await self._cycle(cycle, start, wall0 + cycle * settings.interval_s):
                break
            cycle += 1
        if deadline is not None:
            deadline.cancel()
        # Let in-flight batches (and their retries) finish so every reading is accounted for.
        if self.tasks:
            await asyncio.gather(*self.tasks)
        self.stats.elapsed_s = loop.time() - self.t0

    async def _sleep(self, delay: float) -> bool:
        """Sleep up to *delay* seconds; True if asked to stop meanwhile."""
        try:
            await asyncio.wait_for(self.stop.wait(), delay)
        except TimeoutError:
            return False
        return True

    async def _cycle(self, cycle: int, start: float, wall: float) -> bool:
        """Send one cycle's batches; True if asked to stop meanwhile."""
        self.stats.cycles = cycle + 1
        batches = self.encoder.batches(
            self.scenario.profiles(wall),
            seq=cycle + 1,  # every meter reports once per cycle, so all share one sequence
            timestamp=iso_timestamp(wall),
            rng=self.rng,
        )
        gap = self._spread_gap()
        loop = asyncio.get_running_loop()
        for index, (body, count) in enumerate(batches):
            if gap:
                delay = start + index * gap - loop.time()
                if delay > 0 and await self._sleep(delay):
                    return True
            await self.slots.acquire()
            if self.stop.is_set():
                self.slots.release()
                return True
            self.stats.generated += count
            self.stats.in_flight += 1
            task = asyncio.create_task(self._send(body, count))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            # Let the request go out before generating the next batch.
            await asyncio.sleep(0)
        return False

    def _spread_gap(self) -> float:
        """Seconds between a cycle's batches with --spread (else 0: all at the cycle's start).

        The batches fill 90 % of the interval, which leaves room for the duplicates' extra
        batches before the next cycle is due.
        """
        settings = self.settings
        if not settings.spread:
            return 0.0
        batches = math.ceil(settings.meters * (1 + settings.duplicate_rate) / settings.batch_size)
        return 0.9 * settings.interval_s / max(batches, 1)

    async def _send(self, body: bytes, count: int) -> None:
        try:
            outcome = await send_with_retries(
                self.transport,
                body,
                attempts=self.settings.retries,
                base_delay_s=self.settings.retry_delay_s,
            )
            self.stats.record(outcome, count)
        finally:
            self.stats.in_flight -= 1
            self.slots.release()

    def on_signal(self) -> None:
        """First SIGINT/SIGTERM: stop after in-flight batches; second: exit at once."""
        self.signals += 1
        if self.signals > 1:
            sys.stderr.write("\nsimulator: second signal, exiting without a summary\n")
            os._exit(130)
        sys.stderr.write(
            f"\nsimulator: stopping after {self.stats.in_flight} in-flight batches "
            "(signal again to exit now)\n"
        )
        self.stop.set()

    async def progress(self) -> None:
        """Rewrite one status line every second on a terminal, else print one every 10 s."""
        loop = asyncio.get_running_loop()
        tty = sys.stderr.isatty()
        period = 1.0 if tty else 10.0
        last_time, last_sent = self.t0, 0
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            line = format_progress(
                self.stats,
                elapsed_s=now - self.t0,
                recent_rate=(self.stats.sent - last_sent) / max(now - last_time, 1e-9),
            )
            last_time, last_sent = now, self.stats.sent
            sys.stderr.write(f"\r{line}\x1b[K" if tty else f"{line}\n")
            sys.stderr.flush()
            self.progress_shown = True


def format_progress(stats: Stats, *, elapsed_s: float, recent_rate: float) -> str:
    """The live status line."""
    average = stats.sent / elapsed_s if elapsed_s > 0 else 0.0
    (p99,) = stats.latency_ms(99)
    return (
        f"cycle {stats.cycles} | {elapsed_s:,.0f}s | {recent_rate:,.0f} readings/s "
        f"(avg {average:,.0f}) | accepted {stats.accepted:,} dup {stats.duplicates:,} "
        f"rejected {stats.rejected:,} failed {stats.failed:,} | p99 {p99:,.1f} ms "
        f"| in-flight {stats.in_flight}"
    )


async def simulate(settings: Settings, transport: Transport) -> Stats:
    """Run the simulation to its end through *transport*, then close it; return the statistics."""
    run = _Run(settings, transport)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, run.on_signal)
    progress = None if settings.quiet else asyncio.create_task(run.progress())
    try:
        await run.run()
    finally:
        if progress is not None:
            progress.cancel()
            if run.progress_shown and sys.stderr.isatty():
                sys.stderr.write("\n")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await transport.aclose()
    return run.stats


def summary_dict(settings: Settings, stats: Stats) -> dict[str, Any]:
    """Totals, latency percentiles and rate, as written by --json-summary."""
    p50, p95, p99 = stats.latency_ms(50, 95, 99)
    return {
        "target": settings.target,
        "url": settings.url if settings.target == "http" else None,
        "seed": settings.seed,
        "meters": settings.meters,
        "interval_s": settings.interval_s,
        "scenario": settings.scenario,
        "mode": settings.mode,
        "cycles": stats.cycles,
        "behind_schedule": stats.behind_schedule,
        "elapsed_s": round(stats.elapsed_s, 3),
        "generated": stats.generated,
        "sent": stats.sent,
        "accepted": stats.accepted,
        "duplicates": stats.duplicates,
        "rejected": stats.rejected,
        "failed": stats.failed,
        "batches": stats.batches,
        "http_status": {str(code): n for code, n in sorted(stats.statuses.items())},
        "transport_errors": stats.transport_errors,
        "latency_p50_ms": round(p50, 3),
        "latency_p95_ms": round(p95, 3),
        "latency_p99_ms": round(p99, 3),
        "readings_per_s": round(stats.sent / stats.elapsed_s, 1) if stats.elapsed_s else 0.0,
        "last_error": stats.last_error,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable end-of-run block."""
    statuses = " ".join(f"{code}x{n:,}" for code, n in summary["http_status"].items()) or "none"
    target = summary["url"] or "the ingestion queue"
    lines = [
        "simulator summary",
        f"  target           {summary['target']} {target}",
        f"  seed             {summary['seed']} (repeat with --seed {summary['seed']})",
        f"  load             {summary['meters']:,} meters every {summary['interval_s']:g} s, "
        f"scenario {summary['scenario']}, mode {summary['mode']}",
        f"  cycles           {summary['cycles']:,} "
        f"({summary['behind_schedule']:,} started behind schedule)",
        f"  elapsed          {summary['elapsed_s']:,.1f} s",
        f"  generated        {summary['generated']:,} readings",
        f"  sent             {summary['sent']:,} ({summary['readings_per_s']:,.0f} readings/s)",
        f"  accepted         {summary['accepted']:,}",
        f"  duplicates       {summary['duplicates']:,}",
        f"  rejected         {summary['rejected']:,}",
        f"  failed           {summary['failed']:,}",
        f"  answers          {statuses}; {summary['transport_errors']:,} without an answer",
        f"  batch latency    p50 {summary['latency_p50_ms']:,.1f} ms, "
        f"p95 {summary['latency_p95_ms']:,.1f} ms, p99 {summary['latency_p99_ms']:,.1f} ms "
        f"over {summary['batches']:,} batch(es)",
    ]
    if summary["last_error"]:
        lines.append(f"  last error       {summary['last_error']}")
    return "\n".join(lines)


def run(settings: Settings) -> int:
    """Simulate, print the summary, write --json-summary; exit status 1 if nothing got through."""
    try:
        transport = open_transport(
            settings.target,
            url=settings.url,
            key=settings.key,
            concurrency=settings.concurrency,
            timeout_s=settings.timeout_s,
        )
    except ImportError as exc:
        print(f"simulator: --target queue is not available: {exc}", file=sys.stderr)
        return 1
    stats = asyncio.run(simulate(settings, transport))
    summary = summary_dict(settings, stats)
    print(format_summary(summary))
    if settings.json_summary is not None:
        settings.json_summary.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if stats.failed and not stats.sent:
        target = settings.url if settings.target == "http" else "the ingestion queue"
        if stats.last_error_status is None:
            print(f"cannot reach {target}: {stats.last_error}", file=sys.stderr)
        else:
            print(
                f"nothing delivered: {target} answered HTTP {stats.last_error_status} "
                f"to all {settings.retries} attempts of every batch",
                file=sys.stderr,
            )
        return 1
    return 0
