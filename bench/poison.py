"""``python -m bench.poison``: how much poison batches delay honest ones.

It starts the same stack as ``python -m bench`` (gunicorn API, Celery workers and beat) against
its own database and Redis databases, runs the simulator's HTTP load, and every
``--probe-every`` seconds POSTs a probe reading through the API and times it from the 202 until
its row is in ``raw_readings`` (polled every 5 ms). Two phases of equal length follow each
other under the same load: first without poison, then with ``--poison-rate`` poison batches a
second published straight into the reading queues, as a bug or a hostile broker client would:
each holds a meter id with a NUL, which PostgreSQL refuses, so each is tried
SEGS_DATA_ERROR_ATTEMPTS times and becomes a dead letter. It prints the probes' delay in both
phases and whether the poison phase's p99 stays within one flush period of the clean one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

from bench.pipeline import _run_setup
from bench.pipeline import _spawn
from bench.pipeline import _stack
from bench.pipeline import _stop
from bench.pipeline import add_probe_load_options
from bench.pipeline import configure_in_process_segs
from bench.pipeline import create_ingestion_key
from bench.pipeline import probe_load_config
from bench.pipeline import quantiles
from bench.pipeline import simulator_command

PROBE_REGION = "Pune-West"
POLL_S = 0.005


def _probe(api: str, key: str, conn: psycopg.Connection, meter: str, timeout: float) -> float:
    """Seconds from the 202 until the probe's reading is archived."""
    moment = datetime.now(UTC)
    reading = {
        "readingId": str(uuid.uuid4()),
        "meterId": meter,
        "region": PROBE_REGION,
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "powerKw": 1.0,
    }
    response = httpx.post(
        f"{api}/telemetry", json=reading, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    accepted = time.monotonic()
    if response.status_code != 202:
        raise RuntimeError(f"probe {meter} answered {response.status_code}: {response.text}")
    deadline = accepted + timeout
    while time.monotonic() < deadline:
        found = conn.execute(
            "SELECT 1 FROM raw_readings WHERE meter_id = %s AND ts = %s", (meter, moment)
        ).fetchone()
        if found:
            return time.monotonic() - accepted
        time.sleep(POLL_S)
    return float("inf")


def _poison(shards: int, count: int) -> None:
    """Publish *count* poison batches, spread over the reading queues."""
    from segs.domain.readings import MICRO
    from segs.domain.readings import to_epoch_us
    from segs.domain.sharding import shard_for
    from segs.tasks.readings import publish_batches

    now_us = to_epoch_us(datetime.now(UTC))
    for _ in range(count):
        meter = f"POISON\x00{uuid.uuid4().hex[:8]}"
        row = [meter, PROBE_REGION, "poison", now_us - 60 * MICRO, MICRO]
        row.extend([None] * 6)
        publish_batches({shard_for(meter, shards): [row]}, now_us)


def _phase(
    api: str,
    key: str,
    conn: psycopg.Connection,
    *,
    seconds: float,
    probe_every: float,
    poison_rate: float,
    shards: int,
) -> list[float]:
    delays: list[float] = []
    ends = time.monotonic() + seconds
    owed = 0.0
    while time.monotonic() < ends:
        slot = time.monotonic() + probe_every
        owed += poison_rate * probe_every
        if owed >= 1:
            _poison(shards, int(owed))
            owed -= int(owed)
        delays.append(_probe(api, key, conn, f"PROBE-{len(delays):05d}-{poison_rate:g}", 30.0))
        time.sleep(max(0.0, slot - time.monotonic()))
    return delays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.poison",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--phase", type=float, default=60.0, help="seconds of each phase")
    parser.add_argument("--probe-every", type=float, default=0.5, help="seconds between probes")
    parser.add_argument("--poison-rate", type=float, default=2.0, help="poison batches a second")
    add_probe_load_options(parser, api_port=8079)
    args = parser.parse_args(argv)
    config = probe_load_config(args, args.warmup + 2 * args.phase + 10)
    os.environ.update(config.env())
    configure_in_process_segs()
    from segs.dbadmin import libpq_conninfo

    _run_setup(config)
    key = create_ingestion_key(config.env(), "bench poison")
    logs = Path(tempfile.mkdtemp(prefix="segs-bench-poison-"))
    api = f"http://127.0.0.1:{config.api_port}"
    with _stack(config, logs):
        simulator = _spawn("simulator", simulator_command(config, key), config.env(), logs)
        time.sleep(args.warmup)
        with psycopg.connect(libpq_conninfo(config.database_url), autocommit=True) as conn:
            phase = {"seconds": args.phase, "probe_every": args.probe_every, "shards": args.shards}
            clean = _phase(api, key, conn, poison_rate=0.0, **phase)
            poisoned = _phase(api, key, conn, poison_rate=args.poison_rate, **phase)
            under_load = simulator.process.poll() is None
            time.sleep(10)  # the last poison batches' attempts
            dead = conn.execute("SELECT count(*) FROM dead_letter_batches").fetchone()
        simulator.process.wait()
        _stop(simulator)

    flush_period = float(os.environ.get("SEGS_FLUSH_INTERVAL_S") or 5.0)
    clean_q, poisoned_q = quantiles(clean), quantiles(poisoned)
    print(
        f"SEGS poison benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"load: {config.meters} meters every {config.interval_s:g} s = "
        f"{config.offered_rate:,.0f} readings/s, {config.shards} shard(s); "
        f"{'all' if under_load else 'NOT all'} probes under load; logs in {logs}"
    )
    for name, (p50, p99, worst), count in (
        ("clean", clean_q, len(clean)),
        (f"{args.poison_rate:g} poison batches/s", poisoned_q, len(poisoned)),
    ):
        print(
            f"  {name:<24} probe 202 -> archived: p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms (n={count})"
        )
    print(f"  dead letters: {dead[0] if dead else 0}")
    extra = poisoned_q[1] - clean_q[1]
    verdict = "met" if extra <= flush_period else "NOT met"
    print(
        f"poison adds {extra * 1000:+.0f} ms to the probes' p99 "
        f"(target: at most one flush period, {flush_period:g} s): {verdict}"
    )
    return 0 if extra <= flush_period else 1


if __name__ == "__main__":
    sys.exit(main())
