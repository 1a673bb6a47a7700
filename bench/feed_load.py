"""``python -m bench.feed_load``: does the live feed starve the API?

It starts the API (gunicorn, its two sync workers, deploy/gunicorn.conf.py) and the feed
process (deploy/gunicorn_feed.conf.py) on loopback ports of their own, against the database and
Redis database named on the command line, and times ``GET /health`` and a customer's history
read (24 hours at 15m) on the API, one request at a time:

1. with no stream open (the baseline of the same run);
2. with ``--streams`` live-feed streams open on the feed process, held for the whole phase.

Before issue 15 the feed was served by the API's sync workers, and two open streams held both
of them (/health then took 23 s). Every request goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import httpx

from bench.pipeline import _wait_ready
from tools import commands

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-feed-password-1"  # noqa: S105 - the throwaway bench account's
METER = "BENCH-FEED-0001"
REGION = "Pune-West"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.feed_load",
        description="API latency with live-feed streams open on the feed process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--streams", type=int, default=20, help="live-feed streams held open")
    parser.add_argument("--requests", type=int, default=500, help="requests per kind and phase")
    parser.add_argument("--api-port", type=int, default=18000)
    parser.add_argument("--feed-port", type=int, default=18001)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql+psycopg:///segs_bench_feed"),
        help="its own database (created and migrated if missing)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://localhost:6379/12")
    )
    args = parser.parse_args(argv)
    if args.streams < 1 or args.requests < 10:
        parser.error("--streams must be >= 1 and --requests >= 10")
    return args


def _environment(args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SEGS_ENV": "development",
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "SEGS_RATE_LIMIT_DEFAULT": "1000000 per minute",
        # Streams held for the whole run, by one customer (as the attack did).
        "SEGS_FEED_MAX_S": "600",
        "SEGS_FEED_MAX_STREAMS_PER_ACCOUNT": str(args.streams),
        "SEGS_FEED_CONNECT_RATE": "1000 per minute",
        "SEGS_ARGON2_TIME_COST": "1",
        "SEGS_ARGON2_MEMORY_KIB": "8192",
    }


def _prepare() -> None:
    """Migrate, and give a customer a meter with 24 hours of 15-minute windows."""
    from sqlalchemy import text

    from segs.config import get_settings
    from segs.db import session_scope
    from segs.services.accounts import users
    from segs.services.accounts.audit import SYSTEM
    from segs.services.accounts.passwords import Passwords
    from segs.web.cli import migrate_database

    migrate_database(get_settings())
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    first = now - timedelta(hours=24, minutes=now.minute % 15)
    with session_scope() as session:
        session.execute(text("DELETE FROM aggregates_15m WHERE meter_id = :m"), {"m": METER})
        session.execute(text("DELETE FROM meters WHERE meter_id = :m"), {"m": METER})
        session.execute(text("DELETE FROM users WHERE email = 'feed@bench.test'"))
        account = users.create_user(
            session,
            Passwords(get_settings()),
            SYSTEM,
            users.NewAccount(
                email="feed@bench.test", name="Bench", password=PASSWORD, region=REGION
            ),
        )
        session.execute(
            text(
                "INSERT INTO meters (meter_id, region, owner_id, assigned_at) "
                "VALUES (:m, :r, :u, :since)"
            ),
            {"m": METER, "r": REGION, "u": account.id, "since": first - timedelta(days=1)},
        )
        session.execute(
            text(
                "INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count, "
                "power_sum_kw, avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, "
                "voltage_sum, voltage_count, last_reading_at) "
                "SELECT :m, w, :r, 90, 360, 4, 3, 5, 1, 0, 0, w "
                "FROM generate_series(CAST(:first AS timestamptz), CAST(:last AS timestamptz), "
                "interval '15 minutes') AS w"
            ),
            {"m": METER, "r": REGION, "first": first, "last": now - timedelta(minutes=15)},
        )


def _start(name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = open(ROOT / "var" / f"bench-feed-{name}.log", "wb")  # noqa: SIM115 - kept for the run
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _hold_stream(url: str, token: str, opened: threading.Event, stop: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0]))) as conn:
        conn.sendall(
            f"GET /api/v1/feed HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        conn.settimeout(1)
        received = b""
        while not stop.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            received += chunk
            if b"event: ready" in received:
                opened.set()


def _time(client: httpx.Client, url: str, headers: dict[str, str], count: int) -> list[float]:
    millis = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        millis.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return millis


def _summary(millis: list[float]) -> str:
    cuts = statistics.quantiles(millis, n=100, method="inclusive")
    return f"p50 {cuts[49]:7.2f} ms  p99 {cuts[98]:7.2f} ms  max {max(millis):7.2f} ms"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    env = _environment(args)
    os.environ.update(env)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    (ROOT / "var").mkdir(exist_ok=True)
    _prepare()
    api_url = f"http://127.0.0.1:{args.api_port}"
    feed_url = f"http://127.0.0.1:{args.feed_port}"
    processes = [
        _start("api", commands.api(f"127.0.0.1:{args.api_port}", "--workers", "2"), env),
        _start("feed", commands.feed(f"127.0.0.1:{args.feed_port}"), env),
    ]
    stop = threading.Event()
    try:
        _wait_ready(f"{api_url}/health")
        _wait_ready(f"{feed_url}/health")
        login = httpx.post(
            f"{api_url}/api/v1/auth/login",
            json={"email": "feed@bench.test", "password": PASSWORD},
            timeout=30,
        )
        token = login.json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        history = f"{api_url}/api/v1/meters/{METER}/history"
        results: dict[str, dict[str, list[float]]] = {}
        with httpx.Client(timeout=60) as client:
            # Warm both workers' connection pools before measuring anything.
            _time(client, history, auth, 20)
            results["no stream open"] = {
                "/health": _time(client, f"{api_url}/health", {}, args.requests),
                "history": _time(client, history, auth, args.requests),
            }
            events = [threading.Event() for _ in range(args.streams)]
            holders = [
                threading.Thread(target=_hold_stream, args=(feed_url, token, event, stop))
                for event in events
            ]
            for holder in holders:
                holder.start()
            for event in events:
                if not event.wait(30):
                    raise RuntimeError("a live-feed stream did not open")
            results[f"{args.streams} streams open"] = {
                "/health": _time(client, f"{api_url}/health", {}, args.requests),
                "history": _time(client, history, auth, args.requests),
            }
            still_open = sum(holder.is_alive() for holder in holders)
    finally:
        stop.set()
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)

    print("SEGS live feed vs API latency (python -m bench.feed_load)")
    print(f"  host: {platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    print(f"  date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"  API: gunicorn, 2 sync workers; feed: gunicorn gthread, 1 process; "
        f"{args.requests} sequential requests per kind and phase"
    )
    for phase, kinds in results.items():
        print(f"{phase}:")
        for kind, millis in kinds.items():
            print(f"  {kind:<8} {_summary(millis)}")
    print(f"streams still open at the end of the second phase: {still_open} of {args.streams}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
