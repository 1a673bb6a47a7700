"""``make bench``'s closed-loop runs: SEGS as the README starts it, then the bare-PostgreSQL
peer, under the same load (bench.closed_loop), one after the other."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.closed_loop import ClosedLoopReport
from bench.closed_loop import LoadShape
from bench.closed_loop import archived_counter
from bench.closed_loop import run_load
from bench.closed_loop import wait_archived
from bench.pipeline import BIN
from bench.pipeline import BenchConfig
from bench.pipeline import CpuMeter
from bench.pipeline import _reading_queue_depth
from bench.pipeline import _redis_command_stats
from bench.pipeline import _run_setup
from bench.pipeline import _spawn
from bench.pipeline import _stack
from bench.pipeline import _stop
from bench.pipeline import _totals
from bench.pipeline import create_ingestion_key
from bench.pipeline import redis_nodes
from bench.redis_cluster import LocalRedis


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def first_regions(config: BenchConfig, count: int) -> tuple[str, ...]:
    import psycopg

    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url)) as conn:
        rows = conn.execute("SELECT name FROM regions ORDER BY name LIMIT %s", (count,)).fetchall()
    return tuple(name for (name,) in rows)


class _QueueWatch:
    """The deepest the reading queues got, sampled every second in a thread."""

    def __init__(self, config: BenchConfig) -> None:
        self.max_depth = 0
        self._config = config
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.max_depth = max(self.max_depth, _reading_queue_depth(self._config))

    def __enter__(self) -> _QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class RedisLoss:
    """Kill the stack's Redis (-9) *at_s* into the load and start it again empty *down_s*
    later."""

    server: LocalRedis
    at_s: float
    down_s: float = 3.0


def run_segs(
    config: BenchConfig, shape: LoadShape, label: str, redis_loss: RedisLoss | None = None
) -> ClosedLoopReport:
    """The closed-loop load against the stack *config* describes; totals checked after. With
    *redis_loss*, also how long after Redis was back the aggregates equal raw_readings."""
    os.environ.update(config.env())
    logs = Path(tempfile.mkdtemp(prefix="segs-bench-"))
    _run_setup(config)
    key = create_ingestion_key(config.env(), "bench")
    shape = LoadShape(**{**shape.__dict__, "regions": first_regions(config, 4)})
    with _stack(config, logs) as groups:
        counter = archived_counter(config.database_url)
        for node in redis_nodes(config):
            node.config_resetstat()
        meter = CpuMeter(groups)
        meter.start()
        own = _own_cpu()
        back_at: list[float] = []
        if redis_loss is not None:
            threading.Timer(redis_loss.at_s, _lose_redis, (redis_loss, back_at)).start()
        with _QueueWatch(config) as watch:
            load = run_load(config.api_port, "/telemetry/batch", key, shape)
            done_at, archived = wait_archived(
                counter, load.accepted, queued=lambda: _reading_queue_depth(config)
            )
        cpu = meter.stop()
        cpu["load generator"] = _own_cpu() - own
        redis_commands = _redis_command_stats(config)
        keys_per_node = [int(node.dbsize()) for node in redis_nodes(config)]
        # Let the worker settle what it holds before the totals are read.
        time.sleep(2.0)
        healed_after_s = _wait_healed(config, load.accepted, back_at[0]) if back_at else None
    totals = _totals(config, load.accepted)
    alerts = _alerts_by_type(config)
    return ClosedLoopReport(
        label,
        load,
        int(totals["raw_readings"]),
        done_at - load.started,
        cpu,
        watch.max_depth,
        totals,
        redis_commands,
        alerts,
        keys_per_node if config.redis_cluster else [],
        healed_after_s,
    )


def _lose_redis(loss: RedisLoss, back_at: list[float]) -> None:
    loss.server.kill()
    time.sleep(loss.down_s)
    loss.server.start()
    back_at.append(time.monotonic())


def _wait_healed(config: BenchConfig, accepted: int, back_at: float) -> float | None:
    """Seconds from Redis's return until every aggregate table equals raw_readings (the
    totals check, which first flushes what is still open), or None after 10 minutes. The stack
    heals itself meanwhile (segs.services.spine.healing)."""
    while time.monotonic() - back_at < 600:
        if _totals(config, accepted).get("ok"):
            return time.monotonic() - back_at
        time.sleep(5.0)
    return None


def _alerts_by_type(config: BenchConfig) -> dict[str, int]:
    import psycopg

    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url)) as conn:
        rows = conn.execute("SELECT type, count(*) FROM alerts GROUP BY type").fetchall()
    return {kind: int(count) for kind, count in rows}


def run_peer(config: BenchConfig, shape: LoadShape) -> ClosedLoopReport:
    """The same load against bench.peer (gunicorn with as many workers as the SEGS API)."""
    import httpx

    os.environ.update(config.env())
    logs = Path(tempfile.mkdtemp(prefix="segs-peer-"))
    _run_setup(config)
    shape = LoadShape(**{**shape.__dict__, "regions": first_regions(config, 4)})
    peer = _spawn(
        "peer",
        [
            str(BIN / "gunicorn"),
            "bench.peer:app",
            *("--bind", f"127.0.0.1:{config.api_port}"),
            *("--workers", str(config.api_workers)),
        ],
        config.env(),
        logs,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{config.api_port}/", content=b"[]", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        counter = archived_counter(config.database_url)
        meter = CpuMeter({"peer (gunicorn)": peer})
        meter.start()
        own = _own_cpu()
        load = run_load(config.api_port, "/", None, shape)
        done_at, archived = wait_archived(counter, load.accepted)
        cpu = meter.stop()
        cpu["load generator"] = _own_cpu() - own
    finally:
        _stop(peer)
    return ClosedLoopReport(
        "bare-PostgreSQL peer (bench.peer: gunicorn + msgspec + COPY, no windows, no queue)",
        load,
        archived,
        done_at - load.started,
        cpu,
    )


@contextmanager
def redis_synced_on_every_write(urls: set[str]) -> Iterator[None]:
    """Run the Redis servers of *urls* with an append-only file synced on every write
    (appendonly yes, appendfsync always) for the block, then as they were."""
    by_server: dict[tuple[object, object], redis.Redis] = {}
    for url in sorted(urls):
        client = redis.Redis.from_url(url)
        where = client.connection_pool.connection_kwargs
        by_server.setdefault((where.get("host"), where.get("port")), client)
    servers = list(by_server.values())
    saved = [server.config_get("append*") for server in servers]
    try:
        for server in servers:
            server.config_set("appendonly", "yes")
            server.config_set("appendfsync", "always")
        for server in servers:
            # Turning the file on rewrites it from the dataset first.
            while server.info("persistence").get("aof_rewrite_in_progress"):
                time.sleep(0.2)
        yield
    finally:
        for server, config in zip(servers, saved, strict=True):
            server.config_set("appendfsync", config["appendfsync"])
            server.config_set("appendonly", config["appendonly"])
