"""``python -m bench.alerts``: spike-to-alert latency and overload latency under the spine's load.

It starts the same stack as ``python -m bench`` (gunicorn API, Celery worker and beat) against its
own database and Redis databases, and runs the simulator's HTTP load against it. Meanwhile:

1. **Spike to alert.** A customer owns ``--probes`` probe meters and has a webhook pointing at a
   receiver inside this process. Each probe meter gets 5 readings at 4 kW before the load starts;
   then, one probe at a time, a spiking reading (40 kW) is POSTed to ``/telemetry`` and the clock
   starts when the API answers 202. The benchmark polls PostgreSQL every 5 ms until the alert row
   is visible (committed), and waits for the webhook POST to arrive (the notification handed to
   the channel). It prints p50/p99/max of both.
2. **Overload latency.** With more meters than the regions' capacities were sized for (the
   default 20,000 meters draw about 250 % of each region's capacity), every region overloads.
   For each region's REGIONAL_OVERLOAD alert, it compares the alert's creation with the commit of
   the 1m region window that made it the second qualifying window, and with the flush period.
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
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench.pipeline import BenchConfig
from bench.pipeline import _run_setup
from bench.pipeline import _spawn
from bench.pipeline import _stack
from bench.pipeline import _stop
from bench.pipeline import add_probe_load_options
from bench.pipeline import create_ingestion_key
from bench.pipeline import probe_load_config
from bench.pipeline import quantiles
from bench.pipeline import simulator_command

PROBE_REGION = "Pune-West"
BASELINE_KW = 4.0
SPIKE_KW = 40.0
POLL_S = 0.005


class _Receiver(ThreadingHTTPServer):
    """Records when each alert's first webhook arrives, by meter id."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: dict[str, float] = {}
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait_for(self, meter: str, timeout: float) -> float | None:
        with self.arrived:
            self.arrived.wait_for(lambda: meter in self.arrivals, timeout)
            return self.arrivals.get(meter)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        arrived = time.time()
        body = self.rfile.read(int(self.headers["Content-Length"]))
        alert = orjson.loads(body).get("alert", {})
        # Only spikes: the probe meters also go silent between probes (METER_OUTAGE).
        meter = alert.get("meterId") if alert.get("type") == "POWER_SPIKE" else None
        if meter is not None:
            with self.server.arrived:
                self.server.arrivals.setdefault(meter, arrived)
                self.server.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class ProbeResult:
    accept_s: float  # request sent -> 202 received
    alert_s: float | None  # 202 -> alert row visible
    notified_s: float | None  # 202 -> webhook received


def _prepare(config: BenchConfig, receiver: _Receiver, probes: list[str]) -> None:
    """Empty the alert tables; a customer owns the probe meters and has one webhook."""
    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE alerts, alert_transitions, notification_deliveries, "
            "notification_dead_letters, webhooks, notification_preferences, users CASCADE"
        )
        user_id = uuid.uuid4()
        conn.execute(
            "INSERT INTO users (id, email, name, role, region) VALUES (%s, %s, %s, 'USER', %s)",
            (user_id, "probe@bench.test", "Probe Customer", PROBE_REGION),
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO meters (meter_id, region, owner_id, assigned_at) "
                "VALUES (%s, %s, %s, now())",
                [(meter, PROBE_REGION, user_id) for meter in probes],
            )
        conn.execute(
            "INSERT INTO webhooks (id, user_id, url, secret) VALUES (%s, %s, %s, 'bench')",
            (uuid.uuid4(), user_id, receiver.url),
        )


def _reading(meter: str, epoch_s: float, power_kw: float) -> dict[str, Any]:
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return {
        "readingId": str(uuid.uuid4()),
        "meterId": meter,
        "region": PROBE_REGION,
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "powerKw": power_kw,
    }


def _send_baselines(api: str, key: str, probes: list[str]) -> None:
    """Five readings per probe meter, a second apart, ending a minute ago."""
    start = time.time() - 65
    batch = [_reading(meter, start + i, BASELINE_KW) for meter in probes for i in range(5)]
    response = httpx.post(f"{api}/api/v1/{key}/telemetry/batch", json=batch, timeout=30)
    response.raise_for_status()


def _alert_visible(conn: psycopg.Connection, meter: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = conn.execute(
            "SELECT 1 FROM alerts WHERE meter_id = %s AND type = 'POWER_SPIKE'", (meter,)
        ).fetchone()
        if found:
            return time.time()
        time.sleep(POLL_S)
    return None


def _probe(
    api: str, key: str, conn: psycopg.Connection, receiver: _Receiver, meter: str, timeout: float
) -> ProbeResult:
    sent = time.time()
    response = httpx.post(
        f"{api}/telemetry",
        json=_reading(meter, sent, SPIKE_KW),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    accepted = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"spike for {meter} answered {response.status_code}: {response.text}")
    visible = _alert_visible(conn, meter, timeout)
    notified = receiver.wait_for(meter, timeout)
    return ProbeResult(
        accepted - sent,
        None if visible is None else visible - accepted,
        None if notified is None else notified - accepted,
    )


def _overload_latencies(config: BenchConfig, since: datetime) -> list[tuple[str, float, float]]:
    """Per region: (region, alert creation minus the 2nd qualifying window's commit, that
    window's commit minus its end)."""
    from segs.dbadmin import libpq_conninfo

    with psycopg.connect(libpq_conninfo(config.database_url)) as conn:
        rows = conn.execute(
            """
            SELECT a.region,
                   extract(epoch FROM a.created_at - w.updated_at),
                   extract(epoch FROM w.updated_at - (w.window_start + interval '1 minute'))
            FROM alerts a
            JOIN LATERAL (
                SELECT g.window_start, g.updated_at FROM regional_aggregates_1m g
                WHERE g.region = a.region AND g.updated_at <= a.created_at
                ORDER BY g.updated_at DESC LIMIT 1
            ) w ON true
            WHERE a.type = 'REGIONAL_OVERLOAD' AND a.created_at >= %s
            ORDER BY a.region
            """,
            (since,),
        ).fetchall()
    return [(region, float(lag), float(flush)) for region, lag, flush in rows]


def _quantiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    p50, p99, worst = quantiles(values)
    return (
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {worst * 1000:.0f} ms (n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alerts",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=150.0, help="seconds of load")
    parser.add_argument("--probes", type=int, default=60, help="spiking readings to time")
    parser.add_argument("--probe-every", type=float, default=1.5, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up on a probe after")
    add_probe_load_options(parser, api_port=8078)
    args = parser.parse_args(argv)
    # The webhook receiver is this process, on a loopback port over plain http: allowed only
    # under SEGS_ENV=testing, which the benchmark's stack runs with.
    os.environ.update(
        {
            "SEGS_WEBHOOK_ALLOW_LOOPBACK": "1",
            "SEGS_WEBHOOK_ALLOW_HTTP": "1",
            "SEGS_WEBHOOK_PORTS": "1024-65535",
        }
    )
    config = probe_load_config(args, args.duration)
    os.environ.update(config.env())
    from segs.dbadmin import libpq_conninfo

    probes = [f"PROBE-{index:04d}" for index in range(args.probes)]
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _run_setup(config)
    _prepare(config, receiver, probes)
    key = create_ingestion_key(config.env(), "bench alerts")
    logs = Path(tempfile.mkdtemp(prefix="segs-bench-alerts-"))
    api = f"http://127.0.0.1:{config.api_port}"
    started = datetime.now(UTC)
    results: list[ProbeResult] = []
    with _stack(config, logs):
        _send_baselines(api, key, probes)
        simulator = _spawn("simulator", simulator_command(config, key), config.env(), logs)
        time.sleep(args.warmup)
        with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
            for meter in probes:
                if simulator.process.poll() is not None:
                    break
                slot = time.monotonic() + args.probe_every
                results.append(_probe(api, key, conn, receiver, meter, args.timeout))
                time.sleep(max(0.0, slot - time.monotonic()))
        probing_under_load = simulator.process.poll() is None
        simulator.process.wait()
        _stop(simulator)
    overloads = _overload_latencies(config, started)
    receiver.shutdown()

    print(
        f"SEGS alert benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"load: {config.meters} meters every {config.interval_s:g} s = "
        f"{config.offered_rate:,.0f} readings/s for {config.duration_s:g} s; "
        f"{len(results)} probes, {'all' if probing_under_load else 'NOT all'} under load"
    )
    missing = sum(result.alert_s is None or result.notified_s is None for result in results)
    print(f"spike HTTP answer (sent -> 202)     : {_quantiles([r.accept_s for r in results])}")
    print(
        "spike -> alert row committed       : "
        f"{_quantiles([r.alert_s for r in results if r.alert_s is not None])}"
    )
    print(
        "spike -> webhook received          : "
        f"{_quantiles([r.notified_s for r in results if r.notified_s is not None])}"
    )
    print(f"probes without alert or webhook    : {missing}")
    print(f"overload alerts (flush period {config.env().get('SEGS_FLUSH_INTERVAL_S', '5')} s):")
    for region, lag, flush_lag in overloads:
        print(
            f"  {region:<18} raised {lag:6.3f} s after its 2nd window's commit "
            f"(that window committed {flush_lag:.1f} s after its end)"
        )
    if not overloads:
        print("  none raised (too few meters to overload a region?)")
    print(f"logs in {logs}")
    return 0 if results and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
