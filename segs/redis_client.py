"""The shared Redis client for windows, dedupe marks and caches."""

from __future__ import annotations

from functools import lru_cache

import redis

from segs.config import get_settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """Return the process-wide client; short timeouts so an outage becomes a 503, not a hang."""
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
