"""Regional incidents: many meter alerts of one region grouped under one alert, told once.

- alerts.incident_id: the incident (an alert of type REGIONAL_OUTAGE or REGIONAL_DROP, with no
  meter) that groups this meter alert. One open incident per type and region comes from
  uq_alerts_open as it is (NULLS NOT DISTINCT).
- alerts.meter_count: on an incident, how many meters it groups.
- alerts.notify_after: a meter alert waiting for an incident to form; its transitions stay in
  the outbox, and out of the stale-dispatch sweep, until then (segs.services.alerts.incidents).
- alert_transitions.grouped_into: a transition taken out of the outbox without a fan-out of its
  own, because its alert is grouped under this incident.

Existing alerts group under nothing and are held by nothing: an upgrade changes no notification.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE alerts
            ADD COLUMN incident_id bigint REFERENCES alerts (id) ON DELETE SET NULL,
            ADD COLUMN meter_count integer,
            ADD COLUMN notify_after timestamptz
        """
    )
    # An incident's meters, in the order the API pages them.
    op.execute(
        """
        CREATE INDEX ix_alerts_incident_id ON alerts (incident_id, meter_id)
        WHERE incident_id IS NOT NULL
        """
    )
    # Only the few alerts waiting for company: the alert sweep reads them every few seconds.
    op.execute(
        "CREATE INDEX ix_alerts_held ON alerts (notify_after) WHERE notify_after IS NOT NULL"
    )
    op.execute(
        """
        ALTER TABLE alert_transitions
            ADD COLUMN grouped_into bigint REFERENCES alerts (id) ON DELETE SET NULL
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE alert_transitions DROP COLUMN grouped_into")
    op.execute("DROP INDEX ix_alerts_held")
    op.execute("DROP INDEX ix_alerts_incident_id")
    op.execute("ALTER TABLE alerts DROP COLUMN notify_after, DROP COLUMN meter_count, "
               "DROP COLUMN incident_id")
