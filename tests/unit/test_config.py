"""Settings: CONTRACT §2 defaults, environment overrides, and loud failures on bad values."""

from __future__ import annotations

import os

import pytest

from segs.config import Settings
from segs.config import SettingsError
from segs.config import load_settings
from segs.domain.readings import ReadingLimits

CONTRACT_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "JWT_SECRET_KEY")


@pytest.fixture
def bare_env(monkeypatch):
    # Every SEGS_* variable, so a setting added later cannot leak in from the test environment.
    for name in [*CONTRACT_VARIABLES, *(n for n in os.environ if n.startswith("SEGS_"))]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_contract_defaults(bare_env):
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg:///segs"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.broker_url == "redis://localhost:6379/1"
    assert settings.shards == 8
    assert settings.environment == "development"
    assert settings.jwt_secret_key is None
    assert settings.reading_queues == [f"readings.{k}" for k in range(8)]
    assert settings == Settings()


def test_ingestion_defaults(bare_env):
    settings = load_settings()
    assert settings.max_batch_readings == 1000
    assert settings.max_body_bytes == 2 * 1024 * 1024
    assert settings.max_reading_age_s == 7 * 24 * 3600
    assert settings.raw_retention_days == 7
    assert settings.window_grace_s == 10
    assert settings.is_production is False


def test_trusted_ingestion_defaults(bare_env):
    settings = load_settings()
    assert settings.reading_limits == ReadingLimits(
        max_power_kw=1000.0,
        max_energy_kwh=100_000.0,
        max_voltage_v=1000.0,
        max_current_a=10_000.0,
        max_frequency_hz=100.0,
    )
    assert settings.ingestion_rate_limit == "500 per second"
    assert (settings.ingestion_cache_s, settings.ingestion_check_s) == (300.0, 1.0)
    assert settings.meter_cache_size == 1_000_000
    assert (settings.key_rotation_overlap_s, settings.data_error_attempts) == (86_400, 3)
    bare_env.setenv("SEGS_MAX_POWER_KW", "250")
    bare_env.setenv("SEGS_INGESTION_RATE_LIMIT", "100/second")
    settings = load_settings()
    assert (settings.reading_limits.max_power_kw, settings.ingestion_rate_limit) == (
        250.0,
        "100/second",
    )


def test_environment_overrides(bare_env):
    bare_env.setenv("DATABASE_URL", "postgresql+psycopg://u:p@db:5433/x")
    bare_env.setenv("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//")
    bare_env.setenv("SEGS_SHARDS", "3")
    bare_env.setenv("SEGS_FLUSH_INTERVAL_S", "2.5")
    bare_env.setenv("SEGS_ENV", "production")
    settings = load_settings()
    assert settings.database_url == "postgresql+psycopg://u:p@db:5433/x"
    assert settings.broker_url == "amqp://guest:guest@localhost:5672//"
    assert settings.reading_queues == ["readings.0", "readings.1", "readings.2"]
    assert settings.flush_interval_s == 2.5
    assert settings.is_production is True


def test_empty_values_mean_default(bare_env):
    bare_env.setenv("SEGS_SHARDS", "")
    bare_env.setenv("REDIS_URL", "")
    settings = load_settings()
    assert settings.shards == 8
    assert settings.redis_url == "redis://localhost:6379/0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SEGS_SHARDS", "eight", "SEGS_SHARDS must be an integer, got 'eight'"),
        ("SEGS_SHARDS", "0", "SEGS_SHARDS must be >= 1, got 0"),
        ("SEGS_MAX_BATCH_READINGS", "1.5", "SEGS_MAX_BATCH_READINGS must be an integer"),
        ("SEGS_FLUSH_INTERVAL_S", "soon", "SEGS_FLUSH_INTERVAL_S must be a number, got 'soon'"),
        ("SEGS_ENV", "staging", "SEGS_ENV must be one of development, testing, production"),
        ("SEGS_BILLING_TAX_RATE", "18%", "SEGS_BILLING_TAX_RATE must be a decimal number"),
        ("SEGS_BILLING_TAX_RATE", "18", "SEGS_BILLING_TAX_RATE must be between 0 and 1"),
        ("SEGS_TARIFF_PUBLISH_THRESHOLD", "NaN", "SEGS_TARIFF_PUBLISH_THRESHOLD must be between"),
        ("SEGS_MAX_POWER_KW", "0", "SEGS_MAX_POWER_KW must be above 0 and at most 1000000"),
        ("SEGS_MAX_VOLTAGE_V", "2000000", "SEGS_MAX_VOLTAGE_V must be above 0 and at most"),
        ("SEGS_INGESTION_RATE_LIMIT", "lots", "SEGS_INGESTION_RATE_LIMIT: e.g. '100 per second'"),
        (
            "SEGS_INGESTION_RATE_LIMIT",
            "1/second;2/minute",
            "SEGS_INGESTION_RATE_LIMIT: one rate only",
        ),
        ("SEGS_INGESTION_RATE_LIMIT", "0 per second", "SEGS_INGESTION_RATE_LIMIT: 1 to"),
        ("SEGS_DATA_ERROR_ATTEMPTS", "0", "SEGS_DATA_ERROR_ATTEMPTS must be >= 1, got 0"),
    ],
)
def test_bad_values_name_the_variable(bare_env, name, value, message):
    bare_env.setenv(name, value)
    with pytest.raises(SettingsError) as excinfo:
        load_settings()
    assert str(excinfo.value).startswith(message)


def test_reading_age_may_not_outlive_raw_retention(bare_env):
    bare_env.setenv("SEGS_MAX_READING_AGE_S", str(8 * 86400))
    with pytest.raises(SettingsError, match="SEGS_MAX_READING_AGE_S must not exceed"):
        load_settings()


def test_notification_outbox_settings(bare_env):
    settings = load_settings()
    assert (settings.dispatch_sweep_interval_s, settings.dispatch_stale_after_s) == (15.0, 30.0)
    bare_env.setenv("SEGS_DISPATCH_SWEEP_INTERVAL_S", "5")
    bare_env.setenv("SEGS_DISPATCH_STALE_AFTER_S", "12.5")
    settings = load_settings()
    assert (settings.dispatch_sweep_interval_s, settings.dispatch_stale_after_s) == (5.0, 12.5)
    bare_env.setenv("SEGS_DISPATCH_STALE_AFTER_S", "0")
    with pytest.raises(SettingsError, match="SEGS_DISPATCH_STALE_AFTER_S must be >= 1.0"):
        load_settings()


def test_tariff_and_billing_settings(bare_env):
    from decimal import Decimal

    settings = load_settings()
    assert (settings.tariff_publish_threshold, settings.billing_tax_rate) == (
        Decimal("0.02"),
        Decimal("0.18"),
    )
    assert (settings.tariff_cache_ttl_s, settings.tariff_refresh_interval_s) == (3600, 60)
    assert (settings.tariff_overview_hours, settings.billing_due_days) == (24, 15)
    bare_env.setenv("SEGS_BILLING_TAX_RATE", "0.05")
    bare_env.setenv("SEGS_TARIFF_PUBLISH_THRESHOLD", "0.1")
    settings = load_settings()
    assert (settings.billing_tax_rate, settings.tariff_publish_threshold) == (
        Decimal("0.05"),
        Decimal("0.1"),
    )


def test_detection_state_ttl(bare_env):
    assert load_settings().detection_state_ttl_days == 30
    bare_env.setenv("SEGS_DETECTION_STATE_TTL_DAYS", "0")
    with pytest.raises(SettingsError, match="SEGS_DETECTION_STATE_TTL_DAYS must be >= 1"):
        load_settings()
