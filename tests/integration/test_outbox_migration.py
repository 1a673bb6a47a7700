"""Migration 0006 makes alert transitions an outbox without sending history again.

Its own module, with no worker: it takes the database down to 0005 and back.
"""

from __future__ import annotations

import pytest
from alembic import command

from segs.db import session_scope
from segs.services.alerts import outbox
from segs.web.cli import _alembic_config
from tests.support import execute
from tests.support import query
from tests.support import scalar

pytestmark = pytest.mark.integration


def test_transitions_there_before_the_upgrade_count_as_dispatched(clean_state):
    config = _alembic_config()
    command.downgrade(config, "0005")
    try:
        alert = scalar(
            "INSERT INTO alerts (type, severity, status, region, meter_id, message, "
            "last_seen_at) VALUES ('POWER_SPIKE', 'high', 'active', 'Pune-West', 'OLD-1', 'm', "
            "now()) RETURNING id"
        )
        execute(
            "INSERT INTO alert_transitions (alert_id, kind, to_status, severity, at) "
            "VALUES (%s, 'created', 'active', 'high', now() - interval '1 hour')",
            (alert,),
        )
    finally:
        command.upgrade(config, "head")
    assert query("SELECT dispatched_at = at FROM alert_transitions") == [(True,)]
    with session_scope() as session:
        assert outbox.stale_transitions(session, stale_after_s=30, limit=10) == []
