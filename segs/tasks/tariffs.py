"""The tariff engine's tasks, and the one place that announces price changes to customers."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from celery.utils.log import get_task_logger

from segs.celery_app import app
from segs.config import get_settings
from segs.db import session_scope
from segs.redis_client import get_redis
from segs.services.pricing import tariffs
from segs.services.pricing.tariffs import PublishedChange
from segs.tasks.retries import RETRY_SHORT_OUTAGES

logger = get_task_logger(__name__)

ANNOUNCE_TASK = "segs.tasks.notifications.announce_tariff_change"


def announce(changes: list[PublishedChange]) -> None:
    """Send each published price change to the notification channels (the alerts issue's task).

    A new interval at the same price (the first measured load re-basing an unchanged price)
    changes nothing a customer pays, so it is not announced.
    """
    for change in changes:
        if change.triggered_by == "load" and change.previous_price == change.price:
            continue
        app.send_task(
            ANNOUNCE_TASK,
            kwargs={
                "region": change.region,
                "previous_price": None
                if change.previous_price is None
                else str(change.previous_price),
                "price": str(change.price),
                "effective_from": change.effective_from.astimezone(UTC).isoformat(),
                "reason": change.reason,
            },
            queue="notifications",
        )


def recalculate(regions: list[str] | None) -> list[PublishedChange]:
    """Run the engine now for *regions* (all if None), refresh the cache, announce the changes."""
    settings = get_settings()
    with session_scope() as session:
        changes = tariffs.recalculate_prices(
            session,
            regions,
            datetime.now(UTC),
            settings.tariff_publish_threshold,
            settings.tariff_band_hysteresis,
        )
    if changes:
        with session_scope() as session:
            tariffs.cache_current(
                session,
                get_redis(),
                [change.region for change in changes],
                settings.tariff_cache_ttl_s,
            )
        announce(changes)
    return changes


@app.task(
    name="segs.tasks.tariffs.recalculate_prices",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def recalculate_prices(regions: list[str] | None = None) -> dict[str, int]:
    """Reprice *regions* (all if None) from their newest load, time of use and overrides.

    Safe twice: runs take their regions' rows in turn (FOR NO KEY UPDATE), and a second run at
    the same load finds the price already published, so it changes and announces nothing.
    """
    changes = recalculate(regions)
    for change in changes:
        logger.info("%s: %s per kWh (%s)", change.region, change.price, change.reason)
    return {"changes": len(changes)}
