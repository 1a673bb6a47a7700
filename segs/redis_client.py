"""The shared Redis client for windows, dedupe marks and caches: a single Redis or a Cluster.

REDIS_URL may name a single Redis or any node of a Redis Cluster. SEGS_REDIS_CLUSTER=auto (the
default) asks the server (``INFO cluster``); 1 or 0 decide without asking. Both clients offer
the same commands, and every key a script touches carries one hash tag
(segs.services.shared.keyspace), so the code above this module is the same for both.

A process's entry point calls :func:`configure_redis` with its settings; everything else takes
the client from :func:`get_redis`.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any
from typing import cast
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import redis

from segs.config import ProcessPart
from segs.config import Settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def is_cluster(url: str, forced: bool | None) -> bool:
    if forced is not None:
        return forced
    probe = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        return bool(probe.info("cluster").get("cluster_enabled"))
    finally:
        probe.close()


def connect(url: str, cluster: bool, **options: Any) -> redis.Redis:
    """A client for *url*. A RedisCluster routes each command to the node holding its slot; it
    is typed as redis.Redis, whose commands it offers."""
    if cluster:
        return cast(redis.Redis, redis.RedisCluster.from_url(url, **options))
    return redis.Redis.from_url(url, **options)


def cluster_mode(url: str, forced: bool | None) -> bool:
    """Whether *url* is a Redis Cluster node. If Redis does not answer the question (down while
    a process starts), a single Redis is assumed for the process's life: a cluster deployment
    sets SEGS_REDIS_CLUSTER=1 so that it never has to ask."""
    try:
        return is_cluster(url, forced)
    except redis.RedisError:
        logger.warning("Redis did not answer whether it is a cluster; taking it for a single one")
        return False


def limits_storage_uri(url: str, forced: bool | None) -> str:
    """Where Flask-Limiter counts: the same Redis, in the URI form of the ``limits`` library
    (``redis+cluster://host:port`` for a cluster, which has no databases)."""
    if not cluster_mode(url, forced):
        return url
    parts = urlsplit(url)
    return urlunsplit(("redis+cluster", parts.netloc, "", "", ""))


# One client per Redis in a process, however often it is configured (an app per test).
@lru_cache(maxsize=4)
def _client_for(url: str, forced_cluster: bool | None) -> redis.Redis:
    """Short timeouts, so that an outage becomes a 503, not a hang."""
    options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2}
    cluster = cluster_mode(url, forced_cluster)
    if not cluster:
        options["health_check_interval"] = 30
    return connect(url, cluster, **options)


_CLIENT: ProcessPart[redis.Redis] = ProcessPart("segs.redis_client.configure_redis")


def configure_redis(settings: Settings) -> None:
    """Make the Redis of *settings* this process's."""
    _CLIENT.set(_client_for(settings.redis_url, settings.redis_cluster))


def get_redis() -> redis.Redis:
    """Return the process's client."""
    return _CLIENT.get()
