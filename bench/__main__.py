"""``python -m bench``: run the end-to-end pipeline benchmark and print a report."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from contextlib import AbstractContextManager
from contextlib import ExitStack
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC
from datetime import datetime

from bench.closed_loop import LoadShape
from bench.netns import worker_hosts
from bench.pipeline import BenchConfig
from bench.pipeline import BenchResult
from bench.pipeline import add_store_options
from bench.pipeline import queue_growth
from bench.pipeline import run
from bench.pipeline import sustained_verdict
from bench.redis_cluster import start_cluster
from bench.redis_cluster import start_redis
from bench.spine import RedisLoss
from bench.spine import redis_synced_on_every_write
from bench.spine import run_peer
from bench.spine import run_segs
from segs.config import Settings

DEFAULT_SETTINGS = Settings()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the SEGS pipeline as the README starts it (gunicorn API, one Celery "
        "worker with no options, beat; default settings) under load, and report throughput, "
        "latency and exact totals. By default the load is closed-loop (clients post unique "
        "500-reading batches as fast as they are answered) and the bare-PostgreSQL peer "
        "(bench.peer) runs under the same load after SEGS, for the ratio of the two rates.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    closed = parser.add_argument_group("closed-loop load (the default)")
    closed.add_argument("--meters", type=int, default=100_000, help="distinct meters")
    closed.add_argument("--clients", type=int, default=8, help="clients posting in a loop")
    closed.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    closed.add_argument("--no-peer", action="store_true", help="skip the bare-PostgreSQL peer")
    closed.add_argument(
        "--compare-shards",
        type=int,
        metavar="N",
        help="also run SEGS with SEGS_SHARDS=N, for the ratio of the default to N shards",
    )
    closed.add_argument(
        "--backfill",
        type=float,
        metavar="SECONDS",
        help="also run SEGS with readings this many seconds old, for the ratio to current ones",
    )
    closed.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the defaults and every comparison this many times, in turns, and print the "
        "median of each ratio (the host's speed drifts between runs one after the other)",
    )
    closed.add_argument(
        "--compare-durable",
        action="store_true",
        help="add runs with RabbitMQ as broker and with the Redis broker on a Redis that syncs "
        "its append-only file on every write (set for the run, then restored)",
    )
    fixed = parser.add_argument_group("fixed-rate load (--fixed-rate; the simulator)")
    fixed.add_argument(
        "--fixed-rate",
        type=float,
        metavar="READINGS_PER_S",
        help="instead: the simulator's meters at this offered rate (readings every 2 s each)",
    )
    fixed.add_argument(
        "--concurrency", type=int, default=10, help="simulator batches in flight (seed default 10)"
    )
    fixed.add_argument(
        "--spread",
        action="store_true",
        help="the simulator paces each cycle's batches over the interval (default: all at once, "
        "as the seed's meters did)",
    )
    fixed.add_argument("--seed", type=int, default=1, help="simulator seed")
    options = parser.add_argument_group("options that change the stack (named in the output)")
    options.add_argument(
        "--shards", type=int, default=DEFAULT_SETTINGS.shards, help="SEGS_SHARDS (reading queues)"
    )
    options.add_argument("--api-workers", type=int, default=2, help="gunicorn worker processes")
    options.add_argument(
        "--worker-concurrency",
        type=int,
        help="Celery prefork processes (default: Celery's own, one per core)",
    )
    options.add_argument(
        "--worker-pool", choices=("prefork", "threads"), default="prefork", help="Celery pool"
    )
    options.add_argument(
        "--worker-nice", type=int, default=0, help="run the Celery worker at this niceness"
    )
    options.add_argument(
        "--broker", choices=("redis", "amqp"), default="redis", help="Celery broker"
    )
    options.add_argument(
        "--reading-workers",
        type=int,
        default=1,
        help="workers sharing the reading queues (each also serves default and notifications), "
        "as on several hosts",
    )
    options.add_argument(
        "--netns-workers",
        action="store_true",
        help="each reading worker (two at least) in a network namespace of its own, reaching "
        "the services across a bridge, as on other hosts (needs root; bench.netns)",
    )
    options.add_argument(
        "--kill-redis-at",
        type=float,
        metavar="S",
        help="the stack's Redis (a private one, without persistence) is killed -9 S seconds "
        "into the load and started again empty 3 s later; reports when the aggregates equal "
        "raw_readings again (needs --broker amqp)",
    )
    options.add_argument(
        "--redis-cluster",
        action="store_true",
        help="a three-node Redis Cluster started for the run holds windows, ledger and marks "
        "(needs --broker amqp)",
    )
    options.add_argument(
        "--service-worker",
        action="store_true",
        help="a second worker for the default and notifications queues (the first then serves "
        "only the reading queues)",
    )
    parser.add_argument("--api-port", type=int, default=8077, help="port for the benchmark's API")
    add_store_options(parser)
    return parser.parse_args(argv)


def _config(args: argparse.Namespace, **changes: object) -> BenchConfig:
    meters = args.meters
    interval = 2.0
    if args.fixed_rate:
        meters = int(args.fixed_rate * interval)
    config = BenchConfig(
        meters=meters,
        interval_s=interval,
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
        service_worker=args.service_worker,
        database_url=args.database_url,
        redis_url=args.redis_url,
        redis_broker_url=args.redis_broker_url,
        reading_workers=args.reading_workers,
    )
    return replace(config, **changes)  # type: ignore[arg-type]


def _stack_line(config: BenchConfig) -> str:
    """The stack, with every option that differs from what the README starts."""
    changed = []
    if config.shards != DEFAULT_SETTINGS.shards:
        changed.append(f"SEGS_SHARDS={config.shards}")
    if config.worker_concurrency:
        changed.append(f"--concurrency {config.worker_concurrency}")
    if config.worker_pool != "prefork":
        changed.append(f"--pool {config.worker_pool}")
    if config.worker_nice:
        changed.append(f"nice {config.worker_nice}")
    if config.service_worker:
        changed.append("a second worker for default,notifications")
    if config.api_workers != 2:
        changed.append(f"{config.api_workers} API workers")
    if config.reading_workers != 1:
        changed.append(f"{config.reading_workers} workers sharing the reading queues")
    if config.redis_cluster:
        changed.append("a 3-node Redis Cluster")
    if config.worker_hosts:
        changed.append("each reading worker in a network namespace of its own")
    return (
        f"stack: gunicorn -w {config.api_workers}, `celery -A segs worker`, `celery -A segs "
        f"beat`, broker {config.broker}; "
        + ("default settings" if not changed else "OPTIONS: " + ", ".join(changed))
    )


def _closed_loop(args: argparse.Namespace) -> int:
    shape = LoadShape(meters=args.meters, clients=args.clients, duration_s=args.duration)
    config = _config(args)
    if args.redis_cluster:
        if args.broker != "amqp":
            raise SystemExit("--redis-cluster needs --broker amqp (kombu's Redis transport)")
        config = replace(config, redis_url=start_cluster().url, redis_cluster=True)
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    redis_loss = None
    if args.kill_redis_at is not None and args.rounds > 1:
        raise SystemExit("--kill-redis-at runs once: it does not take --rounds")
    if args.kill_redis_at is not None:
        if args.broker != "amqp" or args.redis_cluster:
            raise SystemExit("--kill-redis-at needs --broker amqp and a single Redis")
        server = start_redis()
        config = replace(config, redis_url=server.url)
        redis_loss = RedisLoss(server, args.kill_redis_at)
    if args.netns_workers and args.redis_cluster:
        raise SystemExit("--netns-workers forwards a single Redis only, not --redis-cluster")
    with ExitStack() as stack:
        if args.netns_workers:
            hosts = stack.enter_context(worker_hosts(max(config.reading_workers, 2)))
            config = replace(config, reading_workers=len(hosts), worker_hosts=tuple(hosts))
        return _closed_loop_runs(args, shape, config, redis_loss)


def _closed_loop_runs(
    args: argparse.Namespace,
    shape: LoadShape,
    config: BenchConfig,
    redis_loss: RedisLoss | None = None,
) -> int:
    print(
        f"SEGS closed-loop benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"load: {shape.clients} clients posting unique 500-reading batches as fast as answered "
        f"for {shape.duration_s:g} s; {shape.meters:,} meters in 4 regions",
        _stack_line(config),
        sep="\n",
        flush=True,
    )
    if redis_loss is not None:
        print(
            f"Redis: a private one without persistence, killed -9 {redis_loss.at_s:g} s into the "
            f"load and started again empty {redis_loss.down_s:g} s later",
            flush=True,
        )
    ratios: dict[str, list[float]] = {}
    ok = True
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"--- round {number} of {args.rounds}", flush=True)
        round_ok, found = _closed_loop_round(args, shape, config, redis_loss)
        ok = ok and round_ok
        for name, value in found.items():
            ratios.setdefault(name, []).append(value)
    if args.rounds > 1:
        for name, values in ratios.items():
            listed = ", ".join(f"{value:.2f}x" for value in values)
            print(f"median of {name}: {statistics.median(values):.2f}x ({listed})")
    return 0 if ok else 1


def _closed_loop_round(
    args: argparse.Namespace,
    shape: LoadShape,
    config: BenchConfig,
    redis_loss: RedisLoss | None,
) -> tuple[bool, dict[str, float]]:
    """The defaults, then each comparison asked for: whether every totals check passed, and
    each ratio by name."""
    ratios: dict[str, float] = {}

    def ratio(name: str, value: float, note: str = "") -> None:
        ratios[name] = value
        print(f"{name}: {value:.2f}x{note}", flush=True)

    defaults = run_segs(config, shape, "SEGS", redis_loss)
    print("\n".join(defaults.lines()), flush=True)
    segs_rate = defaults.rate
    ok = bool(defaults.totals.get("ok"))
    if args.compare_shards:
        other = run_segs(
            replace(config, shards=args.compare_shards),
            shape,
            f"SEGS with SEGS_SHARDS={args.compare_shards}",
        )
        print("\n".join(other.lines()), flush=True)
        ok = ok and bool(other.totals.get("ok"))
        ratio(f"{config.shards} shards / {args.compare_shards}", segs_rate / other.rate)
    if args.backfill:
        late = run_segs(
            config,
            replace(shape, age_s=args.backfill),
            f"SEGS with readings {args.backfill:g} s old (a backfill)",
        )
        print("\n".join(late.lines()), flush=True)
        ok = ok and bool(late.totals.get("ok"))
        ratio("backfill / current readings", late.rate / segs_rate)
    if args.compare_durable:
        durable: list[tuple[BenchConfig, str, AbstractContextManager[None]]] = [
            (replace(config, broker="amqp"), "SEGS with RabbitMQ as broker", nullcontext()),
            (
                config,
                "SEGS, Redis broker, Redis with appendonly yes and appendfsync always",
                redis_synced_on_every_write({config.redis_url, config.redis_broker_url}),
            ),
        ]
        for durable_config, label, setting in durable:
            with setting:
                run = run_segs(durable_config, shape, label)
            print("\n".join(run.lines()), flush=True)
            ok = ok and bool(run.totals.get("ok"))
            ratio(f"{label} / defaults", run.rate / segs_rate)
    if not args.no_peer:
        peer = run_peer(config, shape)
        print("\n".join(peer.lines()), flush=True)
        ratio("SEGS / peer", segs_rate / peer.rate, " (goal >= 0.5x)")
    return ok, ratios


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
        f"Celery {config.worker_pool} x{config.worker_concurrency or os.cpu_count()}"
        f"{' on the reading queues + x2 on default,notifications' if config.service_worker else ''}"
        f"{f' (nice {config.worker_nice})' if config.worker_nice else ''}; {config.shards} shards",
        _stack_line(config),
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
    args = _parse(sys.argv[1:] if argv is None else argv)
    if not args.fixed_rate:
        return _closed_loop(args)
    result = run(_config(args))
    print(_report(result))
    return 0 if result.totals["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
