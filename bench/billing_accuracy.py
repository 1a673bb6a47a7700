"""``python -m bench.billing_accuracy``: every invoice of a test month against a recomputation.

In its own database it adds a region in a DST time zone (Europe/London; October has a 25-hour
day), N customer meters with one or two readings in every 15-minute window of the local month
(and one just before it), and a tariff history with a change in the middle of an interval a
third into the month and a two-day override in the middle. The 15-minute aggregates are built
from raw_readings with the flush's own formulas (one INSERT ... SELECT, not the Redis path: the
flush is tested on its own). The invoices are then made by the production billing run
(segs.services.pricing.billing_run.run_billing) and each is compared, to the paisa and line by line,
with bench.billing_check's independent recomputation from raw_readings and the tariff history.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from bench.billing_check import differences
from bench.billing_check import expected_invoices
from bench.billing_check import stored_invoices
from bench.billing_data import DEFAULT_BROKER_URL
from bench.billing_data import DEFAULT_DATABASE_URL
from bench.billing_data import DEFAULT_REDIS_URL
from bench.billing_data import add_customers
from bench.billing_data import add_history
from bench.billing_data import configure
from bench.billing_data import month_bounds
from bench.billing_data import prepare_database

REGION = "Bench-London"
TIMEZONE = "Europe/London"

_RAW_READINGS = """
INSERT INTO raw_readings (meter_id, ts, reading_id, region, power_kw, energy_kwh, batch_id,
                          received_at)
SELECT m.meter_id, w + make_interval(secs => 30 + k * 400), md5(m.meter_id || w::text || k),
       m.region, round((random() * 9)::numeric, 6), round((random() * 2.5)::numeric, 6),
       '00000000-0000-0000-0000-000000000000'::uuid, now()
FROM meters m
CROSS JOIN generate_series(%(first)s::timestamptz, %(last)s::timestamptz,
                           interval '15 minutes') AS w
CROSS JOIN generate_series(0, 1) AS k
WHERE m.region = %(region)s AND (k = 0 OR random() < 0.3)
UNION ALL
-- 23:50 local on the last day before the month: the previous month's, never billed here.
SELECT m.meter_id, %(first)s::timestamptz - interval '10 minutes', md5(m.meter_id), m.region,
       5, 9, '00000000-0000-0000-0000-000000000000'::uuid, now()
FROM meters m WHERE m.region = %(region)s
"""

# The flush's rules (segs.services.spine.flush): sums, mean power rounded to 6 places, min/max.
_AGGREGATES_FROM_RAW = """
INSERT INTO aggregates_15m (meter_id, window_start, region, reading_count, power_sum_kw,
    avg_power_kw, min_power_kw, max_power_kw, energy_kwh_sum, voltage_sum, voltage_count,
    voltage_avg, last_reading_at, flush_count, updated_at)
SELECT meter_id, date_bin(interval '15 minutes', ts, timestamptz 'epoch'), region, count(*),
       sum(power_kw), round(sum(power_kw) / count(*), 6), min(power_kw), max(power_kw),
       coalesce(sum(energy_kwh), 0), 0, 0, NULL, max(ts), 1, now()
FROM raw_readings WHERE region = %(region)s
GROUP BY 1, 2, 3
"""


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.billing_accuracy",
        description="Compare every stored invoice of a generated month with an independent "
        "recomputation from raw_readings and the tariff history.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=1000, help="customer meters")
    parser.add_argument("--period", default="2026-10", help="the month, YYYY-MM")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="its own database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="its own Redis database")
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="its own broker db")
    args = parser.parse_args(argv)
    if args.meters < 1:
        parser.error("--meters must be >= 1")
    return args


def run(args: argparse.Namespace) -> int:
    configure(args.database_url, args.redis_url, args.broker_url)
    from segs.config import get_settings
    from segs.db import configure_database
    from segs.db import raw_connection
    from segs.services.pricing.billing_run import run_billing

    settings = get_settings()
    configure_database(settings)
    start, end = month_bounds(args.period, TIMEZONE)
    prepare_database(end)
    started = time.perf_counter()
    with raw_connection() as conn:
        conn.execute(
            "INSERT INTO regions (name, timezone, capacity_kw, demand_charge_per_kw) "
            "VALUES (%s, %s, 10000, 50) ON CONFLICT (name) DO NOTHING",
            (REGION, TIMEZONE),
        )
        add_customers(conn, REGION, "ACC", args.meters)
        add_history(conn, REGION, start, end)
        conn.execute(
            _RAW_READINGS,
            {"first": start, "last": end - timedelta(minutes=15), "region": REGION},
        )
        conn.execute(_AGGREGATES_FROM_RAW, {"region": REGION})
        conn.commit()
        readings = conn.execute(
            "SELECT count(*) FROM raw_readings WHERE region = %s", (REGION,)
        ).fetchone()
        conn.commit()
    generated_s = time.perf_counter() - started

    with raw_connection() as conn:
        started = time.perf_counter()
        report = run_billing(
            conn,
            args.period,
            tax_rate=settings.billing_tax_rate,
            due_days=settings.billing_due_days,
            now=datetime.now(UTC),
            regions=[REGION],
        )
        billed_s = time.perf_counter() - started
        started = time.perf_counter()
        expected = expected_invoices(conn, REGION, args.period, settings.billing_tax_rate)
        stored = stored_invoices(conn, REGION, args.period)
        checked_s = time.perf_counter() - started
        tariffs = conn.execute(
            "SELECT count(*) FROM tariffs WHERE region = %s", (REGION,)
        ).fetchone()
    problems = differences(expected, stored)
    lines = sum(len(item.lines) for item in stored.values())
    assert readings is not None and tariffs is not None

    print("SEGS billing accuracy benchmark")
    print(f"  host: {platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    print(f"  database {settings.database_url}; region {REGION} ({TIMEZONE}), {args.period}")
    print(
        f"  {args.meters} meters, {readings[0]} raw readings, {tariffs[0]} tariff intervals "
        f"(a mid-interval change and an override); generated in {generated_s:.1f} s"
    )
    print(f"  billing run: {report.created} invoices, {lines} energy lines in {billed_s:.1f} s")
    print(f"  independent recomputation and comparison: {checked_s:.1f} s")
    print(
        f"Invoices equal to the recomputation, to the paisa and line by line: "
        f"{len(expected) - len({p.split('.')[0].split(':')[0] for p in problems})} of "
        f"{len(expected)}; differences: {len(problems)}"
    )
    for problem in problems[:10]:
        print(f"  {problem}")
    return 0 if not problems and report.created == args.meters else 1


def main(argv: list[str] | None = None) -> int:
    return run(_parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
