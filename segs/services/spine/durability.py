"""What a restart of Redis would lose of the readings the API accepted.

With RabbitMQ (durable queues, publisher confirms) an accepted batch lives in the broker until a
worker has folded it, whatever happens to Redis. With the Redis broker it lives in Redis: the
task message in the broker's Redis, its rows in the pending ledger at REDIS_URL. A Redis without
an append-only file loses them when it restarts; one that syncs the file every second
(``appendfsync everysec``, Redis's default) loses up to about a second of them; one that syncs
every write (``appendfsync always``) loses none.
"""

from __future__ import annotations

import redis


def redis_broker_risk(broker_url: str, ledger_url: str, *, addresses: bool = True) -> str | None:
    """What a Redis restart would cost accepted readings, or None when nothing: RabbitMQ, or
    Redis servers that sync every write. Servers that cannot be asked are left to the
    readiness checks. Without *addresses* the servers are named by their role, not by host and
    port (for answers anyone may read)."""
    if not broker_url.startswith(("redis", "rediss")):
        return None
    risks = []
    for url in dict.fromkeys((broker_url, ledger_url)):
        if addresses:
            server = f"the Redis at {_where(url)}"
        else:
            server = "the broker's Redis" if url == broker_url else "the Redis of REDIS_URL"
        risk = _server_risk(url, server)
        if risk:
            risks.append(risk)
    if not risks:
        return None
    return (
        f"{'; '.join(risks)}. Readings answered 202 wait in Redis until a worker folds them "
        "(with the Redis broker): use RabbitMQ, or Redis with appendonly yes and "
        "appendfsync always (README, 'Durability')"
    )


def _server_risk(url: str, server: str) -> str | None:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        config = {_text(key): _text(value) for key, value in client.config_get("append*").items()}
    except redis.ResponseError:
        # CONFIG can be renamed or refused (managed Redis): say that it is unknown.
        return f"the persistence of {server} is unknown (CONFIG refused)"
    except redis.RedisError:
        return None
    finally:
        client.close()
    if config.get("appendonly") != "yes":
        return f"{server} keeps no append-only file (appendonly no)"
    if config.get("appendfsync") != "always":
        return (
            f"{server} syncs its append-only file "
            f"{config.get('appendfsync', 'everysec')}, not always"
        )
    return None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _where(url: str) -> str:
    """Host, port and database of a Redis URL, without its credentials."""
    connection = redis.connection.parse_url(url)
    host = connection.get("host", "localhost")
    return f"{host}:{connection.get('port', 6379)}/{connection.get('db', 0)}"
