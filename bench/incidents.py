"""``python -m bench.incidents``: a regional outage of 10,000 meters, raised within a minute,
and how long until every alert transition is dispatched or grouped, with how many
notifications went out.

It starts a Celery worker and beat as the README does (``celery -A segs worker``, ``celery -A
segs beat``; default settings) against its own database and a Redis server of its own (a free
port; its broker in that server's database 1), and registers
``--meters`` meters in one region, owned by ``--customers`` customers with one webhook each (a
receiver in this process counts the POSTs). Then, spread over ``--spread`` seconds, every
meter gets a meter-level condition through the code the pipeline runs:

- ``--path sweep`` (default): each meter's silence deadline falls due within the minute; beat's
  silent-meter sweep finds them and the worker raises ``METER_OUTAGE`` for each;
- ``--path findings``: ``POWER_OUTAGE`` findings are stored in batches of ``--batch`` with the
  function the worker's fold task calls (segs.tasks.alerts.store_findings).

It reports the raise window, when the last transition was dispatched or grouped after the last
raise, the per-transition lag (dispatched or grouped minus made), the incidents, and the
notifications: deliveries logged and webhook POSTs received. ``--window 0`` turns grouping off
(``SEGS_INCIDENT_WINDOW_S=0``), for the figures without incidents.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from bench.pipeline import BenchConfig
from bench.pipeline import _run_setup
from bench.pipeline import _spawn
from bench.pipeline import _stop
from bench.pipeline import configure_in_process_segs
from bench.pipeline import quantiles
from bench.redis_cluster import start_redis
from segs.config import Settings
from tools import commands

REGION = "Pune-West"


class _Receiver(ThreadingHTTPServer):
    """Counts the webhook POSTs by what they tell: an alert's type, or the event (beat's
    repricing announces tariff changes to the same customers)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.received: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        import orjson

        payload = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind = payload["alert"]["type"] if "alert" in payload else payload["event"]
        with self.server.lock:
            self.server.received[kind] = self.server.received.get(kind, 0) + 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def _prepare(config: BenchConfig, meters: list[str], customers: int, hook_url: str) -> None:
    """Customers of the region, each owning a share of the meters, each with a webhook."""
    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE notification_deliveries, notification_dead_letters, webhooks, "
            "notification_preferences, audit_log, users CASCADE"
        )
        owners = [uuid.uuid4() for _ in range(customers)]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO users (id, email, name, role, region) VALUES (%s, %s, %s, 'USER', %s)",
                [
                    (owner, f"customer{index}@bench.test", f"Customer {index}", REGION)
                    for index, owner in enumerate(owners)
                ],
            )
            cursor.executemany(
                "INSERT INTO meters (meter_id, region, owner_id, assigned_at) "
                "VALUES (%s, %s, %s, '2000-01-01T00:00Z')",
                [(meter, REGION, owners[index % customers]) for index, meter in enumerate(meters)],
            )
            cursor.executemany(
                "INSERT INTO webhooks (id, user_id, url, secret) VALUES (%s, %s, %s, 'bench')",
                [(uuid.uuid4(), owner, hook_url) for owner in owners],
            )


def _raise_by_sweep(meters: list[str], spread_s: float) -> None:
    """Silence deadlines falling due evenly over the spread; beat's sweep does the rest."""
    from segs.tasks.alerts import get_detection_store

    start = time.time()
    step = spread_s / len(meters)
    get_detection_store().restore_deadlines(
        [(meter, REGION, start + index * step) for index, meter in enumerate(meters)]
    )


def _raise_by_findings(meters: list[str], spread_s: float, batch: int, shards: int) -> None:
    """POWER_OUTAGE findings stored batch by batch, each of one shard's meters as a fold
    batch is, paced evenly over the spread."""
    from segs.domain.alerts import POWER_OUTAGE
    from segs.domain.alerts import Raise
    from segs.domain.readings import to_epoch_us
    from segs.domain.sharding import shard_for
    from segs.services.spine.detection import MeterFinding
    from segs.tasks.alerts import store_findings

    outage = Raise(POWER_OUTAGE, "high", "Possible outage: 0.00 kW against a baseline of 2.00 kW")
    by_shard: dict[int, list[str]] = {}
    for meter in meters:
        by_shard.setdefault(shard_for(meter, shards), []).append(meter)
    batches = [
        (shard, members[index : index + batch])
        for shard, members in sorted(by_shard.items())
        for index in range(0, len(members), batch)
    ]
    start = time.monotonic()
    for number, (shard, members) in enumerate(batches):
        time.sleep(max(0.0, start + number * spread_s / len(batches) - time.monotonic()))
        at_us = to_epoch_us(datetime.now(UTC))
        store_findings(
            shard,
            str(uuid.uuid4()),
            [MeterFinding(meter, REGION, outage, at_us) for meter in members],
        )


_PROGRESS = """
    SELECT count(*) FILTER (WHERE a.meter_id IS NOT NULL AND t.kind = 'created'),
           count(*) FILTER (WHERE t.dispatched_at IS NULL),
           (SELECT count(*) FROM alerts WHERE notify_after IS NOT NULL)
    FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id
"""

_LAGS = """
    SELECT extract(epoch FROM t.dispatched_at - t.at), t.grouped_into IS NOT NULL
    FROM alert_transitions t
"""

_WINDOW = """
    SELECT min(t.at), max(t.at), max(t.dispatched_at)
    FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id
"""


def _wait_until_settled(
    conn: psycopg.Connection, expected: int, receiver: _Receiver, timeout_s: float
) -> bool:
    """Until every meter has its alert, nothing is held or undispatched, and the webhook POSTs
    stopped arriving (the deliveries queued by the dispatches were made)."""
    deadline = time.monotonic() + timeout_s
    quiet_since, last_total = time.monotonic(), -1
    while time.monotonic() < deadline:
        raised, undispatched, held = conn.execute(_PROGRESS).fetchone() or (0, 0, 0)
        total = receiver.total()
        if total != last_total:
            quiet_since, last_total = time.monotonic(), total
        if raised >= expected and undispatched == 0 and held == 0:
            if time.monotonic() - quiet_since > 5:
                return True
        time.sleep(0.5)
    return False


def _seconds(values: list[float]) -> str:
    if not values:
        return "none"
    p50, p99, worst = quantiles(values)
    return f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s (n={len(values)})"


def _report(conn: psycopg.Connection, receiver: _Receiver, settled: bool) -> None:
    """Deliveries count alert notifications only (subjects transition:<id>)."""
    first, last, done = conn.execute(_WINDOW).fetchone() or (None, None, None)
    lags = conn.execute(_LAGS).fetchall()
    grouped = [float(lag) for lag, is_grouped in lags if is_grouped and lag is not None]
    dispatched = [float(lag) for lag, is_grouped in lags if not is_grouped and lag is not None]
    incidents = conn.execute(
        "SELECT type, severity, status, meter_count FROM alerts WHERE meter_id IS NULL ORDER BY id"
    ).fetchall()
    deliveries = conn.execute(
        "SELECT status, count(*) FROM notification_deliveries WHERE subject LIKE 'transition:%' "
        "GROUP BY status ORDER BY status"
    ).fetchall()
    meter_alerts = conn.execute(
        "SELECT count(*), count(incident_id) FROM alerts WHERE meter_id IS NOT NULL"
    ).fetchone() or (0, 0)
    if first is not None and last is not None and done is not None:
        print(f"transitions made over               : {(last - first).total_seconds():.1f} s")
        print(
            "all dispatched or grouped           : "
            f"{(done - last).total_seconds():.1f} s after the last was made, "
            f"{(done - first).total_seconds():.1f} s after the first"
        )
    print(f"meter alerts (grouped)              : {meter_alerts[0]} ({meter_alerts[1]})")
    print(f"grouped, made -> grouped            : {_seconds(grouped)}")
    print(f"dispatched, made -> dispatched      : {_seconds(dispatched)}")
    for kind, severity, status, meter_count in incidents:
        summary = f"{kind} {severity} {status}, {meter_count} meters"
        print(f"incident                            : {summary}")
    print(f"alert deliveries logged             : {dict(deliveries) or 0}")
    print(f"webhook POSTs received              : {receiver.total()} {receiver.received}")
    if not settled:
        print("NOT SETTLED within the timeout: the figures above are partial")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.incidents",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=10_000, help="meters in the outage")
    parser.add_argument("--customers", type=int, default=10, help="owners of the meters")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds to raise them over")
    parser.add_argument("--path", choices=("sweep", "findings"), default="sweep")
    parser.add_argument("--batch", type=int, default=100, help="findings per stored batch")
    parser.add_argument(
        "--window", type=float, default=None, help="SEGS_INCIDENT_WINDOW_S (0: no grouping)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up settling after")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg:///segs_bench_incidents",
        help="the benchmark's database (emptied)",
    )
    args = parser.parse_args(argv)
    redis_server = start_redis()
    config = BenchConfig(
        meters=args.meters,
        interval_s=args.spread,
        duration_s=args.spread,
        api_workers=0,
        worker_concurrency=None,
        worker_pool="prefork",
        worker_nice=0,
        shards=Settings.shards,
        broker="redis",
        api_port=0,
        seed=1,
        client_concurrency=1,
        database_url=args.database_url,
        redis_url=redis_server.url,
        redis_broker_url=redis_server.url.removesuffix("/0") + "/1",
    )
    # The webhook receiver is this process, on a loopback port over plain http: allowed only
    # under SEGS_ENV=testing, which the benchmark's stack runs with.
    os.environ.update(
        {
            **config.env(),
            "SEGS_WEBHOOK_ALLOW_LOOPBACK": "1",
            "SEGS_WEBHOOK_ALLOW_HTTP": "1",
            "SEGS_WEBHOOK_PORTS": "1024-65535",
            **({"SEGS_INCIDENT_WINDOW_S": f"{args.window:g}"} if args.window is not None else {}),
        }
    )
    from segs.config import get_settings
    from segs.dbadmin import libpq_conninfo

    _run_setup(config)
    configure_in_process_segs()
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    meters = [f"OUT-{index:05d}" for index in range(args.meters)]
    _prepare(config, meters, args.customers, receiver.url)
    logs = Path(tempfile.mkdtemp(prefix="segs-bench-incidents-"))
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(logs / "metrics"))
    (logs / "metrics").mkdir()
    worker = _spawn("worker", commands.celery("worker", "--loglevel", "WARNING"), env, logs)
    beat = _spawn(
        "beat",
        commands.celery("beat", "--loglevel", "WARNING", "--schedule", str(logs / "beat")),
        env,
        logs,
    )
    settings = get_settings()
    try:
        time.sleep(5)  # the worker and beat start
        if args.path == "sweep":
            _raise_by_sweep(meters, args.spread)
        else:
            _raise_by_findings(meters, args.spread, args.batch, config.shards)
        with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
            settled = _wait_until_settled(conn, args.meters, receiver, args.spread + args.timeout)
            print(
                f"SEGS incident benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
                f"{os.cpu_count()} cores, Python {platform.python_version()}"
            )
            print(
                f"{args.meters} meters of {REGION} ({args.customers} customers, one webhook "
                f"each), conditions by {args.path} over {args.spread:g} s; incidents: "
                f"{settings.incident_min_meters} meters or "
                f"{settings.incident_min_fraction * 100:g} % of the region within "
                f"{settings.incident_window_s:g} s"
            )
            _report(conn, receiver, settled)
    finally:
        _stop(beat)
        _stop(worker)
        receiver.shutdown()
    print(f"logs in {logs}")
    return 0 if settled else 1


if __name__ == "__main__":
    sys.exit(main())
