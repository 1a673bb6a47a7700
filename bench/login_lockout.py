"""``python -m bench.login_lockout``: the failed-login delays and the cost of a login.

It runs the real Flask app in process (test client) against its own PostgreSQL database and
Redis database, and reports:
- which failed login on one account is the first refused (429), with its Retry-After, and that
  the right password is refused too while the lock holds;
- the latency of a successful login (argon2 verification, token minting, the refresh token
  row), p50/p95 over a series of logins with the configured argon2 cost.
The general per-address and per-account auth limits are raised for the run, so the only limit
that can refuse a login is the failed-login one being measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

DEFAULT_DATABASE_URL = "postgresql+psycopg:///segs_bench_auth"
DEFAULT_REDIS_URL = "redis://localhost:6379/12"
PASSWORD = "bench-password-2024"  # noqa: S105 - the throwaway bench account's


@dataclass(frozen=True)
class Attempt:
    number: int
    status: int
    retry_after: str | None
    elapsed_s: float


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.login_lockout",
        description="Count failed logins until the account locks, then time successful logins.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--attempts", type=int, default=12, help="failed logins to send")
    parser.add_argument("--logins", type=int, default=50, help="successful logins to time")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="its own database")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="its own Redis database")
    args = parser.parse_args(argv)
    if args.attempts < 1 or args.logins < 2:
        parser.error("--attempts must be >= 1 and --logins >= 2")
    return args


def _configure(args: argparse.Namespace) -> None:
    """Point the settings at the benchmark's own stores; call before segs reads them."""
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "SEGS_ENV": "testing",
            "SEGS_RATE_LIMIT_AUTH_PER_IP": "100000 per minute",
            "SEGS_RATE_LIMIT_AUTH_PER_ACCOUNT": "100000 per minute",
            "SEGS_RATE_LIMIT_DEFAULT": "100000 per minute",
        }
    )


def _reset_and_create_accounts(emails: list[str]) -> None:
    from sqlalchemy import text

    from segs.config import get_settings
    from segs.db import session_scope
    from segs.redis_client import configure_redis
    from segs.redis_client import get_redis
    from segs.services.accounts.passwords import Passwords
    from segs.web.cli import migrate_database

    migrate_database(get_settings())
    configure_redis(get_settings())
    get_redis().flushdb()  # the benchmark's own Redis database: limits and revocations
    password_hash = Passwords(get_settings()).hash(PASSWORD)
    with session_scope() as session:
        session.execute(text("TRUNCATE refresh_tokens, verification_codes, users CASCADE"))
        for email in emails:
            session.execute(
                text(
                    "INSERT INTO users (id, email, name, role, region, password_hash, "
                    "email_verified_at) VALUES (:id, :email, 'Bench', 'USER', NULL, :hash, now())"
                ),
                {"id": uuid.uuid4(), "email": email, "hash": password_hash},
            )


def _login(client: Any, email: str, password: str) -> tuple[int, str | None, float]:
    started = time.perf_counter()
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    elapsed = time.perf_counter() - started
    return response.status_code, response.headers.get("Retry-After"), elapsed


def run(args: argparse.Namespace) -> int:
    """Run both measurements and print the report; non-zero if the lockout misbehaves."""
    _configure(args)
    from segs.config import get_settings
    from segs.web import create_app

    settings = get_settings()
    locked_email, timed_email = "locked@bench.test", "timed@bench.test"
    _reset_and_create_accounts([locked_email, timed_email])
    client = create_app(settings).test_client()

    started = time.perf_counter()
    attempts = []
    for number in range(1, args.attempts + 1):
        status, retry_after, _ = _login(client, locked_email, "wrong-password-0")
        attempts.append(Attempt(number, status, retry_after, time.perf_counter() - started))
    right_status, right_retry_after, _ = _login(client, locked_email, PASSWORD)
    first_refused = next((a for a in attempts if a.status == 429), None)

    _login(client, timed_email, PASSWORD)  # warm up: connections, code paths
    latencies_ms = []
    for _ in range(args.logins):
        status, _, elapsed = _login(client, timed_email, PASSWORD)
        if status != 200:
            print(f"a successful login answered {status}", file=sys.stderr)
            return 1
        latencies_ms.append(elapsed * 1000)
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")

    print("SEGS login lockout benchmark")
    print(f"  host: {platform.node()} ({os.cpu_count()} CPUs), Python {platform.python_version()}")
    print(f"  database {settings.database_url}, Redis {settings.redis_url}")
    print(
        f"  failed logins: {settings.login_free_failures_per_client} free per account and "
        f"address, then delays doubling up to {settings.login_max_delay_per_client_s} s"
    )
    print(
        f"  argon2id: time_cost={settings.argon2_time_cost}, "
        f"memory={settings.argon2_memory_kib} KiB, parallelism=1"
    )
    print(f"Failed logins on one account ({args.attempts} sent):")
    for attempt in attempts:
        note = f", Retry-After {attempt.retry_after} s" if attempt.status == 429 else ""
        print(f"  #{attempt.number:>2}: {attempt.status} at +{attempt.elapsed_s:.3f} s{note}")
    if first_refused is None:
        print("  no attempt was refused")
    else:
        print(
            f"  first refused: attempt #{first_refused.number}, "
            f"{first_refused.elapsed_s:.3f} s after the first; retry after "
            f"{first_refused.retry_after} s"
        )
    print(f"  then the right password: {right_status} (Retry-After {right_retry_after} s)")
    print(f"Successful logins ({args.logins}, one client, sequential):")
    print(
        f"  p50 {cuts[49]:.1f} ms, p95 {cuts[94]:.1f} ms, min {min(latencies_ms):.1f} ms, "
        f"max {max(latencies_ms):.1f} ms"
    )
    return 0 if first_refused is not None and right_status == 429 else 1


def main(argv: list[str] | None = None) -> int:
    return run(_parse(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
