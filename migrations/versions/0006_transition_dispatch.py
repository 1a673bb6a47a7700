"""Alert transitions as a transactional outbox: when each one's notifications were dispatched.

A transition is committed with its alert; dispatched_at is set once its fan-out is queued, so a
crash in between leaves a row that beat's sweep finds and dispatches again. Rows already there
were dispatched by the code before this migration: they are backfilled as dispatched, so an
upgrade does not send history again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alert_transitions ADD COLUMN dispatched_at timestamptz")
    op.execute("UPDATE alert_transitions SET dispatched_at = at")
    # Only the few rows waiting for their dispatch: the sweep reads them every few seconds.
    op.execute(
        """
        CREATE INDEX ix_alert_transitions_undispatched ON alert_transitions (at)
        WHERE dispatched_at IS NULL
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_alert_transitions_undispatched")
    op.execute("ALTER TABLE alert_transitions DROP COLUMN dispatched_at")
