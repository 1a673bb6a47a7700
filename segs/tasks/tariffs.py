"""The tariff engine's tasks, and the one place that announces price changes to customers."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from celery.utils.log import get_task_logger

from segs.celery_app import app
from segs.db import session_scope
from segs.redis_client import get_redis
from segs.services.pricing.engine import PublishedChange
from segs.services.pricing.repricing import reprice
from segs.tasks.retries import RETRY_SHORT_OUTAGES

logger = get_task_logger(__name__)

ANNOUNCE_TASK = "segs.tasks.notifications.announce_tariff_change"


def announce(change: PublishedChange) -> None:
    """Queue a published price change for the notification channels (the alerts issue's task)."""
    app.send_task(
        ANNOUNCE_TASK,
        kwargs={
            "region": change.region,
            "previous_price": None if change.previous_price is None else str(change.previous_price),
            "price": str(change.price),
            "effective_from": change.effective_from.astimezone(UTC).isoformat(),
            "reason": change.reason,
        },
        queue="notifications",
    )


def recalculate(regions: list[str] | None) -> list[PublishedChange]:
    """Reprice *regions* (all if None) now with this process's settings, announcing through
    Celery."""
    settings = app.segs_settings
    return reprice(session_scope, get_redis(), settings, regions, datetime.now(UTC), announce)


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
