"""Telemetry spine: regions, meters, partitioned raw readings and window aggregates.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Capacities are sized so the default simulator (5,000 meters round-robin over these 10
# regions, mean 4.5 kW each, so about 2,250 kW per region) loads every region to 54-66 %.
# The earlier system's capacities left the load at about 2 %, so nothing downstream reacted.
REGIONS = [
    ("Mumbai-North", 4000),
    ("Mumbai-South", 3800),
    ("Delhi-North", 4200),
    ("Delhi-South", 4000),
    ("Bangalore-East", 3900),
    ("Bangalore-West", 3600),
    ("Pune-East", 3500),
    ("Pune-West", 3400),
    ("Hyderabad-Central", 3700),
    ("Chennai-North", 3600),
]

METER_WINDOW_COLUMNS = """
    meter_id varchar(128) NOT NULL,
    window_start timestamptz NOT NULL,
    region varchar(64) NOT NULL,
    reading_count integer NOT NULL,
    power_sum_kw numeric(24, 6) NOT NULL,
    avg_power_kw numeric(16, 6) NOT NULL,
    min_power_kw numeric(16, 6) NOT NULL,
    max_power_kw numeric(16, 6) NOT NULL,
    energy_kwh_sum numeric(24, 6) NOT NULL,
    voltage_sum numeric(24, 6) NOT NULL,
    voltage_count integer NOT NULL,
    voltage_avg numeric(16, 6),
    last_reading_at timestamptz NOT NULL,
    flush_count integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
"""

REGION_WINDOW_COLUMNS = """
    region varchar(64) NOT NULL REFERENCES regions (name),
    window_start timestamptz NOT NULL,
    meter_count integer NOT NULL,
    reading_count integer NOT NULL,
    total_power_kw numeric(24, 6) NOT NULL,
    capacity_kw numeric(14, 3) NOT NULL,
    load_percentage numeric(12, 4) NOT NULL,
    energy_kwh_sum numeric(24, 6) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE regions (
            name varchar(64) PRIMARY KEY,
            timezone varchar(64) NOT NULL,
            capacity_kw numeric(14, 3) NOT NULL CHECK (capacity_kw > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    values = ", ".join(f"('{name}', 'Asia/Kolkata', {capacity})" for name, capacity in REGIONS)
    op.execute(f"INSERT INTO regions (name, timezone, capacity_kw) VALUES {values}")  # noqa: S608

    op.execute(
        """
        CREATE TABLE meters (
            meter_id varchar(128) PRIMARY KEY,
            region varchar(64) NOT NULL REFERENCES regions (name),
            first_seen timestamptz NOT NULL,
            last_seen timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_meters_region ON meters (region)")
    op.execute("CREATE INDEX ix_meters_last_seen ON meters (last_seen)")

    op.execute(
        """
        CREATE TABLE raw_readings (
            meter_id varchar(128) NOT NULL,
            ts timestamptz NOT NULL,
            reading_id text NOT NULL,
            region varchar(64) NOT NULL,
            power_kw numeric(16, 6) NOT NULL,
            energy_kwh numeric(16, 6),
            voltage numeric(16, 6),
            current numeric(16, 6),
            frequency numeric(16, 6),
            power_factor numeric(8, 6),
            temperature numeric(16, 6),
            batch_id uuid NOT NULL,
            received_at timestamptz NOT NULL,
            CONSTRAINT pk_raw_readings PRIMARY KEY (meter_id, ts)
        ) PARTITION BY RANGE (ts)
        """
    )

    for table in ("aggregates_1m", "aggregates_15m"):
        op.execute(
            f"""
            CREATE TABLE {table} ({METER_WINDOW_COLUMNS},
                CONSTRAINT pk_{table} PRIMARY KEY (meter_id, window_start)
            ) PARTITION BY RANGE (window_start)
            """
        )
        # The flush recomputes a region's window from its meters' rows.
        op.execute(f"CREATE INDEX ix_{table}_region_window ON {table} (region, window_start)")

    for table in ("regional_aggregates_1m", "regional_aggregates_15m"):
        op.execute(
            f"""
            CREATE TABLE {table} ({REGION_WINDOW_COLUMNS},
                CONSTRAINT pk_{table} PRIMARY KEY (region, window_start)
            )
            """
        )
        op.execute(f"CREATE INDEX ix_{table}_window ON {table} (window_start)")

    op.execute(
        """
        CREATE TABLE window_flushes (
            flush_key text PRIMARY KEY,
            flushed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_window_flushes_flushed_at ON window_flushes (flushed_at)")


def downgrade() -> None:
    for table in (
        "window_flushes",
        "regional_aggregates_15m",
        "regional_aggregates_1m",
        "aggregates_15m",
        "aggregates_1m",
        "raw_readings",
        "meters",
        "regions",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
