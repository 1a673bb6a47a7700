"""Partition upkeep and retention."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from celery.utils.log import get_task_logger

from segs.celery_app import app
from segs.db import raw_connection
from segs.services.spine import partitions
from segs.tasks.retries import RETRY_SHORT_OUTAGES

logger = get_task_logger(__name__)


@app.task(
    name="segs.tasks.maintenance.maintain_partitions",
    queue="default",
    acks_late=True,
    **RETRY_SHORT_OUTAGES,
)
def maintain_partitions() -> dict[str, int]:
    """Create the coming partitions, drop expired ones and trim the small tables.

    Safe twice: partitions are made and dropped under an advisory lock, each only if still
    missing or expired, and only rows past retention are deleted; a second run finds nothing to do.
    """
    settings = app.segs_settings
    now = datetime.now(UTC)
    with raw_connection() as conn:
        created = partitions.ensure_partitions(conn, settings, now)
        dropped = partitions.drop_expired_partitions(conn, settings, now)
        deleted = partitions.delete_expired_rows(conn, settings, now)
    return {"created": created, "dropped": len(dropped), "deleted_rows": deleted}
