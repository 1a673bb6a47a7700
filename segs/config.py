"""One typed settings object, read once from the environment and shared by Flask and Celery.

Every setting has an environment variable and a documented default (README, "Configuration").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

ENVIRONMENTS = ("development", "testing", "production")


class SettingsError(ValueError):
    """An environment variable holds a value SEGS cannot use."""


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _str(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`load_settings`, never by hand in app code."""

    database_url: str = "postgresql+psycopg:///segs"
    redis_url: str = "redis://localhost:6379/0"
    broker_url: str = "redis://localhost:6379/1"
    shards: int = 8
    environment: str = "development"
    jwt_secret_key: str | None = None

    # Ingestion
    max_batch_readings: int = 1000
    max_body_bytes: int = 2 * 1024 * 1024
    max_reading_age_s: int = 7 * 24 * 3600
    max_future_skew_s: int = 300
    dedupe_mark_ttl_s: int = 300
    max_queue_backlog: int = 2000
    backlog_check_interval_s: float = 1.0
    retry_after_s: int = 2

    # Windows and flushing
    window_grace_s: int = 10
    flush_interval_s: float = 5.0
    applied_mark_ttl_s: int = 2 * 24 * 3600
    visibility_timeout_s: int = 600
    pending_ledger: bool = True
    requeue_after_s: int = 60

    # Retention (whole partitions are dropped)
    raw_retention_days: int = 7
    agg_1m_retention_days: int = 30
    agg_15m_retention_days: int = 365
    partition_premake_days: int = 3

    # Observability
    worker_metrics_port: int = 9808

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def reading_queues(self) -> list[str]:
        return [f"readings.{shard}" for shard in range(self.shards)]


def _pending_ledger(broker_url: str) -> bool:
    """On by default with the Redis broker, which can lose a killed worker's message."""
    raw = os.environ.get("SEGS_PENDING_LEDGER", "auto").lower()
    if raw == "auto":
        return broker_url.startswith(("redis", "rediss"))
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"SEGS_PENDING_LEDGER must be auto, on or off, got {raw!r}")


def load_settings() -> Settings:
    """Read the settings from the environment, failing loudly on unusable values."""
    environment = _str("SEGS_ENV", "development")
    broker_url = _str("CELERY_BROKER_URL", Settings.broker_url)
    settings = Settings(
        database_url=_str("DATABASE_URL", Settings.database_url),
        redis_url=_str("REDIS_URL", Settings.redis_url),
        broker_url=broker_url,
        shards=_int("SEGS_SHARDS", Settings.shards, minimum=1),
        environment=environment,
        jwt_secret_key=os.environ.get("JWT_SECRET_KEY") or None,
        max_batch_readings=_int("SEGS_MAX_BATCH_READINGS", Settings.max_batch_readings, 1),
        max_body_bytes=_int("SEGS_MAX_BODY_BYTES", Settings.max_body_bytes, 1024),
        max_reading_age_s=_int("SEGS_MAX_READING_AGE_S", Settings.max_reading_age_s, 60),
        max_future_skew_s=_int("SEGS_MAX_FUTURE_SKEW_S", Settings.max_future_skew_s),
        dedupe_mark_ttl_s=_int("SEGS_DEDUPE_MARK_TTL_S", Settings.dedupe_mark_ttl_s, 1),
        max_queue_backlog=_int("SEGS_MAX_QUEUE_BACKLOG", Settings.max_queue_backlog, 1),
        backlog_check_interval_s=_float(
            "SEGS_BACKLOG_CHECK_INTERVAL_S", Settings.backlog_check_interval_s
        ),
        retry_after_s=_int("SEGS_RETRY_AFTER_S", Settings.retry_after_s, 1),
        window_grace_s=_int("SEGS_WINDOW_GRACE_S", Settings.window_grace_s),
        flush_interval_s=_float("SEGS_FLUSH_INTERVAL_S", Settings.flush_interval_s, 0.5),
        applied_mark_ttl_s=_int("SEGS_APPLIED_MARK_TTL_S", Settings.applied_mark_ttl_s, 60),
        visibility_timeout_s=_int("SEGS_VISIBILITY_TIMEOUT_S", Settings.visibility_timeout_s, 1),
        pending_ledger=_pending_ledger(broker_url),
        requeue_after_s=_int("SEGS_REQUEUE_AFTER_S", Settings.requeue_after_s, 1),
        raw_retention_days=_int("SEGS_RAW_RETENTION_DAYS", Settings.raw_retention_days, 1),
        agg_1m_retention_days=_int("SEGS_AGG_1M_RETENTION_DAYS", Settings.agg_1m_retention_days, 1),
        agg_15m_retention_days=_int(
            "SEGS_AGG_15M_RETENTION_DAYS", Settings.agg_15m_retention_days, 1
        ),
        partition_premake_days=_int(
            "SEGS_PARTITION_PREMAKE_DAYS", Settings.partition_premake_days, 1
        ),
        worker_metrics_port=_int("SEGS_WORKER_METRICS_PORT", Settings.worker_metrics_port),
    )
    if environment not in ENVIRONMENTS:
        raise SettingsError(
            f"SEGS_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
        )
    if settings.max_reading_age_s > settings.raw_retention_days * 86400:
        raise SettingsError(
            "SEGS_MAX_READING_AGE_S must not exceed SEGS_RAW_RETENTION_DAYS, or a late duplicate "
            "could arrive after its original was dropped and be counted twice"
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read on first use."""
    return load_settings()
