"""Ingestion wired to the real Redis, broker and database: used by the API and the simulator.

``verify_key`` checks an ingestion key; ``submit`` answers exactly as ``POST /telemetry/batch``
and ``POST /telemetry`` do, as (status, body, headers), so the simulator's ``queue`` target
behaves like its ``http`` target.
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
from sqlalchemy.exc import SQLAlchemyError

from segs.config import ProcessPart
from segs.config import Settings
from segs.config import get_settings
from segs.db import configure_database
from segs.db import raw_connection
from segs.db import session_scope
from segs.domain.ingestion_keys import KeyScope
from segs.domain.ingestion_keys import is_well_formed
from segs.domain.ingestion_keys import key_digest
from segs.domain.ingestion_keys import looks_like_api_token
from segs.domain.readings import BatchTooLargeError
from segs.domain.readings import BodyShapeError
from segs.domain.readings import ReadingCodec
from segs.domain.readings import to_epoch_us
from segs.errors import error_body
from segs.models import Region
from segs.redis_client import configure_redis
from segs.redis_client import get_redis
from segs.services.spine.dedupe import RedisDedupeMarks
from segs.services.spine.detection import record_refusal
from segs.services.spine.ingestion import IngestionUnavailableError
from segs.services.spine.ingestion import Ingestor
from segs.services.spine.ingestion_keys import scope_by_digest
from segs.services.spine.meter_directory import MeterDirectory
from segs.services.spine.registry_cache import RegistryCache
from segs.tasks.queues import BacklogGuard
from segs.tasks.readings import publish_batches

_REGIONS_TTL_S = 60.0

logger = logging.getLogger(__name__)

Answer = tuple[int, dict[str, Any], dict[str, str]]


class KeyRejectedError(Exception):
    """The request carries no usable ingestion key (answered with 401)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def missing(cls) -> KeyRejectedError:
        return cls(
            "INGESTION_KEY_REQUIRED",
            "send an ingestion key as 'Authorization: Bearer <key>', or in the path: "
            "POST /api/v1/<key>/telemetry/batch",
        )

    @classmethod
    def api_token(cls) -> KeyRejectedError:
        return cls(
            "INGESTION_KEY_REQUIRED",
            "an API token is not an ingestion key; meters and head-ends send an ingestion key",
        )

    @classmethod
    def invalid(cls) -> KeyRejectedError:
        # One answer for a malformed, unknown, revoked or expired key: which is nobody's business.
        return cls("INGESTION_KEY_INVALID", "unknown, revoked or expired ingestion key")


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


class _Ingestion:
    """Ingestion's parts built from one Settings: the cache of keys and meters, the codec and
    the ingestor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry_cache = RegistryCache(
            get_redis(),
            settings.ingestion_cache_s,
            settings.meter_cache_size,
            check_every_s=settings.ingestion_check_s,
        )
        self.codec = ReadingCodec(settings.reading_limits, max_items=settings.max_batch_readings)
        self.ingestor = Ingestor(
            settings=settings,
            known_regions=_KnownRegions(),
            directory=MeterDirectory(self.registry_cache, raw_connection),
            marks=RedisDedupeMarks(get_redis(), settings.dedupe_mark_ttl_s),
            publish=publish_batches,
            backlog_exceeded=BacklogGuard(
                settings.reading_queues,
                settings.max_queue_backlog,
                settings.backlog_check_interval_s,
            ),
        )


# Built once per settings in a process, however often it is configured (an app per test).
@lru_cache(maxsize=4)
def _ingestion_for(settings: Settings) -> _Ingestion:
    return _Ingestion(settings)


_INGESTION: ProcessPart[_Ingestion] = ProcessPart("segs.ingestion_client.configure_ingestion")


def configure_ingestion(settings: Settings) -> None:
    """Ingest with *settings*: they make this process's engine, Redis client and ingestion."""
    configure_database(settings)
    configure_redis(settings)
    _INGESTION.set(_ingestion_for(settings))


def get_registry_cache() -> RegistryCache:
    """This process's cache of ingestion keys and meter places."""
    return _INGESTION.get().registry_cache


def get_codec() -> ReadingCodec:
    return _INGESTION.get().codec


def get_ingestor() -> Ingestor:
    """Return the process's ingestor."""
    return _INGESTION.get().ingestor


def verify_key(presented: str | None) -> KeyScope:
    """The scope of the ingestion key a request presents.

    :raises KeyRejectedError: no key, an API token, or a key that is not usable.
    :raises IngestionUnavailableError: Redis or the database is unavailable.
    """
    if not presented:
        raise KeyRejectedError.missing()
    if looks_like_api_token(presented):
        raise KeyRejectedError.api_token()
    if not is_well_formed(presented):
        raise KeyRejectedError.invalid()
    now = datetime.now(UTC)
    ingestion = _INGESTION.get()
    cache = ingestion.registry_cache
    retry_after = ingestion.settings.retry_after_s
    try:
        cache.sync()
    except redis.RedisError as exc:
        raise IngestionUnavailableError("Redis is unavailable", retry_after) from exc
    digest = key_digest(presented)
    scope = cache.keys.get(digest)
    if scope is None:
        if digest in cache.unknown_keys:
            raise KeyRejectedError.invalid()
        try:
            with session_scope() as session:
                scope = scope_by_digest(session, digest, now)
        except SQLAlchemyError as exc:
            raise IngestionUnavailableError("the database is unavailable", retry_after) from exc
        cache.remember_key(digest, scope)
    if scope is None or scope.has_expired(to_epoch_us(now)):
        raise KeyRejectedError.invalid()
    return scope


def submit(body: bytes, *, single: bool, scope: KeyScope) -> Answer:
    """Ingest a request body sent with a key of *scope*; returns (status, JSON body, headers)."""
    ingestion = _INGESTION.get()
    settings = ingestion.settings
    if len(body) > settings.max_body_bytes:
        return (
            413,
            error_body("PAYLOAD_TOO_LARGE", f"body exceeds {settings.max_body_bytes} bytes"),
            {},
        )
    codec = ingestion.codec
    try:
        batch = codec.decode_single(body) if single else codec.decode_batch(body)
    except BatchTooLargeError as exc:
        return 413, error_body("PAYLOAD_TOO_LARGE", str(exc)), {}
    except BodyShapeError as exc:
        return 400, error_body("BAD_REQUEST", str(exc)), {}
    try:
        result = ingestion.ingestor.ingest(batch, scope, datetime.now(UTC))
    except IngestionUnavailableError as exc:
        return unavailable(exc)
    return result.status, result.body(), {}


def unavailable(exc: IngestionUnavailableError) -> Answer:
    """The 503 answer, noted for the silent-meter sweep."""
    _note_refusal()
    headers = {"Retry-After": str(exc.retry_after)}
    return 503, error_body("SERVICE_UNAVAILABLE", exc.reason), headers


def rejected(exc: KeyRejectedError) -> Answer:
    return 401, error_body(exc.code, exc.message), {"WWW-Authenticate": "Bearer"}


def _note_refusal() -> None:
    try:
        record_refusal(get_redis(), time.time())
    except redis.RedisError:
        # Redis itself may be why readings are refused; the sweep cannot run without it either.
        logger.warning("could not record the refusal for the silent-meter sweep")


def submit_batch(body: bytes, key: str) -> tuple[int, dict[str, Any]]:
    """Ingest a JSON array of readings with *key*, as ``POST /telemetry/batch`` would.

    The simulator's way in (its ``queue`` target): a process that configured nothing ingests
    with the environment's settings.
    """
    if not _INGESTION.is_set:
        configure_ingestion(get_settings())
    try:
        scope = verify_key(key)
    except KeyRejectedError as exc:
        status, answer, _ = rejected(exc)
    except IngestionUnavailableError as exc:
        status, answer, _ = unavailable(exc)
    else:
        status, answer, _ = submit(body, single=False, scope=scope)
    return status, answer
