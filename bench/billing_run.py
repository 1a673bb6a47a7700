"""``python -m bench.billing_run``: how long one month of invoices takes for N customer meters.

It generates, in its own database, N customer meters spread over the 10 regions, one
15-minute aggregate per meter and window for a whole local month (10,000 meters: ~30 million
rows), and a tariff history per region with a mid-month change and an override. Then it times
the production billing run (segs.services.pricing.billing_run.run_billing, the Celery task's body),
which must create one invoice per meter. Generation is not timed; --reuse skips it when the
previous run's data for the same meters and month is still there.
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

from bench.billing_data import DEFAULT_BROKER_URL
from bench.billing_data import DEFAULT_DATABASE_URL
from bench.billing_data import DEFAULT_REDIS_URL
from bench.billing_data import FILL_AGGREGATES_15M
from bench.billing_data import add_customers
from bench.billing_data import add_history
from bench.billing_data import configure
from bench.billing_data import month_bounds
from bench.billing_data import prepare_database

INTERVAL_S = 900


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.billing_run",
        description="Time one month's billing run over generated 15-minute data.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--meters", type=int, default=10_000, help="customer meters in all")
    parser.add_argument("--period", default="2026-10", help="the month to bill, YYYY-MM")
    parser.add_argument("--reuse", action="store_true", help="keep the data of the last run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="its own database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="its own Redis database")
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="its own broker db")
    args = parser.parse_args(argv)
    if args.meters < 10:
        parser.error("--meters must be >= 10")
    return args


def _generate(args: argparse.Namespace, regions: list[tuple[str, str]]) -> float:
    from segs.db import raw_connection

    latest_end = max(month_bounds(args.period, timezone)[1] for _, timezone in regions)
    prepare_database(latest_end)
    started = time.perf_counter()
    per_region = args.meters // len(regions)
    with raw_connection() as conn:
        for index, (region, timezone) in enumerate(regions):
            count = per_region + (1 if index < args.meters % len(regions) else 0)
            prefix = f"BR{index:02d}"
            add_customers(conn, region, prefix, count)
            start, end = month_bounds(args.period, timezone)
            add_history(conn, region, start, end)
            conn.execute(
                FILL_AGGREGATES_15M,
                {
                    "start": start,
                    "last": end - timedelta(seconds=INTERVAL_S),
                    "region": region,
                    "prefix": f"{prefix}-%",
                },
            )
            conn.commit()
            print(f"  generated {region}: {count} meters", flush=True)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE aggregates_15m")
        conn.execute("ANALYZE meters")
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> int:
    configure(args.database_url, args.redis_url, args.broker_url)
    from segs.config import get_settings
    from segs.db import raw_connection
    from segs.services.pricing.billing_run import run_billing
    from segs.web.cli import migrate_database

    settings = get_settings()
    migrate_database(settings)
    with raw_connection() as conn:
        regions = [
            (name, timezone)
            for name, timezone in conn.execute(
                "SELECT name, timezone FROM regions WHERE name NOT LIKE 'Test-%%' ORDER BY name"
            ).fetchall()
        ]
    print("SEGS billing run benchmark")
    print(f"  host: {platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    print(f"  database {settings.database_url}; {args.meters} meters over {len(regions)} regions")
    if args.reuse:
        print("  reusing the data of the previous run")
    else:
        generated_s = _generate(args, regions)
        print(f"  data generated in {generated_s:.1f} s (not part of the figure)")
    with raw_connection() as conn:
        conn.execute("DELETE FROM invoices WHERE period = %s", (args.period,))
        rows = conn.execute(
            "SELECT count(*) FROM aggregates_15m a JOIN meters m USING (meter_id) "
            "WHERE m.meter_id LIKE 'BR%%'"
        ).fetchone()
        conn.commit()
        started = time.perf_counter()
        report = run_billing(
            conn,
            args.period,
            tax_rate=settings.billing_tax_rate,
            due_days=settings.billing_due_days,
            now=datetime.now(UTC),
        )
        elapsed = time.perf_counter() - started
        lines = conn.execute(
            "SELECT count(*) FROM invoice_line_items l JOIN invoices i ON i.id = l.invoice_id "
            "WHERE i.period = %s",
            (args.period,),
        ).fetchone()
    assert rows is not None and lines is not None
    print(f"  15-minute rows in the month: {rows[0]}")
    print(
        f"Billing run for {args.period}: {report.created} invoices ({lines[0]} line items) for "
        f"{report.meters} meters in {report.regions} regions: {elapsed:.1f} s"
    )
    ok = report.created == args.meters
    if not ok:
        print(f"  expected {args.meters} invoices", file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return run(_parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
