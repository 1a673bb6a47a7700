"""The Redis-backed stores, built once per process: building one registers its Lua scripts."""

from __future__ import annotations

from functools import lru_cache

from segs.celery_app import app
from segs.redis_client import get_redis
from segs.services.spine.pending import PendingLedger
from segs.services.spine.windows_store import WindowStore


@lru_cache(maxsize=1)
def get_window_store() -> WindowStore:
    return WindowStore(get_redis(), app.segs_settings.shards)


@lru_cache(maxsize=1)
def get_pending_ledger() -> PendingLedger:
    return PendingLedger(get_redis(), app.segs_settings.shards)
