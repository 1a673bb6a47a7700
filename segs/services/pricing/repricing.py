"""Repricing, from start to finish: run the engine, refresh the cache, announce the changes.

The worker's task (after a flush and from beat) and the admin's rule and override changes all
reprice through :func:`reprice`. How a change is announced is the caller's business (the tasks
queue it for the notification workers), so this module needs neither Celery nor Flask.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

import redis
from sqlalchemy.orm import Session

from segs.config import Settings
from segs.services.pricing.engine import PublishedChange
from segs.services.pricing.engine import recalculate_prices
from segs.services.pricing.price_cache import cache_current

Sessions = Callable[[], AbstractContextManager[Session]]
Announce = Callable[[PublishedChange], None]


def reprice(
    sessions: Sessions,
    client: redis.Redis,
    settings: Settings,
    regions: list[str] | None,
    now: datetime,
    announce: Announce,
) -> list[PublishedChange]:
    """Reprice *regions* (all if None) at *now* and return every change published.

    The engine's changes are committed before the cache is refreshed from them, and only then
    are the ones worth announcing handed to *announce*, so nobody hears of a price that could
    still be rolled back.
    """
    with sessions() as session:
        changes = recalculate_prices(
            session,
            regions,
            now,
            settings.tariff_publish_threshold,
            settings.tariff_band_hysteresis,
        )
    if changes:
        with sessions() as session:
            cache_current(
                session, client, [change.region for change in changes], settings.tariff_cache_ttl_s
            )
        for change in changes:
            if change.worth_announcing:
                announce(change)
    return changes
