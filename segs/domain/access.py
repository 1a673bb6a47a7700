"""Who may see what: the scope rules of the three roles, free of any framework."""

from __future__ import annotations

import uuid

USER = "USER"
OPERATOR = "OPERATOR"
ADMIN = "ADMIN"
ROLES = (USER, OPERATOR, ADMIN)
STAFF = (OPERATOR, ADMIN)


def can_see_meter(role: str, account_id: uuid.UUID, owner_id: uuid.UUID | None) -> bool:
    """A USER sees only the meters assigned to them; operators and admins see every meter."""
    return role in STAFF or owner_id == account_id


def can_own_meter(account_region: str | None, meter_region: str) -> bool:
    """A meter is assigned only to an account of its own region."""
    return account_region == meter_region
