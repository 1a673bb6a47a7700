"""``python -m bench.price_reaction``: how soon a load change that crosses a band is priced.

In its own database, Redis and broker databases, with a real Celery worker subprocess on the
``default`` queue, it repeats: fold readings of one region into a new closed 1-minute window
whose load alternates between 60 % and 80 % (the x1.0 and x1.1 bands, a 10 % move), then run
the flush task body in process (as beat would) and time until the new price is in the
``tariffs`` history: flush -> recalculate_prices task on the worker -> published price. The
figure to compare is beat's flush period (SEGS_FLUSH_INTERVAL_S, 5 s): a change must be priced
before the next flush.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from bench.billing_data import DEFAULT_BROKER_URL
from bench.billing_data import DEFAULT_DATABASE_URL
from bench.billing_data import DEFAULT_REDIS_URL
from bench.billing_data import configure
from tools import commands

REGION = "Pune-West"
METERS = 20
REPO = Path(__file__).resolve().parents[1]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.price_reaction",
        description="Time from a flush that moves a region across a load band to the new price.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--changes", type=int, default=20, help="band crossings to time")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="its own database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="its own Redis database")
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="its own broker db")
    args = parser.parse_args(argv)
    if not 2 <= args.changes <= 50:
        parser.error("--changes must be 2 to 50")
    return args


def _start_worker(log_path: Path) -> subprocess.Popen[bytes]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            commands.celery(
                "worker",
                "-Q",
                "default",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "-n",
                f"{name}@%h",
            ),
            cwd=REPO,
            env=dict(os.environ, SEGS_WORKER_METRICS_PORT="0"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc


def _rows(capacity_kw: float, load: int, moment: datetime) -> list[list[object]]:
    from segs.domain.readings import MICRO
    from segs.domain.readings import to_epoch_us

    power_us = int(capacity_kw * load / 100 / METERS * MICRO)
    return [
        [f"PR-{index:03d}", REGION, str(uuid.uuid4()), to_epoch_us(moment), power_us] + [None] * 6
        for index in range(METERS)
    ]


def run(args: argparse.Namespace) -> int:
    configure(args.database_url, args.redis_url, args.broker_url)
    os.environ["SEGS_WINDOW_GRACE_S"] = "1"
    from segs.config import get_settings
    from segs.db import raw_connection
    from segs.redis_client import configure_redis
    from segs.redis_client import get_redis
    from segs.services.spine.archive import archive_and_fold
    from segs.services.spine.windows_store import WindowStore
    from segs.tasks.alerts import get_detection_store
    from segs.tasks.windows import flush_closed_windows
    from segs.web.cli import migrate_database

    settings = get_settings()
    migrate_database(settings)
    configure_redis(settings)
    get_redis().flushdb()
    with raw_connection() as conn:
        conn.execute("DELETE FROM tariffs WHERE region = %s", (REGION,))
        conn.execute("DELETE FROM regional_aggregates_1m WHERE region = %s", (REGION,))
        conn.execute("DELETE FROM aggregates_1m WHERE region = %s", (REGION,))
        capacity = conn.execute(
            "SELECT capacity_kw FROM regions WHERE name = %s", (REGION,)
        ).fetchone()
        conn.commit()
    assert capacity is not None

    def history_length() -> int:
        with raw_connection() as conn:
            found = conn.execute(
                "SELECT count(*) FROM tariffs WHERE region = %s", (REGION,)
            ).fetchone()
            conn.commit()
        assert found is not None
        return int(found[0])

    log_path = Path(tempfile.mkdtemp(prefix="segs-bench-")) / "worker.log"
    worker = _start_worker(log_path)
    reactions = []
    try:
        # One new closed minute per change, oldest first, so each is the region's newest load.
        first = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(
            minutes=args.changes + 2
        )
        for step in range(args.changes + 1):
            load = 60 if step % 2 == 0 else 80
            with raw_connection() as conn:
                archive_and_fold(
                    conn,
                    WindowStore(get_redis(), settings.shards),
                    get_detection_store(),
                    settings,
                    batch_id=str(uuid.uuid4()),
                    rows=_rows(
                        float(capacity[0]), load, first + timedelta(minutes=step, seconds=5)
                    ),
                    received_at_us=0,
                    now=datetime.now(UTC),
                )
            before = history_length()
            started = time.perf_counter()
            flush_closed_windows.run()
            while history_length() == before:
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"no new price after 30 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.01)
            if step:  # the first price is the initial one, not a crossing
                reactions.append(time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(timeout=20)

    cuts = statistics.quantiles(reactions, n=20, method="inclusive")
    print("SEGS price reaction benchmark")
    print(f"  host: {platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    print(f"  database {settings.database_url}; region {REGION}, {METERS} meters; worker -c 2")
    print(
        f"Band crossings ({len(reactions)}, 60 % <-> 80 % load): flush start -> new price "
        f"published: median {statistics.median(reactions) * 1000:.0f} ms, "
        f"p95 {cuts[18] * 1000:.0f} ms, max {max(reactions) * 1000:.0f} ms"
    )
    print(f"  flush period (SEGS_FLUSH_INTERVAL_S): {settings.flush_interval_s:.1f} s")
    return 0 if max(reactions) < settings.flush_interval_s else 1


def main(argv: list[str] | None = None) -> int:
    return run(_parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
