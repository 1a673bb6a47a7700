"""Check that PostgreSQL, Redis and RabbitMQ answer; say how to start any that does not.

Standard library only, so it runs before the virtualenv exists. Exits 1 if any is down.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

START_HINTS = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": (
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
    ),
    "RabbitMQ": "rabbitmq-server -detached",
}


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _postgres_up(url: str) -> bool:
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    if parts.hostname:
        return _tcp_open(parts.hostname, parts.port or 5432)
    # No host: libpq uses the local socket directory.
    socket_path = "/var/run/postgresql/.s.PGSQL.5432"
    if not os.path.exists(socket_path):
        return _tcp_open("127.0.0.1", 5432)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        try:
            sock.connect(socket_path)
            return True
        except OSError:
            return False


def _url_up(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    return _tcp_open(parts.hostname or "localhost", parts.port or default_port)


def main() -> int:
    checks = {
        "PostgreSQL": _postgres_up(os.environ.get("DATABASE_URL") or "postgresql+psycopg:///segs"),
        "Redis": _url_up(os.environ.get("REDIS_URL") or "redis://localhost:6379/0", 6379),
        # The test suite runs on both brokers, so RabbitMQ is always checked.
        "RabbitMQ": _url_up("amqp://guest:guest@localhost:5672//", 5672),
    }
    down = [name for name, up in checks.items() if not up]
    for name in down:
        print(f"{name} is not reachable; start it with: {START_HINTS[name]}", file=sys.stderr)
    return 1 if down else 0


if __name__ == "__main__":
    sys.exit(main())
