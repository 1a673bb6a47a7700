"""``python -m bench``: run the end-to-end pipeline benchmark and print a report."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC
from datetime import datetime

from bench.pipeline import BenchConfig
from bench.pipeline import BenchResult
from bench.pipeline import add_store_options
from bench.pipeline import queue_growth
from bench.pipeline import run
from bench.pipeline import sustained_verdict


def _parse(argv: list[str]) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the SEGS pipeline (gunicorn API, Celery worker and beat) under the "
        "simulator's HTTP load and report throughput, latency, flush lag and exact totals.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=40_000, help="simulated meters")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between readings of a meter"
    )
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="Celery prefork processes"
    )
    parser.add_argument(
        "--worker-pool", choices=("prefork", "threads"), default="prefork", help="Celery pool"
    )
    parser.add_argument(
        "--worker-nice", type=int, default=0, help="run the Celery worker at this niceness"
    )
    parser.add_argument("--shards", type=int, default=1, help="SEGS_SHARDS (reading queues)")
    parser.add_argument(
        "--broker", choices=("redis", "amqp"), default="redis", help="Celery broker"
    )
    parser.add_argument("--api-port", type=int, default=8077, help="port for the benchmark's API")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="simulator batches in flight (seed default 10)"
    )
    parser.add_argument(
        "--spread",
        action="store_true",
        help="the simulator paces each cycle's batches over the interval (default: all at once, "
        "as the seed's meters did)",
    )
    parser.add_argument(
        "--one-worker",
        action="store_true",
        help="one Celery worker for every queue (default: the reading queues get their own "
        "worker, and a second two-process worker serves the default and notifications queues)",
    )
    add_store_options(parser)
    args = parser.parse_args(argv)
    return BenchConfig(
        meters=args.meters,
        interval_s=args.interval,
        duration_s=args.duration,
        api_workers=args.api_workers,
        worker_concurrency=args.worker_concurrency,
        worker_pool=args.worker_pool,
        worker_nice=args.worker_nice,
        shards=args.shards,
        broker=args.broker,
        api_port=args.api_port,
        seed=args.seed,
        client_concurrency=args.concurrency,
        spread=args.spread,
        service_worker=not args.one_worker,
        database_url=args.database_url,
        redis_url=args.redis_url,
        redis_broker_url=args.redis_broker_url,
    )


def _report(result: BenchResult) -> str:
    config = result.config
    sim = result.simulator
    accepted = int(sim.get("accepted", 0))
    max_depth, slope = queue_growth(result.queue_samples)
    rate = accepted / result.wall_s if result.wall_s else 0.0
    kept_up, reasons = sustained_verdict(result)
    cpu_total = sum(result.cpu_seconds.values())
    lines = [
        f"SEGS pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"load: {config.meters} meters every {config.interval_s:g} s = "
        f"{config.offered_rate:,.0f} readings/s offered for {config.duration_s:g} s "
        f"({config.client_concurrency} batches in flight"
        f"{', spread over the interval' if config.spread else ''}); "
        f"broker {config.broker}; {config.api_workers} API workers; "
        f"Celery {config.worker_pool} x{config.worker_concurrency}"
        f"{' on the reading queues + x2 on default,notifications' if config.service_worker else ''}"
        f"{f' (nice {config.worker_nice})' if config.worker_nice else ''}; {config.shards} shards",
        f"accepted readings/s             : {rate:,.0f}  ({accepted:,} in {result.wall_s:.1f} s)",
        f"sustained (kept up)             : {'yes' if kept_up else 'no: ' + '; '.join(reasons)}",
        f"reading queues                  : max depth {max_depth} messages, "
        f"trend {slope:+.2f} msg/s over the second half; drained {result.drain_s:.1f} s after load",
        f"ingest latency per batch        : p50 {sim.get('latency_p50_ms', float('nan')):.1f} ms, "
        f"p99 {sim.get('latency_p99_ms', float('nan')):.1f} ms",
        f"simulator                       : duplicates {sim.get('duplicates', 0)}, "
        f"rejected {sim.get('rejected', 0)}, failed {sim.get('failed', 0)}, "
        f"behind schedule {sim.get('behind_schedule', 0)} cycles",
    ]
    if result.flush_lag:
        lag = result.flush_lag
        lines.append(
            f"1m flush lag (window end→commit): p50 {lag['p50_s']:.1f} s, "
            f"p99 {lag['p99_s']:.1f} s, "
            f"max {lag['max_s']:.1f} s over {lag['windows']:.0f} region windows"
        )
    totals = result.totals
    lines.append(f"totals check                    : {'PASS' if totals['ok'] else 'FAIL'}")
    for name, ok in totals["checks"].items():
        lines.append(f"  {'ok ' if ok else 'BAD'} {name}")
    lines.append(f"CPU during the load ({cpu_total:.1f} CPU-s over {result.wall_s:.1f} s wall):")
    for name, seconds in sorted(result.cpu_seconds.items(), key=lambda item: -item[1]):
        share = 100 * seconds / cpu_total if cpu_total else 0.0
        lines.append(f"  {name:<22} {seconds:7.1f} CPU-s  {share:5.1f} %")
    accepted_or_one = max(accepted, 1)
    lines.append("Redis commands during the load (script-internal commands also in evalsha):")
    for name, calls, usec in result.redis_commands[:8]:
        lines.append(
            f"  {name:<12} {calls:>10,} calls {usec / 1e6:7.2f} s  "
            f"{usec / max(calls, 1):8.1f} µs/call  {usec / accepted_or_one:5.2f} µs/reading"
        )
    lines.extend(result.notes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    config = _parse(sys.argv[1:] if argv is None else argv)
    result = run(config)
    print(_report(result))
    return 0 if result.totals["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
