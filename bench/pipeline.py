"""The end-to-end pipeline benchmark behind ``make bench``.

It runs the real stack on this machine (gunicorn API, Celery worker, beat) against its own
database and Redis databases, drives it with the simulator over HTTP at a fixed offered rate, and
reports:
- sustained readings/s (accepted by the API, with the reading queues not growing),
- p50/p99 ingest latency per 500-reading batch (measured by the simulator, per request),
- p99 flush lag: time from a 1-minute window's end to its rows being committed in PostgreSQL,
- the totals check: raw_readings and every aggregate table agree exactly with what was accepted,
- where the CPU went, per process group.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import suppress
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import IO
from typing import Any

from bench.netns import WorkerHost
from bench.netns import across_the_bridge
from tools import commands

ROOT = Path(__file__).resolve().parents[1]
BIN = commands.BIN
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class BenchConfig:
    meters: int
    interval_s: float
    duration_s: float
    api_workers: int
    # None: Celery's own default (one process per core), as `celery -A segs worker` starts.
    worker_concurrency: int | None
    worker_pool: str
    worker_nice: int
    shards: int
    broker: str
    api_port: int
    seed: int
    client_concurrency: int
    # The simulator's --spread: each cycle's batches paced over the interval, not sent at once.
    spread: bool = False
    # An option: a second worker, two processes, for the default and notifications queues
    # (flushes, overload checks, repricing, notifications). The default is one worker for all
    # queues, as the README starts it.
    service_worker: bool = False
    database_url: str = "postgresql+psycopg:///segs_bench"
    redis_url: str = "redis://localhost:6379/10"
    redis_broker_url: str = "redis://localhost:6379/11"
    # redis_url names a node of a Redis Cluster.
    redis_cluster: bool = False
    # An option: this many workers, each serving its share of the reading queues (and the
    # default and notifications queues), as on several hosts.
    reading_workers: int = 1
    # An option: each reading worker in a network namespace of its own (bench.netns).
    worker_hosts: tuple[WorkerHost, ...] = ()

    @property
    def offered_rate(self) -> float:
        return self.meters / self.interval_s

    @property
    def broker_url(self) -> str:
        if self.broker == "amqp":
            return "amqp://guest:guest@localhost:5672//"
        return self.redis_broker_url

    def env(self, metrics_dir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "CELERY_BROKER_URL": self.broker_url,
                "SEGS_SHARDS": str(self.shards),
                "SEGS_ENV": "testing",
                "SEGS_WORKER_METRICS_PORT": "0",
                "SEGS_REDIS_CLUSTER": "1" if self.redis_cluster else "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        return env


def in_process_config(*, shards: int, meters: int = 0) -> BenchConfig:
    """The settings of a benchmark that runs SEGS in its own process, or starts only a worker
    itself: the bench's stores and the Redis broker, no load generator and no API server."""
    return BenchConfig(
        meters=meters,
        interval_s=1,
        duration_s=0,
        api_workers=0,
        worker_concurrency=None,
        worker_pool="prefork",
        worker_nice=0,
        shards=shards,
        broker="redis",
        api_port=0,
        seed=0,
        client_concurrency=0,
    )


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """Where a benchmark keeps its data: its own database and Redis databases (emptied first)."""
    parser.add_argument(
        "--database-url", default=BenchConfig.database_url, help="the benchmark's database"
    )
    parser.add_argument(
        "--redis-url", default=BenchConfig.redis_url, help="the benchmark's Redis database"
    )
    parser.add_argument(
        "--redis-broker-url",
        default=BenchConfig.redis_broker_url,
        help="the benchmark's Redis broker database (with --broker redis)",
    )


def add_probe_load_options(parser: argparse.ArgumentParser, *, api_port: int) -> None:
    """The load a probing benchmark (bench.alerts, bench.poison) runs under, and where."""
    parser.add_argument("--meters", type=int, default=20_000, help="simulated meters (load)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between readings")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of load before probing")
    parser.add_argument(
        "--api-port", type=int, default=api_port, help="port for the benchmark's API"
    )
    parser.add_argument("--shards", type=int, default=1, help="SEGS_SHARDS (reading queues)")
    parser.add_argument("--concurrency", type=int, default=2, help="simulator batches in flight")
    add_store_options(parser)


def probe_load_config(args: argparse.Namespace, duration_s: float) -> BenchConfig:
    """make bench's stack (2 API workers, one worker with 2 prefork processes, the Redis
    broker) under the load of add_probe_load_options."""
    return BenchConfig(
        meters=args.meters,
        interval_s=args.interval,
        duration_s=duration_s,
        api_workers=2,
        worker_concurrency=2,
        worker_pool="prefork",
        worker_nice=0,
        shards=args.shards,
        broker="redis",
        api_port=args.api_port,
        seed=1,
        client_concurrency=args.concurrency,
        database_url=args.database_url,
        redis_url=args.redis_url,
        redis_broker_url=args.redis_broker_url,
    )


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) of a non-empty list."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


@dataclass
class ProcessGroup:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class BenchResult:
    config: BenchConfig
    simulator: dict[str, Any]
    queue_samples: list[tuple[float, int]]
    cpu_seconds: dict[str, float]
    wall_s: float
    drain_s: float
    totals: dict[str, Any]
    flush_lag: dict[str, float]
    redis_commands: list[tuple[str, int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _proc_tree(pid: int) -> list[int]:
    """Return *pid* and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of *pids*, including their reaped children."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat; here offset by the 2 cut fields.
        total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


class CpuMeter:
    """CPU time per process group between start() and stop().

    sample() must be called while processes run: a group that exits (the simulator) keeps the
    last value read, since its /proc entries are gone once it is reaped.
    """

    def __init__(self, groups: dict[str, ProcessGroup]) -> None:
        self.groups = groups
        self.start_values: dict[str, float] = {}
        self.latest: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        values = {
            name: _cpu_seconds(_proc_tree(group.process.pid)) for name, group in self.groups.items()
        }
        values["postgres"] = _cpu_seconds(_pids_named("postgres"))
        values["redis-server"] = _cpu_seconds(_pids_named("redis-server"))
        values["rabbitmq (beam.smp)"] = _cpu_seconds(_pids_named("beam.smp"))
        return values

    def start(self) -> None:
        self.start_values = self._read()
        self.latest = dict(self.start_values)

    def sample(self) -> None:
        for name, value in self._read().items():
            self.latest[name] = max(value, self.latest.get(name, 0.0))

    def stop(self) -> dict[str, float]:
        self.sample()
        return {name: self.latest[name] - self.start_values.get(name, 0.0) for name in self.latest}


def redis_nodes(config: BenchConfig) -> list[Any]:
    """A client per Redis server holding the windows, ledger and marks (each primary of a
    cluster)."""
    import redis

    if not config.redis_cluster:
        return [redis.Redis.from_url(config.redis_url)]
    cluster: redis.RedisCluster = redis.RedisCluster.from_url(config.redis_url)
    return [cluster.get_redis_connection(node) for node in cluster.get_primaries()]


def _redis_command_stats(config: BenchConfig) -> list[tuple[str, int, float]]:
    """(command, calls, total µs) from INFO commandstats of every node, most expensive first.

    Commands a script runs are counted both on their own line and inside EVALSHA's total.
    """
    totals: dict[str, tuple[int, float]] = {}
    for node in redis_nodes(config):
        for name, values in node.info("commandstats").items():
            calls, usec = totals.get(name, (0, 0.0))
            totals[name] = (calls + int(values["calls"]), usec + float(values["usec"]))
    rows = [(name.removeprefix("cmdstat_"), calls, usec) for name, (calls, usec) in totals.items()]
    return sorted(rows, key=lambda row: -row[2])


# Lock files held until the benchmark process exits (see _hold_store).
_held_locks: list[IO[str]] = []


def _hold_store(config: BenchConfig) -> None:
    """Refuse to start while another benchmark uses the same database.

    Each run empties the database and Redis databases it uses, so a second run would truncate
    the first one's tables under it, and both would report wrong totals.
    """
    name = config.database_url.rsplit("/", 1)[-1]
    path = Path(tempfile.gettempdir()) / f"segs-bench-{name}.lock"
    if any(held.name == str(path) for held in _held_locks):
        return  # this process holds it already (a run after another)
    handle = path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SystemExit(
            f"another benchmark is running against {config.database_url}; wait for it to end "
            "or give this one its own --database-url, --redis-url and --redis-broker-url"
        ) from None
    _held_locks.append(handle)


def _run_setup(config: BenchConfig) -> None:
    """Create and migrate the bench database, then empty it and the bench Redis databases."""
    _hold_store(config)
    env = config.env()
    subprocess.run(
        [str(BIN / "flask"), "--app", "segs.web", "migrate"], env=env, check=True, cwd=ROOT
    )
    import psycopg
    import redis

    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE raw_readings, aggregates_1m, aggregates_15m, regional_aggregates_1m, "
            "regional_aggregates_15m, window_flushes, meters, meter_moves, meter_assignments, "
            "ingestion_keys, dead_letter_batches, quarantined_windows, alerts, alert_transitions, "
            "redis_losses CASCADE"
        )
    for node in redis_nodes(config):
        node.flushdb()
    if config.broker == "redis":
        redis.Redis.from_url(config.broker_url).flushdb()


def configure_in_process_segs() -> None:
    """Give this process its database and Redis, as a worker's start does, for bench code that
    calls SEGS in-process (publish_batches, store_findings...). The environment must already
    be the bench's."""
    from segs.celery_app import app
    from segs.db import configure_database
    from segs.redis_client import configure_redis

    configure_database(app.segs_settings)
    configure_redis(app.segs_settings)


def create_ingestion_key(env: dict[str, str], name: str) -> str:
    """A new head-end key for every region, made with the documented command (its last line)."""
    created = subprocess.run(
        [str(BIN / "flask"), "--app", "segs.web", "create-ingestion-key", "--name", name],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip().splitlines()[-1]


def _spawn(name: str, command: list[str], env: dict[str, str], logs: Path) -> ProcessGroup:
    log_path = logs / f"{name}.log"
    handle = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 (fixed command lines)
        command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    return ProcessGroup(name, process, log_path)


def _stop(group: ProcessGroup, timeout: float = 20.0) -> None:
    """Stop a process as `make run` does: one SIGTERM to the process itself (a Celery worker's
    warm shutdown; a SIGTERM reaching its pool processes would cut their tasks short), then
    SIGKILL to its whole group after *timeout*, and to whatever of the group outlived it."""
    if group.process.poll() is None:
        group.process.terminate()
        try:
            group.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(group.process.pid, signal.SIGKILL)
            group.process.wait()
    with suppress(ProcessLookupError):
        os.killpg(group.process.pid, signal.SIGKILL)


def _wait_ready(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f} s")


def _wait_for_workers(count: int, timeout: float = 60.0) -> None:
    """Wait until *count* workers answer a ping: a load that starts earlier queues up before any
    worker runs, and a starting worker's first act, its check for a Redis loss, would find
    readings already archived."""
    # The Celery app reads its broker from the environment, as the depth probe's does.
    from segs.celery_app import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise RuntimeError(f"{count} workers did not answer a ping in {timeout:.0f} s")


def _celery_worker(concurrency: int | None, *options: str) -> list[str]:
    return commands.celery(
        "worker",
        *("--loglevel", "WARNING"),
        *(["--concurrency", str(concurrency)] if concurrency else []),
        *options,
    )


def _reading_queues(config: BenchConfig) -> str:
    return ",".join(f"readings.{shard}" for shard in range(config.shards))


def _worker_queues(config: BenchConfig) -> list[str]:
    """The --queues of each reading worker ("" for every queue, as the README starts it)."""
    if config.reading_workers == 1:
        return [_reading_queues(config) if config.service_worker else ""]
    shares = [
        [
            f"readings.{shard}"
            for shard in range(config.shards)
            if shard % config.reading_workers == k
        ]
        for k in range(config.reading_workers)
    ]
    service = [] if config.service_worker else ["default", "notifications"]
    return [",".join(share + service) for share in shares]


@contextmanager
def _stack(config: BenchConfig, logs: Path) -> Iterator[dict[str, ProcessGroup]]:
    api_metrics = logs / "metrics-api"
    worker_metrics = logs / "metrics-worker"
    groups = {
        "api (gunicorn)": _spawn(
            "api",
            commands.api(f"127.0.0.1:{config.api_port}", "--workers", str(config.api_workers)),
            config.env(api_metrics),
            logs,
        ),
        "beat (celery)": _spawn(
            "beat",
            commands.celery(
                "beat", "--loglevel", "WARNING", "--schedule", str(logs / "celerybeat-schedule")
            ),
            config.env(),
            logs,
        ),
    }
    worker_queues = _worker_queues(config)
    for index, queues in enumerate(worker_queues):
        # A positive niceness lets the latency-sensitive API win the CPU over the folding.
        command = [
            *(["nice", "-n", str(config.worker_nice)] if config.worker_nice else []),
            *_celery_worker(
                config.worker_concurrency,
                *(["--pool", config.worker_pool] if config.worker_pool != "prefork" else []),
                *(["--queues", queues] if queues else []),
                *("--hostname", f"worker{index + 1}@%h"),
            ),
        ]
        env = config.env(worker_metrics / str(index + 1))
        if config.worker_hosts:
            host = config.worker_hosts[index]
            command = host.command(command)
            for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
                env[name] = across_the_bridge(env[name], getpass.getuser())
        groups["worker (celery)" if index == 0 else f"worker {index + 1} (celery)"] = _spawn(
            f"worker-{index + 1}", command, env, logs
        )
    if config.service_worker:
        groups["service worker (celery)"] = _spawn(
            "service-worker",
            _celery_worker(2, "--queues", "default,notifications", "--hostname", "service@%h"),
            config.env(worker_metrics),
            logs,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{config.api_port}/ready")
        _wait_for_workers(len(worker_queues) + (1 if config.service_worker else 0))
        yield groups
    finally:
        for group in groups.values():
            _stop(group)


def _reading_queue_depth(config: BenchConfig) -> int:
    # The depth probe uses the Celery app, which reads its broker from the environment.
    from segs.tasks.queues import queue_depths

    return sum(queue_depths([f"readings.{shard}" for shard in range(config.shards)]).values())


def _totals(config: BenchConfig, accepted: int) -> dict[str, Any]:
    """Flush every remaining window, then compare every table with what the API accepted."""
    import psycopg

    from segs.config import load_settings
    from segs.dbadmin import libpq_conninfo
    from segs.services.spine.flush import flush_closed_windows
    from segs.services.spine.windows_store import WindowStore

    settings = load_settings()

    from segs.redis_client import connect

    store = WindowStore(connect(config.redis_url, config.redis_cluster), config.shards)
    with psycopg.connect(libpq_conninfo(config.database_url)) as conn:
        # Windows still open at the end: flush them as if their grace had passed, then again
        # for the 15-minute windows that flush held as late (LateWindows).
        for hours in (1, 2):
            flush_closed_windows(conn, store, settings, datetime.now(UTC) + timedelta(hours=hours))
        row = conn.execute(
            """
            SELECT (SELECT count(*) FROM raw_readings),
                   (SELECT coalesce(sum(reading_count), 0) FROM aggregates_1m),
                   (SELECT coalesce(sum(reading_count), 0) FROM aggregates_15m),
                   (SELECT coalesce(sum(reading_count), 0) FROM regional_aggregates_1m),
                   (SELECT coalesce(sum(reading_count), 0) FROM regional_aggregates_15m),
                   (SELECT coalesce(sum(power_kw), 0) FROM raw_readings),
                   (SELECT coalesce(sum(power_sum_kw), 0) FROM aggregates_1m),
                   (SELECT coalesce(sum(energy_kwh), 0) FROM raw_readings),
                   (SELECT coalesce(sum(energy_kwh_sum), 0) FROM aggregates_15m)
            """
        ).fetchone()
        assert row is not None
        mismatched_rows = conn.execute(
            """
            SELECT count(*) FROM (
                SELECT meter_id, date_bin('1 minute', ts, timestamptz 'epoch') AS window_start,
                       count(*) AS n, sum(power_kw) AS p, max(power_kw) AS hi, min(power_kw) AS lo,
                       coalesce(sum(energy_kwh), 0) AS e
                FROM raw_readings GROUP BY 1, 2
            ) raw
            FULL JOIN aggregates_1m a USING (meter_id, window_start)
            WHERE a.reading_count IS DISTINCT FROM raw.n OR a.power_sum_kw IS DISTINCT FROM raw.p
               OR a.max_power_kw IS DISTINCT FROM raw.hi OR a.min_power_kw IS DISTINCT FROM raw.lo
               OR a.energy_kwh_sum IS DISTINCT FROM raw.e
            """
        ).fetchone()
    raw_count, agg1, agg15, reg1, reg15, raw_power, agg_power, raw_energy, agg_energy = row
    checks = {
        "raw_readings == accepted": raw_count == accepted,
        "aggregates_1m readings == accepted": agg1 == accepted,
        "aggregates_15m readings == accepted": agg15 == accepted,
        "regional_aggregates_1m readings == accepted": reg1 == accepted,
        "regional_aggregates_15m readings == accepted": reg15 == accepted,
        "sum power raw == sum power_sum_kw 1m": raw_power == agg_power,
        "sum energy raw == sum energy 15m": raw_energy == agg_energy,
        "every 1m row recomputes exactly from raw": mismatched_rows is not None
        and mismatched_rows[0] == 0,
    }
    return {
        "accepted": accepted,
        "raw_readings": raw_count,
        "aggregates_1m_readings": agg1,
        "aggregates_15m_readings": agg15,
        "checks": checks,
        "ok": all(checks.values()),
    }


def _flush_lag(config: BenchConfig, since: datetime, until: datetime) -> dict[str, float]:
    """Per 1-minute region window flushed while the load ran: commit time minus window end."""
    import psycopg

    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url)) as conn:
        lags = [
            float(lag)
            for (lag,) in conn.execute(
                """
                SELECT extract(epoch FROM min(updated_at) - (window_start + interval '1 minute'))
                FROM aggregates_1m
                WHERE flush_count = 1 AND updated_at BETWEEN %s AND %s
                GROUP BY region, window_start
                """,
                (since, until),
            )
        ]
    if not lags:
        return {}
    lags.sort()
    return {
        "windows": float(len(lags)),
        "p50_s": lags[len(lags) // 2],
        "p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "max_s": lags[-1],
    }


def simulator_command(config: BenchConfig, key: str, *extra: str) -> list[str]:
    """The simulator's command line for *config*'s load, sending with *key*."""
    return commands.simulator(
        f"http://127.0.0.1:{config.api_port}/telemetry/batch",
        *("--key", key),
        *("--meters", str(config.meters)),
        *("--interval", str(config.interval_s)),
        *("--duration", str(config.duration_s)),
        *("--seed", str(config.seed)),
        *("--concurrency", str(config.client_concurrency)),
        "--quiet",
        *(["--spread"] if config.spread else []),
        *extra,
    )


def run(config: BenchConfig) -> BenchResult:
    """Run one benchmark at the configured offered rate."""

    os.environ.update(config.env())
    logs = Path(tempfile.mkdtemp(prefix="segs-bench-"))
    _run_setup(config)
    key = create_ingestion_key(config.env(), "bench")
    summary_path = logs / "simulator.json"
    notes: list[str] = []
    with _stack(config, logs) as groups:
        simulator_cmd = simulator_command(config, key, "--json-summary", str(summary_path))
        samples: list[tuple[float, int]] = []
        load_started = datetime.now(UTC)
        began = time.monotonic()
        simulator = _spawn("simulator", simulator_cmd, config.env(), logs)
        groups_with_sim = dict(groups)
        groups_with_sim["simulator"] = simulator
        meter = CpuMeter(groups_with_sim)
        for node in redis_nodes(config):
            node.config_resetstat()
        meter.start()
        while simulator.process.poll() is None:
            samples.append((time.monotonic() - began, _reading_queue_depth(config)))
            meter.sample()
            time.sleep(1.0)
        wall = time.monotonic() - began
        cpu = meter.stop()
        redis_commands = _redis_command_stats(config)
        load_ended = datetime.now(UTC)
        drain_started = time.monotonic()
        while _reading_queue_depth(config) > 0 and time.monotonic() - drain_started < 300:
            time.sleep(0.5)
        drain = time.monotonic() - drain_started
        # Let the worker finish the tasks it holds before comparing totals.
        time.sleep(2.0)
        if simulator.process.returncode != 0:
            notes.append(
                f"simulator exited with {simulator.process.returncode}; see {simulator.log_path}"
            )
    sim_summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    accepted = int(sim_summary.get("accepted", 0))
    totals = _totals(config, accepted)
    lag = _flush_lag(config, load_started, load_ended)
    notes.append(f"logs in {logs}")
    return BenchResult(
        config, sim_summary, samples, cpu, wall, drain, totals, lag, redis_commands, notes
    )


def sustained_verdict(result: BenchResult) -> tuple[bool, list[str]]:
    """Did the pipeline keep up with the offered load? Returns (verdict, reasons it did not)."""
    sim = result.simulator
    reasons = []
    if int(sim.get("behind_schedule", 0)):
        reasons.append("the simulator fell behind its schedule")
    if int(sim.get("failed", 0)):
        reasons.append("some batches failed (503 or no answer)")
    _, slope = queue_growth(result.queue_samples)
    # Each minute's flush holds one worker process for a few seconds, so a backlog builds and
    # drains every minute; what must not happen is a backlog that keeps growing.
    if result.drain_s > 30.0:
        reasons.append(f"the queues took {result.drain_s:.1f} s to drain after the load")
    if slope > 5.0:
        reasons.append(f"the queues grew by {slope:.1f} messages/s")
    return (not reasons, reasons)


def queue_growth(samples: list[tuple[float, int]]) -> tuple[int, float]:
    """Return (max depth, slope in messages/s over the second half of the run)."""
    if len(samples) < 4:
        return (max((depth for _, depth in samples), default=0), 0.0)
    half = samples[len(samples) // 2 :]
    times = [t for t, _ in half]
    depths = [float(depth) for _, depth in half]
    slope = statistics.linear_regression(times, depths).slope
    return max(depth for _, depth in samples), slope
