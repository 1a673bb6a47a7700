"""``python -m bench.history``: latency of one meter's day of 1-minute history under a week of data.

The issue's figure: p95 <= 50 ms for 24 h of 1-minute history of one meter, with 10,000 meters x
7 days of 1-minute aggregates loaded (100.8 million rows). The benchmark:

1. creates and migrates its own database (default ``segs_bench_history``) and loads the rows,
   one day partition at a time, in the order the flush writes them (each minute, every meter),
   so a meter's rows are spread over the partition as in production. A day already loaded with
   the same number of meters is kept, so a second run starts measuring at once.
   The loaded partitions are UNLOGGED: no WAL for 20-odd GB of bench data; reads are the same.
2. asks ``GET /api/v1/meters/<random meter>/history?resolution=1m`` for 24 hours, through the
   real application: in-process (Flask test client) and over HTTP (gunicorn), with a real
   token checked on every request, and prints p50/p95/p99 of each;
3. prints how long the service call alone takes, and PostgreSQL's plan for the query.

"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from tools import commands

ROOT = Path(__file__).resolve().parents[1]
BIN = commands.BIN
MINUTES_PER_DAY = 1440
LAST_RANGE_END_GAP = timedelta(hours=5, minutes=17)
# Measured on the full week with migration 0003's covering index: heap 16.8 GB and indexes
# 14.4 GB for 100.8 million rows.
BYTES_PER_ROW_ESTIMATE = 310

_STATE_DDL = """
CREATE TABLE IF NOT EXISTS bench_history_days (
    day date PRIMARY KEY,
    meters integer NOT NULL,
    row_count bigint NOT NULL,
    load_seconds double precision NOT NULL
)
"""

# The indexes migrations 0001 and 0003 put on every aggregates_1m partition, built on each loaded
# day before it is attached, so ATTACH PARTITION adopts them instead of building its own.
_PARTITION_INDEXES = (
    "ALTER TABLE {table} ADD PRIMARY KEY (meter_id, window_start)",
    "CREATE INDEX ON {table} (region, window_start)",
    "CREATE INDEX ON {table} (meter_id, window_start) INCLUDE (reading_count, energy_kwh_sum, "
    "avg_power_kw, min_power_kw, max_power_kw, voltage_avg)",
)

# One minute of every meter, as one flush writes it. Values are integers of micro-units, so every
# stored figure is exact: mean 0.5-9.5 kW, min 80 % and max 120 % of it, 30 readings, 220-240 V.
_INSERT_MINUTE = """
INSERT INTO {table} (meter_id, window_start, region, reading_count, power_sum_kw, avg_power_kw,
    min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count, voltage_avg,
    last_reading_at, flush_count, updated_at)
SELECT 'bench-' || lpad(i::text, %(width)s, '0'), %(start)s,
       (%(regions)s::text[])[i %% %(region_count)s + 1], 30,
       p * 30 * 0.000001, p * 0.000001, (p * 4 / 5) * 0.000001, (p * 6 / 5) * 0.000001,
       (p / 60) * 0.000001, v * 30 * 0.000001, 30, v * 0.000001,
       %(start)s + interval '58 seconds', 1, now()
FROM generate_series(0, %(meters)s - 1) AS i,
     LATERAL (SELECT 500000 + (i::bigint * 7919 + %(minute)s::bigint * 104729) %% 9000000 AS p,
                     220000000 + (i::bigint * 31 + %(minute)s::bigint * 17) %% 20000000 AS v) f
"""


@dataclass(frozen=True)
class Config:
    database_url: str
    redis_url: str
    meters: int
    days: int
    first_day: date
    requests: int
    warmup: int
    hours: int
    placement: str
    modes: tuple[str, ...]
    api_workers: int
    api_port: int
    seed: int

    @property
    def rows(self) -> int:
        return self.meters * self.days * MINUTES_PER_DAY

    @property
    def data_end(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), UTC) + timedelta(
            days=self.days
        )

    @property
    def meter_width(self) -> int:
        return max(5, len(str(self.meters - 1)))

    def meter_id(self, index: int) -> str:
        return f"bench-{index:0{self.meter_width}d}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "CELERY_BROKER_URL": self.redis_url,
                "SEGS_ENV": "testing",
                # The benchmark measures latency, not the abuse limit.
                "SEGS_RATE_LIMIT_DEFAULT": "10000000 per minute",
                "SEGS_WORKER_METRICS_PORT": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def _parse(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m bench.history",
        description="Load N meters x D days of 1-minute aggregates into a dedicated database "
        "(kept between runs) and measure GET /api/v1/meters/<id>/history?resolution=1m for "
        "random meters, in-process and over HTTP (gunicorn).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg:///segs_bench_history",
        help="the benchmark's own database (created if missing)",
    )
    parser.add_argument("--redis-url", default="redis://localhost:6379/12", help="Redis database")
    parser.add_argument("--meters", type=int, default=10_000, help="meters loaded")
    parser.add_argument("--days", type=int, default=7, help="days of 1-minute windows loaded")
    parser.add_argument(
        "--first-day", type=date.fromisoformat, default=date(2026, 1, 5), help="first day (UTC)"
    )
    parser.add_argument("--requests", type=int, default=200, help="measured requests per mode")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests first")
    parser.add_argument("--hours", type=int, default=24, help="hours of history per request")
    parser.add_argument(
        "--placement",
        choices=("last", "random"),
        default="last",
        help="last: the 'last 24 h' chart, ending 5 h 17 min before the data ends; "
        "random: anywhere in the data",
    )
    parser.add_argument(
        "--mode",
        choices=("both", "inprocess", "http"),
        default="both",
        help="through the Flask test client, through gunicorn over HTTP, or both",
    )
    parser.add_argument("--api-workers", type=int, default=2, help="gunicorn workers (http)")
    parser.add_argument("--api-port", type=int, default=8078, help="gunicorn port (http)")
    parser.add_argument("--seed", type=int, default=1, help="seed for the random choices")
    parser.add_argument(
        "--load-only", action="store_true", help="load the data and stop, measuring nothing"
    )
    args = parser.parse_args(argv)
    if args.meters < 1 or args.days < 1 or args.hours < 1 or args.requests < 1:
        parser.error("--meters, --days, --hours and --requests must be at least 1")
    if args.hours > 24 * min(args.days, 7):
        parser.error("--hours must fit in the loaded days and in one 1m request (7 days)")
    if args.placement == "last" and timedelta(hours=args.hours) + LAST_RANGE_END_GAP > timedelta(
        days=args.days
    ):
        parser.error("with --placement last, --hours plus 5 h 17 min must fit in the days")
    modes: tuple[str, ...] = ("inprocess", "http") if args.mode == "both" else (args.mode,)
    if args.load_only:
        modes = ()
    return Config(
        database_url=args.database_url,
        redis_url=args.redis_url,
        meters=args.meters,
        days=args.days,
        first_day=args.first_day,
        requests=args.requests,
        warmup=args.warmup,
        hours=args.hours,
        placement=args.placement,
        modes=modes,
        api_workers=args.api_workers,
        api_port=args.api_port,
        seed=args.seed,
    )


# --------------------------------------------------------------------------- loading


@contextmanager
def _connect(config: Config) -> Iterator[psycopg.Connection]:
    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB"


def _check_disk(conn: psycopg.Connection, config: Config, missing_days: int) -> None:
    data_dir = conn.execute("SHOW data_directory").fetchone()
    try:
        free = shutil.disk_usage(data_dir[0] if data_dir else "/").free
    except OSError:
        free = shutil.disk_usage("/").free
    needed = missing_days * config.meters * MINUTES_PER_DAY * BYTES_PER_ROW_ESTIMATE
    print(
        f"disk: {_gb(free)} free; {missing_days} day(s) to load need about {_gb(needed)} "
        f"({BYTES_PER_ROW_ESTIMATE} B per row with indexes); the full data set is about "
        f"{_gb(config.rows * BYTES_PER_ROW_ESTIMATE)}"
    )
    if needed > 0.9 * free:
        raise SystemExit("not enough disk space for the data set; lower --meters or --days")


def _migrate(config: Config) -> None:
    subprocess.run(
        [str(BIN / "flask"), "--app", "segs.web", "migrate"],
        cwd=ROOT,
        env=config.env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _register_meters(conn: psycopg.Connection, config: Config, regions: list[str]) -> None:
    conn.execute(
        """
        INSERT INTO meters (meter_id, region, first_seen, last_seen)
        SELECT 'bench-' || lpad(i::text, %(width)s, '0'), (%(regions)s::text[])[i %% %(n)s + 1],
               %(first)s, %(last)s
        FROM generate_series(0, %(meters)s - 1) AS i
        ON CONFLICT (meter_id) DO NOTHING
        """,
        {
            "width": config.meter_width,
            "regions": regions,
            "n": len(regions),
            "first": config.data_end - timedelta(days=config.days),
            "last": config.data_end,
            "meters": config.meters,
        },
    )


def _load_day(conn: psycopg.Connection, config: Config, day: date, regions: list[str]) -> float:
    """Load one day partition: rows without indexes, then the indexes, then attach it."""
    started = time.monotonic()
    name = f"aggregates_1m_p{day:%Y%m%d}"
    table = sql.Identifier(name)
    day_start = datetime.combine(day, datetime.min.time(), UTC)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    conn.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} (LIKE aggregates_1m INCLUDING DEFAULTS)").format(table)
    )
    insert = sql.SQL(_INSERT_MINUTE).format(table=table)
    minute_base = (day - config.first_day).days * MINUTES_PER_DAY
    for minute in range(MINUTES_PER_DAY):
        conn.execute(
            insert,
            {
                "width": config.meter_width,
                "start": day_start + timedelta(minutes=minute),
                "regions": regions,
                "region_count": len(regions),
                "meters": config.meters,
                "minute": minute_base + minute,
            },
        )
        if minute % 240 == 239:
            elapsed = time.monotonic() - started
            print(f"  {day}: {minute + 1}/{MINUTES_PER_DAY} minutes written, {elapsed:.0f} s")
    conn.execute("SET maintenance_work_mem = '1GB'")
    for ddl in _PARTITION_INDEXES:
        conn.execute(sql.SQL(ddl).format(table=table))
    conn.execute(
        sql.SQL(
            "ALTER TABLE aggregates_1m ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})"
        ).format(table, sql.Literal(day_start), sql.Literal(day_start + timedelta(days=1)))
    )
    # Marks every page all-visible, as autovacuum does for a closed day; index-only scans need it.
    conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))
    seconds = time.monotonic() - started
    conn.execute(
        """
        INSERT INTO bench_history_days (day, meters, row_count, load_seconds)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (day) DO UPDATE SET meters = EXCLUDED.meters,
            row_count = EXCLUDED.row_count, load_seconds = EXCLUDED.load_seconds
        """,
        (day, config.meters, config.meters * MINUTES_PER_DAY, seconds),
    )
    return seconds


def load(config: Config) -> None:
    """Create the database and load the days not loaded yet (with this many meters)."""
    _migrate(config)
    with _connect(config) as conn:
        conn.execute(_STATE_DDL)
        loaded = {
            day: meters
            for day, meters in conn.execute("SELECT day, meters FROM bench_history_days")
        }
        days = [config.first_day + timedelta(days=offset) for offset in range(config.days)]
        missing = [day for day in days if loaded.get(day) != config.meters]
        print(
            f"data: {config.meters:,} meters x {config.days} days x {MINUTES_PER_DAY} minutes = "
            f"{config.rows:,} rows; {len(days) - len(missing)} day(s) already loaded"
        )
        if not missing:
            return
        _check_disk(conn, config, len(missing))
        regions = [name for (name,) in conn.execute("SELECT name FROM regions ORDER BY name")]
        _register_meters(conn, config, regions)
        for number, day in enumerate(missing, start=1):
            seconds = _load_day(conn, config, day, regions)
            rate = config.meters * MINUTES_PER_DAY / seconds
            left = (len(missing) - number) * seconds
            print(
                f"loaded {day} in {seconds:.0f} s ({rate:,.0f} rows/s); "
                f"{len(missing) - number} day(s) left, about {left / 60:.0f} min"
            )
        conn.execute("ANALYZE aggregates_1m")


def _sizes(conn: psycopg.Connection) -> tuple[int, int, int]:
    row = conn.execute(
        """
        SELECT coalesce(sum(pg_table_size(inhrelid)), 0),
               coalesce(sum(pg_indexes_size(inhrelid)), 0),
               coalesce(sum(c.reltuples), 0)::bigint
        FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid
        WHERE inhparent = 'aggregates_1m'::regclass
        """
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    label: str
    millis: list[float]

    def line(self) -> str:
        ordered = sorted(self.millis)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

        return (
            f"{self.label:<38} n={len(ordered)}  p50 {pct(0.50):5.1f}  p95 {pct(0.95):5.1f}  "
            f"p99 {pct(0.99):5.1f}  max {ordered[-1]:5.1f}  "
            f"mean {statistics.fmean(ordered):5.1f} ms"
        )

    @property
    def p95(self) -> float:
        ordered = sorted(self.millis)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _ranges(config: Config, count: int, rng: random.Random) -> list[tuple[str, datetime, datetime]]:
    span = timedelta(hours=config.hours)
    data_start = config.data_end - timedelta(days=config.days)
    spare_minutes = config.days * MINUTES_PER_DAY - config.hours * 60
    result = []
    for _ in range(count):
        meter = config.meter_id(rng.randrange(config.meters))
        if config.placement == "last":
            # As asked in the evening: the range spans the last two day partitions.
            start = config.data_end - LAST_RANGE_END_GAP - span
        else:
            start = data_start + timedelta(minutes=rng.randrange(spare_minutes + 1))
        result.append((meter, start, start + span))
    return result


def _url(meter: str, start: datetime, end: datetime) -> str:
    return (
        f"/api/v1/meters/{meter}/history?resolution=1m"
        f"&start={start.isoformat().replace('+00:00', 'Z')}"
        f"&end={end.isoformat().replace('+00:00', 'Z')}"
    )


def _timed(calls: list[Callable[[], Any]]) -> tuple[list[float], list[Any], list[float]]:
    """Run each call, timing it alone: wall-clock ms, what it returned, this process's CPU ms."""
    millis = []
    results = []
    cpu = []
    for call in calls:
        started, cpu_started = time.perf_counter(), time.process_time()
        results.append(call())
        millis.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return millis, results, cpu


def _operator_token(app: Any) -> str:
    from flask_jwt_extended import create_access_token

    from segs.db import session_scope
    from segs.models import User

    with session_scope() as session:
        account = User(
            id=uuid.uuid4(),
            email=f"bench-{uuid.uuid4().hex[:8]}@example.test",
            name="History Benchmark",
            role="OPERATOR",
            timezone="Asia/Kolkata",
            email_verified_at=datetime.now(UTC),
        )
        session.add(account)
        account_id = account.id
    with app.app_context():
        return create_access_token(
            identity=str(account_id), additional_claims={"fam": str(uuid.uuid4())}
        )


def _check(status: int, payload: Any, expected_points: int) -> None:
    if status != 200:
        raise SystemExit(f"history request failed with {status}: {payload}")
    if len(payload["points"]) != expected_points:
        raise SystemExit(f"expected {expected_points} points, got {len(payload['points'])}")


def measure_in_process(config: Config, app: Any, token: str) -> tuple[list[Sample], int]:
    """Time the endpoint through the Flask test client (no network, no server).

    Also times a request that does everything but the history (token, account, scope check,
    one indexed lookup), the fixed cost every request pays, and this process's CPU time per
    history request, which other load on the machine does not inflate.
    """
    rng = random.Random(config.seed)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def request(meter: str, start: datetime, end: datetime) -> Callable[[], Any]:
        return lambda: client.get(_url(meter, start, end), headers=headers)

    def latest(meter: str, *_: datetime) -> Callable[[], Any]:
        return lambda: client.get(f"/api/v1/meters/{meter}/latest", headers=headers)

    _timed([request(*args) for args in _ranges(config, config.warmup, rng)])
    millis, responses, cpu = _timed(
        [request(*args) for args in _ranges(config, config.requests, rng)]
    )
    for response in responses:
        _check(response.status_code, response.get_json(), config.hours * 60)
    floor, _, _ = _timed([latest(*args) for args in _ranges(config, config.requests, rng)])
    samples = [
        Sample("in-process (Flask test client)", millis),
        Sample("  its CPU time in the API process", cpu),
        Sample("  fixed cost: GET .../<id>/latest", floor),
    ]
    return samples, len(responses[-1].data)


def measure_service(config: Config) -> Sample:
    """Time the service call alone: range and scope checks, the query writing the points."""
    from segs.db import session_scope
    from segs.services.grid.readings_query import meter_history_json

    rng = random.Random(config.seed + 1)  # other meters than the other passes
    account_id = uuid.uuid4()

    def call(meter: str, start: datetime, end: datetime) -> Callable[[], None]:
        def run() -> None:
            with session_scope() as session:
                meter_history_json(
                    session,
                    account_id,
                    "OPERATOR",
                    meter,
                    resolution="1m",
                    start=start,
                    end=end,
                    zone_name="Asia/Kolkata",
                    now=datetime.now(UTC),
                )

        return run

    _timed([call(*args) for args in _ranges(config, config.warmup, rng)])
    millis, _, _ = _timed([call(*args) for args in _ranges(config, config.requests, rng)])
    return Sample("service call only (no HTTP, no JSON)", millis)


@contextmanager
def _gunicorn(config: Config) -> Iterator[str]:
    base = f"http://127.0.0.1:{config.api_port}"
    with tempfile.TemporaryDirectory(prefix="segs-bench-history-") as tmp:
        env = config.env()
        env["PROMETHEUS_MULTIPROC_DIR"] = tmp
        log = open(Path(tmp) / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            commands.api(f"127.0.0.1:{config.api_port}", "--workers", str(config.api_workers)),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((Path(tmp) / "gunicorn.log").read_text()[-3000:])
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def measure_http(config: Config, token: str) -> Sample:
    """Time the endpoint over HTTP against gunicorn, one request at a time, keep-alive."""
    # Other meters than the in-process pass: pages that pass just read would flatter this one.
    rng = random.Random(config.seed + 2)
    with (
        _gunicorn(config) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client,
    ):

        def request(meter: str, start: datetime, end: datetime) -> Callable[[], Any]:
            return lambda: client.get(_url(meter, start, end))

        _timed([request(*args) for args in _ranges(config, config.warmup, rng)])
        millis, responses, _ = _timed(
            [request(*args) for args in _ranges(config, config.requests, rng)]
        )
    for response in responses:
        _check(response.status_code, response.json(), config.hours * 60)
    return Sample(f"HTTP (gunicorn, {config.api_workers} sync workers)", millis)


def _plan(config: Config) -> list[str]:
    """PostgreSQL's plan for one request's query, with its buffer use."""
    from sqlalchemy import text

    from segs.db import session_scope
    from segs.services.accounts.access import ALL_TIME
    from segs.services.grid.readings_sql import POINT_JSON
    from segs.services.grid.readings_sql import history_json_sql

    end = config.data_end - LAST_RANGE_END_GAP
    query = text("EXPLAIN (ANALYZE, BUFFERS, SUMMARY) " + history_json_sql("1m"))
    with session_scope() as session:
        rows = session.execute(
            query,
            {
                "meter_id": config.meter_id(config.meters // 2),
                "start": end - timedelta(hours=config.hours),
                "end": end,
                "owned": ALL_TIME,
                "point": POINT_JSON,
            },
        ).all()
    return [row[0] for row in rows]


def main(argv: list[str] | None = None) -> int:
    config = _parse(argv)
    # Progress lines must show up as they happen, also when the output goes to a file.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.environ.update(config.env())
    started = time.monotonic()
    load(config)
    print(f"data ready after {time.monotonic() - started:.0f} s")
    if not config.modes:
        return 0

    from segs.web import create_app

    app = create_app()
    token = _operator_token(app)
    samples: list[Sample] = []
    body_size = 0
    if "inprocess" in config.modes:
        in_process, body_size = measure_in_process(config, app, token)
        samples.extend(in_process)
        samples.append(measure_service(config))
    if "http" in config.modes:
        samples.append(measure_http(config, token))

    with _connect(config) as conn:
        heap, indexes, rows = _sizes(conn)
        settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                "WHERE name IN ('shared_buffers', 'effective_cache_size', 'random_page_cost')"
            ).fetchall()
        )
    print()
    print(
        f"SEGS history latency benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"data: aggregates_1m holds ~{rows:,} rows ({config.meters:,} meters x {config.days} "
        f"days from {config.first_day}); heap {_gb(heap)}, indexes {_gb(indexes)}"
    )
    print(
        f"postgres: shared_buffers {settings.get('shared_buffers')}, effective_cache_size "
        f"{settings.get('effective_cache_size')}, random_page_cost "
        f"{settings.get('random_page_cost')}"
    )
    print(
        f"request: GET /api/v1/meters/<random of {config.meters:,}>/history?resolution=1m, "
        f"{config.hours} h ({config.hours * 60} points"
        + (f", {body_size / 1024:.0f} KiB of JSON" if body_size else "")
        + f"), placed: {config.placement}; {config.warmup} warm-up requests, then "
        f"{config.requests} measured, one at a time"
    )
    for sample in samples:
        print(sample.line())
    verdict = [s for s in samples if s.label.startswith(("in-process", "HTTP"))]
    met = all(s.p95 <= 50 for s in verdict)
    print(f"target p95 <= 50 ms: {'met' if met else 'NOT met'}")
    print("plan of the history query for one meter:")
    for line in _plan(config):
        print(f"  {line}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
