"""Failed logins kept in PostgreSQL as well as Redis (issue 17).

Redis counts failed logins for the login delay; a Redis that lost its memory used to forget
them, handing a guesser fresh tries. login_failures is now the authority and Redis its cache
(segs.services.accounts.login_guard).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE login_failures (
            key varchar(200) PRIMARY KEY,
            count integer NOT NULL,
            last_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_login_failures_last_at ON login_failures (last_at)")


def downgrade() -> None:
    op.execute("DROP TABLE login_failures")
