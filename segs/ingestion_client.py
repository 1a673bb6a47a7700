"""Ingestion wired to the real Redis, broker and database: used by the API and the simulator.

``submit`` answers exactly as ``POST /telemetry/batch`` and ``POST /telemetry`` do, as (status,
body, headers), so the simulator's ``queue`` target behaves like its ``http`` target.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis
from sqlalchemy import select

from segs.config import get_settings
from segs.db import session_scope
from segs.domain.readings import BatchTooLargeError
from segs.domain.readings import BodyShapeError
from segs.domain.readings import decode_batch
from segs.domain.readings import decode_single
from segs.errors import error_body
from segs.models import Region
from segs.redis_client import get_redis
from segs.services.dedupe import RedisDedupeMarks
from segs.services.detection import record_refusal
from segs.services.ingestion import IngestionUnavailableError
from segs.services.ingestion import Ingestor
from segs.tasks.queues import BacklogGuard
from segs.tasks.readings import publish_batch

_REGIONS_TTL_S = 60.0

logger = logging.getLogger(__name__)


class _KnownRegions:
    """Region names from the database, re-read at most once a minute."""

    def __init__(self) -> None:
        self._names: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> frozenset[str]:
        with self._lock:
            if time.monotonic() - self._loaded_at > _REGIONS_TTL_S:
                with session_scope() as session:
                    self._names = frozenset(session.scalars(select(Region.name)))
                self._loaded_at = time.monotonic()
            return self._names


@lru_cache(maxsize=1)
def get_ingestor() -> Ingestor:
    """Return the process-wide ingestor."""
    settings = get_settings()
    return Ingestor(
        settings=settings,
        known_regions=_KnownRegions(),
        marks=RedisDedupeMarks(get_redis(), settings.dedupe_mark_ttl_s),
        publish=publish_batch,
        backlog_exceeded=BacklogGuard(
            settings.reading_queues, settings.max_queue_backlog, settings.backlog_check_interval_s
        ),
    )


def submit(body: bytes, *, single: bool) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Ingest a request body; returns (status, JSON body, headers)."""
    settings = get_settings()
    if len(body) > settings.max_body_bytes:
        return (
            413,
            error_body("PAYLOAD_TOO_LARGE", f"body exceeds {settings.max_body_bytes} bytes"),
            {},
        )
    try:
        batch = (
            decode_single(body)
            if single
            else decode_batch(body, max_items=settings.max_batch_readings)
        )
    except BatchTooLargeError as exc:
        return 413, error_body("PAYLOAD_TOO_LARGE", str(exc)), {}
    except BodyShapeError as exc:
        return 400, error_body("BAD_REQUEST", str(exc)), {}
    try:
        result = get_ingestor().ingest(batch, datetime.now(UTC))
    except IngestionUnavailableError as exc:
        _note_refusal()
        headers = {"Retry-After": str(exc.retry_after)}
        return 503, error_body("SERVICE_UNAVAILABLE", exc.reason), headers
    return result.status, result.body(), {}


def _note_refusal() -> None:
    try:
        record_refusal(get_redis(), time.time())
    except redis.RedisError:
        # Redis itself may be why readings are refused; the sweep cannot run without it either.
        logger.warning("could not record the refusal for the silent-meter sweep")


def submit_batch(body: bytes) -> tuple[int, dict[str, Any]]:
    """Ingest a JSON array of readings, as ``POST /telemetry/batch`` would."""
    status, answer, _ = submit(body, single=False)
    return status, answer
