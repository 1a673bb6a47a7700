"""``python -m bench.worker_messages``: what one reading-batch message costs the default worker.

With 8 shards each ingestion request becomes 8 task messages, so the worker's cost per message,
apart from its readings, is what makes 8 shards dearer than 1 (issue 16). This benchmark starts
``celery -A segs worker`` with no options, waits until it is idle, publishes ``--messages``
fold_batch messages round the reading queues as the API does (the pending ledger, one
publish per request), each an empty batch, and reports, once the worker is idle again, the CPU
its main process (taking messages off Redis, Celery's requests, the groups) and its pool
processes (the ledger, the transaction and the fold call that settle each group) spent per
message. It also reports what publishing cost this process per message, which is the API's share
(the ledger and the broker, without the readings). The Redis broker only: with RabbitMQ the
broker pushes messages and the ledger keeps no rows.

    python -m bench.worker_messages --messages 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import redis

from bench.pipeline import BenchConfig
from bench.pipeline import _cpu_seconds
from bench.pipeline import _proc_tree
from bench.pipeline import _run_setup
from bench.pipeline import _spawn
from bench.pipeline import _stop
from bench.pipeline import configure_in_process_segs
from bench.pipeline import in_process_config
from tools import commands

# A worker whose CPU grows less than this in a second has finished.
_IDLE_CPU_S = 0.02
# Queues that keep their length this long mean the worker is not settling anything.
_STUCK_S = 60.0


def _publish(count: int, shards: int) -> float:
    """Publish *count* empty batches as requests of one batch per shard; the CPU-s it took."""
    from segs.tasks.readings import publish_batches

    started = time.process_time()
    for first in range(0, count, shards):
        publish_batches({shard: [] for shard in range(min(shards, count - first))}, 0)
    return time.process_time() - started


def _wait_idle(pid: int) -> float:
    """Wait until the process tree of *pid* spends (almost) no CPU; return its CPU-s then."""
    previous = -1.0
    while (total := _cpu_seconds(_proc_tree(pid))) - previous > _IDLE_CPU_S:
        previous = total
        time.sleep(1)
    return total


def _wait_drained(broker: redis.Redis, queues: list[str], worker_log: Path) -> None:
    """Wait until *queues* are empty; stop the benchmark if they stop shrinking for a while
    (the worker failing and retrying each group, for one), with the end of the worker's log."""
    fewest, shrank_at = None, time.monotonic()
    while left := sum(int(broker.llen(queue)) for queue in queues):
        if fewest is None or left < fewest:
            fewest, shrank_at = left, time.monotonic()
        elif time.monotonic() - shrank_at > _STUCK_S:
            tail = worker_log.read_text(errors="replace").splitlines()[-5:]
            raise SystemExit(
                f"{left:,} messages left and no fewer for {_STUCK_S:.0f} s; the worker's "
                "log ends:\n" + "\n".join(tail)
            )
        time.sleep(0.05)


def _measure(config: BenchConfig, count: int) -> tuple[float, float, float, float]:
    """Run the default worker, give it *count* messages: (publishing CPU-s, main-process CPU-s,
    pool CPU-s, seconds from the first message published until its queues were empty)."""
    for url in (config.redis_url, config.redis_broker_url):
        redis.Redis.from_url(url).flushdb()
    broker = redis.Redis.from_url(config.redis_broker_url)
    queues = [f"readings.{shard}" for shard in range(config.shards)]
    with tempfile.TemporaryDirectory(prefix="segs-bench-messages-") as logs:
        worker = _spawn(
            "worker", commands.celery("worker", "--loglevel", "WARNING"), config.env(), Path(logs)
        )
        try:
            # Its start (imports, forking the pool) is not the messages' cost.
            while len(_proc_tree(worker.process.pid)) < 2:
                time.sleep(0.1)
            _wait_idle(worker.process.pid)
            pids = _proc_tree(worker.process.pid)
            main_before = _cpu_seconds(pids[:1])
            pool_before = _cpu_seconds(pids[1:])
            started = time.monotonic()
            published = _publish(count, config.shards)
            _wait_drained(broker, queues, worker.log_path)
            drained_s = time.monotonic() - started
            _wait_idle(worker.process.pid)
            main = _cpu_seconds(pids[:1]) - main_before
            pool = _cpu_seconds(pids[1:]) - pool_before
        finally:
            _stop(worker)
    for url in (config.redis_url, config.redis_broker_url):
        redis.Redis.from_url(url).flushdb()
    return published, main, pool, drained_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.worker_messages",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=20_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="runs, for the median")
    parser.add_argument("--shards", type=int, default=8, help="SEGS_SHARDS")
    args = parser.parse_args(argv)
    config = in_process_config(shards=args.shards)
    os.environ.update(config.env())
    # The bench database must exist and be migrated: the worker settles each group there.
    _run_setup(config)
    configure_in_process_segs()
    print(
        f"SEGS worker cost per reading-batch message, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores; `celery -A segs worker`, {args.shards} shards, Redis broker; "
        f"{args.messages:,} messages per round, each an empty batch",
        flush=True,
    )
    publishes, mains, pools = [], [], []
    for number in range(1, args.rounds + 1):
        publish_s, main_s, pool_s, drained_s = _measure(config, args.messages)
        publishes.append(publish_s * 1e6 / args.messages)
        mains.append(main_s * 1e6 / args.messages)
        pools.append(pool_s * 1e6 / args.messages)
        print(
            f"round {number}: queues empty after {drained_s:.1f} s; CPU per message: "
            f"publishing {publishes[-1]:.0f} µs, worker main process {mains[-1]:.0f} µs, "
            f"pool {pools[-1]:.0f} µs",
            flush=True,
        )
    print(
        f"median CPU per message: publishing {statistics.median(publishes):.0f} µs, "
        f"worker main process {statistics.median(mains):.0f} µs, "
        f"pool {statistics.median(pools):.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
