"""Helpers shared by the integration tests: database access, waiting, a worker process, recompute.

Imported by tests/conftest.py once it has configured this process with the test settings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from tools import commands

REPO = Path(__file__).resolve().parents[1]
MICRO = 1_000_000

DATA_TABLES = (
    "ingestion_keys",
    "login_failures",
    "redis_losses",
    "meter_moves",
    "dead_letter_batches",
    "quarantined_windows",
    "alert_transitions",
    "alerts",
    "notification_deliveries",
    "notification_dead_letters",
    "notification_preferences",
    "webhooks",
    "raw_readings",
    "aggregates_1m",
    "aggregates_15m",
    "regional_aggregates_1m",
    "regional_aggregates_15m",
    "window_flushes",
    "meter_assignments",
    "meters",
    "audit_log",
    "invoice_payments",
    "invoice_line_items",
    "invoices",
    "tariffs",
    "tariff_overrides",
    "refresh_tokens",
    "verification_codes",
    "users",
)


# --------------------------------------------------------------------------- settings and time


def settings():
    """The settings this process's tasks run with (conftest configured the Celery app)."""
    from segs.celery_app import app

    return app.segs_settings


@contextmanager
def task_settings(**changes: Any) -> Iterator[None]:
    """Run this process's tasks with *changes* to their settings meanwhile (a worker started
    meanwhile needs them in its environment as well)."""
    from segs.celery_app import app

    before = app.segs_settings
    app.configure_from(replace(before, **changes))
    try:
        yield
    finally:
        app.configure_from(before)


def now_us() -> int:
    from segs.domain.readings import to_epoch_us

    return to_epoch_us(datetime.now(UTC))


def iso(ts_us: int, *, offset: str | None = None) -> str:
    """ISO-8601 text of an epoch-microsecond instant, in UTC with Z or at a +HH:MM offset."""
    from datetime import timedelta
    from datetime import timezone

    from segs.domain.readings import from_epoch_us

    moment = from_epoch_us(ts_us)
    if offset is None:
        return moment.isoformat().replace("+00:00", "Z")
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset.lstrip("+-").split(":")
    zone = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return moment.astimezone(zone).isoformat()


def dt(ts_us: int) -> datetime:
    from segs.domain.readings import from_epoch_us

    return from_epoch_us(ts_us)


def past_15m_window(minutes_ago: int = 45) -> int:
    """Start (epoch µs) of the 15-minute window holding the instant *minutes_ago* minutes ago."""
    span = 900 * MICRO
    moment = now_us() - minutes_ago * 60 * MICRO
    return moment - moment % span


def reading(
    meter: str,
    region: str,
    ts_us: int,
    power: float,
    *,
    energy: float | None = None,
    voltage: float | None = None,
    timestamp: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A reading in the seed's camelCase format; optional fields only when given."""
    body: dict[str, Any] = {
        "readingId": str(uuid.uuid4()),
        "meterId": meter,
        "region": region,
        "timestamp": timestamp or iso(ts_us),
        "powerKw": power,
    }
    if energy is not None:
        body["energyKwh"] = energy
    if voltage is not None:
        body["voltage"] = voltage
    body.update(extra)
    return body


def to_rows(readings: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows the API would queue for these (valid) readings."""
    from segs.domain.readings import to_row
    from segs.ingestion_client import get_codec

    reading_type = get_codec().item_type
    return [to_row(msgspec.json.decode(json.dumps(item), type=reading_type)) for item in readings]


# Keys created since the last reset, by scope: (meter, regions) -> plain key.
_keys: dict[tuple[str | None, tuple[str, ...]], str] = {}


def ingestion_key(*, meter: str | None = None, regions: tuple[str, ...] = ()) -> str:
    """A plain ingestion key: for every region by default, for *regions*, or a device key for
    *meter* (registered in the first of *regions* if it is new). Made once per clean state."""
    scope = (meter, regions)
    if scope not in _keys:
        from segs.db import session_scope
        from segs.services.accounts.audit import SYSTEM
        from segs.services.spine.ingestion_keys import KeyRequest
        from segs.services.spine.ingestion_keys import create_key

        request = KeyRequest(
            name=f"test key {len(_keys) + 1}",
            meter_id=meter,
            regions=() if meter else regions,
            register_in=regions[0] if meter and regions else None,
        )
        with session_scope() as session:
            _keys[scope] = create_key(session, SYSTEM, request, datetime.now(UTC)).plain
    return _keys[scope]


def key_header(key: str | None = None) -> dict[str, str]:
    """The Authorization header of *key* (default: the every-region key)."""
    return {"Authorization": f"Bearer {key or ingestion_key()}"}


def post_batch(
    client, readings: list[dict[str, Any]], *, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    response = client.post(
        "/telemetry/batch",
        data=json.dumps(readings),
        content_type="application/json",
        headers=key_header(key),
    )
    return response.status_code, response.get_json()


# --------------------------------------------------------------------------- database


@contextmanager
def db() -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database, in UTC."""
    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(settings().database_url), autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn


def query(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with db() as conn:
        return conn.execute(sql, params).fetchall()


def execute(sql: str, params: Any = None) -> None:
    """Run a statement that returns no rows."""
    with db() as conn:
        conn.execute(sql, params)


def scalar(sql: str, params: Any = None) -> Any:
    rows = query(sql, params)
    return rows[0][0]


def raw_count() -> int:
    return scalar("SELECT count(*) FROM raw_readings")


# --------------------------------------------------------------------------- redis and broker


def redis_client():
    from segs.redis_client import get_redis

    return get_redis()


def purge_queues() -> None:
    """Drop every message of the reading queues and of ``default``."""
    from segs.celery_app import app

    broker_url = settings().broker_url
    if broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker_url)
        try:
            client.flushdb()
        finally:
            client.close()
        return
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in ["default", "notifications", *settings().reading_queues]:
            app.amqp.queues[name].bind(channel).declare()
            channel.queue_purge(name)


def queue_depths() -> dict[str, int]:
    from segs.tasks.queues import queue_depths as depths

    return depths(["default", *settings().reading_queues])


def wait_unacked_expired(timeout: float = 30.0) -> None:
    """Redis broker: wait until every unacknowledged message is older than the visibility timeout.

    kombu restores such messages when a worker starts polling (and then only every
    unacked_restore_interval x unacked_restore_throttle = 100 s by default), so a worker started
    after this point takes back a killed worker's messages at once. RabbitMQ needs no wait: it
    requeues them as soon as the dead worker's connection closes.
    """
    broker_url = settings().broker_url
    if not broker_url.startswith("redis"):
        return
    import redis

    client = redis.Redis.from_url(broker_url)
    margin = settings().visibility_timeout_s + 0.5
    try:
        wait_for(
            lambda: client.zcount("unacked_index", time.time() - margin, "+inf") == 0,
            timeout=timeout,
            message="unacknowledged messages stay younger than the visibility timeout",
        )
    finally:
        client.close()


def broker_unacked() -> str:
    """Redis broker: how many delivered messages await an ack (for failure reports)."""
    broker_url = settings().broker_url
    if not broker_url.startswith("redis"):
        return "unacked: n/a (RabbitMQ)"
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        return f"unacked: {client.hlen('unacked')}, unacked_index: {client.zcard('unacked_index')}"
    finally:
        client.close()


def tables_holding_rows(conn: psycopg.Connection) -> list[str]:
    """The data tables' leaf partitions (or the tables themselves) that hold any row.

    TRUNCATE rewrites every file of every table it names, whether empty or not; with two months
    of daily partitions that costs most of a second per test, so only non-empty ones are named.
    """
    leaves = [
        name
        for (name,) in conn.execute(
            # pg_partition_tree gives no row for a plain table: it stands for itself.
            "SELECT coalesce(tree.relid, t.name)::regclass::text "
            "FROM unnest(%s::regclass[]) AS t(name) "
            "LEFT JOIN LATERAL pg_partition_tree(t.name) AS tree ON true "
            "WHERE tree.relid IS NULL OR tree.isleaf",
            (list(DATA_TABLES),),
        )
    ]
    if not leaves:
        return []
    probes = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} WHERE EXISTS (SELECT 1 FROM {})").format(
            sql.Literal(name), sql.Identifier(name)
        )
        for name in leaves
    )
    return [name for (name,) in conn.execute(probes)]


def reset_state() -> None:
    """Empty the data tables, the test Redis database and the queues."""
    from segs.services.spine import archive
    from segs.services.spine.registry_cache import announce_change

    # A module's shared worker may still be finishing the last test's task: its transaction and
    # the TRUNCATE can deadlock, and PostgreSQL then aborts one of them (often the TRUNCATE).
    for attempt in range(5):
        try:
            with db() as conn:
                holding = tables_holding_rows(conn)
                if holding:
                    # CASCADE: an empty table that references a truncated one must go with it.
                    conn.execute(
                        sql.SQL("TRUNCATE {} CASCADE").format(
                            sql.SQL(", ").join(map(sql.Identifier, holding))
                        )
                    )
            break
        except psycopg.errors.DeadlockDetected:
            if attempt == 4:
                raise
            time.sleep(0.2)
    redis_client().flushdb()
    purge_queues()
    # This process remembers which meters it registered; the table was just emptied.
    archive._registered_meters.clear()
    # The keys are gone with their table, and every process's registry cache must start over.
    _keys.clear()
    announce_change(redis_client())


# --------------------------------------------------------------------------- waiting


def wait_for(
    condition: Callable[[], Any], *, timeout: float, message: str | Callable[[], str] = ""
) -> Any:
    """Poll *condition* every 0.1 s until it returns something truthy; fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"condition not met within {timeout} s: {text}")
        time.sleep(0.1)


def flush_now() -> dict[str, int]:
    """Run the flush task in this process (deterministic, no beat needed)."""
    from segs.tasks.windows import flush_closed_windows

    return flush_closed_windows.run()


class PublishedTasks:
    """Records the id of every fold_batch task this process publishes (after_task_publish)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._lock = threading.Lock()

    def _on_publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        if sender == "segs.tasks.readings.fold_batch" and headers:
            with self._lock:
                self.ids.append(headers["id"])

    def __enter__(self) -> PublishedTasks:
        from celery.signals import after_task_publish

        after_task_publish.connect(self._on_publish, weak=False)
        return self

    def __exit__(self, *_: Any) -> None:
        from celery.signals import after_task_publish

        after_task_publish.disconnect(self._on_publish)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.ids)


# --------------------------------------------------------------------------- the worker


class WorkerProcess:
    """A real ``celery -A segs worker`` subprocess in its own process group.

    Completion is read from what the worker writes, not from its log lines (their wording and
    level are the application's to change): its Prometheus multiprocess files (one directory
    per start), raw_readings and the Redis applied marks.
    """

    def __init__(self, directory: Path, concurrency: int = 2, *, events: bool = False) -> None:
        self.directory = directory
        self.concurrency = concurrency
        self.events = events
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = ""
        self.metrics_dirs: list[Path] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self.name = f"test-{uuid.uuid4().hex[:12]}"
        # Not the test process's directory: the worker empties its own when it starts.
        metrics_dir = self.directory / f"metrics-{len(self.metrics_dirs) + 1}"
        metrics_dir.mkdir()
        self.metrics_dirs.append(metrics_dir)
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
        # Each start appends to the same log, so the log tells the whole story of a test.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                commands.celery(
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    str(self.concurrency),
                    "--pool",
                    "prefork",
                    "-n",
                    f"{self.name}@%h",
                    # Syncing with other workers at start costs a second and tests need none.
                    "--without-mingle",
                    "--without-gossip",
                    *(["--task-events"] if self.events else []),
                ),
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        ready = re.compile(re.escape(self.name) + r"@\S+ ready\.")

        def is_ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            return bool(ready.search(self.log()[offset:]))

        wait_for(is_ready, timeout=timeout, message=lambda: f"worker not ready:\n{self.log()}")

    def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_bytes().decode("utf-8", errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a sample over every process of every start of this worker."""
        from prometheus_client.multiprocess import MultiProcessCollector

        total = 0.0
        for directory in self.metrics_dirs:
            for family in MultiProcessCollector(None, path=str(directory)).collect():
                for sample in family.samples:
                    if sample.name == name and all(
                        sample.labels.get(key) == value for key, value in labels.items()
                    ):
                        total += sample.value
        return total

    def fold_runs(self) -> int:
        """How many fold_batch messages this worker settled (folded, retried or set aside)."""
        return int(self.metric("segs_reading_batches_settled_total"))

    def _signal_group(self, signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the group after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a stuck child) goes too.
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def unfolded_batches() -> list[str]:
    """Batches that inserted rows into raw_readings but have no applied mark yet (in the shard
    of their meters)."""
    batches = query("SELECT batch_id::text, min(meter_id) FROM raw_readings GROUP BY batch_id")
    if not batches:
        return []
    pipe = redis_client().pipeline(transaction=False)
    for batch_id, meter_id in batches:
        pipe.exists(keys_of(meter_id).applied(batch_id))
    return [
        batch_id for (batch_id, _), found in zip(batches, pipe.execute(), strict=True) if not found
    ]


def wait_folded(raw_rows: int, *, timeout: float = 30.0, log: Callable[[], str] = str) -> None:
    """Wait until raw_readings holds *raw_rows* rows and every batch that inserted some of them
    has folded them into the Redis windows (its applied mark is set in the same script)."""
    wait_for(
        lambda: raw_count() == raw_rows and not unfolded_batches(),
        timeout=timeout,
        message=lambda: (
            f"raw_readings={raw_count()} (want {raw_rows}), unfolded={unfolded_batches()}\n"
            f"{log()[-4000:]}"
        ),
    )


def wait_recovered(raw_rows: int, *, timeout: float = 60.0, log: Callable[[], str] = str) -> None:
    """Like wait_folded, running beat's stalled-batch re-publisher as beat would meanwhile."""
    from segs.tasks.readings import requeue_stalled_batches

    def recovered() -> bool:
        requeue_stalled_batches.run()
        return raw_count() == raw_rows and not unfolded_batches()

    wait_for(
        recovered,
        timeout=timeout,
        message=lambda: (
            f"raw_readings={raw_count()} (want {raw_rows}), unfolded={unfolded_batches()}\n"
            f"{log()[-4000:]}"
        ),
    )


def wait_processed(
    worker: WorkerProcess, *, runs: int, raw_rows: int, timeout: float = 30.0
) -> None:
    """Wait until *runs* fold_batch runs finished in the worker and their rows are folded."""
    wait_for(
        lambda: worker.fold_runs() >= runs,
        timeout=timeout,
        message=lambda: f"{worker.fold_runs()} of {runs} runs\n{worker.log()[-4000:]}",
    )
    assert worker.fold_runs() == runs
    wait_folded(raw_rows, timeout=timeout, log=worker.log)


# --------------------------------------------------------------------------- aggregates

_METER_COLUMNS = (
    "meter_id, window_start, region, reading_count, power_sum_kw, avg_power_kw, min_power_kw, "
    "max_power_kw, energy_kwh_sum, voltage_sum, voltage_count, voltage_avg, last_reading_at"
)
_REGION_COLUMNS = (
    "region, window_start, meter_count, reading_count, total_power_kw, capacity_kw, "
    "load_percentage, energy_kwh_sum"
)

# Per meter and window, straight from raw_readings, with the documented rounding rules.
_RECOMPUTE_METERS = """
SELECT meter_id,
       date_bin(make_interval(secs => {size}), ts, timestamptz 'epoch') AS window_start,
       region,
       count(*)::int AS reading_count,
       sum(power_kw) AS power_sum,
       round(sum(power_kw) / count(*), 6) AS avg_power,
       min(power_kw) AS min_power,
       max(power_kw) AS max_power,
       coalesce(sum(energy_kwh), 0) AS energy_sum,
       coalesce(sum(voltage), 0) AS voltage_sum,
       count(voltage)::int AS voltage_count,
       CASE WHEN count(voltage) > 0 THEN round(sum(voltage) / count(voltage), 6) END,
       max(ts)
FROM raw_readings
GROUP BY 1, 2, 3
"""

_RECOMPUTE_REGIONS = """
WITH m AS ({meters})
SELECT m.region, m.window_start, count(*)::int, sum(m.reading_count)::int, sum(m.avg_power),
       r.capacity_kw, round(100 * sum(m.avg_power) / r.capacity_kw, 4), sum(m.energy_sum)
FROM m JOIN regions r ON r.name = m.region
GROUP BY m.region, m.window_start, r.capacity_kw
ORDER BY 1, 2
"""

SIZES = {"1m": 60, "15m": 900}


def recompute_from_raw() -> dict[str, list[tuple[Any, ...]]]:
    """Expected rows of every aggregate table, computed with SQL over raw_readings only."""
    expected: dict[str, list[tuple[Any, ...]]] = {}
    with db() as conn:
        for size, seconds in SIZES.items():
            meters = _RECOMPUTE_METERS.format(size=seconds)
            expected[f"aggregates_{size}"] = conn.execute(meters + " ORDER BY 1, 2").fetchall()
            expected[f"regional_aggregates_{size}"] = conn.execute(
                _RECOMPUTE_REGIONS.format(meters=meters)
            ).fetchall()
    return expected


def stored_aggregates() -> dict[str, list[tuple[Any, ...]]]:
    """The same columns as :func:`recompute_from_raw`, as stored by the flush."""
    stored: dict[str, list[tuple[Any, ...]]] = {}
    with db() as conn:
        for size in SIZES:
            stored[f"aggregates_{size}"] = conn.execute(
                f"SELECT {_METER_COLUMNS} FROM aggregates_{size} ORDER BY 1, 2"
            ).fetchall()
            stored[f"regional_aggregates_{size}"] = conn.execute(
                f"SELECT {_REGION_COLUMNS} FROM regional_aggregates_{size} ORDER BY 1, 2"
            ).fetchall()
    return stored


def assert_stored_equals_recomputed() -> None:
    stored = stored_aggregates()
    expected = recompute_from_raw()
    for table in expected:
        assert len(stored[table]) == len(expected[table]), table
        for got, want in zip(stored[table], expected[table], strict=True):
            assert got == want, (table, got, want)


def meter_rows(size: str) -> dict[tuple[str, datetime], tuple[Any, ...]]:
    """Stored meter rows keyed by (meter, window start), with flush_count last."""
    rows = query(f"SELECT {_METER_COLUMNS}, flush_count FROM aggregates_{size} ORDER BY 1, 2")
    return {(row[0], row[1]): row[2:] for row in rows}


def region_rows(size: str) -> dict[tuple[str, datetime], tuple[Any, ...]]:
    rows = query(f"SELECT {_REGION_COLUMNS} FROM regional_aggregates_{size} ORDER BY 1, 2")
    return {(row[0], row[1]): row[2:] for row in rows}


def D(text: str) -> Decimal:  # noqa: N802 - reads like a literal
    return Decimal(text)


def fold_one(
    rows: list[list[Any]] | None,
    received_at_us: int,
    *,
    task_id: str | None = None,
    shard: int | None = None,
) -> dict[str, Any]:
    """Run the fold_batch task here on one message, as a worker would; what it did to it. The
    message comes from the queue of *shard*, by default that of the first row's meter (a batch
    in the ledger: shard 0)."""
    from segs.domain.sharding import queue_for_shard
    from segs.tasks.readings import fold_batch

    if shard is None:
        shard = shard_of(rows[0][0]) if rows else 0
    task_id = task_id or str(uuid.uuid4())
    settled: dict[str, dict[str, Any]] = fold_batch.apply(
        args=(rows, received_at_us), task_id=task_id, routing_key=queue_for_shard(shard)
    ).get()
    return settled[task_id]


def shard_of(meter_id: str) -> int:
    from segs.domain.sharding import shard_for

    return shard_for(meter_id, settings().shards)


def keys_of(meter_id: str) -> Any:
    """The Redis keys of the meter's shard (segs.services.shared.keyspace.ShardKeys)."""
    from segs.services.shared.keyspace import shard_keys

    return shard_keys(shard_of(meter_id))


def window_store() -> Any:
    from segs.redis_client import get_redis
    from segs.services.spine.windows_store import WindowStore

    return WindowStore(get_redis(), settings().shards)


def applied_marks(batch_id: str) -> int:
    """In how many shards the batch is marked folded (segs.services.shared.keyspace)."""
    from segs.services.shared.keyspace import all_shard_keys

    pipe = redis_client().pipeline(transaction=False)
    for names in all_shard_keys(settings().shards):
        pipe.exists(names.applied(batch_id))
    return sum(pipe.execute())


def open_window_count() -> int:
    """Open window hashes of all shards."""
    return sum(window_store().open_windows_by_size().values())


def archive_in_process(rows: list[list[Any]], now: datetime | None = None) -> Any:
    """Run the worker's archive-and-fold service here, as a fresh batch, against the test DB."""
    from segs.db import raw_connection
    from segs.services.spine.archive import archive_and_fold
    from segs.tasks.alerts import get_detection_store

    with raw_connection() as conn:
        return archive_and_fold(
            conn,
            window_store(),
            get_detection_store(),
            settings(),
            batch_id=str(uuid.uuid4()),
            rows=rows,
            received_at_us=now_us(),
            now=now or datetime.now(UTC),
        )


def dedupe_marks() -> set[tuple[str, int]]:
    """Every (meter, ts_us) holding an API dedupe mark (segs.services.spine.dedupe)."""
    from segs.redis_client import get_redis

    client = get_redis()
    marks = set()
    for bucket in client.scan_iter("segs:{s*}:dd:*"):
        for field in client.hkeys(bucket):
            marks.add((field[:-8].decode(), int.from_bytes(field[-8:], "little", signed=True)))
    return marks


def post_and_fold(client, worker: WorkerProcess, batch: list[dict[str, Any]]) -> None:
    """Post readings through the API and wait until the worker stored and folded them."""
    before = raw_count()
    status, _ = post_batch(client, batch)
    assert status == 202
    wait_folded(before + len(batch), log=worker.log)
