"""Migration 0008 turns each existing meter assignment into an ownership interval.

Its own module, with no worker: it takes the database down to 0007 and back.
"""

from __future__ import annotations

import pytest
from alembic import command

from segs.web.cli import _alembic_config
from tests.support import execute
from tests.support import query

pytestmark = pytest.mark.integration


def test_existing_assignments_become_open_intervals_from_their_assigned_at(clean_state):
    config = _alembic_config()
    command.downgrade(config, "0007")
    try:
        execute(
            "INSERT INTO users (id, email, name, role, region) VALUES "
            "('00000000-0000-0000-0000-000000000001', 'old@example.test', 'Old', 'USER', "
            "'Pune-West')"
        )
        execute(
            "INSERT INTO meters (meter_id, region, owner_id, assigned_at) VALUES "
            "('OLD-1', 'Pune-West', '00000000-0000-0000-0000-000000000001', "
            "'2026-03-01T00:00Z'), ('OLD-2', 'Pune-West', NULL, NULL)"
        )
    finally:
        command.upgrade(config, "head")
    assert query(
        "SELECT meter_id, user_id::text, assigned_from = '2026-03-01T00:00Z', assigned_to "
        "FROM meter_assignments"
    ) == [("OLD-1", "00000000-0000-0000-0000-000000000001", True, None)]
