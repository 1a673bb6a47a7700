"""``python -m bench.api_requests``: what one ingestion request costs the API, in-process.

The API's share of a reading is the largest of the stack's, and the full benchmarks mix it with
the worker's, PostgreSQL's and Redis's on two cores. This benchmark posts the closed loop's
bodies (500 consecutive meters of 100,000 in 4 regions at one timestamp, with a head-end key)
through the Flask test client, in this one process, against the bench's real Redis, broker and
PostgreSQL, with no worker running: the reading queues are emptied every 100 requests, so the
backlog bound never answers 503. The first ``--warm`` requests register the meters and fill the
caches, then the process's heap is frozen as gunicorn's hook does (gunicorn.conf.py), and the
next ``--requests`` are timed one by one. It reports the CPU and the wall time per request,
and the wall time's p50, p99 and maximum: a cost paid by one request in many (a periodic check)
shows in the tail, not in the mean.

    python -m bench.api_requests --requests 1500 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from datetime import UTC
from datetime import datetime

import redis

from bench.closed_loop import BATCH
from bench.closed_loop import BatchBodies
from bench.closed_loop import LoadShape
from bench.pipeline import BenchConfig
from bench.pipeline import _run_setup
from bench.pipeline import create_ingestion_key
from bench.pipeline import in_process_config
from bench.spine import first_regions
from simulator.runner import percentile

# The queues are emptied this often: no worker takes the messages, and the backlog bound
# (SEGS_MAX_QUEUE_BACKLOG, 2,000 per queue) must not be reached.
_EMPTY_QUEUES_EVERY = 100


class _Poster:
    """The bench's database and Redis set up afresh, a head-end key, and the API in-process."""

    def __init__(self, config: BenchConfig) -> None:
        from segs.web import create_app

        _run_setup(config)
        key = create_ingestion_key(config.env(), "bench-api-requests")
        self.client = create_app().test_client()
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.broker = redis.Redis.from_url(config.broker_url)
        self.bodies = BatchBodies(
            LoadShape(meters=config.meters, regions=first_regions(config, 4), clients=1)
        )
        self.posted = 0

    def post(self) -> tuple[float, float]:
        """Post the next body: (its CPU-s, its wall s). The queues are emptied after every
        hundredth, outside what is timed."""
        body = self.bodies.body(self.posted)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        answer = self.client.post("/telemetry/batch", data=body, headers=self.headers)
        wall = time.perf_counter() - wall_before
        cpu = time.process_time() - cpu_before
        if answer.status_code != 202:
            raise SystemExit(f"request {self.posted} answered {answer.status_code}: {answer.text}")
        self.posted += 1
        if self.posted % _EMPTY_QUEUES_EVERY == 0:
            self.broker.flushdb()
        return cpu, wall

    def timed(self, requests: int) -> tuple[float, list[float]]:
        """Post *requests* bodies: (their CPU-s in all, the wall s of each)."""
        timings = [self.post() for _ in range(requests)]
        return sum(cpu for cpu, _ in timings), [wall for _, wall in timings]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_requests",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1500, help="timed requests per round")
    parser.add_argument(
        "--warm",
        type=int,
        default=200,
        help="requests before the timed ones (≥ 200 registers all 100,000 meters)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, for the median")
    parser.add_argument("--shards", type=int, default=8, help="SEGS_SHARDS")
    args = parser.parse_args(argv)
    config = in_process_config(shards=args.shards, meters=100_000)
    os.environ.update(config.env())
    print(
        f"SEGS API cost per ingestion request, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores; in-process (Flask test client), {args.shards} shards, Redis "
        f"broker; 500-reading bodies, {args.requests:,} timed requests per round",
        flush=True,
    )
    poster = _Poster(config)
    for _ in range(args.warm):
        poster.post()
    gc.freeze()
    cpus, p99s = [], []
    for number in range(1, args.rounds + 1):
        cpu_s, walls = poster.timed(args.requests)
        walls.sort()
        cpus.append(cpu_s * 1e3 / len(walls))
        p99s.append(percentile(walls, 99) * 1e3)
        print(
            f"round {number}: per request {cpus[-1]:.2f} ms CPU, "
            f"{sum(walls) * 1e3 / len(walls):.2f} ms wall; wall p50 "
            f"{percentile(walls, 50) * 1e3:.1f} ms, p99 {p99s[-1]:.1f} ms, "
            f"max {walls[-1] * 1e3:.1f} ms",
            flush=True,
        )
    print(
        f"median: {statistics.median(cpus):.2f} ms CPU per request "
        f"({statistics.median(cpus) * 1e3 / BATCH:.2f} µs per reading), wall p99 "
        f"{statistics.median(p99s):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
