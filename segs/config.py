"""One typed settings object, read once from the environment and shared by Flask and Celery.

Every setting has an environment variable and a documented default (README, "Configuration").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Generic
from typing import TypeVar

from segs.domain.alerts import RELEARN_AFTER
from segs.domain.digests import DigestRule
from segs.domain.incidents import IncidentRule
from segs.domain.ingestion_keys import rate_limit_problem
from segs.domain.readings import HARD_MAX_QUANTITY
from segs.domain.readings import ReadingLimits

ENVIRONMENTS = ("development", "testing", "production")

# Where settings are read from: os.environ, or variables of the same names given by hand (tests).
Environment = Mapping[str, str]


class SettingsError(ValueError):
    """An environment variable holds a value SEGS cannot use."""


def _int(env: Environment, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Environment, name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _decimal(
    env: Environment, name: str, default: Decimal, minimum: Decimal, maximum: Decimal
) -> Decimal:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = Decimal(raw)
    except ArithmeticError as exc:
        raise SettingsError(f"{name} must be a decimal number, got {raw!r}") from exc
    if not value.is_finite() or not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {raw!r}")
    return value


def _str(env: Environment, name: str, default: str) -> str:
    return env.get(name) or default


def _bool(env: Environment, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


# Signs tokens under SEGS_ENV=testing only; everywhere else create_app requires JWT_SECRET_KEY.
TESTING_JWT_KEY = "segs-development-only-signing-key-do-not-deploy"


PortRanges = tuple[tuple[int, int], ...]


def _ports(env: Environment, name: str, default: PortRanges) -> PortRanges:
    """``443,8443`` or ranges such as ``1024-65535``."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    ranges = []
    for part in filter(None, (item.strip() for item in raw.split(","))):
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError as exc:
            raise SettingsError(f"{name} must list ports or ranges, got {raw!r}") from exc
        if not 0 < first <= last < 65536:
            raise SettingsError(f"{name} must name ports between 1 and 65535, got {part!r}")
        ranges.append((first, last))
    if not ranges:
        raise SettingsError(f"{name} must name at least one port")
    return tuple(sorted(ranges))


def _host_table(env: Environment, name: str) -> tuple[tuple[str, str], ...]:
    """``name=address,name=address`` (the tests' stand-in for DNS)."""
    raw = env.get(name) or ""
    table: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        host, sep, address = entry.partition("=")
        if not sep or not host or not address:
            raise SettingsError(f"{name} must be name=address pairs, got {entry!r}")
        table[host.lower()] = address
    return tuple(sorted(table.items()))


T = TypeVar("T")


class ProcessPart(Generic[T]):
    """A part of the process (engine, Redis client, ingestion) that the process's entry point
    configures from its settings, and that everything else reads."""

    def __init__(self, configure_with: str) -> None:
        self._configure_with = configure_with
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value

    @property
    def is_set(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is None:
            raise RuntimeError(f"not configured: call {self._configure_with} first")
        return self._value


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`load_settings`, never by hand in app code."""

    database_url: str = "postgresql+psycopg:///segs"
    redis_url: str = "redis://localhost:6379/0"
    # None: ask the server named by redis_url whether it is a Redis Cluster node.
    redis_cluster: bool | None = None
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
    # Plausibility bounds of one reading (segs.domain.readings.ReadingLimits)
    max_power_kw: float = ReadingLimits.max_power_kw
    max_energy_kwh: float = ReadingLimits.max_energy_kwh
    max_voltage_v: float = ReadingLimits.max_voltage_v
    max_current_a: float = ReadingLimits.max_current_a
    max_frequency_hz: float = ReadingLimits.max_frequency_hz

    # Ingestion keys and the meter registry as the API sees them
    # Requests one ingestion key may make (Flask-Limiter notation); a key may carry its own.
    ingestion_rate_limit: str = "500 per second"
    # The API trusts what it cached of keys and meters this long at most (a change made through
    # SEGS reaches every process within ingestion_check_s; this bounds one made in SQL).
    ingestion_cache_s: float = 300.0
    # How often each API process asks Redis whether the keys or the meter registry changed.
    ingestion_check_s: float = 1.0
    # Meters whose registry entry one API process keeps; above it the cache starts over.
    meter_cache_size: int = 1_000_000
    # How long a rotated key keeps working beside its successor, unless the rotation says.
    key_rotation_overlap_s: int = 24 * 3600

    # A reading batch failing this many times for a reason that is not an outage (bad data, a
    # constraint) is set aside as a dead letter instead of being retried for ever.
    data_error_attempts: int = 3
    # A worker folds up to this many reading batch messages in one go, waiting at most this long
    # for a group to fill (BENCHMARKS.md, "Issue 16"). A worker that keeps up with its queues
    # cut its groups by the wait: 0.2 s, against 0.05 s, made them fuller and cheaper per reading.
    fold_group_messages: int = 64
    fold_group_wait_s: float = 0.2
    fold_group_readings: int = 5000

    # Windows and flushing
    window_grace_s: int = 10
    # A window that reopens after its flush (late readings) gathers them this long per minute of
    # its length before it is flushed again, so a backfill does not rewrite the same stored rows
    # every flush.
    late_window_hold_s: int = 30
    flush_interval_s: float = 5.0
    # A standby beat takes over this long after the running one stopped renewing its lock.
    beat_lock_timeout_s: int = 30
    # After Redis lost its memory, the rebuild waits this long: longer than the longest retry
    # backoff (60 s), so every batch from before the loss has folded again
    # (segs.services.spine.healing).
    redis_loss_settle_s: float = 75.0
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
    # Workers on one host take the first free port of worker_metrics_port and the next ones.
    worker_metrics_ports: int = 8

    # Accounts and tokens
    jwt_access_ttl_s: int = 15 * 60
    jwt_refresh_ttl_s: int = 7 * 24 * 3600
    # argon2id cost; the defaults are RFC 9106's second recommended profile (64 MiB, t=3).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    verification_code_ttl_s: int = 10 * 60
    verification_code_attempts: int = 5

    # Outgoing mail (verification and reset codes, later notifications)
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    mail_from: str = "SEGS <no-reply@segs.localhost>"

    # Alerts (issue 4)
    silent_after_intervals: int = 3
    silent_sweep_interval_s: float = 10.0
    # Spikes or drops in a row after which their level becomes the meter's baseline (0: never)
    anomaly_relearn_after: int = RELEARN_AFTER
    # A meter silent this long with no open alert forgets its baseline and silence deadline
    detection_state_ttl_days: int = 30
    overload_raise_percent: float = 90.0
    overload_clear_percent: float = 85.0
    overload_critical_percent: float = 100.0
    overload_windows: int = 2
    # Regional incidents (segs.domain.incidents): this many meters of a region, and this
    # fraction of its registered meters, in one condition within the window make one incident;
    # an alert with company waits the window for it (0 turns grouping off).
    incident_min_meters: int = IncidentRule.min_meters
    incident_min_fraction: Decimal = IncidentRule.min_fraction
    incident_window_s: float = IncidentRule.window_s

    # Notifications
    delivery_attempts: int = 3
    delivery_backoff_s: float = 2.0
    webhook_timeout_s: float = 5.0
    # Per recipient (an account's email, one webhook): at most this many notifications one by
    # one in a rolling hour; the rest are held and sent as one digest this long after the first
    # of them was held (segs.domain.digests).
    notify_max_per_hour: int = DigestRule.max_per_hour
    notify_digest_s: float = DigestRule.digest_s
    # Outgoing webhooks reach only public addresses on these ports, over https unless allowed.
    webhook_ports: PortRanges = ((443, 443), (8443, 8443))
    webhook_allow_http: bool = False
    # Test-only (SEGS_ENV=testing): a local receiver on loopback, and names resolved from a
    # fixed table instead of DNS, so no test sends a packet off the machine.
    webhook_allow_loopback: bool = False
    webhook_test_hosts: tuple[tuple[str, str], ...] = ()
    feed_heartbeat_s: float = 15.0
    feed_max_s: float = 25.0
    # The live feed runs in its own process (segs.web.feed_app); these bound what it holds.
    feed_max_streams: int = 200
    feed_max_streams_per_account: int = 3
    feed_connect_rate: str = "20 per minute"
    feed_ticket_ttl_s: int = 30
    # Beat's outbox sweep: transitions committed this long ago and still undispatched (their
    # dispatch was lost in a crash) are dispatched again
    dispatch_sweep_interval_s: float = 15.0
    dispatch_stale_after_s: float = 30.0

    # Abuse limits (Flask-Limiter notation, kept in Redis)
    rate_limit_default: str = "300 per minute"
    rate_limit_auth_per_ip: str = "60 per 15 minutes"
    rate_limit_auth_per_account: str = "20 per 15 minutes"
    # Failed logins: free tries, then a delay that doubles with each failure up to a cap; one
    # count per (account, client address), a looser one per account from every client.
    login_failure_window_s: int = 15 * 60
    login_free_failures_per_client: int = 5
    login_max_delay_per_client_s: int = 15 * 60
    login_free_failures_per_account: int = 20
    login_max_delay_per_account_s: int = 60
    # Emailed codes per account, purpose and day (each allows SEGS_VERIFICATION_CODE_ATTEMPTS).
    codes_per_day: int = 10

    # /metrics answers only with this bearer token (unset: /metrics is not served)
    metrics_token: str | None = None

    # Tariffs (fractions: 0.02 is 2 %)
    tariff_publish_threshold: Decimal = Decimal("0.02")
    # percentage points a falling load must go below a band's edge before the price leaves it
    tariff_band_hysteresis: Decimal = Decimal("5")
    tariff_cache_ttl_s: int = 3600
    tariff_refresh_interval_s: int = 60
    tariff_overview_hours: int = 24

    # Billing
    billing_tax_rate: Decimal = Decimal("0.18")
    billing_due_days: int = 15
    # Payment-provider callbacks are signed with this secret (unset: callbacks are refused).
    payment_provider: str = "testpay"
    payment_callback_secret: str | None = None

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_testing(self) -> bool:
        return self.environment == "testing"

    @property
    def signing_key(self) -> str:
        """The JWT signing key: JWT_SECRET_KEY, or a fixed key under SEGS_ENV=testing only
        (create_app refuses to start anywhere else without a good JWT_SECRET_KEY)."""
        if self.jwt_secret_key:
            return self.jwt_secret_key
        if not self.is_testing:
            raise SettingsError("JWT_SECRET_KEY is not set")
        return TESTING_JWT_KEY

    @property
    def reading_limits(self) -> ReadingLimits:
        return ReadingLimits(
            max_power_kw=self.max_power_kw,
            max_energy_kwh=self.max_energy_kwh,
            max_voltage_v=self.max_voltage_v,
            max_current_a=self.max_current_a,
            max_frequency_hz=self.max_frequency_hz,
        )

    @property
    def incident_rule(self) -> IncidentRule:
        return IncidentRule(
            min_meters=self.incident_min_meters,
            min_fraction=self.incident_min_fraction,
            window_s=self.incident_window_s,
        )

    @property
    def digest_rule(self) -> DigestRule:
        return DigestRule(max_per_hour=self.notify_max_per_hour, digest_s=self.notify_digest_s)

    @property
    def reading_queues(self) -> list[str]:
        return [f"readings.{shard}" for shard in range(self.shards)]


def _redis_cluster(env: Environment) -> bool | None:
    """SEGS_REDIS_CLUSTER: auto (the default) asks the server, 1 forces cluster mode, 0 a single
    Redis."""
    raw = env.get("SEGS_REDIS_CLUSTER", "auto").lower()
    if raw in ("auto", ""):
        return None
    return _bool(env, "SEGS_REDIS_CLUSTER", False)


def _pending_ledger(env: Environment, broker_url: str) -> bool:
    """On by default with the Redis broker, which can lose a killed worker's message."""
    raw = env.get("SEGS_PENDING_LEDGER", "auto").lower()
    if raw == "auto":
        return broker_url.startswith(("redis", "rediss"))
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"SEGS_PENDING_LEDGER must be auto, on or off, got {raw!r}")


def load_settings(env: Environment | None = None) -> Settings:
    """Read the settings from *env* (default: this process's environment), failing loudly on
    unusable values."""
    env = os.environ if env is None else env
    environment = _str(env, "SEGS_ENV", "development")
    broker_url = _str(env, "CELERY_BROKER_URL", Settings.broker_url)
    settings = Settings(
        database_url=_str(env, "DATABASE_URL", Settings.database_url),
        redis_url=_str(env, "REDIS_URL", Settings.redis_url),
        redis_cluster=_redis_cluster(env),
        beat_lock_timeout_s=_int(env, "SEGS_BEAT_LOCK_TIMEOUT_S", Settings.beat_lock_timeout_s, 2),
        redis_loss_settle_s=_float(
            env, "SEGS_REDIS_LOSS_SETTLE_S", Settings.redis_loss_settle_s, 0
        ),
        broker_url=broker_url,
        shards=_int(env, "SEGS_SHARDS", Settings.shards, minimum=1),
        environment=environment,
        jwt_secret_key=env.get("JWT_SECRET_KEY") or None,
        max_batch_readings=_int(env, "SEGS_MAX_BATCH_READINGS", Settings.max_batch_readings, 1),
        max_body_bytes=_int(env, "SEGS_MAX_BODY_BYTES", Settings.max_body_bytes, 1024),
        max_reading_age_s=_int(env, "SEGS_MAX_READING_AGE_S", Settings.max_reading_age_s, 60),
        max_future_skew_s=_int(env, "SEGS_MAX_FUTURE_SKEW_S", Settings.max_future_skew_s),
        dedupe_mark_ttl_s=_int(env, "SEGS_DEDUPE_MARK_TTL_S", Settings.dedupe_mark_ttl_s, 1),
        max_queue_backlog=_int(env, "SEGS_MAX_QUEUE_BACKLOG", Settings.max_queue_backlog, 1),
        backlog_check_interval_s=_float(
            env, "SEGS_BACKLOG_CHECK_INTERVAL_S", Settings.backlog_check_interval_s
        ),
        retry_after_s=_int(env, "SEGS_RETRY_AFTER_S", Settings.retry_after_s, 1),
        max_power_kw=_float(env, "SEGS_MAX_POWER_KW", Settings.max_power_kw),
        max_energy_kwh=_float(env, "SEGS_MAX_ENERGY_KWH", Settings.max_energy_kwh),
        max_voltage_v=_float(env, "SEGS_MAX_VOLTAGE_V", Settings.max_voltage_v),
        max_current_a=_float(env, "SEGS_MAX_CURRENT_A", Settings.max_current_a),
        max_frequency_hz=_float(env, "SEGS_MAX_FREQUENCY_HZ", Settings.max_frequency_hz),
        ingestion_rate_limit=_str(env, "SEGS_INGESTION_RATE_LIMIT", Settings.ingestion_rate_limit),
        ingestion_cache_s=_float(env, "SEGS_INGESTION_CACHE_S", Settings.ingestion_cache_s, 0.1),
        ingestion_check_s=_float(env, "SEGS_INGESTION_CHECK_S", Settings.ingestion_check_s),
        meter_cache_size=_int(env, "SEGS_METER_CACHE_SIZE", Settings.meter_cache_size, 1000),
        key_rotation_overlap_s=_int(
            env, "SEGS_KEY_ROTATION_OVERLAP_S", Settings.key_rotation_overlap_s, 0
        ),
        data_error_attempts=_int(env, "SEGS_DATA_ERROR_ATTEMPTS", Settings.data_error_attempts, 1),
        fold_group_messages=_int(env, "SEGS_FOLD_GROUP_MESSAGES", Settings.fold_group_messages, 1),
        fold_group_wait_s=_float(env, "SEGS_FOLD_GROUP_WAIT_S", Settings.fold_group_wait_s, 0.001),
        fold_group_readings=_int(env, "SEGS_FOLD_GROUP_READINGS", Settings.fold_group_readings, 1),
        window_grace_s=_int(env, "SEGS_WINDOW_GRACE_S", Settings.window_grace_s),
        late_window_hold_s=_int(env, "SEGS_LATE_WINDOW_HOLD_S", Settings.late_window_hold_s),
        flush_interval_s=_float(env, "SEGS_FLUSH_INTERVAL_S", Settings.flush_interval_s, 0.5),
        applied_mark_ttl_s=_int(env, "SEGS_APPLIED_MARK_TTL_S", Settings.applied_mark_ttl_s, 60),
        visibility_timeout_s=_int(
            env, "SEGS_VISIBILITY_TIMEOUT_S", Settings.visibility_timeout_s, 1
        ),
        pending_ledger=_pending_ledger(env, broker_url),
        requeue_after_s=_int(env, "SEGS_REQUEUE_AFTER_S", Settings.requeue_after_s, 1),
        raw_retention_days=_int(env, "SEGS_RAW_RETENTION_DAYS", Settings.raw_retention_days, 1),
        agg_1m_retention_days=_int(
            env, "SEGS_AGG_1M_RETENTION_DAYS", Settings.agg_1m_retention_days, 1
        ),
        agg_15m_retention_days=_int(
            env, "SEGS_AGG_15M_RETENTION_DAYS", Settings.agg_15m_retention_days, 1
        ),
        partition_premake_days=_int(
            env, "SEGS_PARTITION_PREMAKE_DAYS", Settings.partition_premake_days, 1
        ),
        worker_metrics_port=_int(env, "SEGS_WORKER_METRICS_PORT", Settings.worker_metrics_port),
        worker_metrics_ports=_int(
            env, "SEGS_WORKER_METRICS_PORTS", Settings.worker_metrics_ports, minimum=1
        ),
        jwt_access_ttl_s=_int(env, "SEGS_JWT_ACCESS_TTL_S", Settings.jwt_access_ttl_s, 10),
        jwt_refresh_ttl_s=_int(env, "SEGS_JWT_REFRESH_TTL_S", Settings.jwt_refresh_ttl_s, 60),
        argon2_time_cost=_int(env, "SEGS_ARGON2_TIME_COST", Settings.argon2_time_cost, 1),
        argon2_memory_kib=_int(env, "SEGS_ARGON2_MEMORY_KIB", Settings.argon2_memory_kib, 8),
        verification_code_ttl_s=_int(
            env, "SEGS_VERIFICATION_CODE_TTL_S", Settings.verification_code_ttl_s, 1
        ),
        verification_code_attempts=_int(
            env, "SEGS_VERIFICATION_CODE_ATTEMPTS", Settings.verification_code_attempts, 1
        ),
        smtp_host=_str(env, "SEGS_SMTP_HOST", Settings.smtp_host),
        smtp_port=_int(env, "SEGS_SMTP_PORT", Settings.smtp_port, 1),
        smtp_username=env.get("SEGS_SMTP_USERNAME") or None,
        smtp_password=env.get("SEGS_SMTP_PASSWORD") or None,
        smtp_starttls=_bool(env, "SEGS_SMTP_STARTTLS", Settings.smtp_starttls),
        smtp_timeout_s=_float(env, "SEGS_SMTP_TIMEOUT_S", Settings.smtp_timeout_s, 0.1),
        mail_from=_str(env, "SEGS_MAIL_FROM", Settings.mail_from),
        silent_after_intervals=_int(
            env, "SEGS_SILENT_AFTER_INTERVALS", Settings.silent_after_intervals, 1
        ),
        silent_sweep_interval_s=_float(
            env, "SEGS_SILENT_SWEEP_INTERVAL_S", Settings.silent_sweep_interval_s, 0.5
        ),
        anomaly_relearn_after=_int(
            env, "SEGS_ANOMALY_RELEARN_AFTER", Settings.anomaly_relearn_after, 0
        ),
        detection_state_ttl_days=_int(
            env, "SEGS_DETECTION_STATE_TTL_DAYS", Settings.detection_state_ttl_days, 1
        ),
        overload_raise_percent=_float(
            env, "SEGS_OVERLOAD_RAISE_PERCENT", Settings.overload_raise_percent
        ),
        overload_clear_percent=_float(
            env, "SEGS_OVERLOAD_CLEAR_PERCENT", Settings.overload_clear_percent
        ),
        overload_critical_percent=_float(
            env, "SEGS_OVERLOAD_CRITICAL_PERCENT", Settings.overload_critical_percent
        ),
        overload_windows=_int(env, "SEGS_OVERLOAD_WINDOWS", Settings.overload_windows, 1),
        # An incident groups at least two meters.
        incident_min_meters=_int(env, "SEGS_INCIDENT_MIN_METERS", Settings.incident_min_meters, 2),
        incident_min_fraction=_decimal(
            env,
            "SEGS_INCIDENT_MIN_FRACTION",
            Settings.incident_min_fraction,
            Decimal(0),
            Decimal(1),
        ),
        incident_window_s=_float(env, "SEGS_INCIDENT_WINDOW_S", Settings.incident_window_s),
        delivery_attempts=_int(env, "SEGS_DELIVERY_ATTEMPTS", Settings.delivery_attempts, 1),
        delivery_backoff_s=_float(env, "SEGS_DELIVERY_BACKOFF_S", Settings.delivery_backoff_s),
        webhook_timeout_s=_float(env, "SEGS_WEBHOOK_TIMEOUT_S", Settings.webhook_timeout_s, 0.1),
        notify_max_per_hour=_int(env, "SEGS_NOTIFY_MAX_PER_HOUR", Settings.notify_max_per_hour, 1),
        notify_digest_s=_float(env, "SEGS_NOTIFY_DIGEST_S", Settings.notify_digest_s, 1.0),
        webhook_ports=_ports(env, "SEGS_WEBHOOK_PORTS", Settings.webhook_ports),
        webhook_allow_http=_bool(env, "SEGS_WEBHOOK_ALLOW_HTTP", Settings.webhook_allow_http),
        webhook_allow_loopback=_bool(
            env, "SEGS_WEBHOOK_ALLOW_LOOPBACK", Settings.webhook_allow_loopback
        ),
        webhook_test_hosts=_host_table(env, "SEGS_WEBHOOK_TEST_HOSTS"),
        feed_heartbeat_s=_float(env, "SEGS_FEED_HEARTBEAT_S", Settings.feed_heartbeat_s, 0.1),
        feed_max_s=_float(env, "SEGS_FEED_MAX_S", Settings.feed_max_s, 0.5),
        feed_max_streams=_int(env, "SEGS_FEED_MAX_STREAMS", Settings.feed_max_streams, 1),
        feed_max_streams_per_account=_int(
            env, "SEGS_FEED_MAX_STREAMS_PER_ACCOUNT", Settings.feed_max_streams_per_account, 1
        ),
        feed_connect_rate=_str(env, "SEGS_FEED_CONNECT_RATE", Settings.feed_connect_rate),
        feed_ticket_ttl_s=_int(env, "SEGS_FEED_TICKET_TTL_S", Settings.feed_ticket_ttl_s, 1),
        dispatch_sweep_interval_s=_float(
            env, "SEGS_DISPATCH_SWEEP_INTERVAL_S", Settings.dispatch_sweep_interval_s, 1.0
        ),
        dispatch_stale_after_s=_float(
            env, "SEGS_DISPATCH_STALE_AFTER_S", Settings.dispatch_stale_after_s, 1.0
        ),
        rate_limit_default=_str(env, "SEGS_RATE_LIMIT_DEFAULT", Settings.rate_limit_default),
        rate_limit_auth_per_ip=_str(
            env, "SEGS_RATE_LIMIT_AUTH_PER_IP", Settings.rate_limit_auth_per_ip
        ),
        rate_limit_auth_per_account=_str(
            env, "SEGS_RATE_LIMIT_AUTH_PER_ACCOUNT", Settings.rate_limit_auth_per_account
        ),
        login_failure_window_s=_int(
            env, "SEGS_LOGIN_FAILURE_WINDOW_S", Settings.login_failure_window_s, 1
        ),
        login_free_failures_per_client=_int(
            env, "SEGS_LOGIN_FREE_FAILURES_PER_CLIENT", Settings.login_free_failures_per_client, 1
        ),
        login_max_delay_per_client_s=_int(
            env, "SEGS_LOGIN_MAX_DELAY_PER_CLIENT_S", Settings.login_max_delay_per_client_s, 1
        ),
        login_free_failures_per_account=_int(
            env, "SEGS_LOGIN_FREE_FAILURES_PER_ACCOUNT", Settings.login_free_failures_per_account, 1
        ),
        login_max_delay_per_account_s=_int(
            env, "SEGS_LOGIN_MAX_DELAY_PER_ACCOUNT_S", Settings.login_max_delay_per_account_s, 1
        ),
        codes_per_day=_int(env, "SEGS_CODES_PER_DAY", Settings.codes_per_day, 1),
        metrics_token=env.get("SEGS_METRICS_TOKEN") or None,
        tariff_publish_threshold=_decimal(
            env,
            "SEGS_TARIFF_PUBLISH_THRESHOLD",
            Settings.tariff_publish_threshold,
            Decimal(0),
            Decimal(1),
        ),
        tariff_band_hysteresis=_decimal(
            env,
            "SEGS_TARIFF_BAND_HYSTERESIS",
            Settings.tariff_band_hysteresis,
            Decimal(0),
            Decimal(100),
        ),
        tariff_cache_ttl_s=_int(env, "SEGS_TARIFF_CACHE_TTL_S", Settings.tariff_cache_ttl_s, 1),
        tariff_refresh_interval_s=_int(
            env, "SEGS_TARIFF_REFRESH_INTERVAL_S", Settings.tariff_refresh_interval_s, 1
        ),
        tariff_overview_hours=_int(
            env, "SEGS_TARIFF_OVERVIEW_HOURS", Settings.tariff_overview_hours, 1
        ),
        billing_tax_rate=_decimal(
            env, "SEGS_BILLING_TAX_RATE", Settings.billing_tax_rate, Decimal(0), Decimal(1)
        ),
        billing_due_days=_int(env, "SEGS_BILLING_DUE_DAYS", Settings.billing_due_days, 0),
        payment_provider=_str(env, "SEGS_PAYMENT_PROVIDER", Settings.payment_provider),
        payment_callback_secret=env.get("SEGS_PAYMENT_CALLBACK_SECRET") or None,
    )
    limit_problem = rate_limit_problem(settings.ingestion_rate_limit)
    if limit_problem is not None:
        raise SettingsError(f"SEGS_INGESTION_RATE_LIMIT: {limit_problem}")
    for bound in settings.reading_limits.out_of_range():
        raise SettingsError(
            f"SEGS_{bound.upper()} must be above 0 and at most {HARD_MAX_QUANTITY:.0f}"
        )
    if environment not in ENVIRONMENTS:
        raise SettingsError(
            f"SEGS_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
        )
    if environment != "testing" and (
        settings.webhook_allow_loopback or settings.webhook_test_hosts
    ):
        raise SettingsError(
            "SEGS_WEBHOOK_ALLOW_LOOPBACK and SEGS_WEBHOOK_TEST_HOSTS are for SEGS_ENV=testing only"
        )
    if environment == "production" and settings.webhook_allow_http:
        raise SettingsError("SEGS_WEBHOOK_ALLOW_HTTP must be off with SEGS_ENV=production")
    if settings.overload_clear_percent > settings.overload_raise_percent:
        raise SettingsError(
            "SEGS_OVERLOAD_CLEAR_PERCENT must not exceed SEGS_OVERLOAD_RAISE_PERCENT "
            "(the hysteresis band would be inverted)"
        )
    if settings.max_reading_age_s > settings.raw_retention_days * 86400:
        raise SettingsError(
            "SEGS_MAX_READING_AGE_S must not exceed SEGS_RAW_RETENTION_DAYS, or a late duplicate "
            "could arrive after its original was dropped and be counted twice"
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The environment's settings, read on first use: for a process's entry point (the WSGI
    app, celeryconfig, the CLI, scripts), which hands them to what it builds."""
    return load_settings()
