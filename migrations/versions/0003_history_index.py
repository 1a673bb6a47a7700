"""Covering index for one meter's 1-minute history.

The flush writes every meter once a minute, so one meter's day of 1m rows lies on ~1,440 heap
pages. With every column the history read needs in the index, the read becomes an index-only
scan of a few dozen pages (BENCHMARKS.md, "History latency"). It costs about 95 bytes a row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On the partitioned parent: PostgreSQL builds it on every partition, existing and future.
    op.execute(
        """
        CREATE INDEX ix_aggregates_1m_history ON aggregates_1m (meter_id, window_start)
        INCLUDE (reading_count, energy_kwh_sum, avg_power_kw, min_power_kw, max_power_kw,
                 voltage_avg)
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_aggregates_1m_history")
